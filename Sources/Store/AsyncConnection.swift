import CLibPQ
import EventLoop

/// One non-blocking PostgreSQL connection driven by its loop: `uv_poll` on `PQsocket()`,
/// never a blocking libpq call. It runs one statement at a time; the pool keeps several.
///
/// Lifetime: owns its `PGconn` from `PQconnectStart` until `close()` (`PQfinish`), and
/// its poll watcher, which is closed before the socket goes.
final class AsyncConnection {
    enum State { case connecting, idle, busy, closed }

    private let loop: EventLoop
    private var conn: OpaquePointer?
    private var watcher: PollWatcher?
    private var watchedSocket: Int32 = -1
    private(set) var state: State = .connecting
    /// Lent out by the pool (`Lease`): only its holder sends statements.
    var leased = false
    private var completion: ((Result<ResultSet, DatabaseError>) -> Void)?
    private var lastResult: OpaquePointer?
    private var lastError: DatabaseError?
    /// Told when the connection becomes idle or closes.
    private let onChange: (AsyncConnection) -> Void
    /// Statements prepared on this connection, by their text. The service's statement
    /// texts depend only on a query's shape, so a few hundred cover every query seen, and
    /// PostgreSQL plans each once instead of on every request.
    private var prepared: [String: String] = [:]
    static let maxPrepared = 500

    init(loop: EventLoop, conninfo: String, onChange: @escaping (AsyncConnection) -> Void) {
        self.loop = loop
        self.onChange = onChange
        conn = PQconnectStart(conninfo)
        guard let conn, PQstatus(conn) != CONNECTION_BAD else {
            close()  // the pool sees `.closed` and does not keep it
            return
        }
        PQsetnonblocking(conn, 1)
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        // libpq: after PQconnectStart, poll as if PQconnectPoll had said PGRES_POLLING_WRITING.
        watchSocket(.writable)
    }

    /// (Re)creates the watcher when libpq changed sockets (it may, while connecting).
    private func watchSocket(_ events: PollWatcher.Events) {
        guard let conn else { return }
        let fd = PQsocket(conn)
        if fd != watchedSocket {
            watcher?.close()
            watcher = nil
            watchedSocket = fd
            do {
                watcher = try PollWatcher(loop: loop, fd: fd) { [weak self] status, events in
                    self?.socketReady(status: status, events: events)
                }
            } catch {
                return fail(.unavailable("cannot watch the database socket: \(error)"))
            }
        }
        watcher?.watch(events)
    }

    private func socketReady(status: Int32, events: PollWatcher.Events) {
        switch state {
        case .connecting: continueConnecting()
        case .busy:
            if events.contains(.writable) { flush() }
            if state == .busy, events.contains(.readable) || status < 0 { readResults() }
        case .idle:
            // Unsolicited input while idle: usually the server going away.
            guard let conn, PQconsumeInput(conn) == 1, PQstatus(conn) == CONNECTION_OK else {
                return fail(.unavailable("connection closed by the server"))
            }
        case .closed: break
        }
    }

    private func continueConnecting() {
        guard let conn else { return }
        switch PQconnectPoll(conn) {
        case PGRES_POLLING_READING: watchSocket(.readable)
        case PGRES_POLLING_WRITING: watchSocket(.writable)
        case PGRES_POLLING_OK:
            state = .idle
            watchSocket(.readable)
            onChange(self)
        default:
            fail(.unavailable(String(cString: PQerrorMessage(conn)).trimmingTrailingNewlines))
        }
    }

    /// Sends one statement; `completion` runs on the loop with its rows or its error.
    /// A statement seen for the first time is prepared first (one more round trip, once).
    func send(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        guard state == .idle, let conn else {
            return completion(.failure(.unavailable("connection is not ready")))
        }
        if let name = prepared[statement.sql] {
            return transmit(completion) {
                statement.withCParameters { params in
                    PQsendQueryPrepared(conn, name, Int32(statement.parameters.count), params, nil, nil, 0)
                }
            }
        }
        guard prepared.count < Self.maxPrepared else {
            return transmit(completion) {
                statement.withCParameters { params in
                    PQsendQueryParams(conn, statement.sql, Int32(statement.parameters.count), nil, params, nil, nil, 0)
                }
            }
        }
        let name = "bg\(prepared.count)"
        transmit({ [weak self] result in
            guard let self else { return completion(result) }
            switch result {
            case .success:
                prepared[statement.sql] = name
                send(statement, completion: completion)
            case .failure(let error):
                completion(.failure(error))
            }
        }) {
            PQsendPrepare(conn, name, statement.sql, Int32(statement.parameters.count), nil)
        }
    }

    /// Hands one request to libpq and waits for its result.
    private func transmit(_ completion: @escaping (Result<ResultSet, DatabaseError>) -> Void, _ send: () -> Int32) {
        guard let conn else { return completion(.failure(.unavailable("connection is closed"))) }
        let sent = send()
        guard sent == 1 else {
            completion(.failure(.unavailable(String(cString: PQerrorMessage(conn)).trimmingTrailingNewlines)))
            return fail(.unavailable("send failed"))
        }
        state = .busy
        self.completion = completion
        flush()
    }

    private func flush() {
        guard let conn else { return }
        switch PQflush(conn) {
        case 0: watchSocket(.readable)
        case 1: watchSocket([.readable, .writable])
        default: fail(.unavailable(String(cString: PQerrorMessage(conn)).trimmingTrailingNewlines))
        }
    }

    /// Reads what arrived; readiness may be spurious, so this loops until libpq would block.
    private func readResults() {
        guard let conn else { return }
        guard PQconsumeInput(conn) == 1 else {
            return fail(.unavailable(String(cString: PQerrorMessage(conn)).trimmingTrailingNewlines))
        }
        while PQisBusy(conn) == 0 {
            guard let result = PQgetResult(conn) else { return finishStatement() }
            switch PQresultStatus(result) {
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                if let previous = lastResult { PQclear(previous) }
                lastResult = result
            default:
                if lastError == nil { lastError = DatabaseError.from(result, connection: conn) }
                PQclear(result)
            }
        }
    }

    private func finishStatement() {
        let completion = self.completion
        let outcome: Result<ResultSet, DatabaseError>
        if let error = lastError {
            if let r = lastResult { PQclear(r) }
            outcome = .failure(error)
        } else if let r = lastResult {
            outcome = .success(ResultSet(owning: r))
        } else {
            outcome = .failure(.unavailable("no result"))
        }
        lastResult = nil
        lastError = nil
        self.completion = nil
        state = .idle
        completion?(outcome)
        if state == .idle { onChange(self) }
    }

    /// Whether the server says no transaction is open on this connection.
    var isIdleOutsideTransaction: Bool {
        guard let conn else { return false }
        return PQtransactionStatus(conn) == PQTRANS_IDLE
    }

    /// Closes the connection, failing the statement in flight if there is one.
    func fail(_ error: DatabaseError) {
        guard state != .closed else { return }
        state = .closed
        let completion = self.completion
        self.completion = nil
        close()
        completion?(.failure(error.isUnavailable ? error : .unavailable(error.description)))
        onChange(self)
    }

    func close() {
        state = .closed
        watcher?.close()
        watcher = nil
        if let r = lastResult { PQclear(r); lastResult = nil }
        if let conn { PQfinish(conn) }
        conn = nil
    }

    deinit {
        if let conn { PQfinish(conn) }
    }
}
