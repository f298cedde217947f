import Dispatch
import Glibc
import Synchronization
@testable import Service
import XCTest

/// `PreparationThread` (README, "Large documents are prepared aside"): jobs run in order on
/// a thread of their own at nice 10, and at most 64 wait; the integration suite's
/// `test_abuse.py` shows large documents answered through it.
final class BackgroundPreparationTests: XCTestCase {
    /// What the jobs saw, written on the preparation thread and read here after `done`.
    final class Seen: Sendable {
        let order = Mutex<[Int]>([])
        let niceness = Atomic<Int32>(-100)
        let onCaller = Atomic<Bool>(false)
    }

    func testJobsRunInOrderOffTheCallerAtLowerPriorityAndAtMost64Wait() throws {
        let thread = try PreparationThread()
        let seen = Seen()
        let running = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let caller = pthread_self()
        // The first job holds the thread until the queue has been filled.
        XCTAssertTrue(thread.submit {
            seen.onCaller.store(pthread_equal(pthread_self(), caller) != 0, ordering: .relaxed)
            errno = 0
            seen.niceness.store(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0), ordering: .relaxed)
            running.signal()
            release.wait()
        })
        running.wait()
        for i in 0..<PreparationThread.maxWaiting {
            XCTAssertTrue(thread.submit {
                seen.order.withLock { $0.append(i) }
                if i == PreparationThread.maxWaiting - 1 { done.signal() }
            })
        }
        XCTAssertFalse(thread.submit { XCTFail("a job past the bound ran") }, "the 65th waiting job is refused")
        release.signal()
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(seen.order.withLock { $0 }, Array(0..<PreparationThread.maxWaiting))
        XCTAssertFalse(seen.onCaller.load(ordering: .relaxed))
        XCTAssertEqual(seen.niceness.load(ordering: .relaxed), PreparationThread.niceness)
        XCTAssertTrue(thread.submit { done.signal() }, "room again once the queue drained")
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
    }
}
