import Dispatch
import Synchronization
@testable import Service
import XCTest

/// `RateLimiter` (RULES.md section 8) against a clock the test moves: operations are paid
/// whole or refused whole, windows end after a minute, keys do not share budgets, and
/// threads spending from one key at once never overspend it.
final class RateLimiterTests: XCTestCase {
    final class FakeClock: Sendable {
        let milliseconds = Atomic<UInt64>(1_000_000)
        func advance(_ by: UInt64) { milliseconds.add(by, ordering: .relaxed) }
        var read: @Sendable () -> UInt64 { { self.milliseconds.load(ordering: .relaxed) } }
    }

    func testPaysUntilTheBudgetIsSpentThenRefusesWithoutPaying() {
        let clock = FakeClock()
        let limiter = RateLimiter(clock: clock.read)
        XCTAssertEqual(limiter.spend(4, key: "k", limit: 10), .allowed(.init(limit: 10, remaining: 6, resetSeconds: 60)))
        clock.advance(1_500)
        XCTAssertEqual(limiter.spend(6, key: "k", limit: 10), .allowed(.init(limit: 10, remaining: 0, resetSeconds: 59)))
        // Refused whole: nothing is paid, so a cheaper operation would still be refused only by what is left.
        XCTAssertEqual(limiter.spend(1, key: "k", limit: 10), .refused(.init(limit: 10, remaining: 0, resetSeconds: 59)))
        XCTAssertEqual(limiter.allowance(key: "k", limit: 10), .init(limit: 10, remaining: 0, resetSeconds: 59))
    }

    func testARefusedOperationPaysNothing() {
        let limiter = RateLimiter(clock: FakeClock().read)
        _ = limiter.spend(7, key: "k", limit: 10)
        XCTAssertEqual(limiter.spend(4, key: "k", limit: 10), .refused(.init(limit: 10, remaining: 3, resetSeconds: 60)))
        XCTAssertEqual(limiter.spend(3, key: "k", limit: 10), .allowed(.init(limit: 10, remaining: 0, resetSeconds: 60)))
    }

    func testTheBudgetIsWholeAgainWhenTheMinuteEnds() {
        let clock = FakeClock()
        let limiter = RateLimiter(clock: clock.read)
        _ = limiter.spend(10, key: "k", limit: 10)
        clock.advance(59_999)
        XCTAssertEqual(limiter.spend(1, key: "k", limit: 10), .refused(.init(limit: 10, remaining: 0, resetSeconds: 1)))
        clock.advance(1)
        XCTAssertEqual(limiter.spend(1, key: "k", limit: 10), .allowed(.init(limit: 10, remaining: 9, resetSeconds: 60)))
    }

    func testKeysHaveBudgetsOfTheirOwn() {
        let limiter = RateLimiter(clock: FakeClock().read)
        _ = limiter.spend(10, key: "a", limit: 10)
        XCTAssertEqual(limiter.spend(10, key: "b", limit: 10), .allowed(.init(limit: 10, remaining: 0, resetSeconds: 60)))
        XCTAssertEqual(limiter.spend(1, key: "a", limit: 10), .refused(.init(limit: 10, remaining: 0, resetSeconds: 60)))
    }

    func testThreadsSpendingAtOnceNeverOverspend() {
        let limiter = RateLimiter(clock: FakeClock().read)
        let paid = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 10_000) { i in
            let cost = 1 + i % 7
            if case .allowed = limiter.spend(cost, key: "k", limit: 5_000) { paid.add(cost, ordering: .relaxed) }
        }
        XCTAssertEqual(paid.load(ordering: .relaxed) + limiter.allowance(key: "k", limit: 5_000).remaining, 5_000)
        XCTAssertLessThanOrEqual(limiter.allowance(key: "k", limit: 5_000).remaining, 6, "cheap operations would still have fitted")
    }

    /// RULES.md section 8: `extensions.cost`, as the member the engine writes.
    func testTheCostIsAnExtensionsMember() {
        XCTAssertEqual(String(decoding: RateLimiter.costExtension(requested: 4, remaining: 96), as: UTF8.self),
                       #""cost":{"requested":4,"remaining":96}"#)
    }
}
