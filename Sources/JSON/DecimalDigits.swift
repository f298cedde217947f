/// Integers as decimal digits written straight into memory, two digits at a time from a
/// table: every figure, date and time of a response is written here, by `JSONWriter.int`
/// and by the cells read in PostgreSQL's binary format (`Billing.BinaryCells`).
/// `@inlinable`, as `JSONWriter`'s hot methods are: a call from another module per figure
/// costs more than the figure.
public enum DecimalDigits {
    /// The most `write(_:at:)` writes: `Int.min`, 19 digits and a sign.
    public static let longestInteger = 20

    /// `value` with a minus sign when negative, at `p`; how many bytes it wrote.
    @inlinable public static func write(_ value: Int, at p: UnsafeMutablePointer<UInt8>) -> Int {
        guard value < 0 else { return write(value.magnitude, width: 1, at: p) }
        p[0] = UInt8(ascii: "-")
        return 1 + write(value.magnitude, width: 1, at: p + 1)
    }

    /// The two digits of `value`, a number from 0 to 99 (a month, a day, an hour...), at `p`.
    @inlinable @inline(__always) public static func writePair(_ value: Int, at p: UnsafeMutablePointer<UInt8>) {
        precondition(value >= 0 && value < 100)
        let pairs = UnsafeRawPointer(pairDigits.utf8Start)
        UnsafeMutableRawPointer(p).storeBytes(of: pairs.loadUnaligned(fromByteOffset: 2 &* value, as: UInt16.self),
                                              as: UInt16.self)
    }

    /// `value` zero-padded to at least `width` digits (1 to 19), at `p`; how many digits it wrote.
    @inlinable public static func write(_ value: UInt, width: Int, at p: UnsafeMutablePointer<UInt8>) -> Int {
        let pairs = UnsafeRawPointer(pairDigits.utf8Start)
        if width == 2 && value < 100 {  // a month, a day, hours, minutes, seconds: one pair
            UnsafeMutableRawPointer(p).storeBytes(of: pairs.loadUnaligned(fromByteOffset: 2 * Int(value), as: UInt16.self),
                                                  as: UInt16.self)
            return 2
        }
        if width == 4 && value < 10_000 {  // a year: two pairs
            let out = UnsafeMutableRawPointer(p)
            out.storeBytes(of: pairs.loadUnaligned(fromByteOffset: 2 * Int(value / 100), as: UInt16.self), as: UInt16.self)
            out.storeBytes(of: pairs.loadUnaligned(fromByteOffset: 2 * Int(value % 100), as: UInt16.self),
                           toByteOffset: 2, as: UInt16.self)
            return 4
        }
        var digits = width
        var power: UInt = 1
        for _ in 0..<width { power &*= 10 }
        // 10^19 is the largest power of ten a UInt holds, and no UInt has 21 digits.
        while digits < 20 && value >= power {
            digits += 1
            power &*= 10
        }
        var rest = value
        var end = digits
        while end >= 2 {
            end -= 2
            let pair = pairs.loadUnaligned(fromByteOffset: 2 * Int(rest % 100), as: UInt16.self)
            UnsafeMutableRawPointer(p).storeBytes(of: pair, toByteOffset: end, as: UInt16.self)
            rest /= 100
        }
        if end == 1 { p[0] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10) }
        return digits
    }

    /// The two digits of each number below 100, one after the other: a constant, so
    /// reading it needs no lazily made table.
    @usableFromInline static var pairDigits: StaticString {
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
    }
}
