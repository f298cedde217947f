import JSON
import Query
import Schema

/// Writes `{"data":...,"errors":[...]}` straight into bytes by walking the plan over
/// the loaded nodes. A null in a non-null place propagates by cutting the buffer back
/// to where the nearest nullable value began and writing `null` there.
///
/// This is the hottest loop of the service (every field of every row), so what can be
/// known before the walk is computed once per planned field: its key as JSON bytes,
/// how it resolves, its error, the shape of its type, its children's ids. Cells, most of
/// a response, are looked up in a table of plain values (`CellWrite`), which costs no
/// reference count per field and row.
struct ResponseWriter: ~Copyable {
    /// What the writer needs of a planned field that is a cell (`Resolution.cell`), by
    /// field id; `column` is -1 for the other fields. `key` points into `keyBytes`.
    struct CellWrite {
        let column: Int
        let kind: CellKind
        let nonNull: Bool
        let key: UnsafeBufferPointer<UInt8>
    }

    /// What the writer needs of one planned field, by field id. A class, so that looking
    /// one up costs one reference count rather than a copy of every member.
    final class FieldWrite {
        let key: [UInt8]
        let resolution: Resolution?
        /// The column of a `.cell` resolution, or -1.
        let cellColumn: Int
        let cellKind: CellKind
        let error: GraphQLError?
        let nonNull: Bool
        let isList: Bool
        let itemNonNull: Bool
        let children: [Int]

        init(key: [UInt8], resolution: Resolution?, error: GraphQLError?, nonNull: Bool, isList: Bool, itemNonNull: Bool,
             children: [Int]) {
            self.key = key
            self.resolution = resolution
            if case .cell(let column, let kind)? = resolution {
                (cellColumn, cellKind) = (column, kind)
            } else {
                (cellColumn, cellKind) = (-1, .raw)
            }
            self.error = error
            self.nonNull = nonNull
            self.isList = isList
            self.itemNonNull = itemNonNull
            self.children = children
        }
    }

    let execution: Execution
    private let fields: [FieldWrite]
    private let cells: [CellWrite]
    /// Every cell's key, one after the other. Owned: allocated in `init`, freed in `deinit`.
    private let keyBytes: UnsafeMutableBufferPointer<UInt8>
    private let planned: [PlannedField]
    var w = JSONWriter(capacity: 64 * 1024)
    var errors: [GraphQLError] = []
    /// Where the writer is: field ids and list indexes (-1 for "no index"), turned into a
    /// response path only when an error needs one.
    private var path: [(field: Int, index: Int)] = []

    /// Thrown upward until a nullable position catches it.
    struct NullPropagation: Error {}

    init(execution: Execution) {
        self.execution = execution
        var planned = [PlannedField?](repeating: nil, count: execution.plan.fieldCount)
        var stack = execution.plan.fields
        while let f = stack.popLast() {
            planned[f.id] = f
            stack += f.children
        }
        self.planned = planned.map { $0! }
        fields = self.planned.map { f in
            var key = JSONWriter(capacity: f.responseKey.utf8.count + 3)
            key.key(f.responseKey)
            var nonNull = false, isList = false, itemNonNull = false
            var type = f.returnType
            if case .nonNull(let inner, _) = type { nonNull = true; type = inner }
            if case .list(let item, _) = type {
                isList = true
                if case .nonNull = item { itemNonNull = true }
            }
            return FieldWrite(key: key.bytes, resolution: execution.resolutions[f.id], error: execution.fieldErrors[f.id],
                              nonNull: nonNull, isList: isList, itemNonNull: itemNonNull, children: f.children.map(\.id))
        }
        let keyBytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: fields.reduce(0) { $0 + $1.key.count })
        var next = keyBytes.baseAddress!
        cells = fields.map { field in
            let key = UnsafeBufferPointer(start: next, count: field.key.count)
            if field.cellColumn >= 0 {
                next.update(from: field.key, count: field.key.count)
                next += field.key.count
            }
            return CellWrite(column: field.cellColumn, kind: field.cellKind, nonNull: field.nonNull, key: key)
        }
        self.keyBytes = keyBytes
    }

    deinit { keyBytes.deallocate() }

    mutating func write() -> [UInt8] {
        w.raw("{\"data\":")
        let start = w.count
        do {
            try writeObject(execution.plan.fields.map(\.id), execution.root)
            // A mutation operation with any failed field is not applied (RULES.md section 4),
            // so nothing of it may be shown as if it were, not even under a nullable field.
            if execution.plan.kind == .mutation && !errors.isEmpty { throw NullPropagation() }
        } catch {
            w.truncate(to: start)
            w.null()
        }
        if !errors.isEmpty {
            w.raw(",\"errors\":[")
            for (i, e) in errors.enumerated() {
                if i > 0 { w.raw(",") }
                e.write(to: &w)
            }
            w.raw("]")
        }
        w.raw("}")
        return w.bytes
    }

    private mutating func writeObject(_ ids: [Int], _ node: Node) throws(NullPropagation) {
        w.append(UInt8(ascii: "{"))
        for (i, id) in ids.enumerated() {
            if i > 0 { w.append(UInt8(ascii: ",")) }
            let cell = cells[id]
            if cell.column >= 0 {
                // Most fields are cells. A null cell has no error of its own to place, so
                // a cell needs no path (which is kept only to place errors).
                if !node.writeCell(cell.column, cell.kind, key: cell.key, to: &w) {
                    w.append(cell.key)
                    try writeNull(id, error: nil, nonNull: cell.nonNull)
                }
                continue
            }
            let field = fields[id]
            w.append(field.key)
            path.append((id, -1))
            try writeField(field, id, node)
            path.removeLast()
        }
        w.append(UInt8(ascii: "}"))
    }

    /// A field that is not a cell (`writeObject` writes those).
    private mutating func writeField(_ field: FieldWrite, _ id: Int, _ node: Node) throws(NullPropagation) {
        if let error = field.error { return try writeNull(id, error: error, nonNull: field.nonNull) }
        switch field.resolution {
        case .cell?:
            break  // written by writeObject
        case .scalar(let read)?:
            try writeScalar(read(node), id)
        case .object?, .list?, .load?:
            guard let child = node.child(id) else { return try writeNull(id, error: nil, nonNull: field.nonNull) }
            try writeChild(child, id)
        case nil:
            try writeNull(id, error: nil, nonNull: field.nonNull)
        }
    }

    private mutating func writeNull(_ id: Int, error: GraphQLError?, nonNull: Bool) throws(NullPropagation) {
        if var error {
            error.path = path.map { $0.index >= 0 ? .index($0.index) : .key(planned[$0.field].responseKey) }
            if error.locations.isEmpty { error.locations = [planned[id].locations[0]] }
            errors.append(error)
        }
        if nonNull { throw NullPropagation() }
        w.null()
    }

    private mutating func writeScalar(_ value: ScalarValue, _ id: Int) throws(NullPropagation) {
        switch value {
        case .null: try writeNull(id, error: nil, nonNull: fields[id].nonNull)
        case .int(let n): w.int(n)
        case .string(let s): w.string(s)
        case .bool(let b): w.bool(b)
        case .list(let items):
            w.raw("[")
            for (i, item) in items.enumerated() {
                if i > 0 { w.raw(",") }
                try writeScalar(item, id)
            }
            w.raw("]")
        }
    }

    /// A child object or list; a null inside a nullable one stops there.
    private mutating func writeChild(_ child: ChildValue, _ id: Int) throws(NullPropagation) {
        let field = fields[id]
        let start = w.count
        do {
            switch child {
            case .error(let error):
                try writeNull(id, error: error, nonNull: field.nonNull)
            case .object(nil):
                try writeNull(id, error: nil, nonNull: field.nonNull)
            case .object(let node?):
                try writeObject(field.children, node)
            case .list(let nodes):
                guard field.isList else { return try writeNull(id, error: nil, nonNull: field.nonNull) }
                try writeList(nodes, id)
            }
        } catch {
            if field.nonNull { throw error }
            w.truncate(to: start)
            w.null()
        }
    }

    private mutating func writeList(_ nodes: [Node], _ id: Int) throws(NullPropagation) {
        let field = fields[id]
        w.append(UInt8(ascii: "["))
        for (i, node) in nodes.enumerated() {
            if i > 0 { w.append(UInt8(ascii: ",")) }
            path.append((id, i))
            let start = w.count
            do {
                try writeObject(field.children, node)
            } catch {
                if field.itemNonNull { throw error }
                w.truncate(to: start)
                w.null()
            }
            path.removeLast()
        }
        w.append(UInt8(ascii: "]"))
    }
}
