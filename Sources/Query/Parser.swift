/// A recursive-descent parser for GraphQL documents (September 2025 edition): one
/// method per grammar production, the production in its comment.
public struct Parser {
    private var tokens: [Token] = []
    private var index = 0
    private var depth = 0
    private let limits: ParserLimits

    public static func parse(_ source: String, limits: ParserLimits = ParserLimits()) throws(GraphQLSyntaxError) -> Document {
        var parser = Parser(limits: limits)
        try parser.tokenize(source)
        return try parser.parseDocument()
    }

    private init(limits: ParserLimits) { self.limits = limits }

    private mutating func tokenize(_ source: String) throws(GraphQLSyntaxError) {
        var lexer = Lexer(source, maxTokens: limits.maxTokens)
        while true {
            let token = try lexer.next()
            tokens.append(token)
            if token.kind == .endOfFile { break }
        }
    }

    // MARK: - Token helpers

    private var token: Token { tokens[index] }
    private func peek(_ kind: TokenKind) -> Bool { token.kind == kind }
    private func peekKeyword(_ word: String) -> Bool { token.kind == .name && token.value == word }

    private mutating func advance() -> Token {
        let t = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return t
    }

    private func syntaxError(_ message: String, at location: SourceLocation) -> GraphQLSyntaxError {
        GraphQLSyntaxError(message: "Syntax Error: \(message)", location: location)
    }

    private func unexpected(_ t: Token? = nil) -> GraphQLSyntaxError {
        let t = t ?? token
        return syntaxError("Unexpected \(t.errorDescription).", at: t.location)
    }

    @discardableResult
    private mutating func expect(_ kind: TokenKind) throws(GraphQLSyntaxError) -> Token {
        guard token.kind == kind else {
            throw syntaxError("Expected \(kind.isPunctuator ? "\"\(kind.description)\"" : kind.description), found \(token.errorDescription).",
                              at: token.location)
        }
        return advance()
    }

    private mutating func skip(_ kind: TokenKind) -> Bool {
        if token.kind == kind { _ = advance(); return true }
        return false
    }

    private mutating func expectKeyword(_ word: String) throws(GraphQLSyntaxError) {
        guard peekKeyword(word) else {
            throw syntaxError("Expected \"\(word)\", found \(token.errorDescription).", at: token.location)
        }
        _ = advance()
    }

    private mutating func nested<T>(_ body: (inout Parser) throws(GraphQLSyntaxError) -> T) throws(GraphQLSyntaxError) -> T {
        depth += 1
        defer { depth -= 1 }
        if depth > limits.maxDepth {
            throw syntaxError("Document is nested more than \(limits.maxDepth) levels deep. Parsing aborted.", at: token.location)
        }
        return try body(&self)
    }

    /// `open item+ close`: at least one item.
    private mutating func many<T>(_ open: TokenKind, _ item: (inout Parser) throws(GraphQLSyntaxError) -> T,
                                  _ close: TokenKind) throws(GraphQLSyntaxError) -> [T] {
        try expect(open)
        var items: [T] = []
        repeat { items.append(try nested(item)) } while !skip(close)
        return items
    }

    /// `(open item* close)?`
    private mutating func optionalMany<T>(_ open: TokenKind, _ item: (inout Parser) throws(GraphQLSyntaxError) -> T,
                                          _ close: TokenKind) throws(GraphQLSyntaxError) -> [T] {
        peek(open) ? try many(open, item, close) : []
    }

    /// `open item* close`, possibly empty.
    private mutating func any<T>(_ open: TokenKind, _ item: (inout Parser) throws(GraphQLSyntaxError) -> T,
                                 _ close: TokenKind) throws(GraphQLSyntaxError) -> [T] {
        try expect(open)
        var items: [T] = []
        while !skip(close) { items.append(try nested(item)) }
        return items
    }

    // MARK: - Document

    // Document : Definition+
    private mutating func parseDocument() throws(GraphQLSyntaxError) -> Document {
        var definitions: [Definition] = []
        repeat { definitions.append(try parseDefinition()) } while !peek(.endOfFile)
        return Document(definitions: definitions, tokenCount: tokens.count)
    }

    // Definition : ExecutableDefinition | TypeSystemDefinitionOrExtension
    private mutating func parseDefinition() throws(GraphQLSyntaxError) -> Definition {
        if peek(.braceL) { return .operation(try parseOperationDefinition()) }
        let hasDescription = peek(.string) || peek(.blockString)
        let keyword = hasDescription ? tokens[min(index + 1, tokens.count - 1)] : token
        if keyword.kind == .name {
            switch keyword.value {
            case "schema", "scalar", "type", "interface", "union", "enum", "input", "directive":
                return .typeSystem(try parseTypeSystemDefinition())
            default: break
            }
            if hasDescription {
                throw syntaxError("Unexpected description, descriptions are supported only on type definitions.",
                                  at: token.location)
            }
            switch keyword.value {
            case "query", "mutation", "subscription": return .operation(try parseOperationDefinition())
            case "fragment": return .fragment(try parseFragmentDefinition())
            case "extend": return .typeSystem(try parseTypeSystemExtension())
            default: break
            }
        }
        throw unexpected(keyword)
    }

    // OperationDefinition : SelectionSet | OperationType Name? VariablesDefinition? Directives? SelectionSet
    private mutating func parseOperationDefinition() throws(GraphQLSyntaxError) -> OperationDefinition {
        let start = token.location
        if peek(.braceL) {
            return OperationDefinition(kind: .query, name: nil, variables: [], directives: [],
                                       selectionSet: try parseSelectionSet(), location: start)
        }
        let kind = try parseOperationType()
        let name = peek(.name) ? try parseName() : nil
        let variables = try optionalMany(.parenL, { (p: inout Parser) throws(GraphQLSyntaxError) in try p.parseVariableDefinition() }, .parenR)
        let directives = try parseDirectives(const: false)
        return OperationDefinition(kind: kind, name: name, variables: variables, directives: directives,
                                   selectionSet: try parseSelectionSet(), location: start)
    }

    // OperationType : one of query mutation subscription
    private mutating func parseOperationType() throws(GraphQLSyntaxError) -> OperationKind {
        let t = try expect(.name)
        guard let kind = OperationKind(rawValue: t.value) else { throw unexpected(t) }
        return kind
    }

    // VariableDefinition : Variable : Type DefaultValue? Directives[Const]?
    private mutating func parseVariableDefinition() throws(GraphQLSyntaxError) -> VariableDefinition {
        let start = token.location
        try expect(.dollar)
        let name = try parseName()
        try expect(.colon)
        let type = try parseTypeReference()
        var defaultValue: Value?
        if skip(.equals) { defaultValue = try parseValue(const: true) }
        let directives = try parseDirectives(const: true)
        return VariableDefinition(name: name, type: type, defaultValue: defaultValue, directives: directives, location: start)
    }

    // Type : NamedType | ListType | NonNullType
    private mutating func parseTypeReference() throws(GraphQLSyntaxError) -> TypeReference {
        let start = token.location
        var type: TypeReference
        if skip(.bracketL) {
            let inner = try nested { (p: inout Parser) throws(GraphQLSyntaxError) in try p.parseTypeReference() }
            try expect(.bracketR)
            type = .list(inner, start)
        } else {
            type = .named(try parseName().value, start)
        }
        if skip(.bang) { type = .nonNull(type, start) }
        return type
    }

    private mutating func parseName() throws(GraphQLSyntaxError) -> Name {
        let t = try expect(.name)
        return Name(value: t.value, location: t.location)
    }

    // SelectionSet : { Selection+ }
    private mutating func parseSelectionSet() throws(GraphQLSyntaxError) -> SelectionSet {
        let start = token.location
        let selections = try many(.braceL, { (p: inout Parser) throws(GraphQLSyntaxError) in try p.parseSelection() }, .braceR)
        return SelectionSet(selections: selections, location: start)
    }

    // Selection : Field | FragmentSpread | InlineFragment
    private mutating func parseSelection() throws(GraphQLSyntaxError) -> Selection {
        peek(.spread) ? try parseFragment() : .field(try parseField())
    }

    // Field : Alias? Name Arguments? Directives? SelectionSet?
    private mutating func parseField() throws(GraphQLSyntaxError) -> Field {
        let start = token.location
        let nameOrAlias = try parseName()
        var alias: Name?
        var name = nameOrAlias
        if skip(.colon) {
            alias = nameOrAlias
            name = try parseName()
        }
        let arguments = try parseArguments(const: false)
        let directives = try parseDirectives(const: false)
        let selectionSet = peek(.braceL) ? try parseSelectionSet() : nil
        return Field(alias: alias, name: name, arguments: arguments, directives: directives,
                     selectionSet: selectionSet, location: start)
    }

    // Arguments : ( Argument+ )
    private mutating func parseArguments(const: Bool) throws(GraphQLSyntaxError) -> [Argument] {
        try optionalMany(.parenL, { (p: inout Parser) throws(GraphQLSyntaxError) in
            let start = p.token.location
            let name = try p.parseName()
            try p.expect(.colon)
            return Argument(name: name, value: try p.parseValue(const: const), location: start)
        }, .parenR)
    }

    // FragmentSpread : ... FragmentName Directives?
    // InlineFragment : ... TypeCondition? Directives? SelectionSet
    private mutating func parseFragment() throws(GraphQLSyntaxError) -> Selection {
        let start = token.location
        try expect(.spread)
        let hasTypeCondition = peekKeyword("on")
        if !hasTypeCondition && peek(.name) {
            let name = try parseFragmentName()
            return .fragmentSpread(FragmentSpread(name: name, directives: try parseDirectives(const: false), location: start))
        }
        var typeCondition: Name?
        if hasTypeCondition {
            _ = advance()
            typeCondition = try parseName()
        }
        let directives = try parseDirectives(const: false)
        return .inlineFragment(InlineFragment(typeCondition: typeCondition, directives: directives,
                                              selectionSet: try parseSelectionSet(), location: start))
    }

    // FragmentName : Name but not `on`
    private mutating func parseFragmentName() throws(GraphQLSyntaxError) -> Name {
        if peekKeyword("on") { throw unexpected() }
        return try parseName()
    }

    // FragmentDefinition : fragment FragmentName TypeCondition Directives? SelectionSet
    private mutating func parseFragmentDefinition() throws(GraphQLSyntaxError) -> FragmentDefinition {
        let start = token.location
        try expectKeyword("fragment")
        let name = try parseFragmentName()
        try expectKeyword("on")
        let typeCondition = try parseName()
        let directives = try parseDirectives(const: false)
        return FragmentDefinition(name: name, typeCondition: typeCondition, directives: directives,
                                  selectionSet: try parseSelectionSet(), location: start)
    }

    // Value[Const] : Variable (unless Const) | IntValue | FloatValue | StringValue | BooleanValue
    //              | NullValue | EnumValue | ListValue[?Const] | ObjectValue[?Const]
    private mutating func parseValue(const: Bool) throws(GraphQLSyntaxError) -> Value {
        let t = token
        switch t.kind {
        case .bracketL:
            let items = try any(.bracketL, { (p: inout Parser) throws(GraphQLSyntaxError) in try p.parseValue(const: const) }, .bracketR)
            return Value(kind: .list(items), location: t.location)
        case .braceL:
            let fields = try any(.braceL, { (p: inout Parser) throws(GraphQLSyntaxError) in
                let start = p.token.location
                let name = try p.parseName()
                try p.expect(.colon)
                return ObjectField(name: name, value: try p.parseValue(const: const), location: start)
            }, .braceR)
            return Value(kind: .object(fields), location: t.location)
        case .int:
            _ = advance()
            return Value(kind: .int(t.value), location: t.location)
        case .float:
            _ = advance()
            return Value(kind: .float(t.value), location: t.location)
        case .string, .blockString:
            _ = advance()
            return Value(kind: .string(t.value, block: t.kind == .blockString), location: t.location)
        case .name:
            _ = advance()
            switch t.value {
            case "true": return Value(kind: .boolean(true), location: t.location)
            case "false": return Value(kind: .boolean(false), location: t.location)
            case "null": return Value(kind: .null, location: t.location)
            default: return Value(kind: .enumValue(t.value), location: t.location)
            }
        case .dollar:
            if const {
                _ = advance()
                if peek(.name) {
                    throw syntaxError("Unexpected variable \"$\(token.value)\" in constant value.", at: t.location)
                }
                throw unexpected(t)
            }
            _ = advance()
            let name = try parseName()
            return Value(kind: .variable(name.value), location: t.location)
        default:
            throw unexpected()
        }
    }

    // Directives : Directive+ ;  Directive : @ Name Arguments?
    private mutating func parseDirectives(const: Bool) throws(GraphQLSyntaxError) -> [Directive] {
        var directives: [Directive] = []
        while peek(.at) {
            let start = token.location
            _ = advance()
            let name = try parseName()
            directives.append(Directive(name: name, arguments: try parseArguments(const: const), location: start))
        }
        return directives
    }

    // MARK: - Type system

    private mutating func parseDescription() -> String? {
        guard peek(.string) || peek(.blockString) else { return nil }
        return advance().value
    }

    private mutating func parseTypeSystemDefinition() throws(GraphQLSyntaxError) -> TypeSystemDefinition {
        let start = token.location
        let description = parseDescription()
        var def = try parseTypeSystemBody(keyword: token.value)
        def.description = description
        def.location = start
        return def
    }

    private mutating func parseTypeSystemExtension() throws(GraphQLSyntaxError) -> TypeSystemDefinition {
        let start = token.location
        try expectKeyword("extend")
        guard peek(.name), ["schema", "scalar", "type", "interface", "union", "enum", "input"].contains(token.value) else {
            throw unexpected()
        }
        var def = try parseTypeSystemBody(keyword: token.value)
        def.isExtension = true
        def.location = start
        return def
    }

    private mutating func parseTypeSystemBody(keyword: String) throws(GraphQLSyntaxError) -> TypeSystemDefinition {
        let start = token.location
        _ = advance()
        func make(_ kind: TypeSystemDefinition.Kind, _ name: String?, _ directives: [Directive]) -> TypeSystemDefinition {
            TypeSystemDefinition(kind: kind, name: name, description: nil, directives: directives, isExtension: false, location: start)
        }
        switch keyword {
        case "schema":
            let directives = try parseDirectives(const: true)
            let ops = try optionalMany(.braceL, { (p: inout Parser) throws(GraphQLSyntaxError) -> (OperationKind, String) in
                let kind = try p.parseOperationType()
                try p.expect(.colon)
                return (kind, try p.parseName().value)
            }, .braceR)
            return make(.schema(operations: ops), nil, directives)
        case "scalar":
            let name = try parseName().value
            return make(.scalar, name, try parseDirectives(const: true))
        case "type", "interface":
            let name = try parseName().value
            let interfaces = try parseImplements()
            let directives = try parseDirectives(const: true)
            let fields = try optionalMany(.braceL, { (p: inout Parser) throws(GraphQLSyntaxError) in try p.parseFieldDefinition() }, .braceR)
            let kind: TypeSystemDefinition.Kind = keyword == "type"
                ? .object(interfaces: interfaces, fields: fields) : .interface(interfaces: interfaces, fields: fields)
            return make(kind, name, directives)
        case "union":
            let name = try parseName().value
            let directives = try parseDirectives(const: true)
            var members: [String] = []
            if skip(.equals) {
                _ = skip(.pipe)
                repeat { members.append(try parseName().value) } while skip(.pipe)
            }
            return make(.union(members: members), name, directives)
        case "enum":
            let name = try parseName().value
            let directives = try parseDirectives(const: true)
            let values = try optionalMany(.braceL, { (p: inout Parser) throws(GraphQLSyntaxError) -> EnumValueDefinition in
                let description = p.parseDescription()
                let t = try p.expect(.name)
                if ["true", "false", "null"].contains(t.value) {
                    throw p.syntaxError("\(t.value) is reserved and cannot be used for an enum value.", at: t.location)
                }
                return EnumValueDefinition(name: t.value, description: description, directives: try p.parseDirectives(const: true))
            }, .braceR)
            return make(.enumType(values: values), name, directives)
        case "input":
            let name = try parseName().value
            let directives = try parseDirectives(const: true)
            let fields = try optionalMany(.braceL, { (p: inout Parser) throws(GraphQLSyntaxError) in try p.parseInputValueDefinition() }, .braceR)
            return make(.inputObject(fields: fields), name, directives)
        default:  // directive
            try expect(.at)
            let name = try parseName().value
            let arguments = try optionalMany(.parenL, { (p: inout Parser) throws(GraphQLSyntaxError) in try p.parseInputValueDefinition() }, .parenR)
            let repeatable = peekKeyword("repeatable")
            if repeatable { _ = advance() }
            try expectKeyword("on")
            _ = skip(.pipe)
            var locations: [String] = []
            repeat { locations.append(try parseName().value) } while skip(.pipe)
            return make(.directive(arguments: arguments, repeatable: repeatable, locations: locations), name, [])
        }
    }

    private mutating func parseImplements() throws(GraphQLSyntaxError) -> [String] {
        guard peekKeyword("implements") else { return [] }
        _ = advance()
        _ = skip(.amp)
        var names: [String] = []
        repeat { names.append(try parseName().value) } while skip(.amp)
        return names
    }

    // FieldDefinition : Description? Name ArgumentsDefinition? : Type Directives[Const]?
    private mutating func parseFieldDefinition() throws(GraphQLSyntaxError) -> FieldDefinition {
        let description = parseDescription()
        let name = try parseName().value
        let arguments = try optionalMany(.parenL, { (p: inout Parser) throws(GraphQLSyntaxError) in try p.parseInputValueDefinition() }, .parenR)
        try expect(.colon)
        let type = try parseTypeReference()
        return FieldDefinition(name: name, description: description, arguments: arguments, type: type,
                               directives: try parseDirectives(const: true))
    }

    // InputValueDefinition : Description? Name : Type DefaultValue? Directives[Const]?
    private mutating func parseInputValueDefinition() throws(GraphQLSyntaxError) -> InputValueDefinition {
        let description = parseDescription()
        let name = try parseName().value
        try expect(.colon)
        let type = try parseTypeReference()
        var defaultValue: Value?
        if skip(.equals) { defaultValue = try parseValue(const: true) }
        return InputValueDefinition(name: name, description: description, type: type, defaultValue: defaultValue,
                                    directives: try parseDirectives(const: true))
    }
}
