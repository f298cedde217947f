import Engine
import JSON
import Query
import Schema
import XCTest

/// A resolver over an in-memory tree, to test execution without a database.
private final class Item: Node {
    let fields: [String: ScalarValue]
    let lists: [String: [Item]]
    init(_ fields: [String: ScalarValue], lists: [String: [Item]] = [:]) {
        self.fields = fields
        self.lists = lists
    }
}

private final class MemoryResolver: Resolver {
    let root: Item
    var loads: [String] = []
    /// The item budget each load was given, in the order they were sent.
    var budgets: [Int] = []
    init(root: Item) { self.root = root }

    func resolve(_ field: PlannedField) throws(GraphQLError) -> Resolution {
        if field.name == "customer", field.argument("id")?.stringValue == "boom" {
            throw GraphQLError("bad id", code: .badUserInput)
        }
        let type = field.returnType.namedType
        if Schema.contract[type]?.isLeaf == true {
            let name = field.name
            return .scalar { ($0 as? Item)?.fields[name] ?? .null }
        }
        return .load(MemoryLoad(name: field.name, parentIsRoot: field.parentType.name == "Query", root: root, resolver: self))
    }
}

private struct MemoryLoad: BatchLoad {
    let name: String
    let parentIsRoot: Bool
    let root: Item
    unowned let resolver: MemoryResolver

    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        resolver.loads.append(name)
        resolver.budgets.append(itemBudget)
        let values: [ChildValue] = parents.map { parent in
            let item = parentIsRoot ? root : parent as! Item
            let list = item.lists[name] ?? []
            return name == "customer" || name == "customers" ? .object(list.first) : .list(list)
        }
        // As the real loaders do: reading more rows than the budget allows fails the load.
        let rows = values.reduce(0) { if case .list(let l) = $1 { return $0 + l.count } else { return $0 } }
        if rows > itemBudget { return completion(.failure(GraphQLError("over budget", code: .queryTooComplex))) }
        completion(.success(values))
    }
}

final class ExecutionTests: XCTestCase {
    private func run(_ query: String, variables: [(String, JSONValue)] = [], resolver: MemoryResolver,
                     itemLimit: Int = 500_000) -> String {
        let preparation = Preparation(schema: Schema.contract)
        guard case .success(let (_, plan)) = preparation.prepare(GraphQLRequest(query: query, variables: variables)) else {
            XCTFail("did not prepare")
            return ""
        }
        var output = ""
        Execution(plan: plan, schema: Schema.contract, resolver: resolver, itemLimit: itemLimit).run { result in
            switch result {
            case .response(let bytes): output = String(decoding: bytes, as: UTF8.self)
            case .requestError(let error): output = error.code.rawValue
            }
        }
        return output
    }

    private func sample() -> MemoryResolver {
        let invoices = [Item(["id": .string("i1"), "total": .int(10)]), Item(["id": .string("i2"), "total": .int(20)])]
        let customer = Item(["id": .string("c1"), "name": .string("Acme \"Q\""), "email": .null],
                            lists: ["invoices": invoices])
        return MemoryResolver(root: Item([:], lists: ["customer": [customer]]))
    }

    func testFieldsComeInSelectionOrderWithAliasesFragmentsAndTypename() {
        let out = run("""
            { customer(id: "c1") { __typename n: name id ...F invoices { total id } } }
            fragment F on Customer { email name }
            """, resolver: sample())
        XCTAssertEqual(out, #"{"data":{"customer":{"__typename":"Customer","n":"Acme \"Q\"","id":"c1","email":null,"name":"Acme \"Q\"","invoices":[{"total":10,"id":"i1"},{"total":20,"id":"i2"}]}}}"#)
    }

    func testSkipAndIncludeFollowVariables() {
        let out = run("query($s: Boolean!) { customer(id: \"c1\") { id @skip(if: $s) name @include(if: $s) } }",
                      variables: [("s", .bool(true))], resolver: sample())
        XCTAssertEqual(out, #"{"data":{"customer":{"name":"Acme \"Q\""}}}"#)
    }

    func testOneLoadPerLevelWhateverTheRowCount() {
        let resolver = sample()
        _ = run("{ customer(id: \"c1\") { invoices { id } } a: customer(id: \"c1\") { id } }", resolver: resolver)
        XCTAssertEqual(resolver.loads.sorted(), ["customer", "customer", "invoices"])
    }

    /// RULES.md section 5: one budget for all the statements of a request. Three lists of
    /// six invoices under one customer: the first round may read 14 rows in all.
    func testTheLoadsOfALevelShareOneBudget() {
        let invoices = (1...6).map { Item(["id": .string("i\($0)")]) }
        let tree = { MemoryResolver(root: Item([:], lists: ["customer": [Item(["id": .string("c1")], lists: ["invoices": invoices])]])) }
        let three = "{ customer(id: \"c1\") { a: invoices { id } b: invoices { id } c: invoices { id } } }"

        let refused = tree()
        XCTAssertEqual(run(three, resolver: refused, itemLimit: 14), "QUERY_TOO_COMPLEX")  // 18 items > 14
        XCTAssertEqual(Array(refused.budgets.prefix(4)), [14, 4, 4, 4], "one customer, then a share each")

        let allowed = tree()
        let out = run(three, resolver: allowed, itemLimit: 18)  // exactly the limit
        XCTAssertEqual(out.components(separatedBy: "\"id\":\"i6\"").count - 1, 3)
        XCTAssertEqual(allowed.budgets, [18, 6, 6, 6])

        // Uneven: one list of six, two empty lists. Over its share of 2, the full list is
        // read again alone with all that remains, and the answer within the limit comes back.
        let uneven = tree()
        let mixed = "{ customer(id: \"c1\") { a: invoices { id } b: creditNotes { id } c: payments { id } } }"
        let answer = run(mixed, resolver: uneven, itemLimit: 7)
        XCTAssertTrue(answer.hasPrefix("{\"data\""), answer)
        XCTAssertEqual(uneven.budgets, [7, 2, 2, 2, 7])
    }

    func testNullInANonNullFieldPropagatesToTheNearestNullableParent() {
        // Customer.name is String!: null there makes the whole customer null.
        let customer = Item(["id": .string("c1"), "name": .null])
        let out = run("{ customer(id: \"c1\") { id name } }", resolver: MemoryResolver(root: Item([:], lists: ["customer": [customer]])))
        XCTAssertEqual(out, #"{"data":{"customer":null}}"#)
    }

    func testFieldErrorsCarryPathAndLocation() {
        let out = run("{\n  customer(id: \"boom\") { id }\n}", resolver: sample())
        XCTAssertEqual(out, #"{"data":{"customer":null},"errors":[{"message":"bad id","locations":[{"line":2,"column":3}],"path":["customer"],"extensions":{"code":"BAD_USER_INPUT"}}]}"#)
    }

    func testDepthLimitCountsFieldsOnTheLongestPath() {
        let preparation = Preparation(schema: Schema.contract, maxDepth: 3)
        let shallow = preparation.prepare(GraphQLRequest(query: "{ customer(id: \"x\") { invoices { id } } }"))
        let deep = preparation.prepare(GraphQLRequest(query: "{ customer(id: \"x\") { invoices { customer { id } } } }"))
        if case .failure = shallow { XCTFail("3 levels are allowed") }
        guard case .failure(.tooComplex(let error)) = deep else { return XCTFail("4 levels are too many") }
        XCTAssertEqual(error.code, .queryTooComplex)
    }

    func testFragmentsSpreadInManyPlacesAreRefusedWithoutExpandingThem() {
        // Each fragment spreads the next one twice: 2^30 fields once expanded, in 2 KB.
        func document(_ head: String, _ type: String, _ body: (Int) -> String, _ last: String) -> String {
            ([head] + (0..<30).map { "fragment F\($0) on \(type) { \(body($0 + 1)) }" } + ["fragment F30 on \(type) { \(last) }"])
                .joined(separator: "\n")
        }
        let preparation = Preparation(schema: Schema.contract)
        let documents = [
            document("{ invoice(id: \"x\") { ...F0 } }", "Invoice",
                     { "customer { a: invoices { ...F\($0) } b: invoices { ...F\($0) } }" }, "id"),
            document("{ invoice(id: \"x\") { ...F0 } }", "Invoice",
                     { "customer { x: invoices { ...F\($0) } x: invoices { id ...F\($0) } }" }, "id"),
            document("{ __schema { types { ...F0 } } }", "__Type", { "a: ofType { ...F\($0) } b: ofType { ...F\($0) }" }, "name"),
        ]
        for query in documents {
            guard case .failure(.tooComplex(let error)) = preparation.prepare(GraphQLRequest(query: query)) else {
                return XCTFail("not refused: \(query.prefix(60))")
            }
            XCTAssertEqual(error.code, .queryTooComplex)
        }
    }

    func testVariablesAreCoercedOrRefused() {
        let preparation = Preparation(schema: Schema.contract)
        let bad = preparation.prepare(GraphQLRequest(query: "query($f: Int) { customers(first: $f) { totalCount } }",
                                                     variables: [("f", .string("ten"))]))
        guard case .failure(.documentRejected(let errors)) = bad else { return XCTFail("should be refused") }
        XCTAssertEqual(errors.map(\.code), [.badUserInput])
        let date = preparation.prepare(GraphQLRequest(query: "query($d: Date!) { arAging(asOf: $d, currency: \"USD\") { total } }",
                                                      variables: [("d", .string("2024-02-30"))]))
        guard case .failure(.documentRejected) = date else { return XCTFail("2024-02-30 is not a date") }
    }

    func testNothingOfAResponseOutlivesItsExecution() {
        weak var invoice: Item?
        weak var execution: Execution?
        do {
            let resolver = sample()
            invoice = resolver.root.lists["customer"]?.first?.lists["invoices"]?.first
            let preparation = Preparation(schema: Schema.contract)
            guard case .success(let (_, plan)) = preparation.prepare(GraphQLRequest(query: "{ customer(id: \"c1\") { invoices { id } } }")) else {
                return XCTFail("did not prepare")
            }
            let running = Execution(plan: plan, schema: Schema.contract, resolver: resolver)
            execution = running
            running.run { _ in }
        }
        XCTAssertNil(execution)
        XCTAssertNil(invoice)
    }
}
