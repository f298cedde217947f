import Store

/// One load's part in a statement that the identical loads of concurrent requests may
/// share (README, "Coalescing"): the load's own statement, whose `$1` is the parents'
/// keys and whose `$2` is each key's organisation, beside it, in the same order, so that
/// every key travels with its own organisation (RULES.md section 6: a request sees only
/// its organisation's rows, whoever else's keys share the statement). Loads whose
/// statements differ only in `$1` and `$2` have the same `shape`, and may be sent as one
/// statement over the union of their keys; `split` then hands each its own rows.
public struct SharedRead {
    /// What loads must have in common to share a statement: the text, and every parameter
    /// after `$2` (filters, the per-parent limit). Hashed once: a read is grouped by it.
    public struct Shape: Hashable {
        let key: StatementKey

        init(_ statement: Statement) {
            key = StatementKey(statement, droppingFirst: 2)
        }

        /// The parameters after `$2`.
        var rest: [ParameterValue?] { key.parameters }
    }

    /// The load's statement as it would run alone; its ordinalities are 1 to `keyCount`.
    public let statement: Statement
    public let keyCount: Int
    public let shape: Shape

    /// A load of more keys than this runs alone: one request's level of many parents
    /// needs no company to be worth its statement.
    static let maxKeys = 1_000

    /// `keys` as a binary `uuid[]`; the statement's text reads `$1` and `$2` with
    /// `unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY`, and its last column is the ordinality.
    init(sql: String, keys: ParentKeys, organisationID: String, rest: [ParameterValue?]) {
        // An organisation id comes from a stored key, always a uuid; were it not, it would
        // match no row, and neither does the empty array.
        var text = organisationID
        let organisations = text.withUTF8(UUIDKey.init).map { UUIDArray(repeating: $0.high, $0.low, count: keys.sentCount) }
            ?? UUIDArray()
        statement = Statement(sql, values: [.uuids(keys.uuids), .uuids(organisations)] + rest, binaryResults: true)
        keyCount = keys.sentCount
        shape = Shape(statement)
    }

    /// One statement for `members` (of one shape): their keys one after the other, each
    /// with its organisation. A member alone runs its own statement.
    public static func statement(for members: [SharedRead]) -> Statement {
        guard let first = members.first, members.count > 1 else { return members[0].statement }
        func joined(_ parameter: Int) -> ParameterValue {
            var all = UUIDArray(reservingCapacity: members.reduce(0) { $0 + $1.keyCount })
            for member in members {
                if case .uuids(let own)? = member.statement.parameters[parameter] { all.append(contentsOf: own) }
            }
            return .uuids(all)
        }
        return Statement(first.statement.sql, values: [joined(0), joined(1)] + first.shape.rest, binaryResults: true)
    }

    /// Each member's rows of the statement made by `statement(for: members)`, in member
    /// order, none copied: member `m` owns ordinalities `offset + 1 ... offset + keyCount`,
    /// where `offset` is the keys of the members before it. A lateral join over `unnest`
    /// returns rows in ordinality order, so each member's rows are one range of rows,
    /// found in one pass; should they ever come otherwise, each member reads all the rows
    /// and keeps its ordinalities (`RowSlice.forEach`), which is still exact.
    public static func split(_ rows: ResultSet, among members: [SharedRead]) -> [RowSlice] {
        // A statement made for one member alone has only its rows: no pass over them.
        if members.count == 1 {
            return [RowSlice(rows: rows, range: 0..<rows.rowCount, ordinalOffset: 0, keyCount: members[0].keyCount,
                             count: rows.rowCount)]
        }
        var offsets: [Int] = []
        offsets.reserveCapacity(members.count)
        var total = 0
        for member in members {
            offsets.append(total)
            total += member.keyCount
        }
        var starts = [Int](repeating: rows.rowCount, count: members.count)
        var counts = [Int](repeating: 0, count: members.count)
        var member = 0
        var inOrder = true
        let ordColumn = rows.columnCount - 1
        for r in 0..<rows.rowCount {
            guard let ord = rows.int(r, ordColumn), ord >= 1, ord <= total else { continue }
            if ord <= offsets[member] { inOrder = false }
            while member + 1 < members.count, ord > offsets[member + 1] { member += 1 }
            if !inOrder { member = offsets.lastIndex { $0 < ord } ?? 0 }
            if counts[member] == 0 { starts[member] = r }
            counts[member] += 1
        }
        return members.indices.map { m in
            let range = !inOrder ? 0..<rows.rowCount : counts[m] == 0 ? 0..<0 : starts[m]..<nextStart(after: m, starts, counts, rows.rowCount)
            return RowSlice(rows: rows, range: range, ordinalOffset: offsets[m], keyCount: members[m].keyCount, count: counts[m])
        }
    }

    /// Where the rows after member `m`'s begin: the next member with rows, or the end.
    private static func nextStart(after m: Int, _ starts: [Int], _ counts: [Int], _ end: Int) -> Int {
        var next = m + 1
        while next < starts.count, counts[next] == 0 { next += 1 }
        return next < starts.count ? starts[next] : end
    }
}

/// One load's rows within a statement's result, which it may share with other loads
/// (`SharedRead.split`); a plain statement's rows are `whole`. Holds the result set,
/// and so libpq's `PGresult`, alive while any of its rows is used.
public struct RowSlice {
    public let rows: ResultSet
    /// The rows to look through, in order.
    let range: Range<Int>
    /// Subtracted from the ordinality (the last column) to give this load's own (1 to `keyCount`).
    let ordinalOffset: Int
    let keyCount: Int
    /// This load's rows: what its request counts as read (`StatementLanes`).
    public let count: Int

    /// All the rows of a statement run for one load alone.
    static func whole(_ rows: ResultSet) -> RowSlice {
        RowSlice(rows: rows, range: 0..<rows.rowCount, ordinalOffset: 0, keyCount: .max, count: rows.rowCount)
    }

    /// Calls `body` with each of this load's rows and the place of its parent key among
    /// its `places` keys (its own ordinality less one), in row order.
    func forEach(places: Int, _ body: (_ row: Int, _ place: Int) -> Void) {
        let ordColumn = rows.columnCount - 1
        let places = min(places, keyCount)
        for r in range {
            guard let ord = rows.int(r, ordColumn) else { continue }
            let own = ord - ordinalOffset
            guard own >= 1, own <= places else { continue }
            body(r, own - 1)
        }
    }
}
