/// What one PostgreSQL connection is doing, apart from libpq and the socket: a value that
/// takes events (the socket is ready, libpq answered, a statement is asked for, the timer
/// fired, close was asked) and answers with the one action its driver, `AsyncConnection`,
/// must run. The driver owns the `PGconn` and the poll watcher and feeds back what each
/// action gave. Modelled on postgres-nio's `ConnectionStateMachine`.
///
/// Every statement leaves by exactly one path: a statement that is accepted is held in the
/// state (`busy`) until `.finish` or `.close` hands its completion back; one that is not
/// accepted is given back at once with `.reject`. The completion is not called here: the
/// driver calls it, once, from the action.
///
/// `Rows` is what a successful statement gives (`ResultSet` in the driver, anything in the
/// tests), so the machine is tested without libpq or a socket.
struct ConnectionStateMachine<Rows> {
    typealias Completion = (Result<Rows, DatabaseError>) -> Void

    enum Interest: Equatable, Sendable { case readable, writable, readableAndWritable }

    /// What `PQconnectPoll` said.
    enum ConnectPoll: Equatable, Sendable { case reading, writing, ok, failed(String) }

    /// What `PQflush` said.
    enum Flush: Equatable, Sendable { case done, more, failed(String) }

    /// What the driver hands to libpq for the statement in hand.
    enum Request {
        /// `PQsendPrepare` under `name`; the statement runs once that is done.
        case prepare(name: String, Statement)
        /// `PQsendQueryPrepared` of a statement prepared earlier on this connection.
        case executePrepared(name: String, Statement)
        /// `PQsendQueryParams`, unprepared (the connection has prepared enough).
        case execute(Statement)
    }

    /// A completion and what to give it.
    struct Delivery {
        let completion: Completion
        let result: Result<Rows, DatabaseError>
    }

    enum Action {
        case none
        /// Poll the socket for these events.
        case watch(Interest)
        /// The socket moved while connecting: check it is not connected to itself, then
        /// call `PQconnectPoll` and report with `connectPolled`.
        case continueConnecting
        /// Connected: stop the connect timer, watch for readable, tell the pool.
        case ready
        /// Hand the request to libpq and report with `sent`.
        case send(Request)
        /// `PQflush` and report with `flushed`.
        case flush
        /// `PQconsumeInput`, then `PQgetResult` while `PQisBusy` says a result is whole,
        /// reporting each with `resultReceived` and the end with `resultsEnded`, or a
        /// failure with `readFailed`.
        case read
        /// Unsolicited input while idle: `PQconsumeInput`, report with `idleInput`.
        case readWhileIdle
        /// The statement is done and the connection idle: watch for readable, tell the pool,
        /// then deliver.
        case finish(Delivery)
        /// Give a statement that could not be accepted its error at once; nothing changes.
        case reject(Completion, DatabaseError)
        /// Stop the watcher and the timer, `PQfinish`, tell the pool (a connection that
        /// never became ready is a failed connection attempt), then deliver if there is a
        /// statement in hand.
        case close(reason: DatabaseError, wasConnecting: Bool, deliver: Delivery?)
    }

    private struct Pending {
        let statement: Statement
        let completion: Completion
        /// The name being prepared, while the prepare step is on its way.
        var preparing: String?
        var rows: Rows?
        var error: DatabaseError?
    }

    private enum State {
        case connecting
        case idle
        case busy(Pending)
        case closed
    }

    private var state: State = .connecting
    /// Statements prepared on this connection, by their text. The service's statement
    /// texts depend only on a query's shape, so a few hundred cover every query seen, and
    /// PostgreSQL plans each once instead of on every request.
    private(set) var prepared: [SQLKey: String] = [:]
    let maxPrepared: Int

    init(maxPrepared: Int = 500) {
        self.maxPrepared = maxPrepared
    }

    enum Phase: Equatable, Sendable { case connecting, idle, busy, closed }

    var phase: Phase {
        switch state {
        case .connecting: return .connecting
        case .idle: return .idle
        case .busy: return .busy
        case .closed: return .closed
        }
    }

    // MARK: connecting

    /// `PQconnectStart` gave a connection (libpq: poll as if `PQconnectPoll` said writing),
    /// or it failed at once (`failed`).
    mutating func started(_ outcome: ConnectPoll) -> Action {
        connectPolled(outcome)
    }

    mutating func connectPolled(_ outcome: ConnectPoll) -> Action {
        guard case .connecting = state else { return .none }
        switch outcome {
        case .reading: return .watch(.readable)
        case .writing: return .watch(.writable)
        case .ok:
            state = .idle
            return .ready
        case .failed(let message):
            return close(.unavailable(message))
        }
    }

    /// The socket is connected to itself (source and destination address and port are
    /// the same: a TCP self-connect to a port nobody listens on). Closed at once, so this
    /// process never holds the database's port.
    mutating func selfConnectDetected() -> Action {
        guard case .connecting = state else { return .none }
        return close(.unavailable("the connection was connected to itself (TCP self-connect); closed"))
    }

    mutating func connectTimedOut() -> Action {
        guard case .connecting = state else { return .none }
        return close(.unavailable("timed out connecting"))
    }

    // MARK: the socket

    /// The watcher reported readiness (`error`: libuv reported a socket error and stopped
    /// the watcher).
    mutating func socketReady(readable: Bool, writable: Bool, error: Bool) -> Action {
        switch state {
        case .connecting:
            // libpq reads the socket's error itself and may move to its next address.
            return .continueConnecting
        case .idle:
            if error { return close(.unavailable("connection lost")) }
            return readable ? .readWhileIdle : .none
        case .busy:
            if error { return close(.unavailable("connection lost")) }
            if writable { return .flush }
            return readable ? .read : .none
        case .closed:
            return .none
        }
    }

    /// What `PQconsumeInput` made of unsolicited input while idle (`ok`: it succeeded and
    /// the connection is still good).
    mutating func idleInput(ok: Bool, message: String) -> Action {
        guard case .idle = state, !ok else { return .none }
        return close(.unavailable(message))
    }

    // MARK: statements

    mutating func sendRequested(_ statement: Statement, completion: @escaping Completion) -> Action {
        switch state {
        case .idle:
            break
        case .connecting, .busy:
            return .reject(completion, .unavailable("connection is not ready"))
        case .closed:
            return .reject(completion, .unavailable("connection is closed"))
        }
        var pending = Pending(statement: statement, completion: completion)
        let request: Request
        if let name = prepared[SQLKey(statement)] {
            request = .executePrepared(name: name, statement)
        } else if prepared.count < maxPrepared {
            let name = "bg\(prepared.count)"
            pending.preparing = name
            request = .prepare(name: name, statement)
        } else {
            request = .execute(statement)
        }
        state = .busy(pending)
        return .send(request)
    }

    /// Whether libpq took the request (`PQsend...` returned 1).
    mutating func sent(ok: Bool, message: String) -> Action {
        guard case .busy = state else { return .none }
        return ok ? .flush : close(.unavailable(message))
    }

    mutating func flushed(_ outcome: Flush) -> Action {
        guard case .busy = state else { return .none }
        switch outcome {
        case .done: return .watch(.readable)
        case .more: return .watch(.readableAndWritable)
        case .failed(let message): return close(.unavailable(message))
        }
    }

    /// One result of the statement in hand: rows (the last ones count), or the server's
    /// error (the first one counts).
    mutating func resultReceived(_ result: Result<Rows, DatabaseError>) -> Action {
        guard case .busy(var pending) = state else { return .none }
        switch result {
        case .success(let rows): pending.rows = rows
        case .failure(let error): if pending.error == nil { pending.error = error }
        }
        state = .busy(pending)
        return .none
    }

    /// `PQgetResult` said the request is over (`connectionOK`: libpq's status is still good).
    mutating func resultsEnded(connectionOK: Bool) -> Action {
        guard case .busy(var pending) = state else { return .none }
        if let name = pending.preparing, pending.error == nil, connectionOK {
            // Prepared: now run it.
            prepared[SQLKey(pending.statement)] = name
            pending.preparing = nil
            pending.rows = nil
            state = .busy(pending)
            return .send(.executePrepared(name: name, pending.statement))
        }
        let outcome: Result<Rows, DatabaseError>
        if let error = pending.error {
            outcome = .failure(error)
        } else if pending.preparing != nil {
            outcome = .failure(.unavailable("connection lost while preparing"))
        } else if let rows = pending.rows {
            outcome = .success(rows)
        } else {
            outcome = .failure(.unavailable("no result"))
        }
        let delivery = Delivery(completion: pending.completion, result: outcome)
        guard connectionOK else {
            state = .closed
            return .close(reason: .unavailable("connection lost"), wasConnecting: false, deliver: delivery)
        }
        state = .idle
        return .finish(delivery)
    }

    /// `PQconsumeInput` failed: the connection is gone.
    mutating func readFailed(_ message: String) -> Action {
        guard case .busy = state else { return .none }
        return close(.unavailable(message))
    }

    // MARK: closing

    /// The owner closes the connection (shutdown, a lease given back inside a transaction).
    mutating func closeRequested(_ reason: DatabaseError) -> Action {
        close(reason)
    }

    private mutating func close(_ reason: DatabaseError) -> Action {
        switch state {
        case .closed:
            return .none
        case .connecting:
            state = .closed
            return .close(reason: reason, wasConnecting: true, deliver: nil)
        case .idle:
            state = .closed
            return .close(reason: reason, wasConnecting: false, deliver: nil)
        case .busy(let pending):
            state = .closed
            let error: DatabaseError = reason.isUnavailable ? reason : .unavailable(reason.description)
            return .close(reason: reason, wasConnecting: false,
                          deliver: Delivery(completion: pending.completion, result: .failure(error)))
        }
    }
}
