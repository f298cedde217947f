import Digest
import Store

/// Who an API key belongs to and what it may do.
public struct Principal: Sendable {
    public let keyID: String
    public let organisationID: String
    public let scopes: Set<String>
    /// Points the key may spend a minute; 0 for no limit (RULES.md section 8).
    public let rateLimit: Int
}

/// API keys, all in one place: what a key may look like, how it is made, hashed, stored,
/// looked up, listed and revoked, and the scopes it may hold. The server
/// (`Authenticator`), the command line (`keys`), the importer and the seeder use these.
///
/// Only a key's SHA-256 is stored (`api_key.key_hash`); the key itself is shown once,
/// when it is made. Hashing is done here, in Swift, and the digest sent as hexadecimal,
/// so that every statement compares the same bytes however the key was made.
public enum APIKeys {
    /// The scopes a key may hold (RULES.md section 1): reading, refunds, credit notes.
    public static let scopes: Set<String> = ["billing:read", "refunds:write", "credit_notes:write"]
    /// The scopes in the order people read them, for messages.
    static let scopesInOrder = ["billing:read", "refunds:write", "credit_notes:write"]

    /// What a key may look like (DATASET.md: 16 to 128 printable ASCII characters). The
    /// importer refuses any other key, and the server refuses one without a lookup: a key
    /// that cannot be stored can never match.
    public static func isWellFormed(_ key: String) -> Bool {
        let bytes = key.utf8
        return (16...128).contains(bytes.count) && bytes.allSatisfy { (0x20...0x7E).contains($0) }
    }

    /// The key's SHA-256 in lowercase hexadecimal: what is stored, and what is looked up.
    public static func digest(_ key: String) -> String { SHA256.hex(key.utf8) }

    /// A new key: `bg_`, then `name` (the seeder's `full_org3_`, to recognise demo keys
    /// by), then each random word as 16 hexadecimal digits.
    public static func make(name: String = "", random words: [UInt64]) -> String {
        "bg_" + name + words.map { String($0, radix: 16).leftPadded(16) }.joined()
    }

    /// A new key with 256 random bits from the system's generator (`keys create`).
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return make(random: (0..<4).map { _ in generator.next() })
    }

    /// Scopes written as a list (`keys create --scopes`) separated by commas, spaces or
    /// both; each must be known. Without repeats, in the order given.
    public static func parseScopes(_ text: String) throws(UnknownScope) -> [String] {
        var parsed: [String] = []
        for item in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
            let scope = String(item)
            guard scopes.contains(scope) else { throw UnknownScope(scope: scope) }
            if !parsed.contains(scope) { parsed.append(scope) }
        }
        return parsed
    }

    public struct UnknownScope: Error, CustomStringConvertible {
        public let scope: String
        public var description: String { "unknown scope \(scope); use \(scopesInOrder.joined(separator: ", "))" }
    }

    // MARK: - Statements

    /// Stores a key for an organisation; one row (the key's id) when the organisation
    /// exists, none otherwise.
    public static func create(organisationID: String, key: String, scopes: [String], label: String? = nil,
                              rateLimit: Int) -> Statement {
        Statement("""
            INSERT INTO api_key (organisation_id, key_hash, scopes, label, rate_limit)
            SELECT id, decode($2, 'hex'), $3::text[], $4, $5::integer FROM organisation WHERE id::text = $1
            RETURNING id::text
            """, [organisationID, digest(key), "{" + scopes.joined(separator: ",") + "}", label, String(rateLimit)])
    }

    /// The active key with this digest: `principal(from:)` reads the answer.
    public static func lookUp(digest: String) -> Statement {
        Statement("""
            SELECT id::text, organisation_id::text, array_to_string(scopes, ' '), rate_limit
            FROM api_key WHERE key_hash = decode($1, 'hex') AND revoked_at IS NULL
            """, [digest])
    }

    /// The principal of a `lookUp` answer, or nil when no active key has that digest.
    public static func principal(from rows: ResultSet) -> Principal? {
        guard rows.rowCount == 1, let id = rows.string(0, 0), let organisation = rows.string(0, 1) else { return nil }
        let scopes = Set((rows.string(0, 2) ?? "").split(separator: " ").map(String.init))
        return Principal(keyID: id, organisationID: organisation, scopes: scopes, rateLimit: rows.int(0, 3) ?? 0)
    }

    /// An organisation's keys, oldest first (never the keys themselves): id, scopes
    /// (comma-separated), label, created, revoked (empty while active), rate limit.
    public static func list(organisationID: String) -> Statement {
        Statement("""
            SELECT id::text, array_to_string(scopes, ','), COALESCE(label, ''), created_at::text, COALESCE(revoked_at::text, ''),
                   rate_limit
            FROM api_key WHERE organisation_id::text = $1 ORDER BY created_at, id
            """, [organisationID])
    }

    /// Revokes an active key by its id; one row (the id) when there was one.
    public static func revoke(id: String) -> Statement {
        Statement("UPDATE api_key SET revoked_at = now() WHERE id::text = $1 AND revoked_at IS NULL RETURNING id::text", [id])
    }

    /// Revokes an active key given as itself; one row (its id) when there was one.
    public static func revoke(key: String) -> Statement {
        Statement("UPDATE api_key SET revoked_at = now() WHERE key_hash = decode($1, 'hex') AND revoked_at IS NULL RETURNING id::text",
                  [digest(key)])
    }
}

