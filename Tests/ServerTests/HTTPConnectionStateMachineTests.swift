@testable import Server
import XCTest

/// Drives an `HTTPConnectionStateMachine` with events and reads its actions as short words:
/// "read", "pause" (stop reading), "dispatch /a", "write 200 keep-alive", "write 400 close",
/// "write 100", "shutdown", "close". Times are milliseconds of a clock the test moves.
private struct Connection {
    var machine: HTTPConnectionStateMachine
    var now: UInt64 = 0
    /// Sizes of the writes not yet reported complete, oldest first.
    var unsent: [Int] = []
    /// Bodies of the answers written, in order.
    var bodies: [String] = []

    init(limits: HTTPServer.Limits = HTTPServer.Limits()) {
        machine = HTTPConnectionStateMachine(limits: limits, now: 0)
        XCTAssertEqual(record(machine.opened()), ["read"])
    }

    /// One read holding these whole requests (their paths).
    mutating func receive(_ paths: String..., keepAlive: Bool = true) -> [String] {
        XCTAssertEqual(machine.bytesReceived(now: now), .parse)
        return paths.flatMap { path in
            record(machine.requestBegun(now: now))
                + record(machine.requestParsed(request(path), keepAlive: keepAlive, now: now))
        }
    }

    mutating func refuse(_ status: Int) -> [String] {
        record(machine.parseFailed(refusal: HTTPResponse(status: status, body: Array("refused".utf8)), now: now))
    }

    mutating func respond(_ body: String = "", bytes: Int = 0) -> [String] {
        let payload = Array(body.utf8) + [UInt8](repeating: 0x20, count: bytes)
        return record(machine.responseReady(HTTPResponse(status: 200, body: payload), now: now))
    }

    /// libuv reports the oldest write done.
    mutating func completeWrite() -> [String] {
        record(machine.writeCompleted(bytes: unsent.removeFirst(), now: now))
    }

    mutating func tick(at time: UInt64) -> [String] {
        now = time
        return record(machine.tick(now: time))
    }

    mutating func record(_ actions: [HTTPConnectionStateMachine.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .startReading: return "read"
            case .stopReading: return "pause"
            case .dispatch(let request): return "dispatch \(request.path)"
            case .shutdown: return "shutdown"
            case .close: return "close"
            case .write(let head, let body):
                let bytes = head + body
                unsent.append(bytes.count)
                let head = String(decoding: bytes.prefix(256), as: UTF8.self)
                let status = head.split(separator: " ")[1]
                if status == "100" { return "write 100" }
                if bytes.count < 1024 { bodies.append(String(head[head.range(of: "\r\n\r\n")!.upperBound...])) }
                return "write \(status) " + (head.contains("Connection: keep-alive\r\n") ? "keep-alive" : "close")
            }
        }
    }
}

private func request(_ path: String) -> HTTPRequest {
    HTTPRequest(method: "POST", path: path, query: nil, headers: [], body: [])
}

final class HTTPConnectionStateMachineTests: XCTestCase {
    // MARK: Pipelining

    func testPipelinedRequestsAreHandledOneAtATimeAndAnsweredInOrder() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a", "/b", "/c"), ["dispatch /a"])
        XCTAssertEqual(c.respond("a"), ["write 200 keep-alive", "dispatch /b"])
        XCTAssertEqual(c.receive("/d"), [])
        XCTAssertEqual(c.respond("b"), ["write 200 keep-alive", "dispatch /c"])
        XCTAssertEqual(c.respond("c"), ["write 200 keep-alive", "dispatch /d"])
        XCTAssertEqual(c.respond("d"), ["write 200 keep-alive"])
        XCTAssertEqual(c.bodies, ["a", "b", "c", "d"])
        XCTAssertEqual(c.respond("again"), [], "one answer per request")
    }

    func testARequestThatAsksToCloseIsTheLast() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a"), ["dispatch /a"])
        XCTAssertEqual(c.receive("/b", keepAlive: false), [])
        XCTAssertEqual(c.machine.bytesReceived(now: 0), .discard, "nothing after it is read as a request")
        XCTAssertEqual(c.record(c.machine.requestParsed(request("/c"), keepAlive: true, now: 0)), [])
        XCTAssertEqual(c.respond("a"), ["write 200 keep-alive", "dispatch /b"])
        XCTAssertEqual(c.respond("b"), ["write 200 close", "shutdown", "pause"])
        XCTAssertEqual(c.record(c.machine.shutdownCompleted()), ["close"])
        XCTAssertEqual(c.bodies, ["a", "b"])
    }

    func testAnAnswerWrittenWithNothingElseToSayClosesAtOnceWhenItIsTheLast() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a", keepAlive: false), ["dispatch /a"])
        XCTAssertEqual(c.respond("a"), ["write 200 close", "shutdown", "pause"])
        XCTAssertEqual(c.completeWrite(), [])
        XCTAssertEqual(c.record(c.machine.shutdownCompleted()), ["close"])
    }

    func testExpectContinueIsAnsweredWhileRequestsAreTaken() {
        var c = Connection()
        XCTAssertEqual(c.machine.bytesReceived(now: 0), .parse)
        XCTAssertEqual(c.record(c.machine.continueExpected()), ["write 100"])
        XCTAssertEqual(c.record(c.machine.requestParsed(request("/a"), keepAlive: true, now: 0)), ["dispatch /a"])
        XCTAssertEqual(c.refuse(400), [])
        XCTAssertEqual(c.record(c.machine.continueExpected()), [], "not once the connection takes no more requests")
    }

    // MARK: Backpressure

    func testReadingStopsWhile16RequestsWaitAndResumesBelow8() {
        var c = Connection()
        XCTAssertEqual(c.receive("/0"), ["dispatch /0"])
        for i in 1...15 { XCTAssertEqual(c.receive("/\(i)"), [], "\(i) waiting") }
        XCTAssertEqual(c.receive("/16"), ["pause"], "16 waiting")
        for i in 1...8 { XCTAssertEqual(c.respond(), ["write 200 keep-alive", "dispatch /\(i)"], "\(16 - i) waiting") }
        XCTAssertEqual(c.respond(), ["write 200 keep-alive", "read", "dispatch /9"], "7 waiting")
        XCTAssertEqual(c.respond(), ["write 200 keep-alive", "dispatch /10"])
    }

    func testReadingResumesOnlyBelowHalfOnceStopped() {
        var c = Connection()
        XCTAssertEqual(c.receive("/0"), ["dispatch /0"])
        for i in 1...15 { _ = c.receive("/\(i)") }
        XCTAssertEqual(c.receive("/16", "/17"), ["pause"], "the rest of a read is still parsed")
        for i in 1...9 { XCTAssertEqual(c.respond(), ["write 200 keep-alive", "dispatch /\(i)"]) }
        XCTAssertEqual(c.respond(), ["write 200 keep-alive", "read", "dispatch /10"])
    }

    func testFourMebibytesOfUnreadAnswersStopReadingAndHandlingUntilTheyDrain() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a", "/b", "/c"), ["dispatch /a"])
        XCTAssertEqual(c.respond(bytes: 3 << 20), ["write 200 keep-alive", "dispatch /b"])
        XCTAssertEqual(c.respond(bytes: 3 << 19), ["write 200 keep-alive", "pause"], "4.5 MiB wait: /c waits too")
        XCTAssertEqual(c.tick(at: 59_000), [])
        XCTAssertEqual(c.completeWrite(), ["read", "dispatch /c"], "1.5 MiB wait")
        XCTAssertEqual(c.respond("c"), ["write 200 keep-alive"])
    }

    func testUnreadAnswersResumeBelowTwoMebibytes() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a"), ["dispatch /a"])
        XCTAssertEqual(c.respond(bytes: 4 << 20), ["write 200 keep-alive", "pause"])
        XCTAssertEqual(c.machine.writeCompleted(bytes: 2 << 20, now: 0).count, 0, "2 MiB and a head still wait")
        XCTAssertEqual(c.record(c.machine.writeCompleted(bytes: (2 << 20) - 1024, now: 0)), ["read"])
    }

    func testAClientThatReadsNoAnswersIsClosedWhenNothingMovesForTheIdleTimeout() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a", "/b"), ["dispatch /a"])
        XCTAssertEqual(c.respond(bytes: 5 << 20), ["write 200 keep-alive", "pause"])
        XCTAssertEqual(c.tick(at: 60_000), [])
        XCTAssertEqual(c.tick(at: 60_001), ["close"])
    }

    // MARK: Refusals and lingering close

    func testARefusalIsAnsweredInItsTurnThenTheConnectionLingersUntilTheClientCloses() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a"), ["dispatch /a"])
        c.now = 100
        XCTAssertEqual(c.refuse(413), [], "the refusal waits for /a")
        XCTAssertEqual(c.machine.bytesReceived(now: 200), .discard, "what follows is read and dropped")
        XCTAssertEqual(c.record(c.machine.requestParsed(request("/b"), keepAlive: true, now: 200)), [])
        c.now = 300
        XCTAssertEqual(c.respond("a"), ["write 200 keep-alive", "write 413 close", "shutdown"])
        XCTAssertEqual(c.bodies, ["a", "refused"])
        XCTAssertEqual(c.completeWrite(), [])
        XCTAssertEqual(c.completeWrite(), [])
        XCTAssertEqual(c.record(c.machine.shutdownCompleted()), [], "still reading what the client sends")
        XCTAssertEqual(c.machine.bytesReceived(now: 1_000), .discard)
        XCTAssertEqual(c.record(c.machine.peerClosed()), ["close"])
        XCTAssertEqual(c.record(c.machine.peerClosed()), [])
    }

    func testLingeringLastsAtMostTwoSecondsFromTheRefusal() {
        var c = Connection()
        c.now = 5_000
        XCTAssertEqual(c.machine.bytesReceived(now: 5_000), .parse)
        XCTAssertEqual(c.refuse(431), ["write 431 close", "shutdown"])
        XCTAssertEqual(c.machine.bytesReceived(now: 6_500), .discard)
        XCTAssertEqual(c.tick(at: 7_000), [], "the client neither reads nor closes")
        XCTAssertEqual(c.tick(at: 7_001), ["close"])
        XCTAssertEqual(c.tick(at: 9_000), [])
    }

    func testARefusalWaitsForUnreadAnswersLikeAnyOther() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a"), ["dispatch /a"])
        XCTAssertEqual(c.refuse(400), [])
        XCTAssertEqual(c.respond(bytes: 5 << 20), ["write 200 keep-alive"], "reading goes on, to drop input")
        XCTAssertEqual(c.completeWrite(), ["write 400 close", "shutdown"])
    }

    // MARK: Draining (SIGTERM)

    func testDrainingClosesAnIdleConnectionAtOnce() {
        var c = Connection()
        XCTAssertEqual(c.record(c.machine.finish(now: 0)), ["close"])
        XCTAssertEqual(c.record(c.machine.finish(now: 0)), [])
    }

    func testDrainingDropsARequestHalfReceived() {
        var c = Connection()
        XCTAssertEqual(c.machine.bytesReceived(now: 0), .parse)
        XCTAssertEqual(c.record(c.machine.requestBegun(now: 0)), [])
        XCTAssertEqual(c.record(c.machine.finish(now: 0)), ["close"])
    }

    func testDrainingAnIdleConnectionLetsItsLastAnswerOutFirst() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a"), ["dispatch /a"])
        XCTAssertEqual(c.respond("a"), ["write 200 keep-alive"])
        XCTAssertEqual(c.record(c.machine.finish(now: 0)), ["shutdown", "pause"])
        XCTAssertEqual(c.completeWrite(), [])
        XCTAssertEqual(c.record(c.machine.shutdownCompleted()), ["close"])
    }

    func testDrainingABusyConnectionAnswersThenCloses() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a"), ["dispatch /a"])
        XCTAssertEqual(c.record(c.machine.finish(now: 0)), ["pause"])
        XCTAssertEqual(c.machine.bytesReceived(now: 0), .discard)
        XCTAssertEqual(c.respond("a"), ["write 200 close", "shutdown"])
        XCTAssertEqual(c.record(c.machine.shutdownCompleted()), ["close"])
    }

    func testDrainingAnswersEveryRequestReceivedTheLastWithConnectionClose() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a", "/b", "/c"), ["dispatch /a"])
        XCTAssertEqual(c.record(c.machine.finish(now: 0)), ["pause"])
        XCTAssertEqual(c.respond("a"), ["write 200 keep-alive", "dispatch /b"])
        XCTAssertEqual(c.respond("b"), ["write 200 keep-alive", "dispatch /c"])
        XCTAssertEqual(c.respond("c"), ["write 200 close", "shutdown"])
        XCTAssertEqual(c.bodies, ["a", "b", "c"])
    }

    func testDrainingWithARefusalQueuedStillLingers() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a"), ["dispatch /a"])
        XCTAssertEqual(c.refuse(400), [])
        XCTAssertEqual(c.record(c.machine.finish(now: 0)), ["pause"])
        XCTAssertEqual(c.respond("a"), ["write 200 keep-alive", "write 400 close", "shutdown", "read"])
        XCTAssertEqual(c.tick(at: 2_001), ["close"])
    }

    // MARK: Time limits

    func testAnIdleKeepAliveConnectionClosesAfterTheIdleTimeout() {
        var c = Connection()
        XCTAssertEqual(c.tick(at: 30_000), [])
        XCTAssertEqual(c.receive("/a"), ["dispatch /a"])
        XCTAssertEqual(c.tick(at: 100_000), [], "the handler has a request: not idle")
        XCTAssertEqual(c.respond("a"), ["write 200 keep-alive"])
        XCTAssertEqual(c.tick(at: 150_000), [])
        XCTAssertEqual(c.completeWrite(), [], "a write completing is activity")
        XCTAssertEqual(c.tick(at: 210_000), [])
        XCTAssertEqual(c.tick(at: 210_001), ["close"])
        XCTAssertEqual(c.tick(at: 300_000), [])
    }

    func testBlankLinesStartTheRequestClock() {
        var c = Connection()
        // http_parser skips CRLFs before a request line without beginning a message:
        // only `bytesReceived` sees them.
        for time: UInt64 in [1_000, 11_000, 21_000, 31_000] {
            c.now = time
            XCTAssertEqual(c.machine.bytesReceived(now: time), .parse)
            XCTAssertEqual(c.tick(at: time), [])
        }
        XCTAssertEqual(c.tick(at: 31_001), ["close"], "30 s after the first blank line")
    }

    func testARequestMustArriveWholeWithin30SecondsOfItsFirstByte() {
        var c = Connection()
        c.now = 1_000
        XCTAssertEqual(c.machine.bytesReceived(now: 1_000), .parse)
        XCTAssertEqual(c.record(c.machine.requestBegun(now: 1_000)), [])
        XCTAssertEqual(c.machine.bytesReceived(now: 30_000), .parse, "trickled bytes do not restart the clock")
        XCTAssertEqual(c.tick(at: 31_000), [])
        XCTAssertEqual(c.tick(at: 31_001), ["close"])
    }

    func testAWholeRequestStopsTheClockAndTheNextOneInTheSameReadStartsIt() {
        var c = Connection()
        c.now = 1_000
        XCTAssertEqual(c.receive("/a"), ["dispatch /a"])
        XCTAssertEqual(c.tick(at: 40_000), [], "no request being read")
        XCTAssertEqual(c.respond("a"), ["write 200 keep-alive"])
        c.now = 50_000
        XCTAssertEqual(c.receive("/b"), ["dispatch /b"])
        XCTAssertEqual(c.record(c.machine.requestBegun(now: 50_000)), [], "the start of /c came in the same read")
        XCTAssertEqual(c.tick(at: 80_000), [])
        XCTAssertEqual(c.tick(at: 80_001), ["close"])
    }

    func testTheRequestClockStandsStillWhileTheServerDoesNotRead() {
        var c = Connection()
        XCTAssertEqual(c.receive("/0"), ["dispatch /0"])
        for i in 1...15 { _ = c.receive("/\(i)") }
        XCTAssertEqual(c.receive("/16"), ["pause"])
        XCTAssertEqual(c.record(c.machine.requestBegun(now: 0)), [], "/17 begun in the same read")
        XCTAssertEqual(c.tick(at: 45_000), [], "not the client's fault: the server stopped reading")
        for _ in 1...8 { _ = c.respond() }
        XCTAssertEqual(c.respond(), ["write 200 keep-alive", "read", "dispatch /9"], "the clock starts again")
        XCTAssertEqual(c.tick(at: 75_000), [])
        XCTAssertEqual(c.tick(at: 75_001), ["close"])
    }

    func testAShutdownThatNeverCompletesEndsWithTheIdleTimeout() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a", keepAlive: false), ["dispatch /a"])
        XCTAssertEqual(c.respond(bytes: 1 << 20), ["write 200 close", "shutdown", "pause"])
        XCTAssertEqual(c.tick(at: 60_001), ["close"])
    }

    // MARK: The client goes, the server aborts

    func testTheClientClosingWhileARequestIsHandledDropsTheLaterAnswer() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a", "/b"), ["dispatch /a"])
        XCTAssertEqual(c.record(c.machine.peerClosed()), ["close"])
        XCTAssertEqual(c.respond("a"), [])
        XCTAssertEqual(c.record(c.machine.writeCompleted(bytes: 0, now: 0)), [])
        XCTAssertEqual(c.record(c.machine.shutdownCompleted()), [])
        XCTAssertEqual(c.tick(at: 100_000), [])
        XCTAssertEqual(c.record(c.machine.finish(now: 0)), [])
        XCTAssertEqual(c.machine.bytesReceived(now: 0), .discard)
        XCTAssertEqual(c.record(c.machine.requestParsed(request("/c"), keepAlive: true, now: 0)), [])
        XCTAssertEqual(c.record(c.machine.abort()), [])
        XCTAssertEqual(c.bodies, [])
    }

    func testAbortClosesOnce() {
        var c = Connection()
        XCTAssertEqual(c.receive("/a"), ["dispatch /a"])
        XCTAssertEqual(c.record(c.machine.abort()), ["close"])
        XCTAssertEqual(c.record(c.machine.peerClosed()), [])
    }
}

final class ConnectionBudgetTests: XCTestCase {
    func testPlacesAreTakenUpToTheLimitAndGivenBack() {
        let budget = ConnectionBudget(limit: 2)
        XCTAssertTrue(budget.admit())
        XCTAssertTrue(budget.admit())
        XCTAssertFalse(budget.admit())
        XCTAssertFalse(budget.admit())
        budget.release()
        XCTAssertTrue(budget.admit())
        XCTAssertFalse(budget.admit())
    }
}
