import Engine
import JSON
import Store

/// How a column's text becomes a JSON value. Columns are selected plain, never
/// formatted by PostgreSQL (`to_char`, `::text`): the text output of `uuid`, `date` (with
/// `DateStyle` ISO, which every connection sets), integers and `jsonb` is already the
/// contract's, and a timestamp's needs only a `T` and a `Z` (RULES.md section 1), which
/// the writer adds. Formatting every row inside PostgreSQL cost it about a third more
/// time on the dashboard's invoices.
enum ColumnKind {
    case string, int, json
    /// A `timestamp` (UTC) as PostgreSQL prints it, `YYYY-MM-DD HH:MM:SS[.ffffff]`,
    /// written as the contract's `DateTime`, `YYYY-MM-DDTHH:MM:SSZ`.
    case timestamp

    /// Integers and `JSON` values are already JSON text; strings are quoted and escaped.
    var cell: CellKind { self == .string || self == .timestamp ? .string : .raw }
}

/// One column of a type's select list: the field it serves (or an internal name) and its SQL.
struct Column {
    let field: String
    let sql: String
    let kind: ColumnKind
}

/// The columns one object type can be read with. A load reads only the columns its
/// query needs (a `ColumnSet`), always in this order, so the same query shape gives the
/// same statement text.
struct Table {
    let typeName: String
    let from: String       // "customer c"
    let alias: String      // "c"
    let columns: [Column]
    /// The date the type's lists are ordered by, then by id (RULES.md section 2).
    let sortColumn: String  // e.g. "c.created_at"
    /// The sort key as cursors carry it (UTC for timestamps), and how to turn a cursor's
    /// text back into it.
    let sortKeyText: String
    let sortKeyCast: String
    let index: [String: Int]

    init(typeName: String, from: String, alias: String, sortColumn: String, sortKeyText: String, sortKeyCast: String,
         columns: [Column]) {
        self.typeName = typeName
        self.from = from
        self.alias = alias
        self.sortColumn = sortColumn
        self.sortKeyText = sortKeyText
        self.sortKeyCast = sortKeyCast
        self.columns = columns
        var index: [String: Int] = [:]
        for (i, c) in columns.enumerated() { index[c.field] = i }
        self.index = index
    }

    func column(_ field: String) -> Int {
        guard let i = index[field] else { preconditionFailure("\(typeName) has no column for \(field)") }
        return i
    }

    /// A `timestamptz` column in UTC, whatever the session's time zone.
    static func utc(_ sql: String) -> String { "(\(sql) AT TIME ZONE 'UTC')" }

    static let timestampCast = "::timestamp AT TIME ZONE 'UTC'"
    static let dateCast = "::date"
}

enum Tables {
    static let customer = Table(
        typeName: "Customer", from: "customer c", alias: "c", sortColumn: "c.created_at",
        sortKeyText: Table.utc("c.created_at"), sortKeyCast: Table.timestampCast,
        columns: [
            Column(field: "id", sql: "c.id", kind: .string),
            Column(field: "externalId", sql: "c.external_id", kind: .string),
            Column(field: "name", sql: "c.name", kind: .string),
            Column(field: "email", sql: "c.email", kind: .string),
            Column(field: "currency", sql: "c.currency", kind: .string),
            Column(field: "createdAt", sql: Table.utc("c.created_at"), kind: .timestamp),
            Column(field: "creditBalance", sql: "c.credit_balance", kind: .int),
            Column(field: "invoiced", sql: "c.total_invoiced", kind: .int),
            Column(field: "paid", sql: "c.total_paid", kind: .int),
            Column(field: "refunded", sql: "c.total_refunded", kind: .int),
            Column(field: "credited", sql: "c.total_credited", kind: .int),
            Column(field: "outstanding", sql: "c.total_outstanding", kind: .int),
        ])

    static let invoice = Table(
        typeName: "Invoice", from: "invoice i", alias: "i", sortColumn: "i.issued_on",
        sortKeyText: "i.issued_on", sortKeyCast: Table.dateCast,
        columns: [
            Column(field: "id", sql: "i.id", kind: .string),
            Column(field: "number", sql: "i.number", kind: .string),
            Column(field: "customerId", sql: "i.customer_id", kind: .string),
            Column(field: "status", sql: "i.status", kind: .string),
            Column(field: "currency", sql: "i.currency", kind: .string),
            Column(field: "issuedOn", sql: "i.issued_on", kind: .string),
            Column(field: "dueOn", sql: "i.due_on", kind: .string),
            Column(field: "createdAt", sql: Table.utc("i.created_at"), kind: .timestamp),
            Column(field: "total", sql: "i.total", kind: .int),
            Column(field: "amountPaid", sql: "i.amount_paid", kind: .int),
            Column(field: "amountCredited", sql: "i.amount_credited", kind: .int),
            Column(field: "amountReturned", sql: "i.amount_returned", kind: .int),
            Column(field: "balance", sql: "i.balance", kind: .int),
        ])

    static let payment = Table(
        typeName: "Payment", from: "payment p", alias: "p", sortColumn: "p.received_on",
        sortKeyText: "p.received_on", sortKeyCast: Table.dateCast,
        columns: [
            Column(field: "id", sql: "p.id", kind: .string),
            Column(field: "customerId", sql: "p.customer_id", kind: .string),
            Column(field: "mode", sql: "p.mode", kind: .string),
            Column(field: "status", sql: "p.status", kind: .string),
            Column(field: "currency", sql: "p.currency", kind: .string),
            Column(field: "amount", sql: "p.amount", kind: .int),
            Column(field: "bankCharges", sql: "p.bank_charges", kind: .int),
            Column(field: "receivedOn", sql: "p.received_on", kind: .string),
            Column(field: "referenceNumber", sql: "p.reference_number", kind: .string),
            Column(field: "description", sql: "p.description", kind: .string),
            Column(field: "createdAt", sql: Table.utc("p.created_at"), kind: .timestamp),
            Column(field: "amountRefunded", sql: "p.amount_refunded", kind: .int),
            Column(field: "refundableAmount",
                   sql: "CASE WHEN p.status = 'SUCCEEDED' THEN p.amount - p.amount_refunded ELSE 0 END", kind: .int),
            Column(field: "amountUnapplied", sql: "p.amount - p.amount_applied", kind: .int),
        ])

    static let application = Table(
        typeName: "PaymentApplication", from: "payment_application a", alias: "a", sortColumn: "a.payment_received_on",
        sortKeyText: "a.payment_received_on", sortKeyCast: Table.dateCast,
        columns: [
            Column(field: "paymentId", sql: "a.payment_id", kind: .string),
            Column(field: "invoiceId", sql: "a.invoice_id", kind: .string),
            Column(field: "amount", sql: "a.amount", kind: .int),
        ])

    static let refund = Table(
        typeName: "Refund", from: "refund r", alias: "r", sortColumn: "r.refunded_on",
        sortKeyText: "r.refunded_on", sortKeyCast: Table.dateCast,
        columns: [
            Column(field: "id", sql: "r.id", kind: .string),
            Column(field: "paymentId", sql: "r.payment_id", kind: .string),
            Column(field: "creditNoteId", sql: "r.credit_note_id", kind: .string),
            Column(field: "amount", sql: "r.amount", kind: .int),
            Column(field: "currency", sql: "r.currency", kind: .string),
            Column(field: "mode", sql: "r.mode", kind: .string),
            Column(field: "refundedOn", sql: "r.refunded_on", kind: .string),
            Column(field: "referenceNumber", sql: "r.reference_number", kind: .string),
            Column(field: "description", sql: "r.description", kind: .string),
            Column(field: "createdAt", sql: Table.utc("r.created_at"), kind: .timestamp),
            Column(field: "createdByKey", sql: "r.created_by_key", kind: .string),
        ])

    static let creditNote = Table(
        typeName: "CreditNote", from: "credit_note n", alias: "n", sortColumn: "n.created_at",
        sortKeyText: Table.utc("n.created_at"), sortKeyCast: Table.timestampCast,
        columns: [
            Column(field: "id", sql: "n.id", kind: .string),
            Column(field: "number", sql: "n.number", kind: .string),
            Column(field: "invoiceId", sql: "n.invoice_id", kind: .string),
            Column(field: "customerId", sql: "n.customer_id", kind: .string),
            Column(field: "amount", sql: "n.amount", kind: .int),
            Column(field: "currency", sql: "n.currency", kind: .string),
            Column(field: "reason", sql: "n.reason", kind: .string),
            Column(field: "status", sql: "n.status", kind: .string),
            Column(field: "repaymentMethod", sql: "n.repayment_method", kind: .string),
            Column(field: "amountAdjusted", sql: "n.amount_adjusted", kind: .int),
            Column(field: "creditsReturned", sql: "n.credits_returned", kind: .int),
            Column(field: "amountRefunded", sql: "n.amount_refunded", kind: .int),
            Column(field: "amountRepaidExternally", sql: "n.amount_repaid_externally", kind: .int),
            Column(field: "customData", sql: "n.custom_data", kind: .json),
            Column(field: "createdAt", sql: Table.utc("n.created_at"), kind: .timestamp),
            Column(field: "createdByKey", sql: "n.created_by_key", kind: .string),
            Column(field: "voidedAt", sql: Table.utc("n.voided_at"), kind: .timestamp),
            Column(field: "voidedByKey", sql: "n.voided_by_key", kind: .string),
        ])

    /// An API key as the audit trail shows it (RULES.md section 4): its id and label, never
    /// the key. (Not `k`: loads by id name their list of ids `k`.)
    static let apiKey = Table(
        typeName: "ApiKeyRef", from: "api_key ak", alias: "ak", sortColumn: "ak.created_at",
        sortKeyText: Table.utc("ak.created_at"), sortKeyCast: Table.timestampCast,
        columns: [
            Column(field: "id", sql: "ak.id", kind: .string),
            Column(field: "label", sql: "ak.label", kind: .string),
        ])

    static func table(for typeName: String) -> Table? {
        switch typeName {
        case "Customer", "CustomerTotals": return customer
        case "Invoice": return invoice
        case "Payment": return payment
        case "PaymentApplication": return application
        case "Refund": return refund
        case "CreditNote": return creditNote
        case "ApiKeyRef": return apiKey
        default: return nil
        }
    }
}

/// Which columns of a table one statement reads, and where each lands in its rows:
/// the select list is the chosen columns in table order, then, for a page that gives
/// cursors, the sort key.
final class ColumnSet {
    let table: Table?
    /// Result column of each table column, or -1 when it is not read.
    let position: [Int]
    /// Whether each table column is a timestamp, which is written reformatted.
    let isTimestamp: [Bool]
    let selectList: String
    /// Result column of the sort key, or -1 when it is not read.
    let sortKeyPosition: Int

    init(_ table: Table, columns: Set<Int>, sortKey: Bool = false) {
        self.table = table
        let chosen = columns.sorted()
        var position = Array(repeating: -1, count: table.columns.count)
        for (i, c) in chosen.enumerated() { position[c] = i }
        self.position = position
        isTimestamp = table.columns.map { $0.kind == .timestamp }
        selectList = (chosen.map { table.columns[$0].sql } + (sortKey ? [table.sortKeyText] : [])).joined(separator: ", ")
        sortKeyPosition = sortKey ? chosen.count : -1
    }

    /// Rows that are not of a table (reports, mutation results): column i is column i.
    init(identity count: Int) {
        table = nil
        position = Array(0..<count)
        isTimestamp = Array(repeating: false, count: count)
        selectList = ""
        sortKeyPosition = -1
    }
}

/// An object that is one row of a result set.
final class RowNode: Node {
    let rows: ResultSet
    let row: Int
    let shape: ColumnSet

    init(_ rows: ResultSet, _ row: Int, _ shape: ColumnSet) {
        self.rows = rows
        self.row = row
        self.shape = shape
    }

    /// The bytes of a table column, or nil when it is NULL or was not read.
    func withBytes<T>(_ column: Int, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T? {
        let i = shape.position[column]
        return i < 0 ? nil : rows.withBytes(row, i, body)
    }

    /// Writes a cell as JSON straight from libpq's memory; false (nothing written) for NULL.
    override func writeCell(_ column: Int, _ kind: CellKind, to w: inout JSONWriter) -> Bool {
        let i = shape.position[column]
        guard i >= 0, !rows.isNull(row, i) else { return false }
        let isTimestamp = shape.isTimestamp[column]
        _ = rows.withBytes(row, i) { bytes in
            switch kind {
            case .string where isTimestamp: Timestamps.writeDateTime(bytes, to: &w)
            case .string: w.string(utf8: bytes)
            case .raw: w.bytes.append(contentsOf: bytes)
            }
        }
        return true
    }
}

/// PostgreSQL's text for a `timestamp` (UTC, `DateStyle` ISO) as the contract writes it.
enum Timestamps {
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` as `YYYY-MM-DDTHH:MM:SSZ` (RULES.md section 1: a
    /// `DateTime` is given to the second; the fraction is cut, as `to_char` did). Text
    /// of another shape (a year past 9999) is written as it is.
    static func writeDateTime(_ text: UnsafeBufferPointer<UInt8>, to w: inout JSONWriter) {
        guard text.count >= 19, text[10] == UInt8(ascii: " ") else { return w.string(utf8: text) }
        w.bytes.append(UInt8(ascii: "\""))
        w.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: text[0..<10]))
        w.bytes.append(UInt8(ascii: "T"))
        w.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: text[11..<19]))
        w.bytes.append(UInt8(ascii: "Z"))
        w.bytes.append(UInt8(ascii: "\""))
    }

    /// `YYYY-MM-DD HH:MM:SS[.f...]` with exactly six fraction digits: the form cursors
    /// carry, so that one instant always gives the same cursor.
    static func precise(_ text: String) -> String {
        let parts = text.split(separator: ".", maxSplits: 1)
        let fraction = parts.count == 2 ? String(parts[1].prefix(6)) : ""
        return parts[0] + "." + fraction + String(repeating: "0", count: 6 - fraction.count)
    }
}
