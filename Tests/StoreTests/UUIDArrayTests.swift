#if canImport(Glibc)
import Glibc
#endif
@testable import Store
import XCTest

/// `UUIDArray`: a `uuid[]` in PostgreSQL's binary format. The layout is checked byte by
/// byte against the format `array_send` documents, and PostgreSQL itself reads what is
/// sent (its text form compared with uuids written by hand).
final class UUIDArrayTests: XCTestCase {
    static let first = "00112233-4455-6677-8899-aabbccddeeff"
    static let second = "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f"

    func testTheLayoutIsArraySends() {
        var array = UUIDArray()
        array.append(high: 0x0011_2233_4455_6677, low: 0x8899_aabb_ccdd_eeff)
        XCTAssertEqual(array.bytes, [0, 0, 0, 1, /* one dimension */ 0, 0, 0, 0, /* no nulls */ 0, 0, 0x0b, 0x86, /* uuid, 2950 */
                                     0, 0, 0, 1, /* one element */ 0, 0, 0, 1, /* from 1 */ 0, 0, 0, 16,
                                     0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        XCTAssertEqual(array.count, 1)
        XCTAssertEqual(array.textLiteral, "{\(Self.first)}")
    }

    func testJoinedArraysKeepTheirOrder() {
        var second = UUIDArray()
        second.append(high: 0xf0e1_d2c3_b4a5_9687, low: 0x7869_5a4b_3c2d_1e0f)
        var words = UUIDArray()
        words.append(high: 0x0011_2233_4455_6677, low: 0x8899_aabb_ccdd_eeff)
        words.append(contentsOf: second)
        words.append(contentsOf: UUIDArray())
        XCTAssertEqual(words.count, 2)
        XCTAssertEqual(words.textLiteral, "{\(Self.first),\(Self.second)}")
        XCTAssertEqual(UUIDArray().textLiteral, "{}")
    }

    func testARepeatedUUIDIsTheSameUUIDAppendedAsOften() {
        let repeated = UUIDArray(repeating: 0xf0e1_d2c3_b4a5_9687, 0x7869_5a4b_3c2d_1e0f, count: 3)
        XCTAssertEqual(repeated.count, 3)
        XCTAssertEqual(repeated.textLiteral, "{\(Self.second),\(Self.second),\(Self.second)}")
        XCTAssertEqual(repeated.bytes.count, 20 + 3 * 20)
        XCTAssertEqual(repeated.bytes[12..<16], [0, 0, 0, 3])
        XCTAssertEqual(UUIDArray(repeating: 1, 2, count: 0), UUIDArray())
    }

    func testPostgreSQLReadsWhatIsSent() throws {
        guard let admin = getenv("BILLGRAPH_TEST_ADMIN_URL").map({ String(cString: $0) }) else {
            if getenv("CI") != nil { return XCTFail("BILLGRAPH_TEST_ADMIN_URL is not set under CI") }
            throw XCTSkip("BILLGRAPH_TEST_ADMIN_URL is not set (scripts/test sets it)")
        }
        let connection = try BlockingConnection(admin)
        var many = UUIDArray()
        for i in 0..<1_000 { many.append(high: UInt64(i), low: UInt64(i) << 32 | 0xabc) }
        var joined = UUIDArray()
        joined.append(high: 0x0011_2233_4455_6677, low: 0x8899_aabb_ccdd_eeff)
        joined.append(contentsOf: many)
        for array in [UUIDArray(), many, joined, UUIDArray(repeating: 0xf0e1_d2c3_b4a5_9687, 0x7869_5a4b_3c2d_1e0f, count: 2)] {
            // Beside a text parameter: each keeps its own format.
            let rows = try connection.query(Statement("SELECT $1::uuid[]::text, cardinality($1::uuid[]), $2::text",
                                                      values: [.uuids(array), .text("beside")]))
            XCTAssertEqual(rows.string(0, 0), array.textLiteral)
            XCTAssertEqual(rows.int(0, 1), array.count)
            XCTAssertEqual(rows.string(0, 2), "beside")
        }
        let text = try connection.query(Statement("SELECT ($1::uuid[])[1]::text, ($1::uuid[])[1001]::text", values: [.uuids(joined)]))
        XCTAssertEqual(text.string(0, 0), Self.first)
        XCTAssertEqual(text.string(0, 1), "00000000-0000-03e7-0000-03e700000abc")
    }
}
