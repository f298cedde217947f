import Billing
import Foundation
import Query
import Schema
import XCTest

/// The binary embeds schema/schema.graphql; the two must never drift apart.
final class ContractSDLTests: XCTestCase {
    private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")

    func testEmbeddedSchemaIsTheSchemaFile() throws {
        let file = try String(contentsOf: repository.appendingPathComponent("schema/schema.graphql"), encoding: .utf8)
        XCTAssertEqual(contractSDL + "\n", file, "run scripts/embed-schema")
    }

    func testContractSchemaBuildsWithTheHooksOfItsScalars() {
        let schema = Schema.contract
        XCTAssertEqual(schema.queryType, "Query")
        XCTAssertEqual(schema.mutationType, "Mutation")
        XCTAssertEqual(["Date", "DateTime", "JSON"].map { schema[$0]?.kind }, [.scalar, .scalar, .scalar])
    }

    func testTheCanonicalQueriesAreValid() throws {
        for name in ["dashboard", "invoice_detail", "invoices_page", "refund", "credit_note"] {
            let text = try String(contentsOf: repository.appendingPathComponent("schema/queries/\(name).graphql"), encoding: .utf8)
            XCTAssertEqual(Validator.validate(try Parser.parse(text), schema: Schema.contract).map(\.message), [], name)
        }
    }
}
