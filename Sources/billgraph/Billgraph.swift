import ArgumentParser
import Billing
import CMalloc
import Digest
import JSON
import Server
import Service
import Store

#if canImport(Glibc)
import Glibc
#endif

@main
struct Billgraph: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billgraph",
        abstract: "A GraphQL query service over a read-optimised PostgreSQL store of billing data.",
        discussion: """
            Every command that talks to PostgreSQL takes --database-url, or reads
            BILLGRAPH_DATABASE_URL: a libpq connection string such as
            "host=127.0.0.1 port=5432 dbname=billgraph" or "postgresql://user@host/db".
            The server listens on --listen or BILLGRAPH_LISTEN (default 127.0.0.1:8080).
            """,
        subcommands: [Serve.self, Migrate.self, Import.self, Seed.self, Keys.self, Documents.self, Housekeeping.self])
}

/// Reports a failure on standard error and ends the command with status 1.
func failure(_ message: String) -> ExitCode {
    log(message)
    return ExitCode(1)
}

/// `--database-url`, falling back to BILLGRAPH_DATABASE_URL.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"),
            help: "libpq connection string or URL (default: $BILLGRAPH_DATABASE_URL).")
    var databaseURL: String?

    func resolved() throws -> String {
        if let databaseURL { return databaseURL }
        if let value = getenv("BILLGRAPH_DATABASE_URL") { return String(cString: value) }
        throw ValidationError("No database given: pass --database-url or set BILLGRAPH_DATABASE_URL.")
    }

    func connect() throws -> BlockingConnection {
        do { return try BlockingConnection(try resolved()) } catch let error as DatabaseError {
            throw failure("cannot connect to the database: \(error)")
        }
    }

    /// A connection to a database with every migration applied; otherwise a message that
    /// says to run `billgraph migrate`, rather than the first missing table's SQL error.
    func connectMigrated() throws -> BlockingConnection {
        let connection = try connect()
        let pending = try Migrator(connection: connection).pending(billingMigrations)
        guard pending.isEmpty else {
            throw failure("the database is missing \(pending.count) of billgraph's \(billingMigrations.count) migrations "
                          + "(\(pending.map(\.name).joined(separator: ", "))): run billgraph migrate first")
        }
        return connection
    }
}

/// The standard streams as FILE handles of our own (libc's globals are not concurrency-safe in Swift 6).
nonisolated(unsafe) let standardInput = fdopen(0, "r")!
nonisolated(unsafe) let standardOutput = fdopen(1, "w")!
nonisolated(unsafe) let standardError = fdopen(2, "w")!

func log(_ message: String) {
    fputs("billgraph: \(message)\n", standardError)
    fflush(standardError)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve GraphQL over HTTP at /graphql.",
        discussion: """
            Stops cleanly on SIGINT or SIGTERM. Starts itself again once, the same process, with \
            glibc.malloc.tcache_count=4096 added to GLIBC_TUNABLES (a larger cache of freed memory for \
            the objects of each request); a tcache_count set there already is kept.
            """)

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Address to listen on, host:port (default: $BILLGRAPH_LISTEN or 127.0.0.1:8080).")
    var listen: String?

    @Option(help: "PostgreSQL connections each loop may open.")
    var poolSize: Int = 16

    @Option(help: ArgumentHelp(
        "Of a loop's connections, how many may run the statements of queries at once; the rest wait in order. Default: this machine's cores shared among the loops, at least 1.",
        discussion: "Transactions of mutations may use every connection. PostgreSQL answers best with about as many statements running as it has cores: the default suits a database on this machine; raise it for a larger database server."))
    var queryStatements: Int?

    @Option(help: "List items one response may hold, all lists together (the contract's limit is 500000).")
    var maxResultItems: Int = 500_000

    @Option(help: """
        Rows a query may read before it goes on one statement at a time, and only while no other such query \
        of the process reads: large results take turns, so ordinary requests keep their speed beside them.
        """)
    var heavyReadRows: Int = StatementLanes.defaultHeavyRows

    @Option(help: "Event loops (threads) serving requests; each has its own connections and pool. Default: one per core.")
    var loops: Int = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    @Option(help: "Open HTTP connections, all loops together; beyond them a new connection is closed at once.")
    var maxConnections: Int = ConnectionBudget.defaultLimit

    @Option(name: .customLong("request-timeout-ms"),
            help: "Milliseconds within which a request must arrive whole, counted from its first byte (blank lines included).")
    var requestTimeoutMilliseconds: UInt64 = 30_000

    @Option(name: .customLong("idle-timeout-ms"),
            help: "Milliseconds a keep-alive connection may idle before it is closed.")
    var idleTimeoutMilliseconds: UInt64 = 60_000

    @Option(name: .customLong("statement-timeout-ms"),
            help: "PostgreSQL's statement_timeout on every connection, in milliseconds: no statement holds a request for ever.")
    var statementTimeoutMilliseconds: UInt64 = 30_000

    @Option(name: .customLong("admin-listen"),
            help: "Serve /healthz, /readyz and /metrics on this host:port instead of the main listener (where they then answer 404).")
    var adminListen: String?

    @Option(name: .customLong("access-log"),
            help: "on: one JSON line per request on standard output; off: none.")
    var accessLog: String = "on"

    @Flag(help: "Run only the documents registered with `billgraph documents add`; refuse any other unparsed (DOCUMENT_NOT_TRUSTED).")
    var trustedDocumentsOnly = false

    @Option(name: .customLong("graphiql"),
            help: "Folder of GraphiQL's built files, served to browsers at /graphql (default: $BILLGRAPH_GRAPHIQL_DIR; scripts/run fetches them).")
    var graphiQLDirectory: String?

    @Option(name: .customLong("replica-url"), help: """
        A hot standby of the primary that queries may read from; repeat for several \
        (default: $BILLGRAPH_REPLICA_URLS, separated by spaces). Mutations always use the primary.
        """)
    var replicaURLs: [String] = []

    @Option(name: .customLong("max-replica-lag"),
            help: "Seconds a replica may be behind the primary and still serve queries; one further behind is skipped.")
    var maxReplicaLag: Double = 5

    @Flag(help: "Share the --listen port with other billgraph processes (SO_REUSEPORT): the kernel spreads connections over them.")
    var reusePort = false

    @Option(help: "on: identical loads of concurrent queries on a loop share one statement; off: each request sends its own.")
    var coalesce: String = "on"

    @Option(name: .customLong("coalesce-wait-ms"),
            help: "Milliseconds the first load of a loop's turn may wait for others to share its statement (default 0: none).")
    var coalesceWaitMilliseconds: UInt64 = 0

    @Option(name: .customLong("prepared-statements"),
            help: "on: each connection prepares the statements it runs often; off: none, for PgBouncer's transaction pooling.")
    var preparedStatements: String = "on"

    func validate() throws {
        guard preparedStatements == "on" || preparedStatements == "off" else {
            throw ValidationError("--prepared-statements must be on or off")
        }
        guard maxReplicaLag > 0, maxReplicaLag <= 86_400 else { throw ValidationError("--max-replica-lag must be over 0 seconds, at most a day") }
        guard accessLog == "on" || accessLog == "off" else { throw ValidationError("--access-log must be on or off") }
        guard coalesce == "on" || coalesce == "off" else { throw ValidationError("--coalesce must be on or off") }
        guard queryStatements ?? 1 >= 1 else { throw ValidationError("--query-statements must be at least 1") }
        guard coalesceWaitMilliseconds <= 1_000 else { throw ValidationError("--coalesce-wait-ms must be at most 1000") }
        if let adminListen, ListenAddress(adminListen) == nil {
            throw ValidationError("--admin-listen must be host:port, got \(adminListen)")
        }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard heavyReadRows >= 0 else { throw ValidationError("--heavy-read-rows must not be negative") }
        guard requestTimeoutMilliseconds >= 1 else { throw ValidationError("--request-timeout-ms must be at least 1") }
        guard idleTimeoutMilliseconds >= 1 else { throw ValidationError("--idle-timeout-ms must be at least 1") }
        guard statementTimeoutMilliseconds >= 1 else { throw ValidationError("--statement-timeout-ms must be at least 1") }
    }

    /// BILLGRAPH_REPLICA_URLS: URLs separated by spaces (RULES.md section 9). A `key=value`
    /// string would be cut into pieces that each look like a connection string, so a
    /// piece that is not a URL is refused rather than tried.
    private func replicaURLsFromEnvironment() throws -> [String] {
        guard let value = getenv("BILLGRAPH_REPLICA_URLS") else { return [] }
        let urls = String(cString: value).split(separator: " ").map(String.init)
        if let bad = urls.first(where: { !$0.hasPrefix("postgresql://") && !$0.hasPrefix("postgres://") }) {
            throw ValidationError("BILLGRAPH_REPLICA_URLS holds postgresql:// URLs separated by spaces; \(bad) is not one (use --replica-url for key=value strings)")
        }
        return urls
    }

    func run() throws {
        startAgainWithLargerMallocCache()
        let text = listen ?? getenv("BILLGRAPH_LISTEN").map { String(cString: $0) } ?? "127.0.0.1:8080"
        guard let address = ListenAddress(text) else { throw ValidationError("--listen must be host:port, got \(text)") }
        var configuration = BillgraphService.Configuration(
            databaseURL: try database.resolved(), listen: address, poolSize: poolSize,
            maxResultItems: maxResultItems, heavyReadRows: heavyReadRows, loops: loops, maxConnections: maxConnections,
            requestTimeoutMilliseconds: requestTimeoutMilliseconds, idleTimeoutMilliseconds: idleTimeoutMilliseconds,
            statementTimeoutMilliseconds: statementTimeoutMilliseconds)
        configuration.trustedDocumentsOnly = trustedDocumentsOnly
        configuration.graphiQLDirectory = graphiQLDirectory ?? getenv("BILLGRAPH_GRAPHIQL_DIR").map { String(cString: $0) }
        configuration.adminListen = adminListen.flatMap(ListenAddress.init)
        configuration.accessLog = accessLog == "on"
        configuration.replicaURLs = replicaURLs.isEmpty ? try replicaURLsFromEnvironment() : replicaURLs
        configuration.maxReplicaLagMilliseconds = UInt64(maxReplicaLag * 1000)
        configuration.preparedStatements = preparedStatements == "on"
        configuration.reusePort = reusePort
        configuration.coalesce = coalesce == "on"
        configuration.queryStatements = queryStatements
        configuration.coalesceWaitMilliseconds = coalesceWaitMilliseconds
        keepFreedMemoryForReuse()
        // What the running service says goes through a writer thread of its own, like the
        // access log: a reader of standard error that stops reading must not stop the loops
        // (a statement trace writes a line a statement).
        let messages = try LineWriter(fd: 2, what: "messages")
        let service = try BillgraphService(configuration, log: { messages.write(Array("billgraph: \($0)".utf8)) })
        let host = address.host.contains(":") ? "[\(address.host)]" : address.host
        let statements = configuration.queryStatementsPerLoop
        log("listening on http://\(host):\(service.port)/graphql (\(max(1, loops)) loop\(loops > 1 ? "s" : ""), "
            + "\(statements) statement\(statements > 1 ? "s" : "") of queries at once a loop"
            + (configuration.replicaURLs.isEmpty ? ")" : ", \(configuration.replicaURLs.count) read replica(s))"))
        if configuration.graphiQLDirectory != nil { log("GraphiQL for browsers at http://\(host):\(service.port)/graphql") }
        if let adminPort = service.adminPort, let admin = configuration.adminListen {
            let adminHost = admin.host.contains(":") ? "[\(admin.host)]" : admin.host
            log("operator endpoints on http://\(adminHost):\(adminPort)/ (healthz, readyz, metrics)")
        }
        service.run()
        messages.flush()
        log("stopped")
    }
}

/// By default glibc hands freed memory back to the kernel as soon as 128 KB lie free at
/// the top of a heap, and serves large allocations with their own mmap. A server that
/// builds and frees a response's rows on every request then pays for memory it needs again
/// at once: about 7 page faults and 2 brk calls per dashboard request, a third of the
/// server's time in the kernel (README, "Measured"). So up to 32 MiB may stay free at the
/// top of a heap, 4 MiB is kept in reserve when one grows, and allocations under 4 MiB
/// come from the heaps. Memory a request holds is unchanged; only freed memory stays.
private func keepFreedMemoryForReuse() {
    mallopt(M_TRIM_THRESHOLD, 32 << 20)
    mallopt(M_TOP_PAD, 4 << 20)
    mallopt(M_MMAP_THRESHOLD, 4 << 20)
}

/// glibc keeps up to 7 freed blocks of each size in a per-thread cache, and past those
/// goes to its shared free lists, which cost several times as much and which a large
/// allocation then consolidates. A request builds and frees hundreds of row objects of a
/// few sizes, so most of them miss that cache: with room for 4,096 a size, a dashboard
/// request costs 4.7% fewer instructions and a 1,000-row page 3.8% (README, "Measured").
/// glibc reads that setting only from the environment at start (`mallopt` has none), so
/// `serve` starts itself again, once, the same process with the same arguments and
/// descriptors, with `glibc.malloc.tcache_count` added to `GLIBC_TUNABLES`; a value set
/// there already is kept. The cache holds only blocks freed earlier, so it adds no memory
/// beyond what requests already used. If `execv` fails, the server goes on as it is.
private func startAgainWithLargerMallocCache() {
    let name = "GLIBC_TUNABLES"
    let tunables = getenv(name).map { String(cString: $0) } ?? ""
    if tunables.contains("glibc.malloc.tcache_count=") { return }
    setenv(name, (tunables.isEmpty ? "" : tunables + ":") + "glibc.malloc.tcache_count=4096", 1)
    execv("/proc/self/exe", CommandLine.unsafeArgv)
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the schema migrations the database has not had yet.",
        discussion: "Each migration runs in its own transaction and is recorded in schema_migrations.")

    @OptionGroup var database: DatabaseOptions

    func run() throws {
        let connection = try database.connect()
        // Names, descriptions and every other text are UTF-8 in the API and the dataset. A
        // database in another encoding takes those bytes as its own characters (or refuses
        // them), so SQL's text functions, comparisons and sorts would misread them.
        let encoding = try connection.query(
            "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()").string(0, 0)
        guard encoding == "UTF8" else {
            throw failure("the database's encoding is \(encoding ?? "unknown"); billgraph keeps text in UTF-8 and needs a "
                          + "database made with ENCODING 'UTF8' (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)")
        }
        let applied = try Migrator(connection: connection).migrate(billingMigrations) { log("applied \($0.name)") }
        log(applied.isEmpty ? "the database is up to date" : "applied \(applied.count) migration(s)")
    }
}

struct Housekeeping: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete expired idempotency keys now.",
        discussion: "Keys are kept \(Maintenance.idempotencyRetentionHours) hours. A running server also does this every ten minutes.")

    @OptionGroup var database: DatabaseOptions

    func run() throws {
        let connection = try database.connectMigrated()
        var total = 0
        while true {
            let deleted = try connection.query(Maintenance.expiredIdempotencyKeys()).affectedRows
            total += deleted
            if deleted < Maintenance.cleanupBatch { break }
        }
        log("deleted \(total) expired idempotency key(s)")
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a dataset in the billgraph JSON Lines format.",
        discussion: """
            Strict and all-or-nothing, in one transaction: every line is checked as it
            is read and across lines before anything is stored; the first broken line
            stops the import with its number and the reason, and nothing is stored.
            Streams: memory does not grow with the file.

            Into an empty store (a first load), the tables' indexes and foreign keys are
            set aside and built again from the rows, and requests to that database wait
            from then (once the file is read and checked) until the import commits. On
            a cluster with wal_level = minimal (no replicas) those rows are written
            without WAL. An import into a store with rows keeps every index, and only
            mutations of the organisations it names wait for it (README, "Imports
            beside live mutations").
            """)

    @OptionGroup var database: DatabaseOptions

    @Argument(help: "The JSON Lines file, or - for standard input.")
    var file: String

    func run() throws {
        let connection = try database.connectMigrated()
        guard let input = file == "-" ? standardInput : fopen(file, "r") else {
            throw failure("cannot open \(file)")
        }
        defer { if file != "-" { fclose(input) } }
        let reader = LineReader(input)
        let importer = Importer(connection: connection, progress: log)
        do {
            let summary = try importer.run(lines: reader.next)
            let counts = summary.counts.map { "\($0.1) \($0.0)" }.joined(separator: ", ")
            log("imported \(summary.lines) lines: \(counts)")
        } catch let error as ImportError {
            throw failure("import failed, nothing was stored: \(error)")
        }
    }
}

/// Reads lines without the trailing newline, with getline (no whole-file buffering).
final class LineReader {
    private let file: UnsafeMutablePointer<FILE>
    private var buffer: UnsafeMutablePointer<CChar>?
    private var capacity = 0

    init(_ file: UnsafeMutablePointer<FILE>) { self.file = file }
    deinit { free(buffer) }

    func next() -> [UInt8]? {
        let length = getline(&buffer, &capacity, file)
        guard length >= 0, let buffer else { return nil }
        var count = length
        while count > 0 && (buffer[count - 1] == 0x0A || buffer[count - 1] == 0x0D) { count -= 1 }
        return buffer.withMemoryRebound(to: UInt8.self, capacity: count) { Array(UnsafeBufferPointer(start: $0, count: count)) }
    }
}

struct Seed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a deterministic demo dataset (JSON Lines) to standard output.",
        discussion: """
            The same options always give the same file. The API keys it creates (a full,
            a read-only and a refunds-only key per organisation) are printed on standard error.
            Example: billgraph seed --customers 1000 > data.jsonl && billgraph import data.jsonl
            """)

    @Option(help: "Customers per organisation.") var customers = 200
    @Option(help: "Organisations.") var orgs = 2
    @Option(help: "Seed of the random numbers.") var seed: UInt64 = 1
    @Option(help: "Mean number of invoices per customer.") var invoicesPerCustomer = 8.0

    func run() throws {
        var options = Seeder.Options()
        options.customers = customers
        options.organisations = orgs
        options.seed = seed
        options.invoicesPerCustomer = invoicesPerCustomer
        var seeder = Seeder(options)
        var out = JSONWriter(capacity: 1 << 20)
        seeder.generate(emit: { value in
            out.value(value)
            out.append(0x0A)
            if out.count > 1 << 20 { flush(&out) }
        }, key: { fputs("\($0)\n", standardError) })
        flush(&out)
        fflush(standardOutput)
    }

    private func flush(_ out: inout JSONWriter) {
        out.withBytes { _ = fwrite($0.baseAddress, 1, $0.count, standardOutput) }
        out.truncate(to: 0)
    }
}

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke API keys.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an API key and print it once (only its SHA-256 is stored).")

        @OptionGroup var database: DatabaseOptions
        @Option(help: "The organisation's id.") var organisation: String
        @Option(help: "Comma-separated scopes: billing:read, refunds:write, credit_notes:write.")
        var scopes: String = "billing:read"
        @Option(help: "A note to recognise the key by.") var label: String?
        @Option(help: "Points the key may spend a minute (an operation costs the statements it needs, 10 a mutation field); 0 for no limit.")
        var rateLimit: Int = 6000

        func validate() throws {
            guard (0...Int(Int32.max)).contains(rateLimit) else {
                throw ValidationError("--rate-limit must be 0 (no limit) to \(Int32.max)")
            }
        }

        func run() throws {
            let scopeList: [String]
            do { scopeList = try APIKeys.parseScopes(scopes) } catch { throw ValidationError(error.description) }
            let connection = try database.connectMigrated()
            let secret = APIKeys.generate()
            let rows = try connection.query(APIKeys.create(organisationID: organisation, key: secret, scopes: scopeList, label: label,
                                                           rateLimit: rateLimit))
            guard rows.rowCount == 1 else { throw failure("no organisation \(organisation)") }
            print("key id: \(rows.string(0, 0)!)")
            print("key:    \(secret)")
            log("the key is shown only now; store it safely")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an organisation's keys (never the keys themselves).")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "The organisation's id.") var organisation: String

        func run() throws {
            let rows = try database.connectMigrated().query(APIKeys.list(organisationID: organisation))
            for r in 0..<rows.rowCount {
                let revoked = rows.string(r, 4)!.isEmpty ? "" : " revoked \(rows.string(r, 4)!)"
                print("\(rows.string(r, 0)!) \(rows.string(r, 1)!) \(rows.string(r, 2)!) created \(rows.string(r, 3)!) rate-limit \(rows.string(r, 5)!)\(revoked)")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke an API key by its id (or by the key itself with --key).",
            discussion: "Running servers stop accepting the key within a few seconds (their key cache).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The key's id, as printed by keys create or keys list.") var id: String?
        @Option(help: "The plain key, when its id is not at hand.") var key: String?

        func run() throws {
            let connection = try database.connectMigrated()
            let rows: ResultSet
            if let key {
                rows = try connection.query(APIKeys.revoke(key: key))
            } else if let id {
                rows = try connection.query(APIKeys.revoke(id: id))
            } else {
                throw ValidationError("give the key's id or --key")
            }
            guard rows.rowCount == 1 else { throw failure("no such active key") }
            log("revoked key \(rows.string(0, 0)!)")
        }
    }
}


/// Trusted documents (RULES.md section 8): operation documents registered by the SHA-256
/// of their text, the only ones `serve --trusted-documents-only` runs.
struct Documents: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register, list and remove trusted documents.",
        discussion: """
            A document is named by the SHA-256 of its exact text (what clients send as
            extensions.persistedQuery.sha256Hash). Running servers see a change within a few
            seconds (their document cache).
            """,
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Trust the documents in these files (one document a file), printing each one's hash.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "Files holding one GraphQL document each.") var files: [String]

        func run() throws {
            var documents: [(hash: String, text: String, file: String)] = []
            for file in files {
                guard let bytes = readWholeFile(file) else { throw failure("cannot read \(file)") }
                guard let text = String(validating: bytes, as: UTF8.self) else { throw failure("\(file) is not UTF-8") }
                documents.append((SHA256.hex(bytes), text, file))
            }
            let connection = try database.connectMigrated()
            // All of them or none: one transaction.
            _ = try connection.query("BEGIN")
            for document in documents {
                _ = try connection.query("""
                    INSERT INTO persisted_document (sha256, body, trusted) VALUES (decode($1, 'hex'), $2, true)
                    ON CONFLICT (sha256) DO UPDATE SET trusted = true
                    """, [document.hash, document.text])
            }
            _ = try connection.query("COMMIT")
            for document in documents { print("\(document.hash) \(document.file)") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the trusted documents: hash, when added, first line.")
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            let rows = try database.connectMigrated().query("""
                SELECT encode(sha256, 'hex'), created_at::text, split_part(btrim(body, E' \\n\\t\\r'), E'\\n', 1)
                FROM persisted_document WHERE trusted ORDER BY created_at, sha256
                """)
            for r in 0..<rows.rowCount { print("\(rows.string(r, 0)!) \(rows.string(r, 1)!) \(rows.string(r, 2)!)") }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop trusting a document.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The document's SHA-256, as documents add or list print it.") var hash: String

        func run() throws {
            let lower = hash.lowercased()
            guard lower.utf8.count == 64, lower.allSatisfy(\.isHexDigit) else {
                throw ValidationError("a hash is 64 hexadecimal digits")
            }
            let rows = try database.connectMigrated().query(
                "UPDATE persisted_document SET trusted = false WHERE sha256 = decode($1, 'hex') AND trusted RETURNING 1", [lower])
            guard rows.rowCount == 1 else { throw failure("no trusted document \(lower)") }
            log("removed \(lower) from the trusted documents")
        }
    }
}
