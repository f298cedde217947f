@testable import Billing
import Store
import XCTest

final class CopyBufferTests: XCTestCase {
    /// The bytes of PostgreSQL's binary COPY format, written out by hand from its manual
    /// ("COPY", "Binary Format"): signature, flags, header extension, then per row the
    /// number of fields and each field's length and bytes (-1 for NULL), then the trailer.
    func testRowsAreWrittenInPostgreSQLsBinaryFormat() {
        var buffer = CopyBuffer(table: "t", columns: [("a", .text), ("b", .bigint), ("c", .char)])
        buffer.append(["tab\there\n\\", nil, "x"])
        buffer.append(["", "-2", "y"])
        buffer.end()
        let expected: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00] + [0, 0, 0, 0] + [0, 0, 0, 0]
            + [0, 3] + [0, 0, 0, 10] + Array("tab\there\n\\".utf8) + [0xFF, 0xFF, 0xFF, 0xFF] + [0, 0, 0, 1, 0x78]
            + [0, 3] + [0, 0, 0, 0] + [0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE] + [0, 0, 0, 1, 0x79]
            + [0xFF, 0xFF]
        XCTAssertEqual(buffer.bytes, expected)
        XCTAssertEqual(buffer.rows, 2)
    }

    /// Days counted from a date whose distance is known by other means: the calendar's
    /// 146,097 days in 400 years, PostgreSQL's epoch, and Unix's.
    func testDaysAreCountedInTheProlepticGregorianCalendar() {
        XCTAssertEqual(CopyBuffer.daysSince1970(year: 1970, month: 1, day: 1), 0)
        XCTAssertEqual(CopyBuffer.daysSince1970(year: 2000, month: 1, day: 1), 10_957)
        XCTAssertEqual(CopyBuffer.daysSince1970(year: 2000, month: 3, day: 1) - CopyBuffer.daysSince1970(year: 2000, month: 2, day: 28), 2)
        XCTAssertEqual(CopyBuffer.daysSince1970(year: 2400, month: 1, day: 1) - CopyBuffer.daysSince1970(year: 2000, month: 1, day: 1),
                       146_097)
        XCTAssertEqual(CopyBuffer.daysSince1970(year: 1, month: 1, day: 1), -719_162)
    }

    /// Every kind of value, staged in binary beside its own text, compared by PostgreSQL
    /// with that text read by its own input functions: dates across the calendar and its
    /// leap days, timestamps with fractions of every length (ties and a fraction that
    /// rounds up into the next second among them), uuids and integers.
    func testValuesReadBackAsPostgreSQLReadsTheirText() throws {
        guard let admin = getenv("BILLGRAPH_TEST_ADMIN_URL").map({ String(cString: $0) }) else {
            if getenv("CI") != nil { return XCTFail("BILLGRAPH_TEST_ADMIN_URL is not set under CI") }
            throw XCTSkip("BILLGRAPH_TEST_ADMIN_URL is not set (scripts/test sets it)")
        }
        let columns: [(name: String, type: CopyBuffer.ColumnType)] = [
            ("d", .date), ("d_text", .text), ("at", .timestamptz), ("at_text", .text),
            ("id", .uuid), ("id_text", .text), ("n", .bigint), ("n_text", .text),
        ]
        var generator = SystemRandomNumberGenerator()
        var values: [[String]] = []
        let fractions = ["", ".5", ".000001", ".0000005", ".0000015", ".0000025", ".9999995", ".9999999", ".123456789012",
                         ".1", ".25", ".999999", "." + String(repeating: "0", count: 40) + "7"]
        for i in 0..<2_000 {
            let year = i < 10 ? [1, 4, 100, 400, 1600, 1900, 2000, 2024, 9999, 1970][i] : Int.random(in: 1...9999, using: &generator)
            let month = i < 10 ? 2 : Int.random(in: 1...12, using: &generator)
            let day = i < 10 ? Scalars.daysIn(month: 2, year: year) : Int.random(in: 1...Scalars.daysIn(month: month, year: year),
                                                                                using: &generator)
            let date = pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2)
            let time = pad(Int.random(in: 0...23, using: &generator), 2) + ":" + pad(Int.random(in: 0...59, using: &generator), 2)
                + ":" + (i % 7 == 0 ? "59" : pad(Int.random(in: 0...59, using: &generator), 2))
            let timestamp = date + "T" + time + fractions[i % fractions.count] + "Z"
            let hex = (0..<32).map { _ in "0123456789abcdef".randomElement(using: &generator)! }
            let uuid = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(hex[$0]) }.joined(separator: "-")
            let number = String(Int64.random(in: Int64.min...Int64.max, using: &generator))
            values.append([date, date, timestamp, timestamp, uuid, uuid, number, number])
        }
        var buffer = CopyBuffer(table: "copy_buffer_test", columns: columns)
        for row in values { buffer.append(row) }
        buffer.end()

        let connection = try BlockingConnection(admin)
        try connection.execute("SET TimeZone = 'UTC'")
        try connection.execute("""
            CREATE TEMPORARY TABLE copy_buffer_test (d date, d_text text, at timestamptz, at_text text, id uuid, id_text text,
                                                     n bigint, n_text text)
            """)
        try connection.copyBegin(into: "copy_buffer_test", columns: columns.map(\.name))
        try connection.copySend(buffer.bytes)
        try connection.copyEnd()
        XCTAssertEqual(try connection.query("SELECT count(*) FROM copy_buffer_test").int(0, 0), values.count)
        let differing = try connection.query("""
            SELECT d, d_text, at, at_text, id, id_text, n, n_text FROM copy_buffer_test
            WHERE d IS DISTINCT FROM d_text::date OR at IS DISTINCT FROM at_text::timestamptz
               OR id IS DISTINCT FROM id_text::uuid OR n IS DISTINCT FROM n_text::bigint
            LIMIT 5
            """)
        XCTAssertEqual(differing.rowCount, 0, (0..<differing.rowCount).map { row in
            (0..<8).map { differing.string(row, $0) ?? "NULL" }.joined(separator: " ")
        }.joined(separator: "\n"))
    }

    private func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
