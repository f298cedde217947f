import Engine
import JSON
import Store

/// One column of a type's select list: the field it serves (or the key's name) and its
/// SQL. Columns are selected plain, never formatted by PostgreSQL (`to_char`, `::text`),
/// and read in binary: how a cell is written follows from its type (`BinaryCells`).
struct Column {
    /// What a column is read for; the registry makes each field column a field's resolver.
    enum Role {
        /// A field of the table's own type.
        case field
        /// A field of another type that is the same row seen otherwise (a customer's totals).
        case fieldOf(ObjectType)
        /// A key that relations follow, never shown itself.
        case key
        /// A field of the table's own type that belongs to the audit trail, which only
        /// `billing:read` may read (RULES.md section 4: `voidedAt`).
        case auditField
    }

    let field: String
    let sql: String
    let role: Role

    init(field: String, sql: String, role: Role = .field) {
        self.field = field
        self.sql = sql
        self.role = role
    }

    var isAuditTrail: Bool {
        if case .auditField = role { return true } else { return false }
    }

    /// Whether the column is the field `field` of `type`, whose rows are of `table`.
    func isField(of type: ObjectType, in table: Table) -> Bool {
        switch role {
        case .field, .auditField: return type == table.type
        case .fieldOf(let other): return type == other
        case .key: return false
        }
    }
}

/// The columns one object type can be read with. A load reads only the columns its
/// query needs (a `ColumnSet`), always in this order, so the same query shape gives the
/// same statement text. A class: the registry's resolvers and the loads share each
/// table, which lives as long as the process.
final class Table: Sendable {
    /// The type whose objects are the rows.
    let type: ObjectType
    let from: String       // "customer c"
    let alias: String      // "c"
    let columns: [Column]
    /// The date the type's lists are ordered by, then by id (RULES.md section 2).
    let sortColumn: String  // e.g. "c.created_at"
    /// How a cursor's sort key (`BinaryCells.text`) is turned back into the sort column's type.
    let sortKeyCast: String
    let index: [String: Int]

    init(type: ObjectType, from: String, alias: String, sortColumn: String, sortKeyCast: String,
         columns: [Column]) {
        self.type = type
        self.from = from
        self.alias = alias
        self.sortColumn = sortColumn
        self.sortKeyCast = sortKeyCast
        self.columns = columns
        var index: [String: Int] = [:]
        for (i, c) in columns.enumerated() { index[c.field] = i }
        self.index = index
    }

    /// The column named `field`. Only names the registry check has found are asked for
    /// (`Registry.mismatches`, at start-up), so a miss is a mistake in the code.
    func column(_ field: String) -> Int {
        guard let i = index[field] else { preconditionFailure("the table of \(type.rawValue) has no column \(field)") }
        return i
    }

    /// The SQL of the column named `field`, for conditions on it.
    func sql(_ field: String) -> String { columns[column(field)].sql }

    static let timestampCast = "::timestamp AT TIME ZONE 'UTC'"
    static let dateCast = "::date"
}

enum Tables {
    static let customer = Table(
        type: .customer, from: "customer c", alias: "c", sortColumn: "c.created_at",
        sortKeyCast: Table.timestampCast,
        columns: [
            Column(field: "id", sql: "c.id"),
            Column(field: "externalId", sql: "c.external_id"),
            Column(field: "name", sql: "c.name"),
            Column(field: "email", sql: "c.email"),
            Column(field: "currency", sql: "c.currency"),
            Column(field: "createdAt", sql: "c.created_at"),
            Column(field: "creditBalance", sql: "c.credit_balance"),
            Column(field: "invoiced", sql: "c.total_invoiced", role: .fieldOf(.customerTotals)),
            Column(field: "paid", sql: "c.total_paid", role: .fieldOf(.customerTotals)),
            Column(field: "refunded", sql: "c.total_refunded", role: .fieldOf(.customerTotals)),
            Column(field: "credited", sql: "c.total_credited", role: .fieldOf(.customerTotals)),
            Column(field: "outstanding", sql: "c.total_outstanding", role: .fieldOf(.customerTotals)),
        ])

    static let invoice = Table(
        type: .invoice, from: "invoice i", alias: "i", sortColumn: "i.issued_on",
        sortKeyCast: Table.dateCast,
        columns: [
            Column(field: "id", sql: "i.id"),
            Column(field: "number", sql: "i.number"),
            Column(field: "customerId", sql: "i.customer_id", role: .key),
            Column(field: "status", sql: "i.status"),
            Column(field: "currency", sql: "i.currency"),
            Column(field: "issuedOn", sql: "i.issued_on"),
            Column(field: "dueOn", sql: "i.due_on"),
            Column(field: "createdAt", sql: "i.created_at"),
            Column(field: "total", sql: "i.total"),
            Column(field: "amountPaid", sql: "i.amount_paid"),
            Column(field: "amountCredited", sql: "i.amount_credited"),
            Column(field: "amountReturned", sql: "i.amount_returned"),
            Column(field: "balance", sql: "i.balance"),
        ])

    static let payment = Table(
        type: .payment, from: "payment p", alias: "p", sortColumn: "p.received_on",
        sortKeyCast: Table.dateCast,
        columns: [
            Column(field: "id", sql: "p.id"),
            Column(field: "customerId", sql: "p.customer_id", role: .key),
            Column(field: "mode", sql: "p.mode"),
            Column(field: "status", sql: "p.status"),
            Column(field: "currency", sql: "p.currency"),
            Column(field: "amount", sql: "p.amount"),
            Column(field: "bankCharges", sql: "p.bank_charges"),
            Column(field: "receivedOn", sql: "p.received_on"),
            Column(field: "referenceNumber", sql: "p.reference_number"),
            Column(field: "description", sql: "p.description"),
            Column(field: "createdAt", sql: "p.created_at"),
            Column(field: "amountRefunded", sql: "p.amount_refunded"),
            Column(field: "refundableAmount",
                   sql: "CASE WHEN p.status = 'SUCCEEDED' THEN p.amount - p.amount_refunded ELSE 0 END"),
            Column(field: "amountUnapplied", sql: "p.amount - p.amount_applied"),
        ])

    static let application = Table(
        type: .paymentApplication, from: "payment_application a", alias: "a", sortColumn: "a.payment_received_on",
        sortKeyCast: Table.dateCast,
        columns: [
            Column(field: "paymentId", sql: "a.payment_id", role: .key),
            Column(field: "invoiceId", sql: "a.invoice_id", role: .key),
            Column(field: "amount", sql: "a.amount"),
        ])

    static let refund = Table(
        type: .refund, from: "refund r", alias: "r", sortColumn: "r.refunded_on",
        sortKeyCast: Table.dateCast,
        columns: [
            Column(field: "id", sql: "r.id"),
            Column(field: "paymentId", sql: "r.payment_id", role: .key),
            Column(field: "creditNoteId", sql: "r.credit_note_id", role: .key),
            Column(field: "amount", sql: "r.amount"),
            Column(field: "currency", sql: "r.currency"),
            Column(field: "mode", sql: "r.mode"),
            Column(field: "refundedOn", sql: "r.refunded_on"),
            Column(field: "referenceNumber", sql: "r.reference_number"),
            Column(field: "description", sql: "r.description"),
            Column(field: "createdAt", sql: "r.created_at"),
            Column(field: "createdByKey", sql: "r.created_by_key", role: .key),
        ])

    static let creditNote = Table(
        type: .creditNote, from: "credit_note n", alias: "n", sortColumn: "n.created_at",
        sortKeyCast: Table.timestampCast,
        columns: [
            Column(field: "id", sql: "n.id"),
            Column(field: "number", sql: "n.number"),
            Column(field: "invoiceId", sql: "n.invoice_id", role: .key),
            Column(field: "customerId", sql: "n.customer_id", role: .key),
            Column(field: "amount", sql: "n.amount"),
            Column(field: "currency", sql: "n.currency"),
            Column(field: "reason", sql: "n.reason"),
            Column(field: "status", sql: "n.status"),
            Column(field: "repaymentMethod", sql: "n.repayment_method"),
            Column(field: "amountAdjusted", sql: "n.amount_adjusted"),
            Column(field: "creditsReturned", sql: "n.credits_returned"),
            Column(field: "amountRefunded", sql: "n.amount_refunded"),
            Column(field: "amountRepaidExternally", sql: "n.amount_repaid_externally"),
            Column(field: "customData", sql: "n.custom_data"),
            Column(field: "createdAt", sql: "n.created_at"),
            Column(field: "createdByKey", sql: "n.created_by_key", role: .key),
            Column(field: "voidedAt", sql: "n.voided_at", role: .auditField),
            Column(field: "voidedByKey", sql: "n.voided_by_key", role: .key),
        ])

    /// An API key as the audit trail shows it (RULES.md section 4): its id and label, never
    /// the key. (Not `k`: loads by id name their list of ids `k`.)
    static let apiKey = Table(
        type: .apiKeyRef, from: "api_key ak", alias: "ak", sortColumn: "ak.created_at",
        sortKeyCast: Table.timestampCast,
        columns: [
            Column(field: "id", sql: "ak.id"),
            Column(field: "label", sql: "ak.label"),
        ])
}

/// Which columns of a table one statement reads, and where each lands in its rows:
/// the select list is the chosen columns in table order, then, for a page that gives
/// cursors, the sort key, unless a chosen column already is it (an invoice's `issuedOn`):
/// a column read twice is a cell more per row for PostgreSQL, libpq and the server.
final class ColumnSet: Sendable {
    let table: Table?
    /// Result column of each table column, or -1 when it is not read.
    let position: [Int]
    let selectList: String
    /// Result column of the sort key, or -1 when it is not read.
    let sortKeyPosition: Int

    init(_ table: Table, columns: Set<Int>, sortKey: Bool = false) {
        self.table = table
        let chosen = columns.sorted()
        var position = Array(repeating: -1, count: table.columns.count)
        for (i, c) in chosen.enumerated() { position[c] = i }
        self.position = position
        let chosenSortColumn = table.columns.firstIndex { $0.sql == table.sortColumn }.map { position[$0] } ?? -1
        let readsSortKeyAgain = sortKey && chosenSortColumn < 0
        selectList = (chosen.map { table.columns[$0].sql } + (readsSortKeyAgain ? [table.sortColumn] : [])).joined(separator: ", ")
        sortKeyPosition = !sortKey ? -1 : readsSortKeyAgain ? chosen.count : chosenSortColumn
    }

    /// Rows that are not of a table (reports, mutation results): column i is column i.
    init(identity count: Int) {
        table = nil
        position = Array(0..<count)
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

    /// Writes a run of cells as JSON straight from libpq's memory, stopping at a NULL (or
    /// a column not read), which the response writer writes. Rows read in binary are
    /// written by their column's type; text rows (reports, mutation results) as the
    /// field's `kind` says.
    override func writeCells(_ ids: UnsafeBufferPointer<Int>, from first: Int, _ fields: UnsafeBufferPointer<FieldWrite>,
                             to w: inout JSONWriter) -> Int {
        var next = first
        while next < ids.count {
            let cell = fields[ids[next]]
            guard cell.column >= 0 else { break }
            let i = shape.position[cell.column]
            guard i >= 0, let bytes = rows.bytes(row, i) else { break }
            if rows.isBinary {
                BinaryCells.write(bytes, type: rows.type(i), key: cell.key, to: &w)
            } else {
                w.append(cell.key)
                switch cell.kind {
                case .string: w.string(utf8: bytes)
                case .raw: w.append(bytes)
                }
            }
            next += 1
        }
        return next
    }
}
