import Engine
import Store

/// Who is asking, and how statements reach the database, for one request.
public final class RequestContext {
    public let organisationID: String
    public let apiKeyID: String
    public let scopes: Set<String>
    public typealias StatementRunner = (Statement, @escaping (Result<ResultSet, DatabaseError>) -> Void) -> Void
    public typealias SharedRunner = (SharedRead, @escaping (Result<RowSlice, DatabaseError>) -> Void) -> Void
    /// Where statements go. A query's context is made before its database is chosen (its
    /// cost is counted from the resolutions its execution then runs), so this is set, once
    /// that choice is made, by `send(through:sharing:)`.
    private var runStatement: StatementRunner
    /// Runs a read that may share its statement with other requests' (README,
    /// "Coalescing"); nil for a mutation, whose reads run in its own transaction.
    private var runShared: SharedRunner?
    /// True when this request's loads may share statements with other requests' (a
    /// query's, with coalescing on); a mutation's never do.
    var mayShare: Bool { runShared != nil }
    private let log: (String) -> Void
    /// Sees every statement before it is sent (the benchmarks replay them with pgbench).
    public var trace: ((Statement) -> Void)?
    /// Statements this request sent: tests use it to show the count follows the query's shape.
    public private(set) var statementCount = 0
    /// Set when a statement of the request's transaction lost a serialization conflict or
    /// a deadlock: the whole operation may be run again (RULES.md section 4).
    public private(set) var conflicted = false
    /// Mutation fields (by name, an entry for each) that answered with an earlier call's result
    /// under the same idempotency key, for the metrics (RULES.md section 7).
    public private(set) var replayed: [String] = []
    /// Reads of this request by statement: a field asked at several places of one query
    /// with the same parents makes the same statement, which goes to the database once.
    /// Rows are remembered weakly: this cache never keeps a result alive that its loader
    /// let go of (a load that went over its share of the item budget drops its rows, and
    /// a refused request must not hold a budget's worth of them until it ends).
    private var reads: [StatementKey: Read] = [:]

    private enum Read {
        case waiting([(Result<RowSlice, GraphQLError>) -> Void])
        case read(WeakRowSlice)
        case failed(GraphQLError)
    }

    /// A read's rows, without keeping its result set alive.
    private struct WeakRowSlice {
        weak var rows: ResultSet?
        let range: Range<Int>
        let ordinalOffset: Int
        let keyCount: Int
        let count: Int

        init(_ slice: RowSlice) {
            (rows, range, ordinalOffset, keyCount, count) = (slice.rows, slice.range, slice.ordinalOffset, slice.keyCount, slice.count)
        }

        var slice: RowSlice? {
            rows.map { RowSlice(rows: $0, range: range, ordinalOffset: ordinalOffset, keyCount: keyCount, count: count) }
        }
    }

    public init(organisationID: String, apiKeyID: String, scopes: Set<String>,
                log: @escaping (String) -> Void = { _ in },
                run: @escaping StatementRunner = RequestContext.notRouted) {
        self.organisationID = organisationID
        self.apiKeyID = apiKeyID
        self.scopes = scopes
        self.runStatement = run
        self.log = log
    }

    /// Statements from now on go through `run`, and loads that may share a statement
    /// with other requests' through `shared` (a query's; never a mutation's).
    public func send(through run: @escaping StatementRunner, sharing shared: SharedRunner? = nil) {
        runStatement = run
        runShared = shared
    }

    /// The runner of a context whose database is not chosen yet: nothing runs.
    public static func notRouted(_ statement: Statement, _ completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        completion(.failure(.unavailable("no database chosen yet")))
    }

    /// Runs a statement; database errors become the contract's codes, and their text
    /// (which may hold SQL) goes to the log, never to the client.
    func query(_ statement: Statement, completion: @escaping (Result<ResultSet, GraphQLError>) -> Void) {
        read(statement, send: alone(statement)) { completion($0.map(\.rows)) }
    }

    /// Runs a load's statement, sharing it with the identical loads of other requests
    /// when `shared` and this request may (a query's); otherwise alone. Either way the
    /// request counts one statement and sees only its own rows.
    func query(_ read: SharedRead, shared: Bool, completion: @escaping (Result<RowSlice, GraphQLError>) -> Void) {
        guard shared, let runShared else { return self.read(read.statement, send: alone(read.statement), completion: completion) }
        self.read(read.statement, send: { done in runShared(read, done) }, completion: completion)
    }

    /// Sends `statement` for this request alone: all its rows are the read's.
    private func alone(_ statement: Statement) -> (@escaping (Result<RowSlice, DatabaseError>) -> Void) -> Void {
        { [runStatement] done in runStatement(statement) { done($0.map(RowSlice.whole)) } }
    }

    /// Reads through the request's cache: `send` runs only when no identical read is
    /// remembered or on its way.
    private func read(_ statement: Statement, send: (@escaping (Result<RowSlice, DatabaseError>) -> Void) -> Void,
                      completion: @escaping (Result<RowSlice, GraphQLError>) -> Void) {
        let key = StatementKey(statement)
        switch reads[key] {
        case .read(let remembered)?:
            if let rows = remembered.slice { return completion(.success(rows)) }
            reads[key] = .waiting([completion])  // let go of: read again
        case .failed(let error)?:
            return completion(.failure(error))
        case .waiting(let others)?:
            reads[key] = .waiting(others + [completion])
            return
        case nil:
            reads[key] = .waiting([completion])
        }
        statementCount += 1
        trace?(statement)
        send { [self] result in
            let outcome = result.mapError(logFailure)
            guard case .waiting(let waiters)? = reads[key] else { return }
            switch outcome {
            case .success(let rows): reads[key] = .read(WeakRowSlice(rows))
            case .failure(let error): reads[key] = .failed(error)
            }
            for waiter in waiters { waiter(outcome) }
        }
    }

    /// Runs a statement (a write) and hands back the database's own error (mutations retry some).
    func queryRaw(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        // A write may change what earlier reads saw (reads in flight keep their waiters).
        reads = reads.filter { if case .waiting = $0.value { return true } else { return false } }
        statementCount += 1
        trace?(statement)
        runStatement(statement, completion)
    }

    func noteReplay(of field: String) { replayed.append(field) }

    func logFailure(_ error: DatabaseError) -> GraphQLError {
        if error.isRetryable { conflicted = true }
        if error.isUnavailable {
            log("database unavailable: \(error)")
            return GraphQLError("The database is not available right now; try again shortly.", code: .serviceUnavailable)
        }
        if error.isTimeout {
            // Nothing of the statement happened, and the same request may well succeed
            // later: the client's to retry, not a fault of ours (README, "Limits").
            log("statement timed out: \(error)")
            return GraphQLError("The database did not answer in time; try again shortly.", code: .serviceUnavailable)
        }
        log("statement failed: \(error)")
        return GraphQLError("Internal server error.", code: .internalServerError)
    }

    func require(_ scope: String, for field: String) throws(GraphQLError) {
        guard scopes.contains(scope) else {
            throw GraphQLError("The API key lacks the scope \(scope), which \(field) needs.", code: .forbidden)
        }
    }
}

/// Numbers the parameters of a statement as fragments are added, so values are always
/// bound as `$n` and never written into the text.
struct Parameters {
    private(set) var values: [String?] = []

    mutating func bind(_ value: String?) -> String {
        values.append(value)
        return "$\(values.count)"
    }

    /// A PostgreSQL array literal of values that are known to need no quoting (UUIDs, enum names).
    static func arrayLiteral(_ items: [String]) -> String { "{" + items.joined(separator: ",") + "}" }
}
