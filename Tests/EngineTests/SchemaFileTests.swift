import Foundation
import Schema
import XCTest

/// The binary embeds schema/schema.graphql; the two must never drift apart.
final class SchemaFileTests: XCTestCase {
    func testEmbeddedSchemaIsTheSchemaFile() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../schema/schema.graphql")
        let file = try String(contentsOf: url, encoding: .utf8)
        XCTAssertEqual(contractSDL + "\n", file, "run scripts/embed-schema")
    }

    func testContractSchemaBuilds() {
        let schema = Schema.contract
        XCTAssertEqual(schema.queryType, "Query")
        XCTAssertEqual(schema.mutationType, "Mutation")
        XCTAssertNotNil(schema["CreditNote"]?.fieldsByName["refunds"])
        XCTAssertNotNil(schema["__Schema"])
    }
}
