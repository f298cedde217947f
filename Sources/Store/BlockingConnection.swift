import CLibPQ

/// A connection for the command-line tools (migrate, import, keys), which may block.
/// Never used on a server loop. Owns its `PGconn` from `init` to `deinit`.
public final class BlockingConnection {
    private let conn: OpaquePointer

    public init(_ conninfo: String) throws(DatabaseError) {
        guard let conn = PQconnectdb(conninfo) else { throw .unavailable("out of memory") }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(conn))
            PQfinish(conn)
            throw .unavailable(message.trimmingTrailingNewlines)
        }
        self.conn = conn
        // Quiet NOTICEs (for example "relation already exists, skipping").
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
    }

    deinit { PQfinish(conn) }

    /// Runs one or more statements without parameters.
    public func execute(_ sql: String) throws(DatabaseError) {
        _ = try check(PQexec(conn, sql))
    }

    /// Runs one statement with parameters and returns its rows.
    @discardableResult
    public func query(_ statement: Statement) throws(DatabaseError) -> ResultSet {
        let result = statement.withLibpqParameters { values, lengths, formats in
            PQexecParams(conn, statement.sql, Int32(statement.parameters.count), nil, values, lengths, formats, 0)
        }
        return try check(result)
    }

    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws(DatabaseError) -> ResultSet {
        try query(Statement(sql, parameters))
    }

    private func check(_ result: OpaquePointer?) throws(DatabaseError) -> ResultSet {
        guard let result else { throw DatabaseError.from(nil, connection: conn) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_COPY_IN:
            return ResultSet(owning: result)
        default:
            let error = DatabaseError.from(result, connection: conn)
            PQclear(result)
            throw error
        }
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Starts `COPY table (columns) FROM STDIN` with rows in PostgreSQL's binary COPY format. Until `copyEnd`, the
    /// connection takes only `copySend`: rows streamed in pieces, so a caller never holds more than a piece.
    public func copyBegin(into table: String, columns: [String]) throws(DatabaseError) {
        _ = try check(PQexec(conn, "COPY \(table) (\(columns.joined(separator: ", "))) FROM STDIN (FORMAT binary)"))
    }

    /// Sends a piece of COPY data (whole rows or not); blocks while libpq's buffer is full.
    public func copySend(_ data: [UInt8]) throws(DatabaseError) {
        guard !data.isEmpty else { return }
        let sent = data.withUnsafeBufferPointer { buffer -> Int32 in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                PQputCopyData(conn, $0, Int32(buffer.count))
            }
        }
        guard sent == 1 else { throw .unavailable(String(cString: PQerrorMessage(conn))) }
    }

    /// Ends the COPY and waits for the server's verdict on every row sent.
    public func copyEnd() throws(DatabaseError) {
        guard PQputCopyEnd(conn, nil) == 1 else {
            throw .unavailable(String(cString: PQerrorMessage(conn)))
        }
        var failure: DatabaseError?
        while let result = PQgetResult(conn) {
            if PQresultStatus(result) != PGRES_COMMAND_OK, failure == nil {
                failure = DatabaseError.from(result, connection: conn)
            }
            PQclear(result)
        }
        if let failure { throw failure }
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var s = self
        while s.last == "\n" { s.removeLast() }
        return s
    }
}
