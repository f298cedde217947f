import Engine
import JSON
import Query
import Schema
import XCTest

/// README, "No N+1": the engine walks the plan breadth-first and asks for one batched load
/// per field and level, with every parent of that level at once. ExecutionTests shows it with
/// one parent; an N+1 only shows with many, so here a tree of customers, their invoices and
/// the invoices' payments is loaded at several sizes, and the loads must be the same calls
/// whatever the number of parents, each given all its parents together.
private final class Row: Node {
    let id: String
    var children: [String: [Row]] = [:]
    init(_ id: String) { self.id = id }
}

private final class CountingResolver: Resolver {
    let root: Row
    /// Each load: the field's response key and how many parents it was given.
    var loads: [(field: String, parents: Int)] = []
    init(root: Row) { self.root = root }

    func resolve(_ field: PlannedField) throws(GraphQLError) -> Resolution {
        if Schema.contract[field.returnType.namedType]?.isLeaf == true {
            return .scalar { .string(($0 as? Row)?.id ?? "?") }
        }
        return .load(CountingLoad(field: field.name, key: field.responseKey, isList: Self.isList(field.returnType), resolver: self))
    }

    static func isList(_ type: TypeReference) -> Bool {
        switch type {
        case .list: return true
        case .nonNull(let inner, _): return isList(inner)
        case .named: return false
        }
    }
}

private struct CountingLoad: BatchLoad {
    let field: String
    let key: String
    let isList: Bool
    unowned let resolver: CountingResolver

    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        resolver.loads.append((key, parents.count))
        completion(.success(parents.map { parent in
            let row = (parent as? Row) ?? resolver.root
            let children = row.children[field] ?? []
            return isList ? .list(children) : .object(children.first)
        }))
    }
}

final class BatchingTests: XCTestCase {
    /// `customers` customers, each with `invoices` invoices, each with `payments` payments.
    private func tree(customers: Int, invoices: Int, payments: Int) -> CountingResolver {
        let root = Row("root")
        let connection = Row("connection")
        root.children["customers"] = [connection]
        connection.children["nodes"] = (0..<customers).map { c in
            let customer = Row("c\(c)")
            customer.children["invoices"] = (0..<invoices).map { i in
                let invoice = Row("c\(c)i\(i)")
                invoice.children["payments"] = (0..<payments).map { Row("c\(c)i\(i)p\($0)") }
                invoice.children["customer"] = [customer]
                return invoice
            }
            return customer
        }
        return CountingResolver(root: root)
    }

    private func run(_ query: String, _ resolver: CountingResolver) -> String {
        guard case .success(let (_, plan)) = Preparation(schema: Schema.contract).prepare(GraphQLRequest(query: query)) else {
            XCTFail("did not prepare")
            return ""
        }
        var output = ""
        Execution(plan: plan, schema: Schema.contract, resolver: resolver, itemLimit: 500_000).run { result in
            if case .response(let bytes) = result { output = String(decoding: bytes, as: UTF8.self) }
        }
        return output
    }

    static let twoLevels = """
        { customers(first: 1000) { nodes { id
            invoices(first: 1000) { id payments { id } }
            recent: invoices(first: 2) { id customer { id } } } } }
        """

    func testOneLoadPerFieldAndLevelWhateverTheParentCount() {
        var shapes: [[String]] = []
        for (customers, invoices, payments) in [(1, 1, 1), (3, 2, 2), (40, 7, 3), (250, 4, 5)] {
            let resolver = tree(customers: customers, invoices: invoices, payments: payments)
            let out = run(Self.twoLevels, resolver)
            XCTAssertEqual(out.components(separatedBy: "\"payments\":[").count - 1, customers * invoices)
            let byField = Dictionary(grouping: resolver.loads, by: \.field)
            // Every field is loaded once, with all its parents in that one call.
            XCTAssertEqual(byField["customers"]?.map(\.parents), [1])
            XCTAssertEqual(byField["nodes"]?.map(\.parents), [1])
            XCTAssertEqual(byField["invoices"]?.map(\.parents), [customers], "one load for every customer's invoices")
            XCTAssertEqual(byField["recent"]?.map(\.parents), [customers])
            XCTAssertEqual(byField["payments"]?.map(\.parents), [customers * invoices], "one load for every invoice's payments")
            XCTAssertEqual(byField["customer"]?.map(\.parents), [customers * invoices])
            shapes.append(resolver.loads.map(\.field).sorted())
        }
        // The calls made depend on the query's shape only.
        XCTAssertEqual(Set(shapes).count, 1, "\(shapes)")
        XCTAssertEqual(shapes[0], ["customer", "customers", "invoices", "nodes", "payments", "recent"])
    }

    func testLevelsAreLoadedInOrderBreadthFirst() {
        let resolver = tree(customers: 5, invoices: 3, payments: 2)
        _ = run(Self.twoLevels, resolver)
        let order = resolver.loads.map(\.field)
        let level: [String: Int] = ["customers": 0, "nodes": 1, "invoices": 2, "recent": 2, "payments": 3, "customer": 3]
        XCTAssertEqual(order.map { level[$0]! }, order.map { level[$0]! }.sorted(), "\(order)")
    }

    /// A level with no parents (customers without invoices) costs no load at all.
    func testALevelWithoutParentsIsNotLoaded() {
        let empty = tree(customers: 30, invoices: 0, payments: 0)
        _ = run(Self.twoLevels, empty)
        XCTAssertEqual(empty.loads.map(\.field), ["customers", "nodes", "invoices", "recent"])
        XCTAssertEqual(empty.loads.map(\.parents), [1, 1, 30, 30])
    }
}
