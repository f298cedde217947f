@testable import Billing
import XCTest

/// The organisations beside a shared load's keys (`SharedRead`): one per key, as
/// PostgreSQL's array literal. The statements that use them are tested over HTTP
/// (`Tests/integration/test_coalescing.py`).
final class SharedReadsTests: XCTestCase {
    func testTheOrganisationIsRepeatedOncePerKey() {
        let org = "4a0ff6b1-4f44-4d4e-9a3c-1d2b3c4d5e6f"
        XCTAssertEqual(SharedRead.arrayLiteral(repeating: org, count: 0), "{}")
        XCTAssertEqual(SharedRead.arrayLiteral(repeating: org, count: 1), "{\(org)}")
        XCTAssertEqual(SharedRead.arrayLiteral(repeating: org, count: 3), "{\(org),\(org),\(org)}")
        let many = SharedRead.arrayLiteral(repeating: org, count: 250)
        XCTAssertEqual(many.dropFirst().dropLast().split(separator: ",").map(String.init), Array(repeating: org, count: 250))
    }
}
