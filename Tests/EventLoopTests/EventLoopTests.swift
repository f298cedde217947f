import EventLoop
import XCTest

final class EventLoopTests: XCTestCase {
    /// `run` returns once no handle is active: a loop with nothing to do does not block.
    func testALoopWithNothingToDoReturnsAtOnce() throws {
        let loop = try EventLoop()
        let started = EventLoop.hrtime()
        loop.run()
        XCTAssertLessThan(EventLoop.hrtime() - started, 5_000_000_000)
    }

    /// `stop` ends `run` even while a handle (a repeating timer) is still active.
    func testStopEndsRunWhileHandlesAreActive() throws {
        let loop = try EventLoop()
        let timer = try Timer(loop: loop)
        var ticks = 0
        timer.start(after: 1, repeat: 1) {
            ticks += 1
            if ticks == 3 { loop.stop() }
        }
        loop.run()
        XCTAssertEqual(ticks, 3)
        timer.close()
    }

    /// The loop's clock moves with time, in milliseconds.
    func testTheClockAdvancesInMilliseconds() throws {
        let loop = try EventLoop()
        let timer = try Timer(loop: loop)
        let before = loop.now
        timer.start(after: 30) { timer.close() }
        loop.run()
        XCTAssertGreaterThanOrEqual(loop.now - before, 30)
    }

    /// HandleBox: an open handle keeps its owner alive; once closed, the close callback
    /// releases it (the loop's next turn runs the callback).
    func testAClosedHandleReleasesItsOwner() throws {
        let loop = try EventLoop()
        weak var released: AnyObject?
        var close: () -> Void = {}
        do {
            let timer = try Timer(loop: loop)
            released = timer
            timer.start(after: 1_000_000) {}
            close = { [unowned timer] in timer.close() }
        }
        XCTAssertNotNil(released, "an open handle keeps its owner")
        close()
        loop.run()
        XCTAssertNil(released)
    }
}
