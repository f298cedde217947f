import Billing
import EventLoop
import JSON
import Metrics
import Server
import Store
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// What an operator sees and runs (RULES.md section 7): `/healthz`, `/readyz` and
// `/metrics`, the access log, `X-Request-Id`, and the HTTP figures of the metrics.

/// What the GraphQL handler found out about one request, for the access log and the
/// metrics. Filled in as the request goes; read once it is answered.
final class RequestOutcome {
    /// `query` or `mutation` once the operation is known; `none` before.
    var operationType = "none"
    var operationName: String?
    var keyID: String?
    var organisationID: String?
    private var operations = 0

    init() {}

    /// An operation of the request was found. A batch (RULES.md section 8) has several:
    /// it is a `mutation` when any of them is, and has no one name.
    func found(_ type: String, named name: String?) {
        operations += 1
        if operations == 1 {
            (operationType, operationName) = (type, name)
        } else {
            operationName = nil
            if type == "mutation" { operationType = type }
        }
    }
}

/// The first handler of every request on a listener: answers the operator's endpoints
/// (when this listener serves them), gives each request its id, and after the answer,
/// counts it and writes its access-log line. Everything else goes to `next`.
final class FrontHandler: HTTPHandler {
    private let next: GraphQLHandler?
    private let endpoints: OperatorEndpoints?
    private let accessLog: AccessLog?
    private let metrics: ServiceMetrics
    /// This loop's children of the HTTP families, by status and operation type: counting
    /// a request takes no lock.
    private var children: [Int: (requests: Counter, duration: Histogram)] = [:]
    private var ids = RequestIDs()
    private var clock = LogClock()

    /// `next` nil: a listener of the operator's endpoints alone (`--admin-listen`), where
    /// anything else is 404.
    init(next: GraphQLHandler?, endpoints: OperatorEndpoints?, accessLog: AccessLog?, metrics: ServiceMetrics) {
        self.next = next
        self.endpoints = endpoints
        self.accessLog = accessLog
        self.metrics = metrics
    }

    func handle(_ request: HTTPRequest, respond: @escaping (HTTPResponse) -> Void) {
        let start = EventLoop.hrtime()
        let id = RequestIDs.valid(RequestIDs.header(in: request.headers)) ?? ids.make()
        // Probes and scrapes are neither logged nor counted: they would drown the log.
        if let endpoints, endpoints.answer(request, respond: { respond(Self.tagged($0, id)) }) { return }
        guard let next else {
            let response = HTTPResponse(status: 404, headers: [("Content-Type", "application/json")],
                                        body: Array(#"{"error":"not found"}"#.utf8))
            return respond(Self.tagged(response, id))
        }
        let outcome = RequestOutcome()
        next.handle(request, outcome: outcome) { [self] response in
            let response = Self.tagged(response, id)
            finished(request, response, outcome: outcome, id: id, start: start)
            respond(response)
        }
    }

    func refusal(status: Int, message: String) -> HTTPResponse {
        refusal(status: status, message: message, head: .head(method: "", path: ""))
    }

    /// A request the server refused before it was read whole (413, 431, 400): answered,
    /// counted and logged like any other.
    func refusal(status: Int, message: String, head: HTTPRequest) -> HTTPResponse {
        let start = EventLoop.hrtime()
        let id = RequestIDs.valid(RequestIDs.header(in: head.headers)) ?? ids.make()
        let base = next?.refusal(status: status, message: message)
            ?? HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: Array(#"{"error":"refused"}"#.utf8))
        let response = Self.tagged(base, id)
        finished(head, response, outcome: RequestOutcome(), id: id, start: start)
        return response
    }

    /// Adds the request's id, and `Billgraph-Served-By: primary` to an answer that did not
    /// read from a replica (RULES.md section 9: every response says where its data came from).
    private static func tagged(_ response: HTTPResponse, _ id: String) -> HTTPResponse {
        var response = response
        response.headers.append(("X-Request-Id", id))
        if !response.headers.contains(where: { $0.0 == GraphQLHandler.servedBy }) {
            response.headers.append((GraphQLHandler.servedBy, "primary"))
        }
        return response
    }

    private func finished(_ request: HTTPRequest, _ response: HTTPResponse, outcome: RequestOutcome, id: String, start: UInt64) {
        let elapsed = EventLoop.hrtime() &- start
        let codes = Self.errorCodes(response.body)
        let type = outcome.operationType
        let key = response.status &* 4 &+ (type == "query" ? 1 : type == "mutation" ? 2 : 0)
        let child: (requests: Counter, duration: Histogram)
        if let known = children[key] {
            child = known
        } else {
            let labels = [String(response.status), type]
            child = (metrics.httpRequests.labels(labels), metrics.httpDuration.labels(labels))
            children[key] = child
        }
        child.requests.increment()
        child.duration.observe(nanoseconds: elapsed)
        for code in codes { metrics.graphQLErrors.labels([code]).increment() }
        guard let accessLog else { return }
        accessLog.write(AccessLog.Entry(
            requestID: id, method: request.method, path: request.path, status: response.status,
            durationNanoseconds: elapsed, operationType: type, operationName: outcome.operationName,
            keyID: outcome.keyID, organisationID: outcome.organisationID,
            statements: response.headers.first { $0.0 == "X-Billgraph-Statements" }.flatMap { Int($0.1) } ?? 0,
            bytes: response.body.count, errorCodes: codes), time: clock.now())
    }

    /// The codes of a GraphQL response's top-level `errors`. The engine writes `errors`
    /// after `data` (an object or null), and an answer to a key with a limit ends with a
    /// short `"extensions":{"cost":...}` after both (RULES.md section 8), so an answer can hold
    /// errors only when it begins with them or when, that tail aside, it ends with `]`:
    /// answers without errors cost a look at their last bytes; the others are parsed
    /// (and what the parse finds at the top level is what counts).
    static func errorCodes(_ body: [UInt8]) -> [String] {
        guard mayHoldErrors(body), case .array(let errors)? = (try? JSONParser.parse(body))?["errors"] else { return [] }
        var codes: [String] = []
        for error in errors {
            if let code = error["extensions"]?["code"]?.stringValue, !codes.contains(code) { codes.append(code) }
        }
        return codes
    }
}

extension FrontHandler {
    static func mayHoldErrors(_ body: [UInt8]) -> Bool {
        guard body.count >= 2, body.last == UInt8(ascii: "}") else { return false }
        if body.starts(with: Self.errorsFirst) { return true }
        var end = body.count - 2  // the byte before the closing brace
        // A trailing `,"extensions":{"cost":{...}}` of a few dozen bytes: look before it.
        let marker = Self.extensionsMarker
        let window = max(0, body.count - 256)
        var i = body.count - marker.count
        while i >= window {
            if body[i] == marker[0] && body[i..<(i + marker.count)].elementsEqual(marker) {
                end = i - 1
                break
            }
            i -= 1
        }
        return end >= 0 && body[end] == UInt8(ascii: "]")
    }

    private static let errorsFirst = Array(#"{"errors":"#.utf8)
    /// The cost the engine writes last (`RateLimiter.costExtension`); errors' own `extensions` hold a `code`.
    private static let extensionsMarker = Array(#","extensions":{"cost":"#.utf8)
}

/// `X-Request-Id`: the client's when it is 1 to 128 printable ASCII characters, else made here.
struct RequestIDs {
    private var state: UInt64

    init() {
        var seed: UInt64 = 0
        var g = SystemRandomNumberGenerator()
        seed = g.next()
        state = seed
    }

    /// The request's `X-Request-Id`, its name compared without regard to case and without
    /// making a lowercase copy of every header's name (this runs for every request).
    static func header(in headers: [(String, String)]) -> String? {
        let wanted = "x-request-id".utf8
        for (name, value) in headers where name.utf8.count == wanted.count {
            if zip(name.utf8, wanted).allSatisfy({ $0 | 0x20 == $1 }) { return value }
        }
        return nil
    }

    static func valid(_ value: String?) -> String? {
        guard let value, !value.isEmpty, value.utf8.count <= 128,
              value.utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else { return nil }
        return value
    }

    /// 32 hexadecimal digits, from a generator seeded once per loop by the system's.
    mutating func make() -> String {
        func next() -> UInt64 {  // SplitMix64
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let (a, b) = (next(), next())
        return String(unsafeUninitializedCapacity: 32) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for i in 0..<16 {
                buffer[i] = digits.utf8Start[Int((a >> UInt64(60 - 4 * i)) & 0xF)]
                buffer[16 + i] = digits.utf8Start[Int((b >> UInt64(60 - 4 * i)) & 0xF)]
            }
            return 32
        }
    }
}

/// The access log: one JSON object a line on standard output (RULES.md section 7), written
/// by a `LineWriter`, so that a loop never waits for standard output; lines dropped when
/// its reader falls too far behind are counted in `billgraph_access_log_dropped_lines_total`.
///
/// Lifetime: one per process, made with the service (`BillgraphService.run` flushes it).
public final class AccessLog: Sendable {
    struct Entry {
        var requestID: String
        var method: String
        var path: String
        var status: Int
        var durationNanoseconds: UInt64
        var operationType: String
        var operationName: String?
        var keyID: String?
        var organisationID: String?
        var statements: Int
        var bytes: Int
        var errorCodes: [String]
    }

    private let output: LineWriter

    /// Writes to `fd` (standard output unless a test says).
    init(fd: Int32 = 1, dropped: Counter = ServiceMetrics.shared.accessLogDropped) throws {
        output = try LineWriter(fd: fd, what: "access log lines", dropped: dropped)
    }

    func write(_ entry: Entry, time: String) {
        output.write(Self.line(entry, time: time))
    }

    func flush() { output.flush() }

    static func line(_ e: Entry, time: String) -> [UInt8] {
        var w = JSONWriter(capacity: 384)
        func text(_ value: String?) { if let value { w.string(value) } else { w.null() } }
        w.raw("{\"time\":"); w.string(time)
        w.raw(",\"request_id\":"); w.string(e.requestID)
        w.raw(",\"method\":"); w.string(String(e.method.prefix(32)))
        w.raw(",\"path\":"); w.string(String(e.path.prefix(1024)))
        w.raw(",\"status\":"); w.int(e.status)
        let micros = (e.durationNanoseconds + 500) / 1000
        let fraction = String(micros % 1000)
        w.raw(",\"duration_ms\":"); w.raw("\(micros / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)")
        w.raw(",\"operation_type\":"); w.string(e.operationType)
        w.raw(",\"operation_name\":"); text(e.operationName.map { String($0.prefix(256)) })
        w.raw(",\"key_id\":"); text(e.keyID)
        w.raw(",\"organisation_id\":"); text(e.organisationID)
        w.raw(",\"statements\":"); w.int(e.statements)
        w.raw(",\"bytes\":"); w.int(e.bytes)
        w.raw(",\"error_codes\":[")
        for (i, code) in e.errorCodes.enumerated() {
            if i > 0 { w.raw(",") }
            w.string(code)
        }
        w.raw("]}")
        return w.bytes
    }


    static func format(seconds: Int, milliseconds: Int) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ n: Int32, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds), 3))Z"
    }
}

/// The access log's `time` for one loop: RFC 3339 in UTC with milliseconds
/// (`2026-11-30T14:05:09.123Z`), the part up to the second made once a second.
struct LogClock {
    private var second = -1
    private var prefix = ""

    mutating func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let seconds = Int(spec.tv_sec), milliseconds = Int(spec.tv_nsec / 1_000_000)
        if seconds != second {
            second = seconds
            prefix = String(AccessLog.format(seconds: seconds, milliseconds: 0).dropLast(4))
        }
        let digits = String(milliseconds)
        return prefix + String(repeating: "0", count: 3 - digits.count) + digits + "Z"
    }
}

/// `GET /healthz`, `GET /readyz` and `GET /metrics` (RULES.md section 7), no key needed.
final class OperatorEndpoints {
    private let readiness: Readiness
    private let metrics: ServiceMetrics

    init(readiness: Readiness, metrics: ServiceMetrics) {
        self.readiness = readiness
        self.metrics = metrics
    }

    static let paths: Set<String> = ["/healthz", "/readyz", "/metrics"]

    /// Answers the request and returns true when it is for one of the endpoints; returns
    /// false, answering nothing, when it is for the next handler.
    func answer(_ request: HTTPRequest, respond: @escaping (HTTPResponse) -> Void) -> Bool {
        guard Self.paths.contains(request.path) else { return false }
        guard request.method == "GET" else {
            respond(Self.json(405, #"{"error":"use GET"}"#, extra: [("Allow", "GET")]))
            return true
        }
        switch request.path {
        case "/healthz":
            respond(Self.json(200, #"{"status":"ok"}"#))
        case "/readyz":
            readiness.check { problem in
                if let problem {
                    var w = JSONWriter()
                    w.raw(#"{"status":"unready","reason":"#)
                    w.string(problem)
                    w.raw("}")
                    respond(HTTPResponse(status: 503, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                                         body: w.bytes))
                } else {
                    respond(Self.json(200, #"{"status":"ready"}"#))
                }
            }
        default:
            respond(HTTPResponse(status: 200, headers: [("Content-Type", Registry.contentType), ("Cache-Control", "no-store")],
                                 body: Array(metrics.registry.render().utf8)))
        }
        return true
    }

    private static func json(_ status: Int, _ body: String, extra: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")] + extra,
                     body: Array(body.utf8))
    }
}

/// Whether the primary database answers and has exactly the migrations this build
/// embeds: one small statement through the loop's pool, with a time limit, so the answer
/// follows the database within the probe's own period. `/readyz` needs no key, so it must
/// not be a way to load the database: checks asked while one is on its way share it, and
/// an answer is reused for `reuseMilliseconds`.
final class Readiness {
    private let loop: EventLoop
    private let pool: ConnectionPool
    private let expected: [Int]
    /// The read replicas: with the primary down, the reason says whether they answer queries.
    private let replicas: [ReplicaHealth]
    /// Who waits for the check on its way (none: no check is).
    private var waiting: [(String?) -> Void] = []
    private var last: (at: UInt64, reason: String?)?
    /// A database that takes longer than this to answer is not ready.
    static let timeoutMilliseconds: UInt64 = 1_500
    static let reuseMilliseconds: UInt64 = 250

    init(loop: EventLoop, pool: ConnectionPool, expected: [Int], replicas: [ReplicaHealth] = []) {
        self.loop = loop
        self.replicas = replicas
        self.pool = pool
        self.expected = expected.sorted()
    }

    static let statement = Statement(
        "SELECT coalesce(string_agg(version::text, ',' ORDER BY version), '') FROM schema_migrations")

    /// Calls back once with nil (ready) or the reason it is not.
    func check(_ done: @escaping (String?) -> Void) {
        if let last, loop.now &- last.at < Self.reuseMilliseconds { return done(last.reason) }
        waiting.append(done)
        guard waiting.count == 1 else { return }
        probe { [self] reason in
            last = (loop.now, reason)
            let everyone = waiting
            waiting = []
            for waiter in everyone { waiter(reason) }
        }
    }

    /// One check: the statement, or the time limit, whichever comes first.
    private func probe(_ done: @escaping (String?) -> Void) {
        var answered = false
        let timer = try? Timer(loop: loop)
        let finish: (String?) -> Void = { reason in
            guard !answered else { return }
            answered = true
            timer?.close()
            done(reason)
        }
        timer?.start(after: Self.timeoutMilliseconds) {
            finish("the database did not answer within \(Self.timeoutMilliseconds) ms")
        }
        pool.run(Self.statement) { [self, expected] result in
            switch result {
            case .success(let rows):
                finish(Self.judge(applied: rows.string(0, 0) ?? "", expected: expected))
            case .failure(let error) where error.isUnavailable:
                finish("the database is unavailable" + replicasAnswering())
            case .failure(let error) where error.sqlState == "42P01":
                finish("the database has no migrations: run billgraph migrate")
            case .failure(let error):
                finish("the migrations could not be read (SQLSTATE \(error.sqlState ?? "?"))")
            }
        }
    }

    /// RULES.md section 9: with the primary down, queries may still be answered by replicas.
    private func replicasAnswering() -> String {
        guard !replicas.isEmpty else { return "" }
        let usable = replicas.filter(\.isUsable).count
        return usable == 0
            ? "; no replica is usable either (\(replicas.map { "\($0.name): \($0.unusableReason)" }.joined(separator: ", ")))"
            : "; queries are answered by \(usable) replica(s), mutations are refused (SERVICE_UNAVAILABLE)"
    }

    /// nil when the versions applied (`1,2,3`) are exactly those expected.
    static func judge(applied text: String, expected: [Int]) -> String? {
        let applied = text.split(separator: ",").compactMap { Int($0) }
        if applied == expected { return nil }
        let missing = expected.filter { !applied.contains($0) }
        let unknown = applied.filter { !expected.contains($0) }
        if !missing.isEmpty {
            return "migrations not current: \(missing.count) not applied (\(missing.map(String.init).joined(separator: ", "))); run billgraph migrate"
        }
        return "migrations not current: the database has migrations this build does not know (\(unknown.map(String.init).joined(separator: ", ")))"
    }
}

/// How late a loop runs what is due: a timer every `periodMilliseconds`, whose firing is
/// compared with when it was due (`billgraph_event_loop_lag_seconds`).
final class LoopLagProbe {
    private let timer: Timer
    private var due: UInt64 = 0
    static let periodMilliseconds: UInt64 = 100

    init(loop: EventLoop, histogram: Histogram) throws {
        timer = try Timer(loop: loop)
        arm(histogram)
        timer.unref()
    }

    private func arm(_ histogram: Histogram) {
        due = EventLoop.hrtime() &+ Self.periodMilliseconds * 1_000_000
        timer.start(after: Self.periodMilliseconds) { [unowned self] in
            let now = EventLoop.hrtime()
            histogram.observe(nanoseconds: now > due ? now - due : 0)
            arm(histogram)
        }
    }

    func close() { timer.close() }
}
