/// PostgreSQL's binary formats of the types billgraph reads (the `send` functions of
/// `src/backend/utils/adt`): big-endian integers; `uuid` as its 16 bytes; `date` as
/// days and `timestamp`/`timestamptz` as microseconds since 2000-01-01 (UTC for
/// `timestamptz`), whatever the session's DateStyle or TimeZone; `jsonb` as a version
/// byte (1) and its text; `text` as its bytes.
public enum Binary {
    /// The `pg_type` oids of the types above.
    public enum Oid {
        public static let bool: UInt32 = 16
        public static let int8: UInt32 = 20
        public static let int2: UInt32 = 21
        public static let int4: UInt32 = 23
        public static let text: UInt32 = 25
        public static let varchar: UInt32 = 1043
        public static let date: UInt32 = 1082
        public static let timestamp: UInt32 = 1114
        public static let timestamptz: UInt32 = 1184
        public static let uuid: UInt32 = 2950
        public static let jsonb: UInt32 = 3802
    }

    /// A big-endian signed integer of 2, 4 or 8 bytes; nil for another length.
    /// Inlinable, as `civil` below: every figure and date of a response is read here.
    @inlinable public static func integer(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let source = bytes.baseAddress else { return nil }
        let raw = UnsafeRawPointer(source)
        switch bytes.count {
        case 8: return Int(Int64(bigEndian: raw.loadUnaligned(as: Int64.self)))
        case 4: return Int(Int32(bigEndian: raw.loadUnaligned(as: Int32.self)))
        case 2: return Int(Int16(bigEndian: raw.loadUnaligned(as: Int16.self)))
        default: return nil
        }
    }

    /// Days since 2000-01-01 as a proleptic Gregorian (year, month, day): the inverse
    /// of Howard Hinnant's `days_from_civil`. Every date of a response comes through here,
    /// so it counts without overflow checks (a day of PostgreSQL's is a 32-bit number, far
    /// from any) and divides in unsigned numbers within an era, by constants, which the
    /// compiler makes a multiplication each.
    @inlinable public static func civil(daysSince2000 days: Int) -> (year: Int, month: Int, day: Int) {
        // Counted from 0000-03-01: 719,468 days to 1970-01-01, then 10,957 to 2000-01-01.
        let z = days &+ 730_425
        let era = (z >= 0 ? z : z &- 146_096) / 146_097
        let dayOfEra = UInt(bitPattern: z &- era &* 146_097)  // 0 to 146,096
        let yearOfEra = (dayOfEra &- dayOfEra / 1460 &+ dayOfEra / 36_524 &- dayOfEra / 146_096) / 365  // 0 to 399
        let dayOfYear = dayOfEra &- (365 &* yearOfEra &+ yearOfEra / 4 &- yearOfEra / 100)  // from March 1st
        let mp = (5 &* dayOfYear &+ 2) / 153
        let day = dayOfYear &- (153 &* mp &+ 2) / 5 &+ 1
        let month = mp < 10 ? mp &+ 3 : mp &- 9
        return (Int(bitPattern: yearOfEra) &+ era &* 400 &+ (month <= 2 ? 1 : 0), Int(bitPattern: month), Int(bitPattern: day))
    }
}
