import JSON
import Store

/// Cells read in PostgreSQL's binary format (`Store.Binary`) written as the contract's
/// text (RULES.md section 1): ids as lowercase UUIDs, `Date` as `YYYY-MM-DD`, `DateTime`
/// as `YYYY-MM-DDTHH:MM:SSZ` in UTC (to the second, the fraction cut), money as integers
/// of minor units, `JSON` as its text. PostgreSQL then formats nothing, on any row.
///
/// Text is formatted in place, in the writer's own memory, with the field's key: a
/// response is mostly such cells, so each costs one capacity check and no copy.
enum BinaryCells {
    private static let microsecondsPerDay = 86_400_000_000

    /// Writes `key` (a field's `"name":`) and then one non-null cell of type `type` as a
    /// JSON value.
    static func write(_ bytes: UnsafeBufferPointer<UInt8>, type: UInt32, key: UnsafeBufferPointer<UInt8>, to w: inout JSONWriter) {
        switch type {
        case Binary.Oid.int8, Binary.Oid.int4, Binary.Oid.int2:
            format(key, into: &w, quoted: false) { putInteger(Binary.integer(bytes) ?? 0, $0, 0) }
        case Binary.Oid.uuid:
            format(key, into: &w, quoted: true) { putUUID(bytes, $0, 0) }
        case Binary.Oid.date:
            format(key, into: &w, quoted: true) { putDate(bytes, $0, 0) }
        case Binary.Oid.timestamptz, Binary.Oid.timestamp:
            format(key, into: &w, quoted: true) { putDateTime(bytes, precise: false, $0, 0) }
        case Binary.Oid.bool:
            w.append(key)
            w.bool(bytes.first == 1)
        case Binary.Oid.jsonb:
            // A version byte (1), then the text PostgreSQL would have printed.
            w.append(key)
            w.append(UnsafeBufferPointer(rebasing: bytes.dropFirst()))
        default:  // text, varchar: the bytes themselves
            w.string(utf8: bytes, after: key)
        }
    }

    /// A cursor's part as text: an id, or a sort key (a date, or a timestamp to the
    /// microsecond, `YYYY-MM-DD HH:MM:SS.ffffff`).
    static func text(_ bytes: UnsafeBufferPointer<UInt8>, type: UInt32) -> String {
        let put: (UnsafeMutablePointer<UInt8>) -> Int
        switch type {
        case Binary.Oid.uuid: put = { putUUID(bytes, $0, 0) }
        case Binary.Oid.date: put = { putDate(bytes, $0, 0) }
        case Binary.Oid.timestamptz, Binary.Oid.timestamp: put = { putDateTime(bytes, precise: true, $0, 0) }
        default: return String(decoding: bytes, as: UTF8.self)
        }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: longestValue) { buffer in
            String(decoding: UnsafeBufferPointer(start: buffer.baseAddress!, count: put(buffer.baseAddress!)), as: UTF8.self)
        }
    }

    /// More than any `put` function below writes: at most 28 bytes, a timestamp to the
    /// microsecond with a six-digit year (a date's year may have seven digits, 13 bytes).
    private static let longestValue = 40

    /// Appends `key`, then what `put` formats (it returns how many bytes it wrote), quoted if asked.
    @inline(__always)
    private static func format(_ key: UnsafeBufferPointer<UInt8>, into w: inout JSONWriter, quoted: Bool,
                               _ put: (UnsafeMutablePointer<UInt8>) -> Int) {
        w.write(atMost: key.count + longestValue + 2) { p in
            JSONWriter.copy(key, to: p)
            var n = key.count
            if quoted { p[n] = UInt8(ascii: "\""); n += 1 }
            n += put(p + n)
            if quoted { p[n] = UInt8(ascii: "\""); n += 1 }
            return n
        }
    }

    // The `put` functions write at `p + at` and return the index after what they wrote.

    private static func putInteger(_ value: Int, _ p: UnsafeMutablePointer<UInt8>, _ at: Int) -> Int {
        at + DecimalDigits.write(value, at: p + at)
    }

    /// A uuid's 16 bytes as `8-4-4-4-12` lowercase hex digits. Every row has one or more
    /// (ids, and the parent keys of the next level), so four bytes at a time become their
    /// eight digits in one word (`hexDigits`), and the dashes go at their fixed places.
    private static func putUUID(_ bytes: UnsafeBufferPointer<UInt8>, _ p: UnsafeMutablePointer<UInt8>, _ at: Int) -> Int {
        guard bytes.count == 16, let source = bytes.baseAddress else { return at }
        let from = UnsafeRawPointer(source)
        let out = UnsafeMutableRawPointer(p + at)
        func digits(_ offset: Int) -> UInt64 {
            hexDigits(UInt32(littleEndian: from.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        }
        func put(_ word: UInt64, at offset: Int) { out.storeBytes(of: word.littleEndian, toByteOffset: offset, as: UInt64.self) }
        func put(_ half: UInt32, at offset: Int) { out.storeBytes(of: half.littleEndian, toByteOffset: offset, as: UInt32.self) }
        let dash = UInt8(ascii: "-")
        put(digits(0), at: 0)  // bytes 0-3: "xxxxxxxx"
        out.storeBytes(of: dash, toByteOffset: 8, as: UInt8.self)
        let middle = digits(4)  // bytes 4-7: "xxxx-xxxx"
        put(UInt32(truncatingIfNeeded: middle), at: 9)
        out.storeBytes(of: dash, toByteOffset: 13, as: UInt8.self)
        put(UInt32(truncatingIfNeeded: middle >> 32), at: 14)
        out.storeBytes(of: dash, toByteOffset: 18, as: UInt8.self)
        let third = digits(8)  // bytes 8-11: "xxxx-xxxx"
        put(UInt32(truncatingIfNeeded: third), at: 19)
        out.storeBytes(of: dash, toByteOffset: 23, as: UInt8.self)
        put(UInt32(truncatingIfNeeded: third >> 32), at: 24)
        put(digits(12), at: 28)  // bytes 12-15
        return at &+ 36
    }

    /// The eight lowercase hex digits of four bytes (the first byte in the low bits), as
    /// they lie in memory when the word is stored little-endian: each byte is spread into
    /// a 16-bit lane, its two nibbles into the lane's two bytes (high nibble first), and
    /// each nibble made a digit with no branch ('0' + n, and 39 more from 'a' on).
    @inline(__always)
    private static func hexDigits(_ four: UInt32) -> UInt64 {
        var lanes = UInt64(four)
        lanes = (lanes | lanes << 16) & 0x0000_FFFF_0000_FFFF
        lanes = (lanes | lanes << 8) & 0x00FF_00FF_00FF_00FF
        let nibbles = (lanes >> 4) & 0x000F_000F_000F_000F | (lanes & 0x000F_000F_000F_000F) << 8
        let letters = ((nibbles &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        return nibbles &+ 0x3030_3030_3030_3030 &+ letters &* 0x27
    }

    private static func putDate(_ bytes: UnsafeBufferPointer<UInt8>, _ p: UnsafeMutablePointer<UInt8>, _ at: Int) -> Int {
        let days = Binary.integer(bytes) ?? 0
        if days == Int(Int32.max) || days == Int(Int32.min) { return putInfinity(days > 0, p, at) }
        return putCivil(days, p, at)
    }

    private static func putDateTime(_ bytes: UnsafeBufferPointer<UInt8>, precise: Bool,
                                    _ p: UnsafeMutablePointer<UInt8>, _ at: Int) -> Int {
        let micros = Binary.integer(bytes) ?? 0
        if micros == Int.max || micros == Int.min { return putInfinity(micros > 0, p, at) }
        // Floor division: an instant before 2000 is on an earlier day, not a negative time.
        let days = micros >= 0 ? micros / microsecondsPerDay : (micros + 1) / microsecondsPerDay - 1
        let inDay = micros - days * microsecondsPerDay
        let seconds = inDay / 1_000_000
        var i = putCivil(days, p, at)
        p[i] = precise ? UInt8(ascii: " ") : UInt8(ascii: "T")
        DecimalDigits.writePair(seconds / 3600, at: p + i + 1)
        p[i + 3] = UInt8(ascii: ":")
        DecimalDigits.writePair(seconds / 60 % 60, at: p + i + 4)
        p[i + 6] = UInt8(ascii: ":")
        DecimalDigits.writePair(seconds % 60, at: p + i + 7)
        i += 9
        if !precise {
            p[i] = UInt8(ascii: "Z")
            return i + 1
        }
        p[i] = UInt8(ascii: ".")
        return putDigits(inDay % 1_000_000, 6, p, i + 1)
    }

    /// `YYYY-MM-DD`: the month and the day as one pair of digits each, the year as two
    /// when it has four digits (nearly always), each stored whole.
    private static func putCivil(_ days: Int, _ p: UnsafeMutablePointer<UInt8>, _ at: Int) -> Int {
        let (year, month, day) = Binary.civil(daysSince2000: days)
        var i = at
        if year >= 0 && year < 10_000 {
            DecimalDigits.writePair(year / 100, at: p + i)
            DecimalDigits.writePair(year % 100, at: p + i + 2)
            i += 4
        } else {
            i = putDigits(year, 4, p, i)
        }
        p[i] = UInt8(ascii: "-")
        DecimalDigits.writePair(month, at: p + i + 1)
        p[i + 3] = UInt8(ascii: "-")
        DecimalDigits.writePair(day, at: p + i + 4)
        return i + 6
    }

    private static func putInfinity(_ positive: Bool, _ p: UnsafeMutablePointer<UInt8>, _ at: Int) -> Int {
        var i = at
        for byte in (positive ? "infinity" : "-infinity").utf8 { p[i] = byte; i += 1 }
        return i
    }

    /// `value` (a year has at most seven digits; a negative one, a date before the year 1,
    /// is written as 0) zero-padded to `width` digits.
    private static func putDigits(_ value: Int, _ width: Int, _ p: UnsafeMutablePointer<UInt8>, _ at: Int) -> Int {
        at + DecimalDigits.write(UInt(max(0, value)), width: width, at: p + at)
    }
}
