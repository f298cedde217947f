import JSON
import Schema

/// Keyset cursors: the position after a row (its sort key and id), bound to the
/// connection, the order and the filter it came from. Opaque to clients (base64url).
/// A cursor that does not decode, or was made for another connection, order or
/// filter, is refused with BAD_USER_INPUT.
package struct Cursor: Equatable {
    package let connection: String
    package let order: String
    package let filterFingerprint: String
    package let sortKey: String
    package let id: String

    package var encoded: String {
        Base64URL.encode(Array(["v1", connection, order, filterFingerprint, sortKey, id].joined(separator: "|").utf8))
    }

    package static func decode(_ text: String) -> Cursor? {
        guard let bytes = Base64URL.decode(text), let plain = String(validating: bytes, as: UTF8.self) else { return nil }
        let parts = plain.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6, parts[0] == "v1", Scalars.isLowercaseUUID(parts[5]) else { return nil }
        return Cursor(connection: parts[1], order: parts[2], filterFingerprint: parts[3], sortKey: parts[4], id: parts[5])
    }

    /// A short, stable digest of what a filter argument means (FNV-1a, 64 bits): its
    /// members in any order, less those given as null, which filter nothing (RULES.md
    /// section 2: an explicit null means the default); so `filter: {}`,
    /// `filter: {currency: null}` and no filter at all page one connection alike. A list
    /// member is a set (a row matches any of it): its order and repeats do not count.
    static func fingerprint(_ filter: JSONValue?) -> String {
        var meant = JSONValue.null
        if case .object(let members)? = filter {
            let given = members.compactMap { name, value -> (String, JSONValue)? in
                switch value {
                case .null: return nil
                case .array(let items):
                    let byText = Dictionary(items.map { ($0.serialized, $0) }, uniquingKeysWith: { first, _ in first })
                    return (name, .array(byText.sorted { $0.key < $1.key }.map(\.value)))
                default: return (name, value)
                }
            }
            if !given.isEmpty { meant = .object(given) }
        }
        let text = meant.sortedKeys().serialized
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// Base64 with the URL-safe alphabet and no padding.
package enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    package static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let n = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            if i + 1 < bytes.count { out.append(alphabet[Int(n >> 6 & 63)]) }
            if i + 2 < bytes.count { out.append(alphabet[Int(n & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    package static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt32] = []
        for c in text.utf8 {
            guard let v = alphabet.firstIndex(of: c) else { return nil }
            values.append(UInt32(v))
        }
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < values.count {
            let chunk = values[i..<min(i + 4, values.count)]
            var n: UInt32 = 0
            for (k, v) in chunk.enumerated() { n |= v << (18 - 6 * UInt32(k)) }
            out.append(UInt8(n >> 16 & 0xFF))
            if chunk.count > 2 { out.append(UInt8(n >> 8 & 0xFF)) }
            if chunk.count > 3 { out.append(UInt8(n & 0xFF)) }
            i += 4
        }
        // Only the canonical encoding is ours.
        return encode(out) == text ? out : nil
    }
}
