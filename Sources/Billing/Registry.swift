import Engine

/// The object types of the contract (schema/schema.graphql), by their names there.
enum ObjectType: String, CaseIterable {
    case query = "Query", mutation = "Mutation"
    case customer = "Customer", customerTotals = "CustomerTotals", invoice = "Invoice", payment = "Payment"
    case paymentApplication = "PaymentApplication", refund = "Refund", apiKeyRef = "ApiKeyRef", creditNote = "CreditNote"
    case agingReport = "AgingReport", monthSummary = "MonthSummary"
    case pageInfo = "PageInfo"
    case customerConnection = "CustomerConnection", customerEdge = "CustomerEdge"
    case invoiceConnection = "InvoiceConnection", invoiceEdge = "InvoiceEdge"
    case paymentConnection = "PaymentConnection", paymentEdge = "PaymentEdge"
    case refundConnection = "RefundConnection", refundEdge = "RefundEdge"
    case creditNoteConnection = "CreditNoteConnection", creditNoteEdge = "CreditNoteEdge"
    case refundPaymentPayload = "RefundPaymentPayload", createCreditNotePayload = "CreateCreditNotePayload"
    case voidCreditNotePayload = "VoidCreditNotePayload", updateRefundPayload = "UpdateRefundPayload"
}

/// What the objects of a type are while a request runs, which decides what its fields
/// may be resolved by (`Registry.mismatches` checks each against the schema).
enum Backing {
    /// The query root: its fields read the organisation's data (scope billing:read).
    case queryRoot
    /// The mutation root: each field is one mutation (RULES.md section 4).
    case mutationRoot
    /// Rows of a table (a customer's totals are the customer's row seen as another type).
    case rows(Table)
    /// A row of a report's statement.
    case report(Report)
    /// A page of a root connection, one of its edges, its page info (RULES.md section 2).
    case connection(node: ObjectType), edge(node: ObjectType), pageInfo
    /// The row a mutation's function answers with: the ids of what it changed.
    case payload
}

/// How one field is answered. Every case names what it needs in the types' own terms
/// (tables, columns by field name, filters, reports); the resolver turns it into SQL.
enum FieldResolver {
    // Fields of rows.
    /// A column of the parent's row: its place in the table's columns; `auditTrail` when
    /// reading it needs `billing:read` (RULES.md section 4: `voidedAt`).
    case column(Int, auditTrail: Bool)
    /// The parent's own row seen as another type (a customer's totals).
    case sameRow(ObjectType)
    /// One object of `Table` by the id in the parent's column `key`.
    case byID(Table, key: String)
    /// A list per parent, matched on the parent's column `key`, narrowed by the filters
    /// its arguments name; `first` and `order` limit and order it.
    case list(ChildListQuery, key: String, filters: [Filter])
    // Fields of the query root.
    /// One object by an argument.
    case lookup(Lookup)
    /// A page of one of the five root connections.
    case connection(RootConnection)
    /// A report: one aggregate statement.
    case report(Report)
    /// A figure of a report's row: its place in the statement's select list.
    case figure(column: Int, kind: CellKind)
    // Fields of a page, an edge, page info.
    case connectionPart(ConnectionPart)
    case edgePart(EdgePart)
    case pageInfoPart(PageInfoPart)
    // The write side.
    /// One mutation, whose function answers with the payload's row.
    case mutation(MutationKind)
    /// An object of `Table` by the id in a column of the mutation's answer.
    case payload(Table, resultColumn: Int)
}

extension FieldResolver {
    /// What kind of resolver it is, for messages.
    var kind: String {
        switch self {
        case .column: return "a column"
        case .sameRow: return "the same row"
        case .byID: return "an object by id"
        case .list: return "a list"
        case .lookup: return "a lookup"
        case .connection: return "a connection"
        case .report: return "a report"
        case .figure: return "a report's figure"
        case .connectionPart: return "a part of a connection"
        case .edgePart: return "a part of an edge"
        case .pageInfoPart: return "a part of page info"
        case .mutation: return "a mutation"
        case .payload: return "a payload's object"
        }
    }
}

enum ConnectionPart: CaseIterable { case nodes, edges, pageInfo, totalCount }
enum EdgePart: CaseIterable { case cursor, node }
enum PageInfoPart: CaseIterable { case hasNextPage, endCursor }

/// A root field finding one object by an argument, compared with a column of its table
/// (RULES.md section 2: an id that is not a lowercase UUID finds nothing).
struct Lookup {
    let table: Table
    /// The column compared, by its field name; `id` compares as a `uuid`.
    let column: String
    let argument: String
}

/// The one place saying, for every object type of the contract, what its objects are and
/// how each of its fields is answered. Built once; `mismatches(with:)` compares it with a
/// schema, and the server refuses to start when they differ. Looking a field up costs two
/// dictionary lookups (its type, then its name); the resolver keeps what it found with
/// the field's plan shape (`RegisteredField`), so a field is looked up once per document.
public struct Registry: Sendable {
    struct Entry {
        let type: ObjectType
        let backing: Backing
        /// In the order written, for messages; a name written twice is a mismatch.
        let fields: [(name: String, resolver: FieldResolver)]

        /// For row-backed types: the columns of `table` that are fields of `type`, then `relations`.
        static func rows(_ type: ObjectType, _ table: Table, relations: [(String, FieldResolver)] = []) -> Entry {
            let columns = table.columns.indices.filter { table.columns[$0].isField(of: type, in: table) }
            return Entry(type: type, backing: .rows(table),
                         fields: columns.map { (table.columns[$0].field, .column($0, auditTrail: table.columns[$0].isAuditTrail)) } + relations.map { ($0.0, $0.1) })
        }
    }

    let entries: [Entry]
    /// By type name: the type's entry and its resolvers by field name (the first written,
    /// when one is written twice). A class, so that a lookup copies no entry.
    private let types: [String: Resolvers]

    private final class Resolvers: Sendable {
        let entry: Entry
        let fields: [String: FieldResolver]

        init(_ entry: Entry) {
            self.entry = entry
            fields = Dictionary(entry.fields.map { ($0.name, $0.resolver) }, uniquingKeysWith: { first, _ in first })
        }
    }

    init(_ entries: [Entry]) {
        self.entries = entries
        var types: [String: Resolvers] = [:]
        for entry in entries where types[entry.type.rawValue] == nil { types[entry.type.rawValue] = Resolvers(entry) }
        self.types = types
    }

    /// How `field` is answered; nil for a field the registry does not know (`__typename`,
    /// or any field once `mismatches` found it).
    func resolver(of field: PlannedField) -> FieldResolver? { types[field.parentType.name]?.fields[field.name] }

    /// The table whose rows are the parents of `field`, for relations; nil for other types.
    func parentTable(of field: PlannedField) -> Table? {
        guard case .rows(let table)? = types[field.parentType.name]?.entry.backing else { return nil }
        return table
    }

    func entry(_ type: ObjectType) -> Entry? { types[type.rawValue]?.entry }
}

extension Registry {
    /// The contract's registry: every object type of schema/schema.graphql.
    public static let contract = Registry(
        [queryRoot, mutationRoot] + rowTypes + reports + connections + payloads)

    private static let queryRoot = Entry(type: .query, backing: .queryRoot, fields: [
        ("customer", .lookup(Lookup(table: Tables.customer, column: "id", argument: "id"))),
        ("customerByExternalId", .lookup(Lookup(table: Tables.customer, column: "externalId", argument: "externalId"))),
        ("customers", .connection(RootConnection(table: Tables.customer, filters: Filters.customers))),
        ("invoice", .lookup(Lookup(table: Tables.invoice, column: "id", argument: "id"))),
        ("invoiceByNumber", .lookup(Lookup(table: Tables.invoice, column: "number", argument: "number"))),
        ("invoices", .connection(RootConnection(table: Tables.invoice, filters: Filters.invoices))),
        ("payment", .lookup(Lookup(table: Tables.payment, column: "id", argument: "id"))),
        ("payments", .connection(RootConnection(table: Tables.payment, filters: Filters.payments))),
        ("refund", .lookup(Lookup(table: Tables.refund, column: "id", argument: "id"))),
        ("refunds", .connection(RootConnection(table: Tables.refund, filters: Filters.refunds))),
        ("creditNote", .lookup(Lookup(table: Tables.creditNote, column: "id", argument: "id"))),
        ("creditNotes", .connection(RootConnection(table: Tables.creditNote, filters: Filters.creditNotes))),
        ("arAging", .report(.aging)),
        ("monthlySummary", .report(.monthlySummary)),
    ])

    private static let mutationRoot = Entry(type: .mutation, backing: .mutationRoot,
                                            fields: MutationKind.allCases.map { ($0.rawValue, .mutation($0)) })

    /// The relations are keyed by a column of the parent's own row (RULES.md section 2
    /// for the lists' orders and filters; section 4 for the audit trail's `ApiKeyRef`).
    private static let rowTypes: [Entry] = [
        .rows(.customer, Tables.customer, relations: [
            ("invoices", .list(Lists.invoicesOfCustomer, key: "id", filters: Filters.invoicesOfCustomer)),
            ("payments", .list(Lists.paymentsOfCustomer, key: "id", filters: Filters.paymentsOfCustomer)),
            ("creditNotes", .list(Lists.creditNotesOfCustomer, key: "id", filters: [])),
            ("totals", .sameRow(.customerTotals)),
        ]),
        .rows(.customerTotals, Tables.customer),
        .rows(.invoice, Tables.invoice, relations: [
            ("customer", .byID(Tables.customer, key: "customerId")),
            ("payments", .list(Lists.paymentsOfInvoice, key: "id", filters: [])),
            ("paymentApplications", .list(Lists.applicationsOfInvoice, key: "id", filters: [])),
            ("creditNotes", .list(Lists.creditNotesOfInvoice, key: "id", filters: [])),
        ]),
        .rows(.payment, Tables.payment, relations: [
            ("customer", .byID(Tables.customer, key: "customerId")),
            ("applications", .list(Lists.applicationsOfPayment, key: "id", filters: [])),
            ("invoices", .list(Lists.invoicesOfPayment, key: "id", filters: [])),
            ("refunds", .list(Lists.refundsOfPayment, key: "id", filters: [])),
        ]),
        .rows(.paymentApplication, Tables.application, relations: [
            ("payment", .byID(Tables.payment, key: "paymentId")),
            ("invoice", .byID(Tables.invoice, key: "invoiceId")),
        ]),
        .rows(.refund, Tables.refund, relations: [
            ("payment", .byID(Tables.payment, key: "paymentId")),
            ("creditNote", .byID(Tables.creditNote, key: "creditNoteId")),
            ("createdBy", .byID(Tables.apiKey, key: "createdByKey")),
        ]),
        .rows(.apiKeyRef, Tables.apiKey),
        .rows(.creditNote, Tables.creditNote, relations: [
            ("invoice", .byID(Tables.invoice, key: "invoiceId")),
            ("customer", .byID(Tables.customer, key: "customerId")),
            ("createdBy", .byID(Tables.apiKey, key: "createdByKey")),
            ("voidedBy", .byID(Tables.apiKey, key: "voidedByKey")),
            ("refunds", .list(Lists.refundsOfCreditNote, key: "id", filters: [])),
        ]),
    ]

    private static let reports: [Entry] = [report(.agingReport, .aging), report(.monthSummary, .monthlySummary)]

    private static func report(_ type: ObjectType, _ report: Report) -> Entry {
        Entry(type: type, backing: .report(report),
              fields: report.figures.enumerated().map { ($1.name, .figure(column: $0, kind: $1.kind)) })
    }

    private static let connections: [Entry] = [
        (ObjectType.customerConnection, ObjectType.customerEdge, ObjectType.customer),
        (.invoiceConnection, .invoiceEdge, .invoice), (.paymentConnection, .paymentEdge, .payment),
        (.refundConnection, .refundEdge, .refund), (.creditNoteConnection, .creditNoteEdge, .creditNote),
    ].flatMap { connection, edge, node in [
        Entry(type: connection, backing: .connection(node: node), fields: [
            ("nodes", .connectionPart(.nodes)), ("edges", .connectionPart(.edges)),
            ("pageInfo", .connectionPart(.pageInfo)), ("totalCount", .connectionPart(.totalCount)),
        ]),
        Entry(type: edge, backing: .edge(node: node), fields: [("cursor", .edgePart(.cursor)), ("node", .edgePart(.node))]),
    ] } + [
        Entry(type: .pageInfo, backing: .pageInfo, fields: [
            ("hasNextPage", .pageInfoPart(.hasNextPage)), ("endCursor", .pageInfoPart(.endCursor)),
        ]),
    ]

    /// A mutation's function answers with two ids (Mutations.swift): the refund or credit
    /// note it made or changed, then the payment or invoice it belongs to.
    private static let payloads: [Entry] = [
        Entry(type: .refundPaymentPayload, backing: .payload, fields: refundAndPayment),
        Entry(type: .createCreditNotePayload, backing: .payload, fields: creditNoteAndInvoice),
        Entry(type: .voidCreditNotePayload, backing: .payload, fields: creditNoteAndInvoice),
        Entry(type: .updateRefundPayload, backing: .payload, fields: refundAndPayment),
    ]
    private static let refundAndPayment: [(name: String, resolver: FieldResolver)] =
        [("refund", .payload(Tables.refund, resultColumn: 0)), ("payment", .payload(Tables.payment, resultColumn: 1))]
    private static let creditNoteAndInvoice: [(name: String, resolver: FieldResolver)] =
        [("creditNote", .payload(Tables.creditNote, resultColumn: 0)), ("invoice", .payload(Tables.invoice, resultColumn: 1))]
}
