import JSON
import Store

/// Writes a deterministic billing dataset in the import format: the same arguments
/// always give the same lines. Its shape follows the contract's reference generator
/// (currencies USD/EUR/JPY, ~8 invoices a customer, most paid, a few refunds and failed
/// payments), with its own random numbers, so the project needs nothing outside itself
/// for demos, tests and benchmarks.
///
/// It also makes the hard cases tests need, every organisation, whatever its size:
/// invoices paid by two or three payments on different days and on the same day,
/// payments of such invoices already partly refunded, failed payments, a key without
/// `billing:read`, names with `%`, `_`, `\`, `'` and non-ASCII letters, and customers
/// with no payments (`Hard` below says which customers carry which case).
public struct Seeder {
    public struct Options: Sendable {
        public var customers = 200
        public var organisations = 2
        public var seed: UInt64 = 1
        public var invoicesPerCustomer = 8.0
        public init() {}
    }

    let options: Options
    private var rng: SplitMix64

    public init(_ options: Options) {
        self.options = options
        rng = SplitMix64(seed: options.seed)
    }

    static let first = ["Acme", "Bowman", "Cobalt", "Delta", "Ember", "Fable", "Granite", "Harbor", "Iris", "Juniper",
                        "Kestrel", "Lumen", "Maple", "Nimbus", "Onyx", "Pioneer", "Quartz", "Raven", "Summit", "Tidal",
                        "Umber", "Vertex", "Willow", "Xenon", "Yonder", "Zephyr", "O'Neil", "Müller", "100%", "Under_score"]
    static let second = ["Furniture", "Analytics", "Labs", "Logistics", "Foods", "Media", "Systems", "Studio", "Health",
                         "Energy", "Robotics", "Textiles", "Partners", "Works", "Cloud", "Bakery", "Motors", "Pharma"]
    static let suffix = ["Inc", "LLC", "GmbH", "Ltd", "SA", "BV", "KK", "Co"]

    /// The customers of every organisation that carry a hard case, by their number.
    enum Hard {
        /// Customers 1 to 5 are named with LIKE's wildcards, its escape and letters beyond ASCII.
        static let names = ["100% Organic Foods Ltd", "Under_score Media Inc", "Back\\slash Works Co",
                            "Müller Bäckerei GmbH", "Ørsted Énergie SA"]
        /// Invoices paid by several payments, some partly refunded.
        static let splitPayments = 6...9
        static let failedPayment = 10
        static let noPayments = 11
    }
    static let modes = ["check", "cash", "credit_card", "bank_transfer", "bank_remittance", "auto_transaction", "others"]
    static let start = Day(year: 2023, month: 1, day: 1)
    static let spanDays = 730

    /// Writes the dataset line by line through `emit`; API keys go to `key` as they are made.
    public mutating func generate(emit: (JSONValue) -> Void, key: (String) -> Void) {
        for o in 1...max(1, options.organisations) {
            let org = newID()
            emit(.object([("type", .string("organisation")), ("id", .string(org)), ("name", .string("Organisation \(o)"))]))
            for (label, scopes) in [("full", ["billing:read", "refunds:write", "credit_notes:write"]),
                                    ("read", ["billing:read"]), ("refunds", ["billing:read", "refunds:write"]),
                                    ("writer", ["refunds:write", "credit_notes:write"])] {
                let secret = APIKeys.make(name: "\(label)_org\(o)_", random: [rng.next()])
                emit(.object([("type", .string("api_key")), ("organisation_id", .string(org)), ("key", .string(secret)),
                              ("scopes", .array(scopes.map(JSONValue.string)))]))
                key("org \(o) \(label): \(secret)")
            }
            var invoiceNumber = 0
            for c in 1...max(1, options.customers) {
                generateCustomer(org: org, o: o, c: c, invoiceNumber: &invoiceNumber, emit: emit)
            }
        }
    }

    private mutating func generateCustomer(org: String, o: Int, c: Int, invoiceNumber: inout Int, emit: (JSONValue) -> Void) {
        let id = newID()
        let r = rng.unit()
        let (currency, unit): (String, Int64) = r < 0.7 ? ("USD", 100) : r < 0.9 ? ("EUR", 100) : ("JPY", 1)
        let created = Self.start.adding(rng.below(Self.spanDays / 2))
        let randomName = "\(pick(Self.first)) \(pick(Self.second)) \(pick(Self.suffix))"
        let name = c <= Hard.names.count ? Hard.names[c - 1] : randomName
        var customer: [(String, JSONValue)] = [
            ("type", .string("customer")), ("id", .string(id)), ("organisation_id", .string(org)), ("name", .string(name)),
            ("currency", .string(currency)), ("created_at", .string(timestamp(created))),
        ]
        if rng.unit() < 0.9 { customer.append(("external_id", .string("cus_\(o)_" + String(c).leftPadded(7)))) }
        if rng.unit() < 0.8 {
            let domain = name.split(separator: " ")[0].lowercased().filter { $0 != "%" }
            customer.append(("email", .string("billing\(c)@\(domain).example")))
        }
        if rng.unit() < 0.05 { customer.append(("credit_balance", .number(String(Int64(1 + rng.below(499)) * unit)))) }
        emit(.object(customer))

        var invoices: [(id: String, total: Int64, issued: Day, number: String)] = []
        var count = options.invoicesPerCustomer > 0 ? min(60, Int(rng.exponential(mean: options.invoicesPerCustomer))) : 0
        if Hard.splitPayments.contains(c) || c == Hard.noPayments { count = max(count, 3) }
        for _ in 0..<count {
            invoiceNumber += 1
            let issued = created.adding(rng.below(Self.spanDays - (created.ordinal - Self.start.ordinal)))
            let r = rng.unit()
            let mustBeOpen = Hard.splitPayments.contains(c) || c == Hard.noPayments
            let status = mustBeOpen ? "open" : r < 0.05 ? "draft" : r < 0.10 ? "void" : "open"
            let total = Int64(10 + rng.below(4990)) * unit
            let number = "INV-\(o)-" + String(invoiceNumber).leftPadded(7)
            let invoiceID = newID()
            var invoice: [(String, JSONValue)] = [
                ("type", .string("invoice")), ("id", .string(invoiceID)), ("organisation_id", .string(org)),
                ("customer_id", .string(id)), ("number", .string(number)), ("status", .string(status)),
                ("issued_on", .string(issued.text)), ("total", .number(String(total))), ("created_at", .string(timestamp(issued))),
            ]
            if rng.unit() < 0.9 { invoice.append(("due_on", .string(issued.adding(pick([0, 15, 30, 45, 60])).text))) }
            emit(.object(invoice))
            if status == "open" { invoices.append((invoiceID, total, issued, number)) }
        }
        if Hard.splitPayments.contains(c) {
            for invoice in invoices { generateSplitPayments(org: org, customer: id, invoice: invoice, emit: emit) }
        } else if c != Hard.noPayments {
            generatePayments(org: org, customer: id, unit: unit, open: invoices, emit: emit)
        }
        if c == Hard.failedPayment || (c != Hard.noPayments && count > 0 && rng.unit() < 0.05) {
            let on = Self.start.adding(rng.below(Self.spanDays))
            emit(.object([
                ("type", .string("payment")), ("id", .string(newID())), ("organisation_id", .string(org)),
                ("customer_id", .string(id)), ("mode", .string("credit_card")), ("status", .string("failed")),
                ("amount", .number(String(Int64(10 + rng.below(490)) * unit))), ("received_on", .string(on.text)),
                ("created_at", .string(timestamp(on))),
            ]))
        }
    }

    private mutating func generatePayments(org: String, customer: String, unit: Int64,
                                           open: [(id: String, total: Int64, issued: Day, number: String)],
                                           emit: (JSONValue) -> Void) {
        var open = open
        rng.shuffle(&open)
        var k = 0
        while k < open.count {
            let size = rng.unit() < 0.1 ? 2 + rng.below(2) : 1
            let group = Array(open[k..<min(k + size, open.count)])
            k += group.count
            let fate = rng.unit()
            if fate < 0.25 { continue }  // unpaid
            var applications: [JSONValue] = []
            var amount: Int64 = 0
            for invoice in group {
                let share = fate >= 0.4 ? invoice.total : max(1, invoice.total * Int64(10 + rng.below(80)) / 100)
                applications.append(.object([("invoice_id", .string(invoice.id)), ("amount", .number(String(share)))]))
                amount += share
            }
            if rng.unit() < 0.05 { amount += Int64(1 + rng.below(99)) * unit }  // overpayment, left unapplied
            let received = group.map(\.issued).max(by: { $0.ordinal < $1.ordinal })!.adding(rng.below(60))
            let paymentID = newID()
            var payment: [(String, JSONValue)] = [
                ("type", .string("payment")), ("id", .string(paymentID)), ("organisation_id", .string(org)),
                ("customer_id", .string(customer)), ("mode", .string(pick(Self.modes))), ("status", .string("succeeded")),
                ("amount", .number(String(amount))), ("received_on", .string(received.text)),
                ("created_at", .string(timestamp(received))), ("applications", .array(applications)),
            ]
            if rng.unit() < 0.3 { payment.append(("bank_charges", .number(String(Int64(rng.below(30)) * unit / 10)))) }
            if rng.unit() < 0.7 { payment.append(("reference_number", .string("REF-" + String(rng.next() & 0xFFFF_FFFF, radix: 16, uppercase: true).leftPadded(8)))) }
            if rng.unit() < 0.3 { payment.append(("description", .string("Payment for " + group.map(\.number).joined(separator: ", ")))) }
            emit(.object(payment))
            if rng.unit() < 0.08 { generateRefunds(org: org, payment: paymentID, amount: amount, received: received, emit: emit) }
        }
    }

    /// One invoice paid by two or three payments, the later ones on the same day as the
    /// one before or up to three weeks after; in full or in part; the first payment is
    /// sometimes more than it applies, and sometimes partly refunded.
    private mutating func generateSplitPayments(org: String, customer: String,
                                                invoice: (id: String, total: Int64, issued: Day, number: String),
                                                emit: (JSONValue) -> Void) {
        let count = 2 + rng.below(2)
        let paid = rng.unit() < 0.6 ? invoice.total : max(Int64(count), invoice.total * Int64(30 + rng.below(60)) / 100)
        var day = invoice.issued.adding(rng.below(20))
        var left = paid
        for k in 0..<count {
            let share = k == count - 1 ? left : max(1, left * Int64(20 + rng.below(50)) / 100)
            left -= share
            let paymentID = newID()
            // The first payment is sometimes more than it applies: money a refund can take
            // beyond what this invoice got from it.
            let unapplied = k == 0 && rng.unit() < 0.4 ? max(1, share / 10) : 0
            emit(.object([
                ("type", .string("payment")), ("id", .string(paymentID)), ("organisation_id", .string(org)),
                ("customer_id", .string(customer)), ("mode", .string(pick(Self.modes))), ("status", .string("succeeded")),
                ("amount", .number(String(share + unapplied))), ("received_on", .string(day.text)),
                ("created_at", .string(timestamp(day))),
                ("applications", .array([.object([("invoice_id", .string(invoice.id)), ("amount", .number(String(share)))])])),
            ]))
            if k == 0 && rng.unit() < 0.5 { generateRefunds(org: org, payment: paymentID, amount: share, received: day, emit: emit) }
            day = day.adding(rng.unit() < 0.4 ? 0 : 1 + rng.below(21))
        }
    }

    private mutating func generateRefunds(org: String, payment: String, amount: Int64, received: Day, emit: (JSONValue) -> Void) {
        var left = amount
        for _ in 0..<(1 + rng.below(2)) where left > 0 {
            let refundAmount = max(1, left * Int64(5 + rng.below(55)) / 100)
            left -= refundAmount
            let on = received.adding(1 + rng.below(89))
            var refund: [(String, JSONValue)] = [
                ("type", .string("refund")), ("id", .string(newID())), ("organisation_id", .string(org)),
                ("payment_id", .string(payment)), ("amount", .number(String(refundAmount))), ("refunded_on", .string(on.text)),
                ("created_at", .string(timestamp(on))),
            ]
            if rng.unit() < 0.5 { refund.append(("reference_number", .string("RF-" + String(rng.next() & 0xFF_FFFF, radix: 16, uppercase: true).leftPadded(6)))) }
            if rng.unit() < 0.3 { refund.append(("mode", .string(pick(Self.modes)))) }
            emit(.object(refund))
        }
    }

    private mutating func pick<T>(_ items: [T]) -> T { items[rng.below(items.count)] }

    /// A version 4 UUID from the generator, in lowercase text.
    private mutating func newID() -> String {
        var a = rng.next(), b = rng.next()
        a = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        b = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        let hex = String(a, radix: 16).leftPadded(16) + String(b, radix: 16).leftPadded(16)
        let h = Array(hex)
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-" + String(h[20..<32])
    }

    private mutating func timestamp(_ day: Day) -> String {
        let seconds = rng.below(86_400)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(day.text)T\(two(seconds / 3600)):\(two(seconds / 60 % 60)):\(two(seconds % 60))Z"
    }
}

/// A small, fast, well-mixed generator; enough for test data, never for secrets.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// A number in [0, n).
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }

    mutating func exponential(mean: Double) -> Double { -mean * log1p(-unit()) }

    mutating func shuffle<T>(_ items: inout [T]) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) { items.swapAt(i, below(i + 1)) }
    }
}

/// A calendar day as days since 1970-01-01, for date arithmetic without Foundation
/// (Howard Hinnant's `days_from_civil`; `Store.Binary.civil` is the way back).
struct Day {
    let ordinal: Int

    init(year: Int, month: Int, day: Int) {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        ordinal = era * 146_097 + doe - 719_468
    }

    private init(ordinal: Int) { self.ordinal = ordinal }

    func adding(_ days: Int) -> Day { Day(ordinal: ordinal + days) }

    var text: String {
        let (year, month, day) = Binary.civil(daysSince2000: ordinal - 10_957)  // ordinal: days since 1970-01-01
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return String(year).leftPadded(4) + "-" + two(month) + "-" + two(day)
    }
}

extension String {
    /// The string with zeros in front, at least `width` characters long.
    public func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

#if canImport(Glibc)
import Glibc
#endif
