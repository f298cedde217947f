import CLibPQ

/// What went wrong talking to PostgreSQL. Messages here are for logs and operators;
/// the API never shows them to clients.
public enum DatabaseError: Error, CustomStringConvertible, Sendable {
    /// No connection could be made, or it broke: the database is down or restarting.
    case unavailable(String)
    /// The server refused a statement. `sqlState` is the five-character SQLSTATE.
    case server(sqlState: String, message: String, detail: String?, constraint: String?)

    public var description: String {
        switch self {
        case .unavailable(let m): return "database unavailable: \(m)"
        case .server(let state, let message, let detail, _):
            return "\(message) (SQLSTATE \(state))" + (detail.map { ": \($0)" } ?? "")
        }
    }

    public var sqlState: String? {
        if case .server(let s, _, _, _) = self { return s }
        return nil
    }

    /// A statement cut off by `statement_timeout` (query_canceled; billgraph cancels no
    /// statement itself).
    public var isTimeout: Bool { sqlState == "57014" }

    /// Serialization failures and deadlocks: the transaction may simply be run again.
    public var isRetryable: Bool { sqlState == "40001" || sqlState == "40P01" }

    /// Connection-class errors and server shutdowns: the database is not there right now.
    public var isUnavailable: Bool {
        if case .unavailable = self { return true }
        guard let s = sqlState else { return false }
        return s.hasPrefix("08") || s == "57P01" || s == "57P02" || s == "57P03"
    }

    static func from(_ result: OpaquePointer?, connection: OpaquePointer?) -> DatabaseError {
        guard let result else {
            return .unavailable(connection.map { String(cString: PQerrorMessage($0)) } ?? "no result")
        }
        func field(_ code: Int32) -> String? {
            PQresultErrorField(result, code).map { String(cString: $0) }
        }
        let state = field(Int32(UInt8(ascii: "C"))) ?? "XX000"
        let message = field(Int32(UInt8(ascii: "M"))) ?? String(cString: PQresultErrorMessage(result))
        return .server(sqlState: state, message: message, detail: field(Int32(UInt8(ascii: "D"))),
                       constraint: field(Int32(UInt8(ascii: "n"))))
    }
}
