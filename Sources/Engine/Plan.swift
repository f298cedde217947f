import JSON
import Query
import Schema
import Synchronization

/// A field of the operation after collection: fragments expanded, `@skip`/`@include`
/// applied, same-named fields merged, arguments coerced (defaults filled in; an explicit
/// null for an argument with a default means the default, as the contract says).
///
/// What does not depend on the request is read from the field's shape (`PlanShape.Field`),
/// which every request of the document shares, rather than copied into each plan. A field
/// whose arguments, and whose children's, read no variable is the same for every request:
/// it is bound once and shared (`Planner.bind`), so nothing of it changes after `init`.
public final class PlannedField: Sendable {
    /// The field as planned for every request of this document (`PlanShape`).
    let shape: PlanShape.Field
    public let arguments: [String: JSONValue]
    public let children: [PlannedField]
    /// Set when the arguments could not be coerced (a variable made a required argument null).
    public let argumentError: GraphQLError?

    /// Unique within one operation plan; nodes keep their children under it.
    public var id: Int { shape.id }
    public var responseKey: String { shape.responseKey }
    public var name: String { shape.name }
    public var parentType: NamedType { shape.parentType }
    public var definition: FieldDef { shape.definition }
    public var locations: [SourceLocation] { shape.locations }

    init(_ shape: PlanShape.Field, arguments: [String: JSONValue], argumentError: GraphQLError?, children: [PlannedField]) {
        self.shape = shape
        self.arguments = arguments
        self.argumentError = argumentError
        self.children = children
    }

    /// What `make` derives from this field's selections alone (never from its arguments
    /// or its request), kept with the field's shape so that later requests for the same
    /// document reuse it: one value per type `T`.
    public func derived<T: AnyObject & Sendable>(_ make: () -> T) -> T {
        let slot = ObjectIdentifier(T.self)
        // A field keeps a value of two or three types at most: a search of their list costs
        // less than hashing. A value is kept under its own type's slot, so it is a `T`.
        if let kept = shape.derived.withLock({ list in list.first { $0.type == slot }?.value }) {
            return unsafeDowncast(kept, to: T.self)
        }
        let value = make()
        shape.derived.withLock { list in
            if !list.contains(where: { $0.type == slot }) { list.append((slot, value)) }
        }
        return value
    }

    public var returnType: TypeReference { definition.type }

    /// Whether one of the field's own selections is `name`.
    public func selects(_ name: String) -> Bool { children.contains { $0.name == name } }

    public func argument(_ name: String) -> JSONValue? {
        guard let v = arguments[name], !v.isNull else { return nil }
        return v
    }
}

/// An operation ready to execute.
public struct OperationPlan {
    public let kind: OperationKind
    public let rootType: NamedType
    public let fields: [PlannedField]
    public let fieldCount: Int
    /// The shape it was bound from, which also remembers how long its answers are.
    let shape: PlanShape
}

/// An operation's fields collected and merged (CollectFields, specification 6.3.2), with
/// `@skip`/`@include` applied but no argument coerced: the part of planning that costs
/// (fragments expanded, same-named fields merged, the schema looked up). It depends only
/// on the document, the operation and the Boolean variables those directives read, so
/// it is made once and kept with the document (`PlanShapes`); each request then binds
/// its own arguments to it (`Planner.bind`), which is a few allocations a field.
final class PlanShape: Sendable {
    final class Field: Sendable {
        let id: Int
        let responseKey: String
        /// The field's name in the schema (`selection.name`).
        let name: String
        let parentType: NamedType
        let definition: FieldDef
        /// The first of the merged selections: its arguments are the field's (validation
        /// made the others' the same).
        let selection: Query.Field
        let locations: [SourceLocation]
        let children: [Field]
        /// What the application derived from this field's selections (`PlannedField.derived`).
        let derived = Mutex<[(type: ObjectIdentifier, value: any AnyObject & Sendable)]>([])
        /// What the response writer needs, known from the shape alone: the key as JSON with
        /// the comma before it (`,"name":`; the writer writes every field so, and turns the
        /// first one's comma into the object's brace), whether the type is non-null, a list,
        /// a list of non-null items, and the children's ids. `key` and `childIDs` are owned:
        /// allocated in `init`, freed in `deinit`, so that a writer may point at them for as
        /// long as it holds the plan (and walk them with no reference counted, for every
        /// object of an answer). Never written after `init`, so threads may share them.
        nonisolated(unsafe) let key: UnsafeBufferPointer<UInt8>
        let nonNull: Bool
        let isList: Bool
        let itemNonNull: Bool
        nonisolated(unsafe) let childIDs: UnsafeBufferPointer<Int>
        /// Whether the arguments of this field or of a field below it read a variable: if
        /// not, the field binds the same for every request, and `bound` keeps it once bound.
        let readsVariables: Bool
        let bound = Mutex<PlannedField?>(nil)

        init(id: Int, responseKey: String, parentType: NamedType, definition: FieldDef, selection: Query.Field,
             locations: [SourceLocation], children: [Field]) {
            self.id = id
            self.responseKey = responseKey
            name = selection.name.value
            self.parentType = parentType
            self.definition = definition
            self.selection = selection
            self.locations = locations
            self.children = children
            childIDs = ownedCopy(of: children.map(\.id))
            readsVariables = selection.arguments.contains { $0.value.readsVariable } || children.contains { $0.readsVariables }
            var json = JSONWriter(capacity: responseKey.utf8.count + 4)
            json.append(UInt8(ascii: ","))
            json.key(responseKey)
            key = ownedCopy(of: json.bytes)
            var (type, nonNull, isList, itemNonNull) = (definition.type, false, false, false)
            if case .nonNull(let inner, _) = type { (type, nonNull) = (inner, true) }
            if case .list(let item, _) = type {
                isList = true
                if case .nonNull = item { itemNonNull = true }
            }
            (self.nonNull, self.isList, self.itemNonNull) = (nonNull, isList, itemNonNull)
        }

        deinit {
            key.deallocate()
            childIDs.deallocate()
        }
    }

    let kind: OperationKind
    let rootType: NamedType
    let fields: [Field]
    let fieldCount: Int
    /// Every field by id, and the root fields' ids (owned like `Field.childIDs`), for the
    /// response writer.
    let byID: [Field]
    nonisolated(unsafe) let rootIDs: UnsafeBufferPointer<Int>
    /// How many fields lie one in another at most (1 for root fields with no children): the
    /// writer's path has room for a field and a list index a level.
    let depth: Int
    /// How many bytes the last answer of this shape had (`ResponseWriter`): the next one
    /// starts with that much room instead of doubling its way there, a copy of all it
    /// wrote at each step (three copies of a 300 KB page).
    let lastAnswerBytes = Atomic<Int>(0)

    init(kind: OperationKind, rootType: NamedType, fields: [Field], fieldCount: Int) {
        self.kind = kind
        self.rootType = rootType
        self.fields = fields
        self.fieldCount = fieldCount
        var byID = [Field?](repeating: nil, count: fieldCount)
        var depth = 0
        var stack = fields.map { ($0, 1) }
        while let (field, level) = stack.popLast() {
            byID[field.id] = field
            depth = max(depth, level)
            stack += field.children.map { ($0, level + 1) }
        }
        self.byID = byID.map { $0! }
        self.depth = depth
        rootIDs = ownedCopy(of: fields.map(\.id))
    }

    deinit { rootIDs.deallocate() }
}

/// `elements` in memory of their own, which the caller frees (`deallocate`).
private func ownedCopy<T>(of elements: [T]) -> UnsafeBufferPointer<T> {
    let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: elements.count)
    _ = buffer.initialize(from: elements)
    return UnsafeBufferPointer(buffer)
}

/// Builds the plan of an operation: its shape (`shape`), then its arguments (`bind`).
struct Planner {
    let schema: Schema
    let fragments: [String: FragmentDefinition]
    let variables: [String: JSONValue]
    var nextID = 0

    mutating func shape(_ operation: OperationDefinition, rootType: NamedType) -> PlanShape {
        let fields = fieldsOf([operation.selectionSet], on: rootType)
        return PlanShape(kind: operation.kind, rootType: rootType, fields: fields, fieldCount: nextID)
    }

    /// The plan of `shape` with this request's arguments.
    func bind(_ shape: PlanShape) -> OperationPlan {
        OperationPlan(kind: shape.kind, rootType: shape.rootType, fields: shape.fields.map(bind), fieldCount: shape.fieldCount,
                      shape: shape)
    }

    /// A field that reads no variable is bound once and kept with its shape: the dashboard
    /// and the invoice detail read their variables at the root alone, and binding their
    /// thirty-odd other fields anew (and freeing them) was a tenth of a detail's request.
    private func bind(_ shaped: PlanShape.Field) -> PlannedField {
        if !shaped.readsVariables, let kept = shaped.bound.withLock({ $0 }) { return kept }
        let (arguments, error) = coerceArguments(shaped.selection, shaped.definition)
        let field = PlannedField(shaped, arguments: arguments ?? [:], argumentError: error, children: shaped.children.map(bind))
        if !shaped.readsVariables { shaped.bound.withLock { $0 = field } }
        return field
    }

    private mutating func fieldsOf(_ sets: [SelectionSet], on type: NamedType) -> [PlanShape.Field] {
        var grouped: [(String, [Field])] = []
        var index: [String: Int] = [:]
        for set in sets {
            var visited = Set<String>()
            collect(set, on: type, into: &grouped, index: &index, visited: &visited)
        }
        var out: [PlanShape.Field] = []
        for (key, fields) in grouped {
            let first = fields[0]
            guard let def = schema.field(first.name.value, on: type) else { continue }  // validated away
            let id = nextID
            nextID += 1
            var children: [PlanShape.Field] = []
            if let childType = schema[def.type.namedType], childType.isComposite {
                children = fieldsOf(fields.compactMap(\.selectionSet), on: childType)
            }
            out.append(PlanShape.Field(id: id, responseKey: key, parentType: type, definition: def, selection: first,
                                       locations: fields.map(\.location), children: children))
        }
        return out
    }

    private func collect(_ set: SelectionSet, on type: NamedType, into grouped: inout [(String, [Field])],
                         index: inout [String: Int], visited: inout Set<String>) {
        for selection in set.selections where included(selection.directives) {
            switch selection {
            case .field(let f):
                if let i = index[f.responseKey] {
                    grouped[i].1.append(f)
                } else {
                    index[f.responseKey] = grouped.count
                    grouped.append((f.responseKey, [f]))
                }
            case .inlineFragment(let inline):
                if let condition = inline.typeCondition, !applies(condition.value, to: type) { continue }
                collect(inline.selectionSet, on: type, into: &grouped, index: &index, visited: &visited)
            case .fragmentSpread(let spread):
                guard !visited.contains(spread.name.value), let fragment = fragments[spread.name.value] else { continue }
                visited.insert(spread.name.value)
                guard applies(fragment.typeCondition.value, to: type) else { continue }
                collect(fragment.selectionSet, on: type, into: &grouped, index: &index, visited: &visited)
            }
        }
    }

    private func applies(_ condition: String, to type: NamedType) -> Bool {
        guard let conditionType = schema[condition] else { return false }
        return schema.possibleTypes(of: conditionType).contains(type.name) || conditionType.name == type.name
    }

    /// `@skip(if:)` and `@include(if:)`.
    private func included(_ directives: [Directive]) -> Bool {
        for d in directives where d.name.value == "skip" || d.name.value == "include" {
            guard let arg = d.arguments.first(where: { $0.name.value == "if" }) else { continue }
            var flag = false
            switch arg.value.kind {
            case .boolean(let b): flag = b
            case .variable(let v): if case .bool(let b) = variables[v] { flag = b }
            default: break
            }
            if d.name.value == "skip" && flag { return false }
            if d.name.value == "include" && !flag { return false }
        }
        return true
    }

    /// CoerceArgumentValues (specification 6.4.1), with the contract's rule that null means the default.
    private func coerceArguments(_ field: Field, _ def: FieldDef) -> ([String: JSONValue]?, GraphQLError?) {
        if def.arguments.isEmpty { return ([:], nil) }
        let coercion = InputCoercion(schema: schema)
        var out: [String: JSONValue] = [:]
        for argDef in def.arguments {
            let given = field.arguments.first { $0.name.value == argDef.name }
            var value: JSONValue?
            do {
                if let given { value = try coercion.literal(given.value, argDef.type, variables: variables) }
                if value == nil || value == .null, let d = argDef.defaultValue {
                    value = try coercion.literal(d, argDef.type, variables: [:])
                }
            } catch {
                return (nil, GraphQLError(error.message, code: .badUserInput, locations: [field.location]))
            }
            if case .nonNull = argDef.type, value == nil || value == .null {
                return (nil, GraphQLError("Argument \"\(argDef.name)\" of non-null type \"\(argDef.type)\" must not be null.",
                                          code: .badUserInput, locations: [field.location]))
            }
            if let value { out[argDef.name] = value }
        }
        return (out, nil)
    }
}

private extension Value {
    var readsVariable: Bool {
        switch kind {
        case .variable: true
        case .list(let items): items.contains { $0.readsVariable }
        case .object(let fields): fields.contains { $0.value.readsVariable }
        case .int, .float, .string, .boolean, .null, .enumValue: false
        }
    }
}
