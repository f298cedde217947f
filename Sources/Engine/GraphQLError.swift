import JSON
import Query

/// An error's `extensions.code`: any text a program can match. The engine names only
/// the codes it raises itself, the common ones of GraphQL servers (Apollo Server's);
/// an application adds its own as static members in an extension (Billing holds the
/// contract's, RULES.md section 6).
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// The document is not GraphQL.
    public static let parseFailed = ErrorCode(rawValue: "GRAPHQL_PARSE_FAILED")
    /// The document does not validate against the schema.
    public static let validationFailed = ErrorCode(rawValue: "GRAPHQL_VALIDATION_FAILED")
    /// A variable, an argument or the request's shape is wrong.
    public static let badUserInput = ErrorCode(rawValue: "BAD_USER_INPUT")
    /// Something failed that the client can do nothing about.
    public static let internalServerError = ErrorCode(rawValue: "INTERNAL_SERVER_ERROR")
    /// An automatic persisted query's hash that the server does not know.
    public static let persistedQueryNotFound = ErrorCode(rawValue: "PERSISTED_QUERY_NOT_FOUND")
    /// Over one of the engine's limits: depth, fields, list items (`Preparation`, `Execution`).
    public static let queryTooComplex = ErrorCode(rawValue: "QUERY_TOO_COMPLEX")
}

public enum PathElement: Sendable, Equatable {
    case key(String)
    case index(Int)
}

/// An error as the response shows it: a message for people, a code for programs.
public struct GraphQLError: Error, Sendable {
    public var message: String
    public var code: ErrorCode
    public var locations: [SourceLocation]
    public var path: [PathElement]?

    public init(_ message: String, code: ErrorCode, locations: [SourceLocation] = [], path: [PathElement]? = nil) {
        self.message = message
        self.code = code
        self.locations = locations
        self.path = path
    }

    public func write(to w: inout JSONWriter) {
        w.raw("{")
        w.key("message")
        w.string(message)
        if !locations.isEmpty {
            w.raw(",")
            w.key("locations")
            w.raw("[")
            for (i, l) in locations.enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{\"line\":")
                w.int(l.line)
                w.raw(",\"column\":")
                w.int(l.column)
                w.raw("}")
            }
            w.raw("]")
        }
        if let path {
            w.raw(",")
            w.key("path")
            w.raw("[")
            for (i, p) in path.enumerated() {
                if i > 0 { w.raw(",") }
                switch p {
                case .key(let k): w.string(k)
                case .index(let n): w.int(n)
                }
            }
            w.raw("]")
        }
        w.raw(",\"extensions\":{\"code\":")
        w.string(code.rawValue)
        w.raw("}}")
    }
}

/// A response with errors only and no `data` key (request errors).
public func requestErrorBody(_ errors: [GraphQLError], extensions: [UInt8] = []) -> [UInt8] {
    var w = JSONWriter(capacity: 256)
    w.raw("{\"errors\":[")
    for (i, e) in errors.enumerated() {
        if i > 0 { w.raw(",") }
        e.write(to: &w)
    }
    w.raw("]")
    writeExtensions(extensions, to: &w)
    w.raw("}")
    return w.bytes
}

/// `,"extensions":{...}` around `members` (JSON text), unless there are none.
func writeExtensions(_ members: [UInt8], to w: inout JSONWriter) {
    guard !members.isEmpty else { return }
    w.raw(",\"extensions\":{")
    w.append(members)
    w.raw("}")
}
