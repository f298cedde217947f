import JSON
import Schema
import Store

/// Loads a dataset in the JSON Lines format of DATASET.md in one transaction, streaming:
/// each line is checked on its own as it is read (JSON, keys, types, formats, its own
/// sums) and COPYed into the staging table (`Staging`) a piece at a time, so memory stays
/// flat whatever the file's size; the rules across lines are then checked in SQL and the
/// rows moved into the store with their figures. Any broken line stops the import with
/// its number and nothing is stored.
public final class Importer {
    private let connection: BlockingConnection?
    private let progress: (String) -> Void

    static let modes = ["check", "cash", "credit_card", "bank_transfer", "bank_remittance", "auto_transaction", "others"]
    /// The keys each type may have; searched, not hashed (`DatasetRecord`).
    static let keys: [String: [String]] = [
        "organisation": ["id", "name"],
        "api_key": ["organisation_id", "key", "scopes"],
        "customer": ["id", "organisation_id", "name", "currency", "created_at", "external_id", "email", "credit_balance"],
        "invoice": ["id", "organisation_id", "customer_id", "number", "status", "issued_on", "total", "created_at", "due_on"],
        "payment": ["id", "organisation_id", "customer_id", "mode", "status", "amount", "received_on", "created_at",
                    "bank_charges", "reference_number", "description", "applications"],
        "refund": ["id", "organisation_id", "payment_id", "amount", "refunded_on", "created_at", "mode",
                   "reference_number", "description"],
    ]

    /// The staged rows not yet sent (all of them for an importer without a database).
    private var staged = CopyBuffer(table: Staging.table, columns: Staging.columns)
    /// Rows staged, by kind (an ASCII letter: `Staging`); an array, so that counting a
    /// row hashes nothing.
    private var counts = [Int](repeating: 0, count: 128)
    /// The fast way for common lines (`LineScanner`); nil only in tests of the general way.
    private var scanner: LineScanner? = LineScanner()
    /// Lines the scanner took (the rest took the general way).
    package private(set) var scannedLines = 0
    /// Sent to the database whenever this much is staged.
    private static let piece = 1 << 20

    public init(connection: BlockingConnection, progress: @escaping (String) -> Void = { _ in }) {
        self.connection = connection
        self.progress = progress
    }

    /// An importer without a database, as if nothing were stored: it only checks lines
    /// (`check(line:number:)`), for the fuzz harness and the tests, which compare it with
    /// one that never `scans` (every line the general way); it cannot `run`.
    package init(scans: Bool = true) {
        connection = nil
        progress = { _ in }
        scanner = scans ? LineScanner() : nil
    }

    public struct Summary {
        public let lines: Int
        public let counts: [(String, Int)]
    }

    /// Imports lines from `next` (which returns nil at the end of the input), in one
    /// transaction: committed when every line is good, else rolled back.
    public func run(lines next: () -> [UInt8]?) throws -> Summary {
        guard let connection else { preconditionFailure("an importer without a database cannot run") }
        return try connection.transaction {
            try connection.execute(Staging.isolation)
            try connection.execute(Staging.buffers)
            try connection.execute(Staging.settings)
            try connection.execute(Staging.create)
            try connection.copyBegin(into: Staging.table, columns: Staging.columns.map(\.name))
            let lines: Int
            do {
                lines = try stream(next, to: connection)
            } catch let broken as ImportError {
                // A line broke a rule of its own: a rule across the lines before it may have
                // been broken earlier, and the first broken line is the one to report.
                try endCopy(connection)
                try lock(try organisations(connection), connection)
                try checkAcrossLines(connection)
                throw broken
            }
            try endCopy(connection)
            let organisations = try organisations(connection)
            try lock(organisations, connection)
            progress("read \(lines) lines; checking the rules across lines")
            try checkAcrossLines(connection)
            try move(connection, recomputing: organisations.filter { !$0.defined }.map(\.id))
            return Summary(lines: lines, counts: [
                ("organisations", staged("o")), ("api keys", staged("k")), ("customers", staged("c")),
                ("invoices", staged("i")), ("payments", staged("p")), ("payment applications", staged("a")),
                ("refunds", staged("r")),
            ])
        }
    }

    /// Checks and stages every line; the number of lines.
    private func stream(_ next: () -> [UInt8]?, to connection: BlockingConnection) throws -> Int {
        var lineNumber = 0
        var started = ContinuousClock.now
        while let line = next() {
            lineNumber += 1
            try check(line: line, number: lineNumber)
            if staged.bytes.count >= Self.piece { try sendStaged(to: connection) }
            if lineNumber % 1_000_000 == 0 {
                let seconds = (ContinuousClock.now - started) / .seconds(1)
                progress("read \(lineNumber) lines (\(Int(1_000_000 / max(seconds, 0.001))) lines/s)")
                started = ContinuousClock.now
            }
        }
        return lineNumber
    }

    private func sendStaged(to connection: BlockingConnection) throws {
        try connection.copySend(staged.bytes)
        staged.removeBytes()
    }

    /// Sends the last rows and the trailer, and waits for the COPY's verdict.
    private func endCopy(_ connection: BlockingConnection) throws {
        staged.end()
        try sendStaged(to: connection)
        try connection.copyEnd()
    }

    /// An organisation the file names (`Staging.organisations`).
    private struct Named {
        let id: String
        let key: Int32
        /// An `organisation` line of the file makes it; otherwise it was stored before.
        let defined: Bool
    }

    /// Called once, before the rules across lines, which read its table.
    private func organisations(_ connection: BlockingConnection) throws -> [Named] {
        try connection.execute(Staging.organisationTable)
        let rows = try connection.query(Staging.organisations)
        return (0..<rows.rowCount).compactMap { row in
            guard let id = rows.string(row, 0), let key = rows.string(row, 1).flatMap({ Int32($0) }) else { return nil }
            return Named(id: id, key: key, defined: rows.string(row, 2) == "t")
        }
    }

    /// Waits until no other import holds an organisation the file names, and holds them
    /// until this import's transaction ends (`Staging.lockOrganisation`). The keys are taken
    /// in their order, the one every import follows, so two imports never wait in a circle
    /// (two organisations may share a key).
    private func lock(_ organisations: [Named], _ connection: BlockingConnection) throws {
        for key in Set(organisations.map(\.key)).sorted() {
            if try connection.query(Staging.tryLockOrganisation, [String(key)]).string(0, 0) != "t" {
                progress("waiting for another import into an organisation of this file to end")
                try connection.query(Staging.lockOrganisation, [String(key)])
            }
        }
    }

    /// Throws the first line that breaks a rule across lines, if one does.
    private func checkAcrossLines(_ connection: BlockingConnection) throws {
        try connection.execute("ANALYZE \(Staging.table)")
        let broken = try connection.query(Staging.firstBrokenLine)
        if broken.rowCount == 1, let line = broken.int(0, 0), let reason = broken.string(0, 1) {
            throw ImportError(line: line, reason: reason)
        }
    }

    /// Moves the staged rows into the store with their figures, then recomputes those of
    /// the organisations that were already stored, `recomputing` (RULES.md section 3).
    private func move(_ connection: BlockingConnection, recomputing stored: [String]) throws {
        try connection.execute(Staging.sums)
        // The writes join the sums (a row for each invoice and payment that has any):
        // planned with their real size rather than a guess for a table never analysed,
        // the customers', invoices' and payments' writes take 0.1 s less together.
        try connection.execute("ANALYZE import_sum")
        if try setAsideIfEmpty(connection) {
            try writeRows(connection)
            try connection.execute(BulkLoad.restore)
            progress("built the indexes and checked the foreign keys")
        } else {
            try writeRowsBesideOtherImports(connection)
        }
        for organisation in stored.sorted() {
            try connection.query("SELECT bg_recompute_figures($1::uuid)", [organisation])
        }
        // The store's tables, not the import's own temporary ones (a quarter of a second
        // more for the staging table, which is dropped at the commit).
        try connection.execute("ANALYZE " + Staging.storeTables.joined(separator: ", "))
    }

    private func writeRows(_ connection: BlockingConnection) throws {
        for (table, sql) in Staging.moves {
            let rows = try connection.query(sql).affectedRows
            progress("wrote \(rows) rows to \(table)")
        }
    }

    /// Writes the rows into a store that other imports may be writing at the same moment.
    /// Ids and API keys are unique across organisations, and imports into different
    /// organisations do not take turns (`lock`), so another import may have committed one
    /// of this file's ids after this one checked its rules: the store's key refuses the row
    /// (`23505`), or two such imports wait for each other's rows and PostgreSQL fails one
    /// (`40P01`). The rows are then taken back to the savepoint and the rules checked again,
    /// which now see what the other committed, so that the refusal names its line as
    /// every other does (README, "Imports beside live mutations"). After a deadlock the
    /// other may not have committed yet: the rows are written again, at most three times.
    private func writeRowsBesideOtherImports(_ connection: BlockingConnection) throws {
        for attempt in 1...3 {
            try connection.execute("SAVEPOINT import_rows")
            do {
                try writeRows(connection)
                try connection.execute("RELEASE SAVEPOINT import_rows")
                return
            } catch let error as DatabaseError where error.sqlState == "23505" || error.sqlState == "40P01" {
                try connection.execute("ROLLBACK TO SAVEPOINT import_rows")
                try checkAcrossLines(connection)
                guard error.sqlState == "40P01", attempt < 3 else { throw error }
                progress("waited in a circle with another import for rows of both; writing again")
            }
        }
    }

    /// Sets the indexes and foreign keys of the store's tables aside when they are all
    /// empty (`BulkLoad`); true when it did, and the caller must restore them.
    private func setAsideIfEmpty(_ connection: BlockingConnection) throws -> Bool {
        // Asked first without a lock, so that an import into a store with rows never
        // waits for readers to let go of its tables.
        guard try connection.query(BulkLoad.empty).string(0, 0) == "t" else { return false }
        try connection.execute(BulkLoad.savepoint)
        do {
            try connection.execute(BulkLoad.lock)
            // Another import may have committed rows since.
            guard try connection.query(BulkLoad.empty).string(0, 0) == "t" else {
                try connection.execute(BulkLoad.giveUp)
                return false
            }
            try connection.execute(BulkLoad.setAside)
            try connection.execute(BulkLoad.drop)
            try connection.execute(BulkLoad.truncate)
        } catch {
            // Not the tables' owner, or a deadlock with a reader: the row-by-row way.
            guard error.sqlState == "42501" || error.sqlState == "40P01" else { throw error }
            try connection.execute(BulkLoad.giveUp)
            return false
        }
        progress("the store is empty: writing without its indexes and foreign keys, then building them")
        return true
    }

    /// Stages one row of `kind` for `line`; see `Staging` for what each column holds.
    private func stage(_ kind: Character, line: Int, id: String? = nil, org: String, ref: String? = nil, owner: String? = nil,
                       _ t1: String? = nil, _ t2: String? = nil, _ t3: String? = nil, _ t4: String? = nil,
                       d1: String? = nil, d2: String? = nil, at: String? = nil, n1: Int64? = nil, n2: Int64? = nil) {
        staged.append([String(line), String(kind), id, org, ref, owner, t1, t2, t3, t4, d1, d2, at,
                       n1.map { String($0) }, n2.map { String($0) }])
        counts[Int(kind.asciiValue!)] += 1
    }

    private func staged(_ kind: Character) -> Int { counts[Int(kind.asciiValue!)] }

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
        stage("o", line: line, id: id, org: id, try r.string("name"))
    }

    private func checkAPIKey(_ r: DatasetRecord, line: Int) throws {
        let org = try r.uuid("organisation_id")
        let key = try r.string("key")
        guard APIKeys.isWellFormed(key) else {
            throw ImportFailure("\"key\" must be 16 to 128 printable ASCII characters")
        }
        var scopes: [String] = []
        for item in try r.array("scopes") {
            guard let s = item.stringValue, APIKeys.scopes.contains(s) else {
                throw ImportFailure("\"scopes\" must name only billing:read, refunds:write, credit_notes:write")
            }
            if !scopes.contains(s) { scopes.append(s) }
        }
        stage("k", line: line, org: org, key, "{" + scopes.joined(separator: ",") + "}")
    }

    private func checkCustomer(_ r: DatasetRecord, line: Int) throws {
        let id = try r.uuid("id")
        let org = try r.uuid("organisation_id")
        let currency = try r.string("currency")
        guard currency.utf8.count == 3, currency.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
            throw ImportFailure("\"currency\" must be three capital letters, got \"\(currency)\"")
        }
        stage("c", line: line, id: id, org: org, try r.optionalString("external_id"), try r.string("name"),
              try r.optionalString("email"), currency, at: try r.timestamp("created_at"),
              n1: try r.optionalMoney("credit_balance") ?? 0)
    }

    private func checkInvoice(_ r: DatasetRecord, line: Int) throws {
        let id = try r.uuid("id")
        let org = try r.uuid("organisation_id")
        let customerID = try r.uuid("customer_id")
        let number = try r.string("number")
        guard !number.isEmpty else { throw ImportFailure("\"number\" must not be empty") }
        let status = try r.choice("status", ["draft", "open", "void"])
        let issuedOn = try r.date("issued_on")
        let total = try r.money("total")
        stage("i", line: line, id: id, org: org, ref: customerID, number, status, d1: issuedOn,
              d2: try r.optionalDate("due_on"), at: try r.timestamp("created_at"), n1: total)
    }

    private func checkPayment(_ r: DatasetRecord, line: Int) throws {
        let id = try r.uuid("id")
        let org = try r.uuid("organisation_id")
        let customerID = try r.uuid("customer_id")
        let mode = try r.choice("mode", Self.modes)
        let status = try r.choice("status", ["succeeded", "failed"])
        let amount = try r.money("amount")
        let receivedOn = try r.date("received_on")
        let applications = r.has("applications") ? try r.array("applications") : []
        if status == "FAILED" && !applications.isEmpty { throw ImportFailure("a failed payment has no applications") }
        var applied: Int64 = 0
        var seen = Set<String>()
        var shares: [(invoice: String, amount: Int64)] = []
        for (i, item) in applications.enumerated() {
            let where_ = "applications[\(i)]"
            guard case .object(let members) = item else { throw ImportFailure("\(where_) must be an object") }
            for (k, _) in members where k != "invoice_id" && k != "amount" { throw ImportFailure("unknown key \"\(k)\" in \(where_)") }
            guard let invoiceID = item["invoice_id"]?.stringValue, Scalars.isLowercaseUUID(invoiceID) else {
                throw ImportFailure("\(where_).invoice_id must be a UUID in lowercase text")
            }
            guard let share = item["amount"]?.int64Value, share > 0 else { throw ImportFailure("\(where_).amount must be an integer above 0") }
            guard seen.insert(invoiceID).inserted else { throw ImportFailure("invoice \(invoiceID) is applied twice") }
            applied = try checkedSum(applied, share, "the applications of payment \(id)")
            shares.append((invoiceID, share))
        }
        guard applied <= amount else { throw ImportFailure("applications add up to \(applied), more than the amount \(amount)") }
        stage("p", line: line, id: id, org: org, ref: customerID, mode, status, try r.optionalString("reference_number"),
              try r.optionalString("description"), d1: receivedOn, at: try r.timestamp("created_at"), n1: amount,
              n2: try r.optionalMoney("bank_charges") ?? 0)
        for share in shares {
            stage("a", line: line, id: id, org: org, ref: share.invoice, owner: customerID, d1: receivedOn, n1: share.amount)
        }
    }

    private func checkRefund(_ r: DatasetRecord, line: Int) throws {
        let id = try r.uuid("id")
        let org = try r.uuid("organisation_id")
        let paymentID = try r.uuid("payment_id")
        let amount = try r.money("amount")
        guard amount > 0 else { throw ImportFailure("\"amount\" must be above 0") }
        let mode = r.has("mode") ? try r.choice("mode", Self.modes) : nil
        stage("r", line: line, id: id, org: org, ref: paymentID, mode, nil, try r.optionalString("reference_number"),
              try r.optionalString("description"), d1: try r.date("refunded_on"), at: try r.timestamp("created_at"), n1: amount)
    }

    /// Checks one line of the file on its own (`number` counts from 1) and stages its rows.
    /// A broken line is an `ImportError`; other errors are the database's.
    package func check(line: [UInt8], number: Int) throws {
        if scanner?.stage(line, number: number, into: &staged, counts: &counts) == true {
            scannedLines += 1
            return
        }
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

    /// The rows staged and not yet sent, in binary COPY format (`CopyBuffer`).
    package var copyData: [(table: String, bytes: [UInt8])] { [(staged.table, staged.bytes)] }

    /// `copyData`'s rows, field by field (`CopyBuffer.decodedRows`).
    var stagedRows: [[[UInt8]?]] { CopyBuffer.decodedRows(staged.bytes, columns: Staging.columns) }

    /// Every value of a text column in `copyData`.
    package var stagedTexts: [[UInt8]] {
        stagedRows.flatMap { row in zip(row, Staging.columns).compactMap { $0.1.type == .text ? $0.0 : nil } }
    }
}
