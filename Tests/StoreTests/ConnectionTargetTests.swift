@testable import Store
import XCTest

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
