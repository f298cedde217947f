import CLibPQ
import EventLoop

/// One non-blocking PostgreSQL connection driven by its loop: `uv_poll` on `PQsocket()`,
/// never a blocking libpq call. It runs one statement at a time; the pool keeps several.
///
/// The decisions are `ConnectionStateMachine`'s; this class runs its actions against
/// libpq, the poll watcher and the connect timer, and feeds back what they gave. Actions
/// run one at a time, in order: an event that arrives while one runs (a completion that
/// sends the next statement) queues its action behind it.
///
/// Lifetime: owns its `PGconn` from `PQconnectStart` until the machine says close
/// (`PQfinish`), and its poll watcher, which is closed before the socket goes.
final class AsyncConnection {
    typealias Machine = ConnectionStateMachine<ResultSet>

    enum Event {
        /// Connected and idle.
        case ready
        /// A statement finished; the connection is idle again (told before the statement's
        /// completion runs).
        case idle
        /// Closed; `wasConnecting`: it never became ready, so this was a failed attempt.
        case closed(DatabaseError, wasConnecting: Bool)
    }

    let id: Int
    private let loop: EventLoop
    private var conn: OpaquePointer?
    private var watcher: PollWatcher?
    private var watched: SocketIdentity.Key?
    private var connectTimer: Timer?
    private var machine: Machine
    private let onEvent: (AsyncConnection, Event) -> Void
    /// Actions that arrived while another ran, in order: one or two at a time, so a plain
    /// array whose first is taken (no `Optional` around each: an action is a large enum,
    /// copied and destroyed through its type's metadata, hundreds of instructions each).
    private var actions: [Machine.Action] = []
    private var running = false
    /// Lent out by the pool (`Lease`): only its holder sends statements.
    var leased = false

    /// `maxPrepared`: named prepared statements this connection may keep (0: none, every
    /// statement goes unnamed, as PgBouncer's transaction pooling needs).
    init(id: Int, loop: EventLoop, maxPrepared: Int, onEvent: @escaping (AsyncConnection, Event) -> Void) {
        self.id = id
        self.loop = loop
        machine = Machine(maxPrepared: maxPrepared)
        self.onEvent = onEvent
    }

    /// Starts connecting; gives up after `timeoutMilliseconds`.
    func start(conninfo: String, timeoutMilliseconds: UInt64) {
        conn = PQconnectStart(conninfo)
        guard let conn, PQstatus(conn) != CONNECTION_BAD else {
            return handle(machine.started(.failed(errorMessage ?? "cannot start a connection")))
        }
        PQsetnonblocking(conn, 1)
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        if let timer = try? Timer(loop: loop) {
            connectTimer = timer
            timer.start(after: timeoutMilliseconds) { [weak self] in
                guard let self else { return }
                handle(machine.connectTimedOut())
            }
        }
        // libpq: after PQconnectStart, poll as if PQconnectPoll had said PGRES_POLLING_WRITING.
        handle(machine.started(.writing))
    }

    var phase: Machine.Phase { machine.phase }

    /// Sends one statement; `completion` runs on the loop, once, with its rows or its error.
    /// A statement seen for the first time is prepared first (one more round trip, once).
    func send(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        handle(machine.sendRequested(statement, completion: completion))
    }

    /// Closes the connection, failing the statement in flight if there is one.
    func close(_ reason: DatabaseError) {
        handle(machine.closeRequested(reason))
    }

    /// Whether the server says no transaction is open on this connection.
    var isIdleOutsideTransaction: Bool {
        guard let conn, machine.phase == .idle else { return false }
        return PQtransactionStatus(conn) == PQTRANS_IDLE
    }

    // MARK: running actions

    private func handle(_ action: Machine.Action) {
        if case .none = action { return }
        guard !running else { return actions.append(action) }
        running = true
        run(action)
        while !actions.isEmpty { run(actions.removeFirst()) }
        running = false
    }

    private func run(_ action: Machine.Action) {
        switch action {
        case .none:
            break
        case .watch(let interest):
            watch(interest)
        case .continueConnecting:
            continueConnecting()
        case .ready:
            connectTimer?.close()
            connectTimer = nil
            watch(.readable, verify: true)
            onEvent(self, .ready)
        case .send(let request):
            transmit(request)
        case .flush:
            guard let conn else { return handle(machine.flushed(.failed("connection is closed"))) }
            switch PQflush(conn) {
            case 0: handle(machine.flushed(.done))
            case 1: handle(machine.flushed(.more))
            default: handle(machine.flushed(.failed(errorMessage ?? "cannot send to the server")))
            }
        case .read:
            readResults()
        case .readWhileIdle:
            // Unsolicited input while idle: usually the server going away.
            guard let conn else { return }
            let ok = PQconsumeInput(conn) == 1 && PQstatus(conn) == CONNECTION_OK
            handle(machine.idleInput(ok: ok, message: ok ? "" : errorMessage ?? "connection closed by the server"))
        case .finish(let delivery):
            watch(.readable)
            onEvent(self, .idle)
            delivery.completion(delivery.result)
        case .reject(let completion, let error):
            completion(.failure(error))
        case .close(let reason, let wasConnecting, let delivery):
            teardown()
            onEvent(self, .closed(reason, wasConnecting: wasConnecting))
            delivery.map { $0.completion($0.result) }
        }
    }

    private func continueConnecting() {
        guard let conn else { return }
        // Checked before libpq writes its first byte on a newly connected socket.
        if SocketIdentity.isConnectedToItself(PQsocket(conn)) {
            return handle(machine.selfConnectDetected())
        }
        let outcome: Machine.ConnectPoll
        switch PQconnectPoll(conn) {
        case PGRES_POLLING_READING: outcome = .reading
        case PGRES_POLLING_WRITING: outcome = .writing
        case PGRES_POLLING_OK: outcome = .ok
        default: outcome = .failed(errorMessage ?? "cannot connect")
        }
        handle(machine.connectPolled(outcome))
    }

    private func transmit(_ request: Machine.Request) {
        guard let conn else { return handle(machine.sent(ok: false, message: "connection is closed")) }
        let sent: Int32
        switch request {
        case .prepare(let name, let statement):
            sent = PQsendPrepare(conn, name, statement.sql, Int32(statement.parameters.count), nil)
        case .executePrepared(let name, let statement):
            sent = statement.withLibpqParameters { values, lengths, formats in
                PQsendQueryPrepared(conn, name, Int32(statement.parameters.count), values, lengths, formats, statement.binaryResults ? 1 : 0)
            }
        case .execute(let statement):
            sent = statement.withLibpqParameters { values, lengths, formats in
                PQsendQueryParams(conn, statement.sql, Int32(statement.parameters.count), nil, values, lengths, formats,
                                  statement.binaryResults ? 1 : 0)
            }
        }
        handle(machine.sent(ok: sent == 1, message: sent == 1 ? "" : errorMessage ?? "send failed"))
    }

    /// Reads what arrived; readiness may be spurious, so this goes on until libpq would block.
    private func readResults() {
        guard let conn else { return }
        guard PQconsumeInput(conn) == 1 else {
            return handle(machine.readFailed(errorMessage ?? "cannot read from the server"))
        }
        while machine.phase == .busy, PQisBusy(conn) == 0 {
            guard let result = PQgetResult(conn) else {
                return handle(machine.resultsEnded(connectionOK: PQstatus(conn) == CONNECTION_OK))
            }
            switch PQresultStatus(result) {
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                handle(machine.resultReceived(.success(ResultSet(owning: result))))
            default:
                let error = DatabaseError.from(result, connection: conn)
                PQclear(result)
                handle(machine.resultReceived(.failure(error)))
            }
        }
    }

    /// Polls libpq's socket. While connecting libpq may replace its socket by one with the
    /// same number, so the watcher follows the socket itself (`verify`), not its number.
    private func watch(_ interest: Machine.Interest, verify: Bool = false) {
        guard let conn else { return }
        let fd = PQsocket(conn)
        guard fd >= 0 else { return handle(machine.closeRequested(.unavailable("the connection has no socket"))) }
        if watcher == nil || verify || machine.phase == .connecting {
            let key = SocketIdentity.key(fd)
            if key != watched {
                watcher?.close()
                watcher = nil
                watched = key
                do {
                    watcher = try PollWatcher(loop: loop, fd: fd) { [weak self] status, events in
                        guard let self else { return }
                        handle(machine.socketReady(readable: events.contains(.readable),
                                                   writable: events.contains(.writable), error: status < 0))
                    }
                } catch {
                    return handle(machine.closeRequested(.unavailable("cannot watch the database socket: \(error)")))
                }
            }
        }
        switch interest {
        case .readable: watcher?.watch(.readable)
        case .writable: watcher?.watch(.writable)
        case .readableAndWritable: watcher?.watch([.readable, .writable])
        }
    }

    private var errorMessage: String? {
        guard let conn, let message = PQerrorMessage(conn) else { return nil }
        let text = String(cString: message).trimmingTrailingNewlines
        return text.isEmpty ? nil : text
    }

    /// The watcher goes before the socket (libuv must not poll a closed descriptor).
    private func teardown() {
        connectTimer?.close()
        connectTimer = nil
        watcher?.close()
        watcher = nil
        watched = nil
        if let conn { PQfinish(conn) }
        conn = nil
    }

    deinit { teardown() }
}
