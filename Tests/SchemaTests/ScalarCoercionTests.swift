import JSON
import Query
import Schema
import XCTest

/// Custom scalars are known to the schema only by the hooks their owner hands it
/// (`ScalarCoercion`), as graphql-js's `GraphQLScalarType`; here a library's `ISBN`.
final class ScalarCoercionTests: XCTestCase {
    /// ISBN-13: thirteen digits whose weighted sum (1, 3, 1, 3, ...) is a multiple of ten.
    private static func isISBN(_ text: String) -> Bool {
        let digits = text.compactMap(\.wholeNumberValue)
        guard digits.count == 13, text.count == 13 else { return false }
        return digits.enumerated().reduce(0) { $0 + $1.element * ($1.offset % 2 == 0 ? 1 : 3) } % 10 == 0
    }

    private static let isbn = ScalarCoercion(
        parseValue: { (value) throws(ScalarCoercion.Invalid) in
            guard let text = value.stringValue, isISBN(text) else { throw ScalarCoercion.Invalid("not an ISBN-13: \(value.serialized)") }
            return value
        },
        parseLiteral: { (value, _) throws(ScalarCoercion.Invalid) in
            guard case .string(let text, _) = value.kind, isISBN(text) else {
                throw ScalarCoercion.Invalid("Expected an ISBN-13, found \(ValuePrinter.print(value)).")
            }
            return .string(text)
        })

    private static let sdl = """
        scalar ISBN
        scalar Shelf
        type Query { book(isbn: ISBN!): Book, shelved(on: Shelf): [Book!]! }
        type Book { isbn: ISBN! title: String! }
        """
    private let library = try! Schema(sdl: sdl, scalars: ["ISBN": isbn])

    private func variables(_ text: String, _ values: [(String, JSONValue)]) throws(CoercionError) -> [String: JSONValue] {
        guard case .operation(let operation) = try! Parser.parse(text).definitions[0] else { fatalError("not an operation") }
        return try InputCoercion(schema: library).coerceVariables(operation.variables, values: values)
    }

    private func validationErrors(_ text: String) -> [String] {
        Validator.validate(try! Parser.parse(text), schema: library).map(\.message)
    }

    func testAVariableIsReadByItsHook() throws {
        let query = "query($i: ISBN!) { book(isbn: $i) { title } }"
        XCTAssertEqual(try variables(query, [("i", .string("9780306406157"))]), ["i": .string("9780306406157")])
        XCTAssertThrowsError(try variables(query, [("i", .string("9780306406158"))])) { error in
            XCTAssertEqual((error as? CoercionError)?.message,
                           "Variable \"$i\" got invalid value \"9780306406158\"; not an ISBN-13: \"9780306406158\"")
        }
    }

    func testALiteralIsReadByItsHookWhoseMessageIsTheValidationError() {
        XCTAssertEqual(validationErrors("{ book(isbn: \"9780262033848\") { title } }"), [])
        XCTAssertEqual(validationErrors("{ book(isbn: \"978026203384\") { title } }"),
                       ["Expected an ISBN-13, found \"978026203384\"."])
        XCTAssertEqual(validationErrors("{ book(isbn: 9780262033848) { title } }"), ["Expected an ISBN-13, found 9780262033848."])
    }

    /// graphql-js's defaults for a scalar declared without hooks: a variable as it came, a
    /// literal as untyped JSON.
    func testAScalarWithoutHooksTakesWhateverItIsGiven() throws {
        let anything: JSONValue = .object([("room", .number("3")), ("tags", .array([.bool(true), .null]))])
        XCTAssertEqual(try variables("query($s: Shelf) { shelved(on: $s) { title } }", [("s", anything)]), ["s": anything])
        let literal = try! Parser.parse("{ shelved(on: {room: 3, side: LEFT, tags: [\"a\", 1.5]}) { title } }")
        guard case .operation(let operation) = literal.definitions[0], case .field(let shelved) = operation.selectionSet.selections[0] else {
            return XCTFail("not a field")
        }
        XCTAssertEqual(try InputCoercion(schema: library).literal(shelved.arguments[0].value, .named("Shelf", shelved.location), variables: [:]),
                       .object([("room", .number("3")), ("side", .string("LEFT")), ("tags", .array([.string("a"), .number("1.5")]))]))
    }
}
