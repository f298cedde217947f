import EventLoop
import Metrics

/// Where a pool reports what it does (RULES.md section 7): statements run and their
/// durations, and its connections by state. The gauges may be shared by the pools of
/// several loops: each pool adds the change of its own figures.
public struct PoolInstruments: Sendable {
    public let statements: Counter
    public let statementDuration: Histogram
    public let idle: Gauge
    public let busy: Gauge
    public let waiting: Gauge

    public init(statements: Counter, statementDuration: Histogram, idle: Gauge, busy: Gauge, waiting: Gauge) {
        self.statements = statements
        self.statementDuration = statementDuration
        self.idle = idle
        self.busy = busy
        self.waiting = waiting
    }

    /// Wraps a statement's completion so that it is counted and timed from now.
    @inline(__always)
    func timed(_ completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) -> (Result<ResultSet, DatabaseError>) -> Void {
        let start = EventLoop.hrtime()
        return { [self] result in
            statements.increment()
            statementDuration.observe(nanoseconds: EventLoop.hrtime() &- start)
            completion(result)
        }
    }
}

/// The PostgreSQL connections of one event loop. Statements wait in order for an idle
/// connection; connections open on demand up to `size`.
///
/// When the database cannot be reached the pool backs off (`PoolStateMachine`): waiting
/// statements fail at once with `.unavailable` rather than hang, and the pool tries to
/// connect again on a timer, with exponential back-off and jitter, on the schedule it
/// shares with the pools of the other loops (`ReconnectGate`), so the process makes about
/// one attempt a second while the database is down and is back within about a second of
/// it, with or without requests.
///
/// A transaction needs one connection for several statements: `lease` hands one out,
/// and nothing else runs on it until the lease is released.
public final class ConnectionPool {
    private typealias Machine = PoolStateMachine<Waiter>

    private let loop: EventLoop
    private let conninfo: String
    private let gate: ReconnectGate
    private let connectTimeout: UInt64
    private let maxPrepared: Int
    private var machine: Machine
    private var connections: [Int: AsyncConnection] = [:]
    private var timer: Timer?
    private var actions = FIFO<Machine.Action>()
    private var running = false
    private let instruments: PoolInstruments?
    /// What this pool last added to the shared gauges.
    private var reported = (idle: 0, busy: 0, waiting: 0)

    private enum Waiter {
        /// A statement, made when a connection is there for it (`runInTurn`).
        case statement(() -> Statement, (Result<ResultSet, DatabaseError>) -> Void)
        case lease((Result<Lease, DatabaseError>) -> Void)

        func fail(_ error: DatabaseError) {
            switch self {
            case .statement(_, let completion): completion(.failure(error))
            case .lease(let completion): completion(.failure(error))
            }
        }
    }

    /// `gate`: the reconnection schedule shared by the pools of one process (a pool of its
    /// own when not given). `preparedStatements` false: no named prepared statement is ever
    /// sent, only unnamed ones (`PQsendQueryParams`), which PgBouncer's transaction pooling
    /// carries (RULES.md section 9); PostgreSQL then plans every statement each time.
    /// `statementLimit`: how many connections may run statements that take turns
    /// (`runInTurn`) at once; other statements and leases may take every connection
    /// (`PoolStateMachine`).
    public init(loop: EventLoop, conninfo: String, size: Int, statementLimit: Int? = nil, gate: ReconnectGate? = nil,
                instruments: PoolInstruments? = nil, preparedStatements: Bool = true) {
        self.loop = loop
        maxPrepared = preparedStatements ? 500 : 0
        self.instruments = instruments
        self.conninfo = conninfo
        connectTimeout = ConnectionTarget.connectTimeoutMilliseconds(conninfo)
        self.gate = gate ?? ReconnectGate(connectTimeoutMilliseconds: connectTimeout)
        machine = Machine(size: size, statementLimit: statementLimit)
    }

    /// Runs one statement on some connection of the pool.
    public func run(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        handle(machine.requested(.statement({ statement }, completion), for: .anyConnection))
    }

    /// Runs one statement when its turn comes: at most `statementLimit` of them at once
    /// (the reads of queries, which are many; a key's lookup or a health check goes by `run`).
    /// The statement is made when its turn comes (`making`, on this loop), so that what it
    /// reads may still grow while it waits (`ReadCoalescer`); if it fails first, it is never made.
    public func runInTurn(making: @escaping () -> Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        handle(machine.requested(.statement(making, completion), for: .statementInTurn))
    }

    /// Hands out one connection for the caller alone until it calls `Lease.release()`.
    public func lease(completion: @escaping (Result<Lease, DatabaseError>) -> Void) {
        handle(machine.requested(.lease(completion), for: .anyConnection))
    }

    /// Closes every connection and fails what waits (at shutdown).
    public func close() {
        handle(machine.close())
        timer?.close()
        timer = nil
        if let instruments {
            instruments.idle.add(Int64(-reported.idle))
            instruments.busy.add(Int64(-reported.busy))
            instruments.waiting.add(Int64(-reported.waiting))
            reported = (0, 0, 0)
        }
    }

    // MARK: running actions

    /// Runs actions one at a time, in order; actions of events that arrive meanwhile (a
    /// completion that runs the next statement) wait their turn.
    private func handle(_ new: [Machine.Action]) {
        for action in new { actions.push(action) }
        guard !running else { return }
        running = true
        while let next = actions.pop() { run(next) }
        running = false
        if instruments != nil { report() }
    }

    /// Adds the change of this pool's connections by state to the shared gauges.
    private func report() {
        guard let instruments else { return }
        var idle = 0, busy = 0
        for (_, slot) in machine.slots {
            if slot == .idle { idle += 1 } else if slot == .busy { busy += 1 }
        }
        let waiting = machine.waitingCount
        if idle != reported.idle { instruments.idle.add(Int64(idle - reported.idle)) }
        if busy != reported.busy { instruments.busy.add(Int64(busy - reported.busy)) }
        if waiting != reported.waiting { instruments.waiting.add(Int64(waiting - reported.waiting)) }
        reported = (idle, busy, waiting)
    }

    private func run(_ action: Machine.Action) {
        switch action {
        case .connect(let id):
            switch gate.permit(now: loop.now) {
            case .wait(let until):
                handle(machine.connectFailed(id: id, error: .unavailable("waiting to connect again"), retryAt: until))
            case .connect, .probe:
                let connection = AsyncConnection(id: id, loop: loop, maxPrepared: maxPrepared) { [weak self] connection, event in
                    self?.connectionEvent(connection, event)
                }
                connections[id] = connection
                connection.start(conninfo: conninfo, timeoutMilliseconds: connectTimeout)
            }
        case .serve(let waiter, let id):
            guard let connection = connections[id] else {
                return waiter.fail(.unavailable("the connection was lost"))
            }
            switch waiter {
            case .statement(let making, let completion):
                connection.send(making(), completion: instruments?.timed(completion) ?? completion)
            case .lease(let completion):
                connection.leased = true
                completion(.success(Lease(connection: connection, instruments: instruments) { [weak self] clean in
                    self?.returned(connection, clean: clean)
                }))
            }
        case .fail(let waiter, let error):
            waiter.fail(error)
        case .armTimer(let at):
            if timer == nil { timer = try? Timer(loop: loop) }
            let now = loop.now
            timer?.start(after: at > now ? at - now : 0) { [weak self] in
                guard let self else { return }
                handle(machine.timerFired())
            }
        case .disarmTimer:
            timer?.stop()
        case .close(let id):
            connections[id]?.close(.unavailable("the pool is closed"))
        }
    }

    private func connectionEvent(_ connection: AsyncConnection, _ event: AsyncConnection.Event) {
        switch event {
        case .ready:
            gate.succeeded(now: loop.now)
            handle(machine.connected(id: connection.id))
        case .idle:
            // A leased connection stays its holder's until the lease is given back.
            if !connection.leased { handle(machine.released(id: connection.id)) }
        case .closed(let reason, let wasConnecting):
            connections[connection.id] = nil
            guard machine.health != .closed else { return }
            if wasConnecting {
                let retryAt = gate.failed(now: loop.now, reason: reason)
                handle(machine.connectFailed(id: connection.id, error: reason, retryAt: retryAt))
            } else {
                handle(machine.lost(id: connection.id, error: reason))
            }
        }
    }

    /// A lease came back: a connection left busy or inside a transaction is closed rather
    /// than reused, so no half-done work can reach the next user.
    private func returned(_ connection: AsyncConnection, clean: Bool) {
        connection.leased = false
        if clean {
            handle(machine.released(id: connection.id))
        } else {
            connection.close(.unavailable("released busy or inside a transaction"))
        }
    }
}

/// One connection lent to one caller (a transaction) until `release()`, which must be
/// called exactly once. Statements run on it one after another, in the order sent: the
/// loads of one level of a query go out together, so they wait here for their turn.
public final class Lease {
    private let connection: AsyncConnection
    private var onRelease: ((_ clean: Bool) -> Void)?
    private var queued = FIFO<(Statement, (Result<ResultSet, DatabaseError>) -> Void)>()
    private var running = false
    private let instruments: PoolInstruments?

    init(connection: AsyncConnection, instruments: PoolInstruments? = nil, onRelease: @escaping (_ clean: Bool) -> Void) {
        self.connection = connection
        self.instruments = instruments
        self.onRelease = onRelease
    }

    public func run(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        queued.push((statement, completion))
        sendNext()
    }

    private func sendNext() {
        guard !running, let (statement, completion) = queued.pop() else { return }
        running = true
        let finished = instruments?.timed(completion) ?? completion
        connection.send(statement) { [self] result in
            running = false
            finished(result)
            sendNext()
        }
    }

    /// Gives the connection back. A connection left busy, with statements still queued
    /// here, or in a transaction is closed instead, so no half-done work can reach the
    /// next user (what was queued then fails, each statement once).
    public func release() {
        guard let onRelease else { return }
        self.onRelease = nil
        onRelease(!running && queued.count == 0 && connection.isIdleOutsideTransaction)
    }

    deinit { release() }
}

/// Something statements are sent to one at a time: a pool, or a choice among pools
/// (the service's routing of reads, RULES.md section 9).
public protocol StatementRunning: AnyObject {
    func run(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void)
}

extension ConnectionPool: StatementRunning {}
