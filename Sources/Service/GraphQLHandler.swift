import Billing
import Engine
import EventLoop
import JSON
import Query
import Schema
import Server
import Store

#if canImport(Glibc)
import Glibc
#endif

/// GraphQL over HTTP (RULES.md section 1): `POST /graphql` and `GET /graphql`, API-key
/// authentication, media types by `Accept`, and the status codes of the specification.
final class GraphQLHandler: HTTPHandler {
    private let preparation: Preparation
    /// The primary and the replicas (RULES.md section 9).
    private let targets: DatabaseTargets
    private let lanes: StatementLanes
    private let authenticator: Authenticator
    private let mutations: MutationResolving?
    private let maxResultItems: Int
    private let log: (String) -> Void
    private let limiter: RateLimiter
    private let persisted: PersistedDocuments
    /// `serve --trusted-documents-only` (RULES.md section 8).
    private let trustedDocumentsOnly: Bool
    private let graphiQL: GraphiQL
    /// Where large documents are prepared, off this loop.
    private let desk: PreparationDesk
    /// 8 MiB of documents per loop.
    private var documents = DocumentCache(capacityBytes: 8 << 20)
    /// BILLGRAPH_TRACE_SQL=1 writes every statement and its parameters to standard error.
    private let traceStatements = getenv("BILLGRAPH_TRACE_SQL").map { String(cString: $0) == "1" } ?? false

    init(preparation: Preparation, targets: DatabaseTargets, lanes: StatementLanes, authenticator: Authenticator,
         mutations: MutationResolving?, maxResultItems: Int, limiter: RateLimiter, persisted: PersistedDocuments,
         trustedDocumentsOnly: Bool, graphiQL: GraphiQL, desk: PreparationDesk, log: @escaping (String) -> Void) {
        self.graphiQL = graphiQL
        self.desk = desk
        self.limiter = limiter
        self.persisted = persisted
        self.trustedDocumentsOnly = trustedDocumentsOnly
        self.maxResultItems = maxResultItems
        self.preparation = preparation
        self.targets = targets
        self.lanes = lanes
        self.authenticator = authenticator
        self.mutations = mutations
        self.log = log
    }

    /// Says where an answer's data came from (RULES.md section 9); answers that read no
    /// table (refusals, mutations) say `primary`: `FrontHandler` adds it when missing.
    static let servedBy = "Billgraph-Served-By"

    func refusal(status: Int, message: String) -> HTTPResponse {
        errorResponse(status: status, GraphQLError(message, code: .badUserInput), as: .json)
    }

    func handle(_ request: HTTPRequest, respond: @escaping (HTTPResponse) -> Void) {
        handle(request, outcome: RequestOutcome(), respond: respond)
    }

    /// `outcome` learns the key and the operation as they are found (for the access log).
    func handle(_ request: HTTPRequest, outcome found: RequestOutcome, respond: @escaping (HTTPResponse) -> Void) {
        if let page = graphiQL.answer(request) { return respond(page) }
        guard request.path == "/graphql" else {
            return respond(errorResponse(status: 404, GraphQLError("Not found: GraphQL is served at /graphql.", code: .badUserInput), as: .json))
        }
        guard request.method == "GET" || request.method == "POST" else {
            return respond(errorResponse(status: 405, GraphQLError("Use GET or POST.", code: .badUserInput), as: .json,
                                         extraHeaders: [("Allow", "GET, POST")]))
        }
        guard let media = MediaType.negotiate(request.header("Accept")) else {
            return respond(errorResponse(status: 406, GraphQLError(
                "Accept application/graphql-response+json or application/json.", code: .badUserInput), as: .json))
        }
        guard let key = Authenticator.key(authorization: request.header("Authorization"), apiKey: request.header("X-API-Key")) else {
            return respond(unauthenticated(media))
        }
        authenticator.authenticate(key) { [self] outcome in
            switch outcome {
            case .invalid: respond(unauthenticated(media))
            case .unavailable:
                respond(errorResponse(status: 503, GraphQLError("The database is not available right now; try again shortly.",
                                                                code: .serviceUnavailable), as: media))
            case .valid(let principal):
                (found.keyID, found.organisationID) = (principal.keyID, principal.organisationID)
                serve(request, principal: principal, media: media, outcome: found, respond: respond)
            }
        }
    }

    private func unauthenticated(_ media: MediaType) -> HTTPResponse {
        errorResponse(status: 401, GraphQLError("A valid API key is required (Authorization: Bearer <key> or X-API-Key).",
                                                code: .unauthenticated), as: media,
                      extraHeaders: [("WWW-Authenticate", "Bearer")])
    }

    private func serve(_ request: HTTPRequest, principal: Principal, media: MediaType, outcome: RequestOutcome,
                       respond: @escaping (HTTPResponse) -> Void) {
        // RULES.md section 8: every answer to a known key says what its budget has left.
        let respond = { [limiter] (response: HTTPResponse) in respond(limiter.withHeaders(response, for: principal)) }
        // RULES.md section 9: read your writes.
        var minLSN: LSN?
        if let text = request.header("Billgraph-Min-LSN") {
            guard let lsn = LSN(text.trimmingSpaces) else {
                return respond(spendingNothing(principal) { errorResponse(status: 400, GraphQLError(
                    "Billgraph-Min-LSN must be a WAL position such as 0/16B3748 (as Billgraph-Commit-LSN gives it).",
                    code: .badUserInput), as: media, extensions: $0) })
            }
            minLSN = lsn
        }
        let body: RequestParameters.Body
        do {
            if request.method == "POST" {
                guard let type = request.header("Content-Type") else {
                    return respond(spendingNothing(principal) { errorResponse(status: 415, GraphQLError("Send Content-Type: application/json.", code: .badUserInput), as: media, extensions: $0) })
                }
                guard type.split(separator: ";").first.map({ String($0).trimmingSpaces.lowercased() }) == "application/json" else {
                    return respond(spendingNothing(principal) { errorResponse(status: 415, GraphQLError("Only application/json request bodies are accepted.", code: .badUserInput), as: media, extensions: $0) })
                }
                body = try RequestParameters.fromJSONBody(request.body)
            } else {
                body = .single(try RequestParameters.fromQueryString(request.query))
            }
        } catch {
            return respond(spendingNothing(principal) { errorResponse(status: 400, GraphQLError(error.message, code: .badUserInput), as: media, extensions: $0) })
        }
        switch body {
        case .single(let one):
            answer(one, method: request.method, principal: principal, media: media, minLSN: minLSN, outcome: outcome, respond: respond)
        case .batch(let requests):
            Batch.run(requests, answer: { [self] one, done in
                answer(one, method: request.method, principal: principal, media: media, minLSN: minLSN, outcome: outcome, respond: done)
            }, media: media, respond: respond)
        }
    }

    /// Answers one request (alone, or one of a batch): finds its document (its text, or a
    /// persisted query's hash), prepares it, pays its cost and runs it.
    private func answer(_ request: ClientRequest, method: String, principal: Principal, media: MediaType, minLSN: LSN?,
                        outcome: RequestOutcome, respond: @escaping (HTTPResponse) -> Void) {
        persisted.text(of: request, trustedOnly: trustedDocumentsOnly) { [self] found in
            switch found {
            case .failure(let refusal):
                respond(spendingNothing(principal) { errorResponse(status: refusal.status, refusal.error, as: media, extraHeaders: [("X-Billgraph-Statements", "0")], extensions: $0) })
            case .success(let text):
                prepare(text, request, method: method, principal: principal, media: media, minLSN: minLSN, outcome: outcome,
                        respond: respond)
            }
        }
    }

    /// Prepares the document: on this loop when it is cached or small, else on the
    /// preparation thread (`PreparationThread`), so that no loop spends tens of
    /// milliseconds on one document while its other requests wait.
    private func prepare(_ text: String, _ request: ClientRequest, method: String, principal: Principal, media: MediaType,
                         minLSN: LSN?, outcome: RequestOutcome, respond: @escaping (HTTPResponse) -> Void) {
        let known = documents.cached(text)
        let finish = { [self] (prepared: Prepared) in
            if known == nil, case .success(let ready) = prepared { documents.keep(text, ready.valid) }
            proceed(prepared, method: method, principal: principal, media: media, minLSN: minLSN, outcome: outcome, respond: respond)
        }
        if known != nil || text.utf8.count < Self.preparedAsideBytes {
            return finish(PreparedRequest.make(text, request, preparation, valid: known))
        }
        let accepted = desk.prepare({ [preparation] in PreparedRequest.make(text, request, preparation) }, then: finish)
        if accepted {
            ServiceMetrics.shared.preparedAside.increment()
        } else {
            respond(spendingNothing(principal) { errorResponse(status: 503, GraphQLError("Too many large documents are waiting to be prepared; try again shortly.",
                                                            code: .serviceUnavailable), as: media, extraHeaders: [("Retry-After", "1")], extensions: $0) })
        }
    }

    /// Documents of this many bytes or more are prepared on the preparation thread; the
    /// canonical queries are 1 to 3 KB, and a document this large takes a few milliseconds.
    static let preparedAsideBytes = 16 << 10

    private func proceed(_ prepared: Prepared, method: String, principal: Principal, media: MediaType, minLSN: LSN?,
                         outcome: RequestOutcome, respond: @escaping (HTTPResponse) -> Void) {
        switch prepared {
        case .failure(let failure): return respond(spendingNothing(principal) { failureResponse(failure, media, extensions: $0) })
        case .success(let ready):
            outcome.found(ready.operation.kind.rawValue, named: ready.operation.name?.value)
            if method == "GET" && ready.operation.kind != .query {
                return respond(spendingNothing(principal) { errorResponse(status: 405, GraphQLError("Mutations must be sent with POST.", code: .badUserInput),
                                             as: media, extraHeaders: [("Allow", "POST")], extensions: $0) })
            }
            switch ready.plan {
            case .failure(let failure): respond(spendingNothing(principal) { failureResponse(failure, media, extensions: $0) })
            case .success(let plan): pay(for: plan, principal: principal, media: media, minLSN: minLSN, respond: respond)
            }
        }
    }

    /// RULES.md section 8: the operation's cost, from its plan, is paid from the key's
    /// budget before any database work, or the operation is refused whole with 429.
    private func pay(for plan: OperationPlan, principal: Principal, media: MediaType, minLSN: LSN?, respond: @escaping (HTTPResponse) -> Void) {
        // A query's cost is counted from the resolutions its execution will run; a
        // mutation's runs are made inside their transactions, so it is costed apart.
        let query = plan.kind == .mutation ? nil : makeRun(plan, principal: principal)
        let cost = query.map { run in OperationCost.of(plan, resolution: run.execution.resolved) }
            ?? OperationCost.of(plan, organisationID: principal.organisationID, apiKeyID: principal.keyID, scopes: principal.scopes)
        switch limiter.spend(cost, for: principal) {
        case .refused(let allowance):
            respond(errorResponse(status: 429, GraphQLError(
                "This API key has spent its budget of \(allowance.limit) points a minute; this operation costs \(cost). Try again in \(allowance.resetSeconds) s.",
                code: .rateLimited), as: media,
                extraHeaders: [("Retry-After", String(allowance.resetSeconds)), ("X-Billgraph-Statements", "0")] + allowance.headers,
                extensions: RateLimiter.costExtension(requested: cost, remaining: allowance.remaining)))
        case .allowed(let allowance):
            // A key with no limit has no budget to report.
            let extensions = allowance.map { RateLimiter.costExtension(requested: cost, remaining: $0.remaining) } ?? []
            execute(plan, query, principal: principal, media: media, minLSN: minLSN, extensions: extensions) { response in
                respond(allowance.map { RateLimiter.withHeaders(response, $0) } ?? response)
            }
        }
    }

    /// `query`: the run of a query, made when it was costed; nil for a mutation.
    /// `extensions`: the members of every answer's `extensions` (`Execution.extensions`).
    private func execute(_ plan: OperationPlan, _ query: Run?, principal: Principal, media: MediaType, minLSN: LSN?,
                         extensions: [UInt8], respond: @escaping (HTTPResponse) -> Void) {
        if let query {
            query.execution.extensions = extensions
            // RULES.md section 9: a query reads from a replica when one is usable (and has
            // replayed `minLSN`), else from the primary, and says which.
            return targets.route(minLSN: minLSN) { [self] route in
                let lane = lanes.lane(to: route, coalescer: targets.coalescer)
                query.context.send(through: { statement, completion in lane.run(statement, completion: completion) },
                                   sharing: lane.shares ? { read, completion in lane.run(read, completion: completion) } : nil)
                start(query, media: media) { answer, _ in
                    lane.finish()
                    var answer = answer
                    answer.headers.append((Self.servedBy, route.servedBy))
                    respond(answer)
                }
            }
        }
        // RULES.md section 4: the whole operation is one transaction; its answer goes out
        // once the transaction has ended, and tells the truth about it.
        var last: HTTPResponse?
        var replayed: [String] = []
        let locks = MutationService.lockPrelude(plan.fields, organisationID: principal.organisationID)
        let transaction = MutationTransaction(loop: targets.loop, pool: targets.primary, prelude: locks, log: log)
        let unavailable = { [self] (message: String) in
            errorResponse(status: media == .json ? 200 : 503, GraphQLError(message, code: .serviceUnavailable), as: media,
                          extensions: extensions)
        }
        transaction.run({ [self] statements, done in
            run(plan, principal: principal, media: media, extensions: extensions, statements: statements) { answer, verdict in
                last = answer
                replayed = verdict.replayed
                done(verdict)
            }
        }) { end in
            ServiceMetrics.shared.mutationsEnded(plan.fields.map(\.name).filter { !$0.hasPrefix("__") },
                                                 applied: end == .committed, replayed: replayed)
            // RULES.md section 9: where the primary's WAL was after this transaction, when
            // the database could still say.
            let withPosition = { (answer: HTTPResponse) -> HTTPResponse in
                guard let lsn = transaction.commitLSN else { return answer }
                var answer = answer
                answer.headers.append(("Billgraph-Commit-LSN", lsn.description))
                return answer
            }
            switch end {
            case .committed, .rolledBack:
                respond(withPosition(last!))
            case .failed:
                respond(withPosition(unavailable("The operation conflicted with others too often and was not applied; try again.")))
            case .unreachable:
                respond(unavailable("The database is not available right now; try again shortly."))
            case .unknown:
                respond(unavailable(
                    "The database went away; whether the operation was applied is unknown. Retry with the same idempotency keys."))
            }
        }
    }

    /// Executes a plan once, its statements going through `statements`, and answers with
    /// the response and whether a transaction around it should be applied.
    private func run(_ plan: OperationPlan, principal: Principal, media: MediaType, extensions: [UInt8],
                     statements: @escaping MutationTransaction.StatementRunner,
                     answer: @escaping (HTTPResponse, MutationTransaction.Verdict) -> Void) {
        let run = makeRun(plan, principal: principal)
        run.execution.extensions = extensions
        run.context.send(through: statements)
        start(run, media: media, answer: answer)
    }

    /// One execution of a plan and the request context its statements go through.
    private struct Run {
        let context: RequestContext
        let execution: Execution
    }

    /// A run whose statements go nowhere until `context.send(through:)` says where.
    private func makeRun(_ plan: OperationPlan, principal: Principal) -> Run {
        let context = RequestContext(organisationID: principal.organisationID, apiKeyID: principal.keyID,
                                     scopes: principal.scopes, log: log)
        if traceStatements {
            context.trace = { [log] statement in
                var line = JSONWriter()
                line.value(.object([("sql", .string(statement.sql)),
                                    ("parameters", .array(statement.parameters.map { $0.map { .string($0.text) } ?? .null }))]))
                log("trace: " + line.string)
            }
        }
        let execution = Execution(plan: plan, schema: preparation.schema, resolver: BillingResolver(context: context, mutations: mutations),
                                  itemLimit: maxResultItems, endingRequest: ErrorCode.endingRequest)
        return Run(context: context, execution: execution)
    }

    /// Runs `run` and answers with the response and whether a transaction around it
    /// should be applied.
    private func start(_ run: Run, media: MediaType, answer: @escaping (HTTPResponse, MutationTransaction.Verdict) -> Void) {
        let (context, execution) = (run.context, run.execution)
        execution.run { result in
            let statements = [("X-Billgraph-Statements", String(context.statementCount))]
            switch result {
            case .response(let body):
                answer(HTTPResponse(status: 200, headers: [("Content-Type", media.contentType)] + statements, body: body),
                       .init(apply: !execution.hasFieldErrors, conflicted: context.conflicted, replayed: context.replayed))
            case .requestError(let error):
                // No data: a limit was hit, or the database failed under the request.
                let status = media == .graphQLResponse ? (error.code == .serviceUnavailable ? 503 : 400) : 200
                answer(HTTPResponse(status: status, headers: [("Content-Type", media.contentType)] + statements,
                                    body: requestErrorBody([error], extensions: execution.extensions)),
                       .init(apply: false, conflicted: context.conflicted))
            }
        }
    }

    /// A request refused before execution: no statement ran for it.
    private func failureResponse(_ failure: Preparation.RequestFailure, _ media: MediaType, extensions: [UInt8]) -> HTTPResponse {
        let noStatements = [("X-Billgraph-Statements", "0")]
        switch failure {
        case .documentRejected(let errors):
            return HTTPResponse(status: media == .json ? 200 : 400, headers: [("Content-Type", media.contentType)] + noStatements,
                                body: requestErrorBody(errors, extensions: extensions))
        case .tooComplex(let error):
            return failureResponse(.documentRejected([error]), media, extensions: extensions)
        case .badRequest(let error):
            return errorResponse(status: 400, error, as: media, extraHeaders: noStatements, extensions: extensions)
        }
    }

    /// An answer to a known key that ran no operation, made by `answer` from its
    /// `extensions`: nothing spent, and what the key's budget has left (RULES.md section 8:
    /// every answer to a known key carries it), read once for both the `extensions.cost`
    /// and the `RateLimit-*` headers, so that they agree while other requests of the key
    /// spend. Neither for a key without a limit, which has no budget to report.
    private func spendingNothing(_ principal: Principal, _ answer: (_ extensions: [UInt8]) -> HTTPResponse) -> HTTPResponse {
        guard principal.rateLimit > 0 else { return answer([]) }
        let allowance = limiter.allowance(key: principal.keyID, limit: principal.rateLimit)
        return RateLimiter.withHeaders(answer(RateLimiter.costExtension(requested: 0, remaining: allowance.remaining)), allowance)
    }

    private func errorResponse(status: Int, _ error: GraphQLError, as media: MediaType,
                               extraHeaders: [(String, String)] = [], extensions: [UInt8] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", media.contentType)] + extraHeaders,
                     body: requestErrorBody([error], extensions: extensions))
    }
}

/// Parsed and validated documents by query text. Dashboards send the same few queries
/// again and again; parsing and validating them once is enough.
///
/// Bounded in bytes (RULES.md section 5): each entry is charged its text plus an
/// estimate of its syntax tree and of the planned shapes it may keep (`bytesPerToken` a
/// token; `PlanShapes` keeps at most `fieldsPerToken` planned fields a token), and a full
/// cache starts again empty. Documents larger than `maxEntryBytes` are judged each time
/// instead.
struct DocumentCache {
    let capacityBytes: Int
    var maxEntryBytes: Int { capacityBytes / 128 }
    static let bytesPerToken = syntaxBytesPerToken + PlanShapes.fieldsPerToken * bytesPerPlannedField
    /// A token's share of the syntax tree.
    static let syntaxBytesPerToken = 160
    /// A kept shape's field (`PlanShape.Field` and what it refers to alone: measured about
    /// 430 bytes a field of the dashboard's shape), and the columns derived for it.
    static let bytesPerPlannedField = 600
    private var entries: [String: Preparation.ValidDocument] = [:]
    private(set) var usedBytes = 0

    init(capacityBytes: Int) { self.capacityBytes = capacityBytes }

    func cached(_ query: String) -> Preparation.ValidDocument? { entries[query] }

    /// Keeps `valid` as the document of `query`, unless it is too large to.
    mutating func keep(_ query: String, _ valid: Preparation.ValidDocument) {
        let cost = query.utf8.count + valid.document.tokenCount * Self.bytesPerToken
        guard cost <= maxEntryBytes else { return }
        if usedBytes + cost > capacityBytes {
            entries.removeAll(keepingCapacity: true)
            usedBytes = 0
        }
        // Another request may have kept the same document while this one was prepared aside.
        if entries.updateValue(valid, forKey: query) == nil { usedBytes += cost }
    }
}
