import EventLoop
import Store

/// Runs a mutation operation as ONE database transaction (RULES.md section 4, "Several
/// mutations in one operation"), on a connection leased from the pool: `BEGIN`, the
/// operation (every root field in order, idempotency keys claimed and payloads read
/// inside), then `COMMIT` when every field succeeded and `ROLLBACK` otherwise. A
/// serialization failure or a deadlock runs the whole operation again, at most
/// `attempts` times, each after a random pause (`pause(beforeAttempt:random:)`).
///
/// Never an error for what was applied: the answer is sent after the `COMMIT` is known to
/// have succeeded; when the database goes away during it, the outcome is unknown and the
/// answer is `SERVICE_UNAVAILABLE`, and a retry with the same idempotency keys gets the
/// first outcome (the keys were claimed in that same transaction).
final class MutationTransaction {
    static let attempts = 5

    /// How the operation's run came out, as its caller judges it.
    struct Verdict {
        /// Every field succeeded: apply it.
        let apply: Bool
        /// A statement lost a serialization conflict or a deadlock: run it again.
        let conflicted: Bool
        /// Fields that answered with an earlier call's result (same idempotency key), for the metrics.
        var replayed: [String] = []
    }

    /// How the transaction ended.
    enum End {
        /// Applied: answer what the last run answered.
        case committed
        /// Not applied, by the run's own verdict: answer what it answered.
        case rolledBack
        /// Not applied: conflicts every time, or the commit refused.
        case failed
        /// Not applied: the database could not be reached to begin.
        case unreachable
        /// The database went away during the commit: whether it applied is unknown.
        case unknown
    }

    typealias StatementRunner = (Statement, @escaping (Result<ResultSet, DatabaseError>) -> Void) -> Void
    /// Runs the operation once with the statements going to the transaction, then calls back.
    typealias Run = (_ statements: @escaping StatementRunner, _ done: @escaping (Verdict) -> Void) -> Void

    private let loop: EventLoop
    private let pool: ConnectionPool
    /// The primary's WAL position once the transaction has ended, committed or rolled
    /// back (RULES.md section 9, `Billgraph-Commit-LSN`): a replica that has replayed it
    /// holds what this transaction wrote. Nil when the database went away first.
    private(set) var commitLSN: LSN?
    private let log: (String) -> Void
    /// Runs first in the transaction, when given: the operation's locks.
    private let prelude: Statement?

    init(loop: EventLoop, pool: ConnectionPool, prelude: Statement?, log: @escaping (String) -> Void) {
        self.loop = loop
        self.pool = pool
        self.prelude = prelude
        self.log = log
    }

    func run(_ operation: @escaping Run, ended: @escaping (End) -> Void) {
        attempt(1, operation, ended)
    }

    private func attempt(_ n: Int, _ operation: @escaping Run, _ ended: @escaping (End) -> Void) {
        if n > 1 { ServiceMetrics.shared.transactionRetries.increment() }
        pool.lease { [self] leased in
            guard case .success(let lease) = leased else { return ended(.unreachable) }
            // Statements on a lease run in the order sent: BEGIN, the locks, then the operation;
            // when the BEGIN fails, so do the locks, and their outcome says it.
            if prelude != nil { lease.run(Statement("BEGIN")) { _ in } }
            lease.run(prelude ?? Statement("BEGIN")) { [self] begun in
                if case .failure(let error) = begun {
                    log("cannot begin the operation's transaction: \(error)")
                    lease.release()
                    return error.isRetryable && n < Self.attempts ? again(n + 1, operation, ended) : ended(.unreachable)
                }
                operation({ statement, completion in lease.run(statement, completion: completion) }) { [self] verdict in
                    if verdict.apply && !verdict.conflicted {
                        commit(lease, attempt: n, operation, ended)
                    } else {
                        lease.run(Statement("ROLLBACK")) { [self] _ in
                            guard verdict.conflicted else {
                                return readPosition(lease) { ended(.rolledBack) }
                            }
                            guard n < Self.attempts else { return readPosition(lease) { ended(.failed) } }
                            lease.release()
                            again(n + 1, operation, ended)
                        }
                    }
                }
            }
        }
    }

    /// Attempt `n` after its pause. Operations that conflicted over the same rows would
    /// otherwise start again at the same moment and meet again; a random pause ("full
    /// jitter") spreads them out.
    private func again(_ n: Int, _ operation: @escaping Run, _ ended: @escaping (End) -> Void) {
        guard let timer = try? Timer(loop: loop) else { return attempt(n, operation, ended) }
        timer.start(after: Self.pause(beforeAttempt: n, random: Double.random(in: 0..<1))) { [self] in
            timer.close()
            attempt(n, operation, ended)
        }
    }

    /// Milliseconds to wait before attempt `n` (2 or more): `random` (in [0, 1)) times a
    /// ceiling that doubles from 4 ms (4, 8, 16, 32), so that five attempts wait at most
    /// 60 ms in all, against conflicts that last a transaction (about a millisecond here).
    static func pause(beforeAttempt n: Int, random: Double) -> UInt64 {
        UInt64(random * Double(4 << (n - 2)))
    }

    private func commit(_ lease: Lease, attempt n: Int, _ operation: @escaping Run, _ ended: @escaping (End) -> Void) {
        lease.run(Statement("COMMIT")) { [self] committed in
            switch committed {
            case .success:
                readPosition(lease) { ended(.committed) }
            case .failure(let error):
                if error.isRetryable && n < Self.attempts {
                    lease.release()
                    return again(n + 1, operation, ended)
                }
                log("commit failed: \(error)")
                guard !error.isUnavailable else {
                    lease.release()
                    return ended(.unknown)
                }
                readPosition(lease) { ended(.failed) }
            }
        }
    }

    /// The WAL insert position, asked after the transaction ended (one more round trip on
    /// the same connection): past the commit record, so a replica that has replayed it has
    /// replayed the commit. Then the lease goes back.
    private func readPosition(_ lease: Lease, then: @escaping () -> Void) {
        lease.run(Self.insertPosition) { [self] result in
            lease.release()
            commitLSN = (try? result.get())?.string(0, 0).flatMap(LSN.init)
            then()
        }
    }

    static let insertPosition = Statement("SELECT pg_current_wal_insert_lsn()::text")
}
