import Engine
import JSON
import Schema
import Store

/// One of the five root connections: the table it pages through, in the table's order
/// (its sort column, then id; RULES.md section 2), and the filters of its `filter` argument.
struct RootConnection {
    let table: Table
    let filters: [Filter]
}

/// A filter of a connection or a list (RULES.md section 2): the argument (or field of the
/// `filter` input) it reads, and the condition it adds on a column of the table, named by
/// its field. Values are always bound as parameters.
struct Filter {
    enum Test {
        /// The column is the id given; a value that is not a lowercase UUID matches nothing.
        case id(String)
        case equals(String)
        /// Dates: on or after, on or before, strictly before the date given.
        case onOrAfter(String), onOrBefore(String), before(String)
        /// The column is one of the values of a list.
        case anyOf(String)
        /// A case-insensitive substring of the column.
        case contains(String)
        /// Payments applied to the invoice given (the column is the payment's id).
        case appliedToInvoice(String)
        /// true: the column (refunded amount) is above 0; false: it is 0.
        case above0(String)

        var column: String {
            switch self {
            case .id(let c), .equals(let c), .onOrAfter(let c), .onOrBefore(let c), .before(let c), .anyOf(let c),
                 .contains(let c), .appliedToInvoice(let c), .above0(let c): return c
            }
        }
    }

    let argument: String
    let test: Test

    init(_ argument: String, _ test: Test) {
        self.argument = argument
        self.test = test
    }
}

/// The filters of the root connections (the fields of their `filter` inputs) and of the
/// lists that take some, in the order their conditions are written.
enum Filters {
    static let customers = [Filter("email", .equals("email")), Filter("externalId", .equals("externalId")),
                            Filter("currency", .equals("currency")), Filter("nameContains", .contains("name"))]
    static let invoices = [Filter("customerId", .id("customerId")), Filter("currency", .equals("currency"))] + issued
        + [Filter("dueBefore", .before("dueOn")), invoiceStatus]
    static let invoicesOfCustomer = issued + [invoiceStatus]
    private static let issued = [Filter("issuedFrom", .onOrAfter("issuedOn")), Filter("issuedTo", .onOrBefore("issuedOn"))]
    private static let invoiceStatus = Filter("status", .anyOf("status"))
    static let payments = [Filter("customerId", .id("customerId")), paymentStatus,
                           Filter("receivedFrom", .onOrAfter("receivedOn")), Filter("receivedTo", .onOrBefore("receivedOn")),
                           Filter("invoiceId", .appliedToInvoice("id")), Filter("hasRefunds", .above0("amountRefunded"))]
    static let paymentsOfCustomer = [paymentStatus]
    private static let paymentStatus = Filter("status", .equals("status"))
    static let refunds = [Filter("paymentId", .id("paymentId")), Filter("creditNoteId", .id("creditNoteId")),
                          Filter("refundedFrom", .onOrAfter("refundedOn")), Filter("refundedTo", .onOrBefore("refundedOn"))]
    static let creditNotes = [Filter("invoiceId", .id("invoiceId")), Filter("customerId", .id("customerId")),
                              Filter("status", .equals("status"))]
}

/// The root connections' pages, and the conditions of filters.
enum Connections {
    typealias Condition = (inout Parameters) -> String

    static func load(_ field: PlannedField, _ connection: RootConnection, context: RequestContext) throws(GraphQLError) -> ConnectionLoad {
        let table = connection.table
        let filter = field.argument("filter")
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
                              newestFirst: newestFirst, filterFingerprint: fingerprint,
                              filters: conditions(connection.filters, on: table) { filter?[$0] },
                              wantsTotal: field.selects("totalCount"))
    }

    /// The conditions of the filters given a value by `value` (by argument name), in order.
    static func conditions(_ filters: [Filter], on table: Table, _ value: (String) -> JSONValue?) -> [Condition] {
        filters.compactMap { filter in value(filter.argument).flatMap { condition(filter.test, table.sql(filter.test.column), $0) } }
    }

    /// The condition of one filter on `column` (its SQL); nil for a value that asks for none (null).
    private static func condition(_ test: Filter.Test, _ column: String, _ value: JSONValue) -> Condition? {
        let text = value.stringValue
        switch test {
        case .id:
            return text.map { id in Scalars.isLowercaseUUID(id) ? { "\(column) = \($0.bind(id))::uuid" } : { _ in "false" } }
        case .equals: return text.map { text in { "\(column) = \($0.bind(text))" } }
        case .onOrAfter: return text.map { day in { "\(column) >= \($0.bind(day))::date" } }
        case .onOrBefore: return text.map { day in { "\(column) <= \($0.bind(day))::date" } }
        case .before: return text.map { day in { "\(column) < \($0.bind(day))::date" } }
        case .contains:
            // strpos, not LIKE: %, _ and \ are ordinary characters. Case is ignored across
            // Unicode (RULES.md section 2) as Unicode's case folding does, which PostgreSQL 15
            // lacks: ICU's lower() then upper(), so that ß and SS, σ and ς, the Kelvin sign
            // and K all meet; lower() alone keeps ß and a word's final ς apart from the rest.
            return text.map { needle in
                { "strpos(upper(lower(\(column) COLLATE \"und-x-icu\")), upper(lower(\($0.bind(needle)) COLLATE \"und-x-icu\"))) > 0" }
            }
        case .appliedToInvoice:
            return text.map { invoice in
                guard Scalars.isLowercaseUUID(invoice) else { return { _ in "false" } }
                return { "EXISTS (SELECT 1 FROM payment_application a WHERE a.payment_id = \(column) AND a.invoice_id = \($0.bind(invoice))::uuid)" }
            }
        case .anyOf:
            guard case .array(let items) = value else { return nil }
            let names = items.compactMap(\.stringValue)
            return { "\(column) = ANY(\($0.bind(Parameters.arrayLiteral(names)))::text[])" }
        case .above0:
            guard case .bool(let above) = value else { return nil }
            // Refund amounts are above 0, so "has a refund" is "has refunded something".
            return { _ in above ? "\(column) > 0" : "\(column) = 0" }
        }
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
}

/// The reports, `arAging` and `monthlySummary`: one aggregate statement each, whose
/// select list is the report type's figures in this order (`Registry` makes them its fields).
enum Report: CaseIterable {
    case aging, monthlySummary

    struct Figure {
        let name: String
        /// Text (dates, the currency) is written as a JSON string, sums as they are.
        let kind: CellKind
    }

    var figures: [Figure] {
        switch self {
        case .aging:
            return [Figure(name: "asOf", kind: .string), Figure(name: "currency", kind: .string)]
                + ["current", "days1To30", "days31To60", "days61To90", "over90", "total"].map { Figure(name: $0, kind: .raw) }
        case .monthlySummary:
            return [Figure(name: "month", kind: .string)] + ["invoiced", "received", "refunded", "credited"].map { Figure(name: $0, kind: .raw) }
        }
    }

    /// monthlySummary answers a row per month, aging one row.
    var isList: Bool {
        switch self {
        case .aging: return false
        case .monthlySummary: return true
        }
    }

    func resolve(_ field: PlannedField, context: RequestContext) throws(GraphQLError) -> Resolution {
        switch self {
        case .aging: return Self.agingReport(field, context: context)
        case .monthlySummary: return try Self.monthlySummaries(field, context: context)
        }
    }
}

extension Report {
    private static func agingReport(_ field: PlannedField, context: RequestContext) -> Resolution {
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
                                     shape: ColumnSet(identity: Report.aging.figures.count), list: false))
    }

    private static func monthlySummaries(_ field: PlannedField, context: RequestContext) throws(GraphQLError) -> Resolution {
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
                                     shape: ColumnSet(identity: Report.monthlySummary.figures.count), list: true))
    }
}
