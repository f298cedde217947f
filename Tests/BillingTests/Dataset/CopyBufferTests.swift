@testable import Billing
import XCTest

final class CopyBufferTests: XCTestCase {
    func testCopyTextEscapesWhatCopyWouldMisread() {
        var buffer = CopyBuffer(table: "t", columns: ["a", "b"])
        buffer.append(["tab\there\nnew\\line", nil])
        XCTAssertEqual(String(decoding: buffer.bytes, as: UTF8.self), "tab\\there\\nnew\\\\line\t\\N\n")
    }
}
