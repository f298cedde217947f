import Engine
import JSON
import Schema
import Store

/// Resolves each field as the registry says (`Registry.contract`): a column of its row,
/// an object or list known without a load, or one batched load for all parents.
/// Mutation fields go to the mutation layer.
public final class BillingResolver: Resolver {
    let context: RequestContext
    /// Mutations are resolved by the mutation layer; nil when none is wired in.
    let mutations: MutationResolving?

    public init(context: RequestContext, mutations: MutationResolving? = nil) {
        self.context = context
        self.mutations = mutations
    }

    /// The scope a field needs (RULES.md section 1), checked before its arguments are
    /// (section 4: scope first): the root's reads and the audit trail need `billing:read`
    /// (even in a mutation's payload), each mutation its own.
    public func authorize(_ field: PlannedField) throws(GraphQLError) {
        try authorize(field, RegisteredField.of(field).resolver)
    }

    private func authorize(_ field: PlannedField, _ resolver: FieldResolver?) throws(GraphQLError) {
        let scope: String?
        switch resolver {
        case .lookup?, .connection?, .report?, .column(_, auditTrail: true)?: scope = "billing:read"
        case .byID(let table, _)?: scope = table.type == .apiKeyRef ? "billing:read" : nil
        case .mutation(let mutation)?: scope = mutation.scope
        default: scope = nil
        }
        if let scope { try context.require(scope, for: field.name) }
    }

    public func resolve(_ field: PlannedField) throws(GraphQLError) -> Resolution {
        let resolver = RegisteredField.of(field).resolver
        try authorize(field, resolver)
        try Arguments.requireStorable(field)
        // Unknown only if the start-up check was skipped (`Registry.mismatches`).
        guard let resolver else {
            throw GraphQLError("No resolver for \(field.parentType.name).\(field.name).", code: .internalServerError)
        }
        switch resolver {
        case .column(let column, _): return .cell(column: column, kind: .raw)  // binary rows: written by type
        case .sameRow:
            // The totals are columns of the customer's own row, seen as another object.
            return .object { node in (node as? RowNode).map { RowNode($0.rows, $0.row, $0.shape) } }
        case .byID(let table, let key):
            return .load(ByIdLoad(context: context, table: table, ids: .parentColumn(try parentKey(key, of: field)),
                                  columns: Columns.needed(table, by: field), texts: field.derived(SQLTexts.init)))
        case .list(let query, let key, let filters):
            return try list(field, query, key: parentKey(key, of: field), filters: filters)
        case .lookup(let lookup):
            return self.lookup(field, lookup)
        case .connection(let connection):
            return .load(try Connections.load(field, connection, context: context))
        case .report(let report):
            return try report.resolve(field, context: context)
        case .figure(let column, let kind): return .cell(column: column, kind: kind)
        case .connectionPart(let part): return connectionPart(part)
        case .edgePart(let part): return edgePart(part)
        case .pageInfoPart(let part): return pageInfoPart(part)
        case .mutation(let mutation):
            guard let mutations else { throw GraphQLError("Mutations are not available.", code: .internalServerError) }
            return try mutations.resolve(field, as: mutation, context: context)
        case .payload(let table, let column):
            return .load(ByIdLoad(context: context, table: table, ids: .parentColumn(ParentKey(column: column)),
                                  columns: Columns.needed(table, by: field), texts: field.derived(SQLTexts.init)))
        }
    }

    // MARK: - Fields of rows

    /// The column of the parent's row holding the key a relation follows.
    private func parentKey(_ key: String, of field: PlannedField) throws(GraphQLError) -> ParentKey {
        guard let parent = RegisteredField.of(field).parentTable else {  // the start-up check allows relations on rows only
            throw GraphQLError("Internal server error.", code: .internalServerError)
        }
        return ParentKey(column: parent.column(key))
    }

    private func list(_ field: PlannedField, _ query: ChildListQuery, key: ParentKey, filters: [Filter]) throws(GraphQLError) -> Resolution {
        let hasFirst = field.definition.argument("first") != nil
        // The arguments of the lists that filter are named like the root connections'
        // filter fields, and mean the same (RULES.md section 2).
        return .load(ChildListLoad(context: context, query: query, columns: Columns.needed(query.table, by: field),
                                   key: key, first: hasFirst ? try Arguments.first(field, default: 100) : nil,
                                   newestFirst: Arguments.newestFirst(field),
                                   filters: Connections.conditions(filters, on: query.table) { field.argument($0) },
                                   texts: field.derived(SQLTexts.init)))
    }

    // MARK: - Root fields

    private func lookup(_ field: PlannedField, _ lookup: Lookup) -> Resolution {
        let table = lookup.table
        let columns = Columns.needed(table, by: field)
        func nothing() -> Resolution { .load(SingleQueryLoad(context: context, statement: nil, shape: columns, list: false)) }
        let value = field.argument(lookup.argument)?.stringValue
        if lookup.column == "id" {
            // An id that is not a lowercase UUID matches nothing. One that is is read as a
            // relation's objects are, so that concurrent requests' lookups share a
            // statement (README, "Coalescing").
            guard var text = value, Scalars.isLowercaseUUID(text), let id = text.withUTF8(UUIDKey.init) else { return nothing() }
            return .load(ByIdLoad(context: context, table: table, ids: .argument(id), columns: columns,
                                  texts: field.derived(SQLTexts.init)))
        }
        guard let value else { return nothing() }
        let sql = field.derived(SQLTexts.init).text(0) { """
            SELECT \(columns.selectList) FROM \(table.from)
            WHERE \(table.alias).organisation_id = $1::uuid AND \(table.sql(lookup.column)) = $2
            """ }
        return .load(SingleQueryLoad(context: context, statement: Statement(sql, [context.organisationID, value], binaryResults: true),
                                     shape: columns, list: false))
    }

    // MARK: - Connections, edges, page info

    private func connectionPart(_ part: ConnectionPart) -> Resolution {
        switch part {
        case .nodes:
            return .list { node in
                guard let page = (node as? ConnectionNode)?.page else { return [] }
                return (0..<page.count).map { RowNode(page.rows, $0, page.shape) }
            }
        case .edges:
            return .list { node in
                guard let page = (node as? ConnectionNode)?.page else { return [] }
                return (0..<page.count).map { EdgeNode(page, $0) }
            }
        case .pageInfo: return .object { node in (node as? ConnectionNode).map { PageInfoNode($0.page) } }
        case .totalCount:
            return .scalar { node in (node as? ConnectionNode)?.page.totalCount.map(ScalarValue.int) ?? .null }
        }
    }

    private func edgePart(_ part: EdgePart) -> Resolution {
        switch part {
        case .cursor:
            return .scalar { node in
                guard let edge = node as? EdgeNode else { return .null }
                return .string(edge.page.cursorOf(edge.row))
            }
        case .node:
            return .object { node in
                guard let edge = node as? EdgeNode else { return nil }
                return RowNode(edge.page.rows, edge.row, edge.page.shape)
            }
        }
    }

    private func pageInfoPart(_ part: PageInfoPart) -> Resolution {
        switch part {
        case .hasNextPage:
            return .scalar { node in .bool((node as? PageInfoNode)?.page.hasNextPage ?? false) }
        case .endCursor:
            return .scalar { node in
                guard let page = (node as? PageInfoNode)?.page, page.count > 0 else { return .null }
                return .string(page.cursorOf(page.count - 1))
            }
        }
    }
}

/// What the contract's registry says of a field, looked up once per field and kept with
/// its shape (`PlannedField.derived`): a lookup by type and field name cost about 600
/// instructions, and a request resolves every field it plans (an invoice detail, 48).
final class RegisteredField: Sendable {
    let resolver: FieldResolver?
    /// The table whose rows are the field's parents (`Registry.parentTable(of:)`).
    let parentTable: Table?

    private init(_ field: PlannedField) {
        resolver = Registry.contract.resolver(of: field)
        parentTable = Registry.contract.parentTable(of: field)
    }

    static func of(_ field: PlannedField) -> RegisteredField { field.derived { RegisteredField(field) } }
}

/// Mutations plug into the resolver through this (see Mutations.swift).
public protocol MutationResolving {
    func resolve(_ field: PlannedField, as mutation: MutationKind, context: RequestContext) throws(GraphQLError) -> Resolution
}

/// Which columns a load must read: those its objects' selected fields show, the keys
/// their relations follow, and the id.
enum Columns {
    /// The columns `field` reads of `table`; `sortKey`: also the sort key, which a page's
    /// cursors carry. Kept with the field's shape (`PlannedField.derived`): the columns
    /// follow from the field's selections alone, and finding them costs more than the rest
    /// of resolving the field.
    static func needed(_ table: Table, by field: PlannedField, sortKey: Bool = false) -> ColumnSet {
        let kept = field.derived { ColumnSet(table, columns: chosen(table, by: field), sortKey: sortKey) }
        if kept.table === table && (kept.sortKeyPosition >= 0) == sortKey { return kept }
        return ColumnSet(table, columns: chosen(table, by: field), sortKey: sortKey)
    }

    private static func chosen(_ table: Table, by field: PlannedField) -> Set<Int> {
        var columns = Set(table.index["id"].map { [$0] } ?? [])
        collect(table, objectFields(of: field), into: &columns)
        return columns
    }

    /// The fields selected on the objects a field returns (through a connection's
    /// `nodes` and `edges.node` for the root connections).
    private static func objectFields(of field: PlannedField) -> [PlannedField] {
        var fields: [PlannedField] = []
        for child in field.children {
            guard case .connectionPart(let part)? = Registry.contract.resolver(of: child) else {
                fields.append(child)  // the field returns objects, not a connection
                continue
            }
            switch part {
            case .nodes: fields += child.children
            case .edges:
                for edgeField in child.children {
                    if case .edgePart(.node)? = Registry.contract.resolver(of: edgeField) { fields += edgeField.children }
                }
            case .pageInfo, .totalCount: break
            }
        }
        return fields
    }

    private static func collect(_ table: Table, _ fields: [PlannedField], into columns: inout Set<Int>) {
        for field in fields {
            switch Registry.contract.resolver(of: field) {
            case .column(let column, _)?: columns.insert(column)
            case .sameRow?: collect(table, field.children, into: &columns)
            case .byID(_, let key)?, .list(_, let key, _)?: columns.insert(table.column(key))
            case .lookup?, .connection?, .report?, .figure?, .connectionPart?, .edgePart?, .pageInfoPart?, .mutation?, .payload?,
                 nil:  // no field of rows; nil is `__typename`
                break
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
    static func exponent(of number: String) -> Int {
        // Over the UTF-8 bytes: a search by `Character` costs hundreds of instructions a
        // number, and every `first:` argument of every request is one.
        let utf8 = number.utf8
        guard let e = utf8.firstIndex(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) else { return 0 }
        return Int(Substring(utf8[utf8.index(after: e)...])) ?? Int.max
    }
}
