@testable import Engine
import JSON
import XCTest

/// A document's operations are planned once (`PlanShape`) and each request binds its own
/// arguments to the shape: these tests check that the arguments are never the previous
/// request's, that `@skip`/`@include` variables choose their own shape, and that what is
/// kept stays bounded.
final class PlanShapesTests: XCTestCase {
    private let preparation = Preparation(schema: contract)

    private func plan(_ valid: Preparation.ValidDocument, _ variables: [(String, JSONValue)],
                      file: StaticString = #filePath, line: UInt = #line) throws -> OperationPlan {
        let operation = try preparation.operation(in: valid, named: nil).get()
        return try preparation.plan(operation, in: valid, variables: variables).get()
    }

    private func fieldNames(_ fields: [PlannedField]) -> [String] {
        fields.flatMap { [$0.responseKey] + fieldNames($0.children) }
    }

    func testEachRequestBindsItsOwnArgumentsToOneShape() throws {
        let valid = try preparation.validDocument(
            "query Page($first: Int, $after: String) { customers(first: $first, after: $after) { nodes { id name } } }").get()
        let five = try plan(valid, [("first", .number("5")), ("after", .string("a"))])
        let seven = try plan(valid, [("first", .number("7"))])
        let given = try plan(valid, [])
        XCTAssert(five.fields[0].shape === seven.fields[0].shape, "the second request reuses the first one's shape")
        XCTAssertEqual(five.fields[0].argument("first"), .number("5"))
        XCTAssertEqual(five.fields[0].argument("after"), .string("a"))
        XCTAssertEqual(seven.fields[0].argument("first"), .number("7"))
        XCTAssertNil(seven.fields[0].argument("after"), "not the previous request's cursor")
        XCTAssertEqual(given.fields[0].argument("first"), .number("50"), "the default, not the previous request's value")
        XCTAssertEqual(fieldNames(seven.fields), ["customers", "nodes", "id", "name"])

        // What is derived from a field's selections is kept with its shape, one value per type.
        final class Derived: Sendable {}
        let first = five.fields[0].derived { Derived() }
        XCTAssert(seven.fields[0].derived { Derived() } === first)
        XCTAssert(five.fields[0].children[0].derived { Derived() } !== first)
    }

    /// A field whose arguments, and whose children's, read no variable binds the same for
    /// every request and is shared; one that reads a variable, or has a child that does,
    /// is bound anew, so a nested variable is never the previous request's.
    func testFieldsThatReadNoVariableAreBoundOnce() throws {
        let valid = try preparation.validDocument("""
            query Q($first: Int, $n: Int) {
              customers(first: $first) { nodes { id invoices(first: 3) { id } } }
              payments(first: 2) { nodes { id refunds(first: $n) { id } } }
              invoices(first: 4) { nodes { id } }
            }
            """).get()
        let one = try plan(valid, [("first", .number("5")), ("n", .number("1"))])
        let two = try plan(valid, [("first", .number("6")), ("n", .number("2"))])
        func field(_ plan: OperationPlan, _ path: [Int]) -> PlannedField {
            path.dropFirst().reduce(plan.fields[path[0]]) { $0.children[$1] }
        }
        // customers reads $first: bound per request; below it, nodes reads none.
        XCTAssert(field(one, [0]) !== field(two, [0]))
        XCTAssertEqual(field(two, [0]).argument("first"), .number("6"))
        XCTAssert(field(one, [0, 0]) === field(two, [0, 0]))
        XCTAssertEqual(field(two, [0, 0, 1]).argument("first"), .number("3"))
        // payments reads no variable itself, but refunds below it reads $n: the path down is bound anew.
        for path in [[1], [1, 0], [1, 0, 1]] { XCTAssert(field(one, path) !== field(two, path), "\(path)") }
        XCTAssertEqual(field(one, [1, 0, 1]).argument("first"), .number("1"))
        XCTAssertEqual(field(two, [1, 0, 1]).argument("first"), .number("2"))
        XCTAssert(field(one, [1, 0, 0]) === field(two, [1, 0, 0]))
        // invoices reads none anywhere: the whole field is shared.
        XCTAssert(field(one, [2]) === field(two, [2]))
        XCTAssertEqual(field(two, [2]).argument("first"), .number("4"))
    }

    func testSkipAndIncludeVariablesChooseTheirOwnShape() throws {
        let valid = try preparation.validDocument(
            "query Q($with: Boolean!) { customers(first: 1) { nodes { id name @include(if: $with) email @skip(if: $with) } } }").get()
        let with = try plan(valid, [("with", .bool(true))])
        let without = try plan(valid, [("with", .bool(false))])
        XCTAssertEqual(fieldNames(with.fields), ["customers", "nodes", "id", "name"])
        XCTAssertEqual(fieldNames(without.fields), ["customers", "nodes", "id", "email"])
        XCTAssertEqual(fieldNames(try plan(valid, [("with", .bool(true))]).fields), ["customers", "nodes", "id", "name"])
        XCTAssert(try plan(valid, [("with", .bool(false))]).fields[0].shape === without.fields[0].shape)
        XCTAssert(with.fields[0].shape !== without.fields[0].shape)
    }

    /// Only the variables `@skip`/`@include` read choose the shape: a Boolean filter
    /// shares one shape whatever its value, and each request still gets its own value.
    func testOtherBooleanVariablesShareOneShape() throws {
        let valid = try preparation.validDocument("""
            query Q($refunded: Boolean, $withId: Boolean = true) {
              payments(first: 2, filter: { hasRefunds: $refunded }) { nodes { id @include(if: $withId) amount } }
            }
            """).get()
        let refunded = try plan(valid, [("refunded", .bool(true))])
        let notRefunded = try plan(valid, [("refunded", .bool(false)), ("withId", .bool(true))])
        let withoutId = try plan(valid, [("refunded", .bool(false)), ("withId", .bool(false))])
        XCTAssert(refunded.fields[0].shape === notRefunded.fields[0].shape, "the default true of withId, given or not")
        XCTAssert(withoutId.fields[0].shape !== refunded.fields[0].shape)
        XCTAssertEqual(refunded.fields[0].argument("filter"), .object([("hasRefunds", .bool(true))]))
        XCTAssertEqual(notRefunded.fields[0].argument("filter"), .object([("hasRefunds", .bool(false))]))
        XCTAssertEqual(fieldNames(withoutId.fields), ["payments", "nodes", "amount"])
    }

    /// At most `maxShapes` per document: sixteen combinations of four flags keep the first eight.
    func testShapesKeptPerDocumentAreBounded() throws {
        let valid = try preparation.validDocument("""
            query Q($a: Boolean!, $b: Boolean!, $c: Boolean!, $d: Boolean!) {
              a: __typename @include(if: $a) b: __typename @include(if: $b) c: __typename @include(if: $c) d: __typename @include(if: $d)
            }
            """).get()
        func flags(_ n: Int) -> [(String, JSONValue)] { ["a", "b", "c", "d"].enumerated().map { ($1, .bool(n >> $0 & 1 == 1)) } }
        let firstTime = try (0..<16).map { try plan(valid, flags($0)) }
        let again = try (0..<16).map { try plan(valid, flags($0)) }
        for n in 0..<16 {
            XCTAssertEqual(fieldNames(again[n].fields), ["a", "b", "c", "d"].enumerated().filter { n >> $0.offset & 1 == 1 }.map(\.element))
            guard let kept = firstTime[n].fields.first?.shape, let now = again[n].fields.first?.shape else { continue }
            XCTAssertEqual(kept === now, n < PlanShapes.maxShapes, "combination \(n)")
        }
    }

    /// The shapes of a document hold together at most one planned field per token: of
    /// four operations of 50 fields each, in a document of about 180 tokens, three are kept.
    func testFieldsKeptPerDocumentAreBounded() throws {
        let fields = (1...50).map { "f\($0): __typename" }.joined(separator: " ")
        let valid = try preparation.validDocument(
            ["A", "B", "C", "D"].map { "query \($0) { ...F }" }.joined(separator: "\n") + "\nfragment F on Query { \(fields) }").get()
        func plan(_ name: String) throws -> OperationPlan {
            let operation = try preparation.operation(in: valid, named: name).get()
            return try preparation.plan(operation, in: valid, variables: []).get()
        }
        let firstTime = try ["A", "B", "C", "D"].map(plan)
        let again = try ["A", "B", "C", "D"].map(plan)
        XCTAssertLessThan(3 * 50, valid.document.tokenCount)
        XCTAssertGreaterThan(4 * 50, valid.document.tokenCount)
        XCTAssertEqual(zip(firstTime, again).map { $0.fields[0].shape === $1.fields[0].shape }, [true, true, true, false])
        XCTAssertEqual(again[3].fields.count, 50)
    }

    /// A document whose fragments expand to more fields than it has tokens is planned anew
    /// each time, so that the document cache's charge (by tokens) bounds what it holds.
    func testDocumentsThatExpandAreNotKept() throws {
        let customers = (1...30).map { "c\($0): customer { ...C }" }.joined(separator: " ")
        let fields = (1...20).map { "f\($0): id" }.joined(separator: " ")
        let text = "{ invoice(id: \"00000000-0000-0000-0000-000000000000\") { \(customers) } }\nfragment C on Customer { \(fields) }"
        let valid = try preparation.validDocument(text).get()
        let first = try plan(valid, []), second = try plan(valid, [])
        XCTAssertGreaterThan(first.fieldCount, valid.document.tokenCount)
        XCTAssert(first.fields[0].shape !== second.fields[0].shape)
        XCTAssertEqual(fieldNames(first.fields), fieldNames(second.fields))
    }
}
