import CLibPQ

/// The rows of one statement. Owns its `PGresult` (freed with `PQclear` when the last
/// reference goes), so cells are read straight from libpq's memory without copying
/// whole rows.
public final class ResultSet {
    private let result: OpaquePointer
    public let rowCount: Int
    public let columnCount: Int

    init(owning result: OpaquePointer) {
        self.result = result
        rowCount = Int(PQntuples(result))
        columnCount = Int(PQnfields(result))
    }

    deinit { PQclear(result) }

    public func isNull(_ row: Int, _ column: Int) -> Bool {
        PQgetisnull(result, Int32(row), Int32(column)) == 1
    }

    /// The cell as text, or nil for SQL NULL.
    public func string(_ row: Int, _ column: Int) -> String? {
        if isNull(row, column) { return nil }
        return String(cString: PQgetvalue(result, Int32(row), Int32(column)))
    }

    /// The cell as an integer, or nil for SQL NULL.
    public func int(_ row: Int, _ column: Int) -> Int? {
        if isNull(row, column) { return nil }
        return strtol(PQgetvalue(result, Int32(row), Int32(column)), nil, 10)
    }

    /// The cell's bytes, valid while this result set lives.
    public func withBytes<T>(_ row: Int, _ column: Int, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T? {
        if isNull(row, column) { return nil }
        let length = Int(PQgetlength(result, Int32(row), Int32(column)))
        return PQgetvalue(result, Int32(row), Int32(column)).withMemoryRebound(to: UInt8.self, capacity: length) {
            body(UnsafeBufferPointer(start: $0, count: length))
        }
    }

    /// The number of rows a command touched (`UPDATE`, `DELETE`, `COPY`).
    public var affectedRows: Int { Int(String(cString: PQcmdTuples(result))) ?? 0 }
}

#if canImport(Glibc)
import Glibc
#endif
