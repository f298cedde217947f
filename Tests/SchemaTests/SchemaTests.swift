import JSON
import Query
import Schema
import XCTest

final class SchemaTests: XCTestCase {
    private let sdl = "scalar Year type Query { published(after: Year): [String!]! }"

    func testTheContractSchemaBuildsWithItsRootsAndIntrospectionTypes() {
        XCTAssertEqual(contract.queryType, "Query")
        XCTAssertEqual(contract.mutationType, "Mutation")
        XCTAssertNotNil(contract["CreditNote"]?.fieldsByName["refunds"])
        XCTAssertNotNil(contract["__Schema"])
    }

    /// An `ID` takes any integer (GraphQL's ID input coercion) as graphql-core reads a JSON
    /// number: an integer's own digits, whatever its size; a whole double's digits; never a
    /// fraction. Expected digits from Python's `str(int(json.loads(text)))`.
    func testAnIDVariableTakesAnyIntegerAsItsDigits() throws {
        guard case .operation(let operation) = try Parser.parse("query($v: ID!) { customer(id: $v) { id } }").definitions[0] else {
            return XCTFail("not an operation")
        }
        let coercion = InputCoercion(schema: contract)
        let integers = ["12": "12", "-0": "0", "1e20": "100000000000000000000", "1.50e2": "150", "9223372036854775808": "9223372036854775808",
                        "-2.5E+1": "-25", "0.0e-7": "0", "100e-2": "1", "2.0": "2", "1e-400": "0", "1.0000000000000001": "1",
                        // Python: str(int(1e25)), str(int(-2**70 * 1.0)): the double's own digits
                        "1e25": "10000000000000000905969664", "-1.180591620717411303424e21": "-1180591620717411303424"]
        for (number, digits) in integers {
            XCTAssertEqual(try coercion.coerceVariables(operation.variables, values: [("v", .number(number))]), ["v": .string(digits)], number)
        }
        for number in ["1.5", "15e-1", "1e-1", "2e308", "1" + String(repeating: "0", count: 400) + ".0"] {
            XCTAssertThrowsError(try coercion.coerceVariables(operation.variables, values: [("v", .number(number))]), number)
        }
    }

    /// A hook for a name that is no custom scalar of the schema would leave the scalar it
    /// was meant for unchecked: the build refuses it, and names it.
    func testHooksForAnythingButACustomScalarOfTheSchemaStopTheBuild() {
        XCTAssertNoThrow(try Schema(sdl: sdl, scalars: ["Year": ScalarCoercion()]))
        for name in ["Yaer", "String", "Query"] {
            XCTAssertThrowsError(try Schema(sdl: sdl, scalars: [name: ScalarCoercion()])) { error in
                guard case Schema.BuildError.invalid(let message) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(message, "coercion hooks are given for \(name), which is not a custom scalar of the schema")
            }
        }
    }
}
