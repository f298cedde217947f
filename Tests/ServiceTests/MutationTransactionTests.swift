@testable import Service
import XCTest

/// `MutationTransaction`'s pause before running a conflicted operation again. Its runs
/// against PostgreSQL (conflicts, deadlocks, outages) are in the integration suite
/// (`test_atomic.py`, `test_mutations.py`, `test_outage.py`).
final class MutationTransactionTests: XCTestCase {
    func testThePauseIsRandomUnderACeilingThatDoublesFromFourMilliseconds() {
        let ceilings = (2...MutationTransaction.attempts).map { n in
            (0..<1000).map { MutationTransaction.pause(beforeAttempt: n, random: Double($0) / 1000) }
        }
        XCTAssertEqual(ceilings.map { $0.min()! }, [0, 0, 0, 0])
        XCTAssertEqual(ceilings.map { $0.max()! }, [3, 7, 15, 31])
        // Every pause up to its ceiling is possible: the random part spreads retries out.
        XCTAssertEqual(ceilings.map { Set($0).count }, [4, 8, 16, 32])
        XCTAssertLessThanOrEqual(ceilings.map { $0.max()! }.reduce(0, +), 60, "five attempts wait at most 60 ms in all")
    }
}
