import EventLoop
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class UVErrorTests: XCTestCase {
    func testNegativeCodesThrowWithLibuvsWordsAndOthersPassThrough() {
        XCTAssertEqual(try check(0, "uv_nothing"), 0)
        XCTAssertEqual(try check(7, "uv_count"), 7)
        // libuv's error codes are the negated errno values on Unix.
        XCTAssertThrowsError(try check(-EINVAL, "uv_timer_start")) { error in
            XCTAssertEqual((error as? UVError)?.code, -EINVAL)
            XCTAssertEqual("\(error)", "uv_timer_start: invalid argument")
        }
    }
}
