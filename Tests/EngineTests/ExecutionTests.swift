@testable import Engine
import JSON
import Query
import Schema
import Synchronization
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
        if contract[type]?.isLeaf == true {
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
                     itemLimit: Int = 500_000, extensions: String = "") -> String {
        let preparation = Preparation(schema: contract)
        guard case .success(let (_, plan)) = preparation.prepare(GraphQLRequest(query: query, variables: variables)) else {
            XCTFail("did not prepare")
            return ""
        }
        return run(plan, resolver: resolver, itemLimit: itemLimit, extensions: extensions)
    }

    private func run(_ plan: OperationPlan, resolver: MemoryResolver, itemLimit: Int = 500_000, extensions: String = "") -> String {
        var output = ""
        let execution = Execution(plan: plan, schema: contract, resolver: resolver, itemLimit: itemLimit, endingRequest: [])
        execution.extensions = Array(extensions.utf8)
        execution.run { result in
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

    /// RULES.md section 5: introspection's lists are not counted toward the item limit.
    func testIntrospectionListsDoNotSpendTheItemLimit() {
        let types = "{ __schema { types { name fields { name } } } }"
        let answer = run(types, resolver: MemoryResolver(root: Item([:])), itemLimit: 1)
        XCTAssertTrue(answer.hasPrefix("{\"data\":{\"__schema\":{\"types\":[{"), answer)
        XCTAssertGreaterThan(answer.components(separatedBy: "\"name\":").count, 100)
        // A list of the data beside it still counts.
        let invoices = (1...2).map { Item(["id": .string("i\($0)")]) }
        let both = "{ __schema { types { name } } customer(id: \"c1\") { invoices { id } } }"
        let resolver = MemoryResolver(root: Item([:], lists: ["customer": [Item(["id": .string("c1")], lists: ["invoices": invoices])]]))
        XCTAssertEqual(run(both, resolver: resolver, itemLimit: 1), "QUERY_TOO_COMPLEX")
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

    /// Specification 7.1: `extensions` is the last entry of a response, after `errors`.
    func testExtensionsAreWrittenLastAndOnlyWhenThereAreSome() {
        let cost = #""cost":{"requested":2,"remaining":98}"#
        XCTAssertEqual(run("{\n  customer(id: \"boom\") { id }\n}", resolver: sample(), extensions: cost),
                       #"{"data":{"customer":null},"errors":[{"message":"bad id","locations":[{"line":2,"column":3}],"path":["customer"],"extensions":{"code":"BAD_USER_INPUT"}}],"extensions":{"cost":{"requested":2,"remaining":98}}}"#)
        XCTAssertEqual(run("{ customer(id: \"c1\") { id } }", resolver: sample(), extensions: cost),
                       #"{"data":{"customer":{"id":"c1"}},"extensions":{"cost":{"requested":2,"remaining":98}}}"#)
        XCTAssertEqual(run("{ customer(id: \"c1\") { id } }", resolver: sample()), #"{"data":{"customer":{"id":"c1"}}}"#)
        XCTAssertEqual(String(decoding: requestErrorBody([GraphQLError("no", code: .badUserInput)], extensions: Array(cost.utf8)), as: UTF8.self),
                       #"{"errors":[{"message":"no","extensions":{"code":"BAD_USER_INPUT"}}],"extensions":{"cost":{"requested":2,"remaining":98}}}"#)
    }

    /// The writer starts with room for the shape's last answer (and an eighth more), within
    /// 4 KiB and 1 MiB (64 KiB for the first); the size of each answer is kept with the
    /// shape, and whatever room the writer starts with, the answer is whole.
    func testTheWriterStartsWithRoomForTheShapesLastAnswer() {
        XCTAssertEqual(ResponseWriter.startingCapacity(after: 0), 65_536)
        XCTAssertEqual(ResponseWriter.startingCapacity(after: 500), 4096)
        XCTAssertEqual(ResponseWriter.startingCapacity(after: 300_000), 337_500)
        XCTAssertEqual(ResponseWriter.startingCapacity(after: 50_000_000), 1 << 20)
        let invoices = (0..<4_000).map { Item(["id": .string("invoice-\($0)"), "total": .int($0)]) }
        let resolver = MemoryResolver(root: Item([:], lists: ["customer": [Item(["id": .string("c1")], lists: ["invoices": invoices])]]))
        guard case .success(let (_, plan)) = Preparation(schema: contract).prepare(
            GraphQLRequest(query: "{ customer(id: \"c1\") { invoices { id total } } }", variables: [])) else { return XCTFail() }
        let first = run(plan, resolver: resolver)
        XCTAssertGreaterThan(first.utf8.count, 65_536, "the first answer had to grow")
        XCTAssertEqual(plan.shape.lastAnswerBytes.load(ordering: .relaxed), first.utf8.count)
        XCTAssertEqual(run(plan, resolver: resolver), first, "written whole into the room kept for it")
    }

    func testDepthLimitCountsFieldsOnTheLongestPath() {
        let preparation = Preparation(schema: contract, maxDepth: 3)
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
        let preparation = Preparation(schema: contract)
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
        let preparation = Preparation(schema: contract)
        let bad = preparation.prepare(GraphQLRequest(query: "query($f: Int) { customers(first: $f) { totalCount } }",
                                                     variables: [("f", .string("ten"))]))
        guard case .failure(.documentRejected(let errors)) = bad else { return XCTFail("should be refused") }
        XCTAssertEqual(errors.map(\.code), [.badUserInput])
    }

    func testNothingOfAResponseOutlivesItsExecution() {
        weak var invoice: Item?
        weak var execution: Execution?
        do {
            let resolver = sample()
            invoice = resolver.root.lists["customer"]?.first?.lists["invoices"]?.first
            let preparation = Preparation(schema: contract)
            guard case .success(let (_, plan)) = preparation.prepare(GraphQLRequest(query: "{ customer(id: \"c1\") { invoices { id } } }")) else {
                return XCTFail("did not prepare")
            }
            let running = Execution(plan: plan, schema: contract, resolver: resolver, endingRequest: [])
            execution = running
            running.run { _ in }
        }
        XCTAssertNil(execution)
        XCTAssertNil(invoice)
    }
}

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
        if contract[field.returnType.namedType]?.isLeaf == true {
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
        guard case .success(let (_, plan)) = Preparation(schema: contract).prepare(GraphQLRequest(query: query)) else {
            XCTFail("did not prepare")
            return ""
        }
        var output = ""
        Execution(plan: plan, schema: contract, resolver: resolver, itemLimit: 500_000, endingRequest: []).run { result in
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

// MARK: - A library of books: the engine knows nothing of billing

/// A schema unrelated to billing, with a custom scalar whose hooks the test gives: the
/// engine runs whatever schema, hooks and resolver it is handed.
private let librarySDL = """
    "A year of the Gregorian calendar, from the printing press on."
    scalar Year
    type Query { books(publishedAfter: Year): [Book!]! }
    type Book { title: String! year: Int! author: Author }
    type Author { name: String! }
    """

/// `Year`: a whole number from 1450 to 2100, from a variable or a literal.
private let year = ScalarCoercion(
    parseValue: { (value) throws(ScalarCoercion.Invalid) in
        guard case .number(let text) = value, let y = Int(text), (1450...2100).contains(y) else {
            throw ScalarCoercion.Invalid("Year must be a whole year from 1450 to 2100: \(value.serialized)")
        }
        return value
    },
    parseLiteral: { (value, _) throws(ScalarCoercion.Invalid) in
        guard case .int(let text) = value.kind, let y = Int(text), (1450...2100).contains(y) else {
            throw ScalarCoercion.Invalid("Year must be a whole year from 1450 to 2100, found \(ValuePrinter.print(value)).")
        }
        return .number(text)
    })

private let library = try! Schema(sdl: librarySDL, scalars: ["Year": year])

private final class Book: Node {
    let title: String, year: Int, author: String
    init(_ title: String, _ year: Int, _ author: String) { (self.title, self.year, self.author) = (title, year, author) }
}

private final class Author: Node {
    let name: String
    init(_ name: String) { self.name = name }
}

/// The library's books in memory; authors are "loaded", all parents at once, and the
/// load fails with `failure` when it is set.
private final class LibraryResolver: Resolver {
    let books = [Book("Middlemarch", 1871, "George Eliot"), Book("Orlando", 1928, "Virginia Woolf"),
                 Book("The Waves", 1931, "Virginia Woolf")]
    var failure: ErrorCode?
    var authorLoads: [Int] = []

    func resolve(_ field: PlannedField) throws(GraphQLError) -> Resolution {
        switch (field.parentType.name, field.name) {
        case ("Query", "books"):
            let after = field.argument("publishedAfter").flatMap { if case .number(let t) = $0 { Int(t) } else { nil } }
            let books = books.filter { $0.year > (after ?? Int.min) }
            return .list { _ in books }
        case ("Book", "title"): return .scalar { .string(($0 as! Book).title) }
        case ("Book", "year"): return .scalar { .int(($0 as! Book).year) }
        case ("Book", "author"): return .load(AuthorLoad(resolver: self))
        case ("Author", "name"): return .scalar { .string(($0 as! Author).name) }
        default: throw GraphQLError("No resolver for \(field.parentType.name).\(field.name).", code: .internalServerError)
        }
    }
}

private struct AuthorLoad: BatchLoad {
    unowned let resolver: LibraryResolver

    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        resolver.authorLoads.append(parents.count)
        if let code = resolver.failure { return completion(.failure(GraphQLError("The catalogue is closed.", code: code))) }
        completion(.success(parents.map { .object(Author(($0 as! Book).author)) }))
    }
}

final class LibraryExecutionTests: XCTestCase {
    private let closed = ErrorCode(rawValue: "CATALOGUE_CLOSED")

    /// The response body, or the code of the request error that replaced it.
    private func run(_ query: String, variables: [(String, JSONValue)] = [], _ resolver: LibraryResolver,
                     endingRequest: Set<ErrorCode> = []) -> String {
        let prepared = Preparation(schema: library).prepare(GraphQLRequest(query: query, variables: variables))
        guard case .success(let (_, plan)) = prepared else { return "not prepared: \(prepared)" }
        var output = ""
        Execution(plan: plan, schema: library, resolver: resolver, endingRequest: endingRequest).run { result in
            switch result {
            case .response(let bytes): output = String(decoding: bytes, as: UTF8.self)
            case .requestError(let error): output = error.code.rawValue
            }
        }
        return output
    }

    /// The messages of a refused request.
    private func refusal(_ query: String, variables: [(String, JSONValue)] = []) -> [String] {
        guard case .failure(.documentRejected(let errors)) = Preparation(schema: library)
            .prepare(GraphQLRequest(query: query, variables: variables)) else { return [] }
        return errors.map { "\($0.code): \($0.message)" }
    }

    func testBooksAndTheirAuthorsAreAnsweredWithOneLoadForAllAuthors() {
        let resolver = LibraryResolver()
        let out = run("query($y: Year) { books(publishedAfter: $y) { title year author { name } } }",
                      variables: [("y", .number("1900"))], resolver)
        XCTAssertEqual(out, #"{"data":{"books":[{"title":"Orlando","year":1928,"author":{"name":"Virginia Woolf"}},"#
                       + #"{"title":"The Waves","year":1931,"author":{"name":"Virginia Woolf"}}]}}"#)
        XCTAssertEqual(resolver.authorLoads, [2])
        XCTAssertEqual(run("{ books(publishedAfter: 1930) { title } }", LibraryResolver()),
                       #"{"data":{"books":[{"title":"The Waves"}]}}"#)
    }

    func testTheScalarHookJudgesVariablesAndLiterals() {
        XCTAssertEqual(refusal("query($y: Year) { books(publishedAfter: $y) { title } }", variables: [("y", .string("1900"))]),
                       ["BAD_USER_INPUT: Variable \"$y\" got invalid value \"1900\"; Year must be a whole year from 1450 to 2100: \"1900\""])
        XCTAssertEqual(refusal("{ books(publishedAfter: 1200) { title } }"),
                       ["GRAPHQL_VALIDATION_FAILED: Year must be a whole year from 1450 to 2100, found 1200."])
    }

    func testAFailedLoadEndsTheRequestOnlyWhenItsCodeIsOneTheCallerNamed() {
        let query = "{ books(publishedAfter: 1900) { title author { name } } }"
        let ending = LibraryResolver()
        ending.failure = closed
        XCTAssertEqual(run(query, ending, endingRequest: [closed]), "CATALOGUE_CLOSED")

        let fieldOnly = LibraryResolver()
        fieldOnly.failure = closed
        let error = { (i: Int) in
            #"{"message":"The catalogue is closed.","locations":[{"line":1,"column":39}],"path":["books",\#(i),"author"],"extensions":{"code":"CATALOGUE_CLOSED"}}"#
        }
        XCTAssertEqual(run(query, fieldOnly, endingRequest: [ErrorCode(rawValue: "SOMETHING_ELSE")]),
                       #"{"data":{"books":[{"title":"Orlando","author":null},{"title":"The Waves","author":null}]},"errors":["#
                       + error(0) + "," + error(1) + "]}")
    }
}
