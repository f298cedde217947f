import Engine
import JSON
import Schema
import Store

/// Resolves the read side of the contract: each field of each type is a column of its
/// row, an object or list known without a load, or one batched load for all parents.
public final class BillingResolver: Resolver {
    let context: RequestContext
    /// Mutations are resolved by the mutation layer; nil when none is wired in.
    let mutations: MutationResolving?

    public init(context: RequestContext, mutations: MutationResolving? = nil) {
        self.context = context
        self.mutations = mutations
    }

    public func resolve(_ field: PlannedField) throws(GraphQLError) -> Resolution {
        try Arguments.requireStorable(field)
        let type = field.parentType.name
        switch type {
        case "Query":
            try context.require("billing:read", for: field.name)
            return try rootField(field)
        case "Mutation":
            guard let mutations else { throw GraphQLError("Mutations are not available.", code: .internalServerError) }
            return try mutations.resolve(field, context: context)
        case "CustomerConnection", "InvoiceConnection", "PaymentConnection", "RefundConnection", "CreditNoteConnection":
            return connectionField(field)
        case "CustomerEdge", "InvoiceEdge", "PaymentEdge", "RefundEdge", "CreditNoteEdge":
            return edgeField(field)
        case "PageInfo":
            return pageInfoField(field)
        case "AgingReport", "MonthSummary":
            return reportField(field, type: type)
        case "RefundPaymentPayload", "CreateCreditNotePayload", "VoidCreditNotePayload", "UpdateRefundPayload":
            guard let r = Payloads.resolve(field, context: context) else {
                throw GraphQLError("No resolver for \(type).\(field.name).", code: .internalServerError)
            }
            return r
        default:
            guard let table = Tables.table(for: type) else {
                throw GraphQLError("No resolver for \(type).\(field.name).", code: .internalServerError)
            }
            return try objectField(field, table: table)
        }
    }

    // MARK: - Object types backed by rows

    private func objectField(_ field: PlannedField, table: Table) throws(GraphQLError) -> Resolution {
        // The audit trail needs billing:read, even in a mutation's payload (RULES.md section 4).
        if field.returnType.namedType == "ApiKeyRef" { try context.require("billing:read", for: field.name) }
        // Columns first: most fields are, and no relation has a column's name.
        if let column = table.index[field.name] { return .cell(column: column, kind: .raw) }  // binary rows: written by type
        guard let relation = Relations.of(table.typeName, field.name) else {
            throw GraphQLError("No resolver for \(table.typeName).\(field.name).", code: .internalServerError)
        }
        return try resolve(relation, field, parent: table)
    }

    private func resolve(_ relation: Relation, _ field: PlannedField, parent: Table) throws(GraphQLError) -> Resolution {
        let key = ParentKey(column: parent.column(relation.key))
        switch relation.kind {
        case .sameRow:
            // The totals are columns of the customer's own row, seen as another object.
            return .object { node in (node as? RowNode).map { RowNode($0.rows, $0.row, $0.shape) } }
        case .byID(let table):
            return .load(ByIdLoad(context: context, table: table, key: key, columns: Columns.needed(table, by: field)))
        case .list(let query):
            let hasFirst = field.definition.argument("first") != nil
            return .load(ChildListLoad(context: context, query: query, columns: Columns.needed(query.table, by: field),
                                       key: key, first: hasFirst ? try Arguments.first(field, default: 100) : nil,
                                       newestFirst: Arguments.newestFirst(field), filters: listFilters(field, parent: parent)))
        }
    }

    /// The arguments of the nested lists that filter (RULES.md section 2). They are named
    /// like the root connections' filter fields, and mean the same.
    private func listFilters(_ field: PlannedField, parent: Table) -> [Connections.Filter] {
        let arguments = JSONValue.object(field.arguments.map { ($0.key, $0.value) })
        switch (parent.typeName, field.name) {
        case ("Customer", "invoices"): return Connections.invoiceFilters(arguments)
        case ("Customer", "payments"): return Connections.paymentFilters(arguments)
        default: return []
        }
    }

    // MARK: - Root fields

    private func rootField(_ field: PlannedField) throws(GraphQLError) -> Resolution {
        let t = Tables.self
        switch field.name {
        case "customer": return lookup(field, t.customer, "c.id", uuidArgument(field, "id"))
        case "customerByExternalId": return lookup(field, t.customer, "c.external_id", field.argument("externalId")?.stringValue)
        case "invoice": return lookup(field, t.invoice, "i.id", uuidArgument(field, "id"))
        case "invoiceByNumber": return lookup(field, t.invoice, "i.number", field.argument("number")?.stringValue)
        case "payment": return lookup(field, t.payment, "p.id", uuidArgument(field, "id"))
        case "refund": return lookup(field, t.refund, "r.id", uuidArgument(field, "id"))
        case "creditNote": return lookup(field, t.creditNote, "n.id", uuidArgument(field, "id"))
        case "customers", "invoices", "payments", "refunds", "creditNotes":
            return .load(try Connections.load(field, context: context))
        case "arAging": return try Reports.aging(field, context: context)
        case "monthlySummary": return try Reports.monthlySummary(field, context: context)
        default:
            throw GraphQLError("No resolver for Query.\(field.name).", code: .internalServerError)
        }
    }

    /// An id argument, or nil when it is not a lowercase UUID (which matches nothing).
    private func uuidArgument(_ field: PlannedField, _ name: String) -> String? {
        guard let id = field.argument(name)?.stringValue, Scalars.isLowercaseUUID(id) else { return nil }
        return id
    }

    private func lookup(_ field: PlannedField, _ table: Table, _ column: String, _ value: String?) -> Resolution {
        let columns = Columns.needed(table, by: field)
        guard let value else { return .load(SingleQueryLoad(context: context, statement: nil, shape: columns, list: false)) }
        var p = Parameters()
        let cast = column.hasSuffix(".id") ? "::uuid" : ""
        let sql = """
            SELECT \(columns.selectList) FROM \(table.from)
            WHERE \(table.alias).organisation_id = \(p.bind(context.organisationID))::uuid AND \(column) = \(p.bind(value))\(cast)
            """
        return .load(SingleQueryLoad(context: context, statement: Statement(sql, p.values, binaryResults: true), shape: columns,
                                     list: false))
    }

    // MARK: - Connections, edges, page info

    private func connectionField(_ field: PlannedField) -> Resolution {
        switch field.name {
        case "nodes":
            return .list { node in
                guard let page = (node as? ConnectionNode)?.page else { return [] }
                return (0..<page.count).map { RowNode(page.rows, $0, page.shape) }
            }
        case "edges":
            return .list { node in
                guard let page = (node as? ConnectionNode)?.page else { return [] }
                return (0..<page.count).map { EdgeNode(page, $0) }
            }
        case "pageInfo": return .object { node in (node as? ConnectionNode).map { PageInfoNode($0.page) } }
        default:  // totalCount
            return .scalar { node in (node as? ConnectionNode)?.page.totalCount.map(ScalarValue.int) ?? .null }
        }
    }

    private func edgeField(_ field: PlannedField) -> Resolution {
        if field.name == "cursor" {
            return .scalar { node in
                guard let edge = node as? EdgeNode else { return .null }
                return .string(edge.page.cursorOf(edge.row))
            }
        }
        return .object { node in
            guard let edge = node as? EdgeNode else { return nil }
            return RowNode(edge.page.rows, edge.row, edge.page.shape)
        }
    }

    private func pageInfoField(_ field: PlannedField) -> Resolution {
        if field.name == "hasNextPage" {
            return .scalar { node in .bool((node as? PageInfoNode)?.page.hasNextPage ?? false) }
        }
        return .scalar { node in
            guard let page = (node as? PageInfoNode)?.page, page.count > 0 else { return .null }
            return .string(page.cursorOf(page.count - 1))
        }
    }

    private func reportField(_ field: PlannedField, type: String) -> Resolution {
        let columns = type == "AgingReport" ? Reports.agingColumns : Reports.monthColumns
        guard let index = columns.firstIndex(of: field.name) else { return .scalar { _ in .null } }
        let isText = ["asOf", "currency", "month"].contains(field.name)
        return .cell(column: index, kind: isText ? .string : .raw)
    }
}

/// Mutations plug into the resolver through this (see Mutations.swift).
public protocol MutationResolving {
    func resolve(_ field: PlannedField, context: RequestContext) throws(GraphQLError) -> Resolution
}

/// How a field of a row-backed type reaches other rows, keyed by a column of its own row.
struct Relation {
    enum Kind {
        /// The same row seen as another type (a customer's totals).
        case sameRow
        /// One object by the id in `key`.
        case byID(Table)
        /// A list per parent, matched on the parent's `key`.
        case list(ChildListQuery)
    }
    let key: String
    let kind: Kind
}

enum Relations {
    static func of(_ type: String, _ field: String) -> Relation? {
        let t = Tables.self
        switch (type, field) {
        case ("Customer", "totals"): return Relation(key: "id", kind: .sameRow)
        case ("Customer", "invoices"): return Relation(key: "id", kind: .list(Lists.invoicesOfCustomer))
        case ("Customer", "payments"): return Relation(key: "id", kind: .list(Lists.paymentsOfCustomer))
        case ("Customer", "creditNotes"): return Relation(key: "id", kind: .list(Lists.creditNotesOfCustomer))
        case ("Invoice", "customer"), ("Payment", "customer"), ("CreditNote", "customer"):
            return Relation(key: "customerId", kind: .byID(t.customer))
        case ("Invoice", "payments"): return Relation(key: "id", kind: .list(Lists.paymentsOfInvoice))
        case ("Invoice", "paymentApplications"): return Relation(key: "id", kind: .list(Lists.applicationsOfInvoice))
        case ("Invoice", "creditNotes"): return Relation(key: "id", kind: .list(Lists.creditNotesOfInvoice))
        case ("Payment", "applications"): return Relation(key: "id", kind: .list(Lists.applicationsOfPayment))
        case ("Payment", "invoices"): return Relation(key: "id", kind: .list(Lists.invoicesOfPayment))
        case ("Payment", "refunds"): return Relation(key: "id", kind: .list(Lists.refundsOfPayment))
        case ("PaymentApplication", "payment"), ("Refund", "payment"): return Relation(key: "paymentId", kind: .byID(t.payment))
        case ("PaymentApplication", "invoice"), ("CreditNote", "invoice"): return Relation(key: "invoiceId", kind: .byID(t.invoice))
        case ("Refund", "creditNote"): return Relation(key: "creditNoteId", kind: .byID(t.creditNote))
        case ("CreditNote", "refunds"): return Relation(key: "id", kind: .list(Lists.refundsOfCreditNote))
        case ("Refund", "createdBy"), ("CreditNote", "createdBy"): return Relation(key: "createdByKey", kind: .byID(t.apiKey))
        case ("CreditNote", "voidedBy"): return Relation(key: "voidedByKey", kind: .byID(t.apiKey))
        default: return nil
        }
    }
}

/// Which columns a load must read: those its objects' selected fields show, the keys
/// their relations follow, and the id.
enum Columns {
    /// `sortKey`: also the sort key, which a page's cursors carry.
    static func needed(_ table: Table, by field: PlannedField, sortKey: Bool = false) -> ColumnSet {
        var columns = Set(table.index["id"].map { [$0] } ?? [])
        collect(table, objectFields(of: field), into: &columns)
        return ColumnSet(table, columns: columns, sortKey: sortKey)
    }

    /// The fields selected on the objects a field returns (through a connection's
    /// `nodes` and `edges.node` for the root connections).
    private static func objectFields(of field: PlannedField) -> [PlannedField] {
        guard field.returnType.namedType.hasSuffix("Connection") else { return field.children }
        var fields: [PlannedField] = []
        for child in field.children {
            if child.name == "nodes" { fields += child.children }
            if child.name == "edges" { fields += child.children.filter { $0.name == "node" }.flatMap(\.children) }
        }
        return fields
    }

    private static func collect(_ table: Table, _ fields: [PlannedField], into columns: inout Set<Int>) {
        for f in fields {
            if let i = table.index[f.name] {
                columns.insert(i)
            } else if let relation = Relations.of(table.typeName, f.name) {
                if case .sameRow = relation.kind { collect(table, f.children, into: &columns) }
                columns.insert(table.column(relation.key))
            }
        }
    }
}

/// The lists below objects: one lateral subquery each.
enum Lists {
    static let invoicesOfCustomer = ChildListQuery(
        table: Tables.invoice, from: "invoice i", parentMatch: "i.customer_id = k.pid",
        organisationColumn: "i.organisation_id", orderColumns: ["i.issued_on", "i.id"])
    static let paymentsOfCustomer = ChildListQuery(
        table: Tables.payment, from: "payment p", parentMatch: "p.customer_id = k.pid",
        organisationColumn: "p.organisation_id", orderColumns: ["p.received_on", "p.id"])
    static let creditNotesOfCustomer = ChildListQuery(
        table: Tables.creditNote, from: "credit_note n", parentMatch: "n.customer_id = k.pid",
        organisationColumn: "n.organisation_id", orderColumns: ["n.created_at", "n.id"])
    static let paymentsOfInvoice = ChildListQuery(
        table: Tables.payment, from: "payment_application a JOIN payment p ON p.id = a.payment_id",
        parentMatch: "a.invoice_id = k.pid", organisationColumn: "a.organisation_id",
        orderColumns: ["a.payment_received_on", "a.payment_id"])
    static let applicationsOfInvoice = ChildListQuery(
        table: Tables.application, from: "payment_application a", parentMatch: "a.invoice_id = k.pid",
        organisationColumn: "a.organisation_id", orderColumns: ["a.payment_received_on", "a.payment_id"])
    static let creditNotesOfInvoice = ChildListQuery(
        table: Tables.creditNote, from: "credit_note n", parentMatch: "n.invoice_id = k.pid",
        organisationColumn: "n.organisation_id", orderColumns: ["n.created_at", "n.id"])
    static let applicationsOfPayment = ChildListQuery(
        table: Tables.application, from: "payment_application a", parentMatch: "a.payment_id = k.pid",
        organisationColumn: "a.organisation_id", orderColumns: ["a.invoice_issued_on", "a.invoice_id"])
    static let invoicesOfPayment = ChildListQuery(
        table: Tables.invoice, from: "payment_application a JOIN invoice i ON i.id = a.invoice_id",
        parentMatch: "a.payment_id = k.pid", organisationColumn: "a.organisation_id",
        orderColumns: ["a.invoice_issued_on", "a.invoice_id"])
    static let refundsOfPayment = ChildListQuery(
        table: Tables.refund, from: "refund r", parentMatch: "r.payment_id = k.pid",
        organisationColumn: "r.organisation_id", orderColumns: ["r.refunded_on", "r.id"])
    static let refundsOfCreditNote = ChildListQuery(
        table: Tables.refund, from: "refund r", parentMatch: "r.credit_note_id = k.pid",
        organisationColumn: "r.organisation_id", orderColumns: ["r.refunded_on", "r.id"])
}

/// Reading the contract's common arguments, with its rules for them.
enum Arguments {
    /// `first`, within 1 to 1000, or BAD_USER_INPUT.
    static func first(_ field: PlannedField, default value: Int) throws(GraphQLError) -> Int {
        guard let given = field.argument("first") else { return value }
        guard let n = given.int64Value, n >= 1, n <= 1000 else {
            throw GraphQLError("Argument \"first\" must be between 1 and 1000; got \(given.serialized).", code: .badUserInput)
        }
        return Int(n)
    }

    static func newestFirst(_ field: PlannedField) -> Bool {
        field.argument("order")?.stringValue == "NEWEST_FIRST"
    }

    /// RULES.md section 5: values PostgreSQL cannot store are the client's mistake, found
    /// before any statement: a string (or a `JSON` key) holding U+0000, which `text` and
    /// `jsonb` refuse, and a `JSON` number beyond what `numeric` holds.
    static func requireStorable(_ field: PlannedField) throws(GraphQLError) {
        for (name, value) in field.arguments where !isStorable(value) {
            throw GraphQLError("Argument \"\(name)\" holds a value that cannot be stored: strings may not contain U+0000, and numbers must stay within 1000 digits.",
                               code: .badUserInput)
        }
    }

    private static func isStorable(_ value: JSONValue) -> Bool {
        switch value {
        case .null, .bool: return true
        case .number(let text): return text.utf8.count <= 1000 && exponent(of: text).magnitude <= 1000
        case .string(let text): return !text.utf8.contains(0)
        case .array(let items): return items.allSatisfy(isStorable)
        case .object(let members): return members.allSatisfy { !$0.0.utf8.contains(0) && isStorable($0.1) }
        }
    }

    /// The exponent written in a JSON number (`1e400` has 400), 0 when there is none.
    private static func exponent(of number: String) -> Int {
        guard let e = number.firstIndex(where: { $0 == "e" || $0 == "E" }) else { return 0 }
        return Int(number[number.index(after: e)...]) ?? Int.max
    }
}
