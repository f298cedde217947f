import Metrics
import Server
import Store

/// The series of RULES.md section 7, one set per process, every loop counting into the
/// same atomics (so every figure covers all loops, and a scrape merges nothing).
/// README.md, "Operating it", says what each one means.
public final class ServiceMetrics: Sendable {
    /// The process's one set: the loops, the pools and the mutation transactions count here.
    public static let shared = ServiceMetrics()

    public let registry = Registry()
    let httpRequests: Family<Counter>
    let httpDuration: Family<Histogram>
    let graphQLErrors: Family<Counter>
    let dbStatements: Family<Counter>
    let dbDuration: Family<Histogram>
    let poolConnections: Family<Gauge>
    let poolWaiting: Family<Gauge>
    let mutations: Family<Counter>
    let transactionRetries: Counter
    let loopLag: Histogram
    let preparedAside: Counter
    /// Loads sent in a statement shared with other loads, and those statements (README, "Coalescing").
    let coalescedLoads: Counter
    let coalescedStatements: Counter
    /// Access log lines dropped because standard output was not read fast enough (`AccessLog`).
    let accessLogDropped: Counter
    /// The HTTP connections of every `ConnectionBudget` that serves here (one per service).
    private let budgets = Budgets()

    private final class Budgets: Sendable {
        let list = Mutex<[ConnectionBudget]>([])
        var open: Int { list.withLock { $0.reduce(0) { $0 + $1.openCount } } }
    }

    static let httpBounds = Histogram.bounds(fromSeconds: 0.001, toSeconds: 10)
    static let statementBounds = Histogram.bounds(fromSeconds: 0.0001, toSeconds: 5)
    static let lagBounds = Histogram.bounds(fromSeconds: 0.0001, toSeconds: 1)

    init() {
        httpRequests = registry.counter("billgraph_http_requests_total",
                                        help: "HTTP requests answered, by status code and GraphQL operation type (query, mutation or none).",
                                        labels: ["code", "operation_type"])
        httpDuration = registry.histogram("billgraph_http_request_duration_seconds",
                                          help: "Time from a request's arrival at the handler to its answer, in seconds.",
                                          labels: ["code", "operation_type"], bounds: Self.httpBounds)
        graphQLErrors = registry.counter("billgraph_graphql_errors_total",
                                         help: "GraphQL errors in answers, by extensions.code.", labels: ["code"])
        dbStatements = registry.counter("billgraph_db_statements_total",
                                        help: "SQL statements run, by database (primary or replica).", labels: ["target"])
        dbDuration = registry.histogram("billgraph_db_statement_duration_seconds",
                                        help: "Time from sending a statement on a connection to its result, in seconds.",
                                        labels: ["target"], bounds: Self.statementBounds)
        poolConnections = registry.gauge("billgraph_db_pool_connections",
                                         help: "Open database connections of all loops' pools, by database and state (idle or busy).",
                                         labels: ["target", "state"])
        poolWaiting = registry.gauge("billgraph_db_pool_waiting",
                                     help: "Statements and transactions queued for a database connection.", labels: ["target"])
        registry.register(CollectedFamily(name: "billgraph_open_connections", help: "Open HTTP connections, all loops together.",
                                          type: .gauge) { [budgets] in
            [([], Double(budgets.open))]
        })
        mutations = registry.counter("billgraph_mutations_total",
                                     help: "Mutation fields, by name and outcome (applied, replayed or refused).",
                                     labels: ["mutation", "outcome"])
        transactionRetries = registry.counter("billgraph_transaction_retries_total",
                                              help: "Mutation transactions run again after a serialization failure or a deadlock.").labels([])
        loopLag = registry.histogram("billgraph_event_loop_lag_seconds",
                                     help: "How late each loop's probe timer fired, in seconds: time the loop was busy with other work.",
                                     bounds: Self.lagBounds).labels([])
        preparedAside = registry.counter("billgraph_documents_prepared_aside_total",
                                         help: "Large documents prepared on the low-priority preparation thread instead of a loop.").labels([])
        coalescedLoads = registry.counter("billgraph_coalesced_loads_total",
                                          help: "Loads of query requests answered by a statement shared with other loads of the same shape.").labels([])
        coalescedStatements = registry.counter("billgraph_coalesced_statements_total",
                                               help: "Statements that answered several loads of query requests at once.").labels([])
        accessLogDropped = registry.counter("billgraph_access_log_dropped_lines_total",
                                            help: "Access log lines dropped because standard output was not read fast enough.").labels([])
        ProcessMetrics.register(in: registry)
        // The series exist from the start, at zero, for the primary (replicas: RULES.md section 9).
        _ = dbStatements.labels(["primary"])
        _ = dbDuration.labels(["primary"])
        _ = poolWaiting.labels(["primary"])
        for state in ["idle", "busy"] { _ = poolConnections.labels(["primary", state]) }
        for name in Self.mutationNames {
            for outcome in ["applied", "replayed", "refused"] { _ = mutations.labels([name, outcome]) }
        }
    }

    func watch(_ budget: ConnectionBudget) {
        budgets.list.withLock { $0.append(budget) }
    }

    /// What a pool of this database reports into.
    func pool(target: String) -> PoolInstruments {
        PoolInstruments(statements: dbStatements.labels([target]), statementDuration: dbDuration.labels([target]),
                        idle: poolConnections.labels([target, "idle"]), busy: poolConnections.labels([target, "busy"]),
                        waiting: poolWaiting.labels([target]))
    }

    /// The mutation fields of one operation, once its transaction has ended: each applied
    /// (or replayed, when it answered with an earlier call's result) if the transaction
    /// committed, each refused if not.
    func mutationsEnded(_ fields: [String], applied: Bool, replayed: [String]) {
        var replays = replayed
        for field in fields {
            var outcome = applied ? "applied" : "refused"
            if applied, let i = replays.firstIndex(of: field) {
                replays.remove(at: i)
                outcome = "replayed"
            }
            mutations.labels([field, outcome]).increment()
        }
    }

    static let mutationNames = ["refundPayment", "createCreditNote", "voidCreditNote", "updateRefund"]
}

import Synchronization
