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
