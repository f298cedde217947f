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
    public private(set) var bytes: [UInt8]
    public private(set) var count = 0

    static let uuidOID: UInt32 = 2950
    static let headerSize = 20
    /// Where the dimension's length is written.
    private static let lengthOffset = 12

    public init(reservingCapacity capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(Self.headerSize + 20 * capacity)
        for word in [1, 0, Self.uuidOID, 0, 1] as [UInt32] { Self.append(word, to: &bytes) }
    }

    /// Appends a uuid given as two words, the first its first 8 bytes: the element (its
    /// length, 16, then the bytes) is made on the stack and appended in one piece.
    public mutating func append(high: UInt64, low: UInt64) {
        withUnsafeTemporaryAllocation(byteCount: 20, alignment: 1) { element in
            element.storeBytes(of: UInt32(16).bigEndian, toByteOffset: 0, as: UInt32.self)
            element.storeBytes(of: high.bigEndian, toByteOffset: 4, as: UInt64.self)
            element.storeBytes(of: low.bigEndian, toByteOffset: 12, as: UInt64.self)
            bytes.append(contentsOf: UnsafeRawBufferPointer(element))
        }
        setCount(count + 1)
    }

    /// Appends the elements of `other`, in order.
    public mutating func append(contentsOf other: UUIDArray) {
        bytes.append(contentsOf: other.bytes[Self.headerSize...])
        setCount(count + other.count)
    }

    /// The array's text form, `{xxxxxxxx-xxxx-...,...}`: for traces and `EXPLAIN`, never sent.
    public var textLiteral: String {
        var text = "{"
        for i in 0..<count {
            if i > 0 { text += "," }
            let start = Self.headerSize + i * 20 + 4
            var digits = ""
            for (j, byte) in bytes[start..<(start + 16)].enumerated() {
                if j == 4 || j == 6 || j == 8 || j == 10 { digits += "-" }
                digits += String(byte >> 4, radix: 16) + String(byte & 0xF, radix: 16)
            }
            text += digits
        }
        return text + "}"
    }

    private mutating func setCount(_ newCount: Int) {
        count = newCount
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(newCount).bigEndian, toByteOffset: Self.lengthOffset, as: UInt32.self) }
    }

    private static func append(_ word: UInt32, to bytes: inout [UInt8]) {
        for shift in [24, 16, 8, 0] as [UInt32] { bytes.append(UInt8(truncatingIfNeeded: word >> shift)) }
    }
}
