@testable import Billing
import Foundation
import XCTest

/// `Loaders.swift`: `UUIDKey` read from a uuid's 16 bytes (PostgreSQL's binary format)
/// and from its text, against Foundation's `UUID`, which gives both forms of one uuid.
final class LoadersTests: XCTestCase {
    func testAUUIDsBytesAndItsTextAreTheSameKey() {
        for _ in 0..<200 {
            let uuid = UUID()
            let bytes = withUnsafeBytes(of: uuid.uuid) { Array($0) }
            let fromBytes = bytes.withUnsafeBufferPointer { UUIDKey(binary: $0) }
            for text in [uuid.uuidString, uuid.uuidString.lowercased()] {
                XCTAssertEqual(Array(text.utf8).withUnsafeBufferPointer { UUIDKey($0) }, fromBytes, text)
            }
            let high = bytes[..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes[8...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            XCTAssertEqual([fromBytes.high, fromBytes.low], [high, low], "the first byte is the highest")
        }
    }
}
