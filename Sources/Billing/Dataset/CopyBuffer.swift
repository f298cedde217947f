/// Rows in PostgreSQL's COPY text format, for one table: the whole table, or the piece
/// not yet sent when rows are streamed.
struct CopyBuffer {
    let table: String
    let columns: [String]
    private(set) var bytes: [UInt8] = []
    private(set) var rows = 0

    init(table: String, columns: [String]) {
        self.table = table
        self.columns = columns
    }

    /// Appends a row; nil is SQL NULL. Values are escaped as COPY text requires.
    mutating func append(_ values: [String?]) {
        precondition(values.count == columns.count, "\(table): \(values.count) values for \(columns.count) columns")
        for (i, value) in values.enumerated() {
            if i > 0 { bytes.append(0x09) }
            guard let value else {
                bytes.append(contentsOf: [0x5C, 0x4E])  // \N
                continue
            }
            // Most values need no escaping: copied whole, not byte by byte.
            if !value.utf8.contains(where: { $0 == 0x5C || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
                bytes.append(contentsOf: value.utf8)
                continue
            }
            for byte in value.utf8 {
                switch byte {
                case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: bytes.append(contentsOf: [0x5C, 0x6E])
                case 0x0D: bytes.append(contentsOf: [0x5C, 0x72])
                case 0x09: bytes.append(contentsOf: [0x5C, 0x74])
                default: bytes.append(byte)
                }
            }
        }
        bytes.append(0x0A)
        rows += 1
    }

    /// Fields of the row being written by the `field` methods below, for the tabs between them.
    private var fields = 0

    /// Appends one field of a row written field by field (`LineScanner`), as it is: the
    /// caller guarantees it holds no backslash, tab or line break, which COPY would misread.
    mutating func field(_ value: UnsafeBufferPointer<UInt8>) {
        separate()
        bytes.append(contentsOf: value)
    }

    /// `field`, in ASCII capitals (an enumeration as the API spells it).
    mutating func uppercasedField(_ value: UnsafeBufferPointer<UInt8>) {
        separate()
        for byte in value { bytes.append(byte >= 0x61 && byte <= 0x7A ? byte - 0x20 : byte) }
    }

    mutating func field(_ value: StaticString) {
        separate()
        bytes.append(contentsOf: UnsafeBufferPointer(start: value.utf8Start, count: value.utf8CodeUnitCount))
    }

    /// A number at least 0, in decimal, written without making a `String`.
    mutating func field(_ value: Int) {
        separate()
        let start = bytes.count
        var rest = value
        repeat {
            bytes.append(UInt8(0x30 + rest % 10))
            rest /= 10
        } while rest > 0
        bytes[start...].reverse()
    }

    mutating func nullField() {
        separate()
        bytes.append(0x5C)  // \N
        bytes.append(0x4E)
    }

    /// Ends a row written field by field.
    mutating func endRow() {
        precondition(fields == columns.count, "\(table): \(fields) values for \(columns.count) columns")
        bytes.append(0x0A)
        fields = 0
        rows += 1
    }

    private mutating func separate() {
        if fields > 0 { bytes.append(0x09) }
        fields += 1
    }

    /// Forgets the bytes (once sent), keeping their memory for the next rows; `rows` keeps counting.
    mutating func removeBytes() { bytes.removeAll(keepingCapacity: true) }
}
