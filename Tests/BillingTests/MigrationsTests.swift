import Billing
import Foundation
import XCTest

/// The binary embeds schema/migrations/*.sql; the two must never drift apart.
final class MigrationsTests: XCTestCase {
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
