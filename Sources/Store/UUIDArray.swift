/// A one-dimensional `uuid[]` without nulls, in PostgreSQL's binary format (what
/// `array_send` writes and `array_recv` reads), sent as a binary parameter.
///
/// Why: the keys of a load travel as an array, and PostgreSQL parses an array's text one
/// character at a time, each uuid's 36 digits and dashes included: a thousand uuids cost
/// it about a millisecond of CPU, which was a third of what a dashboard request cost the
/// database. In binary each uuid is its 16 bytes, copied.
///
/// Layout (all integers big-endian): the number of dimensions (1), a has-nulls flag (0),
/// the element type (`uuid`, OID 2950), the dimension's length and lower bound (1); then
/// per element its length (16) and its bytes.
public struct UUIDArray: Sendable, Hashable {
    /// The uuids, two words each (the first 8 bytes, then the last 8), in order. Kept as
    /// words, and laid out in the binary format only when sent (`encode(into:)`): an
    /// element appended to bytes (its length, then its 16 bytes, then the header's count
    /// rewritten) cost about 140 instructions, and a dashboard sends about 460 uuids.
    public private(set) var words: [UInt64]

    public var count: Int { words.count / 2 }

    static let uuidOID: UInt32 = 2950
    static let headerSize = 20
    static let elementSize = 20

    public init(reservingCapacity capacity: Int = 0) {
        words = []
        words.reserveCapacity(2 * capacity)
    }

    /// `count` times the same uuid (an organisation beside each of a load's keys).
    public init(repeating high: UInt64, _ low: UInt64, count: Int) {
        self.init(reservingCapacity: count)
        for _ in 0..<count { append(high: high, low: low) }
    }

    /// Appends a uuid given as two words, the first its first 8 bytes.
    public mutating func append(high: UInt64, low: UInt64) {
        words.append(high)
        words.append(low)
    }

    /// Appends the elements of `other`, in order.
    public mutating func append(contentsOf other: UUIDArray) {
        words.append(contentsOf: other.words)
    }

    /// How many bytes the binary format takes (`encode(into:)`).
    public var encodedCount: Int { Self.headerSize + Self.elementSize * count }

    /// Writes the array in the binary format to `destination`, which has room for
    /// `encodedCount` bytes.
    public func encode(into destination: UnsafeMutableRawPointer) {
        func put(_ word: UInt32, at offset: Int) {
            destination.storeBytes(of: word.bigEndian, toByteOffset: offset, as: UInt32.self)
        }
        // The header: one dimension, no nulls, uuids, `count` of them, from 1.
        put(1, at: 0)
        put(0, at: 4)
        put(Self.uuidOID, at: 8)
        put(UInt32(count), at: 12)
        put(1, at: 16)
        var offset = Self.headerSize
        words.withUnsafeBufferPointer { words in
            for i in stride(from: 0, to: words.count, by: 2) {
                put(16, at: offset)
                destination.storeBytes(of: words[i].bigEndian, toByteOffset: offset + 4, as: UInt64.self)
                destination.storeBytes(of: words[i + 1].bigEndian, toByteOffset: offset + 12, as: UInt64.self)
                offset += Self.elementSize
            }
        }
    }

    /// The binary format as bytes (what `encode(into:)` writes), for the tests.
    var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: encodedCount) { buffer, initialized in
            encode(into: UnsafeMutableRawPointer(buffer.baseAddress!))
            initialized = encodedCount
        }
    }

    /// The array's text form, `{xxxxxxxx-xxxx-...,...}`: for traces and `EXPLAIN`, never sent.
    public var textLiteral: String {
        var text = "{"
        for i in 0..<count {
            if i > 0 { text += "," }
            var digits = ""
            for (j, byte) in (withUnsafeBytes(of: (words[2 * i].bigEndian, words[2 * i + 1].bigEndian)) { Array($0) }).enumerated() {
                if j == 4 || j == 6 || j == 8 || j == 10 { digits += "-" }
                digits += String(byte >> 4, radix: 16) + String(byte & 0xF, radix: 16)
            }
            text += digits
        }
        return text + "}"
    }
}
