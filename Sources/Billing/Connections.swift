import Engine
import JSON
import Schema
import Store

/// The five root connections: their filters (RULES.md section 2) as SQL fragments whose
/// values are always bound as parameters.
enum Connections {
    typealias Filter = (inout Parameters) -> String

    static func load(_ field: PlannedField, context: RequestContext) throws(GraphQLError) -> ConnectionLoad {
        let table: Table
        let filters: [Filter]
        let filter = field.argument("filter")
        switch field.name {
        case "customers": (table, filters) = (Tables.customer, customerFilters(filter))
        case "invoices": (table, filters) = (Tables.invoice, invoiceFilters(filter))
        case "payments": (table, filters) = (Tables.payment, paymentFilters(filter))
        case "refunds": (table, filters) = (Tables.refund, refundFilters(filter))
        default: (table, filters) = (Tables.creditNote, creditNoteFilters(filter))
        }
        let first = try Arguments.first(field, default: 50)
        let newestFirst = Arguments.newestFirst(field)
        let fingerprint = Cursor.fingerprint(filter)
        var after: Cursor?
        if let text = field.argument("after")?.stringValue {
            guard let cursor = Cursor.decode(text), cursor.connection == field.name,
                  cursor.order == (newestFirst ? "NEWEST_FIRST" : "OLDEST_FIRST"),
                  cursor.filterFingerprint == fingerprint, validSortKey(cursor.sortKey, table) else {
                throw GraphQLError("Argument \"after\" is not a cursor of this connection with these arguments.",
                                   code: .badUserInput)
            }
            after = cursor
        }
        return ConnectionLoad(context: context, name: field.name, table: table, columns: Columns.needed(table, by: field, sortKey: true),
                              first: first, after: after,
                              newestFirst: newestFirst, filterFingerprint: fingerprint, filters: filters,
                              wantsTotal: field.selects("totalCount"))
    }

    /// The sort key of a cursor must parse as the connection's date or timestamp, every
    /// part in range (RULES.md section 5: a forged cursor is BAD_USER_INPUT, never a
    /// statement PostgreSQL refuses).
    private static func validSortKey(_ key: String, _ table: Table) -> Bool {
        if table.sortKeyCast == Table.dateCast { return Scalars.isValidDate(key) }
        // YYYY-MM-DD HH:MM:SS.ffffff
        let parts = key.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, Scalars.isValidDate(String(parts[0])) else { return false }
        let time = Array(parts[1].utf8)
        guard time.count == 15, time[2] == UInt8(ascii: ":"), time[5] == UInt8(ascii: ":"), time[8] == UInt8(ascii: "."),
              let hours = number(time[0..<2]), let minutes = number(time[3..<5]), let seconds = number(time[6..<8]),
              number(time[9..<15]) != nil else { return false }
        return hours < 24 && minutes < 60 && seconds < 60
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        digits.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } ? digits.reduce(0) { $0 * 10 + Int($1 - 0x30) } : nil
    }

    private static func string(_ filter: JSONValue?, _ name: String) -> String? { filter?[name]?.stringValue }

    /// An id filter: a value that is not a lowercase UUID matches nothing.
    private static func idFilter(_ filter: JSONValue?, _ name: String, _ column: String) -> Filter? {
        guard let id = string(filter, name) else { return nil }
        guard Scalars.isLowercaseUUID(id) else { return { _ in "false" } }
        return { "\(column) = \($0.bind(id))::uuid" }
    }

    private static func equals(_ filter: JSONValue?, _ name: String, _ column: String) -> Filter? {
        guard let value = string(filter, name) else { return nil }
        return { "\(column) = \($0.bind(value))" }
    }

    private static func date(_ filter: JSONValue?, _ name: String, _ column: String, _ op: String) -> Filter? {
        guard let value = string(filter, name) else { return nil }
        return { "\(column) \(op) \($0.bind(value))::date" }
    }

    static func customerFilters(_ f: JSONValue?) -> [Filter] {
        var out = [equals(f, "email", "c.email"), equals(f, "externalId", "c.external_id"), equals(f, "currency", "c.currency")]
        if let needle = string(f, "nameContains") {
            // strpos, not LIKE: %, _ and \ are ordinary characters. ICU's lower() folds case across Unicode.
            out.append { "strpos(lower(c.name COLLATE \"und-x-icu\"), lower(\($0.bind(needle)) COLLATE \"und-x-icu\")) > 0" }
        }
        return out.compactMap { $0 }
    }

    static func invoiceFilters(_ f: JSONValue?) -> [Filter] {
        var out = [idFilter(f, "customerId", "i.customer_id"), equals(f, "currency", "i.currency"),
                   date(f, "issuedFrom", "i.issued_on", ">="), date(f, "issuedTo", "i.issued_on", "<="),
                   date(f, "dueBefore", "i.due_on", "<")]
        if case .array(let statuses)? = f?["status"] {
            let names = statuses.compactMap(\.stringValue)
            out.append { "i.status = ANY(\($0.bind(Parameters.arrayLiteral(names)))::text[])" }
        }
        return out.compactMap { $0 }
    }

    static func paymentFilters(_ f: JSONValue?) -> [Filter] {
        var out = [idFilter(f, "customerId", "p.customer_id"), equals(f, "status", "p.status"),
                   date(f, "receivedFrom", "p.received_on", ">="), date(f, "receivedTo", "p.received_on", "<=")]
        if let invoice = string(f, "invoiceId") {
            if Scalars.isLowercaseUUID(invoice) {
                out.append { "EXISTS (SELECT 1 FROM payment_application a WHERE a.payment_id = p.id AND a.invoice_id = \($0.bind(invoice))::uuid)" }
            } else {
                out.append { _ in "false" }
            }
        }
        if case .bool(let hasRefunds)? = f?["hasRefunds"] {
            // Refund amounts are above 0, so "has a refund" is "has refunded something".
            out.append { _ in hasRefunds ? "p.amount_refunded > 0" : "p.amount_refunded = 0" }
        }
        return out.compactMap { $0 }
    }

    static func refundFilters(_ f: JSONValue?) -> [Filter] {
        [idFilter(f, "paymentId", "r.payment_id"), idFilter(f, "creditNoteId", "r.credit_note_id"),
         date(f, "refundedFrom", "r.refunded_on", ">="), date(f, "refundedTo", "r.refunded_on", "<=")].compactMap { $0 }
    }

    static func creditNoteFilters(_ f: JSONValue?) -> [Filter] {
        [idFilter(f, "invoiceId", "n.invoice_id"), idFilter(f, "customerId", "n.customer_id"),
         equals(f, "status", "n.status")].compactMap { $0 }
    }
}

/// `arAging` and `monthlySummary`: one aggregate statement each.
enum Reports {
    static let agingColumns = ["asOf", "currency", "current", "days1To30", "days31To60", "days61To90", "over90", "total"]
    static let monthColumns = ["month", "invoiced", "received", "refunded", "credited"]

    static func aging(_ field: PlannedField, context: RequestContext) throws(GraphQLError) -> Resolution {
        let asOf = field.argument("asOf")?.stringValue ?? ""
        let currency = field.argument("currency")?.stringValue ?? ""
        var p = Parameters()
        let org = p.bind(context.organisationID), day = p.bind(asOf), cur = p.bind(currency)
        let late = "(\(day)::date - i.due_on)"
        let sql = """
            SELECT to_char(\(day)::date, 'YYYY-MM-DD'), \(cur)::text,
                   COALESCE(sum(i.balance) FILTER (WHERE i.due_on IS NULL OR \(late) <= 0), 0),
                   COALESCE(sum(i.balance) FILTER (WHERE \(late) BETWEEN 1 AND 30), 0),
                   COALESCE(sum(i.balance) FILTER (WHERE \(late) BETWEEN 31 AND 60), 0),
                   COALESCE(sum(i.balance) FILTER (WHERE \(late) BETWEEN 61 AND 90), 0),
                   COALESCE(sum(i.balance) FILTER (WHERE \(late) > 90), 0),
                   COALESCE(sum(i.balance), 0)
            FROM invoice i
            WHERE i.organisation_id = \(org)::uuid AND i.currency = \(cur)::text AND i.status IN ('OPEN', 'PARTIALLY_PAID')
            """
        return .load(SingleQueryLoad(context: context, statement: Statement(sql, p.values),
                                     shape: ColumnSet(identity: agingColumns.count), list: false))
    }

    static func monthlySummary(_ field: PlannedField, context: RequestContext) throws(GraphQLError) -> Resolution {
        let currency = field.argument("currency")?.stringValue ?? ""
        guard let fromText = field.argument("from")?.stringValue, let toText = field.argument("to")?.stringValue,
              let from = Scalars.parseDate(fromText), let to = Scalars.parseDate(toText) else {
            throw GraphQLError("Arguments \"from\" and \"to\" must be dates.", code: .badUserInput)
        }
        guard fromText <= toText else {
            throw GraphQLError("Argument \"from\" must not be after \"to\".", code: .badUserInput)
        }
        let months = (to.year * 12 + to.month) - (from.year * 12 + from.month) + 1
        guard months <= 120 else {
            throw GraphQLError("The summary would have \(months) months; at most 120 are allowed.", code: .badUserInput)
        }
        var p = Parameters()
        let org = p.bind(context.organisationID), cur = p.bind(currency)
        let first = p.bind(fromText), last = p.bind(toText)
        let sql = """
            WITH months AS (
                SELECT m::date AS month, (m + interval '1 month')::date AS next
                FROM generate_series(date_trunc('month', \(first)::date), date_trunc('month', \(last)::date), interval '1 month') AS m
            )
            SELECT to_char(m.month, 'YYYY-MM-DD'),
                   COALESCE((SELECT sum(i.total) FROM invoice i WHERE i.organisation_id = \(org)::uuid AND i.currency = \(cur)
                             AND i.base_status = 'OPEN' AND i.issued_on >= m.month AND i.issued_on < m.next), 0),
                   COALESCE((SELECT sum(p.amount) FROM payment p WHERE p.organisation_id = \(org)::uuid AND p.currency = \(cur)
                             AND p.status = 'SUCCEEDED' AND p.received_on >= m.month AND p.received_on < m.next), 0),
                   COALESCE((SELECT sum(r.amount) FROM refund r WHERE r.organisation_id = \(org)::uuid AND r.currency = \(cur)
                             AND r.refunded_on >= m.month AND r.refunded_on < m.next), 0),
                   COALESCE((SELECT sum(n.amount) FROM credit_note n WHERE n.organisation_id = \(org)::uuid AND n.currency = \(cur)
                             AND n.status = 'ISSUED' AND n.created_at >= m.month::timestamp AT TIME ZONE 'UTC'
                             AND n.created_at < m.next::timestamp AT TIME ZONE 'UTC'), 0)
            FROM months m ORDER BY m.month
            """
        return .load(SingleQueryLoad(context: context, statement: Statement(sql, p.values),
                                     shape: ColumnSet(identity: monthColumns.count), list: true))
    }
}
