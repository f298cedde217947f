import Engine
import Store

/// Who is asking, and how statements reach the database, for one request.
public final class RequestContext {
    public let organisationID: String
    public let apiKeyID: String
    public let scopes: Set<String>
    public typealias StatementRunner = (Statement, @escaping (Result<ResultSet, DatabaseError>) -> Void) -> Void
    /// Where statements go. A query's context is made before its database is chosen (its
    /// cost is counted from the resolutions its execution then runs), so this is set, once
    /// that choice is made, by `send(through:)`.
    private var runStatement: StatementRunner
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
    private var reads: [ReadKey: Read] = [:]

    /// A statement as the key of `reads`. Its hash is computed once, and from the text and
    /// each parameter's length and last bytes only: parameters may be kilobytes of ids,
    /// and two different statements with equal hashes are still told apart by `==`.
    private struct ReadKey: Hashable {
        let sql: String
        let parameters: [String?]
        private let hash: Int

        init(_ statement: Statement) {
            sql = statement.sql
            parameters = statement.parameters
            var hasher = Hasher()
            hasher.combine(sql)
            for parameter in parameters {
                guard let utf8 = parameter?.utf8 else {
                    hasher.combine(-1)
                    continue
                }
                hasher.combine(utf8.count)
                for byte in utf8.suffix(32) { hasher.combine(byte) }
            }
            hash = hasher.finalize()
        }

        func hash(into hasher: inout Hasher) { hasher.combine(hash) }

        static func == (a: ReadKey, b: ReadKey) -> Bool {
            a.hash == b.hash && a.sql == b.sql && a.parameters == b.parameters
        }
    }

    private enum Read {
        case waiting([(Result<ResultSet, GraphQLError>) -> Void])
        case read(WeakResultSet)
        case failed(GraphQLError)
    }

    private struct WeakResultSet {
        weak var rows: ResultSet?
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

    /// Statements from now on go through `run`.
    public func send(through run: @escaping StatementRunner) { runStatement = run }

    /// The runner of a context whose database is not chosen yet: nothing runs.
    public static func notRouted(_ statement: Statement, _ completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        completion(.failure(.unavailable("no database chosen yet")))
    }

    /// Runs a statement; database errors become the contract's codes, and their text
    /// (which may hold SQL) goes to the log, never to the client.
    func query(_ statement: Statement, completion: @escaping (Result<ResultSet, GraphQLError>) -> Void) {
        let key = ReadKey(statement)
        switch reads[key] {
        case .read(let remembered)?:
            if let rows = remembered.rows { return completion(.success(rows)) }
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
        runStatement(statement) { [self] result in
            let outcome = result.mapError(logFailure)
            guard case .waiting(let waiters)? = reads[key] else { return }
            switch outcome {
            case .success(let rows): reads[key] = .read(WeakResultSet(rows: rows))
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
