import Engine
import JSON
import Schema
import Store
import Synchronization

/// The key a child load needs from each parent: a column of the parent's row, always a
/// `uuid` (an id, or a reference to one).
struct ParentKey {
    let column: Int
}

/// A `uuid` as two words, read from PostgreSQL's binary format or its text without
/// making a `String`: a key is read for every parent of a load, so this is cheap.
struct UUIDKey: Hashable {
    let high: UInt64
    let low: UInt64

    init(high: UInt64, low: UInt64) {
        (self.high, self.low) = (high, low)
    }

    /// From the 16 bytes of the binary format, in network order: two big-endian words.
    init(binary bytes: UnsafeBufferPointer<UInt8>) {
        precondition(bytes.count == 16)
        let raw = UnsafeRawPointer(bytes.baseAddress!)
        high = UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self))
        low = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    /// From `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (any case); nil for other text.
    init?(_ text: UnsafeBufferPointer<UInt8>) {
        guard text.count == 36 else { return nil }
        var words: (UInt64, UInt64) = (0, 0)
        var nibbles = 0
        for (i, byte) in text.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let value: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte &- UInt8(ascii: "a") &+ 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = byte &- UInt8(ascii: "A") &+ 10
            default: return nil
            }
            if nibbles < 16 { words.0 = words.0 << 4 | UInt64(value) } else { words.1 = words.1 << 4 | UInt64(value) }
            nibbles += 1
        }
        (high, low) = words
    }
}

/// The parents' keys of one load: each parent's place among the keys sent, and those keys
/// as the `uuid[]` the statement unnests (its ordinality is that place + 1).
struct ParentKeys {
    /// For each parent, the index of its key among those sent; -1 when it has none.
    private(set) var slots: [Int] = []
    /// The keys sent, in PostgreSQL's binary format.
    private(set) var uuids: UUIDArray
    /// How many keys the statement unnests.
    var sentCount: Int { uuids.count }
    /// Each key's place among those sent, when deduplicated.
    private var places = UUIDPlaces(capacity: 0)

    /// The place of `id` among the keys sent (deduplicated keys only).
    func place(of id: UUIDKey) -> Int? { places[id] }

    /// `deduplicated`: parents with the same key share one place (and one read). Lists
    /// are read per parent instead, with no hashing: parents of a list level rarely
    /// share a key, and when they do each parent's list is in the response anyway, so
    /// the rows read stay within what the item budget allows.
    init(_ parents: [Node], _ key: ParentKey, deduplicated: Bool) {
        var seen = UUIDPlaces(capacity: deduplicated ? parents.count : 0)
        defer { places = seen }
        uuids = UUIDArray(reservingCapacity: parents.count)
        slots.reserveCapacity(parents.count)
        for parent in parents {
            // Rows of loads are binary (16 bytes); a mutation's own result row is text.
            let slot = (parent as? RowNode)?.withBytes(key.column) { bytes -> Int in
                guard let id = bytes.count == 16 ? UUIDKey(binary: bytes) : UUIDKey(bytes) else { return -1 }
                if deduplicated {
                    let place = seen.place(of: id, else: sentCount)
                    if place < sentCount { return place }
                }
                uuids.append(high: id.high, low: id.low)
                return sentCount - 1
            }
            slots.append(slot ?? -1)
        }
    }
}

extension ParentKeys {
    /// One id for every parent: a root lookup's argument (`invoice(id:)`), read as the
    /// parents' keys are, so that concurrent requests' lookups may share a statement.
    init(_ id: UUIDKey, parents: Int) {
        uuids = UUIDArray(reservingCapacity: 1)
        uuids.append(high: id.high, low: id.low)
        slots = Array(repeating: 0, count: parents)
    }
}

/// Rows grouped by the place of their parent key, keeping row order.
private func groupByOrdinal(_ rows: RowSlice, groups: Int, shape: ColumnSet) -> [[Node]] {
    var grouped = [[Node]](repeating: [], count: groups)
    rows.forEach(places: groups) { r, place in grouped[place].append(RowNode(rows.rows, r, shape)) }
    return grouped
}

private func budgetExceeded(_ limit: Int) -> GraphQLError {
    GraphQLError("The result would hold more than \(limit) list items.", code: .queryTooComplex)
}

/// The SQL texts a field's loads send, made once per field and kept with its shape
/// (`PlannedField.derived`, so they may depend on the field's selections and resolver
/// only). Building a text by interpolation cost about 3,000 instructions a load, a tenth
/// of an invoice detail's request. A load names each text it may send by a small number
/// (its choices that a request makes: an order, a limit).
final class SQLTexts: Sendable {
    private let texts = Mutex<[Int: String]>([:])

    init() {}

    func text(_ variant: Int, _ make: () -> String) -> String {
        if let kept = texts.withLock({ $0[variant] }) { return kept }
        let made = make()
        texts.withLock { $0[variant] = made }
        return made
    }
}

/// Objects by id, one statement for all parents: `invoice.customer`, `refund.payment`, ...
/// and the root lookups by id (`invoice(id:)`), whose one id is the argument's.
struct ByIdLoad: BatchLoad {
    /// Where the ids come from.
    enum IDs {
        /// A column of each parent's row.
        case parentColumn(ParentKey)
        /// The field's argument, the same for every parent.
        case argument(UUIDKey)
    }

    let context: RequestContext
    let table: Table
    let ids: IDs
    let columns: ColumnSet
    /// The field's (`SQLTexts`): 0 the lateral probe, 1 `= ANY`.
    let texts: SQLTexts

    /// From this many ids on, a load is read by `= ANY` for this request alone (`loadMany`).
    static let manyKeys = 32

    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        let keys = switch ids {
        case .parentColumn(let key): ParentKeys(parents, key, deduplicated: true)
        case .argument(let id): ParentKeys(id, parents: parents.count)
        }
        if keys.sentCount == 0 { return completion(.success(parents.map { _ in .object(nil) })) }
        if keys.sentCount >= Self.manyKeys { return loadMany(keys, completion: completion) }
        // One primary-key probe per id, never a scan of the table, however many ids a
        // level asks for. (LIMIT 1 keeps PostgreSQL from flattening the lateral subquery
        // into a hash join over the whole table.) Each id is matched with its own
        // organisation, so that loads of several requests may share the statement.
        let sql = texts.text(0) { """
            SELECT x.* FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(id, org, ord)
            CROSS JOIN LATERAL (
                SELECT \(columns.selectList), k.ord FROM \(table.from)
                WHERE \(table.alias).id = k.id AND \(table.alias).organisation_id = k.org
                LIMIT 1
            ) x
            """ }
        let read = SharedRead(sql: sql, keys: keys, organisationID: context.organisationID, rest: [])
        context.query(read, shared: keys.sentCount <= SharedRead.maxKeys) { [columns] result in
            completion(result.map { rows in
                var found = [Node?](repeating: nil, count: keys.sentCount)
                rows.forEach(places: found.count) { r, place in found[place] = RowNode(rows.rows, r, columns) }
                return keys.slots.map { slot in .object(slot < 0 ? nil : found[slot]) }
            })
        }
    }

    /// Many ids (the customers of a 1,000-invoice page): one index scan for all of them
    /// (`= ANY`, the array hidden from the planner in a subquery, which would otherwise
    /// see a thousand ids and scan the whole table), in this request's organisation, and
    /// each row given back to the parents of its id. PostgreSQL spends a quarter less than
    /// on a lateral probe per id (RESULTS.md); such loads are not shared, their ids being
    /// matched with one organisation, not each with its own.
    private func loadMany(_ keys: ParentKeys, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        let sql = texts.text(1) { """
            SELECT \(columns.selectList) FROM \(table.from)
            WHERE \(table.alias).id = ANY((SELECT $1::uuid[])::uuid[]) AND \(table.alias).organisation_id = $2::uuid
            """ }
        let statement = Statement(sql, values: [.uuids(keys.uuids), .text(context.organisationID)], binaryResults: true)
        let idPosition = columns.position[table.column("id")]
        context.query(statement) { [columns] result in
            completion(result.map { rows in
                var found = [Node?](repeating: nil, count: keys.sentCount)
                for r in 0..<rows.rowCount {
                    guard let place = rows.withBytes(r, idPosition, { keys.place(of: UUIDKey(binary: $0)) }) ?? nil else { continue }
                    found[place] = RowNode(rows, r, columns)
                }
                return keys.slots.map { slot in .object(slot < 0 ? nil : found[slot]) }
            })
        }
    }
}

/// How a child list is read for one parent: the body of the lateral subquery.
struct ChildListQuery {
    let table: Table
    /// FROM clause, joins included; the child table's alias must be `table.alias`.
    let from: String
    /// Matches the parent key, written with `k.pid`.
    let parentMatch: String
    let organisationColumn: String
    /// ORDER BY columns for OLDEST_FIRST; NEWEST_FIRST reverses each.
    let orderColumns: [String]
}

/// A list per parent in one statement, with a per-parent limit through a lateral join.
/// When the request's item budget could be exceeded (keys × limit over the budget), the
/// whole statement is limited to what the budget allows and runs for this request alone;
/// otherwise it needs no such limit and may be shared with the identical loads of other
/// requests (`SharedRead`), which then cannot cut this one's rows.
///
/// A list without a limit (`Invoice.paymentApplications`) is read, when it may be shared
/// (a query's, with coalescing on), as if its limit were `probe` + 1: a parent given more
/// than `probe` rows may have more still, and the load is read again alone, limited by the
/// budget only. A detail view's applications (a handful an invoice) thus share a
/// statement like its other lists.
struct ChildListLoad: BatchLoad {
    let context: RequestContext
    let query: ChildListQuery
    let columns: ColumnSet
    let key: ParentKey
    let first: Int?
    let newestFirst: Bool
    /// Extra conditions, each a closure binding its own parameters.
    let filters: [(inout Parameters) -> String]
    /// The field's (`SQLTexts`), for loads without filters: by order and statement limit.
    let texts: SQLTexts

    /// The rows a parent of a list without a limit may have and still be read in a shared statement.
    static let probe = 100

    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        let keys = ParentKeys(parents, key, deduplicated: false)
        if keys.sentCount == 0 { return completion(.success(parents.map { _ in .list([]) })) }
        // A list without a limit probes only where it may share: alone, the probe would
        // be a statement more for nothing.
        let perParent = first ?? (context.mayShare ? Self.probe + 1 : nil)
        guard let perParent, keys.sentCount <= itemBudget / perParent else {
            return read(keys, limit: first, itemBudget: itemBudget, then: completion)
        }
        read(keys, limit: perParent, itemBudget: nil, probedWithin: first == nil ? itemBudget : nil, then: completion)
    }

    /// Each parent's list, at most `limit` rows a parent. With an `itemBudget`, the statement
    /// reads at most one row more than it and runs alone; without, it may be shared. With
    /// `probedWithin`, a parent given more than `probe` rows makes the load be read again
    /// alone, within that budget.
    private func read(_ keys: ParentKeys, limit: Int?, itemBudget: Int?, probedWithin probeBudget: Int? = nil,
                      then completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        var p = Parameters()
        _ = p.bind(nil)  // $1, the keys, and $2, their organisations (SharedRead)
        _ = p.bind(nil)
        let conditions = filters.map { $0(&p) }
        let limitParameter = limit.map { p.bind(String($0)) }
        let statementLimit = itemBudget.map { p.bind(String($0 + 1)) }
        func text() -> String {
            let direction = newestFirst ? " DESC" : ""
            let order = query.orderColumns.map { $0 + direction }.joined(separator: ", ")
            let matches = [query.parentMatch, "\(query.organisationColumn) = k.org"] + conditions
            return """
                SELECT x.* FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(pid, org, ord)
                CROSS JOIN LATERAL (
                    SELECT \(columns.selectList), k.ord FROM \(query.from)
                    WHERE \(matches.joined(separator: " AND "))
                    ORDER BY \(order)\(limitParameter.map { " LIMIT \($0)" } ?? "")
                ) x
                """ + (statementLimit.map { "\nLIMIT \($0)" } ?? "")
        }
        // Without filters, the parameters' numbers follow from the field alone (a per-parent
        // limit when shared; `first`, an argument of the field or not, when alone), and the
        // text from the order and the statement limit.
        let sql = conditions.isEmpty ? texts.text((newestFirst ? 1 : 0) | (itemBudget == nil ? 2 : 0), text) : text()
        let sharedRead = SharedRead(sql: sql, keys: keys, organisationID: context.organisationID,
                                    rest: p.values.dropFirst(2).map { $0.map(ParameterValue.text) })
        context.query(sharedRead, shared: itemBudget == nil && keys.sentCount <= SharedRead.maxKeys) { [columns] result in
            let rows: RowSlice
            switch result {
            case .failure(let error): return completion(.failure(error))
            case .success(let slice): rows = slice
            }
            if let itemBudget, rows.count > itemBudget { return completion(.failure(budgetExceeded(itemBudget))) }
            var lists = groupByOrdinal(rows, groups: keys.sentCount, shape: columns)
            if let probeBudget, lists.contains(where: { $0.count > Self.probe }) {
                return read(keys, limit: nil, itemBudget: probeBudget, then: completion)
            }
            // Keys of lists are not deduplicated: each parent's slot is its own, so its list
            // is moved out rather than copied.
            completion(.success(keys.slots.map { slot in
                var list: [Node] = []
                if slot >= 0 { swap(&list, &lists[slot]) }
                return .list(list)
            }))
        }
    }
}

/// One statement whose rows are the answer (a lookup, a report).
struct SingleQueryLoad: BatchLoad {
    let context: RequestContext
    let statement: Statement?
    let shape: ColumnSet
    let list: Bool

    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        guard let statement else {  // known to match nothing (an id that is not ours)
            return completion(.success(parents.map { _ in list ? .list([]) : .object(nil) }))
        }
        context.query(statement) { [shape] result in
            completion(result.map { rows in
                let nodes = (0..<rows.rowCount).map { RowNode(rows, $0, shape) as Node }
                let value: ChildValue = list ? .list(nodes) : .object(nodes.first)
                return parents.map { _ in value }
            })
        }
    }
}

/// A page of a root connection, read by keyset, with its total when asked for. Not a
/// node itself: the connection, its edges and its page info share it, so that no node
/// refers back to an ancestor (which would keep a whole response alive in a cycle).
final class Page {
    let rows: ResultSet
    let shape: ColumnSet
    let count: Int
    let hasNextPage: Bool
    let totalCount: Int?
    let cursorOf: (Int) -> String

    init(rows: ResultSet, shape: ColumnSet, count: Int, hasNextPage: Bool, totalCount: Int?, cursorOf: @escaping (Int) -> String) {
        self.rows = rows
        self.shape = shape
        self.count = count
        self.hasNextPage = hasNextPage
        self.totalCount = totalCount
        self.cursorOf = cursorOf
    }
}

/// The connection object (`CustomerConnection`, ...).
final class ConnectionNode: Node {
    let page: Page
    init(_ page: Page) { self.page = page }
}

/// An edge: one row of a page, with its cursor.
final class EdgeNode: Node {
    let page: Page
    let row: Int
    init(_ page: Page, _ row: Int) {
        self.page = page
        self.row = row
    }
}

final class PageInfoNode: Node {
    let page: Page
    init(_ page: Page) { self.page = page }
}

struct ConnectionLoad: BatchLoad {
    let context: RequestContext
    let name: String
    let table: Table
    let columns: ColumnSet
    let first: Int
    let after: Cursor?
    let newestFirst: Bool
    let filterFingerprint: String
    let filters: [(inout Parameters) -> String]
    let wantsTotal: Bool

    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        if first > itemBudget { return completion(.failure(budgetExceeded(itemBudget))) }
        var page: ResultSet?
        var total: Int?
        var failure: GraphQLError?
        var pending = wantsTotal ? 2 : 1
        let finish = { [self] in
            pending -= 1
            guard pending == 0 else { return }
            if let failure { return completion(.failure(failure)) }
            guard let page else { return completion(.failure(GraphQLError("Internal server error.", code: .internalServerError))) }
            let node = ConnectionNode(Page(rows: page, shape: columns, count: min(page.rowCount, first), hasNextPage: page.rowCount > first,
                                           totalCount: total, cursorOf: { row in cursor(page, row) }))
            completion(.success(parents.map { _ in .object(node) }))
        }
        context.query(pageStatement()) { result in
            switch result {
            case .success(let rows): page = rows
            case .failure(let e): failure = e
            }
            finish()
        }
        if wantsTotal {
            context.query(countStatement()) { result in
                switch result {
                case .success(let rows): total = rows.int(0, 0)
                case .failure(let e): failure = e
                }
                finish()
            }
        }
    }

    private func whereClause(_ p: inout Parameters) -> [String] {
        var conditions = ["\(table.alias).organisation_id = \(p.bind(context.organisationID))::uuid"]
        for filter in filters { conditions.append(filter(&p)) }
        return conditions
    }

    private func pageStatement() -> Statement {
        var p = Parameters()
        var conditions = whereClause(&p)
        let a = table.alias
        if let after {
            let comparison = newestFirst ? "<" : ">"
            conditions.append("(\(table.sortColumn), \(a).id) \(comparison) (\(p.bind(after.sortKey))\(table.sortKeyCast), \(p.bind(after.id))::uuid)")
        }
        let direction = newestFirst ? " DESC" : ""
        let sql = """
            SELECT \(columns.selectList) FROM \(table.from)
            WHERE \(conditions.joined(separator: " AND "))
            ORDER BY \(table.sortColumn)\(direction), \(a).id\(direction)
            LIMIT \(p.bind(String(first + 1)))
            """
        return Statement(sql, p.values, binaryResults: true)
    }

    private func countStatement() -> Statement {
        var p = Parameters()
        let conditions = whereClause(&p)
        return Statement("SELECT count(*) FROM \(table.from) WHERE \(conditions.joined(separator: " AND "))", p.values)
    }

    private func cursor(_ rows: ResultSet, _ row: Int) -> String {
        func text(_ column: Int) -> String { rows.withBytes(row, column) { BinaryCells.text($0, type: rows.type(column)) } ?? "" }
        return Cursor(connection: name, order: newestFirst ? "NEWEST_FIRST" : "OLDEST_FIRST", filterFingerprint: filterFingerprint,
                      sortKey: text(columns.sortKeyPosition), id: text(columns.position[table.column("id")])).encoded
    }
}
