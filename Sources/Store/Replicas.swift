import EventLoop
import Synchronization

/// A position in PostgreSQL's write-ahead log, written as `pg_lsn` writes it: two
/// hexadecimal halves of 64 bits, `16/B374D848` (RULES.md section 9: `Billgraph-Commit-LSN`
/// and `Billgraph-Min-LSN` carry them).
public struct LSN: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// Parses `X/Y`, each half one to eight hexadecimal digits; nil for anything else.
    public init?(_ text: String) {
        let halves = text.split(separator: "/", omittingEmptySubsequences: false)
        guard halves.count == 2, halves.allSatisfy({ (1...8).contains($0.count) && $0.allSatisfy(\.isHexDigit) }),
              let high = UInt64(halves[0], radix: 16), let low = UInt64(halves[1], radix: 16) else { return nil }
        value = high << 32 | low
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (a: LSN, b: LSN) -> Bool { a.value < b.value }
}

/// What the process knows of one read replica (a hot standby), shared by every loop: the
/// watch (`ReplicaWatch`, once a second) writes it, requests read it with two atomic
/// loads and never wait for it.
public final class ReplicaHealth: Sendable {
    /// Where it is, for the log (`host:port`, never a password).
    public let name: String
    private let usableFlag = Atomic<Bool>(false)
    private let replayed = Atomic<UInt64>(0)
    private let reason = Mutex<String>("not checked yet")

    public init(name: String) { self.name = name }

    /// Reachable, and its replay lag under the allowed one: queries may go to it.
    public var isUsable: Bool { usableFlag.load(ordering: .relaxed) }

    /// The newest WAL position it is known to have replayed (it only grows: a standby
    /// never replays backwards).
    public var replayedLSN: LSN { LSN(replayed.load(ordering: .relaxed)) }

    /// Why it is not usable, for `/readyz` and the log.
    public var unusableReason: String { reason.withLock { $0 } }

    /// Raises the known replay position (a request's own check may see it before the watch).
    public func noteReplayed(_ lsn: LSN) {
        var current = replayed.load(ordering: .relaxed)
        while lsn.value > current {
            let (exchanged, now) = replayed.compareExchange(expected: current, desired: lsn.value, ordering: .relaxed)
            if exchanged { return }
            current = now
        }
    }

    /// Sets whether it is usable; answers whether that changed (the watch logs changes).
    @discardableResult
    public func set(usable: Bool, reason why: String) -> Bool {
        reason.withLock { $0 = why }
        return usableFlag.exchange(usable, ordering: .relaxed) != usable
    }

    /// A request found it unreachable: skipped from now until the watch sees it answer again.
    public func markDown(_ why: String) { set(usable: false, reason: why) }
}

/// How far behind the primary a replica is, in milliseconds, from what the watch sees
/// each second. A value, so that it is tested without clusters.
///
/// While the primary answers, the watch remembers when the primary's WAL position was
/// where (`sampled`): a replica that has replayed the primary's position of time t holds
/// every write committed before t, so its lag is now − t; one that has replayed the
/// primary's current position has none.
/// An idle primary never makes a fresh replica look late, as replay timestamps would.
/// While the primary does not answer, the replica is judged alone: behind by the time
/// since its last replayed transaction when it has received WAL it has not replayed
/// (replay paused or slow), else not behind: it holds all the primary sent.
public struct ReplayLag: Sendable {
    /// (when, in loop milliseconds; the primary's WAL position then), oldest first.
    private(set) var samples: [(at: UInt64, lsn: LSN)] = []
    /// Samples kept: enough to measure lags well past any sensible allowed lag.
    let keep: Int

    public init(keep: Int = 600) { self.keep = keep }

    public mutating func sampled(primary lsn: LSN, at now: UInt64) {
        samples.append((now, lsn))
        if samples.count > keep { samples.removeFirst(samples.count - keep) }
    }

    /// The lag of a replica that has replayed up to `replayed`, judged against the samples:
    /// the time the primary's WAL passed that position, interpolated between the samples
    /// either side of it (WAL grows about evenly within a second), so a replica a few
    /// milliseconds behind a busy primary is not taken for a second behind.
    public func lag(replayed: LSN, now: UInt64) -> UInt64 {
        guard let newest = samples.last, replayed < newest.lsn else { return 0 }
        guard let before = samples.lastIndex(where: { $0.lsn <= replayed }) else {
            return now &- samples[0].at  // behind every sample kept: at least this late
        }
        let (a, b) = (samples[before], samples[before + 1])
        let share = Double(replayed.value - a.lsn.value) / Double(b.lsn.value - a.lsn.value)
        let passed = a.at + UInt64(Double(b.at &- a.at) * share)
        return now > passed ? now - passed : 0
    }

    /// The lag of a replica judged alone (the primary does not answer): `unreplayedWAL`
    /// when it has received more than it replayed; `sinceLastReplay` in milliseconds.
    public static func alone(unreplayedWAL: Bool, sinceLastReplay: UInt64) -> UInt64 {
        unreplayedWAL ? sinceLastReplay : 0
    }
}

/// Watches the replicas of a process, once a second, on one loop, never on a request's
/// path: asks the primary for its WAL position, then each replica for its replay
/// position, and marks each usable when it answers with a lag under `maxLag`
/// (RULES.md section 9). A replica that is down or lagging is skipped by requests and
/// asked again every second; its connection attempts back off on its own schedule
/// (`ReconnectGate`), shared with the loops' pools of that replica.
///
/// Lifetime: created on its loop at start-up; `close()` (when the loop stops) stops the
/// timer and closes its pools (one connection to each database).
public final class ReplicaWatch {
    public struct Watched: Sendable {
        public let health: ReplicaHealth
        public let conninfo: String
        public let gate: ReconnectGate
        public init(health: ReplicaHealth, conninfo: String, gate: ReconnectGate) {
            self.health = health
            self.conninfo = conninfo
            self.gate = gate
        }
    }

    public static let periodMilliseconds: UInt64 = 1_000
    private let loop: EventLoop
    private let primary: ConnectionPool
    private let replicas: [(watched: Watched, pool: ConnectionPool)]
    private let maxLagMilliseconds: UInt64
    private let log: (String) -> Void
    private var lag = ReplayLag()
    private var timer: Timer?
    /// Whether the primary answered the last check (nil before the first).
    private var primaryAnswers: Bool?

    public init(loop: EventLoop, primary conninfo: String, primaryGate: ReconnectGate, replicas: [Watched],
                maxLagMilliseconds: UInt64, preparedStatements: Bool, log: @escaping (String) -> Void) throws {
        self.loop = loop
        self.maxLagMilliseconds = maxLagMilliseconds
        self.log = log
        primary = ConnectionPool(loop: loop, conninfo: conninfo, size: 1, gate: primaryGate, preparedStatements: preparedStatements)
        self.replicas = replicas.map {
            ($0, ConnectionPool(loop: loop, conninfo: $0.conninfo, size: 1, gate: $0.gate, preparedStatements: preparedStatements))
        }
        let timer = try Timer(loop: loop)
        timer.start(after: 0, repeat: Self.periodMilliseconds) { [weak self] in self?.check() }
        timer.unref()
        self.timer = timer
    }

    public func close() {
        timer?.close()
        timer = nil
        primary.close()
        for replica in replicas { replica.pool.close() }
    }

    static let primaryPosition = Statement("SELECT pg_current_wal_lsn()::text")
    /// Replayed and received positions, whether replay is paused, and the milliseconds
    /// since the last replayed transaction (0 when none is known).
    static let replayPosition = Statement("""
        SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text,
               (pg_is_in_recovery() AND pg_is_wal_replay_paused())::text,
               coalesce((extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::bigint, 0)::text
        """)

    private func check() {
        primary.run(Self.primaryPosition) { [self] result in
            let position = (try? result.get()).flatMap { $0.string(0, 0) }.flatMap(LSN.init)
            primaryAnswers = position != nil
            if let position { lag.sampled(primary: position, at: loop.now) }
            for replica in replicas { check(replica.watched.health, replica.pool) }
        }
    }

    private func check(_ health: ReplicaHealth, _ pool: ConnectionPool) {
        pool.run(Self.replayPosition) { [self] result in
            let judged: (usable: Bool, reason: String)
            switch result {
            case .failure(let error):
                judged = (false, error.isUnavailable ? "unreachable" : "its replay position could not be read")
            case .success(let rows):
                guard let replayed = rows.string(0, 0).flatMap(LSN.init) else {
                    judged = (false, "not a standby (no replay position)")
                    break
                }
                health.noteReplayed(replayed)
                let received = rows.string(0, 1).flatMap(LSN.init) ?? replayed
                let behind = primaryAnswers == true
                    ? lag.lag(replayed: replayed, now: loop.now)
                    : ReplayLag.alone(unreplayedWAL: received > replayed || rows.string(0, 2) == "true",
                                      sinceLastReplay: UInt64(max(0, Int64(rows.string(0, 3) ?? "0") ?? 0)))
                judged = behind < maxLagMilliseconds
                    ? (true, "")
                    : (false, "replay lag of \(behind) ms is over the allowed \(maxLagMilliseconds) ms")
            }
            if health.set(usable: judged.usable, reason: judged.reason) {
                log(judged.usable ? "replica \(health.name) is in use" : "replica \(health.name) skipped: \(judged.reason)")
            }
        }
    }
}
