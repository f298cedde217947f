import Engine
import JSON
import Schema
import Store

/// The mutations of the contract, by their field names (RULES.md section 4).
public enum MutationKind: String, CaseIterable, Sendable {
    case refundPayment, createCreditNote, voidCreditNote, updateRefund

    /// The scope an API key needs for it (RULES.md section 1).
    var scope: String {
        switch self {
        case .refundPayment, .updateRefund: return "refunds:write"
        case .createCreditNote, .voidCreditNote: return "credit_notes:write"
        }
    }

    /// Whether a call carries an idempotency key (RULES.md section 4).
    var takesIdempotencyKey: Bool {
        switch self {
        case .refundPayment, .createCreditNote, .voidCreditNote: return true
        case .updateRefund: return false
        }
    }

    /// The payload type it answers with (`Registry` says how its fields are read).
    var payload: ObjectType {
        switch self {
        case .refundPayment: return .refundPaymentPayload
        case .createCreditNote: return .createCreditNotePayload
        case .voidCreditNote: return .voidCreditNotePayload
        case .updateRefund: return .updateRefundPayload
        }
    }
}

/// The write side of the contract (RULES.md section 4). Each mutation field is one call
/// of its PL/pgSQL function (schema/migrations/003_mutations.sql), whose locks make
/// concurrent mutations behave as if run one at a time; the caller runs all the fields of
/// an operation in one transaction (`MutationTransaction`), and runs it again after a
/// serialization failure or a deadlock. This layer checks what needs no database (the
/// key's length; the resolver has checked the scope before) and fingerprints the input
/// for idempotency.
public struct MutationService: MutationResolving {
    public init() {}

    public func resolve(_ field: PlannedField, as mutation: MutationKind, context: RequestContext) throws(GraphQLError) -> Resolution {
        guard case .object(let members)? = field.argument("input") else {
            throw GraphQLError("The input is missing.", code: .badUserInput)
        }
        let input = JSONValue.object(members)
        let key = input["idempotencyKey"]?.stringValue
        if let key, key.unicodeScalars.count > 255 {
            throw GraphQLError("The idempotencyKey must be at most 255 characters.", code: .badUserInput)
        }
        let common: [String?] = [context.organisationID, context.apiKeyID, key, Self.fingerprint(members)]
        let statement: Statement
        switch mutation {
        case .refundPayment:
            statement = Statement("""
                SELECT refund_id::text, payment_id::text FROM bg_refund_payment(
                    $1::uuid, $2::uuid, $3, $4, $5::uuid, $6::bigint, $7, $8::date, $9, $10)
                """, common + [uuid(input["paymentId"]), number(input["amount"]), text(input["mode"]),
                               text(input["refundedOn"]), text(input["referenceNumber"]), text(input["description"])])
        case .createCreditNote:
            statement = Statement("""
                SELECT credit_note_id::text, invoice_id::text FROM bg_create_credit_note(
                    $1::uuid, $2::uuid, $3, $4, $5::uuid, $6::bigint, $7, $8, $9::jsonb, $10::jsonb)
                """, common + [uuid(input["invoiceId"]), number(input["amount"]), text(input["reason"]),
                               text(input["refundDestination"]), json(input["refundSplit"]), json(input["customData"])])
        case .updateRefund:
            // No idempotency key: the same correction twice changes nothing the second time.
            statement = Statement("""
                SELECT refund_id::text, payment_id::text FROM bg_update_refund($1::uuid, $2::uuid, $3, $4::date, $5, $6)
                """, [context.organisationID, uuid(input["refundId"]), text(input["mode"]), text(input["refundedOn"]),
                      text(input["referenceNumber"]), text(input["description"])])
        case .voidCreditNote:
            statement = Statement("""
                SELECT credit_note_id::text, invoice_id::text FROM bg_void_credit_note($1::uuid, $2::uuid, $3, $4, $5::uuid)
                """, common + [uuid(input["creditNoteId"])])
        }
        return .load(MutationLoad(context: context, statement: statement, field: field.name,
                                  idempotencyKey: mutation.takesIdempotencyKey ? key : nil))
    }

    /// For an operation of several mutation fields: the statement that takes, before the
    /// first field runs, every row the fields will change, in the global lock order
    /// (schema/migrations/005_operation_locks.sql). Nil for a single field, which keeps
    /// that order by itself.
    public static func lockPrelude(_ fields: [PlannedField], organisationID: String) -> Statement? {
        guard fields.count > 1 else { return nil }
        var notes: [String] = [], invoices: [String] = [], payments: [String] = []
        for field in fields {
            guard case .object(let members)? = field.argument("input") else { continue }
            let input = JSONValue.object(members)
            let id: (String) -> String? = { name in input[name]?.stringValue.flatMap { Scalars.isLowercaseUUID($0) ? $0 : nil } }
            switch MutationKind(rawValue: field.name) {
            case .refundPayment?: id("paymentId").map { payments.append($0) }
            case .createCreditNote?: id("invoiceId").map { invoices.append($0) }
            case .voidCreditNote?: id("creditNoteId").map { notes.append($0) }
            case .updateRefund?, nil: break  // updateRefund locks only its refund; nil is `__typename`
            }
        }
        let numbers = fields.contains { $0.name == "createCreditNote" }
        return Statement("SELECT bg_lock_operation($1::uuid, $2::uuid[], $3::uuid[], $4::uuid[], $5::boolean)",
                         [organisationID, Parameters.arrayLiteral(notes), Parameters.arrayLiteral(invoices),
                          Parameters.arrayLiteral(payments), numbers ? "true" : "false"])
    }

    /// "The same input" (RULES.md section 4): absent and null fields alike, key order
    /// ignored, the key itself left out.
    static func fingerprint(_ members: [(String, JSONValue)]) -> String {
        JSONValue.object(withoutNulls(members.filter { $0.0 != "idempotencyKey" })).sortedKeys().serialized
    }

    /// An input object's fields less the null ones, and so for the input objects in its
    /// lists (`refundSplit`'s entries), but never inside `customData`: a `JSON` value,
    /// where a null is data.
    private static func withoutNulls(_ members: [(String, JSONValue)]) -> [(String, JSONValue)] {
        members.compactMap { name, value in
            switch value {
            case .null: return nil
            case .array(let items) where name != "customData":
                return (name, .array(items.map { if case .object(let entry) = $0 { .object(withoutNulls(entry)) } else { $0 } }))
            default: return (name, value)
            }
        }
    }

    /// An id that is not a lowercase UUID is passed as NULL, which finds nothing: NOT_FOUND.
    private func uuid(_ value: JSONValue?) -> String? {
        guard let s = value?.stringValue, Scalars.isLowercaseUUID(s) else { return nil }
        return s
    }

    private func number(_ value: JSONValue?) -> String? {
        if case .number(let n)? = value { return n }
        return nil
    }

    private func text(_ value: JSONValue?) -> String? { value?.stringValue }

    private func json(_ value: JSONValue?) -> String? {
        guard let value, !value.isNull else { return nil }
        return value.serialized
    }
}

/// Runs a mutation's statement and turns the rules it reports (`CODE|text`) into the
/// contract's errors. A conflict (serialization failure, deadlock) marks the request's
/// context, so that the whole transaction is run again.
struct MutationLoad: BatchLoad {
    let context: RequestContext
    let statement: Statement
    /// The mutation field's name, and its idempotency key when it has one: a field with a
    /// key may have answered with an earlier call's result, which the metrics count apart.
    let field: String
    let idempotencyKey: String?

    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        context.queryRaw(statement) { [context, field, idempotencyKey] result in
            switch result {
            case .success(let rows) where rows.rowCount == 1:
                let node = RowNode(rows, 0, ColumnSet(identity: 2))
                guard let idempotencyKey else { return completion(.success(parents.map { _ in .object(node) })) }
                context.queryRaw(Self.replayCheck(organisationID: context.organisationID, key: idempotencyKey)) { checked in
                    switch checked {
                    case .success(let rows):
                        if rows.rowCount == 1 && rows.string(0, 0) == "t" { context.noteReplay(of: field) }
                        completion(.success(parents.map { _ in .object(node) }))
                    case .failure(let error):
                        completion(.failure(context.logFailure(error)))
                    }
                }
            case .success:
                completion(.failure(GraphQLError("Internal server error.", code: .internalServerError)))
            case .failure(let error):
                completion(.failure(Self.ruleBroken(error) ?? context.logFailure(error)))
            }
        }
    }

    /// Whether the key's row was written by an earlier transaction (a replay) rather than
    /// by this one: a statement of its own, so that its snapshot sees what the mutation's
    /// function did and what a concurrent call with the same key committed meanwhile
    /// (the functions claim keys without subtransactions, so a row of this transaction
    /// carries its own transaction id).
    static func replayCheck(organisationID: String, key: String) -> Statement {
        Statement("SELECT xmin <> pg_current_xact_id()::xid FROM idempotency_key WHERE organisation_id = $1::uuid AND key = $2",
                  [organisationID, key])
    }

    /// A rule of the contract the function refused the mutation for.
    static func ruleBroken(_ error: DatabaseError) -> GraphQLError? {
        guard case .server("P0001", let message, _, _) = error, let bar = message.firstIndex(of: "|"),
              let code = ErrorCode(refusal: String(message[..<bar])) else { return nil }
        return GraphQLError(String(message[message.index(after: bar)...]), code: code)
    }
}

