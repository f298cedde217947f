import Billing
import Digest
import Engine
import EventLoop
import Store

/// Operation documents by the SHA-256 of their text (RULES.md section 8), kept in the
/// database (`persisted_document`, migration 008) so that every loop, process and replica
/// sees what any of them stored: Apollo's automatic persisted queries, and the trusted
/// documents that `billgraph documents add` registers.
///
/// Each loop keeps what it has read in a cache bounded in bytes: a document's text never
/// changes for its hash, so a text once read serves for ever; whether it is trusted can
/// change (`documents remove`), so that, and (under `--trusted-documents-only`) a hash the
/// database did not know, are believed for `ttlMilliseconds` only. Lookups of one hash share one statement, and at
/// most `maxPendingLookups` distinct ones wait on the database at once, so a flood of
/// unknown hashes cannot queue without bound.
final class PersistedDocuments {
    struct Document {
        let text: String
        let trusted: Bool
    }

    enum Lookup {
        case found(Document)
        case missing
        /// The database could not be asked (down, or too many lookups waiting).
        case unavailable
    }

    private struct Entry {
        /// nil: the database had no document of this hash.
        let document: Document?
        let checked: UInt64
        var bytes: Int { 128 + (document?.text.utf8.count ?? 0) }
    }

    let capacityBytes: Int
    /// Larger documents are read from the database each time rather than cached.
    var maxEntryBytes: Int { capacityBytes / 128 }
    let ttlMilliseconds: UInt64 = 5_000
    static let maxPendingLookups = 64

    private let loop: EventLoop
    private let pool: StatementRunning
    private var entries: [String: Entry] = [:]
    private var usedBytes = 0
    private var pending: [String: [(Lookup) -> Void]] = [:]

    init(loop: EventLoop, pool: StatementRunning, capacityBytes: Int = 8 << 20) {
        self.loop = loop
        self.pool = pool
        self.capacityBytes = capacityBytes
    }

    /// The lowercase hexadecimal SHA-256 of a document's text: its name here.
    static func hash(_ text: String) -> String { SHA256.hex(text.utf8) }

    /// The document of `hash`. With `freshTrust`, a cached answer is used only while
    /// young enough to decide whether the document is trusted.
    func find(_ hash: String, freshTrust: Bool, completion: @escaping (Lookup) -> Void) {
        if let entry = entries[hash] {
            let young = loop.now < entry.checked + ttlMilliseconds
            if let document = entry.document, young || !freshTrust { return completion(.found(document)) }
            // An unknown hash is believed for a while only where trust is asked: an automatic
            // persisted query may have been stored by another loop or process since.
            if entry.document == nil, young, freshTrust { return completion(.missing) }
        }
        if pending[hash] != nil { return pending[hash]!.append(completion) }
        guard pending.count < Self.maxPendingLookups else { return completion(.unavailable) }
        pending[hash] = [completion]
        let statement = Statement("SELECT body, trusted FROM persisted_document WHERE sha256 = decode($1, 'hex')", [hash])
        pool.run(statement) { [self] result in
            let waiting = pending.removeValue(forKey: hash) ?? []
            let lookup: Lookup
            switch result {
            case .failure: lookup = .unavailable
            case .success(let rows):
                let document = rows.rowCount == 1 ? rows.string(0, 0).map { Document(text: $0, trusted: rows.string(0, 1) == "t") } : nil
                remember(hash, document)
                lookup = document.map(Lookup.found) ?? .missing
            }
            for completion in waiting { completion(lookup) }
        }
    }

    /// Stores a document a client sent with its hash (the caller checked the hash), for
    /// every loop and process, then calls back whether or not the database took it: the
    /// request runs either way, and the client sends the text again when it is not known.
    func store(_ hash: String, text: String, completion: @escaping () -> Void) {
        if entries[hash]?.document != nil { return completion() }
        let statement = Statement("""
            INSERT INTO persisted_document (sha256, body) VALUES (decode($1, 'hex'), $2) ON CONFLICT (sha256) DO NOTHING
            """, [hash, text])
        pool.run(statement) { [self] result in
            if case .success = result { remember(hash, Document(text: text, trusted: false)) }
            completion()
        }
    }

    private func remember(_ hash: String, _ document: Document?) {
        let entry = Entry(document: document, checked: loop.now)
        guard entry.bytes <= maxEntryBytes else { return }
        if let old = entries[hash] { usedBytes -= old.bytes }
        if usedBytes + entry.bytes > capacityBytes {
            entries.removeAll(keepingCapacity: true)
            usedBytes = 0
        }
        entries[hash] = entry
        usedBytes += entry.bytes
    }
}

// MARK: - Which document a request runs

extension PersistedDocuments {
    /// A request whose document is refused before it is parsed.
    struct Refusal: Error {
        let status: Int
        let error: GraphQLError
    }

    /// The text of the document `request` runs (RULES.md section 8):
    /// - a query with a persisted query's hash: the hash must be the query's, and the
    ///   document is stored for every loop and process before it runs;
    /// - a hash alone: the stored document, or `PersistedQueryNotFound` (HTTP 200) so that
    ///   the client sends the text;
    /// - with `trustedOnly`, any document that is not trusted is refused, unparsed, with
    ///   HTTP 400 and `DOCUMENT_NOT_TRUSTED`, and nothing is stored.
    func text(of request: ClientRequest, trustedOnly: Bool, completion: @escaping (Result<String, Refusal>) -> Void) {
        if let query = request.query {
            // Most requests are plain text: hashing half a megabyte of comments for nothing
            // made such a request cost twice what it did.
            guard request.persistedQueryHash != nil || trustedOnly else { return completion(.success(query)) }
            let hash = Self.hash(query)
            if let claimed = request.persistedQueryHash, claimed != hash {
                return completion(.failure(Refusal(status: 400, error: GraphQLError(
                    "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query.", code: .badUserInput))))
            }
            if trustedOnly { return trusted(hash, completion) }
            return store(hash, text: query) { completion(.success(query)) }
        }
        guard let hash = request.persistedQueryHash else {
            return completion(.failure(Refusal(status: 400, error: GraphQLError("The request has no query.", code: .badUserInput))))
        }
        if trustedOnly { return trusted(hash, completion) }
        find(hash, freshTrust: false) { lookup in
            switch lookup {
            case .found(let document): completion(.success(document.text))
            case .missing: completion(.failure(Refusal(status: 200, error: GraphQLError("PersistedQueryNotFound", code: .persistedQueryNotFound))))
            case .unavailable: completion(.failure(Self.unavailable))
            }
        }
    }

    private func trusted(_ hash: String, _ completion: @escaping (Result<String, Refusal>) -> Void) {
        find(hash, freshTrust: true) { lookup in
            switch lookup {
            case .found(let document) where document.trusted: completion(.success(document.text))
            case .found, .missing:
                completion(.failure(Refusal(status: 400, error: GraphQLError(
                    "This server runs only trusted documents, and this one is not among them.", code: .documentNotTrusted))))
            case .unavailable: completion(.failure(Self.unavailable))
            }
        }
    }

    private static let unavailable = Refusal(status: 503, error: GraphQLError(
        "The database is not available right now; try again shortly.", code: .serviceUnavailable))
}
