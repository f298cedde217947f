import CLibPQ

/// The rows of one statement. Owns its `PGresult` (freed with `PQclear` when the last
/// reference goes), so cells are read straight from libpq's memory without copying
/// whole rows.
public final class ResultSet {
    @usableFromInline let result: OpaquePointer
    public let rowCount: Int
    public let columnCount: Int
    /// Whether the cells are in PostgreSQL's binary format (`Statement.binaryResults`).
    public let isBinary: Bool
    /// Each column's type (`pg_type` oid), for reading binary cells.
    @usableFromInline let types: [UInt32]

    init(owning result: OpaquePointer) {
        self.result = result
        rowCount = Int(PQntuples(result))
        columnCount = Int(PQnfields(result))
        isBinary = columnCount > 0 && PQfformat(result, 0) == 1
        types = (0..<columnCount).map { UInt32(PQftype(result, Int32($0))) }
    }

    /// The type of a column, as a `pg_type` oid.
    @inlinable public func type(_ column: Int) -> UInt32 { types[column] }

    deinit { PQclear(result) }

    public func isNull(_ row: Int, _ column: Int) -> Bool {
        PQgetisnull(result, Int32(row), Int32(column)) == 1
    }

    /// The cell as text, or nil for SQL NULL.
    public func string(_ row: Int, _ column: Int) -> String? {
        if isNull(row, column) { return nil }
        return String(cString: PQgetvalue(result, Int32(row), Int32(column)))
    }

    /// The cell as an integer, or nil for SQL NULL (in binary, an `int8`, `int4` or `int2`).
    /// Inlinable: a shared statement's rows are each found by their ordinality, read here.
    @inlinable public func int(_ row: Int, _ column: Int) -> Int? {
        if isBinary { return bytes(row, column).flatMap(Binary.integer) }
        return textInt(row, column)
    }

    @usableFromInline func textInt(_ row: Int, _ column: Int) -> Int? {
        if isNull(row, column) { return nil }
        return strtol(PQgetvalue(result, Int32(row), Int32(column)), nil, 10)
    }

    /// The cell's bytes, valid while this result set lives.
    public func withBytes<T>(_ row: Int, _ column: Int, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T? {
        guard let bytes = bytes(row, column) else { return nil }
        return body(bytes)
    }

    /// The cell's bytes, or nil for SQL NULL. They are libpq's memory: valid only while
    /// this result set lives, so use them before letting go of it. Inlinable: the
    /// response writer reads every cell through it.
    @inlinable public func bytes(_ row: Int, _ column: Int) -> UnsafeBufferPointer<UInt8>? {
        let (r, c) = (Int32(row), Int32(column))
        let length = Int(PQgetlength(result, r, c))
        // A NULL has length 0, so only an empty value needs the third call to tell them apart.
        if length == 0 && PQgetisnull(result, r, c) == 1 { return nil }
        return UnsafeBufferPointer(start: UnsafeRawPointer(PQgetvalue(result, r, c)).assumingMemoryBound(to: UInt8.self), count: length)
    }

    /// The number of rows a command touched (`UPDATE`, `DELETE`, `COPY`).
    public var affectedRows: Int { Int(String(cString: PQcmdTuples(result))) ?? 0 }
}

#if canImport(Glibc)
import Glibc
#endif
