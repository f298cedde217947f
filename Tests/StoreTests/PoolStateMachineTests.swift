@testable import Store
import XCTest

/// Every transition of `PoolStateMachine`, without connections or timers. Waiters are numbers.
final class PoolStateMachineTests: XCTestCase {
    typealias Machine = PoolStateMachine<Int>

    /// The actions, spelt out for comparison.
    func describe(_ actions: [Machine.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .connect(let id): return "connect \(id)"
            case .serve(let w, let id): return "serve \(w) on \(id)"
            case .fail(let w, _): return "fail \(w)"
            case .armTimer(let at): return "timer \(at)"
            case .disarmTimer: return "disarm"
            case .close(let id): return "close \(id)"
            }
        }
    }

    func testConnectionsOpenOnDemandUpToTheSize() {
        var m = Machine(size: 2)
        XCTAssertEqual(describe(m.requested(1, for: .anyConnection)), ["connect 1"])
        XCTAssertEqual(describe(m.requested(2, for: .anyConnection)), ["connect 2"])
        XCTAssertEqual(describe(m.requested(3, for: .anyConnection)), [])  // full: waits
        XCTAssertEqual(m.waitingCount, 3)
        XCTAssertEqual(describe(m.connected(id: 1)), ["serve 1 on 1"])
        XCTAssertEqual(describe(m.connected(id: 2)), ["serve 2 on 2"])
        XCTAssertEqual(describe(m.released(id: 2)), ["serve 3 on 2"])
        XCTAssertEqual(describe(m.released(id: 1)), [])
        XCTAssertEqual(m.slot(1), .idle)
        XCTAssertEqual(describe(m.requested(4, for: .anyConnection)), ["serve 4 on 1"])
        XCTAssertEqual(m.health, .healthy)
    }

    /// Statements that take turns run on at most `statementLimit` connections; other
    /// waiters take any connection; all are served in the order they came, but one whose
    /// turn cannot come yet lets the others pass.
    func testStatementsInTurnRunWithinTheirLimitAndLetOthersPass() {
        var m = Machine(size: 4, statementLimit: 2)
        XCTAssertEqual(describe(m.requested(1, for: .statementInTurn)), ["connect 1"])
        XCTAssertEqual(describe(m.requested(2, for: .statementInTurn)), ["connect 2"])
        XCTAssertEqual(describe(m.requested(3, for: .statementInTurn)), [], "over the limit: no connection opened for it")
        XCTAssertEqual(describe(m.connected(id: 1)), ["serve 1 on 1"])
        XCTAssertEqual(describe(m.connected(id: 2)), ["serve 2 on 2"])
        XCTAssertEqual(m.runningStatements, [1, 2])
        XCTAssertEqual(describe(m.requested(4, for: .anyConnection)), ["connect 3"], "not held back by the statements")
        XCTAssertEqual(describe(m.connected(id: 3)), ["serve 4 on 3"])
        XCTAssertEqual(describe(m.released(id: 3)), [], "statement 3 still waits: two run")
        XCTAssertEqual(m.waitingCount, 1)
        XCTAssertEqual(describe(m.requested(5, for: .anyConnection)), ["serve 5 on 3"], "it passes statement 3")
        XCTAssertEqual(describe(m.requested(6, for: .anyConnection)), ["connect 4"])
        XCTAssertEqual(describe(m.released(id: 1)), ["serve 3 on 1"], "statement 3 came before 6, and its turn has come")
        XCTAssertEqual(describe(m.released(id: 2)), ["serve 6 on 2"])
        XCTAssertEqual(m.runningStatements, [1])
        XCTAssertEqual(describe(m.lost(id: 1, error: .unavailable("x"))), [])
        XCTAssertEqual(m.runningStatements, [])
        XCTAssertEqual(describe(m.connected(id: 4)), [], "nothing waits for the connection opened for 6")
        XCTAssertEqual(describe(m.requested(7, for: .statementInTurn)), ["serve 7 on 4"])
    }

    func testAStatementLimitAboveTheSizeIsTheSize() {
        XCTAssertEqual(Machine(size: 3, statementLimit: 8).statementLimit, 3)
        XCTAssertEqual(Machine(size: 3).statementLimit, 3)
        XCTAssertEqual(Machine(size: 3, statementLimit: 0).statementLimit, 1)
    }

    func testAFailedAttemptWithNothingOpenFailsEveryWaiterAndBacksOff() {
        var m = Machine(size: 4)
        _ = m.requested(1, for: .anyConnection)
        _ = m.requested(2, for: .anyConnection)
        XCTAssertEqual(describe(m.connectFailed(id: 1, error: .unavailable("refused"), retryAt: 1_050)),
                       ["timer 1050", "fail 1", "fail 2"])
        XCTAssertEqual(m.health, .backingOff(until: 1_050))
        // The other attempt still out fails too; nothing waits any more.
        XCTAssertEqual(describe(m.connectFailed(id: 2, error: .unavailable("refused"), retryAt: 1_100)), ["timer 1100"])
        XCTAssertEqual(m.waitingCount, 0)
    }

    func testWhileBackingOffRequestsFailAtOnceWithoutAnAttempt() {
        var m = Machine(size: 4)
        _ = m.requested(1, for: .anyConnection)
        _ = m.connectFailed(id: 1, error: .unavailable("refused"), retryAt: 500)
        XCTAssertEqual(describe(m.requested(2, for: .anyConnection)), ["fail 2"])
        XCTAssertEqual(describe(m.requested(3, for: .anyConnection)), ["fail 3"])
        XCTAssertTrue(m.slots.isEmpty)
    }

    func testTheTimerMakesOneAttemptWhetherOrNotAnyoneWaits() {
        var m = Machine(size: 4)
        _ = m.requested(1, for: .anyConnection)
        _ = m.connectFailed(id: 1, error: .unavailable("refused"), retryAt: 500)
        XCTAssertEqual(describe(m.timerFired()), ["connect 2"])
        // While that attempt is out, requests still fail at once, and the timer adds none.
        XCTAssertEqual(describe(m.requested(2, for: .anyConnection)), ["fail 2"])
        XCTAssertEqual(describe(m.timerFired()), [])
        // It fails: back off further.
        XCTAssertEqual(describe(m.connectFailed(id: 2, error: .unavailable("refused"), retryAt: 1_500)), ["timer 1500"])
        XCTAssertEqual(describe(m.timerFired()), ["connect 3"])
        // It succeeds: healthy again, and the connection serves what comes.
        XCTAssertEqual(describe(m.connected(id: 3)), ["disarm"])
        XCTAssertEqual(m.health, .healthy)
        XCTAssertEqual(describe(m.requested(3, for: .anyConnection)), ["serve 3 on 3"])
    }

    func testTheTimerDoesNothingWhenHealthy() {
        var m = Machine(size: 4)
        XCTAssertEqual(describe(m.timerFired()), [])
        _ = m.requested(1, for: .anyConnection)
        _ = m.connected(id: 1)
        XCTAssertEqual(describe(m.timerFired()), [])
    }

    func testWhileBackingOffOpenConnectionsStillServeTheQueue() {
        var m = Machine(size: 2)
        _ = m.requested(1, for: .anyConnection)
        _ = m.connected(id: 1)  // 1 runs on connection 1
        _ = m.requested(2, for: .anyConnection)      // opens connection 2
        XCTAssertEqual(describe(m.connectFailed(id: 2, error: .unavailable("too many clients"), retryAt: 900)), ["timer 900"])
        XCTAssertEqual(m.waitingCount, 1)  // 2 waits for connection 1
        XCTAssertEqual(describe(m.requested(3, for: .anyConnection)), [])
        XCTAssertEqual(describe(m.released(id: 1)), ["serve 2 on 1"])
        XCTAssertEqual(describe(m.released(id: 1)), ["serve 3 on 1"])
        XCTAssertEqual(describe(m.released(id: 1)), [])
        // A free connection serves new requests even while backing off.
        XCTAssertEqual(describe(m.requested(4, for: .anyConnection)), ["serve 4 on 1"])
    }

    func testLosingTheLastBusyConnectionWhileBackingOffFailsTheQueue() {
        var m = Machine(size: 2)
        _ = m.requested(1, for: .anyConnection)
        _ = m.connected(id: 1)
        _ = m.requested(2, for: .anyConnection)
        _ = m.connectFailed(id: 2, error: .unavailable("refused"), retryAt: 900)
        XCTAssertEqual(describe(m.lost(id: 1, error: .unavailable("terminating connection"))), ["fail 2"])
        XCTAssertTrue(m.slots.isEmpty)
    }

    func testLosingAConnectionWhileHealthyOpensAnotherForTheQueue() {
        var m = Machine(size: 1)
        _ = m.requested(1, for: .anyConnection)
        _ = m.connected(id: 1)
        _ = m.requested(2, for: .anyConnection)
        XCTAssertEqual(describe(m.lost(id: 1, error: .unavailable("closed"))), ["connect 2"])
        XCTAssertEqual(m.health, .healthy)
        XCTAssertEqual(describe(m.lost(id: 7, error: .unavailable("unknown"))), [])
    }

    func testCloseFailsWaitersClosesConnectionsAndRefusesLater() {
        var m = Machine(size: 3)
        _ = m.requested(1, for: .anyConnection)
        _ = m.connected(id: 1)
        _ = m.requested(2, for: .anyConnection)
        _ = m.requested(3, for: .anyConnection)
        _ = m.connectFailed(id: 2, error: .unavailable("refused"), retryAt: 900)
        _ = m.requested(4, for: .anyConnection)
        // Connection 3 is still connecting: it is closed too.
        XCTAssertEqual(describe(m.close()), ["disarm", "fail 2", "fail 3", "fail 4", "close 1", "close 3"])
        XCTAssertEqual(m.health, .closed)
        XCTAssertEqual(describe(m.requested(5, for: .anyConnection)), ["fail 5"])
        XCTAssertEqual(describe(m.connected(id: 3)), [])
        XCTAssertEqual(describe(m.connectFailed(id: 3, error: .unavailable("x"), retryAt: 1)), [])
        XCTAssertEqual(describe(m.released(id: 1)), [])
        XCTAssertEqual(describe(m.timerFired()), [])
    }

    func testEventsForUnknownConnectionsChangeNothing() {
        var m = Machine(size: 2)
        XCTAssertEqual(describe(m.connected(id: 9)), [])
        XCTAssertEqual(describe(m.released(id: 9)), [])
        XCTAssertEqual(describe(m.connectFailed(id: 9, error: .unavailable("x"), retryAt: 5)), [])
        XCTAssertEqual(m.health, .healthy)
    }

    /// Whatever happens, every waiter leaves exactly once: served or failed.
    func testEveryWaiterLeavesExactlyOnceUnderAnyInterleaving() {
        var random = SplitMix(seed: 7)
        for _ in 0..<2_000 {
            let limit = 1 + random.next(3)
            var m = Machine(size: 1 + random.next(3), statementLimit: limit)
            var left: [Int: Int] = [:]
            var busy: Set<Int> = []
            var statements: Set<Int> = []  // waiters that are statements (odd numbers)
            var next = 0
            func apply(_ actions: [Machine.Action]) {
                for action in actions {
                    switch action {
                    case .serve(let w, let id):
                        left[w, default: 0] += 1
                        XCTAssertFalse(busy.contains(id), "a connection serves one waiter at a time")
                        busy.insert(id)
                        if w % 2 == 1 { statements.insert(id) }
                        XCTAssertLessThanOrEqual(statements.count, limit, "statements within their limit")
                        XCTAssertEqual(Set(m.runningStatements), statements)
                    case .fail(let w, _): left[w, default: 0] += 1
                    default: break
                    }
                }
            }
            for _ in 0..<60 {
                let ids = m.slots.map(\.id)
                let someID = ids.isEmpty ? 99 : ids[random.next(ids.count)]
                switch random.next(7) {
                case 0, 1:
                    next += 1
                    apply(m.requested(next, for: next % 2 == 1 ? .statementInTurn : .anyConnection))
                case 2: apply(m.connected(id: someID))
                case 3: apply(m.connectFailed(id: someID, error: .unavailable("x"), retryAt: UInt64(random.next(1_000))))
                case 4:
                    if busy.remove(someID) != nil {
                        statements.remove(someID)
                        apply(m.released(id: someID))
                    }
                case 5:
                    busy.remove(someID)
                    statements.remove(someID)
                    apply(m.lost(id: someID, error: .unavailable("x")))
                default: apply(m.timerFired())
                }
                // Nothing is stuck: a waiter that could run has a connection coming, or
                // every connection is taken and one will serve it when it is free.
                if m.health == .healthy && m.servableCount > 0 {
                    XCTAssertFalse(m.slots.contains { $0.slot == .idle }, "an idle connection while a waiter could run")
                    XCTAssertTrue(m.slots.contains { $0.slot == .connecting } || m.slots.count == m.size,
                                  "a waiter that could run, and no connection coming for it")
                }
            }
            apply(m.close())
            for w in 1...max(1, next) where next > 0 {
                XCTAssertEqual(left[w], 1, "waiter \(w)")
            }
        }
    }
}
