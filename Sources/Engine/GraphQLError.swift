import JSON
import Query

/// The contract's error codes (RULES.md section 6).
public enum ErrorCode: String, Sendable {
    case parseFailed = "GRAPHQL_PARSE_FAILED"
    case validationFailed = "GRAPHQL_VALIDATION_FAILED"
    case badUserInput = "BAD_USER_INPUT"
    case unauthenticated = "UNAUTHENTICATED"
    case forbidden = "FORBIDDEN"
    case notFound = "NOT_FOUND"
    case invalidState = "INVALID_STATE"
    case amountExceedsRefundable = "AMOUNT_EXCEEDS_REFUNDABLE"
    case amountExceedsCreditable = "AMOUNT_EXCEEDS_CREDITABLE"
    case refundDestinationRequired = "REFUND_DESTINATION_REQUIRED"
    case refundSplitMismatch = "REFUND_SPLIT_MISMATCH"
    case idempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
    case queryTooComplex = "QUERY_TOO_COMPLEX"
    case serviceUnavailable = "SERVICE_UNAVAILABLE"
    case internalServerError = "INTERNAL_SERVER_ERROR"
    /// RULES.md section 8: the API key's budget of points for this minute is spent.
    case rateLimited = "RATE_LIMITED"
    /// RULES.md section 8: a persisted query's hash that the server does not know.
    case persistedQueryNotFound = "PERSISTED_QUERY_NOT_FOUND"
    /// RULES.md section 8: a document refused by `serve --trusted-documents-only`.
    case documentNotTrusted = "DOCUMENT_NOT_TRUSTED"
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
public func requestErrorBody(_ errors: [GraphQLError]) -> [UInt8] {
    var w = JSONWriter(capacity: 256)
    w.raw("{\"errors\":[")
    for (i, e) in errors.enumerated() {
        if i > 0 { w.raw(",") }
        e.write(to: &w)
    }
    w.raw("]}")
    return w.bytes
}
