import JSON
import Query
import Schema
import Synchronization

/// Writes `{"data":...,"errors":[...],"extensions":{...}}` straight into bytes by walking
/// the plan over the loaded nodes. A null in a non-null place propagates by cutting the
/// buffer back to where the nearest nullable value began and writing `null` there.
///
/// This is the hottest loop of the service (every field of every row), so what can be
/// known before the walk is computed once per planned field: its key as JSON bytes,
/// how it resolves, its error, the shape of its type, its children's ids, all in a table
/// of plain values (`FieldWrite`), which costs no reference count per field and row.
struct ResponseWriter: ~Copyable {
    let execution: Execution
    /// Every planned field's shape by id (`PlanShape.byID`), for what an error needs of it
    /// (its response key and location).
    private let shapes: [PlanShape.Field]
    /// This execution's resolutions and field errors, by field id (its buffers: the
    /// execution outlives the writer).
    private let resolutions: UnsafeMutableBufferPointer<Resolution?>
    private let fieldErrors: UnsafeMutableBufferPointer<GraphQLError?>
    /// `FieldWrite` by field id, for the walk and for nodes to write runs of cells from
    /// (`Node.writeCells`). Owned: allocated in `init`, freed in `deinit`.
    private let fields: UnsafeMutableBufferPointer<FieldWrite>
    var w: JSONWriter
    var errors: [GraphQLError] = []
    /// Where the writer is: field ids and list indexes (-1 for "no index"), turned into a
    /// response path only when an error needs one. A stack with room for a field and a list
    /// index at each level of the shape (`PlanShape.depth`), so that a push costs no check
    /// of an array's uniqueness: owned, allocated in `init`, freed in `deinit`.
    private let path: UnsafeMutableBufferPointer<(field: Int, index: Int)>
    private var pathCount = 0

    /// Thrown upward until a nullable position catches it.
    struct NullPropagation: Error {}

    init(execution: Execution) {
        self.execution = execution
        w = JSONWriter(capacity: Self.startingCapacity(after: execution.plan.shape.lastAnswerBytes.load(ordering: .relaxed)))
        shapes = execution.plan.shape.byID
        resolutions = execution.resolutions
        fieldErrors = execution.fieldErrors
        path = .allocate(capacity: 2 * execution.plan.shape.depth)
        fields = .allocate(capacity: shapes.count)
        for (id, (shape, resolution)) in zip(shapes, resolutions).enumerated() {
            var (column, kind, isChild) = (-1, CellKind.raw, false)
            switch resolution {
            case .cell(let c, let k)?: (column, kind) = (c, k)
            case .object?, .list?, .load?: isChild = true
            case .scalar?, nil: break
            }
            fields.initializeElement(at: id, to: FieldWrite(
                column: column, kind: kind, key: shape.key, nonNull: shape.nonNull, isChild: isChild,
                isList: shape.isList, itemNonNull: shape.itemNonNull, childIDs: shape.childIDs))
        }
    }

    deinit {
        fields.deallocate()
        path.deallocate()
    }

    private mutating func enter(_ field: Int, index: Int) {
        precondition(pathCount < path.count, "deeper than the plan's shape")
        path[pathCount] = (field, index)
        pathCount += 1
    }

    /// Room for an answer as long as the shape's last one and a little more (answers of
    /// one shape differ by their strings), so that most are written without growing;
    /// at most 1 MiB, so that one huge answer does not make every later one reserve as
    /// much; 64 KiB for a shape's first answer.
    static func startingCapacity(after lastAnswerBytes: Int) -> Int {
        lastAnswerBytes == 0 ? 64 << 10 : min(max(lastAnswerBytes + lastAnswerBytes / 8, 4096), 1 << 20)
    }

    mutating func write() -> [UInt8] {
        w.raw("{\"data\":")
        let start = w.count
        do {
            try writeObject(execution.plan.shape.rootIDs, execution.root)
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
        writeExtensions(execution.extensions, to: &w)
        w.raw("}")
        execution.plan.shape.lastAnswerBytes.store(w.count, ordering: .relaxed)
        return w.bytes
    }

    /// Every field is written with a comma before it (its key holds it), and the first
    /// field's comma then becomes the `{`: no field needs to know whether it is the first.
    /// Runs of cells are written by the node (`Node.writeCells`), the rest here.
    private mutating func writeObject(_ ids: UnsafeBufferPointer<Int>, _ node: Node) throws(NullPropagation) {
        let start = w.count
        var next = 0
        while next < ids.count {
            next = node.writeCells(ids, from: next, UnsafeBufferPointer(fields), to: &w)
            guard next < ids.count else { break }
            let id = ids[next]
            next += 1
            let field = fields[id]
            w.append(field.key)
            if field.column >= 0 {
                // A null cell has no error of its own to place, so a cell needs no path
                // (which is kept only to place errors).
                try writeNull(id, error: nil, nonNull: field.nonNull)
                continue
            }
            enter(id, index: -1)
            defer { pathCount -= 1 }  // also when a null propagates through here
            try writeField(id, node)
        }
        if w.count == start {
            w.raw("{}")
        } else {
            w.overwrite(at: start, with: UInt8(ascii: "{"))
            w.append(UInt8(ascii: "}"))
        }
    }

    /// A field that is not a cell (`writeObject` writes those).
    private mutating func writeField(_ id: Int, _ node: Node) throws(NullPropagation) {
        let nonNull = fields[id].nonNull
        if let error = fieldErrors[id] { return try writeNull(id, error: error, nonNull: nonNull) }
        if fields[id].isChild {
            guard let child = node.child(id) else { return try writeNull(id, error: nil, nonNull: nonNull) }
            return try writeChild(child, id)
        }
        switch resolutions[id] {
        case .cell?, .object?, .list?, .load?:
            break  // written by writeObject, or above
        case .scalar(let read)?:
            try writeScalar(read(node), id)
        case nil:
            try writeNull(id, error: nil, nonNull: nonNull)
        }
    }

    private mutating func writeNull(_ id: Int, error: GraphQLError?, nonNull: Bool) throws(NullPropagation) {
        if var error {
            error.path = path[..<pathCount].map { $0.index >= 0 ? .index($0.index) : .key(shapes[$0.field].responseKey) }
            if error.locations.isEmpty { error.locations = [shapes[id].locations[0]] }
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
    /// `child` is the writer's own copy (`Node.child`), so its payload is taken, not copied again.
    private mutating func writeChild(_ child: consuming ChildValue, _ id: Int) throws(NullPropagation) {
        let field = fields[id]
        let start = w.count
        do {
            switch consume child {
            case .error(let error):
                try writeNull(id, error: error, nonNull: field.nonNull)
            case .object(nil):
                try writeNull(id, error: nil, nonNull: field.nonNull)
            case .object(let node?):
                try writeObject(field.childIDs, node)
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
            enter(id, index: i)
            defer { pathCount -= 1 }
            let start = w.count
            do {
                try writeObject(field.childIDs, node)
            } catch {
                if field.itemNonNull { throw error }
                w.truncate(to: start)
                w.null()
            }
        }
        w.append(UInt8(ascii: "]"))
    }
}
