@testable import Billing
import JSON
import Store
import XCTest

final class BinaryCellsTests: XCTestCase {
    private func written(_ bytes: [UInt8], _ type: UInt32) -> String {
        var w = JSONWriter()
        bytes.withUnsafeBufferPointer { BinaryCells.write($0, type: type, to: &w) }
        return w.string
    }

    private func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

    func testFiguresAndIds() {
        XCTAssertEqual(written(bigEndian(Int64(-1_234_567)), Binary.Oid.int8), "-1234567")
        XCTAssertEqual(written(bigEndian(Int32(42)), Binary.Oid.int4), "42")
        let uuid: [UInt8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xff]
        XCTAssertEqual(written(uuid, Binary.Oid.uuid), "\"01234567-89ab-cdef-0011-2233445566ff\"")
        XCTAssertEqual(written([1] + Array("{\"a\": 1}".utf8), Binary.Oid.jsonb), "{\"a\": 1}")
        XCTAssertEqual(written(Array("O'Brien \"x\"".utf8), Binary.Oid.text), "\"O'Brien \\\"x\\\"\"")
    }

    /// RULES.md section 1: `Date` is `YYYY-MM-DD`; `DateTime` is UTC to the second, the
    /// fraction cut (as `to_char` did); cursors keep the microseconds.
    func testDatesAndTimes() {
        XCTAssertEqual(written(bigEndian(Int32(0)), Binary.Oid.date), "\"2000-01-01\"")
        XCTAssertEqual(written(bigEndian(Int32(-1)), Binary.Oid.date), "\"1999-12-31\"")
        XCTAssertEqual(written(bigEndian(Int32(9_190)), Binary.Oid.date), "\"2025-02-28\"")
        let micros: Int64 = 9_190 * 86_400_000_000 + (13 * 3600 + 5 * 60 + 9) * 1_000_000 + 999_999
        XCTAssertEqual(written(bigEndian(micros), Binary.Oid.timestamptz), "\"2025-02-28T13:05:09Z\"")
        XCTAssertEqual(written(bigEndian(Int64(-1)), Binary.Oid.timestamptz), "\"1999-12-31T23:59:59Z\"")
        bigEndian(micros).withUnsafeBufferPointer {
            XCTAssertEqual(BinaryCells.text($0, type: Binary.Oid.timestamptz), "2025-02-28 13:05:09.999999")
        }
        bigEndian(Int64(5)).withUnsafeBufferPointer {
            XCTAssertEqual(BinaryCells.text($0, type: Binary.Oid.timestamptz), "2000-01-01 00:00:00.000005")
        }
        XCTAssertEqual(written(bigEndian(Int32.max), Binary.Oid.date), "\"infinity\"")
    }
}
