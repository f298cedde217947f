/// The logic of one HTTP/1.1 connection, apart from its socket and its parser: what to do
/// when bytes arrive, a request is parsed or refused, the handler answers, a write
/// completes, the clock ticks, the client goes, or the server drains. Each event is a
/// `mutating func` that returns the actions for the driver (`HTTPConnection`) to run, in
/// order, so that every rule here is tested without a socket (as vapor/postgres-nio's
/// `ConnectionStateMachine` and swift-nio's `HTTPServerPipelineHandler` are built).
///
/// The rules (RULES.md section 5: no client can stall, exhaust or crash the server):
/// - Requests are answered one at a time, in the order they came (pipelining).
/// - Reading stops while `maxQueuedRequests` requests wait, and resumes below half that.
/// - Reading, and handing requests to the handler, stop while `maxUnsentBytes` of answers
///   wait to be written (written with `uv_write`, not yet completed: a client that does
///   not read its answers), and resume below half that.
/// - A request must arrive whole within `requestReadTimeoutMilliseconds` of its first
///   byte, whatever the bytes (blank lines before a request line included). The clock
///   stops while the server itself does not read, and starts again when it reads again.
/// - A connection where nothing has moved for `idleTimeoutMilliseconds` while the handler
///   has nothing of it closes (a keep-alive connection at rest, or a client that reads
///   none of its answers).
/// - A refusal (400, 413, 431) is answered in its turn, then the write side is shut and
///   what the client still sends is read and dropped until it closes, at most
///   `lingerMilliseconds` (lingering close: the client sees the answer, not a reset).
/// - Draining (`finish`): nothing more is read, what was received is answered, the last
///   answer with `Connection: close`; a connection with nothing to answer closes at once.
///
/// Times are the loop's milliseconds (`uv_now`), given with each event that needs them.
/// Visible to the package (not public) for the `http` fuzz harness, which drives it as
/// `HTTPConnection` does.
package struct HTTPConnectionStateMachine {
    package enum Action {
        case startReading
        case stopReading
        /// Hand the request to the handler; its answer comes back through `responseReady`.
        /// Always the last action of a list: the handler may answer at once, re-entering.
        case dispatch(HTTPRequest)
        /// Queue these bytes on the socket, the head then the body (an answer, or
        /// `100 Continue` with no body); report their completion with `writeCompleted`.
        /// Two parts, so that an answer's body is not copied behind its head first.
        case write(head: [UInt8], body: [UInt8])
        /// Shut the write side once the queued writes are done; report with `shutdownCompleted`.
        case shutdown
        /// Close the socket now (pending writes are dropped). Nothing follows it.
        case close
    }

    /// What to do with bytes just read.
    package enum Input: Equatable {
        /// Give them to the parser.
        case parse
        /// Drop them: no more requests are taken on this connection.
        case discard
    }

    private enum State: Equatable {
        /// Reading requests and answering them in order.
        case open
        /// The last request is queued (it asked to close, or it is a refusal): no more
        /// requests are taken, and what the client sends is read and dropped.
        case lastRequestQueued
        /// The server drains: nothing more is read; what was received is answered, the last
        /// answer with `Connection: close`.
        case finishing
        /// The last answer is written and the write side is being shut; then the socket closes.
        case shuttingDown
        /// A refusal was answered and the write side shut: input is read and dropped until
        /// the client closes, at most `lingerMilliseconds` after `since`.
        case lingering(since: UInt64)
        case closed
    }

    private enum Pending {
        case request(HTTPRequest, keepAlive: Bool)
        /// The server's own answer to a request it would not read (malformed, too large);
        /// the connection closes after it.
        case refusal(HTTPResponse)
    }

    private let limits: HTTPServer.Limits
    private var state = State.open
    /// Parsed and not yet handed to the handler, in order (a few dozen at most: reading
    /// stops at `maxQueuedRequests`, give or take what one read held).
    private var queue: [Pending] = []
    /// Whether a request is with the handler, and if so whether its answer may keep the
    /// connection open.
    private var handling: KeepAlive?
    private enum KeepAlive { case yes, no }
    /// Answer bytes given to `write` and not yet reported written.
    private var unsentBytes = 0
    /// Whether the driver was last told to read.
    private var reading = false
    private var pausedForQueue = false
    private var pausedForWrites = false
    /// When the first byte of the request being read arrived, or nil between requests.
    private var requestStarted: UInt64?
    /// The last time a byte was read, an answer was given to `write`, or a write completed.
    private var lastActivity: UInt64

    package init(limits: HTTPServer.Limits, now: UInt64) {
        self.limits = limits
        lastActivity = now
    }

    // MARK: - Events

    /// The connection is accepted.
    package mutating func opened() -> [Action] {
        proceed(now: lastActivity)
    }

    /// Bytes arrived. Any byte starts the request clock when no request is being read, so
    /// that blank lines (which http_parser skips without beginning a message) count too.
    package mutating func bytesReceived(now: UInt64) -> Input {
        guard state == .open else { return .discard }
        lastActivity = now
        if requestStarted == nil { requestStarted = now }
        return .parse
    }

    /// http_parser began a request (its first bytes may follow a request just completed).
    package mutating func requestBegun(now: UInt64) -> [Action] {
        if state == .open, requestStarted == nil { requestStarted = now }
        return []
    }

    /// The request's head asks for `100 Continue` before its body.
    package mutating func continueExpected() -> [Action] {
        guard state == .open else { return [] }
        return [send(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), [])]
    }

    /// A request arrived whole. `keepAlive` is false when it asks to close the connection.
    package mutating func requestParsed(_ request: HTTPRequest, keepAlive: Bool, now: UInt64) -> [Action] {
        guard state == .open else { return [] }
        requestStarted = nil
        queue.append(.request(request, keepAlive: keepAlive))
        if !keepAlive { state = .lastRequestQueued }
        return proceed(now: now)
    }

    /// What http_parser found in bytes just read, as the event it is for this machine.
    /// `refusal` makes the answer to bytes that are not a request the server reads.
    package mutating func parsed(_ event: HTTPRequestParser.Event, now: UInt64,
                                 refusal: (_ status: Int, _ message: String) -> HTTPResponse) -> [Action] {
        switch event {
        case .begun: return requestBegun(now: now)
        case .continueExpected: return continueExpected()
        case .request(let request, let keepAlive): return requestParsed(request, keepAlive: keepAlive, now: now)
        case .failed(let status, let message): return parseFailed(refusal: refusal(status, message), now: now)
        }
    }

    /// The bytes are not a request the server will read; `refusal` answers them in turn.
    package mutating func parseFailed(refusal: HTTPResponse, now: UInt64) -> [Action] {
        guard state == .open else { return [] }
        requestStarted = nil
        queue.append(.refusal(refusal))
        state = .lastRequestQueued
        return proceed(now: now)
    }

    /// The handler answered the request it was given. After the connection closed, the
    /// answer is dropped.
    package mutating func responseReady(_ response: HTTPResponse, now: UInt64) -> [Action] {
        guard let request = handling, isAnswering else { return [] }
        handling = nil
        return answer(response, keepAlive: request == .yes, refusal: false, now: now) + proceed(now: now)
    }

    /// `bytes` given to an earlier `write` are on their way to the client.
    package mutating func writeCompleted(bytes: Int, now: UInt64) -> [Action] {
        guard state != .closed else { return [] }
        unsentBytes -= bytes
        lastActivity = now
        return proceed(now: now)
    }

    /// The write side is shut: the connection closes, unless it lingers for the client.
    package mutating func shutdownCompleted() -> [Action] {
        guard state == .shuttingDown else { return [] }
        return closeNow()
    }

    /// The server's clock: closes a connection past one of its time limits.
    package mutating func tick(now: UInt64) -> [Action] {
        switch state {
        case .closed:
            return []
        case .lingering(let since):
            return elapsed(since, now) > limits.lingerMilliseconds ? closeNow() : []
        default:
            if reading, let started = requestStarted, elapsed(started, now) > limits.requestReadTimeoutMilliseconds {
                return closeNow()
            }
            if handling == nil, elapsed(lastActivity, now) > limits.idleTimeoutMilliseconds { return closeNow() }
            return []
        }
    }

    /// The client closed its end (read EOF), or the socket failed.
    package mutating func peerClosed() -> [Action] {
        closeNow()
    }

    /// The server closes the connection whatever it is doing (its drain deadline passed).
    package mutating func abort() -> [Action] {
        closeNow()
    }

    /// The server drains (SIGTERM): read no more, answer what was received, then close.
    package mutating func finish(now: UInt64) -> [Action] {
        guard state == .open || state == .lastRequestQueued else { return [] }
        state = .finishing
        if handling == nil && queue.isEmpty { return end(refusal: false, now: now) + proceed(now: now) }
        return proceed(now: now)
    }

    // MARK: - Answering

    private var isAnswering: Bool {
        state == .open || state == .lastRequestQueued || state == .finishing
    }

    /// Hands the next request to the handler, or writes the next refusal, when nothing is
    /// with the handler and the client reads its answers; then says whether to read.
    private mutating func proceed(now: UInt64) -> [Action] {
        updatePauses()
        var actions: [Action] = []
        var next: HTTPRequest?
        while next == nil, isAnswering, handling == nil, !pausedForWrites, !queue.isEmpty {
            switch queue.removeFirst() {
            case .request(let request, let keepAlive):
                handling = keepAlive ? .yes : .no
                next = request
            case .refusal(let response):
                actions += answer(response, keepAlive: false, refusal: true, now: now)
            }
        }
        updatePauses()
        actions += readingChange(now: now)
        if let next { actions.append(.dispatch(next)) }
        return actions
    }

    /// Writes an answer; the last one (it closes, it is a refusal, or the server drains and
    /// nothing else waits) says `Connection: close` and ends the connection.
    private mutating func answer(_ response: HTTPResponse, keepAlive: Bool, refusal: Bool, now: UInt64) -> [Action] {
        let last = refusal || !keepAlive || (state == .finishing && queue.isEmpty)
        lastActivity = now
        let write = send(response.head(keepAlive: !last), response.body)
        return last ? [write] + end(refusal: refusal, now: now) : [write]
    }

    private mutating func send(_ head: [UInt8], _ body: [UInt8]) -> Action {
        unsentBytes += head.count + body.count
        return .write(head: head, body: body)
    }

    /// Nothing more will be written: shut the write side (and linger after a refusal), or
    /// close at once when nothing waits to be written.
    private mutating func end(refusal: Bool, now: UInt64) -> [Action] {
        if refusal {
            state = .lingering(since: now)
        } else if unsentBytes == 0 {
            return closeNow()
        } else {
            state = .shuttingDown
        }
        return [.shutdown]
    }

    private mutating func closeNow() -> [Action] {
        guard state != .closed else { return [] }
        state = .closed
        reading = false
        handling = nil
        queue = []
        return [.close]
    }

    // MARK: - Reading

    /// Backpressure, with room between stopping and resuming so that reading does not
    /// flap: too many requests waiting, or too many answer bytes the client has not taken.
    private mutating func updatePauses() {
        if queue.count >= limits.maxQueuedRequests { pausedForQueue = true }
        if queue.count < limits.maxQueuedRequests / 2 { pausedForQueue = false }
        if unsentBytes >= limits.maxUnsentBytes { pausedForWrites = true }
        if unsentBytes < limits.maxUnsentBytes / 2 { pausedForWrites = false }
    }

    private var wantsToRead: Bool {
        switch state {
        case .open: return !pausedForQueue && !pausedForWrites
        case .lastRequestQueued, .lingering: return true  // to drop what the client still sends
        case .finishing, .shuttingDown, .closed: return false
        }
    }

    private mutating func readingChange(now: UInt64) -> [Action] {
        let wanted = wantsToRead
        guard wanted != reading, state != .closed else { return [] }
        reading = wanted
        // The request clock stood still while the server did not read.
        if wanted, requestStarted != nil { requestStarted = now }
        return [wanted ? .startReading : .stopReading]
    }

    private func elapsed(_ start: UInt64, _ now: UInt64) -> UInt64 { now > start ? now - start : 0 }
}
