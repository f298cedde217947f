/// A parsed JSON value. Numbers keep their source text so that money (integers of
/// minor units) is never rounded through a Double.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number exactly as written, e.g. `"12"`, `"-0.5"`, `"1e3"`.
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in source order; keys are unique (the parser rejects duplicates).
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.0 == key })?.1
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value as an exact 64-bit integer, if it is written as one (no fraction, no exponent).
    public var int64Value: Int64? {
        guard case .number(let text) = self else { return nil }
        return Int64(text)
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Objects compared without regard to member order (for idempotency fingerprints).
    public func sortedKeys() -> JSONValue {
        switch self {
        case .array(let items): return .array(items.map { $0.sortedKeys() })
        case .object(let members):
            return .object(members.map { ($0.0, $0.1.sortedKeys()) }.sorted { $0.0 < $1.0 })
        default: return self
        }
    }

    /// Compact JSON text of this value.
    public var serialized: String {
        var writer = JSONWriter()
        writer.value(self)
        return writer.string
    }
}
