@testable import Billing
import JSON
import XCTest

final class CursorTests: XCTestCase {
    func testCursorsRoundTripAndRefuseAnythingElse() {
        let cursor = Cursor(connection: "invoices", order: "OLDEST_FIRST", filterFingerprint: "abc",
                            sortKey: "2024-01-31", id: "0b7a3c9e-1111-4111-8111-222222222222")
        XCTAssertEqual(Cursor.decode(cursor.encoded), cursor)
        XCTAssertNil(Cursor.decode("not a cursor!"))
        XCTAssertNil(Cursor.decode(Base64URL.encode(Array("v2|a|b|c|d|e".utf8))))
        XCTAssertNil(Cursor.decode(cursor.encoded + "A"))
    }

    func testBase64URLIsCanonical() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "ü|€"] {
            let encoded = Base64URL.encode(Array(text.utf8))
            XCTAssertFalse(encoded.contains("=") || encoded.contains("+") || encoded.contains("/"))
            XCTAssertEqual(Base64URL.decode(encoded), Array(text.utf8))
        }
        XCTAssertNil(Base64URL.decode("Zm9v="))
        XCTAssertNil(Base64URL.decode("Zh"))  // non-canonical trailing bits
    }

    func testFilterFingerprintIgnoresKeyOrder() {
        let a = JSONValue.object([("currency", .string("USD")), ("status", .array([.string("OPEN")]))])
        let b = JSONValue.object([("status", .array([.string("OPEN")])), ("currency", .string("USD"))])
        XCTAssertEqual(Cursor.fingerprint(a), Cursor.fingerprint(b))
        XCTAssertNotEqual(Cursor.fingerprint(a), Cursor.fingerprint(nil))
    }

    func testFilterFingerprintIgnoresNullsAndAnEmptyFilter() {
        let none = Cursor.fingerprint(nil)
        XCTAssertEqual(Cursor.fingerprint(.null), none)
        XCTAssertEqual(Cursor.fingerprint(.object([])), none)
        XCTAssertEqual(Cursor.fingerprint(.object([("currency", .null), ("status", .null)])), none)
        let usd = JSONValue.object([("currency", .string("USD"))])
        XCTAssertEqual(Cursor.fingerprint(.object([("status", .null), ("currency", .string("USD"))])), Cursor.fingerprint(usd))
        XCTAssertNotEqual(Cursor.fingerprint(usd), none)
        // An empty list is not null: it asks for no status at all.
        XCTAssertNotEqual(Cursor.fingerprint(.object([("status", .array([]))])), none)
        // A list is a set: its order and repeats do not count.
        let paidOrOpen = Cursor.fingerprint(.object([("status", .array([.string("PAID"), .string("OPEN")]))]))
        XCTAssertEqual(Cursor.fingerprint(.object([("status", .array([.string("OPEN"), .string("PAID"), .string("OPEN")]))])), paidOrOpen)
        XCTAssertNotEqual(Cursor.fingerprint(.object([("status", .array([.string("OPEN")]))])), paidOrOpen)
    }
}
