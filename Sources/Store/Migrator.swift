/// One numbered schema change.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// Applies the migrations a database has not had yet, in order, each in its own
/// transaction, and records them in `schema_migrations`.
public struct Migrator {
    public let connection: BlockingConnection

    public init(connection: BlockingConnection) { self.connection = connection }

    /// The migrations of `migrations` the database has not had (all of them when it has
    /// never been migrated), in order.
    public func pending(_ migrations: [Migration]) throws -> [Migration] {
        let table = try connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL")
        guard table.string(0, 0) == "t" else { return migrations.sorted { $0.version < $1.version } }
        let rows = try connection.query("SELECT version FROM schema_migrations")
        let applied = Set((0..<rows.rowCount).compactMap { rows.int($0, 0) })
        return migrations.filter { !applied.contains($0.version) }.sorted { $0.version < $1.version }
    }

    /// Returns the migrations it applied.
    @discardableResult
    public func migrate(_ migrations: [Migration], progress: (Migration) -> Void = { _ in }) throws -> [Migration] {
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        var applied: [Migration] = []
        for migration in migrations.sorted(by: { $0.version < $1.version }) {
            let done = try connection.transaction { () throws -> Bool in
                // Two migrators at once: the lock makes the second wait, then skip.
                try connection.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                let seen = try connection.query("SELECT 1 FROM schema_migrations WHERE version = $1", [String(migration.version)])
                if seen.rowCount > 0 { return false }
                try connection.execute(migration.sql)
                try connection.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                     [String(migration.version), migration.name])
                return true
            }
            if done {
                applied.append(migration)
                progress(migration)
            }
        }
        return applied
    }
}
