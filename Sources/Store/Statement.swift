/// SQL text with its parameters. Values always travel as parameters (`$1`, `$2`, ...),
/// never inside the text.
public struct Statement: Sendable, CustomStringConvertible {
    public let sql: String
    public let parameters: [String?]
    /// Whether the rows come back in PostgreSQL's binary format, which it produces
    /// without formatting anything (no digits, no calendar): cheaper for the database on
    /// every cell, and read with `ResultSet.type(_:)` and the `Binary` helpers.
    public let binaryResults: Bool

    public init(_ sql: String, _ parameters: [String?] = [], binaryResults: Bool = false) {
        self.sql = sql
        self.parameters = parameters
        self.binaryResults = binaryResults
    }

    public var description: String { sql }

    /// Calls `body` with C strings of the parameters, alive for the duration of the call.
    func withCParameters<T>(_ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> T) -> T {
        if parameters.isEmpty { return body(nil) }
        var owned: [UnsafeMutablePointer<CChar>?] = parameters.map { $0.map { strdup($0) } }
        defer { for p in owned { free(p) } }
        return owned.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
                body(UnsafePointer($0))
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
