import Foundation
@testable import Billing
import JSON
import Store
import XCTest

final class BinaryCellsTests: XCTestCase {
    /// The cell as written after `key`, with the key taken off again (checked to be there).
    private func written(_ bytes: [UInt8], _ type: UInt32, key: String = "\"k\":") -> String {
        var w = JSONWriter()
        Array(key.utf8).withUnsafeBufferPointer { key in
            bytes.withUnsafeBufferPointer { BinaryCells.write($0, type: type, key: key, to: &w) }
        }
        XCTAssert(w.string.hasPrefix(key), w.string)
        return String(w.string.dropFirst(key.count))
    }

    private func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

    func testFiguresAndIds() {
        XCTAssertEqual(written(bigEndian(Int64(-1_234_567)), Binary.Oid.int8), "-1234567")
        XCTAssertEqual(written(bigEndian(Int32(42)), Binary.Oid.int4), "42")
        let uuid: [UInt8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xff]
        XCTAssertEqual(written(uuid, Binary.Oid.uuid), "\"01234567-89ab-cdef-0011-2233445566ff\"")
        XCTAssertEqual(written([1] + Array("{\"a\": 1}".utf8), Binary.Oid.jsonb), "{\"a\": 1}")
        XCTAssertEqual(written(Array("O'Brien \"x\"".utf8), Binary.Oid.text), "\"O'Brien \\\"x\\\"\"")
        XCTAssertEqual(written(bigEndian(Int64.min), Binary.Oid.int8), "-9223372036854775808")
        XCTAssertEqual(written(bigEndian(Int64.max), Binary.Oid.int8), "9223372036854775807")
        XCTAssertEqual(written(bigEndian(Int16(0)), Binary.Oid.int2), "0")
        XCTAssertEqual(written([1], Binary.Oid.bool), "true")
    }

    /// A value is formatted right after its key, in the writer's memory, whatever the
    /// key's length (a long alias included).
    func testKeysOfEveryLengthComeFirst() {
        let uuid: [UInt8] = Array(0..<16)
        for length in [0, 1, 60, 61, 62, 200] {  // keys of 3, 4, 63, 64, 65 and 203 bytes
            let key = "\"" + String(repeating: "a", count: length) + "\":"
            XCTAssertEqual(written(uuid, Binary.Oid.uuid, key: key), "\"00010203-0405-0607-0809-0a0b0c0d0e0f\"", "key of \(length)")
            XCTAssertEqual(written(bigEndian(Int64(-7)), Binary.Oid.int8, key: key), "-7", "key of \(length)")
        }
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

    /// Integers around every power of ten, both signs, as Swift's own `String(_:)` writes them.
    func testIntegersAgreeWithTheStandardLibrary() {
        var values: [Int64] = [0, Int64.max, Int64.min, Int64.min + 1]
        var power: Int64 = 1
        for _ in 0..<19 {
            values += [power - 1, power, power + 1].flatMap { [$0, -$0] }
            if power <= Int64.max / 10 { power *= 10 }
        }
        for value in values {
            XCTAssertEqual(written(bigEndian(value), Binary.Oid.int8), String(value))
        }
    }

    /// Every day from 1901 to 2099, and those around 10000-01-01 (where a year takes a fifth
    /// digit), against Foundation's Gregorian calendar in UTC.
    func testDatesAgreeWithFoundation() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let epoch2000 = 946_684_800.0
        for days in Array(-36_159...36_523) + Array(2_921_900...2_922_000) {
            let parts = calendar.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: epoch2000 + Double(days) * 86_400))
            let expected = String(format: "\"%04d-%02d-%02d\"", parts.year!, parts.month!, parts.day!)
            XCTAssertEqual(written(bigEndian(Int32(days)), Binary.Oid.date), expected)
        }
    }

    /// Random uuids, and those of one repeated byte (every digit, and its neighbours in a
    /// word), against Foundation's text of the same uuid.
    func testUUIDsAgreeWithFoundation() {
        var uuids = (0..<5_000).map { _ in UUID() }
        for byte in 0...255 {
            let repeated = [UInt8](repeating: UInt8(byte), count: 16)
            uuids.append(repeated.withUnsafeBytes { UUID(uuid: $0.load(as: uuid_t.self)) })
        }
        for uuid in uuids {
            let bytes = withUnsafeBytes(of: uuid.uuid) { Array($0) }
            XCTAssertEqual(written(bytes, Binary.Oid.uuid), "\"" + uuid.uuidString.lowercased() + "\"")
        }
    }
}
