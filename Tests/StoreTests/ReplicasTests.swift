@testable import Store
import XCTest

/// WAL positions as PostgreSQL writes them, and how far behind a replica is judged
/// (RULES.md section 9), without clusters or time.
final class ReplicasTests: XCTestCase {
    func testLSNsReadAndWriteAsPgLsnDoes() {
        // pg_lsn '16/B374D848' is 0x16 << 32 | 0xB374D848.
        XCTAssertEqual(LSN("16/B374D848")?.value, 0x16_B374_D848)
        XCTAssertEqual(LSN(0x16_B374_D848).description, "16/B374D848")
        XCTAssertEqual(LSN("0/0")?.value, 0)
        XCTAssertEqual(LSN("FFFFFFFF/FFFFFFFF")?.value, UInt64.max)
        XCTAssertEqual(LSN("0/3a")?.description, "0/3A")
        XCTAssertTrue(LSN("1/0")! > LSN("0/FFFFFFFF")!)
        for bad in ["", "/", "0/", "/0", "0", "0/0/0", "g/0", "123456789/0", " 0/1", "0/1 ", "-1/0", "+1/0"] {
            XCTAssertNil(LSN(bad), bad)
        }
    }

    func testAReplicaThatHasReplayedThePrimarysNewestPositionIsNotBehind() {
        var lag = ReplayLag()
        lag.sampled(primary: LSN(100), at: 1_000)
        XCTAssertEqual(lag.lag(replayed: LSN(100), now: 60_000), 0)  // an idle primary: no lag however long
        XCTAssertEqual(lag.lag(replayed: LSN(150), now: 1_500), 0)
        XCTAssertEqual(ReplayLag().lag(replayed: LSN(0), now: 5_000), 0)  // nothing known of the primary yet
    }

    func testTheLagIsTheTimeSinceThePrimaryPassedTheReplayedPosition() {
        var lag = ReplayLag()
        lag.sampled(primary: LSN(1_000), at: 10_000)
        lag.sampled(primary: LSN(2_000), at: 11_000)
        lag.sampled(primary: LSN(2_000), at: 12_000)
        lag.sampled(primary: LSN(3_000), at: 13_000)
        // Replayed exactly the position of 11 s: behind by what came since, now 13.5 s.
        XCTAssertEqual(lag.lag(replayed: LSN(2_000), now: 13_500), 1_500)
        // A quarter of the way from 2,000 (12 s) to 3,000 (13 s): passed at 12.25 s.
        XCTAssertEqual(lag.lag(replayed: LSN(2_250), now: 13_500), 1_250)
        // Paused at 1,500 while the primary went on: half-way between 10 s and 11 s.
        XCTAssertEqual(lag.lag(replayed: LSN(1_500), now: 20_000), 9_500)
        // Behind every sample kept: at least as late as the oldest.
        XCTAssertEqual(lag.lag(replayed: LSN(10), now: 20_000), 10_000)
    }

    func testOnlyTheNewestSamplesAreKept() {
        var lag = ReplayLag(keep: 3)
        for n in 0..<10 { lag.sampled(primary: LSN(UInt64(n) * 100), at: UInt64(n) * 1_000) }
        XCTAssertEqual(lag.samples.map(\.lsn.value), [700, 800, 900])
    }

    func testAReplicaJudgedAloneIsBehindOnlyWhenItHasWALItHasNotReplayed() {
        XCTAssertEqual(ReplayLag.alone(unreplayedWAL: false, sinceLastReplay: 90_000), 0)
        XCTAssertEqual(ReplayLag.alone(unreplayedWAL: true, sinceLastReplay: 7_000), 7_000)
    }

    /// A replica is named in the log by where it is, never with its password.
    func testAReplicaIsNamedByHostAndPortOnly() {
        XCTAssertEqual(ConnectionTarget.displayName("host=db2 port=5433 dbname=billing password=secret"), "db2:5433")
        XCTAssertEqual(ConnectionTarget.displayName("postgresql://reader:secret@db3:6543/billing"), "db3:6543")
        XCTAssertEqual(ConnectionTarget.displayName("dbname=billing"), "localhost:5432")
    }

    func testTheKnownReplayPositionOnlyGrows() {
        let health = ReplicaHealth(name: "127.0.0.1:5433")
        health.noteReplayed(LSN(500))
        health.noteReplayed(LSN(300))
        XCTAssertEqual(health.replayedLSN, LSN(500))
        XCTAssertFalse(health.isUsable)  // not checked yet
        XCTAssertTrue(health.set(usable: true, reason: ""))
        XCTAssertFalse(health.set(usable: true, reason: ""))  // no change
        health.markDown("unreachable")
        XCTAssertFalse(health.isUsable)
        XCTAssertEqual(health.unusableReason, "unreachable")
    }
}
