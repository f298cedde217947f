import Synchronization
import JSON
import Query
import Schema

/// An object of the response being built. Resolvers subclass it to carry their data
/// (a database row, a page of rows, a schema type); the engine only keeps children.
/// A node must never refer to a node above it: children are held strongly, so such a
/// reference would be a cycle that keeps the whole response in memory.
/// A node is used by one execution at a time (it records that execution's children and marks).
open class Node {
    /// Children loaded for this object, by planned field id: the first in place (most
    /// objects of a response have one child field at most, and an array would be an
    /// allocation for each of them), the others in a short array searched in order, which
    /// is cheaper than hashing.
    private final var firstLoaded: (field: Int, value: ChildValue)?
    private final var moreLoaded: ContiguousArray<(field: Int, value: ChildValue)> = []
    /// The collection of children that took this node last, and its place there
    /// (`Execution.Children`).
    final var collected: (token: Int, index: Int) = (-1, 0)
    public init() {}

    final func child(_ field: Int) -> ChildValue? {
        if let first = firstLoaded, first.field == field { return first.value }
        for entry in moreLoaded where entry.field == field { return entry.value }
        return nil
    }

    final func setChild(_ field: Int, _ value: ChildValue) {
        if firstLoaded == nil { firstLoaded = (field, value) } else { moreLoaded.append((field, value)) }
    }

    /// Writes this object's fields `ids[first...]` for as long as they are cells
    /// (`FieldWrite.column` at least 0) that are not null, each as its key and its value;
    /// returns the index in `ids` of the first field it did not write (`ids.count` when it
    /// wrote them all). The response writer writes that field itself: a null, or a field
    /// that is not a cell. Row-backed nodes override it to write straight from their row;
    /// one call writes a run of cells, so that each cell costs no call of its own.
    /// `fields` is indexed by field id; both are valid only during the call.
    open func writeCells(_ ids: UnsafeBufferPointer<Int>, from first: Int, _ fields: UnsafeBufferPointer<FieldWrite>,
                         to w: inout JSONWriter) -> Int { first }
}

/// What the response writer needs of a planned field, in plain values (none reference
/// counted, for every object of an answer): its key as JSON with the comma before it,
/// nullability, list-ness and children's ids (from `PlanShape.Field`, which the plan keeps
/// alive), and how this request resolved it. A cell (`Resolution.cell`) has its column
/// and how its text becomes JSON; `column` is -1 for other fields. `isChild`: the field's
/// value is a child the execution hung under its node (`Node.child`), so that the writer
/// need not copy the field's resolution, a load and all it holds, for every object.
public struct FieldWrite {
    public let column: Int
    public let kind: CellKind
    public let key: UnsafeBufferPointer<UInt8>
    let nonNull: Bool
    let isChild: Bool
    let isList: Bool
    let itemNonNull: Bool
    let childIDs: UnsafeBufferPointer<Int>
}

/// How a cell's text becomes JSON.
public enum CellKind: Sendable {
    /// Text, written as a JSON string.
    case string
    /// Already JSON text: an integer's digits, or a `JSON` value.
    case raw
}

/// A field's value on one object. Every node keeps its first child in place, so this is
/// kept to a word and a tag: the rare error is boxed.
public enum ChildValue {
    case object(Node?)
    case list([Node])
    indirect case error(GraphQLError)
}

/// A leaf value as it is written to JSON.
public enum ScalarValue {
    case null
    case int(Int)
    case string(String)
    case bool(Bool)
    /// A list of leaves (introspection's directive locations).
    indirect case list([ScalarValue])
}

/// How a field of an object resolves, decided once per planned field for all parents.
public enum Resolution {
    /// A leaf read from the parent.
    case scalar((Node) -> ScalarValue)
    /// A leaf that is a column of the parent's own data, written by the parent
    /// (`Node.writeCell`) straight from where its bytes are: the common case, kept free
    /// of closures because it runs for every field of every row.
    case cell(column: Int, kind: CellKind)
    /// A child object known from the parent without a load.
    case object((Node) -> Node?)
    /// A child list known from the parent without a load; nil is a null list.
    case list((Node) -> [Node]?)
    /// Children loaded for all parents of the level at once.
    case load(BatchLoad)
}

/// One statement (or a few) for every parent of a level: the end of N+1.
public protocol BatchLoad {
    /// Loads the children of every parent, in the parents' order. `itemBudget` is how many
    /// list items the request may still hold: a loader reads at most one more row than that.
    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void)
}

/// Decides how each field resolves. The billing layer implements it.
public protocol Resolver: AnyObject {
    /// Refuses a field the request may not read or run (its scope). Scope comes before
    /// anything else (RULES.md section 4), so the engine asks this of a field whose
    /// arguments it refused; `resolve` checks it first itself.
    func authorize(_ field: PlannedField) throws(GraphQLError)
    func resolve(_ field: PlannedField) throws(GraphQLError) -> Resolution
}

extension Resolver {
    public func authorize(_ field: PlannedField) throws(GraphQLError) {}
}

/// Runs a plan level by level: every load of a level goes out at once, the next level
/// starts when they are all back. Then the response is written in one pass.
public final class Execution {
    let plan: OperationPlan
    let resolver: Resolver
    let introspection: IntrospectionResolver
    let root = Node()
    /// Each planned field's resolution, and its error when it failed, by field id: decided
    /// once for the run (`resolution(for:)`) and read by the response writer. Buffers
    /// allocated in `init` and freed in `deinit`, not arrays: an array that is a class's
    /// property is checked for exclusive access (and, written, for uniqueness) at each use,
    /// about 200 instructions, and a run uses them about a hundred times for an invoice
    /// detail. Only this execution and its response writer, which it outlives, touch them.
    let resolutions: UnsafeMutableBufferPointer<Resolution?>
    let fieldErrors: UnsafeMutableBufferPointer<GraphQLError?>
    var itemBudget: Int
    let itemLimit: Int
    /// Codes of load failures that end a query (`ExecutionResult.requestError`) instead of
    /// failing only their field; a mutation's field fails with them like with any other.
    let endingRequest: Set<ErrorCode>
    var completion: ((ExecutionResult) -> Void)?
    /// Whether any field failed (its error is in the response). A mutation operation
    /// with a failed field is not applied (RULES.md section 4): the caller rolls back.
    public private(set) var hasFieldErrors = false
    /// Members of the response's `extensions` entry (specification 7.1), as JSON text
    /// (`"cost":{...}`), written after `data` and `errors`; none when empty. The
    /// application sets them before the run: written with the rest, the answer is not
    /// copied again to add them.
    public var extensions: [UInt8] = []

    /// What an execution produced: the whole response body, or an error that leaves no data.
    public enum ExecutionResult {
        case response([UInt8])
        case requestError(GraphQLError)
    }

    /// `endingRequest` names the load failures after which a query's response has no data,
    /// such as a database that went away: the application decides which they are. Going
    /// over `itemLimit` list items always ends the request, with `QUERY_TOO_COMPLEX`.
    public init(plan: OperationPlan, schema: Schema, resolver: Resolver, itemLimit: Int = 500_000,
                endingRequest: Set<ErrorCode>) {
        self.plan = plan
        self.endingRequest = endingRequest
        self.resolver = resolver
        self.introspection = IntrospectionResolver(schema: schema)
        self.itemLimit = itemLimit
        self.itemBudget = itemLimit
        self.resolutions = .allocate(capacity: plan.fieldCount)
        self.resolutions.initialize(repeating: nil)
        self.fieldErrors = .allocate(capacity: plan.fieldCount)
        self.fieldErrors.initialize(repeating: nil)
    }

    deinit {
        resolutions.deinitialize().deallocate()
        fieldErrors.deinitialize().deallocate()
    }

    /// Fields to resolve on some objects of one level. `weights[i]` is how many times
    /// `nodes[i]` appears in the response (a shared object, such as the customer of many
    /// invoices, appears once per path), so list items are counted as the response will hold them.
    struct Work {
        let fields: [PlannedField]
        let nodes: [Node]
        let weights: [Int]
    }

    /// Children of one planned field, deduplicated, each with its summed weight. A node
    /// remembers which collection took it last and where (`Node.collected`), so finding a
    /// node seen before costs no hashing: this runs for every row of a response.
    struct Children {
        private(set) var nodes: [Node] = []
        private(set) var weights: [Int] = []
        private let token: Int

        /// `token`: unique among all collections (`Execution.newChildren`).
        init(token: Int) { self.token = token }

        mutating func add(_ node: Node, weight: Int) {
            if node.collected.token == token {
                weights[node.collected.index] += weight
            } else {
                node.collected = (token, nodes.count)
                nodes.append(node)
                weights.append(weight)
            }
        }

        func work(_ fields: [PlannedField]) -> Work? {
            fields.isEmpty || nodes.isEmpty ? nil : Work(fields: fields, nodes: nodes, weights: weights)
        }
    }

    /// Tokens of `Children`, unique in the process: a node kept by a resolver between
    /// executions (as in-memory resolvers do) keeps the mark of an earlier one.
    private static let lastToken = Atomic<Int>(0)

    private func newChildren() -> Children {
        Children(token: Self.lastToken.wrappingAdd(1, ordering: .relaxed).newValue)
    }

    public func run(completion: @escaping (ExecutionResult) -> Void) {
        self.completion = completion
        if plan.kind == .mutation {
            runSerially(plan.fields[...])  // mutation root fields one after another
        } else {
            runLevel([Work(fields: plan.fields, nodes: [root], weights: [1])]) { [self] in finish() }
        }
    }

    /// Mutation root fields one after another; after one fails, the rest do not run, since
    /// the operation will not be applied and its answer holds only that field's error.
    private func runSerially(_ fields: ArraySlice<PlannedField>) {
        guard let first = fields.first else { return finish() }
        runLevel([Work(fields: [first], nodes: [root], weights: [1])]) { [self] in
            hasFieldErrors ? finish() : runSerially(fields.dropFirst())
        }
    }

    private func fail(_ error: GraphQLError) {
        guard let completion else { return }
        self.completion = nil
        completion(.requestError(error))
    }

    /// How `field` resolves, decided once and kept for the run: an operation's cost
    /// (RULES.md section 8) is counted from the very resolutions the run then uses. Nil
    /// when the field fails (its error is then the run's).
    public func resolved(_ field: PlannedField) -> Resolution? { resolution(for: field) }

    private func resolution(for field: PlannedField) -> Resolution? {
        if let r = resolutions[field.id] { return r }
        if fieldErrors[field.id] != nil { return nil }
        if let argumentError = field.argumentError {
            do {
                try resolver.authorize(field)
                fieldErrors[field.id] = argumentError
            } catch {
                fieldErrors[field.id] = error  // the scope's, which comes first
            }
            hasFieldErrors = true
            return nil
        }
        if field.name == "__typename" {
            let name = field.parentType.name
            resolutions[field.id] = .scalar { _ in .string(name) }
            return resolutions[field.id]
        }
        if introspection.handles(field) {
            resolutions[field.id] = introspection.resolve(field)
            return resolutions[field.id]
        }
        do {
            let r = try resolver.resolve(field)
            resolutions[field.id] = r
            return r
        } catch {
            fieldErrors[field.id] = error
            hasFieldErrors = true
            return nil
        }
    }

    /// Expands what needs no load, sends every load of the level together, then recurses.
    private func runLevel(_ initial: [Work], then done: @escaping () -> Void) {
        var work = initial
        var loads: [(PlannedField, Work, BatchLoad)] = []
        var i = 0
        while i < work.count {
            let item = work[i]
            i += 1
            for field in item.fields {
                guard let r = resolution(for: field) else { continue }
                var children = newChildren()
                var items = 0
                switch r {
                case .scalar, .cell: continue
                case .object(let child):
                    for (node, weight) in zip(item.nodes, item.weights) {
                        let c = child(node)
                        node.setChild(field.id, .object(c))
                        if let c { children.add(c, weight: weight) }
                    }
                case .list(let list):
                    for (node, weight) in zip(item.nodes, item.weights) {
                        guard let nodes = list(node) else {
                            node.setChild(field.id, .object(nil))
                            continue
                        }
                        node.setChild(field.id, .list(nodes))
                        // Introspection's lists do not count (RULES.md section 5): the
                        // schema's size is bounded, and a client may always read it.
                        if !field.parentType.isIntrospection { items += weight * nodes.count }
                        for c in nodes { children.add(c, weight: weight) }
                    }
                case .load(let loader):
                    loads.append((field, item, loader))
                    continue
                }
                if !spend(items) { return }
                if let next = children.work(field.children) { work.append(next) }
            }
        }
        guard !loads.isEmpty else { return done() }
        send(loads, then: done)
    }

    /// Sends every load of a level together. They share the budget (RULES.md section 5:
    /// the limit bounds the rows of all the statements of a request together): each may
    /// read an equal share. A load that finds more than its share is sent again alone,
    /// once the others are counted, with all that remains, so that a result within the
    /// limit is never refused; rows read stay within a small multiple of the limit
    /// however many loads a level has.
    private func send(_ loads: [(PlannedField, Work, BatchLoad)], then done: @escaping () -> Void) {
        let share = loads.count == 1 ? itemBudget : itemBudget / loads.count
        var pending = loads.count
        var results: [Result<[ChildValue], GraphQLError>?] = Array(repeating: nil, count: loads.count)
        for (k, (_, item, loader)) in loads.enumerated() {
            loader.load(parents: item.nodes, itemBudget: share) { [self] result in
                results[k] = result
                pending -= 1
                if pending == 0 { attach(loads, results.map { $0! }, overShareMeansRetry: share < itemBudget, then: done) }
            }
        }
    }

    private func spend(_ items: Int) -> Bool {
        itemBudget -= items
        if itemBudget < 0 {
            fail(tooManyItems)
            return false
        }
        return true
    }

    /// The refusal of a result over the limit, worded with the request's limit (a loader
    /// knows only the share it was given).
    private var tooManyItems: GraphQLError {
        GraphQLError("The result would hold more than \(itemLimit) list items.", code: .queryTooComplex)
    }

    private func attach(_ loads: [(PlannedField, Work, BatchLoad)], _ results: [Result<[ChildValue], GraphQLError>],
                        overShareMeansRetry: Bool, then done: @escaping () -> Void) {
        var next: [Work] = []
        var retries: [(PlannedField, Work, BatchLoad)] = []
        for (load, result) in zip(loads, results) {
            if overShareMeansRetry, case .failure(let error) = result, error.code == .queryTooComplex {
                retries.append(load)
                continue
            }
            guard attach(load, result, into: &next) else { return }
        }
        retry(retries[...], next: next, then: done)
    }

    /// Loads that went over their share, one after another, each with all that remains.
    private func retry(_ loads: ArraySlice<(PlannedField, Work, BatchLoad)>, next: [Work], then done: @escaping () -> Void) {
        guard let load = loads.first else {
            return next.isEmpty ? done() : runLevel(next, then: done)
        }
        load.2.load(parents: load.1.nodes, itemBudget: itemBudget) { [self] result in
            var next = next
            guard attach(load, result, into: &next) else { return }
            retry(loads.dropFirst(), next: next, then: done)
        }
    }

    /// Hangs one load's children under their parents; false when the request failed.
    private func attach(_ load: (PlannedField, Work, BatchLoad), _ result: Result<[ChildValue], GraphQLError>,
                        into next: inout [Work]) -> Bool {
        let (field, item, _) = load
        switch result {
        case .failure(let error):
            if error.code == .queryTooComplex {
                fail(tooManyItems)
                return false
            }
            // The database failed under a query: it has no data (RULES.md section 5). Under a
            // mutation, the failed field is the operation's error, with its path, and data
            // is null like for any failed field (section 4).
            if endingRequest.contains(error.code) && plan.kind != .mutation {
                fail(error)
                return false
            }
            for p in item.nodes { p.setChild(field.id, .error(error)) }
            hasFieldErrors = true
        case .success(let values):
            var children = newChildren()
            var items = 0
            for ((parent, weight), value) in zip(zip(item.nodes, item.weights), values) {
                switch value {
                case .object(let c?): children.add(c, weight: weight)
                case .list(let list):
                    items += weight * list.count
                    for c in list { children.add(c, weight: weight) }
                default: break
                }
                parent.setChild(field.id, value)  // its last use: the value moves in, uncopied
            }
            if !spend(items) { return false }
            if let work = children.work(field.children) { next.append(work) }
        }
        return true
    }

    private func finish() {
        guard let completion else { return }
        self.completion = nil
        var writer = ResponseWriter(execution: self)
        completion(.response(writer.write()))
    }
}
