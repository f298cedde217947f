import Billing
import EventLoop
import Store

/// The databases one loop talks to (RULES.md section 9): the primary's pool and a pool per
/// read replica, and the choice of where a query's statements go. Mutations, the
/// housekeeping and `/readyz` use the primary alone; reads of API keys and persisted
/// documents use it too (`keysAndDocuments`), falling back to a replica only while the
/// primary cannot be reached, so that queries are still answered then.
///
/// Lifetime: created and used on its loop's thread; `close()` closes the pools.
final class DatabaseTargets {
    struct Replica {
        let health: ReplicaHealth
        let pool: ConnectionPool
    }

    let primary: ConnectionPool
    let replicas: [Replica]
    let loop: EventLoop
    /// Where queries' loads share statements; nil with `serve --coalesce off`.
    let coalescer: ReadCoalescer?
    /// Round robin over the usable replicas.
    private var turn = 0
    /// How long a request with `Billgraph-Min-LSN` waits for a replica to replay it.
    static let minLSNWaitMilliseconds: UInt64 = 1_000
    static let minLSNPollMilliseconds: UInt64 = 5
    private(set) lazy var keysAndDocuments = PrimaryFirst(targets: self)

    init(loop: EventLoop, primary: ConnectionPool, replicas: [Replica], coalescer: ReadCoalescer?) {
        self.loop = loop
        self.primary = primary
        self.replicas = replicas
        self.coalescer = coalescer
    }

    /// Closes the pools, after the coalescer has sent what it gathered.
    func close() {
        coalescer?.close()
        primary.close()
        for replica in replicas { replica.pool.close() }
    }

    /// The next usable replica in turn, if any.
    func nextUsable(where accept: (Replica) -> Bool = { _ in true }) -> Replica? {
        guard !replicas.isEmpty else { return nil }
        for step in 0..<replicas.count {
            let replica = replicas[(turn + step) % replicas.count]
            if replica.health.isUsable && accept(replica) {
                turn = (turn + step + 1) % replicas.count
                return replica
            }
        }
        return nil
    }

    /// Where a query goes: a usable replica in turn, or the primary when there is none.
    /// With `minLSN`, only a replica that has replayed it: one known to, else one that
    /// does within `minLSNWaitMilliseconds` (asked every few milliseconds), else the primary.
    func route(minLSN: LSN?, completion: @escaping (ReadRoute) -> Void) {
        guard let minLSN else { return completion(ReadRoute(targets: self, replica: nextUsable())) }
        if let caughtUp = nextUsable(where: { $0.health.replayedLSN >= minLSN }) {
            return completion(ReadRoute(targets: self, replica: caughtUp))
        }
        guard let candidate = nextUsable() else { return completion(ReadRoute(targets: self, replica: nil)) }
        wait(for: minLSN, on: candidate, until: loop.now + Self.minLSNWaitMilliseconds) { [self] replayed in
            completion(ReadRoute(targets: self, replica: replayed ? candidate : nil))
        }
    }

    static let replayed = Statement("SELECT pg_last_wal_replay_lsn()::text")

    private func wait(for lsn: LSN, on replica: Replica, until deadline: UInt64, _ done: @escaping (Bool) -> Void) {
        replica.pool.run(Self.replayed) { [self] result in
            if let position = (try? result.get())?.string(0, 0).flatMap(LSN.init) {
                replica.health.noteReplayed(position)
                if position >= lsn { return done(true) }
            } else {
                return done(false)  // it failed to answer: the primary it is
            }
            guard loop.now < deadline, let timer = try? Timer(loop: loop) else { return done(false) }
            timer.start(after: Self.minLSNPollMilliseconds) { [self] in
                timer.close()
                wait(for: lsn, on: replica, until: deadline, done)
            }
        }
    }
}

/// Where one query request's statements go: the replica chosen for it, or the primary.
/// A replica that fails a statement because it went away (or cancelled it to replay WAL,
/// SQLSTATE 40001 on a standby) is marked down, and that statement and the rest of the
/// request go to the primary: reads are safe to send again, and the primary's data is at
/// least as new.
final class ReadRoute: StatementRunning {
    private let targets: DatabaseTargets
    private var replica: DatabaseTargets.Replica?

    init(targets: DatabaseTargets, replica: DatabaseTargets.Replica?) {
        self.targets = targets
        self.replica = replica
    }

    /// `Billgraph-Served-By` (RULES.md section 9): `replica` while every statement so far was
    /// answered by one.
    var servedBy: String { replica == nil ? "primary" : "replica" }

    /// A statement of the query, in its turn (`ConnectionPool.runInTurn`).
    func run(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        guard let chosen = replica else { return targets.primary.runInTurn(making: { statement }, completion: completion) }
        chosen.pool.runInTurn(making: { statement }) { [self] result in
            if leaves(chosen, after: result) { return targets.primary.runInTurn(making: { statement }, completion: completion) }
            completion(result)
        }
    }

    /// A load that may share its statement: with the loads bound for the same pool only,
    /// and moved to the primary as `run` moves a statement.
    func run(_ read: SharedRead, on coalescer: ReadCoalescer, completion: @escaping ReadCoalescer.Completion) {
        guard let chosen = replica else { return coalescer.run(read, on: targets.primary, completion: completion) }
        coalescer.run(read, on: chosen.pool) { [self] result in
            if leaves(chosen, after: result) { return coalescer.run(read, on: targets.primary, completion: completion) }
            completion(result)
        }
    }

    /// True when `result` shows the replica gone (or cancelling reads to replay WAL): it
    /// is marked down, and the request's statements go to the primary from now on.
    private func leaves<T>(_ chosen: DatabaseTargets.Replica, after result: Result<T, DatabaseError>) -> Bool {
        guard case .failure(let error) = result, error.isUnavailable || error.sqlState == "40001" else { return false }
        chosen.health.markDown(error.isUnavailable ? "unreachable" : "cancelled a read to replay WAL")
        replica = nil
        return true
    }
}

/// Reads of API keys and persisted documents: on the primary, which every write reads
/// from; while the primary cannot be reached, on a usable replica instead, so that
/// queries are still answered (a mutation then fails on its own, needing the primary).
final class PrimaryFirst: StatementRunning {
    private unowned let targets: DatabaseTargets

    init(targets: DatabaseTargets) { self.targets = targets }

    func run(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        targets.primary.run(statement) { [targets] result in
            if case .failure(let error) = result, error.isUnavailable, let replica = targets.nextUsable() {
                return replica.pool.run(statement, completion: completion)
            }
            completion(result)
        }
    }
}
