import JSON
import Schema

/// Why a line of a dataset cannot be imported.
public struct ImportError: Error, CustomStringConvertible {
    public let line: Int
    public let reason: String
    public var description: String { line > 0 ? "line \(line): \(reason)" : reason }
}

/// Reads the fields of one JSON Lines object, strictly: unknown keys, missing keys and
/// values of the wrong type are errors, worded for the person fixing the file.
struct DatasetRecord {
    let type: String
    /// In the line's order, each key once (the parser refuses a repeated key). A line has
    /// a dozen at most, so a key is found by comparing, never by hashing: hashing the
    /// members into a dictionary was a tenth of the importer's time.
    private let members: [(String, JSONValue)]

    init(_ json: JSONValue, allowed: (String) -> [String]?) throws(ImportFailure) {
        guard case .object(let list) = json else { throw ImportFailure("the line is not a JSON object") }
        members = list
        guard case .string(let type)? = members.first(where: { $0.0 == "type" })?.1 else {
            throw ImportFailure("\"type\" is missing or not a string")
        }
        guard let keys = allowed(type) else { throw ImportFailure("unknown type \"\(type)\"") }
        if !list.allSatisfy({ $0.0 == "type" || keys.contains($0.0) }) {
            // The first unknown key in alphabetical order, whatever the line's order.
            for key in list.map(\.0).sorted() where key != "type" && !keys.contains(key) {
                throw ImportFailure("unknown key \"\(key)\" for type \(type)")
            }
        }
        self.type = type
    }

    private func member(_ key: String) -> JSONValue? { members.first(where: { $0.0 == key })?.1 }

    func has(_ key: String) -> Bool {
        guard let v = member(key) else { return false }
        return v != .null
    }

    func string(_ key: String) throws(ImportFailure) -> String {
        guard let v = member(key) else { throw ImportFailure("\"\(key)\" is missing") }
        guard case .string(let s) = v else { throw ImportFailure("\"\(key)\" must be a string") }
        // PostgreSQL text cannot hold it: refused here, with the line's number, rather than by COPY.
        guard !s.utf8.contains(0) else { throw ImportFailure("\"\(key)\" must not contain the character U+0000") }
        return s
    }

    func optionalString(_ key: String) throws(ImportFailure) -> String? {
        guard has(key) else { return nil }
        return try string(key)
    }

    func uuid(_ key: String) throws(ImportFailure) -> String {
        let s = try string(key)
        guard Scalars.isLowercaseUUID(s) else { throw ImportFailure("\"\(key)\" must be a UUID in lowercase text, got \"\(s)\"") }
        return s
    }

    func date(_ key: String) throws(ImportFailure) -> String {
        let s = try string(key)
        guard Scalars.isValidDate(s) else { throw ImportFailure("\"\(key)\" must be a date YYYY-MM-DD, got \"\(s)\"") }
        return s
    }

    func optionalDate(_ key: String) throws(ImportFailure) -> String? {
        guard has(key) else { return nil }
        return try date(key)
    }

    /// RFC 3339 in UTC: `2024-05-01T12:00:00Z`, optionally with a fraction of a second.
    /// UTC may also be said as RFC 3339 allows (`+00:00`, `-00:00`, a lower-case `t` or
    /// `z`, as Python's `isoformat` and others write it); the value comes back in the
    /// `Z` form, which the staging rows take (`CopyBuffer`) and the line scanner reads.
    func timestamp(_ key: String) throws(ImportFailure) -> String {
        let written = try string(key)
        let s = Self.utcWithZ(written)
        var base = s
        if let dot = s.firstIndex(of: "."), s.hasSuffix("Z") {
            let fraction = s[s.index(after: dot)..<s.index(before: s.endIndex)]
            // ASCII digits only: `isNumber` would take any script's digits, which PostgreSQL refuses.
            if !fraction.isEmpty && fraction.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { base = String(s[..<dot]) + "Z" }
        }
        guard Scalars.isValidDateTime(base) else {
            throw ImportFailure("\"\(key)\" must be an RFC 3339 timestamp in UTC such as 2024-05-01T12:00:00Z, got \"\(written)\"")
        }
        return s
    }

    /// `text` with its UTC offset written `Z` and its date and time parted by `T`; other
    /// text as it is, for the check to refuse.
    static func utcWithZ(_ text: String) -> String {
        var utf8 = Array(text.utf8)
        for suffix in ["+00:00", "-00:00", "z"] where text.hasSuffix(suffix) {
            utf8.removeLast(suffix.utf8.count)
            utf8.append(UInt8(ascii: "Z"))
            break
        }
        if utf8.count > 10, utf8[10] == UInt8(ascii: "t") { utf8[10] = UInt8(ascii: "T") }
        return String(decoding: utf8, as: UTF8.self)
    }

    /// Money: an integer of minor units, never negative.
    func money(_ key: String) throws(ImportFailure) -> Int64 {
        guard let v = member(key) else { throw ImportFailure("\"\(key)\" is missing") }
        guard let n = v.int64Value else { throw ImportFailure("\"\(key)\" must be an integer of minor units") }
        guard n >= 0 else { throw ImportFailure("\"\(key)\" must not be negative") }
        return n
    }

    func optionalMoney(_ key: String) throws(ImportFailure) -> Int64? {
        guard has(key) else { return nil }
        return try money(key)
    }

    func array(_ key: String) throws(ImportFailure) -> [JSONValue] {
        guard let v = member(key) else { throw ImportFailure("\"\(key)\" is missing") }
        guard case .array(let items) = v else { throw ImportFailure("\"\(key)\" must be a list") }
        return items
    }

    /// One of `allowed` (lowercase in the file), returned as the API spells it (uppercase).
    func choice(_ key: String, _ allowed: [String]) throws(ImportFailure) -> String {
        let s = try string(key)
        guard allowed.contains(s) else {
            throw ImportFailure("\"\(key)\" must be one of \(allowed.joined(separator: ", ")), got \"\(s)\"")
        }
        return s.uppercased()
    }
}

/// `a + b` for sums of money read from a file, which may be built to overflow.
func checkedSum(_ a: Int64, _ b: Int64, _ what: @autoclosure () -> String) throws(ImportFailure) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    guard !overflow else { throw ImportFailure("\(what()) would exceed \(Int64.max) minor units") }
    return sum
}

/// A broken rule, before the line number is known.
struct ImportFailure: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
