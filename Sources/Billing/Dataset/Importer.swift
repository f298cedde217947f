import JSON
import Schema
import Store

/// Loads a dataset in the JSON Lines format of DATASET.md: every line checked first,
/// then everything written with COPY in one transaction, then the maintained figures
/// recomputed. Any broken line stops the import with its number and nothing is stored.
public final class Importer {
    private let connection: BlockingConnection?
    private let progress: (String) -> Void

    static let modes = ["check", "cash", "credit_card", "bank_transfer", "bank_remittance", "auto_transaction", "others"]
    public static let scopes: Set<String> = ["billing:read", "refunds:write", "credit_notes:write"]
    static let keys: [String: Set<String>] = [
        "organisation": ["id", "name"],
        "api_key": ["organisation_id", "key", "scopes"],
        "customer": ["id", "organisation_id", "name", "currency", "created_at", "external_id", "email", "credit_balance"],
        "invoice": ["id", "organisation_id", "customer_id", "number", "status", "issued_on", "total", "created_at", "due_on"],
        "payment": ["id", "organisation_id", "customer_id", "mode", "status", "amount", "received_on", "created_at",
                    "bank_charges", "reference_number", "description", "applications"],
        "refund": ["id", "organisation_id", "payment_id", "amount", "refunded_on", "created_at", "mode",
                   "reference_number", "description"],
    ]

    // What the checks need to know of objects named by later lines.
    struct CustomerFacts { let organisation: String; let currency: String }
    struct InvoiceFacts { let organisation: String; let customer: String; let status: String; let total: Int64
                          let issuedOn: String; var paid: Int64 }
    struct PaymentFacts { let organisation: String; let customer: String; let status: String; let amount: Int64
                          let mode: String; let currency: String; var refunded: Int64 }

    private var organisations = Set<String>()
    /// Organisations named by this file that were already stored: only their lines can
    /// collide with stored rows on an invoice number or an external id.
    private var storedOrganisations = Set<String>()
    private var customers: [String: CustomerFacts] = [:]
    private var invoices: [String: InvoiceFacts] = [:]
    private var payments: [String: PaymentFacts] = [:]
    private var externalIDs = Set<String>()
    private var invoiceNumbers = Set<String>()
    private var lineOfID: [String: Int] = [:]
    private var apiKeys: [(line: Int, organisation: String, key: String, scopes: [String])] = []
    private var touched = Set<String>()

    private var organisationRows = CopyBuffer(table: "organisation", columns: ["id", "name"])
    private var customerRows = CopyBuffer(table: "customer", columns: [
        "id", "organisation_id", "external_id", "name", "email", "currency", "created_at", "opening_credit_balance"])
    private var invoiceRows = CopyBuffer(table: "invoice", columns: [
        "id", "organisation_id", "customer_id", "number", "base_status", "status", "currency", "issued_on", "due_on",
        "created_at", "total"])
    private var paymentRows = CopyBuffer(table: "payment", columns: [
        "id", "organisation_id", "customer_id", "mode", "status", "currency", "amount", "bank_charges", "received_on",
        "reference_number", "description", "created_at"])
    private var applicationRows = CopyBuffer(table: "payment_application", columns: [
        "organisation_id", "payment_id", "invoice_id", "amount", "payment_received_on", "invoice_issued_on"])
    private var refundRows = CopyBuffer(table: "refund", columns: [
        "id", "organisation_id", "payment_id", "amount", "currency", "mode", "refunded_on", "reference_number",
        "description", "created_at"])

    public init(connection: BlockingConnection, progress: @escaping (String) -> Void = { _ in }) {
        self.connection = connection
        self.progress = progress
    }

    /// An importer without a database, as if nothing were stored: it only checks lines
    /// (`check(line:number:)`), for the fuzz harness; it cannot `run`.
    package init() {
        connection = nil
        progress = { _ in }
    }

    public struct Summary {
        public let lines: Int
        public let counts: [(String, Int)]
    }

    /// Imports lines from `next` (which returns nil at the end of the input).
    public func run(lines next: () -> [UInt8]?) throws -> Summary {
        var lineNumber = 0
        while let line = next() {
            lineNumber += 1
            try check(line: line, number: lineNumber)
            if lineNumber % 100_000 == 0 { progress("checked \(lineNumber) lines") }
        }
        progress("checked \(lineNumber) lines; writing")
        try write()
        return Summary(lines: lineNumber, counts: [
            ("organisations", organisationRows.rows), ("api keys", apiKeys.count), ("customers", customerRows.rows),
            ("invoices", invoiceRows.rows), ("payments", paymentRows.rows),
            ("payment applications", applicationRows.rows), ("refunds", refundRows.rows),
        ])
    }

    private func newID(_ id: String, line: Int) throws(ImportFailure) {
        guard lineOfID[id] == nil else { throw ImportFailure("id \(id) was already used on line \(lineOfID[id]!)") }
        lineOfID[id] = line
    }

    private func check(_ r: DatasetRecord, line: Int) throws {
        switch r.type {
        case "organisation": try checkOrganisation(r, line: line)
        case "api_key": try checkAPIKey(r, line: line)
        case "customer": try checkCustomer(r, line: line)
        case "invoice": try checkInvoice(r, line: line)
        case "payment": try checkPayment(r, line: line)
        default: try checkRefund(r, line: line)
        }
    }

    private func checkOrganisation(_ r: DatasetRecord, line: Int) throws {
        let id = try r.uuid("id")
        try newID(id, line: line)
        organisations.insert(id)
        touched.insert(id)
        organisationRows.append([id, try r.string("name")])
    }

    /// The organisation a line names; its figures are recomputed after the import.
    private func organisation(_ r: DatasetRecord) throws -> String {
        let id = try r.uuid("organisation_id")
        if organisations.contains(id) { return id }
        if let connection, try connection.query("SELECT 1 FROM organisation WHERE id = $1::uuid", [id]).rowCount == 1 {
            organisations.insert(id)
            storedOrganisations.insert(id)
            touched.insert(id)
            return id
        }
        throw ImportFailure("organisation \(id) is not defined on an earlier line nor stored")
    }

    /// Whether a stored row of the organisation already has this value in `column` (a unique
    /// constraint would refuse the whole COPY later, without the line's number).
    private func stored(_ table: String, _ column: String, _ value: String, organisation org: String) throws -> Bool {
        guard storedOrganisations.contains(org), let connection else { return false }
        return try connection.query("SELECT 1 FROM \(table) WHERE organisation_id = $1::uuid AND \(column) = $2",
                                    [org, value]).rowCount > 0
    }

    private func checkAPIKey(_ r: DatasetRecord, line: Int) throws {
        let org = try organisation(r)
        let key = try r.string("key")
        guard APIKeyFormat.isWellFormed(key) else {
            throw ImportFailure("\"key\" must be 16 to 128 printable ASCII characters")
        }
        var scopes: [String] = []
        for item in try r.array("scopes") {
            guard let s = item.stringValue, Self.scopes.contains(s) else {
                throw ImportFailure("\"scopes\" must name only billing:read, refunds:write, credit_notes:write")
            }
            if !scopes.contains(s) { scopes.append(s) }
        }
        apiKeys.append((line, org, key, scopes))
    }

    private func checkCustomer(_ r: DatasetRecord, line: Int) throws {
        let id = try r.uuid("id")
        let org = try organisation(r)
        let currency = try r.string("currency")
        guard currency.utf8.count == 3, currency.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
            throw ImportFailure("\"currency\" must be three capital letters, got \"\(currency)\"")
        }
        let externalID = try r.optionalString("external_id")
        if let externalID {
            let usedInFile = !externalIDs.insert(org + "|" + externalID).inserted
            if try usedInFile || stored("customer", "external_id", externalID, organisation: org) {
                throw ImportFailure("external_id \"\(externalID)\" is already used in this organisation")
            }
        }
        try newID(id, line: line)
        customers[id] = CustomerFacts(organisation: org, currency: currency)
        customerRows.append([id, org, externalID, try r.string("name"), try r.optionalString("email"), currency,
                             try r.timestamp("created_at"), String(try r.optionalMoney("credit_balance") ?? 0)])
    }

    private func customer(_ id: String, organisation org: String) throws -> CustomerFacts {
        var facts = customers[id]
        if facts == nil, let connection {
            let rows = try connection.query("SELECT organisation_id::text, currency FROM customer WHERE id = $1::uuid", [id])
            if rows.rowCount == 1 {
                facts = CustomerFacts(organisation: rows.string(0, 0)!, currency: rows.string(0, 1)!)
                customers[id] = facts
            }
        }
        guard let facts else { throw ImportFailure("customer \(id) is not defined on an earlier line nor stored") }
        guard facts.organisation == org else { throw ImportFailure("customer \(id) belongs to another organisation") }
        return facts
    }

    private func checkInvoice(_ r: DatasetRecord, line: Int) throws {
        let id = try r.uuid("id")
        let org = try organisation(r)
        let customerID = try r.uuid("customer_id")
        let owner = try customer(customerID, organisation: org)
        let number = try r.string("number")
        guard !number.isEmpty else { throw ImportFailure("\"number\" must not be empty") }
        let usedInFile = !invoiceNumbers.insert(org + "|" + number).inserted
        if try usedInFile || stored("invoice", "number", number, organisation: org) {
            throw ImportFailure("invoice number \"\(number)\" is already used in this organisation")
        }
        let status = try r.choice("status", ["draft", "open", "void"])
        let issuedOn = try r.date("issued_on")
        let total = try r.money("total")
        try newID(id, line: line)
        invoices[id] = InvoiceFacts(organisation: org, customer: customerID, status: status, total: total,
                                    issuedOn: issuedOn, paid: 0)
        invoiceRows.append([id, org, customerID, number, status, status, owner.currency, issuedOn,
                            try r.optionalDate("due_on"), try r.timestamp("created_at"), String(total)])
    }

    private func invoice(_ id: String) throws -> InvoiceFacts {
        if let facts = invoices[id] { return facts }
        guard let connection else { throw ImportFailure("invoice \(id) is not defined on an earlier line nor stored") }
        let rows = try connection.query("""
            SELECT organisation_id::text, customer_id::text, base_status, total, amount_paid, to_char(issued_on, 'YYYY-MM-DD')
            FROM invoice WHERE id = $1::uuid
            """, [id])
        guard rows.rowCount == 1 else { throw ImportFailure("invoice \(id) is not defined on an earlier line nor stored") }
        let facts = InvoiceFacts(organisation: rows.string(0, 0)!, customer: rows.string(0, 1)!, status: rows.string(0, 2)!,
                                 total: Int64(rows.int(0, 3)!), issuedOn: rows.string(0, 5)!, paid: Int64(rows.int(0, 4)!))
        invoices[id] = facts
        return facts
    }

    private func checkPayment(_ r: DatasetRecord, line: Int) throws {
        let id = try r.uuid("id")
        let org = try organisation(r)
        let customerID = try r.uuid("customer_id")
        let owner = try customer(customerID, organisation: org)
        let mode = try r.choice("mode", Self.modes)
        let status = try r.choice("status", ["succeeded", "failed"])
        let amount = try r.money("amount")
        let receivedOn = try r.date("received_on")
        let applications = r.has("applications") ? try r.array("applications") : []
        if status == "FAILED" && !applications.isEmpty { throw ImportFailure("a failed payment has no applications") }
        try newID(id, line: line)
        var applied: Int64 = 0
        var seen = Set<String>()
        for (i, item) in applications.enumerated() {
            let where_ = "applications[\(i)]"
            guard case .object(let members) = item else { throw ImportFailure("\(where_) must be an object") }
            for (k, _) in members where k != "invoice_id" && k != "amount" { throw ImportFailure("unknown key \"\(k)\" in \(where_)") }
            guard let invoiceID = item["invoice_id"]?.stringValue, Scalars.isLowercaseUUID(invoiceID) else {
                throw ImportFailure("\(where_).invoice_id must be a UUID in lowercase text")
            }
            guard let share = item["amount"]?.int64Value, share > 0 else { throw ImportFailure("\(where_).amount must be an integer above 0") }
            guard seen.insert(invoiceID).inserted else { throw ImportFailure("invoice \(invoiceID) is applied twice") }
            var target = try invoice(invoiceID)
            guard target.organisation == org else { throw ImportFailure("invoice \(invoiceID) belongs to another organisation") }
            guard target.customer == customerID else { throw ImportFailure("invoice \(invoiceID) belongs to another customer") }
            guard target.status == "OPEN" else { throw ImportFailure("invoice \(invoiceID) is not open") }
            target.paid = try checkedSum(target.paid, share, "payments applied to invoice \(invoiceID)")
            guard target.paid <= target.total else {
                throw ImportFailure("payments applied to invoice \(invoiceID) would exceed its total \(target.total)")
            }
            invoices[invoiceID] = target
            applied = try checkedSum(applied, share, "the applications of payment \(id)")
            applicationRows.append([org, id, invoiceID, String(share), receivedOn, target.issuedOn])
        }
        guard applied <= amount else { throw ImportFailure("applications add up to \(applied), more than the amount \(amount)") }
        payments[id] = PaymentFacts(organisation: org, customer: customerID, status: status, amount: amount, mode: mode,
                                    currency: owner.currency, refunded: 0)
        paymentRows.append([id, org, customerID, mode, status, owner.currency, String(amount),
                            String(try r.optionalMoney("bank_charges") ?? 0), receivedOn,
                            try r.optionalString("reference_number"), try r.optionalString("description"),
                            try r.timestamp("created_at")])
    }

    private func payment(_ id: String) throws -> PaymentFacts {
        if let facts = payments[id] { return facts }
        guard let connection else { throw ImportFailure("payment \(id) is not defined on an earlier line nor stored") }
        let rows = try connection.query("""
            SELECT organisation_id::text, customer_id::text, status, amount, mode, currency, amount_refunded
            FROM payment WHERE id = $1::uuid
            """, [id])
        guard rows.rowCount == 1 else { throw ImportFailure("payment \(id) is not defined on an earlier line nor stored") }
        let facts = PaymentFacts(organisation: rows.string(0, 0)!, customer: rows.string(0, 1)!, status: rows.string(0, 2)!,
                                 amount: Int64(rows.int(0, 3)!), mode: rows.string(0, 4)!, currency: rows.string(0, 5)!,
                                 refunded: Int64(rows.int(0, 6)!))
        payments[id] = facts
        return facts
    }

    private func checkRefund(_ r: DatasetRecord, line: Int) throws {
        let id = try r.uuid("id")
        let org = try organisation(r)
        let paymentID = try r.uuid("payment_id")
        var paid = try payment(paymentID)
        guard paid.organisation == org else { throw ImportFailure("payment \(paymentID) belongs to another organisation") }
        guard paid.status == "SUCCEEDED" else { throw ImportFailure("payment \(paymentID) did not succeed") }
        let amount = try r.money("amount")
        guard amount > 0 else { throw ImportFailure("\"amount\" must be above 0") }
        paid.refunded = try checkedSum(paid.refunded, amount, "refunds of payment \(paymentID)")
        guard paid.refunded <= paid.amount else {
            throw ImportFailure("refunds of payment \(paymentID) would exceed its amount \(paid.amount)")
        }
        let mode = r.has("mode") ? try r.choice("mode", Self.modes) : paid.mode
        try newID(id, line: line)
        payments[paymentID] = paid
        refundRows.append([id, org, paymentID, String(amount), paid.currency, mode, try r.date("refunded_on"),
                           try r.optionalString("reference_number"), try r.optionalString("description"),
                           try r.timestamp("created_at")])
    }

    /// Checks one line of the file (`number` counts from 1) and keeps its rows for `write`.
    /// A broken line is an `ImportError`; other errors are the database's.
    package func check(line: [UInt8], number: Int) throws {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
        do {
            let json = try JSONParser.parse(line)
            try check(DatasetRecord(json, allowed: { Self.keys[$0] }), line: number)
        } catch let failure as ImportFailure {
            throw ImportError(line: number, reason: failure.reason)
        } catch let syntax as JSONSyntaxError {
            throw ImportError(line: number, reason: "not valid JSON: \(syntax.message) at byte \(syntax.offset + 1)")
        }
    }

    /// The rows kept so far, in COPY text format, table by table.
    package var copyData: [(table: String, bytes: [UInt8])] {
        [organisationRows, customerRows, invoiceRows, paymentRows, applicationRows, refundRows].map { ($0.table, $0.bytes) }
    }

    /// One transaction: COPY each table in dependency order, keys, then the figures.
    private func write() throws {
        guard let connection else { preconditionFailure("an importer without a database cannot write") }
        try connection.transaction {
            for buffer in [organisationRows, customerRows, invoiceRows, paymentRows, applicationRows, refundRows] where buffer.rows > 0 {
                do {
                    try connection.copy(into: buffer.table, columns: buffer.columns, data: buffer.bytes)
                } catch let error as DatabaseError {
                    throw explain(error, table: buffer.table)
                }
                progress("wrote \(buffer.rows) rows to \(buffer.table)")
            }
            for key in apiKeys {
                do {
                    try connection.query("""
                        INSERT INTO api_key (organisation_id, key_hash, scopes)
                        VALUES ($1::uuid, sha256(convert_to($2, 'UTF8')), $3::text[])
                        """, [key.organisation, key.key, "{" + key.scopes.joined(separator: ",") + "}"])
                } catch let error as DatabaseError where error.sqlState == "23505" {
                    throw ImportError(line: key.line, reason: "this API key is already stored")
                }
            }
            for org in touched.sorted() {
                try connection.query("SELECT bg_recompute_figures($1::uuid)", [org])
            }
            try connection.execute("ANALYZE")
        }
    }

    /// A constraint the database enforces (a stored id or number used again) as a line error.
    private func explain(_ error: DatabaseError, table: String) -> Error {
        guard case .server(let state, _, let detail, _) = error, state == "23505", let detail else {
            return ImportError(line: 0, reason: "the database refused the \(table) rows: \(error)")
        }
        // detail: Key (id)=(…) already exists.
        for (id, line) in lineOfID where detail.contains(id) {
            return ImportError(line: line, reason: "\(detail) (already stored)")
        }
        return ImportError(line: 0, reason: "\(table): \(detail) (already stored)")
    }
}
