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

    /// An `ID` takes any integer (GraphQL's ID input coercion), as graphql-js and
    /// graphql-core read a JSON number: its digits, whatever its size or form; never a fraction.
    func testAnIDVariableTakesAnyIntegerAsItsDigits() throws {
        guard case .operation(let operation) = try Parser.parse("query($v: ID!) { customer(id: $v) { id } }").definitions[0] else {
            return XCTFail("not an operation")
        }
        let coercion = InputCoercion(schema: contract)
        let integers = ["12": "12", "-0": "0", "1e20": "100000000000000000000", "1.50e2": "150", "9223372036854775808": "9223372036854775808",
                        "-2.5E+1": "-25", "0.0e-7": "0", "100e-2": "1"]
        for (number, digits) in integers {
            XCTAssertEqual(try coercion.coerceVariables(operation.variables, values: [("v", .number(number))]), ["v": .string(digits)], number)
        }
        for number in ["1.5", "15e-1", "1e-1", "1e309", "1e99999999999999999999", "0.1e1000000"] {
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
