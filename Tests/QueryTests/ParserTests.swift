import Foundation
import Query
import XCTest

final class ParserTests: XCTestCase {
    private func syntaxError(_ source: String) -> GraphQLSyntaxError? {
        do {
            _ = try Parser.parse(source)
            return nil
        } catch {
            return error
        }
    }

    func testParsesTheCanonicalShapes() throws {
        let doc = try Parser.parse("""
            query Dashboard($first: Int = 25, $after: String) {
              customers(first: $first, after: $after) { pageInfo { hasNextPage } nodes { id ...F } }
            }
            fragment F on Customer { name invoices(first: 10, order: NEWEST_FIRST) { id } }
            """)
        XCTAssertEqual(doc.definitions.count, 2)
        guard case .operation(let op) = doc.definitions[0] else { return XCTFail("expected an operation") }
        XCTAssertEqual(op.name?.value, "Dashboard")
        XCTAssertEqual(op.variables.map(\.name.value), ["first", "after"])
        XCTAssertEqual(op.variables[0].type.description, "Int")
        guard case .int("25")? = op.variables[0].defaultValue?.kind else { return XCTFail("default 25") }
    }

    func testErrorsReadLikeGraphQLJSWithLineAndColumn() {
        let e = syntaxError("{ customers { } }")
        XCTAssertEqual(e?.message, "Syntax Error: Expected Name, found \"}\".")
        XCTAssertEqual(e?.location, SourceLocation(line: 1, column: 15))

        let unterminated = syntaxError("{\n  a(x: \"abc\n}")
        XCTAssertEqual(unterminated?.message, "Syntax Error: Unterminated string.")
        XCTAssertEqual(unterminated?.location, SourceLocation(line: 2, column: 12))

        XCTAssertEqual(syntaxError("{ a(x: 01) }")?.message, "Syntax Error: Invalid number, unexpected digit after 0: \"1\".")
        XCTAssertEqual(syntaxError("{ a }}")?.message, "Syntax Error: Unexpected \"}\".")
        XCTAssertEqual(syntaxError("query")?.message, "Syntax Error: Expected \"{\", found <EOF>.")
        XCTAssertEqual(syntaxError("{ a(x: $v) }") == nil, true)
        XCTAssertEqual(syntaxError("query($v: Int = $w) { a }")?.message, "Syntax Error: Unexpected variable \"$w\" in constant value.")
        XCTAssertEqual(syntaxError("fragment on on T { a }")?.message, "Syntax Error: Unexpected Name \"on\".")
    }

    func testStringsAndEscapes() throws {
        let source = #"{ a(s: "\u{1F600} \uD83D\uDE00 \n\t\"", b: "#
            + "\"\"\"  x\n    y\n  \"\"\") }"
        let doc = try Parser.parse(source)
        guard case .operation(let op) = doc.definitions[0], case .field(let f) = op.selectionSet.selections[0] else {
            return XCTFail("expected a field")
        }
        guard case .string(let s, false) = f.arguments[0].value.kind else { return XCTFail("string") }
        XCTAssertEqual(s, "😀 😀 \n\t\"")
        guard case .string(let block, true) = f.arguments[1].value.kind else { return XCTFail("block string") }
        XCTAssertEqual(block, "  x\ny")
        XCTAssertEqual(syntaxError(#"{ a(s: "\uD83D") }"#)?.message, "Syntax Error: Invalid Unicode escape sequence: \"\\uD83D\".")
    }

    func testBlockStringIndentationRules() throws {
        let doc = try Parser.parse("{ a(s: \"\"\"\n    hello\n      world\n\n    \"\"\") }")
        guard case .operation(let op) = doc.definitions[0], case .field(let f) = op.selectionSet.selections[0],
              case .string(let s, _) = f.arguments[0].value.kind else { return XCTFail("block string") }
        XCTAssertEqual(s, "hello\n  world")
    }

    func testTokenAndDepthLimitsStopAbusiveDocuments() {
        let many = "{ " + String(repeating: "a ", count: 100) + "}"
        XCTAssertNotNil(try? Parser.parse(many, limits: ParserLimits(maxTokens: 200, maxDepth: 10)))
        XCTAssertThrowsError(try Parser.parse(many, limits: ParserLimits(maxTokens: 50, maxDepth: 10)))
        let deep = String(repeating: "{ a ", count: 100) + String(repeating: "}", count: 100)
        XCTAssertThrowsError(try Parser.parse(deep, limits: ParserLimits(maxTokens: 10_000, maxDepth: 64)))
    }

    func testTypeSystemDefinitionsParse() throws {
        let doc = try Parser.parse("""
            "A type" type T implements A & B @d { "f" f(a: Int = 1): [String!]! @deprecated(reason: "x") }
            enum E { A B }  input I { x: Int! = 2 }  union U = | A | B  scalar S  directive @d on FIELD | OBJECT
            extend type T { g: Int }
            """)
        XCTAssertEqual(doc.definitions.count, 7)
    }
}
