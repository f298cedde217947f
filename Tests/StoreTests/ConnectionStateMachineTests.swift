@testable import Store
import XCTest

/// Every transition of `ConnectionStateMachine`, without libpq or a socket. Rows are
/// strings here.
final class ConnectionStateMachineTests: XCTestCase {
    typealias Machine = ConnectionStateMachine<String>

    /// Calls delivered to completions, by statement.
    final class Deliveries {
        var calls: [String: [Result<String, DatabaseError>]] = [:]
        func completion(_ name: String) -> Machine.Completion {
            { [self] result in calls[name, default: []].append(result) }
        }
        func count(_ name: String) -> Int { calls[name]?.count ?? 0 }
        func only(_ name: String) -> Result<String, DatabaseError>? {
            guard let list = calls[name], list.count == 1 else { return nil }
            return list[0]
        }
    }

    /// Runs what the driver would run of an action that hands a completion back.
    func deliver(_ action: Machine.Action) {
        switch action {
        case .finish(let d): d.completion(d.result)
        case .reject(let c, let e): c(.failure(e))
        case .close(_, _, let d): d.map { $0.completion($0.result) }
        default: break
        }
    }

    func connected() -> Machine {
        var m = Machine()
        _ = m.started(.writing)
        _ = m.connectPolled(.ok)
        XCTAssertEqual(m.phase, .idle)
        return m
    }

    // MARK: connecting

    func testConnectingFollowsPQconnectPoll() {
        var m = Machine()
        XCTAssertEqual(m.phase, .connecting)
        guard case .watch(.writable) = m.started(.writing) else { return XCTFail() }
        guard case .continueConnecting = m.socketReady(readable: false, writable: true, error: false) else { return XCTFail() }
        guard case .watch(.readable) = m.connectPolled(.reading) else { return XCTFail() }
        guard case .continueConnecting = m.socketReady(readable: true, writable: false, error: false) else { return XCTFail() }
        guard case .watch(.writable) = m.connectPolled(.writing) else { return XCTFail() }
        // A socket error while connecting is libpq's to judge (it may try its next address).
        guard case .continueConnecting = m.socketReady(readable: false, writable: false, error: true) else { return XCTFail() }
        guard case .ready = m.connectPolled(.ok) else { return XCTFail() }
        XCTAssertEqual(m.phase, .idle)
    }

    func testAConnectionThatCannotStartIsAFailedAttempt() {
        var m = Machine()
        guard case .close(let reason, wasConnecting: true, deliver: nil) = m.started(.failed("refused")) else { return XCTFail() }
        XCTAssertTrue(reason.isUnavailable)
        XCTAssertEqual(m.phase, .closed)
    }

    func testPQconnectPollFailingClosesAsAFailedAttempt() {
        var m = Machine()
        _ = m.started(.writing)
        guard case .close(_, wasConnecting: true, deliver: nil) = m.connectPolled(.failed("Connection refused")) else { return XCTFail() }
        XCTAssertEqual(m.phase, .closed)
    }

    func testASelfConnectIsClosedAtOnceAsAFailedAttempt() {
        var m = Machine()
        _ = m.started(.writing)
        guard case .close(let reason, wasConnecting: true, deliver: nil) = m.selfConnectDetected() else { return XCTFail() }
        XCTAssertTrue(reason.description.contains("self-connect"))
        XCTAssertEqual(m.phase, .closed)
        // Only connecting sockets are checked.
        var idle = connected()
        guard case .none = idle.selfConnectDetected() else { return XCTFail() }
        XCTAssertEqual(idle.phase, .idle)
    }

    func testTheConnectTimerClosesOnlyAConnectionStillConnecting() {
        var m = Machine()
        _ = m.started(.writing)
        guard case .close(_, wasConnecting: true, deliver: nil) = m.connectTimedOut() else { return XCTFail() }
        var idle = connected()
        guard case .none = idle.connectTimedOut() else { return XCTFail() }
        XCTAssertEqual(idle.phase, .idle)
    }

    func testConnectEventsAfterConnectingChangeNothing() {
        var m = connected()
        guard case .none = m.connectPolled(.failed("late")) else { return XCTFail() }
        guard case .none = m.connectPolled(.ok) else { return XCTFail() }
        XCTAssertEqual(m.phase, .idle)
    }

    // MARK: statements

    func testAFirstStatementIsPreparedThenRun() {
        let d = Deliveries()
        var m = connected()
        let s = Statement("SELECT $1", ["1"])
        guard case .send(.prepare(let name, let sent)) = m.sendRequested(s, completion: d.completion("a")) else { return XCTFail() }
        XCTAssertEqual(name, "bg0")
        XCTAssertEqual(sent.sql, s.sql)
        XCTAssertEqual(m.phase, .busy)
        guard case .flush = m.sent(ok: true, message: "") else { return XCTFail() }
        guard case .watch(.readableAndWritable) = m.flushed(.more) else { return XCTFail() }
        guard case .flush = m.socketReady(readable: true, writable: true, error: false) else { return XCTFail() }
        guard case .watch(.readable) = m.flushed(.done) else { return XCTFail() }
        guard case .read = m.socketReady(readable: true, writable: false, error: false) else { return XCTFail() }
        guard case .none = m.resultReceived(.success("prepared")) else { return XCTFail() }
        guard case .send(.executePrepared(name: "bg0", _)) = m.resultsEnded(connectionOK: true) else { return XCTFail() }
        XCTAssertEqual(m.prepared[SQLKey(s)], "bg0")
        XCTAssertEqual(m.phase, .busy)
        guard case .flush = m.sent(ok: true, message: "") else { return XCTFail() }
        guard case .watch(.readable) = m.flushed(.done) else { return XCTFail() }
        _ = m.resultReceived(.success("rows"))
        let end = m.resultsEnded(connectionOK: true)
        guard case .finish = end else { return XCTFail() }
        XCTAssertEqual(m.phase, .idle)
        XCTAssertEqual(d.count("a"), 0)  // the driver delivers, not the machine
        deliver(end)
        XCTAssertEqual(try d.only("a")?.get(), "rows")
    }

    func testAStatementSeenBeforeRunsPrepared() {
        let d = Deliveries()
        var m = connected()
        let s = Statement("SELECT 1")
        _ = m.sendRequested(s, completion: d.completion("a"))
        _ = m.resultsEnded(connectionOK: true)
        _ = m.resultReceived(.success("x"))
        deliver(m.resultsEnded(connectionOK: true))
        guard case .send(.executePrepared(name: "bg0", _)) = m.sendRequested(s, completion: d.completion("b")) else { return XCTFail() }
        _ = m.resultReceived(.success("y"))
        deliver(m.resultsEnded(connectionOK: true))
        XCTAssertEqual(try d.only("b")?.get(), "y")
        XCTAssertEqual(d.count("a"), 1)
    }

    func testPastTheLimitStatementsRunUnprepared() {
        let d = Deliveries()
        var m = ConnectionStateMachine<String>(maxPrepared: 1)
        _ = m.started(.writing)
        _ = m.connectPolled(.ok)
        _ = m.sendRequested(Statement("SELECT 1"), completion: d.completion("a"))
        _ = m.resultsEnded(connectionOK: true)
        _ = m.resultReceived(.success("1"))
        deliver(m.resultsEnded(connectionOK: true))
        guard case .send(.execute(let s)) = m.sendRequested(Statement("SELECT 2"), completion: d.completion("b")) else { return XCTFail() }
        XCTAssertEqual(s.sql, "SELECT 2")
        _ = m.resultReceived(.success("2"))
        deliver(m.resultsEnded(connectionOK: true))
        XCTAssertEqual(try d.only("b")?.get(), "2")
        XCTAssertEqual(m.prepared.count, 1)
    }

    /// `serve --prepared-statements off` (RULES.md section 9): the same statement, again
    /// and again, always goes unnamed; nothing is ever prepared for PgBouncer to lose.
    func testWithNoPreparedStatementsEveryStatementGoesUnnamed() {
        let d = Deliveries()
        var m = ConnectionStateMachine<String>(maxPrepared: 0)
        _ = m.started(.writing)
        _ = m.connectPolled(.ok)
        for n in 0..<3 {
            guard case .send(.execute(let s)) = m.sendRequested(Statement("SELECT 1"), completion: d.completion("a")) else {
                return XCTFail("statement \(n) was not sent unnamed")
            }
            XCTAssertEqual(s.sql, "SELECT 1")
            _ = m.resultReceived(.success("1"))
            deliver(m.resultsEnded(connectionOK: true))
        }
        XCTAssertEqual(d.count("a"), 3)
        XCTAssertTrue(m.prepared.isEmpty)
    }

    func testAFailedPrepareFailsTheStatementAndIsNotRemembered() {
        let d = Deliveries()
        var m = connected()
        let s = Statement("SELEC 1")
        _ = m.sendRequested(s, completion: d.completion("a"))
        _ = m.resultReceived(.failure(.server(sqlState: "42601", message: "syntax error", detail: nil, constraint: nil)))
        let end = m.resultsEnded(connectionOK: true)
        guard case .finish = end else { return XCTFail() }
        deliver(end)
        guard case .failure(let error)? = d.only("a") else { return XCTFail() }
        XCTAssertEqual(error.sqlState, "42601")
        XCTAssertNil(m.prepared[SQLKey(s)])
        XCTAssertEqual(m.phase, .idle)
    }

    func testTheFirstServerErrorWinsOverRows() {
        let d = Deliveries()
        var m = connected()
        _ = m.sendRequested(Statement("SELECT 1"), completion: d.completion("a"))
        _ = m.resultsEnded(connectionOK: true)
        _ = m.resultReceived(.success("some"))
        _ = m.resultReceived(.failure(.server(sqlState: "40001", message: "first", detail: nil, constraint: nil)))
        _ = m.resultReceived(.failure(.server(sqlState: "XX000", message: "second", detail: nil, constraint: nil)))
        _ = m.resultReceived(.success("more"))
        deliver(m.resultsEnded(connectionOK: true))
        guard case .failure(let error)? = d.only("a") else { return XCTFail() }
        XCTAssertEqual(error.sqlState, "40001")
    }

    func testAStatementWithNoResultFails() {
        let d = Deliveries()
        var m = connected()
        _ = m.sendRequested(Statement("SELECT 1"), completion: d.completion("a"))
        _ = m.resultsEnded(connectionOK: true)
        deliver(m.resultsEnded(connectionOK: true))
        guard case .failure(let error)? = d.only("a") else { return XCTFail() }
        XCTAssertTrue(error.isUnavailable)
    }

    func testAResultThatEndsTheConnectionIsDeliveredAndTheConnectionCloses() {
        let d = Deliveries()
        var m = connected()
        _ = m.sendRequested(Statement("SELECT 1"), completion: d.completion("a"))
        _ = m.resultsEnded(connectionOK: true)
        _ = m.resultReceived(.failure(.server(sqlState: "57P01", message: "terminating connection", detail: nil, constraint: nil)))
        let end = m.resultsEnded(connectionOK: false)
        guard case .close(_, wasConnecting: false, deliver: .some) = end else { return XCTFail() }
        XCTAssertEqual(m.phase, .closed)
        deliver(end)
        guard case .failure(let error)? = d.only("a") else { return XCTFail() }
        XCTAssertEqual(error.sqlState, "57P01")
        XCTAssertTrue(error.isUnavailable)
    }

    func testLosingTheConnectionWhilePreparingFailsTheStatement() {
        let d = Deliveries()
        var m = connected()
        _ = m.sendRequested(Statement("SELECT 1"), completion: d.completion("a"))
        deliver(m.resultsEnded(connectionOK: false))
        guard case .failure(let error)? = d.only("a") else { return XCTFail() }
        XCTAssertTrue(error.isUnavailable)
        XCTAssertEqual(m.phase, .closed)
    }

    func testStatementsThatCannotBeAcceptedAreRejectedAtOnceAndChangeNothing() {
        let d = Deliveries()
        var connecting = Machine()
        _ = connecting.started(.writing)
        let r1 = connecting.sendRequested(Statement("SELECT 1"), completion: d.completion("connecting"))
        guard case .reject = r1 else { return XCTFail() }
        deliver(r1)
        XCTAssertEqual(connecting.phase, .connecting)

        var busy = connected()
        _ = busy.sendRequested(Statement("SELECT 1"), completion: d.completion("first"))
        let r2 = busy.sendRequested(Statement("SELECT 2"), completion: d.completion("second"))
        guard case .reject = r2 else { return XCTFail() }
        deliver(r2)
        XCTAssertEqual(busy.phase, .busy)
        XCTAssertEqual(d.count("first"), 0)

        var closed = connected()
        _ = closed.closeRequested(.unavailable("bye"))
        let r3 = closed.sendRequested(Statement("SELECT 1"), completion: d.completion("closed"))
        guard case .reject = r3 else { return XCTFail() }
        deliver(r3)
        for name in ["connecting", "second", "closed"] {
            guard case .failure(let error)? = d.only(name) else { return XCTFail(name) }
            XCTAssertTrue(error.isUnavailable)
        }
    }

    func testEveryFailureWhileBusyClosesAndFailsTheStatementOnce() {
        let failures: [(String, (inout Machine) -> Machine.Action)] = [
            ("send", { $0.sent(ok: false, message: "could not send") }),
            ("flush", { $0.flushed(.failed("broken pipe")) }),
            ("read", { $0.readFailed("server closed the connection unexpectedly") }),
            ("socket", { $0.socketReady(readable: false, writable: false, error: true) }),
            ("close", { $0.closeRequested(.server(sqlState: "XX000", message: "x", detail: nil, constraint: nil)) }),
        ]
        for (name, event) in failures {
            let d = Deliveries()
            var m = connected()
            _ = m.sendRequested(Statement("SELECT 1"), completion: d.completion(name))
            let action = event(&m)
            guard case .close(_, wasConnecting: false, deliver: .some) = action else { return XCTFail(name) }
            XCTAssertEqual(m.phase, .closed, name)
            deliver(action)
            guard case .failure(let error)? = d.only(name) else { return XCTFail(name) }
            XCTAssertTrue(error.isUnavailable, name)  // SERVICE_UNAVAILABLE for the request
            // Whatever comes later delivers nothing more.
            deliver(m.resultsEnded(connectionOK: true))
            deliver(m.closeRequested(.unavailable("again")))
            deliver(m.socketReady(readable: true, writable: true, error: true))
            XCTAssertEqual(d.count(name), 1, name)
        }
    }

    func testIdleConnectionsCloseWhenTheServerGoesAway() {
        var m = connected()
        guard case .readWhileIdle = m.socketReady(readable: true, writable: false, error: false) else { return XCTFail() }
        guard case .none = m.idleInput(ok: true, message: "") else { return XCTFail() }
        XCTAssertEqual(m.phase, .idle)
        guard case .none = m.socketReady(readable: false, writable: true, error: false) else { return XCTFail() }
        guard case .close(_, wasConnecting: false, deliver: nil) = m.idleInput(ok: false, message: "terminating connection") else { return XCTFail() }
        XCTAssertEqual(m.phase, .closed)

        var n = connected()
        guard case .close(_, wasConnecting: false, deliver: nil) = n.socketReady(readable: false, writable: false, error: true) else { return XCTFail() }
    }

    func testCloseRequestedInEveryState() {
        var connecting = Machine()
        _ = connecting.started(.writing)
        guard case .close(_, wasConnecting: true, deliver: nil) = connecting.closeRequested(.unavailable("shutdown")) else { return XCTFail() }
        var idle = connected()
        guard case .close(_, wasConnecting: false, deliver: nil) = idle.closeRequested(.unavailable("shutdown")) else { return XCTFail() }
        guard case .none = idle.closeRequested(.unavailable("twice")) else { return XCTFail() }
        XCTAssertEqual(idle.phase, .closed)
    }

    func testEventsThatDoNotBelongToTheStateChangeNothing() {
        var m = connected()
        guard case .none = m.sent(ok: true, message: "") else { return XCTFail() }
        guard case .none = m.flushed(.done) else { return XCTFail() }
        guard case .none = m.resultReceived(.success("stray")) else { return XCTFail() }
        guard case .none = m.resultsEnded(connectionOK: true) else { return XCTFail() }
        guard case .none = m.readFailed("x") else { return XCTFail() }
        XCTAssertEqual(m.phase, .idle)
        var closed = connected()
        _ = closed.closeRequested(.unavailable("bye"))
        guard case .none = closed.socketReady(readable: true, writable: true, error: false) else { return XCTFail() }
        guard case .none = closed.idleInput(ok: false, message: "x") else { return XCTFail() }
        guard case .none = closed.selfConnectDetected() else { return XCTFail() }
    }

    /// Whatever happens, in whatever order, each statement's completion is called exactly
    /// once: by its result, its failure or its rejection, or when the connection closes.
    func testEveryCompletionIsCalledExactlyOnceUnderAnyInterleaving() {
        var random = SplitMix(seed: 42)
        for _ in 0..<3_000 {
            let d = Deliveries()
            var m = Machine(maxPrepared: 2)
            var names: [String] = []
            deliver(m.started(random.next(4) == 0 ? .failed("refused") : .writing))
            for step in 0..<40 {
                let action: Machine.Action
                switch random.next(16) {
                case 0: action = m.socketReady(readable: random.bool, writable: random.bool, error: random.next(8) == 0)
                case 1: action = m.connectPolled([.reading, .writing, .ok, .ok, .failed("no")][random.next(5)])
                case 2, 3, 4:
                    let name = "s\(step)"
                    names.append(name)
                    action = m.sendRequested(Statement("SELECT \(random.next(3))"), completion: d.completion(name))
                case 5: action = m.sent(ok: random.next(10) != 0, message: "x")
                case 6: action = m.flushed([.done, .more, .failed("x")][random.next(3)])
                case 7, 8: action = m.resultReceived(random.next(4) == 0 ? .failure(.unavailable("e")) : .success("r"))
                case 9, 10, 11: action = m.resultsEnded(connectionOK: random.next(10) != 0)
                case 12: action = m.readFailed("x")
                case 13: action = m.idleInput(ok: random.bool, message: "x")
                case 14: action = random.bool ? m.connectTimedOut() : m.selfConnectDetected()
                default: action = random.next(4) == 0 ? m.closeRequested(.unavailable("bye")) : .none
                }
                deliver(action)
            }
            deliver(m.closeRequested(.unavailable("end")))
            for name in names {
                XCTAssertEqual(d.count(name), 1, name)
            }
        }
    }
}

/// A small deterministic generator for the interleaving tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func nextRaw() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(_ bound: Int) -> Int { Int(nextRaw() % UInt64(bound)) }
    var bool: Bool { mutating get { next(2) == 0 } }
    mutating func unit() -> Double { Double(nextRaw() >> 11) / Double(1 << 53) }
}
