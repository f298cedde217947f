import Billing
import Engine
import EventLoop
import Schema
import Server
import Store

#if canImport(Glibc)
import Glibc
#endif

/// The running service: one event loop with its HTTP listener and its PostgreSQL pool.
public final class BillgraphService {
    public struct Configuration: Sendable {
        public var databaseURL: String
        public var listen: ListenAddress
        public var poolSize: Int
        /// List items one response may hold, all lists together (RULES.md section 5).
        public var maxResultItems: Int
        public init(databaseURL: String, listen: ListenAddress, poolSize: Int, maxResultItems: Int = 500_000) {
            self.databaseURL = databaseURL
            self.listen = listen
            self.poolSize = poolSize
            self.maxResultItems = maxResultItems
        }
    }

    private let loop: EventLoop
    private let pool: ConnectionPool
    private let server: HTTPServer
    private var signals: [SignalWatcher] = []
    private let housekeeping: Timer

    public init(_ configuration: Configuration, log: @escaping (String) -> Void) throws {
        loop = try EventLoop()
        // No statement may hold a request (and a connection) for ever.
        let conninfo = ConnectionTarget.setting("statement_timeout", "30s",
                                                in: ConnectionTarget.resolvingHost(configuration.databaseURL))
        pool = ConnectionPool(loop: loop, conninfo: conninfo, size: configuration.poolSize)
        let handler = GraphQLHandler(preparation: Preparation(schema: Schema.contract), pool: pool,
                                     authenticator: Authenticator(loop: loop, pool: pool),
                                     mutations: MutationService(), maxResultItems: configuration.maxResultItems, log: log)
        server = HTTPServer(loop: loop, handler: handler)
        try server.listen(on: configuration.listen)
        // Expired idempotency keys go a minute after start, then every ten minutes.
        housekeeping = try Timer(loop: loop)
        housekeeping.start(after: 60_000, repeat: 600_000) { [pool] in
            Maintenance.cleanIdempotencyKeys(on: pool) { deleted in
                if deleted > 0 { log("deleted \(deleted) expired idempotency key(s)") }
            }
        }
        housekeeping.unref()
        for signal in [SIGINT, SIGTERM] {
            signals.append(try SignalWatcher(loop: loop, signal: signal) { [weak self] in self?.shutdown() })
        }
    }

    /// The port the server listens on (the one chosen by the system for port 0).
    public var port: Int { server.port }

    /// Serves until SIGINT or SIGTERM.
    public func run() {
        loop.run()
    }

    private func shutdown() {
        server.close()
        housekeeping.close()
        pool.close()
        for s in signals { s.close() }
        signals = []
        loop.stop()
    }
}
