@testable import Store
import XCTest

/// `SQLHash` and `SQLKey`: statements are looked up by their text (a request's reads, the
/// coalescing groups, a connection's prepared statements), through a hash of it made once.
final class SQLHashTests: XCTestCase {
    func testEqualTextsHashAlikeWhereverTheyWereMade() {
        let text = "SELECT c.id, c.name FROM customer c WHERE c.id = $1::uuid"
        let built = "SELECT c.id, c.name FROM customer c" + " WHERE c.id = $\(1)::uuid"
        XCTAssertEqual(SQLHash.of(text), SQLHash.of(built))
        XCTAssertEqual(Statement(text).sqlHash, Statement(built, ["x"]).sqlHash)
        XCTAssertEqual(SQLKey(Statement(text)), SQLKey(Statement(built, ["x"])))
    }

    /// Every byte counts, in the eight-byte words and in the tail after them, and so does
    /// the length (a text and the same text with a NUL-free byte more).
    func testChangingAnyOneByteOrTheLengthChangesTheHash() {
        let base = Array("SELECT x.* FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(id, org, ord) -- 101".utf8)
        var hashes: Set<Int> = [SQLHash.of(String(decoding: base, as: UTF8.self))]
        for position in base.indices {
            var changed = base
            changed[position] ^= 0x01
            hashes.insert(SQLHash.of(String(decoding: changed, as: UTF8.self)))
        }
        for length in 0..<base.count { hashes.insert(SQLHash.of(String(decoding: base[..<length], as: UTF8.self))) }
        XCTAssertEqual(hashes.count, 1 + 2 * base.count)
    }

    /// Keys are told apart by their texts, and a dictionary of them finds each by a key
    /// made again from another statement of the same text.
    func testKeysOfDifferentTextsStayApart() {
        let a = SQLKey(Statement("SELECT 1"))
        let b = SQLKey(Statement("SELECT 2"))
        XCTAssertNotEqual(a, b)
        let prepared: [SQLKey: String] = [a: "bg0", b: "bg1"]
        XCTAssertEqual(prepared[SQLKey(Statement("SELECT 1"))], "bg0")
        XCTAssertEqual(prepared[SQLKey(Statement("SELECT 2"))], "bg1")
    }
}
