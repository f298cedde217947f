import Server

/// The HTTP harness: what a client sends, read in pieces through http_parser
/// (`HTTPRequestParser`) into the connection's state machine, which is driven as
/// `HTTPConnection` drives it, with the socket, the clock and the handler simulated.
///
/// The input is a schedule and the client's bytes: its first byte says how many schedule
/// bytes follow; the rest is what the client sends. Each schedule byte is one event, its
/// top three bits the kind and its low five an argument: read a piece of the client's
/// bytes, the handler answers, a write completes, the clock moves, the client goes, the
/// server drains. Then the rest is read, and the connection is wound down.
///
/// Checked (RULES.md §5; the rules in `HTTPConnectionStateMachine`'s comment):
/// - one request at a time with the handler, handed over while fewer than
///   `maxUnsentBytes` of answers wait, and never a request larger than the limits;
/// - answers are written in the order the requests came, refusals (400, 413, 431) in
///   their turn, and nothing is written or done after the close;
/// - reading is started and stopped alternately;
/// - wound down (drained, answers taken, time passing), every connection closes.
func fuzzHTTP(_ input: [UInt8]) {
    var rest = ArraySlice(input)
    var schedule = ArraySlice<UInt8>()
    if let count = rest.first {
        schedule = rest.dropFirst().prefix(Int(count))
        rest = rest.dropFirst(1 + schedule.count)
    }
    var connection = SimulatedConnection()
    for event in schedule { connection.perform(event, reading: &rest) }
    connection.receive(&rest, upTo: rest.count)
    connection.windDown()
}

/// Small limits, so that small inputs reach them.
private let limits: HTTPServer.Limits = {
    var limits = HTTPServer.Limits()
    limits.maxBodyBytes = 2048
    limits.maxHeaderBytes = 1024
    limits.idleTimeoutMilliseconds = 2000
    limits.requestReadTimeoutMilliseconds = 1000
    limits.lingerMilliseconds = 500
    limits.maxQueuedRequests = 4
    limits.maxUnsentBytes = 4096
    return limits
}()

private struct SimulatedConnection {
    private var machine = HTTPConnectionStateMachine(limits: limits, now: 0)
    private let parser = HTTPRequestParser(limits: limits)
    private var now: UInt64 = 0
    private var reading = false
    private var closed = false
    private var shutdownPending = false
    /// The request the handler holds, if any.
    private var withHandler = false
    /// The status of each answer to write, in order: nil for a request's, which the handler
    /// decides when it answers; a refusal's status at once.
    private var answers: [Int?] = []
    private var answersWritten = 0
    /// The status the handler is answering with, while `responseReady` runs.
    private var answering: Int?
    /// Sizes of the writes not yet completed, oldest first.
    private var writes: [Int] = []
    private var unsentBytes: Int { writes.reduce(0, +) }

    init() { run(machine.opened()) }

    mutating func perform(_ event: UInt8, reading bytes: inout ArraySlice<UInt8>) {
        let argument = Int(event & 31)
        switch event >> 5 {
        case 0, 1, 2: receive(&bytes, upTo: argument * argument + 1)
        case 3: if withHandler { answer(status: 200 + argument, bodyBytes: argument * 256) }
        case 4: completeWrite(failed: argument == 31)
        case 5: tick(by: UInt64(argument) * 100)
        case 6: completeShutdown(); if argument == 31 { run(machine.peerClosed()) }
        default: if argument == 0 { run(machine.finish(now: now)) } else { tick(by: UInt64(argument)) }
        }
    }

    /// As libuv does: bytes arrive only while the connection reads.
    mutating func receive(_ bytes: inout ArraySlice<UInt8>, upTo count: Int) {
        guard reading, !closed, !bytes.isEmpty else { return }
        let piece = Array(bytes.prefix(count))
        bytes = bytes.dropFirst(piece.count)
        guard machine.bytesReceived(now: now) == .parse else { return }
        let events = piece.withUnsafeBytes { parser.parse($0) }
        for event in events {
            switch event {
            case .request(let request, _):
                // Counted in scalars: a byte that is not UTF-8 was read as one U+FFFD (three bytes).
                let target = request.path.unicodeScalars.count + (request.query?.unicodeScalars.count ?? 0)
                let headerBytes = request.headers.reduce(target) { $0 + $1.0.unicodeScalars.count + $1.1.unicodeScalars.count }
                precondition(request.body.count <= limits.maxBodyBytes, "a body over the limit was read")
                precondition(headerBytes <= limits.maxHeaderBytes, "headers over the limit were read")
                if !closed { answers.append(nil) }
            case .failed(let status, _):
                precondition([400, 413, 431].contains(status), "a refusal with status \(status)")
                if !closed { answers.append(status) }
            case .begun, .continueExpected:
                break
            }
            run(machine.parsed(event, now: now) { HTTPResponse(status: $0, body: Array($1.utf8)) })
        }
    }

    /// Drains, answers, completes and waits until the connection closes, as it must.
    mutating func windDown() {
        run(machine.finish(now: now))
        for _ in 0..<10_000 where !closed {
            if withHandler {
                answer(status: 200, bodyBytes: 10)
            } else if !writes.isEmpty {
                completeWrite(failed: false)
            } else if shutdownPending {
                completeShutdown()
            } else {
                tick(by: 1000)
            }
        }
        precondition(closed, "a drained connection never closed")
    }

    private mutating func answer(status: Int, bodyBytes: Int) {
        withHandler = false
        answering = status
        run(machine.responseReady(HTTPResponse(status: status, body: Array(repeating: 0x61, count: bodyBytes)), now: now))
        answering = nil
    }

    private mutating func completeWrite(failed: Bool) {
        guard !writes.isEmpty else { return }
        let bytes = writes.removeFirst()
        run(failed ? machine.peerClosed() : machine.writeCompleted(bytes: bytes, now: now))
    }

    private mutating func completeShutdown() {
        guard shutdownPending else { return }
        shutdownPending = false
        run(machine.shutdownCompleted())
    }

    private mutating func tick(by milliseconds: UInt64) {
        now += milliseconds
        run(machine.tick(now: now))
    }

    /// Runs the actions as `HTTPConnection` would, checking each.
    private mutating func run(_ actions: [HTTPConnectionStateMachine.Action]) {
        for (index, action) in actions.enumerated() {
            precondition(!closed, "\(action) after the close")
            switch action {
            case .startReading:
                precondition(!reading, "reading started twice")
                reading = true
            case .stopReading:
                precondition(reading, "reading stopped twice")
                reading = false
            case .dispatch:
                precondition(index == actions.count - 1, "a dispatch before other actions")
                precondition(!withHandler, "two requests with the handler")
                precondition(unsentBytes < limits.maxUnsentBytes, "a request handed over while the client reads nothing")
                withHandler = true
            case .write(let head, let body):
                written(head + body)
            case .shutdown:
                precondition(!shutdownPending, "the write side shut twice")
                shutdownPending = true
            case .close:
                closed = true
                reading = false
                writes = []  // libuv cancels them
            }
        }
    }

    /// A write is `100 Continue` or the next answer in order, with the status it must have.
    private mutating func written(_ bytes: [UInt8]) {
        writes.append(bytes.count)
        let statusLine = bytes.prefix { $0 != 0x0D }
        if statusLine.elementsEqual("HTTP/1.1 100 Continue".utf8) { return }
        precondition(answersWritten < answers.count, "an answer to no request")
        let expected = answers[answersWritten] ?? answering
        precondition(expected != nil, "a request's answer written before the handler gave it")
        precondition(statusLine.starts(with: "HTTP/1.1 \(expected!) ".utf8), "answers out of order")
        answersWritten += 1
    }
}
