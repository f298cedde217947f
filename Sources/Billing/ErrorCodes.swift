import Engine

/// The contract's error codes that are not the engine's own (RULES.md section 6; the
/// engine names the GraphQL ones: `GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED`,
/// `BAD_USER_INPUT`, `QUERY_TOO_COMPLEX`, `INTERNAL_SERVER_ERROR`, `PERSISTED_QUERY_NOT_FOUND`).
extension ErrorCode {
    public static let unauthenticated = ErrorCode(rawValue: "UNAUTHENTICATED")
    public static let forbidden = ErrorCode(rawValue: "FORBIDDEN")
    public static let notFound = ErrorCode(rawValue: "NOT_FOUND")
    public static let invalidState = ErrorCode(rawValue: "INVALID_STATE")
    public static let amountExceedsRefundable = ErrorCode(rawValue: "AMOUNT_EXCEEDS_REFUNDABLE")
    public static let amountExceedsCreditable = ErrorCode(rawValue: "AMOUNT_EXCEEDS_CREDITABLE")
    public static let refundDestinationRequired = ErrorCode(rawValue: "REFUND_DESTINATION_REQUIRED")
    public static let refundSplitMismatch = ErrorCode(rawValue: "REFUND_SPLIT_MISMATCH")
    public static let idempotencyKeyReused = ErrorCode(rawValue: "IDEMPOTENCY_KEY_REUSED")
    public static let serviceUnavailable = ErrorCode(rawValue: "SERVICE_UNAVAILABLE")
    /// RULES.md section 8: the API key's budget of points for this minute is spent.
    public static let rateLimited = ErrorCode(rawValue: "RATE_LIMITED")
    /// RULES.md section 8: a document refused by `serve --trusted-documents-only`.
    public static let documentNotTrusted = ErrorCode(rawValue: "DOCUMENT_NOT_TRUSTED")

    /// The codes a mutation's SQL function may refuse with, as `CODE|message`
    /// (RULES.md section 4): `ErrorCode(refusal:)` accepts only these.
    static let refusals: Set<ErrorCode> = [
        .notFound, .invalidState, .amountExceedsRefundable, .amountExceedsCreditable, .refundDestinationRequired,
        .refundSplitMismatch, .idempotencyKeyReused, .badUserInput,
    ]

    /// A code a mutation's SQL function refused with, or nil for text that is none.
    init?(refusal text: String) {
        let code = ErrorCode(rawValue: text)
        guard Self.refusals.contains(code) else { return nil }
        self = code
    }

    /// Load failures after which a query has no data (`Execution`'s `endingRequest`): the
    /// database is gone or failed under it, so the answer is a request error rather than
    /// a field's (RULES.md section 5: requests fail fast with `SERVICE_UNAVAILABLE`). Under
    /// a mutation they fail their field, as any error does (section 4).
    public static let endingRequest: Set<ErrorCode> = [.serviceUnavailable, .internalServerError]
}
