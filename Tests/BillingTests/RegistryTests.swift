@testable import Billing
import Engine
import Schema
import XCTest

final class RegistryTests: XCTestCase {
    private func fieldNames(_ type: ObjectType) -> [String] { Registry.contract.entry(type)?.fields.map(\.name) ?? [] }

    /// A row type's fields are its table's columns of that type, then its relations: no
    /// key (`customerId`) and no column of the other type on the same row (the totals).
    func testRowTypesTakeTheColumnsOfTheirTypeAndNoKeys() {
        XCTAssertEqual(fieldNames(.customer), ["id", "externalId", "name", "email", "currency", "createdAt", "creditBalance",
                                               "invoices", "payments", "creditNotes", "totals"])
        XCTAssertEqual(fieldNames(.customerTotals), ["invoiced", "paid", "refunded", "credited", "outstanding"])
        XCTAssertEqual(fieldNames(.paymentApplication), ["amount", "payment", "invoice"])
        XCTAssertEqual(fieldNames(.apiKeyRef), ["id", "label"])
    }

    /// A report's figures are its statement's select list, in order; text is a string.
    func testReportFiguresAreTheirPlacesInTheSelectList() {
        let figures = Registry.contract.entry(.agingReport)?.fields.compactMap { name, resolver -> String? in
            guard case .figure(let column, let kind) = resolver else { return nil }
            return "\(column) \(name) \(kind)"
        }
        XCTAssertEqual(figures, ["0 asOf string", "1 currency string", "2 current raw", "3 days1To30 raw", "4 days31To60 raw",
                                 "5 days61To90 raw", "6 over90 raw", "7 total raw"])
        XCTAssertEqual(fieldNames(.monthSummary), ["month", "invoiced", "received", "refunded", "credited"])
    }

    /// A planned field is found by its parent type and its name, `__typename` is not.
    func testAPlannedFieldFindsItsResolver() {
        guard case .success(let (_, plan)) = Preparation(schema: Schema.contract).prepare(GraphQLRequest(
            query: "{ customers { __typename totalCount nodes { email totals { paid } invoices(status: [OPEN]) { id } } } }")) else {
            return XCTFail("the query does not prepare")
        }
        let customers = plan.fields[0]
        guard case .connection(let connection)? = Registry.contract.resolver(of: customers) else { return XCTFail("customers") }
        XCTAssertEqual(connection.table.type, .customer)
        XCTAssertEqual(connection.filters.map(\.argument), ["email", "externalId", "currency", "nameContains"])
        XCTAssertNil(Registry.contract.resolver(of: customers.children[0]))  // __typename
        guard case .connectionPart(.totalCount)? = Registry.contract.resolver(of: customers.children[1]) else {
            return XCTFail("totalCount")
        }
        let node = customers.children[2].children
        guard case .column(let email, auditTrail: false)? = Registry.contract.resolver(of: node[0]) else { return XCTFail("email") }
        XCTAssertEqual(Tables.customer.columns[email].sql, "c.email")
        guard case .sameRow(.customerTotals)? = Registry.contract.resolver(of: node[1]),
              case .column(let paid, auditTrail: false)? = Registry.contract.resolver(of: node[1].children[0]) else { return XCTFail("totals") }
        XCTAssertEqual(Tables.customer.columns[paid].sql, "c.total_paid")
        guard case .list(let query, "id", let filters)? = Registry.contract.resolver(of: node[2]) else {
            return XCTFail("invoices")
        }
        XCTAssertEqual(query.table.type, .invoice)
        XCTAssertEqual(filters.map(\.argument), ["issuedFrom", "issuedTo", "status"])
    }
}
