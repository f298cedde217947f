import Billing
import EventLoop
import Store

/// Who an API key belongs to and what it may do.
struct Principal {
    let keyID: String
    let organisationID: String
    let scopes: Set<String>
}

/// Looks API keys up by their SHA-256 (keys are stored hashed) and remembers answers
/// for a few seconds, so a busy client costs one lookup per few seconds rather than one
/// per request. A revoked key therefore stops working within `ttlMilliseconds`.
final class Authenticator {
    private let loop: EventLoop
    private let pool: ConnectionPool
    private var cache: [String: (principal: Principal?, expires: UInt64)] = [:]
    let ttlMilliseconds: UInt64 = 5_000

    init(loop: EventLoop, pool: ConnectionPool) {
        self.loop = loop
        self.pool = pool
    }

    enum Outcome {
        case valid(Principal)
        case invalid
        case unavailable
    }

    func authenticate(_ key: String, completion: @escaping (Outcome) -> Void) {
        let now = loop.now
        if let hit = cache[key], hit.expires > now {
            return completion(hit.principal.map(Outcome.valid) ?? .invalid)
        }
        let statement = Statement("""
            SELECT id::text, organisation_id::text, array_to_string(scopes, ' ')
            FROM api_key WHERE key_hash = sha256(convert_to($1, 'UTF8')) AND revoked_at IS NULL
            """, [key])
        pool.run(statement) { [self] result in
            switch result {
            case .failure:
                completion(.unavailable)
            case .success(let rows):
                var principal: Principal?
                if rows.rowCount == 1, let id = rows.string(0, 0), let org = rows.string(0, 1) {
                    let scopes = Set((rows.string(0, 2) ?? "").split(separator: " ").map(String.init))
                    principal = Principal(keyID: id, organisationID: org, scopes: scopes)
                }
                if cache.count > 10_000 { cache.removeAll() }
                cache[key] = (principal, loop.now + ttlMilliseconds)
                completion(principal.map(Outcome.valid) ?? .invalid)
            }
        }
    }

    /// The key of a request: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
    static func key(authorization: String?, apiKey: String?) -> String? {
        if let apiKey, !apiKey.isEmpty { return apiKey.trimmingSpaces }
        guard let authorization else { return nil }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let key = String(parts[1]).trimmingSpaces
        return key.isEmpty ? nil : key
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
