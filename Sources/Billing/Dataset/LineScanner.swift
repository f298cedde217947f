/// The importer's fast way through a common line: customers, invoices, payments and
/// refunds written as plain JSON (ASCII text without escapes, integers without sign,
/// fraction or exponent), read in place and written straight into COPY rows, with no JSON
/// tree and no `String`. It checks everything `DatasetRecord` and `Importer` check, and
/// stages exactly the row they would; anything else (another type, an escape, a byte
/// outside ASCII, any broken rule) it declines, and the line takes the general way, which
/// accepts it or words its error. So this way only ever accepts: it never reports.
/// `Tests/BillingTests/Dataset/LineScannerTests.swift` and the `dataset` fuzz target check
/// that both ways stage the same bytes for every line this one accepts.
///
/// Parsing JSON into a tree and reading it was the importer's whole core (5.6 s of user time
/// for 546,252 lines, while PostgreSQL's COPY waited for it); this way takes a tenth of that.
///
/// One scanner lives as long as its importer; `members` and `shares` keep their memory
/// from line to line and hold positions in the line being staged only.
struct LineScanner {
    /// Where a value lies in the line: a string's bytes inside its quotes, a number's digits.
    private enum Value {
        case string(Range<Int>)
        case number(Range<Int>)
        case null
        /// A list of `{"invoice_id": "…", "amount": …}` objects, in `shares`.
        case applications
    }

    private struct Member {
        let key: Range<Int>
        let value: Value
    }

    /// Declines the line (it takes the general way).
    private struct Decline: Error {}

    private var members: [Member] = []
    private var shares: [(invoice: Range<Int>, amount: Range<Int>)] = []

    /// Stages the rows of `line` (its number is `number`) in `rows` and counts them in
    /// `counts` (by kind letter); false, having staged nothing, when the line is not one
    /// this way takes.
    mutating func stage(_ line: [UInt8], number: Int, into rows: inout CopyBuffer, counts: inout [Int]) -> Bool {
        line.withUnsafeBufferPointer { p in
            do {
                try scan(p)
                try stage(p, number: number, into: &rows, counts: &counts)
                return true
            } catch {
                return false
            }
        }
    }

    // MARK: - Reading the line

    private mutating func scan(_ p: UnsafeBufferPointer<UInt8>) throws(Decline) {
        members.removeAll(keepingCapacity: true)
        shares.removeAll(keepingCapacity: true)
        var i = 0
        skipSpace(p, &i)
        try expect(p, &i, "{")
        while true {
            skipSpace(p, &i)
            let key = try string(p, &i)
            // A repeated key is a JSON error the general way words.
            for earlier in members where p[earlier.key].elementsEqual(p[key]) { throw Decline() }
            skipSpace(p, &i)
            try expect(p, &i, ":")
            skipSpace(p, &i)
            members.append(Member(key: key, value: try value(p, &i)))
            skipSpace(p, &i)
            guard i < p.count else { throw Decline() }
            if p[i] == UInt8(ascii: "}") { i += 1; break }
            try expect(p, &i, ",")
        }
        skipSpace(p, &i)
        guard i == p.count else { throw Decline() }
    }

    private mutating func value(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws(Decline) -> Value {
        guard i < p.count else { throw Decline() }
        switch p[i] {
        case UInt8(ascii: "\""): return .string(try string(p, &i))
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number(p, &i))
        case UInt8(ascii: "n"):
            guard i + 4 <= p.count, p[i + 1] == UInt8(ascii: "u"), p[i + 2] == UInt8(ascii: "l"),
                  p[i + 3] == UInt8(ascii: "l") else { throw Decline() }
            i += 4
            return .null
        case UInt8(ascii: "["): return try applications(p, &i)
        default: throw Decline()
        }
    }

    /// A string without escapes, control characters or bytes outside ASCII; its bytes.
    private func string(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws(Decline) -> Range<Int> {
        try expect(p, &i, "\"")
        let start = i
        while i < p.count {
            let byte = p[i]
            if byte == UInt8(ascii: "\"") {
                i += 1
                return start..<i - 1
            }
            guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\\") else { throw Decline() }
            i += 1
        }
        throw Decline()
    }

    /// An integer of at most 18 digits (so it fits 64 bits), without sign, fraction, exponent
    /// or leading zero; its digits.
    private func number(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws(Decline) -> Range<Int> {
        let start = i
        while i < p.count, p[i] >= UInt8(ascii: "0"), p[i] <= UInt8(ascii: "9") { i += 1 }
        guard i - start <= 18, i - start == 1 || p[start] != UInt8(ascii: "0") else { throw Decline() }
        if i < p.count, p[i] == UInt8(ascii: ".") || p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E") {
            throw Decline()
        }
        return start..<i
    }

    /// A payment's `applications`: objects of exactly an `invoice_id` string and an
    /// `amount` number, into `shares`.
    private mutating func applications(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws(Decline) -> Value {
        try expect(p, &i, "[")
        skipSpace(p, &i)
        if i < p.count, p[i] == UInt8(ascii: "]") { i += 1; return .applications }
        while true {
            skipSpace(p, &i)
            try expect(p, &i, "{")
            var invoice: Range<Int>?
            var amount: Range<Int>?
            for position in 0..<2 {
                skipSpace(p, &i)
                let key = try string(p, &i)
                skipSpace(p, &i)
                try expect(p, &i, ":")
                skipSpace(p, &i)
                if invoice == nil, p[key].elementsEqual("invoice_id".utf8) {
                    guard i < p.count, p[i] == UInt8(ascii: "\"") else { throw Decline() }
                    invoice = try string(p, &i)
                } else if amount == nil, p[key].elementsEqual("amount".utf8) {
                    guard i < p.count, p[i] != UInt8(ascii: "\"") else { throw Decline() }
                    amount = try number(p, &i)
                } else {
                    throw Decline()
                }
                skipSpace(p, &i)
                try expect(p, &i, position == 0 ? "," : "}")
            }
            shares.append((invoice!, amount!))
            skipSpace(p, &i)
            guard i < p.count else { throw Decline() }
            if p[i] == UInt8(ascii: "]") { i += 1; return .applications }
            try expect(p, &i, ",")
        }
    }

    private func skipSpace(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int) {
        while i < p.count, p[i] == 0x20 || p[i] == 0x09 || p[i] == 0x0A || p[i] == 0x0D { i += 1 }
    }

    private func expect(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ byte: Unicode.Scalar) throws(Decline) {
        guard i < p.count, p[i] == UInt8(ascii: byte) else { throw Decline() }
        i += 1
    }

    // MARK: - Checking and staging

    /// Checks the members of the line scanned (as `Importer.check` does, a line on its own)
    /// and stages its rows; see `Staging` for the columns.
    private func stage(_ p: UnsafeBufferPointer<UInt8>, number: Int, into rows: inout CopyBuffer,
                       counts: inout [Int]) throws(Decline) {
        let record = Record(p: p, members: members)
        let type = try record.text("type")
        let kind: UInt8
        switch p[type] {
        case let t where t.elementsEqual("customer".utf8): kind = UInt8(ascii: "c")
        case let t where t.elementsEqual("invoice".utf8): kind = UInt8(ascii: "i")
        case let t where t.elementsEqual("payment".utf8): kind = UInt8(ascii: "p")
        case let t where t.elementsEqual("refund".utf8): kind = UInt8(ascii: "r")
        default: throw Decline()  // organisations and API keys are a handful of lines
        }
        let allowed = Self.keys[Int(kind)]
        for member in members where !p[member.key].elementsEqual("type".utf8) {
            guard allowed.contains(where: { $0.elementsEqual(p[member.key]) }) else { throw Decline() }
        }
        switch kind {
        case UInt8(ascii: "c"): try customer(record, number, &rows)
        case UInt8(ascii: "i"): try invoice(record, number, &rows)
        case UInt8(ascii: "p"): try payment(record, number, &rows, &counts)
        default: try refund(record, number, &rows)
        }
        counts[Int(kind)] += 1
    }

    /// `Importer.keys` as bytes, by kind letter.
    private static let keys: [[[UInt8]]] = {
        var keys = [[[UInt8]]](repeating: [], count: 128)
        for (kind, type) in [("c", "customer"), ("i", "invoice"), ("p", "payment"), ("r", "refund")] {
            keys[Int(Character(kind).asciiValue!)] = Importer.keys[type]!.map { Array($0.utf8) }
        }
        return keys
    }()

    private func customer(_ r: Record, _ number: Int, _ rows: inout CopyBuffer) throws(Decline) {
        let id = try r.uuid("id"), org = try r.uuid("organisation_id")
        let externalID = try r.optionalText("external_id"), name = try r.text("name"), email = try r.optionalText("email")
        let currency = try r.text("currency")
        guard currency.count == 3, r.p[currency].allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else { throw Decline() }
        let createdAt = try r.timestamp("created_at"), creditBalance = try r.optionalMoney("credit_balance")
        begin(&rows, number, "c")
        r.put(id, &rows); r.put(org, &rows); rows.nullField(); rows.nullField()
        r.put(externalID, &rows); r.put(name, &rows); r.put(email, &rows); r.put(currency, &rows)
        rows.nullField(); rows.nullField(); r.put(createdAt, &rows); r.putMoney(creditBalance, &rows); rows.nullField()
        rows.endRow()
    }

    private func invoice(_ r: Record, _ number: Int, _ rows: inout CopyBuffer) throws(Decline) {
        let id = try r.uuid("id"), org = try r.uuid("organisation_id"), customer = try r.uuid("customer_id")
        let invoiceNumber = try r.text("number")
        guard !invoiceNumber.isEmpty else { throw Decline() }
        let status = try r.choice("status", Self.invoiceStatuses)
        let issuedOn = try r.date("issued_on"), dueOn = try r.optionalDate("due_on")
        let total = try r.money("total"), createdAt = try r.timestamp("created_at")
        begin(&rows, number, "i")
        r.put(id, &rows); r.put(org, &rows); r.put(customer, &rows); rows.nullField()
        r.put(invoiceNumber, &rows); r.putUppercased(status, &rows); rows.nullField(); rows.nullField()
        r.put(issuedOn, &rows); r.put(dueOn, &rows); r.put(createdAt, &rows); r.put(total, &rows); rows.nullField()
        rows.endRow()
    }

    private func payment(_ r: Record, _ number: Int, _ rows: inout CopyBuffer, _ counts: inout [Int]) throws(Decline) {
        let id = try r.uuid("id"), org = try r.uuid("organisation_id"), customer = try r.uuid("customer_id")
        let mode = try r.choice("mode", Self.modes), status = try r.choice("status", Self.paymentStatuses)
        let amount = try r.money("amount"), receivedOn = try r.date("received_on")
        let createdAt = try r.timestamp("created_at"), bankCharges = try r.optionalMoney("bank_charges")
        let reference = try r.optionalText("reference_number"), description = try r.optionalText("description")
        switch r.member("applications") {
        case nil, .null?, .applications?: break
        default: throw Decline()
        }
        let hasApplications = r.member("applications").map { if case .applications = $0 { true } else { false } } ?? false
        let shares = hasApplications ? self.shares : []
        // A failed payment has no applications; each is above 0, to an invoice named once,
        // and together they stay within the amount (sums that overflow take the general way).
        if !shares.isEmpty && r.p[status].elementsEqual("failed".utf8) { throw Decline() }
        var applied: Int64 = 0
        for (n, share) in shares.enumerated() {
            guard Scalars.isLowercaseUUID(utf8: r.p[share.invoice]) else { throw Decline() }
            for earlier in shares[..<n] where r.p[earlier.invoice].elementsEqual(r.p[share.invoice]) { throw Decline() }
            let value = r.integer(share.amount)
            let (sum, overflow) = applied.addingReportingOverflow(value)
            guard value > 0, !overflow else { throw Decline() }
            applied = sum
        }
        guard applied <= r.integer(amount) else { throw Decline() }
        begin(&rows, number, "p")
        r.put(id, &rows); r.put(org, &rows); r.put(customer, &rows); rows.nullField()
        r.putUppercased(mode, &rows); r.putUppercased(status, &rows); r.put(reference, &rows); r.put(description, &rows)
        r.put(receivedOn, &rows); rows.nullField(); r.put(createdAt, &rows); r.put(amount, &rows)
        r.putMoney(bankCharges, &rows)
        rows.endRow()
        for share in shares {
            begin(&rows, number, "a")
            r.put(id, &rows); r.put(org, &rows); r.put(share.invoice, &rows); r.put(customer, &rows)
            rows.nullField(); rows.nullField(); rows.nullField(); rows.nullField()
            r.put(receivedOn, &rows); rows.nullField(); rows.nullField(); r.put(share.amount, &rows); rows.nullField()
            rows.endRow()
        }
        counts[Int(UInt8(ascii: "a"))] += shares.count
    }

    private func refund(_ r: Record, _ number: Int, _ rows: inout CopyBuffer) throws(Decline) {
        let id = try r.uuid("id"), org = try r.uuid("organisation_id"), payment = try r.uuid("payment_id")
        let amount = try r.money("amount")
        guard r.integer(amount) > 0 else { throw Decline() }
        let mode: Range<Int>? = r.has("mode") ? try r.choice("mode", Self.modes) : nil
        let reference = try r.optionalText("reference_number"), description = try r.optionalText("description")
        let refundedOn = try r.date("refunded_on"), createdAt = try r.timestamp("created_at")
        begin(&rows, number, "r")
        r.put(id, &rows); r.put(org, &rows); r.put(payment, &rows); rows.nullField()
        if let mode { r.putUppercased(mode, &rows) } else { rows.nullField() }
        rows.nullField(); r.put(reference, &rows); r.put(description, &rows)
        r.put(refundedOn, &rows); rows.nullField(); r.put(createdAt, &rows); r.put(amount, &rows); rows.nullField()
        rows.endRow()
    }

    /// The `line` and `kind` columns.
    private func begin(_ rows: inout CopyBuffer, _ number: Int, _ kind: StaticString) {
        rows.field(number)
        rows.field(kind)
    }

    private static let invoiceStatuses = ["draft", "open", "void"].map { Array($0.utf8) }
    private static let paymentStatuses = ["succeeded", "failed"].map { Array($0.utf8) }
    private static let modes = Importer.modes.map { Array($0.utf8) }

    /// The members of a scanned line, read as `DatasetRecord` reads them; each check
    /// declines where `DatasetRecord` would throw. Lives while the line's bytes are lent.
    private struct Record {
        let p: UnsafeBufferPointer<UInt8>
        let members: [Member]

        func member(_ key: StaticString) -> Value? {
            let name = UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
            return members.first(where: { p[$0.key].elementsEqual(name) })?.value
        }

        /// Present and not null.
        func has(_ key: StaticString) -> Bool {
            switch member(key) {
            case nil, .null?: false
            default: true
            }
        }

        func text(_ key: StaticString) throws(Decline) -> Range<Int> {
            guard case .string(let range)? = member(key) else { throw Decline() }
            return range
        }

        func optionalText(_ key: StaticString) throws(Decline) -> Range<Int>? {
            has(key) ? try text(key) : nil
        }

        func uuid(_ key: StaticString) throws(Decline) -> Range<Int> {
            let range = try text(key)
            guard Scalars.isLowercaseUUID(utf8: p[range]) else { throw Decline() }
            return range
        }

        func date(_ key: StaticString) throws(Decline) -> Range<Int> {
            let range = try text(key)
            guard Scalars.parseDate(utf8: p[range]) != nil else { throw Decline() }
            return range
        }

        func optionalDate(_ key: StaticString) throws(Decline) -> Range<Int>? {
            has(key) ? try date(key) : nil
        }

        /// As `DatasetRecord.timestamp`: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of
        /// ASCII digits after a dot, then `Z`.
        func timestamp(_ key: StaticString) throws(Decline) -> Range<Int> {
            let range = try text(key)
            let s = range.lowerBound
            guard range.count >= 20, p[range.upperBound - 1] == UInt8(ascii: "Z"),
                  Scalars.isValidDateAndTime(utf8: p[s..<s + 19]) else { throw Decline() }
            if range.count > 20 {
                guard range.count > 21, p[s + 19] == UInt8(ascii: "."),
                      p[s + 20..<range.upperBound - 1].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw Decline() }
            }
            return range
        }

        /// Money: an integer of minor units (its digits; never negative here).
        func money(_ key: StaticString) throws(Decline) -> Range<Int> {
            guard case .number(let range)? = member(key) else { throw Decline() }
            return range
        }

        func optionalMoney(_ key: StaticString) throws(Decline) -> Range<Int>? {
            has(key) ? try money(key) : nil
        }

        /// One of `allowed` (lowercase in the file).
        func choice(_ key: StaticString, _ allowed: [[UInt8]]) throws(Decline) -> Range<Int> {
            let range = try text(key)
            guard allowed.contains(where: { $0.elementsEqual(p[range]) }) else { throw Decline() }
            return range
        }

        /// The value of at most 18 digits (`LineScanner.number`).
        func integer(_ digits: Range<Int>) -> Int64 {
            p[digits].reduce(0) { $0 * 10 + Int64($1 - 0x30) }
        }

        func put(_ range: Range<Int>, _ rows: inout CopyBuffer) {
            rows.field(UnsafeBufferPointer(rebasing: p[range]))
        }

        /// The value, or NULL.
        func put(_ range: Range<Int>?, _ rows: inout CopyBuffer) {
            if let range { put(range, &rows) } else { rows.nullField() }
        }

        func putUppercased(_ range: Range<Int>, _ rows: inout CopyBuffer) {
            rows.uppercasedField(UnsafeBufferPointer(rebasing: p[range]))
        }

        /// Money that defaults to 0 (`credit_balance`, `bank_charges`).
        func putMoney(_ range: Range<Int>?, _ rows: inout CopyBuffer) {
            if let range { put(range, &rows) } else { rows.field("0") }
        }
    }
}
