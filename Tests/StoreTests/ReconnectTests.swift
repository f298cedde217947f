@testable import Store
import XCTest

final class ReconnectScheduleTests: XCTestCase {
    func testHealthyMeansConnect() {
        var s = ReconnectSchedule()
        XCTAssertEqual(s.permit(now: 0), .connect)
        XCTAssertEqual(s.permit(now: 0), .connect)
        XCTAssertTrue(s.isHealthy)
    }

    func testDelaysGrowExponentiallyWithJitterUpToTheCap() {
        let s = ReconnectSchedule(base: 50, cap: 1_000)
        XCTAssertEqual((1...8).map { s.ceiling(after: $0) }, [50, 100, 200, 400, 800, 1_000, 1_000, 1_000])
        XCTAssertEqual(s.ceiling(after: 0), 0)
        XCTAssertEqual(s.ceiling(after: 10_000), 1_000)  // no overflow
        for n in 1...70 {
            let d = s.ceiling(after: n)
            XCTAssertEqual(s.delay(after: n, jitter: 0), d / 2)
            XCTAssertLessThanOrEqual(s.delay(after: n, jitter: 0.999_999), d)
            XCTAssertGreaterThanOrEqual(s.delay(after: n, jitter: 0.5), d / 2)
        }
    }

    func testOneProbeAtATimeAfterTheDelay() {
        var s = ReconnectSchedule(base: 50, cap: 1_000, probeTimeout: 5_000, probeRecheck: 100)
        XCTAssertEqual(s.failed(now: 1_000, jitter: 0), 1_025)
        XCTAssertEqual(s.permit(now: 1_010), .wait(until: 1_025))
        XCTAssertEqual(s.permit(now: 1_025), .probe)
        // Someone else asks while the probe is out: ask again shortly.
        XCTAssertEqual(s.permit(now: 1_030), .wait(until: 1_130))
        XCTAssertEqual(s.failed(now: 1_040, jitter: 1), 1_140)
        XCTAssertEqual(s.failures, 2)
        XCTAssertEqual(s.permit(now: 1_140), .probe)
        s.succeeded()
        XCTAssertEqual(s.permit(now: 1_150), .connect)
        XCTAssertEqual(s.failures, 0)
    }

    func testAProbeThatNeverAnswersIsGivenUpOn() {
        var s = ReconnectSchedule(base: 50, cap: 1_000, probeTimeout: 2_000, probeRecheck: 100)
        s.failed(now: 0, jitter: 0)
        XCTAssertEqual(s.permit(now: 100), .probe)
        XCTAssertEqual(s.permit(now: 2_050), .wait(until: 2_100))
        XCTAssertEqual(s.permit(now: 2_100), .probe)
    }

    /// Several pools (one per loop), each with its own timer, on one schedule while the
    /// database is down for a minute, then up: about one attempt a second for the whole
    /// process, and every pool connected within about a second of the database.
    func testManyPoolsMakeAFewAttemptsASecondAndAllRecoverWithinTwoSeconds() {
        for pools in [1, 2, 4, 16] {
            var random = SplitMix(seed: UInt64(pools))
            var s = ReconnectSchedule()
            var due = [UInt64](repeating: 0, count: pools)  // each pool's timer
            var healthy = [Bool](repeating: false, count: pools)
            let upAt: UInt64 = 60_000
            var attempts: [UInt64] = []
            var now: UInt64 = 0
            while healthy.contains(false) {
                let i = due.indices.filter { !healthy[$0] }.min { due[$0] < due[$1] }!
                now = max(now, due[i])
                XCTAssertLessThan(now, upAt + 2_000, "\(pools) pools: pool \(i) still down")
                if now >= upAt + 2_000 { break }
                switch s.permit(now: now) {
                case .connect, .probe:
                    attempts.append(now)
                    let connectTime: UInt64 = 2
                    if now + connectTime >= upAt {
                        s.succeeded()
                        healthy[i] = true
                    } else {
                        due[i] = s.failed(now: now + connectTime, jitter: random.unit())
                    }
                case .wait(let until):
                    due[i] = until
                }
            }
            let lastWindow = attempts.filter { $0 >= 30_000 && $0 < upAt }
            XCTAssertLessThanOrEqual(lastWindow.count, 60, "\(pools) pools: \(lastWindow.count) attempts in 30 s")
            XCTAssertGreaterThanOrEqual(lastWindow.count, 30)
            XCTAssertLessThan(now, upAt + 2_000)
        }
    }
}

final class ConnectTimeoutTests: XCTestCase {
    func testConnectTimeoutComesFromTheConnectionStringOrIsFiveSeconds() {
        XCTAssertEqual(ConnectionTarget.connectTimeoutMilliseconds("host=127.0.0.1 dbname=x"), 5_000)
        XCTAssertEqual(ConnectionTarget.connectTimeoutMilliseconds("host=127.0.0.1 connect_timeout=10"), 10_000)
        XCTAssertEqual(ConnectionTarget.connectTimeoutMilliseconds("host=127.0.0.1 connect_timeout=1"), 2_000)
        XCTAssertEqual(ConnectionTarget.connectTimeoutMilliseconds("host=127.0.0.1 connect_timeout=0"), 5_000)
        XCTAssertEqual(ConnectionTarget.connectTimeoutMilliseconds("postgresql://h/db?connect_timeout=3"), 3_000)
    }
}
