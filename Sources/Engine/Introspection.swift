import Query
import Schema

/// Answers `__schema`, `__type` and every field of the introspection types from the
/// schema in memory: no load, no database.
final class IntrospectionResolver {
    let schema: Schema

    init(schema: Schema) { self.schema = schema }

    /// An introspection object: the schema, a type (named or wrapped), a field, an input
    /// value, an enum value or a directive.
    final class Item: Node {
        enum Value {
            case schema
            case type(TypeRef)
            case field(FieldDef)
            case inputValue(InputValueDef)
            case enumValue(EnumValueDef)
            case directive(DirectiveDef)
        }
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    indirect enum TypeRef {
        case named(NamedType)
        case list(TypeRef)
        case nonNull(TypeRef)
    }

    func handles(_ field: PlannedField) -> Bool {
        field.parentType.isIntrospection || field.name == "__schema" || field.name == "__type"
    }

    func resolve(_ field: PlannedField) -> Resolution {
        switch field.name {
        case "__schema": return .object { _ in Item(.schema) }
        case "__type":
            let name = field.argument("name")?.stringValue ?? ""
            return .object { [schema] _ in schema[name].map { Item(.type(.named($0))) } }
        default: break
        }
        switch field.parentType.name {
        case "__Schema": return schemaField(field)
        case "__Type": return typeField(field)
        case "__Field": return fieldField(field)
        case "__InputValue": return inputValueField(field)
        case "__EnumValue": return enumValueField(field)
        default: return directiveField(field)
        }
    }

    private func ref(_ type: TypeReference) -> TypeRef? {
        switch type {
        case .named(let n, _): return schema[n].map(TypeRef.named)
        case .list(let inner, _): return ref(inner).map(TypeRef.list)
        case .nonNull(let inner, _): return ref(inner).map(TypeRef.nonNull)
        }
    }

    private func typeItem(_ type: TypeReference) -> Node? { ref(type).map { Item(.type($0)) } }

    private static func text(_ s: String?) -> ScalarValue { s.map(ScalarValue.string) ?? .null }

    private func schemaField(_ field: PlannedField) -> Resolution {
        switch field.name {
        case "description": return .scalar { [schema] _ in Self.text(schema.description) }
        case "types":
            return .list { [schema] _ in schema.typeOrder.compactMap { schema[$0] }.map { Item(.type(.named($0))) } }
        case "queryType": return .object { [schema] _ in schema[schema.queryType].map { Item(.type(.named($0))) } }
        case "mutationType": return .object { [schema] _ in schema.mutationType.flatMap { schema[$0] }.map { Item(.type(.named($0))) } }
        case "subscriptionType": return .object { _ in nil }
        default: return .list { [schema] _ in schema.directives.map { Item(.directive($0)) } }
        }
    }

    private func typeField(_ field: PlannedField) -> Resolution {
        let includeDeprecated = field.argument("includeDeprecated") == .bool(true)
        func named(_ node: Node) -> NamedType? {
            guard let item = node as? Item, case .type(.named(let t)) = item.value else { return nil }
            return t
        }
        switch field.name {
        case "kind":
            return .scalar { node in
                guard let item = node as? Item, case .type(let t) = item.value else { return .null }
                switch t {
                case .named(let n): return .string(n.kind.rawValue)
                case .list: return .string("LIST")
                case .nonNull: return .string("NON_NULL")
                }
            }
        case "name": return .scalar { named($0).map { .string($0.name) } ?? .null }
        case "description": return .scalar { Self.text(named($0)?.description) }
        case "specifiedByURL": return .scalar { _ in .null }
        case "isOneOf": return .scalar { named($0)?.kind == .inputObject ? .bool(false) : .null }
        case "ofType":
            return .object { node in
                guard let item = node as? Item, case .type(let t) = item.value else { return nil }
                switch t {
                case .named: return nil
                case .list(let inner), .nonNull(let inner): return Item(.type(inner))
                }
            }
        case "fields":
            return .list { node in
                guard let t = named(node), t.kind == .object || t.kind == .interface else { return nil }
                return t.fields.filter { includeDeprecated || $0.deprecation == nil }.map { Item(.field($0)) }
            }
        case "interfaces":
            return .list { [schema] node in
                guard let t = named(node), t.kind == .object || t.kind == .interface else { return nil }
                return t.interfaces.compactMap { schema[$0] }.map { Item(.type(.named($0))) }
            }
        case "possibleTypes":
            return .list { [schema] node in
                guard let t = named(node), t.kind == .interface || t.kind == .union else { return nil }
                return t.possibleTypes.compactMap { schema[$0] }.map { Item(.type(.named($0))) }
            }
        case "enumValues":
            return .list { node in
                guard let t = named(node), t.kind == .enumType else { return nil }
                return t.enumValues.filter { includeDeprecated || $0.deprecation == nil }.map { Item(.enumValue($0)) }
            }
        default:  // inputFields
            return .list { node in
                guard let t = named(node), t.kind == .inputObject else { return nil }
                return t.inputFields.filter { includeDeprecated || $0.deprecation == nil }.map { Item(.inputValue($0)) }
            }
        }
    }

    /// What fields, input values, enum values and directives all have.
    private struct Described {
        let name: String
        let description: String?
        let deprecation: Deprecation?
    }

    private static func described(_ node: Node) -> Described? {
        guard let item = node as? Item else { return nil }
        switch item.value {
        case .field(let f): return Described(name: f.name, description: f.description, deprecation: f.deprecation)
        case .inputValue(let v): return Described(name: v.name, description: v.description, deprecation: v.deprecation)
        case .enumValue(let v): return Described(name: v.name, description: v.description, deprecation: v.deprecation)
        case .directive(let d): return Described(name: d.name, description: d.description, deprecation: nil)
        case .schema, .type: return nil
        }
    }

    /// `name`, `description`, `isDeprecated` and `deprecationReason`, the same everywhere.
    private func describedField(_ field: PlannedField) -> Resolution? {
        switch field.name {
        case "name": return .scalar { Self.described($0).map { .string($0.name) } ?? .null }
        case "description": return .scalar { Self.text(Self.described($0)?.description) }
        case "isDeprecated": return .scalar { .bool(Self.described($0)?.deprecation != nil) }
        case "deprecationReason": return .scalar { Self.text(Self.described($0)?.deprecation?.reason) }
        default: return nil
        }
    }

    private func fieldField(_ field: PlannedField) -> Resolution {
        if let common = describedField(field) { return common }
        func def(_ node: Node) -> FieldDef? {
            guard let item = node as? Item, case .field(let f) = item.value else { return nil }
            return f
        }
        let includeDeprecated = field.argument("includeDeprecated") == .bool(true)
        if field.name == "type" { return .object { [self] node in def(node).flatMap { typeItem($0.type) } } }
        return .list { node in  // args
            (def(node)?.arguments ?? []).filter { includeDeprecated || $0.deprecation == nil }.map { Item(.inputValue($0)) }
        }
    }

    private func inputValueField(_ field: PlannedField) -> Resolution {
        if let common = describedField(field) { return common }
        func def(_ node: Node) -> InputValueDef? {
            guard let item = node as? Item, case .inputValue(let v) = item.value else { return nil }
            return v
        }
        if field.name == "type" { return .object { [self] node in def(node).flatMap { typeItem($0.type) } } }
        return .scalar { Self.text(def($0)?.defaultValue.map(ValuePrinter.print)) }  // defaultValue
    }

    private func enumValueField(_ field: PlannedField) -> Resolution {
        describedField(field) ?? .scalar { _ in .null }
    }

    private func directiveField(_ field: PlannedField) -> Resolution {
        if let common = describedField(field) { return common }
        func def(_ node: Node) -> DirectiveDef? {
            guard let item = node as? Item, case .directive(let d) = item.value else { return nil }
            return d
        }
        switch field.name {
        case "isRepeatable": return .scalar { .bool(def($0)?.isRepeatable ?? false) }
        case "locations": return .scalar { node in .list((def(node)?.locations ?? []).map(ScalarValue.string)) }
        default: return .list { node in (def(node)?.arguments ?? []).map { Item(.inputValue($0)) } }  // args
        }
    }
}
