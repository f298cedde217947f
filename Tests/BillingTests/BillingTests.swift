@testable import Billing
import Engine
import JSON
import Schema
@testable import Store
import Foundation
import XCTest

final class CursorTests: XCTestCase {
    func testCursorsRoundTripAndRefuseAnythingElse() {
        let cursor = Cursor(connection: "invoices", order: "OLDEST_FIRST", filterFingerprint: "abc",
                            sortKey: "2024-01-31", id: "0b7a3c9e-1111-4111-8111-222222222222")
        XCTAssertEqual(Cursor.decode(cursor.encoded), cursor)
        XCTAssertNil(Cursor.decode("not a cursor!"))
        XCTAssertNil(Cursor.decode(Base64URL.encode(Array("v2|a|b|c|d|e".utf8))))
        XCTAssertNil(Cursor.decode(cursor.encoded + "A"))
    }

    func testBase64URLIsCanonical() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "ü|€"] {
            let encoded = Base64URL.encode(Array(text.utf8))
            XCTAssertFalse(encoded.contains("=") || encoded.contains("+") || encoded.contains("/"))
            XCTAssertEqual(Base64URL.decode(encoded), Array(text.utf8))
        }
        XCTAssertNil(Base64URL.decode("Zm9v="))
        XCTAssertNil(Base64URL.decode("Zh"))  // non-canonical trailing bits
    }

    func testFilterFingerprintIgnoresKeyOrder() {
        let a = JSONValue.object([("currency", .string("USD")), ("status", .array([.string("OPEN")]))])
        let b = JSONValue.object([("status", .array([.string("OPEN")])), ("currency", .string("USD"))])
        XCTAssertEqual(Cursor.fingerprint(a), Cursor.fingerprint(b))
        XCTAssertNotEqual(Cursor.fingerprint(a), Cursor.fingerprint(nil))
    }
}

final class MutationInputTests: XCTestCase {
    func testFingerprintTreatsAbsentAndNullAlikeAndLeavesTheKeyOut() {
        let a = MutationService.fingerprint([("paymentId", .string("p")), ("amount", .number("5")), ("idempotencyKey", .string("k1"))])
        let b = MutationService.fingerprint([("amount", .number("5")), ("mode", .null), ("paymentId", .string("p"))])
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, MutationService.fingerprint([("paymentId", .string("p")), ("amount", .number("6"))]))
    }

    func testRuleMessagesBecomeContractErrors() {
        let error = DatabaseError.server(sqlState: "P0001", message: "AMOUNT_EXCEEDS_REFUNDABLE|Too much.", detail: nil, constraint: nil)
        let mapped = MutationLoad.ruleBroken(error)
        XCTAssertEqual(mapped?.code, .amountExceedsRefundable)
        XCTAssertEqual(mapped?.message, "Too much.")
        XCTAssertNil(MutationLoad.ruleBroken(.server(sqlState: "23505", message: "duplicate", detail: nil, constraint: nil)))
    }
}

final class DatasetTests: XCTestCase {
    func testCopyTextEscapesWhatCopyWouldMisread() {
        var buffer = CopyBuffer(table: "t", columns: ["a", "b"])
        buffer.append(["tab\there\nnew\\line", nil])
        XCTAssertEqual(String(decoding: buffer.bytes, as: UTF8.self), "tab\\there\\nnew\\\\line\t\\N\n")
    }

    func testTheSeederIsDeterministic() {
        func lines(seed: UInt64) -> [String] {
            var options = Seeder.Options()
            options.customers = 20
            options.seed = seed
            var seeder = Seeder(options)
            var out: [String] = []
            seeder.generate(emit: { out.append($0.serialized) }, key: { _ in })
            return out
        }
        XCTAssertEqual(lines(seed: 3), lines(seed: 3))
        XCTAssertNotEqual(lines(seed: 3), lines(seed: 4))
        XCTAssertGreaterThan(lines(seed: 3).count, 100)
    }

    func testCalendarArithmetic() {
        XCTAssertEqual(Day(year: 2024, month: 2, day: 28).adding(1).text, "2024-02-29")
        XCTAssertEqual(Day(year: 2023, month: 2, day: 28).adding(1).text, "2023-03-01")
        XCTAssertEqual(Day(year: 2023, month: 12, day: 31).adding(1).text, "2024-01-01")
        XCTAssertEqual(Day(year: 1970, month: 1, day: 1).ordinal, 0)
    }
}

final class ColumnTests: XCTestCase {
    /// Loads by id and per-parent lists name their own list of keys `k`; a table with that
    /// alias would compare its rows with themselves (the audit trail's first version did).
    func testTableAliasesAreDistinctAndNeverTheLoadersOwn() {
        let tables = ["Customer", "Invoice", "Payment", "PaymentApplication", "Refund", "CreditNote", "ApiKeyRef"]
            .compactMap(Tables.table(for:))
        XCTAssertEqual(tables.count, 7)
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
        for wanted in ["c.id::text", "c.name", "c.email", "c.total_paid"] {
            XCTAssertTrue(columns.selectList.contains(wanted), wanted)
        }
        for unwanted in ["c.currency", "c.total_invoiced", "c.credit_balance", "c.external_id"] {
            XCTAssertFalse(columns.selectList.contains(unwanted), unwanted)
        }
    }

    func testRelationsAddTheKeysTheyFollow() {
        let field = rootField("{ invoice(id: \"x\") { customer { id } } }")
        let columns = Columns.needed(Tables.invoice, by: field)
        XCTAssertTrue(columns.selectList.contains("i.customer_id::text"))
        XCTAssertFalse(columns.selectList.contains("i.number"))
    }
}

/// The binary embeds schema/migrations/*.sql; the two must never drift apart.
final class MigrationFileTests: XCTestCase {
    func testEmbeddedMigrationsAreTheMigrationFiles() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../schema/migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        XCTAssertEqual(billingMigrations.map { $0.name + ".sql" }, files, "run scripts/embed-schema")
        for (migration, file) in zip(billingMigrations, files) {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            XCTAssertEqual(migration.sql + "\n", text, "\(file) differs from its embedded copy: run scripts/embed-schema")
            XCTAssertEqual(migration.version, Int(file.prefix(while: \.isNumber)))
        }
    }
}

final class ConnectionTargetTests: XCTestCase {
    func testHostNamesAreResolvedOnceAndEverythingElseKept() {
        let resolved = ConnectionTarget.resolvingHost("postgresql://me@localhost:5433/billing?application_name=a%20b")
        let options = Dictionary(ConnectionTarget.parse(resolved) ?? [], uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(options["host"], "localhost")
        XCTAssertNotNil(options["hostaddr"])
        XCTAssertEqual(options["port"], "5433")
        XCTAssertEqual(options["dbname"], "billing")
        XCTAssertEqual(options["user"], "me")
        XCTAssertEqual(options["application_name"], "a b")
        // Literal addresses and socket directories need no lookup: the string is kept as it is.
        XCTAssertEqual(ConnectionTarget.resolvingHost("host=127.0.0.1 dbname=x"), "host=127.0.0.1 dbname=x")
        XCTAssertEqual(ConnectionTarget.resolvingHost("host=/var/run/postgresql"), "host=/var/run/postgresql")
        XCTAssertEqual(ConnectionTarget.quote("it's \\"), "'it\\'s \\\\'")
    }
}

final class ServerSettingTests: XCTestCase {
    func testServerSettingsJoinTheExistingOptions() {
        let plain = ConnectionTarget.setting("statement_timeout", "30s", in: "dbname=x")
        XCTAssertEqual(Dictionary(ConnectionTarget.parse(plain) ?? [], uniquingKeysWith: { a, _ in a })["options"],
                       "-c statement_timeout=30s")
        let withOptions = ConnectionTarget.setting("statement_timeout", "30s", in: "dbname=x options='-c work_mem=64MB'")
        let parsed = Dictionary(ConnectionTarget.parse(withOptions) ?? [], uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(parsed["options"], "-c work_mem=64MB -c statement_timeout=30s")
        XCTAssertEqual(parsed["dbname"], "x")
    }
}
