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
        let digits = max(width, digitCount(value))
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

    /// How many digits `value` has (1 for 0), with no loop: its bit length gives the count
    /// or one less (log10 2 is about 1233/4096), and one comparison with a power of ten
    /// tells which (Sean Anderson's "Bit Twiddling Hacks"). `value | 1` counts 0 as 1 and,
    /// a power of ten from 10 on being even, crosses none.
    @inlinable @inline(__always) static func digitCount(_ value: UInt) -> Int {
        let odd = value | 1
        let lower = ((UInt.bitWidth &- odd.leadingZeroBitCount) &* 1233) &>> 12  // 0 to 19
        return odd < powerOfTen(lower) ? lower : lower &+ 1
    }

    /// 10^n for n from 0 to 19 (the largest a UInt holds): a switch of constants, which
    /// the compiler makes a table.
    @inlinable @inline(__always) static func powerOfTen(_ n: Int) -> UInt {
        switch n {
        case 0: 1
        case 1: 10
        case 2: 100
        case 3: 1_000
        case 4: 10_000
        case 5: 100_000
        case 6: 1_000_000
        case 7: 10_000_000
        case 8: 100_000_000
        case 9: 1_000_000_000
        case 10: 10_000_000_000
        case 11: 100_000_000_000
        case 12: 1_000_000_000_000
        case 13: 10_000_000_000_000
        case 14: 100_000_000_000_000
        case 15: 1_000_000_000_000_000
        case 16: 10_000_000_000_000_000
        case 17: 100_000_000_000_000_000
        case 18: 1_000_000_000_000_000_000
        default: 10_000_000_000_000_000_000
        }
    }

    /// The two digits of each number below 100, one after the other: a constant, so
    /// reading it needs no lazily made table.
    @usableFromInline static var pairDigits: StaticString {
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
    }
}
