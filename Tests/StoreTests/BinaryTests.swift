import Foundation
@testable import Store
import XCTest

final class BinaryTests: XCTestCase {
    func testIntegersAreBigEndianAndSigned() {
        for value in [0, 1, -1, 255, 256, -32768, 32767, Int(Int32.min), Int(Int32.max), Int.min, Int.max, 1_234_567_890_123] {
            withUnsafeBytes(of: Int64(value).bigEndian) { XCTAssertEqual(Binary.integer($0.bindMemory(to: UInt8.self)), value) }
            if let small = Int32(exactly: value) {
                withUnsafeBytes(of: small.bigEndian) { XCTAssertEqual(Binary.integer($0.bindMemory(to: UInt8.self)), value) }
            }
            if let tiny = Int16(exactly: value) {
                withUnsafeBytes(of: tiny.bigEndian) { XCTAssertEqual(Binary.integer($0.bindMemory(to: UInt8.self)), value) }
            }
        }
        [UInt8](repeating: 1, count: 3).withUnsafeBufferPointer { XCTAssertNil(Binary.integer($0)) }
    }

    /// Against Foundation's Gregorian calendar, from 1600 (after its Julian cut-over) to 9999.
    func testDaysSince2000AreTheGregorianCalendarsDates() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let epoch2000 = 946_684_800.0
        var checked = 0
        for days in stride(from: -146_000, through: 2_900_000, by: 997) + [-1, 0, 1, 59, 60, 365, 366] {
            let date = Date(timeIntervalSince1970: epoch2000 + Double(days) * 86_400)
            let expected = calendar.dateComponents([.year, .month, .day], from: date)
            let civil = Binary.civil(daysSince2000: days)
            XCTAssertEqual([civil.year, civil.month, civil.day], [expected.year!, expected.month!, expected.day!], "day \(days)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 3000)
    }

    /// Every day from 1600-03-01 to 2400-02-29 (two eras of 400 years: every month's end,
    /// every leap day, the centuries that are not leap years), against a calendar that
    /// steps one day at a time with the month lengths and the leap-year rule.
    func testEveryDayOfTwoErasFollowsTheDayBefore() {
        func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }
        func length(_ month: Int, _ year: Int) -> Int {
            month == 2 ? (isLeap(year) ? 29 : 28) : [4, 6, 9, 11].contains(month) ? 30 : 31
        }
        var (year, month, day) = (1600, 3, 1)
        let first = -146_097 + 60  // 1600-01-01 is 146,097 days (an era) before 2000-01-01
        for days in first..<(first + 2 * 146_097) {
            let civil = Binary.civil(daysSince2000: days)
            guard [civil.year, civil.month, civil.day] == [year, month, day] else {
                return XCTFail("day \(days): \(civil), expected \(year)-\(month)-\(day)")
            }
            day += 1
            if day > length(month, year) { (day, month) = (1, month + 1) }
            if month > 12 { (month, year) = (1, year + 1) }
        }
        XCTAssertEqual([year, month, day], [2400, 3, 1])
    }
}
