import Billing
import Dispatch
import Engine
import EventLoop
import Schema
import Server
import Store

#if canImport(Glibc)
import Glibc
#endif

/// The running service: one event loop per `loops`, each on its own thread with its own
/// listening socket on the shared port (`SO_REUSEPORT`), its own HTTP connections and its
/// own PostgreSQL pool. The loops share only `SharedByLoops`, never locked per statement.
public final class BillgraphService {
    public struct Configuration: Sendable {
        public var databaseURL: String
        public var listen: ListenAddress
        /// PostgreSQL connections per loop.
        public var poolSize: Int
        /// Of them, how many may run the statements of queries at once (the rest wait in
        /// order); the transactions of mutations may use them all (`PoolStateMachine`).
        /// Nil: `defaultQueryStatements(loops:)`.
        public var queryStatements: Int?
        /// The machine's cores shared among the loops, at least one a loop: the process
        /// then runs about as many statements of queries at once as there are cores. On the
        /// 2-core reference machine, where PostgreSQL shares the cores with the server, 4
        /// a loop (8 in all) left the dashboard's p99 up to 4.5 times its p50 at 32
        /// connections, 2 a loop (4 in all) 1.7–3.3 times, 1 a loop (2 in all) 1.5–1.8
        /// times, with more requests answered (README, "On the loop"; RESULTS.md).
        public static func defaultQueryStatements(loops: Int) -> Int {
            max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) / max(1, loops))
        }

        /// What `queryStatements` comes to.
        public var queryStatementsPerLoop: Int { queryStatements ?? Self.defaultQueryStatements(loops: loops) }
        /// List items one response may hold, all lists together (RULES.md section 5).
        public var maxResultItems: Int
        /// Rows a query may read before it reads one statement at a time, taking turns
        /// with other such queries of the process (`StatementLanes`).
        public var heavyReadRows: Int
        /// Event loops (threads) serving requests.
        public var loops: Int
        /// Open HTTP connections of the whole process, all loops together (RULES.md section 5).
        public var maxConnections: Int
        /// A request must arrive whole within this long of its first byte (RULES.md section 5).
        public var requestTimeoutMilliseconds: UInt64
        /// A keep-alive connection with nothing to do is closed after this long.
        public var idleTimeoutMilliseconds: UInt64
        /// PostgreSQL's `statement_timeout` on every connection: no statement holds a request for ever.
        public var statementTimeoutMilliseconds: UInt64
        /// Where `/healthz`, `/readyz` and `/metrics` are served instead of the main
        /// listener (where they then answer 404); nil: on the main listener.
        public var adminListen: ListenAddress?
        /// One JSON line per request on standard output (RULES.md section 7).
        public var accessLog = true
        /// Only documents registered with `billgraph documents add` run (RULES.md section 8).
        public var trustedDocumentsOnly = false
        /// Where GraphiQL's files are (`serve --graphiql`); nil: no IDE (RULES.md section 8).
        public var graphiQLDirectory: String?
        /// Hot standbys of the primary that queries may read from (RULES.md section 9).
        public var replicaURLs: [String] = []
        /// A replica further behind the primary than this is skipped.
        public var maxReplicaLagMilliseconds: UInt64 = 5_000
        /// false: no named prepared statements, for PgBouncer's transaction pooling (RULES.md section 9).
        public var preparedStatements = true
        /// Listen with `SO_REUSEPORT` even with one loop, so that several processes share the
        /// port and the kernel spreads connections over them.
        public var reusePort = false
        /// Identical loads of concurrent queries on a loop share one statement (README, "Coalescing").
        public var coalesce = true
        /// How long the first load of a loop's turn may wait for others to share its
        /// statement; 0: none, every group goes in the turn it began (tests set it).
        public var coalesceWaitMilliseconds: UInt64 = 0
        public init(databaseURL: String, listen: ListenAddress, poolSize: Int, maxResultItems: Int = 500_000,
                    heavyReadRows: Int = StatementLanes.defaultHeavyRows, loops: Int = 1,
                    maxConnections: Int = ConnectionBudget.defaultLimit, requestTimeoutMilliseconds: UInt64 = 30_000,
                    idleTimeoutMilliseconds: UInt64 = 60_000, statementTimeoutMilliseconds: UInt64 = 30_000) {
            self.databaseURL = databaseURL
            self.listen = listen
            self.poolSize = poolSize
            self.maxResultItems = maxResultItems
            self.heavyReadRows = heavyReadRows
            self.loops = max(1, loops)
            self.maxConnections = maxConnections
            self.requestTimeoutMilliseconds = requestTimeoutMilliseconds
            self.idleTimeoutMilliseconds = idleTimeoutMilliseconds
            self.statementTimeoutMilliseconds = statementTimeoutMilliseconds
        }

        var httpLimits: HTTPServer.Limits {
            var limits = HTTPServer.Limits()
            limits.requestReadTimeoutMilliseconds = requestTimeoutMilliseconds
            limits.idleTimeoutMilliseconds = idleTimeoutMilliseconds
            return limits
        }
    }

    private let main: LoopWorker
    private let accessLog: AccessLog?
    private var signals: [SignalWatcher] = []
    private var threads: [pthread_t] = []
    private var others: [AsyncWakeup.Trigger] = []
    private var admin: HTTPServer?

    public init(_ configuration: Configuration, log: @escaping @Sendable (String) -> Void) throws {
        // Every field of the schema has a resolver and every resolver a field, or nothing
        // listens: a mistake is found here rather than by a request (README, "The registry").
        let mismatches = Registry.contract.mismatches(with: Schema.contract)
        guard mismatches.isEmpty else {
            throw ServiceError(message: "the registry does not match the schema:\n" + mismatches.joined(separator: "\n"))
        }
        // No statement may hold a request (and a connection) for ever; the host is looked
        // up here, once, because libpq's lookup would block a loop.
        let conninfo = Self.connectionString(configuration.databaseURL, configuration)
        // A client that resets its connection while an answer is being written must cost
        // that write an EPIPE, not the process its life: SIGPIPE's default is to exit.
        signal(SIGPIPE, SIG_IGN)
        // One reconnection schedule for every loop's pool: while the database is down the
        // process as a whole makes about one connection attempt a second.
        let shared = SharedByLoops(
            connections: ConnectionBudget(limit: configuration.maxConnections),
            reconnect: ReconnectGate(connectTimeoutMilliseconds: ConnectionTarget.connectTimeoutMilliseconds(conninfo), log: log),
            heavyReads: HeavyReadGate(),
            limiter: RateLimiter(),
            graphiQL: GraphiQL(assets: try configuration.graphiQLDirectory.map(GraphiQLAssets.init(directory:))),
            preparation: try PreparationThread(),
            accessLog: configuration.accessLog ? try AccessLog() : nil,
            replicas: configuration.replicaURLs.map { url in
                let conninfo = Self.connectionString(url, configuration)
                let name = ConnectionTarget.displayName(url)
                return ReplicaWatch.Watched(health: ReplicaHealth(name: name), conninfo: conninfo, gate: ReconnectGate(
                    connectTimeoutMilliseconds: ConnectionTarget.connectTimeoutMilliseconds(conninfo),
                    log: { log("replica \(name): \($0)") }))
            })
        ServiceMetrics.shared.watch(shared.connections)
        accessLog = shared.accessLog
        main = try LoopWorker(configuration, conninfo: conninfo, shared: shared, listen: configuration.listen,
                              sharedPort: configuration.loops > 1 || configuration.reusePort, housekeeping: true, log: log)
        if !shared.replicas.isEmpty {
            // Replay lag is watched once a second on the main loop, off every request's path.
            main.replicaWatch = try ReplicaWatch(
                loop: main.loop, primary: conninfo, primaryGate: shared.reconnect, replicas: shared.replicas,
                maxLagMilliseconds: configuration.maxReplicaLagMilliseconds,
                preparedStatements: configuration.preparedStatements, log: log)
        }
        if let adminAddress = configuration.adminListen {
            // The operator's endpoints on a listener of their own, on the main loop, with a
            // small connection budget of their own: a full main listener cannot starve them.
            let admin = HTTPServer(loop: main.loop, handler: FrontHandler(next: nil, endpoints: main.endpoints, accessLog: nil,
                                                                         metrics: .shared),
                                   limits: configuration.httpLimits, budget: ConnectionBudget(limit: 64))
            try admin.listen(on: adminAddress)
            self.admin = admin
            main.admin = admin
        }
        let address = ListenAddress(host: configuration.listen.host, port: main.port)
        for _ in 1..<configuration.loops {
            try startLoop(configuration, conninfo: conninfo, shared: shared, address: address, log: log)
        }
        for signal in [SIGINT, SIGTERM] {
            signals.append(try SignalWatcher(loop: main.loop, signal: signal) { [weak self] in self?.shutdown() })
        }
    }

    /// Starts one more loop on its own thread and waits until it listens.
    private func startLoop(_ configuration: Configuration, conninfo: String, shared: SharedByLoops, address: ListenAddress,
                           log: @escaping @Sendable (String) -> Void) throws {
        let started = DispatchSemaphore(value: 0)
        let outcome = StartOutcome()
        let thread = try Thread.start {
            do {
                let worker = try LoopWorker(configuration, conninfo: conninfo, shared: shared, listen: address,
                                            sharedPort: true, housekeeping: false, log: log)
                outcome.trigger = worker.stopTrigger
                started.signal()
                worker.run()
            } catch {
                outcome.error = "\(error)"
                started.signal()
            }
        }
        started.wait()
        if let error = outcome.error { throw ServiceError(message: "a loop could not start: \(error)") }
        threads.append(thread)
        if let trigger = outcome.trigger { others.append(trigger) }
    }

    /// A database URL as the loops use it: the host looked up here, once, because libpq's
    /// lookup would block a loop, and no statement may hold a request (and a connection) for ever.
    private static func connectionString(_ url: String, _ configuration: Configuration) -> String {
        ConnectionTarget.setting("statement_timeout", "\(configuration.statementTimeoutMilliseconds)ms",
                                 in: ConnectionTarget.resolvingHost(url))
    }

    /// The port the service listens on (the one chosen by the system for port 0).
    public var port: Int { main.port }

    /// The port of `--admin-listen`, when there is one.
    public var adminPort: Int? { admin?.port }

    /// Serves until SIGINT or SIGTERM, then waits for every loop to finish.
    public func run() {
        main.run()
        for thread in threads { pthread_join(thread, nil) }
        accessLog?.flush()  // every request answered has its line (RULES.md section 7)
    }

    private func shutdown() {
        for s in signals { s.close() }
        signals = []
        for other in others { other.fire() }
        main.stop()
    }
}

struct ServiceError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// What the loops of one process share; each part is safe to use from any thread.
struct SharedByLoops: Sendable {
    /// The count of open HTTP connections, all loops together (an atomic).
    let connections: ConnectionBudget
    /// The schedule of database reconnections (locked once per connection attempt).
    let reconnect: ReconnectGate
    /// The slot for a request reading a large result (locked when a request takes or gives it back).
    let heavyReads: HeavyReadGate
    /// One budget of points per API key for the whole process (RULES.md section 8).
    let limiter: RateLimiter
    /// GraphiQL's files, read once.
    let graphiQL: GraphiQL
    /// The thread that prepares large documents (locked when one is handed to it or taken).
    let preparation: PreparationThread
    /// The access log, whose lines its own thread writes (RULES.md section 7).
    let accessLog: AccessLog?
    /// The read replicas: what is known of each (written by the main loop's `ReplicaWatch`,
    /// read with atomic loads), and the reconnection schedule of each.
    let replicas: [ReplicaWatch.Watched]
}

/// What a starting loop reports back to the thread that waits for it (guarded by the semaphore).
private final class StartOutcome: @unchecked Sendable {
    var trigger: AsyncWakeup.Trigger?
    var error: String?
}

/// One loop's share of the service: its listener, its pool, its handler.
/// Created, used and released on one thread.
final class LoopWorker {
    let loop: EventLoop
    private let targets: DatabaseTargets
    private let lanes: StatementLanes
    private let desk: PreparationDesk
    private let server: HTTPServer
    private let housekeeping: Timer?
    private var wakeup: AsyncWakeup!
    private let lagProbe: LoopLagProbe
    /// `/healthz`, `/readyz` and `/metrics` answered with this loop's pool.
    let endpoints: OperatorEndpoints
    /// The `--admin-listen` server, on the main loop only.
    var admin: HTTPServer?
    /// The watch of the replicas' replay lag, on the main loop only.
    var replicaWatch: ReplicaWatch?

    init(_ configuration: BillgraphService.Configuration, conninfo: String, shared: SharedByLoops, listen: ListenAddress,
         sharedPort: Bool, housekeeping: Bool, log: @escaping (String) -> Void) throws {
        let loop = try EventLoop()
        self.loop = loop
        let metrics = ServiceMetrics.shared
        // A pool per database per loop (RULES.md section 9).
        let pool = ConnectionPool(loop: loop, conninfo: conninfo, size: configuration.poolSize, statementLimit: configuration.queryStatementsPerLoop, gate: shared.reconnect,
                                  instruments: metrics.pool(target: "primary"), preparedStatements: configuration.preparedStatements)
        let coalescer = configuration.coalesce
            ? try ReadCoalescer(loop: loop, waitMilliseconds: configuration.coalesceWaitMilliseconds, metrics: metrics) : nil
        targets = DatabaseTargets(loop: loop, primary: pool, replicas: shared.replicas.map {
            DatabaseTargets.Replica(health: $0.health, pool: ConnectionPool(
                loop: loop, conninfo: $0.conninfo, size: configuration.poolSize, statementLimit: configuration.queryStatementsPerLoop, gate: $0.gate,
                instruments: metrics.pool(target: "replica"), preparedStatements: configuration.preparedStatements))
        }, coalescer: coalescer)
        lanes = try StatementLanes(loop: loop, gate: shared.heavyReads, heavyRows: configuration.heavyReadRows)
        desk = try PreparationDesk(loop: loop, thread: shared.preparation)
        let handler = GraphQLHandler(preparation: Preparation(schema: Schema.contract), targets: targets, lanes: lanes,
                                     authenticator: Authenticator(loop: loop, pool: targets.keysAndDocuments),
                                     mutations: MutationService(), maxResultItems: configuration.maxResultItems, limiter: shared.limiter,
                                     persisted: PersistedDocuments(loop: loop, pool: targets.keysAndDocuments),
                                     trustedDocumentsOnly: configuration.trustedDocumentsOnly, graphiQL: shared.graphiQL, desk: desk, log: log)
        endpoints = OperatorEndpoints(readiness: Readiness(loop: loop, pool: pool, expected: billingMigrations.map(\.version),
                                                                 replicas: shared.replicas.map(\.health)),
                                      metrics: metrics)
        let front = FrontHandler(next: handler, endpoints: configuration.adminListen == nil ? endpoints : nil,
                                 accessLog: shared.accessLog, metrics: metrics)
        server = HTTPServer(loop: loop, handler: front, limits: configuration.httpLimits, budget: shared.connections)
        lagProbe = try LoopLagProbe(loop: loop, histogram: metrics.loopLag)
        try server.listen(on: listen, sharedPort: sharedPort)
        if housekeeping {
            // Expired idempotency keys go a minute after start, then every ten minutes.
            let timer = try Timer(loop: loop)
            timer.start(after: 60_000, repeat: 600_000) { [pool] in
                Maintenance.cleanIdempotencyKeys(on: pool) { deleted in
                    if deleted > 0 { log("deleted \(deleted) expired idempotency key(s)") }
                }
            }
            timer.unref()
            self.housekeeping = timer
        } else {
            self.housekeeping = nil
        }
        wakeup = try AsyncWakeup(loop: loop) { [weak self] in self?.stop() }
    }

    var port: Int { server.port }
    var stopTrigger: AsyncWakeup.Trigger { wakeup.trigger }

    func run() { loop.run() }

    /// Stops accepting and drains: requests already received are answered (within
    /// `drainSeconds`), then connections, the pool and the handles close and the loop ends.
    func stop() {
        guard !stopping else { return }
        stopping = true
        housekeeping?.close()
        replicaWatch?.close()
        lagProbe.close()
        wakeup.close()
        admin?.close()
        lanes.close()
        let deadline = try? Timer(loop: loop)
        let finish = { [self] in
            deadline?.close()
            server.close()
            targets.close()
            desk.close()  // after the drain: requests being prepared are answered first
            loop.stop()
        }
        deadline?.start(after: Self.drainSeconds * 1000) { finish() }
        server.drain { finish() }
    }

    /// How long a stopping server waits for requests in flight.
    static let drainSeconds: UInt64 = 10
    private var stopping = false
}

/// A POSIX thread running a closure (the toolchain's Foundation is not needed for this).
enum Thread {
    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    static func start(_ body: @escaping @Sendable () -> Void) throws -> pthread_t {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue().run()
            return nil
        }, box)
        guard result == 0 else {
            Unmanaged<Body>.fromOpaque(box).release()
            throw ServiceError(message: "cannot start a thread (error \(result))")
        }
        return thread
    }
}
