import Billing
import EventLoop
import Store

/// Looks API keys up by their SHA-256 (keys are stored hashed) and remembers answers
/// for a few seconds, so a busy client costs one lookup per few seconds rather than one
/// per request. A revoked key therefore stops working within `ttlMilliseconds`.
///
/// Bounded whatever clients send (RULES.md section 5): answers are remembered by the
/// key's digest, never by its text; a key that cannot be valid (DATASET.md: 16 to 128
/// printable ASCII characters) is refused without a lookup; lookups of the same digest
/// share one statement, and at most `maxPendingLookups` distinct lookups wait on the
/// database at once, so a flood of unknown keys cannot queue without bound behind it.
final class Authenticator {
    private let loop: EventLoop
    private let pool: StatementRunning
    /// At most `maxCachedKeys` entries of a digest (64 hexadecimal digits) and a
    /// principal (two uuids and a few scopes): under 4 MiB per loop.
    private var cache: [String: (principal: Principal?, expires: UInt64)] = [:]
    /// Lookups on their way to the database, by digest, with everyone waiting for them.
    private var pending: [String: [(Outcome) -> Void]] = [:]
    let ttlMilliseconds: UInt64 = 5_000
    static let maxCachedKeys = 10_000
    static let maxPendingLookups = 64

    init(loop: EventLoop, pool: StatementRunning) {
        self.loop = loop
        self.pool = pool
    }

    enum Outcome {
        case valid(Principal)
        case invalid
        /// The database could not be asked (down, or too many lookups waiting).
        case unavailable
    }

    func authenticate(_ key: String, completion: @escaping (Outcome) -> Void) {
        guard APIKeys.isWellFormed(key) else { return completion(.invalid) }
        let digest = APIKeys.digest(key)
        if let hit = cache[digest], hit.expires > loop.now {
            return completion(hit.principal.map(Outcome.valid) ?? .invalid)
        }
        if pending[digest] != nil { return pending[digest]!.append(completion) }
        guard pending.count < Self.maxPendingLookups else { return completion(.unavailable) }
        pending[digest] = [completion]
        lookUp(digest)
    }

    private func lookUp(_ digest: String) {
        pool.run(APIKeys.lookUp(digest: digest)) { [self] result in
            let waiting = pending.removeValue(forKey: digest) ?? []
            let outcome: Outcome
            switch result {
            case .failure:
                outcome = .unavailable
            case .success(let rows):
                let principal = APIKeys.principal(from: rows)
                remember(digest, principal)
                outcome = principal.map(Outcome.valid) ?? .invalid
            }
            for completion in waiting { completion(outcome) }
        }
    }

    private func remember(_ digest: String, _ principal: Principal?) {
        if cache.count >= Self.maxCachedKeys {
            let now = loop.now
            cache = cache.filter { $0.value.expires > now }
            if cache.count >= Self.maxCachedKeys { cache.removeAll() }
        }
        cache[digest] = (principal, loop.now + ttlMilliseconds)
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

