import Query
import Schema

/// How big an operation is once its fragments are expanded, found without expanding
/// them (RULES.md section 5): each fragment is measured once and its size added at every
/// place it is spread, so a document whose fragments double at every level costs what
/// its text costs, not what it expands to.
///
/// The sizes are upper bounds: `@skip`/`@include` are not applied and fields of the same
/// response name are not merged, so a document is never judged smaller than its plan.
struct OperationSize: Equatable {
    /// Fields on the longest path from the root, leaves included; `__schema` and
    /// `__type` count as one.
    var depth = 0
    /// Fields selected, introspection's inner fields included: the planner expands them too.
    var fields = 0
    /// Fields that return objects or lists of them, introspection aside: an upper bound
    /// on the loads (statements) the operation can cause.
    var compositeFields = 0

    /// Sums stop growing here, so that no count overflows however often a fragment is
    /// spread; every limit is far below it.
    static let ceiling = 1 << 60

    static func + (a: Self, b: Self) -> Self {
        Self(depth: max(a.depth, b.depth),
             fields: min(a.fields + b.fields, ceiling),
             compositeFields: min(a.compositeFields + b.compositeFields, ceiling))
    }
}

/// Measures selection sets, remembering each fragment's size.
struct OperationMeasurer {
    let schema: Schema
    let fragments: [String: FragmentDefinition]
    /// Fragments measured, or being measured (a cycle, refused by validation, counts nothing).
    private var fragmentSizes: [String: OperationSize] = [:]

    init(schema: Schema, fragments: [String: FragmentDefinition]) {
        self.schema = schema
        self.fragments = fragments
    }

    mutating func measure(_ set: SelectionSet, on type: NamedType) -> OperationSize {
        var total = OperationSize()
        for selection in set.selections {
            switch selection {
            case .field(let field):
                total = total + measure(field, on: type)
            case .inlineFragment(let inline):
                let condition = inline.typeCondition.flatMap { schema[$0.value] } ?? type
                total = total + measure(inline.selectionSet, on: condition)
            case .fragmentSpread(let spread):
                total = total + measure(fragmentNamed: spread.name.value)
            }
        }
        return total
    }

    private mutating func measure(_ field: Field, on type: NamedType) -> OperationSize {
        let name = field.name.value
        if name == "__schema" || name == "__type" {
            // Introspection counts as one level and no load, but its fields are planned
            // like any others: fragments doubling inside it must be counted too.
            guard let set = field.selectionSet, let definition = schema.field(name, on: type),
                  let child = schema[definition.type.namedType] else { return OperationSize(depth: 1, fields: 1) }
            return OperationSize(depth: 1, fields: min(measure(set, on: child).fields + 1, OperationSize.ceiling))
        }
        guard let set = field.selectionSet, let definition = schema.field(name, on: type),
              let child = schema[definition.type.namedType], child.isComposite else {
            return OperationSize(depth: 1, fields: 1)
        }
        let inner = measure(set, on: child)
        return OperationSize(depth: inner.depth + 1, fields: min(inner.fields + 1, OperationSize.ceiling),
                             compositeFields: min(inner.compositeFields + 1, OperationSize.ceiling))
    }

    private mutating func measure(fragmentNamed name: String) -> OperationSize {
        if let known = fragmentSizes[name] { return known }
        guard let fragment = fragments[name], let type = schema[fragment.typeCondition.value] else { return OperationSize() }
        fragmentSizes[name] = OperationSize()
        let size = measure(fragment.selectionSet, on: type)
        fragmentSizes[name] = size
        return size
    }
}
