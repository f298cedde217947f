import EventLoop
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class WatchersTests: XCTestCase {
    /// Runs `loop` with a 10 s safety timer, so that a watcher that never fires fails the
    /// test instead of hanging it.
    private func run(_ loop: EventLoop) throws {
        let guardTimer = try Timer(loop: loop)
        guardTimer.start(after: 10_000) { loop.stop() }
        guardTimer.unref()
        loop.run()
        guardTimer.close()
    }

    func testAOneShotTimerFiresOnceNoSoonerThanAsked() throws {
        let loop = try EventLoop()
        let timer = try Timer(loop: loop)
        let started = loop.now
        var firedAfter: [UInt64] = []
        timer.start(after: 25) { firedAfter.append(loop.now - started) }
        try run(loop)  // returns when the timer, its one shot done, is no longer active
        XCTAssertEqual(firedAfter.count, 1)
        XCTAssertGreaterThanOrEqual(firedAfter[0], 25)
        timer.close()
    }

    func testARepeatingTimerFiresUntilStopped() throws {
        let loop = try EventLoop()
        let timer = try Timer(loop: loop)
        var count = 0
        timer.start(after: 1, repeat: 2) {
            count += 1
            if count == 5 { timer.stop() }
        }
        try run(loop)
        XCTAssertEqual(count, 5)
        timer.close()
    }

    /// A prepare started by a timer runs before the loop waits for I/O (here, for a timer
    /// 200 ms away), and again in every turn until stopped.
    func testAPrepareRunsBeforeTheLoopWaitsAndUntilStopped() throws {
        let loop = try EventLoop()
        var events: [String] = []
        var startedAt: UInt64 = 0
        var delays: [UInt64] = []
        var prepare: PrepareWatcher?
        prepare = try PrepareWatcher(loop: loop) {
            events.append("prepare")
            delays.append(loop.now - startedAt)
            if delays.count == 2 { prepare?.stop() }
        }
        let first = try Timer(loop: loop)
        let later = try Timer(loop: loop)
        first.start(after: 5) {
            events.append("timer")
            startedAt = loop.now
            prepare?.start()
            prepare?.start()  // a second start changes nothing
            later.start(after: 200) { events.append("later") }
        }
        try run(loop)  // returns once the timers are done and the prepare is stopped
        XCTAssertEqual(events, ["timer", "prepare", "later", "prepare"])
        XCTAssertLessThan(delays[0], 200)  // it did not wait for the later timer
        prepare?.close()
        first.close()
        later.close()
    }

    /// Another thread's `fire` runs the callback on the loop's own thread.
    func testAnAsyncWakeupRunsItsCallbackOnTheLoopsThread() throws {
        let loop = try EventLoop()
        let loopThread = pthread_self()
        var ranOnLoopThread: Bool?
        var wakeup: AsyncWakeup?
        wakeup = try AsyncWakeup(loop: loop) {
            ranOnLoopThread = pthread_equal(pthread_self(), loopThread) != 0
            wakeup?.close()
        }
        let trigger = wakeup!.trigger
        let sender = Thread { trigger.fire() }
        sender.start()
        try run(loop)  // returns once the wakeup has closed itself
        XCTAssertEqual(ranOnLoopThread, true)
    }

    /// A socket that becomes readable is reported readable; once closed, the watcher is
    /// no longer active and the loop ends.
    func testAPollWatcherSeesASocketBecomeReadableThenCloses() throws {
        let loop = try EventLoop()
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        var seen: [(status: Int32, readable: Bool)] = []
        var watcher: PollWatcher?
        watcher = try PollWatcher(loop: loop, fd: fds[0]) { status, events in
            seen.append((status, events.contains(.readable)))
            watcher?.close()
        }
        watcher?.watch(.readable)
        XCTAssertEqual(write(fds[1], "x", 1), 1)
        try run(loop)
        XCTAssertEqual(seen.map(\.status), [0])
        XCTAssertEqual(seen.map(\.readable), [true])
    }

    func testASignalWatcherRunsItsCallbackOnTheLoop() throws {
        let loop = try EventLoop()
        var caught = 0
        var watcher: SignalWatcher?
        watcher = try SignalWatcher(loop: loop, signal: SIGUSR2) {
            caught += 1
            watcher?.close()
        }
        kill(getpid(), SIGUSR2)
        try run(loop)
        XCTAssertEqual(caught, 1)
    }
}
