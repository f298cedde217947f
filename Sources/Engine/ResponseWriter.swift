import JSON
import Query
import Schema

/// Writes `{"data":...,"errors":[...]}` straight into bytes by walking the plan over
/// the loaded nodes. A null in a non-null place propagates by cutting the buffer back
/// to where the nearest nullable value began and writing `null` there.
struct ResponseWriter {
    let execution: Execution
    var w = JSONWriter(capacity: 16 * 1024)
    var errors: [GraphQLError] = []
    var path: [PathElement] = []

    /// Thrown upward until a nullable position catches it.
    struct NullPropagation: Error {}

    init(execution: Execution) { self.execution = execution }

    mutating func write() -> [UInt8] {
        w.raw("{\"data\":")
        let start = w.bytes.count
        do {
            try writeObject(execution.plan.fields, execution.root)
        } catch {
            w.bytes.removeSubrange(start...)
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

    private mutating func writeObject(_ fields: [PlannedField], _ node: Node) throws(NullPropagation) {
        w.raw("{")
        for (i, field) in fields.enumerated() {
            if i > 0 { w.raw(",") }
            w.key(field.responseKey)
            path.append(.key(field.responseKey))
            try writeField(field, node)
            path.removeLast()
        }
        w.raw("}")
    }

    private mutating func writeField(_ field: PlannedField, _ node: Node) throws(NullPropagation) {
        let type = field.returnType
        if let error = execution.fieldErrors[field.id] {
            return try writeNull(type, error: error, field: field)
        }
        guard let resolution = execution.resolutions[field.id] else { return try writeNull(type, error: nil, field: field) }
        switch resolution {
        case .scalar(let read):
            try writeScalar(read(node), type, field: field)
        case .object, .list, .load:
            guard let child = node.children[field.id] else { return try writeNull(type, error: nil, field: field) }
            try writeChild(child, type, field: field)
        }
    }

    private mutating func writeNull(_ type: TypeReference, error: GraphQLError?, field: PlannedField) throws(NullPropagation) {
        if var error {
            error.path = path
            if error.locations.isEmpty { error.locations = [field.locations[0]] }
            errors.append(error)
        }
        if case .nonNull = type { throw NullPropagation() }
        w.null()
    }

    private mutating func writeScalar(_ value: ScalarValue, _ type: TypeReference, field: PlannedField) throws(NullPropagation) {
        switch value {
        case .null: try writeNull(type, error: nil, field: field)
        case .int(let n): w.int(n)
        case .string(let s): w.string(s)
        case .bool(let b): w.bool(b)
        case .json(let text): w.raw(text)
        case .list(let items):
            w.raw("[")
            for (i, item) in items.enumerated() {
                if i > 0 { w.raw(",") }
                try writeScalar(item, type, field: field)
            }
            w.raw("]")
        }
    }

    private mutating func writeChild(_ child: ChildValue, _ type: TypeReference, field: PlannedField) throws(NullPropagation) {
        let nullable: Bool
        let inner: TypeReference
        if case .nonNull(let t, _) = type { nullable = false; inner = t } else { nullable = true; inner = type }
        let start = w.bytes.count
        do {
            switch child {
            case .error(let error):
                try writeNull(type, error: error, field: field)
            case .object(nil):
                try writeNull(type, error: nil, field: field)
            case .object(let node?):
                try writeObject(field.children, node)
            case .list(let nodes):
                guard case .list(let itemType, _) = inner else { return try writeNull(type, error: nil, field: field) }
                try writeList(nodes, itemType, field: field)
            }
        } catch {
            if !nullable { throw error }
            w.bytes.removeSubrange(start...)
            w.null()
        }
    }

    private mutating func writeList(_ nodes: [Node], _ itemType: TypeReference, field: PlannedField) throws(NullPropagation) {
        w.raw("[")
        for (i, node) in nodes.enumerated() {
            if i > 0 { w.raw(",") }
            path.append(.index(i))
            try writeChild(.object(node), itemType, field: field)
            path.removeLast()
        }
        w.raw("]")
    }
}
