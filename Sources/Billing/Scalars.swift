import JSON
import Query
import Schema

extension Schema {
    /// The contract's schema (schema/schema.graphql, embedded by scripts/embed-schema),
    /// reading its scalars with `Scalars.coercions`.
    public static let contract: Schema = {
        do { return try Schema(sdl: contractSDL, scalars: Scalars.coercions) } catch {
            fatalError("the embedded contract schema does not build: \(error)")
        }
    }()
}

/// Parsing of the contract's custom scalars. Kept strict: a billing date that is not
/// a real calendar day is an error, never rolled over.
public enum Scalars {
    /// How the schema reads `Date` and `DateTime` from variables and literals. `JSON`
    /// takes graphql-js's defaults: any value, as it came.
    static let coercions: [String: ScalarCoercion] = [
        "Date": strictText(isValid: isValidDate,
                           valueReason: "Date must be a calendar date in the form YYYY-MM-DD",
                           literalExpectation: "\"Date\" (YYYY-MM-DD)"),
        "DateTime": strictText(isValid: isValidDateTime,
                               valueReason: "DateTime must be an RFC 3339 UTC timestamp such as 2024-05-01T12:00:00Z",
                               literalExpectation: "\"DateTime\" (RFC 3339 in UTC)"),
    ]

    /// A scalar written as a string that `isValid` accepts, kept as that string.
    private static func strictText(isValid: @escaping @Sendable (String) -> Bool, valueReason: String,
                                   literalExpectation: String) -> ScalarCoercion {
        ScalarCoercion(
            parseValue: { (value) throws(ScalarCoercion.Invalid) in
                guard let text = value.stringValue, isValid(text) else {
                    throw ScalarCoercion.Invalid("\(valueReason): \(value.serialized)")
                }
                return value
            },
            parseLiteral: { (value, _) throws(ScalarCoercion.Invalid) in
                guard case .string(let text, _) = value.kind, isValid(text) else {
                    throw ScalarCoercion.Invalid("Expected value of type \(literalExpectation), found \(ValuePrinter.print(value)).")
                }
                return .string(text)
            })
    }

    /// `YYYY-MM-DD` naming a real day of the proleptic Gregorian calendar.
    public static func isValidDate(_ text: String) -> Bool {
        parseDate(text) != nil
    }

    /// (year, month, day) of a `YYYY-MM-DD` text, or nil.
    public static func parseDate(_ text: String) -> (year: Int, month: Int, day: Int)? {
        parseDate(utf8: Array(text.utf8))
    }

    /// `parseDate` over bytes (the importer's scanner reads a line's values in place).
    static func parseDate<Bytes: RandomAccessCollection<UInt8>>(utf8 u: Bytes) -> (year: Int, month: Int, day: Int)?
    where Bytes.Index == Int {
        let o = u.startIndex
        guard u.count == 10, u[o + 4] == UInt8(ascii: "-"), u[o + 7] == UInt8(ascii: "-"),
              let y = digits(u, o, 4), let m = digits(u, o + 5, 2), let d = digits(u, o + 8, 2),
              y >= 1, (1...12).contains(m), d >= 1, d <= daysIn(month: m, year: y) else { return nil }
        return (y, m, d)
    }

    /// RFC 3339 in UTC with second precision: `2024-05-01T12:00:00Z`.
    public static func isValidDateTime(_ text: String) -> Bool {
        let u = Array(text.utf8)
        return u.count == 20 && u[19] == UInt8(ascii: "Z") && isValidDateAndTime(utf8: u[0..<19])
    }

    /// `YYYY-MM-DDTHH:MM:SS` exactly: a timestamp without its zone, over bytes.
    static func isValidDateAndTime<Bytes: RandomAccessCollection<UInt8>>(utf8 u: Bytes) -> Bool where Bytes.Index == Int {
        let o = u.startIndex
        guard u.count == 19, u[o + 10] == UInt8(ascii: "T"), u[o + 13] == UInt8(ascii: ":"), u[o + 16] == UInt8(ascii: ":"),
              parseDate(utf8: u[o..<o + 10]) != nil,
              let h = digits(u, o + 11, 2), let mi = digits(u, o + 14, 2), let s = digits(u, o + 17, 2),
              h < 24, mi < 60, s < 60 else { return false }
        return true
    }

    /// A UUID in lowercase text, the only form of id this service knows.
    public static func isLowercaseUUID(_ text: String) -> Bool {
        isLowercaseUUID(utf8: Array(text.utf8))
    }

    /// `isLowercaseUUID` over bytes.
    static func isLowercaseUUID<Bytes: RandomAccessCollection<UInt8>>(utf8 u: Bytes) -> Bool {
        guard u.count == 36 else { return false }
        for (i, c) in u.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if c != UInt8(ascii: "-") { return false }
            } else if !((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66)) {
                return false
            }
        }
        return true
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    private static func digits<Bytes: RandomAccessCollection<UInt8>>(_ u: Bytes, _ start: Int, _ count: Int) -> Int?
    where Bytes.Index == Int {
        var value = 0
        for c in u[start..<start + count] {
            guard c >= 0x30 && c <= 0x39 else { return nil }
            value = value * 10 + Int(c - 0x30)
        }
        return value
    }
}
