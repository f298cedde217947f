/// Rows in PostgreSQL's binary COPY format, for one table: the whole table, or the piece
/// not yet sent when rows are streamed.
///
/// Values come in as the text the file spells them in (checked before: a UUID, a date, an
/// RFC 3339 timestamp, an integer) and go out as PostgreSQL's binary values, so the
/// server only copies them: its COPY of text parsed every uuid, date, timestamp and
/// integer again, which took it 2.1 s for 728,656 staged rows against 0.6 s in binary
/// (`benchmarks/RESULTS.md`). Text needs no escaping in this format.
///
/// The format (PostgreSQL's "COPY", "Binary Format"): a signature and two zero words, then
/// each row as its number of fields and each field as its length (-1 for NULL) and bytes,
/// all integers big-endian; `end()` writes the trailer.
struct CopyBuffer {
    /// What a column holds, which decides how its text is encoded.
    enum ColumnType {
        /// `bigint`: an integer in decimal, optionally signed.
        case bigint
        /// `"char"`: one byte.
        case char
        /// `uuid`: 36 characters of lowercase hexadecimal with dashes.
        case uuid
        /// `text`: UTF-8, as it is.
        case text
        /// `date`: `YYYY-MM-DD`.
        case date
        /// `timestamptz`: `YYYY-MM-DDTHH:MM:SS`, an optional fraction, then `Z`.
        case timestamptz
    }

    let table: String
    let columns: [(name: String, type: ColumnType)]
    private(set) var bytes: [UInt8] = Self.signature + [0, 0, 0, 0, 0, 0, 0, 0]
    private(set) var rows = 0
    /// Fields of the row being written by the `field` methods below.
    private var fields = 0

    private static let signature: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00]

    init(table: String, columns: [(name: String, type: ColumnType)]) {
        self.table = table
        self.columns = columns
    }

    /// Appends a row; nil is SQL NULL.
    mutating func append(_ values: [String?]) {
        precondition(values.count == columns.count, "\(table): \(values.count) values for \(columns.count) columns")
        for value in values {
            guard var value else {
                nullField()
                continue
            }
            value.withUTF8 { field($0) }
        }
        endRow()
    }

    /// Appends one field of the row being written, from its text; a row's first field
    /// starts it.
    mutating func field(_ text: UnsafeBufferPointer<UInt8>) {
        let type = nextColumn()
        switch type {
        case .text:
            appendInteger(Int32(text.count))
            bytes.append(contentsOf: text)
        case .char:
            precondition(text.count == 1, "\(table): a \"char\" of \(text.count) bytes")
            appendInteger(Int32(1))
            bytes.append(text[0])
        case .bigint:
            appendInteger(Int32(8))
            appendInteger(Self.integer(text))
        case .uuid:
            appendInteger(Int32(16))
            appendUUID(text)
        case .date:
            appendInteger(Int32(4))
            appendInteger(Int32(Self.daysSince2000(text)))
        case .timestamptz:
            appendInteger(Int32(8))
            appendInteger(Self.microsecondsSince2000(text))
        }
    }

    /// `field` of a text column, in ASCII capitals (an enumeration as the API spells it).
    mutating func uppercasedField(_ text: UnsafeBufferPointer<UInt8>) {
        let type = nextColumn()
        precondition(type == .text, "\(table): uppercase text for a column that is not text")
        appendInteger(Int32(text.count))
        for byte in text { bytes.append(byte >= 0x61 && byte <= 0x7A ? byte - 0x20 : byte) }
    }

    mutating func field(_ text: StaticString) {
        field(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A `bigint` column's value, written without making text.
    mutating func field(_ value: Int) {
        let type = nextColumn()
        precondition(type == .bigint, "\(table): an integer for a column that is not bigint")
        appendInteger(Int32(8))
        appendInteger(Int64(value))
    }

    mutating func nullField() {
        _ = nextColumn()
        appendInteger(Int32(-1))
    }

    /// Ends a row written field by field.
    mutating func endRow() {
        precondition(fields == columns.count, "\(table): \(fields) values for \(columns.count) columns")
        fields = 0
        rows += 1
    }

    /// Writes the trailer that ends the rows; nothing may be appended after it.
    mutating func end() {
        precondition(fields == 0, "\(table): the trailer in the middle of a row")
        appendInteger(Int16(-1))
    }

    /// Forgets the bytes (once sent), keeping their memory for the next rows; `rows` keeps counting.
    mutating func removeBytes() { bytes.removeAll(keepingCapacity: true) }

    /// The type of the field about to be written; a row's first field writes its count.
    private mutating func nextColumn() -> ColumnType {
        precondition(fields < columns.count, "\(table): more than \(columns.count) values in a row")
        if fields == 0 { appendInteger(Int16(columns.count)) }
        defer { fields += 1 }
        return columns[fields].type
    }

    private mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    private mutating func appendUUID(_ text: UnsafeBufferPointer<UInt8>) {
        precondition(text.count == 36, "\(table): a uuid of \(text.count) characters")
        var high: UInt8? = nil
        for character in text where character != UInt8(ascii: "-") {
            let nibble = character <= 0x39 ? character &- 0x30 : character &- 0x61 &+ 10
            if let h = high {
                bytes.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
    }

    // MARK: - Text to PostgreSQL's values

    /// The value of an integer written in decimal, optionally after a minus sign.
    static func integer(_ text: UnsafeBufferPointer<UInt8>) -> Int64 {
        let negative = text.first == UInt8(ascii: "-")
        var magnitude: Int64 = 0
        for digit in text.dropFirst(negative ? 1 : 0) {
            precondition(digit >= 0x30 && digit <= 0x39, "not an integer")
            magnitude = magnitude * 10 + Int64(digit - 0x30)
        }
        return negative ? -magnitude : magnitude
    }

    /// PostgreSQL's `date`: days since 2000-01-01, of a `YYYY-MM-DD` text.
    static func daysSince2000(_ text: UnsafeBufferPointer<UInt8>) -> Int {
        precondition(text.count >= 10, "not a date")
        return daysSince1970(year: number(text, 0, 4), month: number(text, 5, 2), day: number(text, 8, 2)) - 10_957
    }

    /// PostgreSQL's `timestamptz`: microseconds since 2000-01-01 00:00:00 UTC, of
    /// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`. The fraction is rounded to microseconds as
    /// PostgreSQL's own input rounds it (`rint` of the fraction read as a double, times a
    /// million), so a value staged here is the one COPY's text gave before.
    static func microsecondsSince2000(_ text: UnsafeBufferPointer<UInt8>) -> Int64 {
        precondition(text.count >= 20, "not a timestamp")
        let seconds = Int64(daysSince2000(text)) * 86_400
            + Int64(number(text, 11, 2) * 3_600 + number(text, 14, 2) * 60 + number(text, 17, 2))
        return seconds * 1_000_000 + fractionInMicroseconds(UnsafeBufferPointer(rebasing: text[19..<text.count - 1]))
    }

    /// Microseconds of `.digits` (or of nothing), rounded as PostgreSQL rounds them.
    static func fractionInMicroseconds(_ fraction: UnsafeBufferPointer<UInt8>) -> Int64 {
        let digits = fraction.dropFirst()
        if digits.count <= 6 {
            // Exact: PostgreSQL's double arithmetic gives the same whole number.
            var value: Int64 = 0
            for digit in digits { value = value * 10 + Int64(digit - 0x30) }
            for _ in digits.count..<6 { value *= 10 }
            return value
        }
        let read = Double("0." + String(decoding: digits, as: UTF8.self)) ?? 0
        return Int64((read * 1_000_000).rounded(.toNearestOrEven))
    }

    /// Days from 1970-01-01 to a day of the proleptic Gregorian calendar (Howard Hinnant's
    /// `days_from_civil`: years counted from March, in eras of 400 years).
    static func daysSince1970(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The decimal number of `count` digits at `start`.
    private static func number(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> Int {
        var value = 0
        for digit in text[start..<start + count] { value = value * 10 + Int(digit - 0x30) }
        return value
    }
}

extension CopyBuffer {
    /// The rows of `bytes` (from its signature on, without trailer), each field as bytes:
    /// for tests and the fuzz harness, which compare staged rows and check their text.
    /// Text and "char" come back as they are, uuids as their 16 bytes, integers, dates and
    /// timestamps as the decimal text of PostgreSQL's number (days or microseconds since 2000).
    static func decodedRows(_ bytes: [UInt8], columns: [(name: String, type: ColumnType)]) -> [[[UInt8]?]] {
        var rows: [[[UInt8]?]] = []
        var i = signature.count + 8
        func integer(_ width: Int) -> Int64 {
            var value: Int64 = 0
            for byte in bytes[i..<i + width] { value = value << 8 | Int64(byte) }
            i += width
            return width == 2 ? Int64(Int16(truncatingIfNeeded: value)) : width == 4 ? Int64(Int32(truncatingIfNeeded: value)) : value
        }
        while i < bytes.count {
            let count = integer(2)
            if count == -1 { break }
            var row: [[UInt8]?] = []
            for column in 0..<Int(count) {
                let length = Int(integer(4))
                guard length >= 0 else {
                    row.append(nil)
                    continue
                }
                switch columns[column].type {
                case .text, .char, .uuid:
                    row.append(Array(bytes[i..<i + length]))
                    i += length
                case .bigint, .date, .timestamptz:
                    row.append(Array(String(integer(length)).utf8))
                }
            }
            rows.append(row)
        }
        return rows
    }
}
