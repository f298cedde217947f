@testable import Billing
import Engine
import Schema
import XCTest

final class TablesTests: XCTestCase {
    /// Loads by id and per-parent lists name their own list of keys `k`; a table with that
    /// alias would compare its rows with themselves (the audit trail's first version did).
    func testTableAliasesAreDistinctAndNeverTheLoadersOwn() {
        let tables = [Tables.customer, Tables.invoice, Tables.payment, Tables.application, Tables.refund, Tables.creditNote, Tables.apiKey]
        XCTAssertEqual(Set(tables.map(\.alias)).count, tables.count)
        XCTAssertFalse(tables.contains { $0.alias == "k" || $0.alias == "x" })
    }

    private func rootField(_ query: String) -> PlannedField {
        guard case .success(let (_, plan)) = Preparation(schema: Schema.contract).prepare(GraphQLRequest(query: query)) else {
            fatalError("the query does not prepare")
        }
        return plan.fields[0]
    }

    func testALoadReadsOnlyTheColumnsItsFieldsNeed() {
        let field = rootField("{ customers { edges { cursor node { email } } nodes { name totals { paid } invoices { id } } } }")
        let columns = Columns.needed(Tables.customer, by: field)
        for wanted in ["c.id", "c.name", "c.email", "c.total_paid"] {
            XCTAssertTrue(columns.selectList.contains(wanted), wanted)
        }
        for unwanted in ["c.currency", "c.total_invoiced", "c.credit_balance", "c.external_id"] {
            XCTAssertFalse(columns.selectList.contains(unwanted), unwanted)
        }
    }

    /// A page's cursors carry the sort key: read once, as the field's own column when the
    /// page shows it, or appended when it does not.
    func testAPageReadsItsSortKeyOnce() {
        let shown = Columns.needed(Tables.invoice, by: rootField("{ invoices { nodes { id issuedOn } } }"), sortKey: true)
        XCTAssertEqual(shown.selectList, "i.id, i.issued_on")
        XCTAssertEqual(shown.sortKeyPosition, shown.position[Tables.invoice.column("issuedOn")])
        XCTAssertEqual(shown.sortKeyPosition, 1)

        let hidden = Columns.needed(Tables.invoice, by: rootField("{ invoices { nodes { id number } } }"), sortKey: true)
        XCTAssertEqual(hidden.selectList, "i.id, i.number, i.issued_on")
        XCTAssertEqual(hidden.sortKeyPosition, 2)
        XCTAssertEqual(hidden.position[Tables.invoice.column("issuedOn")], -1)

        let unpaged = Columns.needed(Tables.invoice, by: rootField("{ invoices { nodes { id } } }"))
        XCTAssertEqual(unpaged.sortKeyPosition, -1)
        XCTAssertFalse(unpaged.selectList.contains("i.issued_on"))
    }

    func testRelationsAddTheKeysTheyFollow() {
        let field = rootField("{ invoice(id: \"x\") { customer { id } } }")
        let columns = Columns.needed(Tables.invoice, by: field)
        XCTAssertTrue(columns.selectList.contains("i.customer_id"))
        XCTAssertFalse(columns.selectList.contains("i.number"))
    }
}
