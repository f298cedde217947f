@testable import Billing
import XCTest

/// `UUIDPlaces` against a `Dictionary`, the reference: the same places for the same keys,
/// whatever the keys look like.
final class UUIDPlacesTests: XCTestCase {
    /// Gives every key a place the way `ParentKeys` does (the next one, unless the key has
    /// one) in the table and in a dictionary, and checks both agree at every step.
    private func checkAgainstDictionary(_ keys: [UUIDKey], file: StaticString = #filePath, line: UInt = #line) {
        var table = UUIDPlaces(capacity: keys.count)
        var reference: [UUIDKey: Int] = [:]
        for key in keys {
            XCTAssertEqual(table[key], reference[key], file: file, line: line)
            let expected = reference[key] ?? reference.count
            // A key with a place keeps it: the place offered then (-1) must not be taken.
            XCTAssertEqual(table.place(of: key, else: reference[key] == nil ? expected : -1), expected, file: file, line: line)
            reference[key] = expected
        }
        for key in keys { XCTAssertEqual(table[key], reference[key], file: file, line: line) }
        XCTAssertNil(table[UUIDKey(high: .max, low: .max)], file: file, line: line)
    }

    func testRandomKeysWithRepeats() {
        var generator = SystemRandomNumberGenerator()
        let distinct = (0..<3_000).map { _ in UUIDKey(high: generator.next(), low: generator.next()) }
        let keys = (0..<5_000).map { i in distinct[i % 7 == 0 ? (i * 31) % 1_000 : i % distinct.count] }
        checkAgainstDictionary(keys)
        XCTAssertLessThan(Set(keys).count, keys.count, "some keys repeat")
    }

    /// Keys that differ in one word only, in a few bits, or not at all in their XOR.
    func testKeysThatLookAlike() {
        let sameHigh = (0..<500).map { UUIDKey(high: 7, low: UInt64($0)) }
        let sameLow = (0..<500).map { UUIDKey(high: UInt64($0) << 40, low: 7) }
        let sameXOR = (0..<500).map { UUIDKey(high: UInt64($0), low: UInt64($0) ^ 0xFFFF) }
        checkAgainstDictionary(sameHigh + sameLow + sameXOR + sameHigh)
        checkAgainstDictionary([UUIDKey(high: 0, low: 0), UUIDKey(high: 0, low: 0), UUIDKey(high: 1, low: 0)])
    }

    /// Keys that differ only in the top bits of each word, or only in the bottom ones, start
    /// their probes at many slots: a mix that dropped some bits would give them one.
    func testEveryBitOfTheKeyMovesItsHome() {
        let table = UUIDPlaces(capacity: 2_048)  // 4,096 slots
        let n = (0..<UInt64(1_000))
        let topBitsOfBoth: [UUIDKey] = n.map { UUIDKey(high: $0 << 54, low: $0 << 48) }
        let bottomBitsOfLow: [UUIDKey] = n.map { UUIDKey(high: 0, low: $0) }
        let topBitsOfHigh: [UUIDKey] = n.map { UUIDKey(high: $0 << 54, low: 0) }
        for keys in [topBitsOfBoth, bottomBitsOfLow, topBitsOfHigh] {
            // 1,000 random homes among 4,096 slots give about 890 distinct ones.
            XCTAssertGreaterThan(Set(keys.map(table.home)).count, 800)
        }
    }

    func testAnEmptyTableHasNoPlaces() {
        XCTAssertNil(UUIDPlaces(capacity: 0)[UUIDKey(high: 0, low: 0)])
        XCTAssertNil(UUIDPlaces(capacity: 5)[UUIDKey(high: 0, low: 0)], "an empty slot is not the zero key's")
    }
}
