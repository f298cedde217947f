/// A parameter's value as sent: text in its type's input syntax, or a `uuid[]` in
/// PostgreSQL's binary format (`UUIDArray`: a load's keys, cheaper for the database to read).
public enum ParameterValue: Sendable, Hashable {
    case text(String)
    case uuids(UUIDArray)

    /// The value as text: what is sent, or the array's text form (traces, `EXPLAIN`).
    public var text: String {
        switch self {
        case .text(let text): text
        case .uuids(let array): array.textLiteral
        }
    }
}

/// SQL text with its parameters. Values always travel as parameters (`$1`, `$2`, ...),
/// never inside the text.
public struct Statement: Sendable, CustomStringConvertible {
    public let sql: String
    /// `sql`'s hash (`SQLHash`), computed once: a load's statement is looked up by its
    /// text in the request's reads, in the coalescing groups and in its connection's
    /// prepared statements.
    public let sqlHash: Int
    public let parameters: [ParameterValue?]
    /// Whether the rows come back in PostgreSQL's binary format, which it produces
    /// without formatting anything (no digits, no calendar): cheaper for the database on
    /// every cell, and read with `ResultSet.type(_:)` and the `Binary` helpers.
    public let binaryResults: Bool

    public init(_ sql: String, _ parameters: [String?] = [], binaryResults: Bool = false) {
        self.init(sql, values: parameters.map { $0.map(ParameterValue.text) }, binaryResults: binaryResults)
    }

    public init(_ sql: String, values: [ParameterValue?], binaryResults: Bool = false) {
        self.sql = sql
        self.sqlHash = SQLHash.of(sql)
        self.parameters = values
        self.binaryResults = binaryResults
    }

    public var description: String { sql }

    /// Calls `body` with what libpq's `PQsendQueryParams` and its kin take: the values,
    /// and, when any value is binary, their lengths and formats (nil when all are text,
    /// which libpq then reads as C strings). All alive for the duration of the call.
    func withLibpqParameters<T>(
        _ body: (_ values: UnsafePointer<UnsafePointer<CChar>?>?, _ lengths: UnsafePointer<Int32>?, _ formats: UnsafePointer<Int32>?) -> T
    ) -> T {
        if parameters.isEmpty { return body(nil, nil, nil) }
        var lengths: [Int32] = []
        var formats: [Int32] = []
        var owned: [UnsafeMutablePointer<CChar>?] = []
        owned.reserveCapacity(parameters.count)
        for parameter in parameters {
            switch parameter {
            case nil:
                owned.append(nil)
                lengths.append(0)
                formats.append(0)
            case .text(let text)?:
                owned.append(strdup(text))
                lengths.append(0)
                formats.append(0)
            case .uuids(let array)?:
                let encoded = UnsafeMutablePointer<CChar>.allocate(capacity: array.encodedCount)
                array.encode(into: encoded)
                owned.append(encoded)
                lengths.append(Int32(array.encodedCount))
                formats.append(1)
            }
        }
        defer { for p in owned { free(p) } }
        let anyBinary = formats.contains(1)
        return owned.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { values in
                lengths.withUnsafeBufferPointer { lengths in
                    formats.withUnsafeBufferPointer { formats in
                        body(UnsafePointer(values), anyBinary ? lengths.baseAddress : nil, anyBinary ? formats.baseAddress : nil)
                    }
                }
            }
        }
    }
}

/// A hash of SQL text, for the lookups of statements by their text: eight bytes at a time,
/// each word mixed in by a multiplication, the whole finished by MurmurHash3's finalizer,
/// from a seed drawn once per process. Not `Hasher` (SipHash), which cost a dashboard's
/// request about 1,500 instructions a lookup for texts of a few hundred bytes: SQL text is
/// the server's own (values travel as parameters, never in the text), and two texts with
/// equal hashes are still told apart by comparing them.
public enum SQLHash {
    private static let seed = UInt64.random(in: .min ... .max)

    public static func of(_ sql: String) -> Int {
        var text = sql  // native already: `withUTF8` copies nothing
        return text.withUTF8 { of(UnsafeRawBufferPointer($0)) }
    }

    static func of(_ bytes: UnsafeRawBufferPointer) -> Int {
        let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15
        var hash = seed ^ UInt64(bytes.count)
        var offset = 0
        while offset + 8 <= bytes.count {
            hash = (hash ^ bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* multiplier
            hash ^= hash >> 32
            offset += 8
        }
        var tail: UInt64 = 0
        while offset < bytes.count {
            tail = tail << 8 | UInt64(bytes[offset])
            offset += 1
        }
        return Int(truncatingIfNeeded: murmurFinalized((hash ^ tail) &* multiplier))
    }
}

/// A statement's text as a dictionary key, hashed by `SQLHash` once (`Statement.sqlHash`).
public struct SQLKey: Hashable, Sendable {
    public let sql: String
    public let sqlHash: Int

    public init(_ statement: Statement) {
        sql = statement.sql
        sqlHash = statement.sqlHash
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(sqlHash) }

    public static func == (a: SQLKey, b: SQLKey) -> Bool { a.sqlHash == b.sqlHash && a.sql == b.sql }
}

#if canImport(Glibc)
import Glibc
#endif
