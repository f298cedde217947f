/// SQL text with its parameters. Values always travel as parameters (`$1`, `$2`, ...),
/// never inside the text.
public struct Statement: Sendable, CustomStringConvertible {
    public let sql: String
    public let parameters: [String?]

    public init(_ sql: String, _ parameters: [String?] = []) {
        self.sql = sql
        self.parameters = parameters
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
