import Query

/// A type of the schema, as data.
public final class NamedType: Sendable {
    public enum Kind: String, Sendable { case scalar = "SCALAR", object = "OBJECT", interface = "INTERFACE",
                                         union = "UNION", enumType = "ENUM", inputObject = "INPUT_OBJECT" }
    public let name: String
    public let kind: Kind
    public let description: String?
    /// Output fields of objects and interfaces, in schema order.
    public let fields: [FieldDef]
    public let fieldsByName: [String: FieldDef]
    public let interfaces: [String]
    public let possibleTypes: [String]
    public let enumValues: [EnumValueDef]
    public let inputFields: [InputValueDef]
    public let inputFieldsByName: [String: InputValueDef]
    /// Whether this is a type of introspection (`__Type`, ...: its name begins with `__`),
    /// kept so that asking, for every field of every request, compares no strings.
    public let isIntrospection: Bool

    init(name: String, kind: Kind, description: String?, fields: [FieldDef] = [], interfaces: [String] = [],
         possibleTypes: [String] = [], enumValues: [EnumValueDef] = [], inputFields: [InputValueDef] = []) {
        self.name = name
        isIntrospection = name.hasPrefix("__")
        self.kind = kind
        self.description = description
        self.fields = fields
        self.fieldsByName = Dictionary(fields.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.interfaces = interfaces
        self.possibleTypes = possibleTypes
        self.enumValues = enumValues
        self.inputFields = inputFields
        self.inputFieldsByName = Dictionary(inputFields.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    public var isLeaf: Bool { kind == .scalar || kind == .enumType }
    public var isComposite: Bool { kind == .object || kind == .interface || kind == .union }
    public var isInput: Bool { kind == .scalar || kind == .enumType || kind == .inputObject }
}

public struct Deprecation: Sendable {
    public let reason: String?
}

public struct FieldDef: Sendable {
    public let name: String
    public let description: String?
    public let arguments: [InputValueDef]
    public let type: TypeReference
    public let deprecation: Deprecation?
    public func argument(_ name: String) -> InputValueDef? { arguments.first { $0.name == name } }
}

public struct InputValueDef: Sendable {
    public let name: String
    public let description: String?
    public let type: TypeReference
    public let defaultValue: Value?
    public let deprecation: Deprecation?
}

public struct EnumValueDef: Sendable {
    public let name: String
    public let description: String?
    public let deprecation: Deprecation?
}

public struct DirectiveDef: Sendable {
    public let name: String
    public let description: String?
    public let arguments: [InputValueDef]
    public let locations: [String]
    public let isRepeatable: Bool
}

/// The whole schema: types by name, root types, directives. Built once from SDL.
public final class Schema: Sendable {
    public let description: String?
    public let types: [String: NamedType]
    /// Type names in definition order (introspection lists them so).
    public let typeOrder: [String]
    public let queryType: String
    public let mutationType: String?
    public let directives: [DirectiveDef]

    /// The hooks of the custom scalars that were given some, by name.
    let scalarCoercions: [String: ScalarCoercion]

    public enum BuildError: Error { case syntax(GraphQLSyntaxError), invalid(String) }

    /// `sdl` plus the built-in scalars, directives and introspection types. `scalars` reads
    /// the values of custom scalars that `sdl` declares (those left out take graphql-js's
    /// defaults); a hook for a name that is not a custom scalar of `sdl` is a build error,
    /// so that a misspelt name cannot leave a scalar unchecked.
    public init(sdl: String, scalars: [String: ScalarCoercion] = [:]) throws {
        let document: Document
        let builtIns: Document
        do {
            document = try Parser.parse(sdl, limits: ParserLimits(maxTokens: 1_000_000, maxDepth: 1000))
            builtIns = try Parser.parse(builtInSDL, limits: ParserLimits(maxTokens: 1_000_000, maxDepth: 1000))
        } catch {
            throw BuildError.syntax(error)
        }
        var types: [String: NamedType] = [:]
        var order: [String] = []
        var directives: [DirectiveDef] = []
        var query = "Query"
        var mutation: String?
        var schemaDescription: String?
        var unionsOf: [String: [String]] = [:]  // interface -> implementors
        let definitions = builtIns.definitions + document.definitions
        for case .typeSystem(let def) in definitions {
            switch def.kind {
            case .schema(let operations):
                schemaDescription = def.description
                for (kind, name) in operations {
                    if kind == .query { query = name }
                    if kind == .mutation { mutation = name }
                }
            case .directive(let arguments, let repeatable, let locations):
                directives.append(DirectiveDef(name: def.name!, description: def.description,
                                               arguments: arguments.map(Self.inputValue), locations: locations,
                                               isRepeatable: repeatable))
            default:
                guard let type = Self.namedType(def) else { continue }
                guard types[type.name] == nil else { throw BuildError.invalid("type \(type.name) is defined twice") }
                types[type.name] = type
                order.append(type.name)
                for iface in type.interfaces { unionsOf[iface, default: []].append(type.name) }
            }
        }
        // Interfaces learn their implementations once every type is known.
        for (iface, implementors) in unionsOf {
            if let t = types[iface] {
                types[iface] = NamedType(name: t.name, kind: t.kind, description: t.description, fields: t.fields,
                                         interfaces: t.interfaces, possibleTypes: implementors)
            }
        }
        if mutation == nil, types["Mutation"] != nil { mutation = "Mutation" }
        // Built-in scalars that nothing refers to are not part of the schema (as in graphql-js).
        let referenced = Self.referencedNames(types.values, directives)
        let unused = Self.builtInScalars.subtracting(referenced)
        for name in unused { types[name] = nil }
        for name in scalars.keys where types[name]?.kind != .scalar || Self.builtInScalars.contains(name) {
            throw BuildError.invalid("coercion hooks are given for \(name), which is not a custom scalar of the schema")
        }
        self.scalarCoercions = scalars
        self.description = schemaDescription
        self.types = types
        self.typeOrder = order.filter { !unused.contains($0) }
        self.queryType = query
        self.mutationType = mutation
        self.directives = directives
    }

    private static func referencedNames(_ types: Dictionary<String, NamedType>.Values, _ directives: [DirectiveDef]) -> Set<String> {
        var names = Set<String>()
        for t in types {
            for f in t.fields {
                names.insert(f.type.namedType)
                for a in f.arguments { names.insert(a.type.namedType) }
            }
            for f in t.inputFields { names.insert(f.type.namedType) }
        }
        for d in directives { for a in d.arguments { names.insert(a.type.namedType) } }
        return names
    }

    private static func deprecation(_ directives: [Directive]) -> Deprecation? {
        guard let d = directives.first(where: { $0.name.value == "deprecated" }) else { return nil }
        if let arg = d.arguments.first(where: { $0.name.value == "reason" }), case .string(let s, _) = arg.value.kind {
            return Deprecation(reason: s)
        }
        return Deprecation(reason: "No longer supported")
    }

    private static func inputValue(_ v: InputValueDefinition) -> InputValueDef {
        InputValueDef(name: v.name, description: v.description, type: v.type, defaultValue: v.defaultValue,
                      deprecation: deprecation(v.directives))
    }

    private static func namedType(_ def: TypeSystemDefinition) -> NamedType? {
        guard let name = def.name else { return nil }
        switch def.kind {
        case .scalar:
            return NamedType(name: name, kind: .scalar, description: def.description)
        case .object(let interfaces, let fields), .interface(let interfaces, let fields):
            let kind: NamedType.Kind = { if case .object = def.kind { return .object } else { return .interface } }()
            let defs = fields.map {
                FieldDef(name: $0.name, description: $0.description, arguments: $0.arguments.map(inputValue),
                         type: $0.type, deprecation: deprecation($0.directives))
            }
            return NamedType(name: name, kind: kind, description: def.description, fields: defs, interfaces: interfaces)
        case .union(let members):
            return NamedType(name: name, kind: .union, description: def.description, possibleTypes: members)
        case .enumType(let values):
            return NamedType(name: name, kind: .enumType, description: def.description,
                             enumValues: values.map { EnumValueDef(name: $0.name, description: $0.description,
                                                                   deprecation: deprecation($0.directives)) })
        case .inputObject(let fields):
            return NamedType(name: name, kind: .inputObject, description: def.description, inputFields: fields.map(inputValue))
        default:
            return nil
        }
    }

    static let builtInScalars: Set<String> = ["Int", "Float", "String", "Boolean", "ID"]

    public subscript(name: String) -> NamedType? { types[name] }

    /// The object, interface or union of this name; nil for a leaf, an input or no type.
    func composite(_ name: String) -> NamedType? {
        guard let type = types[name], type.isComposite else { return nil }
        return type
    }

    /// How the values of custom scalar `name` are read: its hooks, or graphql-js's defaults.
    public func coercion(ofScalar name: String) -> ScalarCoercion {
        scalarCoercions[name] ?? .unspecified
    }

    public func directive(_ name: String) -> DirectiveDef? { directives.first { $0.name == name } }

    /// The fields a selection on `type` may name, the meta-fields included.
    public func field(_ name: String, on type: NamedType) -> FieldDef? {
        switch name {
        case "__typename":
            return type.isComposite ? Self.typenameField : nil
        case "__schema" where type.name == queryType:
            return Self.schemaField
        case "__type" where type.name == queryType:
            return Self.typeField
        default:
            return type.fieldsByName[name]
        }
    }

    static let typenameField = FieldDef(
        name: "__typename", description: "The name of the current Object type at runtime.", arguments: [],
        type: .nonNull(.named("String", SourceLocation(line: 0, column: 0)), SourceLocation(line: 0, column: 0)),
        deprecation: nil)
    static let schemaField = FieldDef(
        name: "__schema", description: "Access the current type schema of this server.", arguments: [],
        type: .nonNull(.named("__Schema", SourceLocation(line: 0, column: 0)), SourceLocation(line: 0, column: 0)),
        deprecation: nil)
    static let typeField = FieldDef(
        name: "__type", description: "Request the type information of a single type.",
        arguments: [InputValueDef(name: "name", description: nil,
                                  type: .nonNull(.named("String", SourceLocation(line: 0, column: 0)), SourceLocation(line: 0, column: 0)),
                                  defaultValue: nil, deprecation: nil)],
        type: .named("__Type", SourceLocation(line: 0, column: 0)), deprecation: nil)

    /// Whether a value of type `sub` may be used where `sup` is expected (for variables in place).
    public func isSubtype(_ sub: TypeReference, of sup: TypeReference) -> Bool {
        switch (sub, sup) {
        case let (.nonNull(a, _), .nonNull(b, _)): return isSubtype(a, of: b)
        case let (.nonNull(a, _), _): return isSubtype(a, of: sup)
        case (_, .nonNull): return false
        case let (.list(a, _), .list(b, _)): return isSubtype(a, of: b)
        case (.list, _), (_, .list): return false
        case let (.named(a, _), .named(b, _)):
            if a == b { return true }
            guard let superType = types[b] else { return false }
            return superType.possibleTypes.contains(a)
        }
    }

    /// Types that are possible at run time for an abstract or object type.
    public func possibleTypes(of type: NamedType) -> Set<String> {
        switch type.kind {
        case .object: return [type.name]
        case .interface, .union: return Set(type.possibleTypes)
        default: return []
        }
    }
}
