import Engine
import JSON
import Schema
import Store

/// The key a child load needs from each parent: a column of the parent's row.
struct ParentKey {
    let column: Int
    func value(_ node: Node) -> String? { (node as? RowNode)?.string(column) }
}

/// Each parent's key (read once), and the distinct non-null keys in first-seen order.
private func parentKeys(_ parents: [Node], _ key: ParentKey) -> (each: [String?], distinct: [String]) {
    var seen = Set<String>()
    var distinct: [String] = []
    let each = parents.map { p -> String? in
        let k = key.value(p)
        if let k, seen.insert(k).inserted { distinct.append(k) }
        return k
    }
    return (each, distinct)
}

/// Groups rows by the ordinal of their parent key (the last column), keeping row order.
private func groupByOrdinal(_ rows: ResultSet, keys: [String], shape: ColumnSet) -> [String: [Node]] {
    let ordColumn = rows.columnCount - 1
    var groups: [String: [Node]] = [:]
    for r in 0..<rows.rowCount {
        guard let ord = rows.int(r, ordColumn), ord >= 1, ord <= keys.count else { continue }
        groups[keys[ord - 1], default: []].append(RowNode(rows, r, shape))
    }
    return groups
}

private func budgetExceeded(_ limit: Int) -> GraphQLError {
    GraphQLError("The result would hold more than \(limit) list items.", code: .queryTooComplex)
}

/// Objects by id, one statement for all parents: `invoice.customer`, `refund.payment`, ...
struct ByIdLoad: BatchLoad {
    let context: RequestContext
    let table: Table
    let key: ParentKey
    let columns: ColumnSet

    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        let (each, keys) = parentKeys(parents, key)
        if keys.isEmpty { return completion(.success(parents.map { _ in .object(nil) })) }
        var p = Parameters()
        // One primary-key probe per id, never a scan of the table, however many ids a
        // level asks for. (LIMIT 1 keeps PostgreSQL from flattening the lateral subquery
        // into a hash join over the whole table.)
        let sql = """
            SELECT x.* FROM unnest(\(p.bind(Parameters.arrayLiteral(keys)))::uuid[]) AS k(id)
            CROSS JOIN LATERAL (
                SELECT \(columns.selectList) FROM \(table.from)
                WHERE \(table.alias).id = k.id AND \(table.alias).organisation_id = \(p.bind(context.organisationID))::uuid
                LIMIT 1
            ) x
            """
        let idColumn = columns.position[table.column("id")]
        context.query(Statement(sql, p.values)) { [columns] result in
            completion(result.map { rows in
                var byID: [String: Node] = [:]
                for r in 0..<rows.rowCount {
                    if let id = rows.string(r, idColumn) { byID[id] = RowNode(rows, r, columns) }
                }
                return each.map { k in .object(k.flatMap { byID[$0] }) }
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
/// The whole statement is also limited to what the request's item budget allows.
struct ChildListLoad: BatchLoad {
    let context: RequestContext
    let query: ChildListQuery
    let columns: ColumnSet
    let key: ParentKey
    let first: Int?
    let newestFirst: Bool
    /// Extra conditions, each a closure binding its own parameters.
    let filters: [(inout Parameters) -> String]

    func load(parents: [Node], itemBudget: Int, completion: @escaping (Result<[ChildValue], GraphQLError>) -> Void) {
        let (each, keys) = parentKeys(parents, key)
        if keys.isEmpty { return completion(.success(parents.map { _ in .list([]) })) }
        var p = Parameters()
        let keyParam = p.bind(Parameters.arrayLiteral(keys))
        var conditions = [query.parentMatch, "\(query.organisationColumn) = \(p.bind(context.organisationID))::uuid"]
        for filter in filters { conditions.append(filter(&p)) }
        let direction = newestFirst ? " DESC" : ""
        let order = query.orderColumns.map { $0 + direction }.joined(separator: ", ")
        let limit = first.map { " LIMIT \(p.bind(String($0)))" } ?? ""
        let sql = """
            SELECT x.* FROM unnest(\(keyParam)::uuid[]) WITH ORDINALITY AS k(pid, ord)
            CROSS JOIN LATERAL (
                SELECT \(columns.selectList), k.ord FROM \(query.from)
                WHERE \(conditions.joined(separator: " AND "))
                ORDER BY \(order)\(limit)
            ) x
            LIMIT \(p.bind(String(itemBudget + 1)))
            """
        context.query(Statement(sql, p.values)) { [columns] result in
            completion(result.flatMap { rows in
                if rows.rowCount > itemBudget { return .failure(budgetExceeded(itemBudget)) }
                let byKey = groupByOrdinal(rows, keys: keys, shape: columns)
                return .success(each.map { k in .list(k.flatMap { byKey[$0] } ?? []) })
            })
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
        return Statement(sql, p.values)
    }

    private func countStatement() -> Statement {
        var p = Parameters()
        let conditions = whereClause(&p)
        return Statement("SELECT count(*) FROM \(table.from) WHERE \(conditions.joined(separator: " AND "))", p.values)
    }

    private func cursor(_ rows: ResultSet, _ row: Int) -> String {
        Cursor(connection: name, order: newestFirst ? "NEWEST_FIRST" : "OLDEST_FIRST", filterFingerprint: filterFingerprint,
               sortKey: rows.string(row, columns.sortKeyPosition) ?? "",
               id: rows.string(row, columns.position[table.column("id")]) ?? "").encoded
    }
}
