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

    /// Forgets the bytes (once sent), keeping their memory for the next rows; `rows` keeps counting.
    mutating func removeBytes() { bytes.removeAll(keepingCapacity: true) }
}
