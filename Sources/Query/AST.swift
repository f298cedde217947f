/// The syntax tree of a GraphQL document. Every node keeps where it starts, for
/// error locations.

public struct Document: Sendable {
    public var definitions: [Definition]
    /// Tokens the document was parsed from: a measure of its size in memory.
    public var tokenCount = 0

    public init(definitions: [Definition], tokenCount: Int = 0) {
        self.definitions = definitions
        self.tokenCount = tokenCount
    }
}

public enum Definition: Sendable {
    case operation(OperationDefinition)
    case fragment(FragmentDefinition)
    /// Schema definitions and extensions: parsed, but not executable.
    case typeSystem(TypeSystemDefinition)

    public var location: SourceLocation {
        switch self {
        case .operation(let op): return op.location
        case .fragment(let f): return f.location
        case .typeSystem(let t): return t.location
        }
    }
}

public enum OperationKind: String, Sendable {
    case query, mutation, subscription
}

public struct OperationDefinition: Sendable {
    public var kind: OperationKind
    public var name: Name?
    public var variables: [VariableDefinition]
    public var directives: [Directive]
    public var selectionSet: SelectionSet
    public var location: SourceLocation
}

public struct Name: Sendable, Hashable {
    public var value: String
    public var location: SourceLocation
}

public struct VariableDefinition: Sendable {
    public var name: Name  // the name after `$`; location is of the `$`
    public var type: TypeReference
    public var defaultValue: Value?
    public var directives: [Directive]
    public var location: SourceLocation
}

public indirect enum TypeReference: Sendable, Equatable, CustomStringConvertible {
    case named(String, SourceLocation)
    case list(TypeReference, SourceLocation)
    case nonNull(TypeReference, SourceLocation)

    public var description: String {
        switch self {
        case .named(let n, _): return n
        case .list(let t, _): return "[\(t)]"
        case .nonNull(let t, _): return "\(t)!"
        }
    }

    public var namedType: String {
        switch self {
        case .named(let n, _): return n
        case .list(let t, _), .nonNull(let t, _): return t.namedType
        }
    }

    public var location: SourceLocation {
        switch self {
        case .named(_, let l), .list(_, let l), .nonNull(_, let l): return l
        }
    }

    public static func == (a: TypeReference, b: TypeReference) -> Bool { a.description == b.description }
}

public struct SelectionSet: Sendable {
    public var selections: [Selection]
    public var location: SourceLocation
}

public enum Selection: Sendable {
    case field(Field)
    case fragmentSpread(FragmentSpread)
    case inlineFragment(InlineFragment)

    public var directives: [Directive] {
        switch self {
        case .field(let f): return f.directives
        case .fragmentSpread(let s): return s.directives
        case .inlineFragment(let i): return i.directives
        }
    }
}

public struct Field: Sendable {
    public var alias: Name?
    public var name: Name
    public var arguments: [Argument]
    public var directives: [Directive]
    public var selectionSet: SelectionSet?
    public var location: SourceLocation
    public var responseKey: String { alias?.value ?? name.value }
}

public struct Argument: Sendable {
    public var name: Name
    public var value: Value
    public var location: SourceLocation
}

public struct FragmentSpread: Sendable {
    public var name: Name
    public var directives: [Directive]
    public var location: SourceLocation
}

public struct InlineFragment: Sendable {
    public var typeCondition: Name?
    public var directives: [Directive]
    public var selectionSet: SelectionSet
    public var location: SourceLocation
}

public struct FragmentDefinition: Sendable {
    public var name: Name
    public var typeCondition: Name
    public var directives: [Directive]
    public var selectionSet: SelectionSet
    public var location: SourceLocation
}

public struct Directive: Sendable {
    public var name: Name
    public var arguments: [Argument]
    public var location: SourceLocation
}

public struct ObjectField: Sendable {
    public var name: Name
    public var value: Value
    public var location: SourceLocation
}

public struct Value: Sendable {
    public indirect enum Kind: Sendable {
        case variable(String)
        case int(String)
        case float(String)
        case string(String, block: Bool)
        case boolean(Bool)
        case null
        case enumValue(String)
        case list([Value])
        case object([ObjectField])
    }
    public var kind: Kind
    public var location: SourceLocation
}

// MARK: - Type system (for the schema file; refused in requests)

public struct TypeSystemDefinition: Sendable {
    public enum Kind: Sendable {
        case schema(operations: [(OperationKind, String)])
        case scalar
        case object(interfaces: [String], fields: [FieldDefinition])
        case interface(interfaces: [String], fields: [FieldDefinition])
        case union(members: [String])
        case enumType(values: [EnumValueDefinition])
        case inputObject(fields: [InputValueDefinition])
        case directive(arguments: [InputValueDefinition], repeatable: Bool, locations: [String])
    }
    public var kind: Kind
    public var name: String?
    public var description: String?
    public var directives: [Directive]
    public var isExtension: Bool
    public var location: SourceLocation
}

public struct FieldDefinition: Sendable {
    public var name: String
    public var description: String?
    public var arguments: [InputValueDefinition]
    public var type: TypeReference
    public var directives: [Directive]
}

public struct InputValueDefinition: Sendable {
    public var name: String
    public var description: String?
    public var type: TypeReference
    public var defaultValue: Value?
    public var directives: [Directive]
}

public struct EnumValueDefinition: Sendable {
    public var name: String
    public var description: String?
    public var directives: [Directive]
}
