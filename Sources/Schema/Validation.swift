import JSON
import Query

/// One broken validation rule, with the places in the document to blame.
public struct ValidationError: Error, Sendable, Equatable {
    public let message: String
    public let locations: [SourceLocation]
    /// The document was too costly to judge (RULES.md section 5): not a broken rule, but
    /// `QUERY_TOO_COMPLEX`.
    public var tooComplex = false

    public init(message: String, locations: [SourceLocation], tooComplex: Bool = false) {
        self.message = message
        self.locations = locations
        self.tooComplex = tooComplex
    }
}

/// The validation rules of specification section 5 that apply to executable documents.
/// Each rule is a method; all run, and every error found is returned.
public struct Validator {
    let schema: Schema
    let document: Document
    var errors: [ValidationError] = []
    let fragments: [String: FragmentDefinition]

    /// Validation stops after this many errors, as graphql-js's does: a document built to
    /// break a rule a million times must not cost a million reports.
    public static let maxErrors = 100

    /// The one check that must come before anything walks the document through its
    /// fragments (validating, measuring, planning): nesting deeper than `maxNesting`.
    public static func tooDeeplyNested(_ document: Document, schema: Schema) -> ValidationError? {
        Validator(schema: schema, document: document).nestingThroughFragments()
    }

    public static func validate(_ document: Document, schema: Schema) -> [ValidationError] {
        var v = Validator(schema: schema, document: document)
        v.run()
        if v.errors.count > maxErrors {
            return Array(v.errors.prefix(maxErrors))
                + [ValidationError(message: "Too many validation errors, error limit reached. Validation aborted.", locations: [])]
        }
        return v.errors
    }

    init(schema: Schema, document: Document) {
        self.schema = schema
        self.document = document
        var fragments: [String: FragmentDefinition] = [:]
        for case .fragment(let f) in document.definitions where fragments[f.name.value] == nil {
            fragments[f.name.value] = f
        }
        self.fragments = fragments
    }

    mutating func report(_ message: String, _ locations: [SourceLocation]) {
        errors.append(ValidationError(message: message, locations: locations))
    }

    mutating func run() {
        if let tooDeep = nestingThroughFragments() {
            errors.append(tooDeep)
            return
        }
        executableDefinitions()
        uniqueOperationNames()
        loneAnonymousOperation()
        uniqueFragmentNames()
        fragmentSpreadTargetsAndCycles()
        fieldMerging(in: unusedFragments())
        for definition in document.definitions where errors.count <= Self.maxErrors {
            switch definition {
            case .operation(let op): validateOperation(op)
            case .fragment(let f): validateFragment(f)
            case .typeSystem: break
            }
        }
    }

    // 5.1.1 Executable Definitions
    mutating func executableDefinitions() {
        for case .typeSystem(let def) in document.definitions {
            let name = def.name.map { "\"\($0)\"" } ?? "schema"
            report("The \(name) definition is not executable.", [def.location])
        }
    }

    // 5.2.1.1 Operation Name Uniqueness
    mutating func uniqueOperationNames() {
        var seen: [String: SourceLocation] = [:]
        for case .operation(let op) in document.definitions {
            guard let name = op.name else { continue }
            if let first = seen[name.value] {
                report("There can be only one operation named \"\(name.value)\".", [first, name.location])
            } else {
                seen[name.value] = name.location
            }
        }
    }

    // 5.2.2.1 Lone Anonymous Operation
    mutating func loneAnonymousOperation() {
        let operations = document.definitions.compactMap { d -> OperationDefinition? in
            if case .operation(let op) = d { return op } else { return nil }
        }
        guard operations.count > 1 else { return }
        for op in operations where op.name == nil {
            report("This anonymous operation must be the only defined operation.", [op.location])
        }
    }

    // 5.5.1.1 Fragment Name Uniqueness
    mutating func uniqueFragmentNames() {
        var seen: [String: SourceLocation] = [:]
        for case .fragment(let f) in document.definitions {
            if let first = seen[f.name.value] {
                report("There can be only one fragment named \"\(f.name.value)\".", [first, f.name.location])
            } else {
                seen[f.name.value] = f.name.location
            }
        }
    }

    // 5.5.2.2 Fragment spreads must not form cycles
    mutating func fragmentSpreadTargetsAndCycles() {
        var visited = Set<String>()
        for case .fragment(let f) in document.definitions where !visited.contains(f.name.value) {
            var path: [FragmentSpread] = []
            var onPath: [String: Int] = [:]
            detectCycles(f, visited: &visited, path: &path, onPath: &onPath)
        }
    }

    private mutating func detectCycles(_ fragment: FragmentDefinition, visited: inout Set<String>,
                                       path: inout [FragmentSpread], onPath: inout [String: Int]) {
        let name = fragment.name.value
        guard !visited.contains(name) else { return }
        visited.insert(name)
        let spreads = Self.spreads(in: fragment.selectionSet)
        guard !spreads.isEmpty else { return }
        onPath[name] = path.count
        for spread in spreads {
            let target = spread.name.value
            if let index = onPath[target] {
                let cycle = Array(path[index...]) + [spread]
                let via = cycle.dropLast().map { $0.name.value }
                let suffix = via.isEmpty ? "" : " via \(via.map { "\"\($0)\"" }.joined(separator: ", "))"
                report("Cannot spread fragment \"\(target)\" within itself\(suffix).", cycle.map(\.location))
            } else if let next = fragments[target] {
                path.append(spread)
                detectCycles(next, visited: &visited, path: &path, onPath: &onPath)
                path.removeLast()
            }
        }
        onPath[name] = nil
    }

    static func spreads(in set: SelectionSet) -> [FragmentSpread] {
        var out: [FragmentSpread] = []
        for selection in set.selections {
            switch selection {
            case .field(let f): if let s = f.selectionSet { out += spreads(in: s) }
            case .fragmentSpread(let s): out.append(s)
            case .inlineFragment(let i): out += spreads(in: i.selectionSet)
            }
        }
        return out
    }

    /// Selection sets nested in one another once fragment spreads are followed, at most.
    /// The rules below (and measuring and planning after them) walk a document through
    /// its spreads recursively, and the parser's nesting limit cannot see through a
    /// spread: a chain of 1,700 fragments fits the token limit and overflowed the stack.
    public static let maxNesting = 256

    /// A document nested deeper than `maxNesting` through its fragments, found without
    /// following the chain recursively: the fragments are taken leaves first (Kahn's
    /// order), each adding the depth at which it is spread to the depth of its target.
    /// Fragments on a cycle (reported by its own rule) are bounded by the sum of their
    /// own depths.
    func nestingThroughFragments() -> ValidationError? {
        var own: [String: Int] = [:], callers: [String: [(String, Int)]] = [:], waiting: [String: Int] = [:]
        for (name, fragment) in fragments {
            var spreads: [(String, Int)] = []
            own[name] = Self.nesting(of: fragment.selectionSet, depth: 1, spreads: &spreads)
            let known = spreads.filter { fragments[$0.0] != nil }
            waiting[name] = known.count
            for (target, depth) in known { callers[target, default: []].append((name, depth)) }
        }
        var deepest = own
        var ready = fragments.keys.filter { waiting[$0] == 0 }
        while let done = ready.popLast() {
            for (caller, depth) in callers[done] ?? [] {
                deepest[caller] = max(deepest[caller]!, depth + deepest[done]!)
                waiting[caller]! -= 1
                if waiting[caller] == 0 { ready.append(caller) }
            }
        }
        let onCycles = waiting.filter { $0.value > 0 }.keys
        let cycleBound = onCycles.reduce(0) { $0 + own[$1]! } + (deepest.values.max() ?? 0)
        for case .operation(let op) in document.definitions {
            var spreads: [(String, Int)] = []
            var depth = Self.nesting(of: op.selectionSet, depth: 1, spreads: &spreads)
            for (target, at) in spreads where fragments[target] != nil {
                depth = max(depth, at + ((waiting[target] ?? 0) > 0 ? cycleBound : deepest[target]!))
            }
            if depth > Self.maxNesting || (!onCycles.isEmpty && cycleBound > Self.maxNesting) {
                return tooDeep(at: op.location)
            }
        }
        // A fragment no operation spreads is walked too (for its fields' merging): it is
        // bounded on its own, as deep as its chain of spreads goes.
        if let worst = deepest.max(by: { $0.value < $1.value }),
           worst.value > Self.maxNesting || (!onCycles.isEmpty && cycleBound > Self.maxNesting) {
            return tooDeep(at: fragments[worst.key]!.location)
        }
        return nil
    }

    private func tooDeep(at location: SourceLocation) -> ValidationError {
        ValidationError(message: "The document nests more than \(Self.maxNesting) selections deep through its fragments.",
                        locations: [location], tooComplex: true)
    }

    /// The deepest selection in `set` (which is at `depth`), and the depth of each spread in it.
    static func nesting(of set: SelectionSet, depth: Int, spreads: inout [(String, Int)]) -> Int {
        var deepest = depth
        for selection in set.selections {
            switch selection {
            case .field(let f):
                if let s = f.selectionSet { deepest = max(deepest, nesting(of: s, depth: depth + 1, spreads: &spreads)) }
            case .inlineFragment(let i): deepest = max(deepest, nesting(of: i.selectionSet, depth: depth + 1, spreads: &spreads))
            case .fragmentSpread(let s): spreads.append((s.name.value, depth))
            }
        }
        return deepest
    }

    // 5.5.1.4 Fragments Must Be Used. Returns the fragments no operation spreads.
    mutating func unusedFragments() -> [FragmentDefinition] {
        var used = Set<String>()
        var stack: [SelectionSet] = []
        for case .operation(let op) in document.definitions { stack.append(op.selectionSet) }
        while let set = stack.popLast() {
            for spread in Self.spreads(in: set) where !used.contains(spread.name.value) {
                used.insert(spread.name.value)
                if let f = fragments[spread.name.value] { stack.append(f.selectionSet) }
            }
        }
        var unused: [FragmentDefinition] = []
        for case .fragment(let f) in document.definitions where !used.contains(f.name.value) {
            report("Fragment \"\(f.name.value)\" is never used.", [f.location])
            unused.append(f)
        }
        return unused
    }

    /// 5.3.2 in fragments no operation expands (the operations check the others), as
    /// graphql-js checks every selection set; one budget of comparisons for them all.
    mutating func fieldMerging(in unused: [FragmentDefinition]) {
        var overlaps = OverlapChecker(schema: schema, fragments: fragments)
        for f in unused where errors.count <= Self.maxErrors {
            overlaps.check(f.selectionSet, on: schema.composite(f.typeCondition.value), into: &errors)
            if overlaps.exhausted { return errors.append(OverlapChecker.tooManyComparisons(at: f.location)) }
        }
    }

    // MARK: - Operations

    mutating func validateOperation(_ op: OperationDefinition) {
        let rootName: String?
        switch op.kind {
        case .query: rootName = schema.queryType
        case .mutation: rootName = schema.mutationType
        case .subscription: rootName = nil
        }
        guard let rootName, let root = schema[rootName] else {
            report("Schema is not configured to execute \(op.kind.rawValue) operation.", [op.location])
            return
        }
        var scope = VariableScope(operation: op)
        validateVariableDefinitions(op, &scope)
        directives(op.directives, location: op.kind == .query ? "QUERY" : op.kind == .mutation ? "MUTATION" : "SUBSCRIPTION", scope: &scope)
        var visitedFragments = Set<String>()
        selectionSet(op.selectionSet, on: root, scope: &scope, visitedFragments: &visitedFragments)
        var overlaps = OverlapChecker(schema: schema, fragments: fragments)
        overlaps.check(op.selectionSet, on: root, into: &errors)
        if overlaps.exhausted { errors.append(OverlapChecker.tooManyComparisons(at: op.location)) }
        // 5.8.4 All Variables Used
        for def in op.variables where !scope.used.contains(def.name.value) {
            let suffix = op.name.map { " by operation \"\($0.value)\"" } ?? ""
            report("Variable \"$\(def.name.value)\" is never used\(suffix).", [def.location])
        }
    }

    mutating func validateFragment(_ fragment: FragmentDefinition) {
        // Fragments are checked on their own for the rules that need no variables; variable
        // rules are checked through the operations that use them.
        if let type = schema[fragment.typeCondition.value] {
            if !type.isComposite {
                report("Fragment \"\(fragment.name.value)\" cannot condition on non composite type \"\(type.name)\".",
                       [fragment.typeCondition.location])
            }
        } else {
            report("Unknown type \"\(fragment.typeCondition.value)\".", [fragment.typeCondition.location])
        }
        var scope = VariableScope(operation: nil)
        directives(fragment.directives, location: "FRAGMENT_DEFINITION", scope: &scope)
        var visited = Set<String>([fragment.name.value])
        selectionSet(fragment.selectionSet, on: schema.composite(fragment.typeCondition.value), scope: &scope,
                     visitedFragments: &visited)
    }

    struct VariableScope {
        let operation: OperationDefinition?
        var definitions: [String: VariableDefinition] = [:]
        var used = Set<String>()
        init(operation: OperationDefinition?) {
            self.operation = operation
            for def in operation?.variables ?? [] where definitions[def.name.value] == nil {
                definitions[def.name.value] = def
            }
        }
    }

    mutating func validateVariableDefinitions(_ op: OperationDefinition, _ scope: inout VariableScope) {
        var seen: [String: SourceLocation] = [:]
        for def in op.variables {
            // 5.8.1 Variable Uniqueness
            if let first = seen[def.name.value] {
                report("There can be only one variable named \"$\(def.name.value)\".", [first, def.name.location])
            } else {
                seen[def.name.value] = def.name.location
            }
            // 5.8.2 Variables Are Input Types
            let type = schema[def.type.namedType]
            if type == nil {
                report("Unknown type \"\(def.type.namedType)\".", [def.type.location.namedLocation(of: def.type)])
            } else if type?.isInput == false {
                report("Variable \"$\(def.name.value)\" cannot be non-input type \"\(def.type)\".", [def.type.location])
            }
            if let defaultValue = def.defaultValue {
                // A default of no input type is judged only for what needs no type (5.6.2).
                if type?.isInput == true {
                    valueOfCorrectType(defaultValue, def.type, scope: &scope)
                } else {
                    collectVariables(defaultValue, scope: &scope)
                }
            }
            directives(def.directives, location: "VARIABLE_DEFINITION", scope: &scope)
        }
    }

    // MARK: - Selections

    /// `type` is nil beneath a field of no known type (an unknown field, a selection on a
    /// leaf, a fragment on an unknown type): as graphql-js, no rule that needs the type is
    /// checked there, but every other one is (directives, arguments named twice, the
    /// variables used, the fragments spread), so that a typo above reports no more and no
    /// fewer errors than graphql-js does beneath it.
    mutating func selectionSet(_ set: SelectionSet, on type: NamedType?, scope: inout VariableScope,
                               visitedFragments: inout Set<String>) {
        for selection in set.selections {
            switch selection {
            case .field(let field):
                validateField(field, on: type, scope: &scope, visitedFragments: &visitedFragments)
            case .fragmentSpread(let spread):
                directives(spread.directives, location: "FRAGMENT_SPREAD", scope: &scope)
                guard let fragment = fragments[spread.name.value] else {
                    report("Unknown fragment \"\(spread.name.value)\".", [spread.name.location])
                    continue
                }
                let condition = schema.composite(fragment.typeCondition.value)
                if let type, let condition, schema.possibleTypes(of: condition).isDisjoint(with: schema.possibleTypes(of: type)) {
                    report("Fragment \"\(spread.name.value)\" cannot be spread here as objects of type \"\(type.name)\" can never be of type \"\(condition.name)\".",
                           [spread.location])
                }
                // Variables used inside fragments count for the operation that spreads them.
                if scope.operation != nil, !visitedFragments.contains(fragment.name.value) {
                    visitedFragments.insert(fragment.name.value)
                    var inner = FragmentVariableWalk(validator: self)
                    inner.walk(fragment, on: condition, scope: &scope, visited: &visitedFragments)
                    errors = inner.validator.errors
                }
            case .inlineFragment(let inline):
                directives(inline.directives, location: "INLINE_FRAGMENT", scope: &scope)
                selectionSet(inline.selectionSet, on: inlineFragmentType(inline, in: type), scope: &scope,
                             visitedFragments: &visitedFragments)
            }
        }
    }

    /// The type an inline fragment's selections are made on: its condition's, or without
    /// one its parent's; nil, once reported, for a condition of no composite type.
    mutating func inlineFragmentType(_ inline: InlineFragment, in type: NamedType?) -> NamedType? {
        guard let condition = inline.typeCondition else { return type }
        guard let conditionType = schema[condition.value] else {
            report("Unknown type \"\(condition.value)\".", [condition.location])
            return nil
        }
        guard conditionType.isComposite else {
            report("Fragment cannot condition on non composite type \"\(conditionType.name)\".", [condition.location])
            return nil
        }
        if let type, schema.possibleTypes(of: conditionType).isDisjoint(with: schema.possibleTypes(of: type)) {
            report("Fragment cannot be spread here as objects of type \"\(type.name)\" can never be of type \"\(conditionType.name)\".",
                   [inline.location])
        }
        return conditionType
    }

    mutating func validateField(_ field: Field, on type: NamedType?, scope: inout VariableScope,
                                visitedFragments: inout Set<String>) {
        // 5.3.1 Field Selections
        guard let type, let def = schema.field(field.name.value, on: type) else {
            if let type { report("Cannot query field \"\(field.name.value)\" on type \"\(type.name)\".", [field.location]) }
            untypedArguments(field.arguments, scope: &scope)
            directives(field.directives, location: "FIELD", scope: &scope)
            if let set = field.selectionSet { selectionSet(set, on: nil, scope: &scope, visitedFragments: &visitedFragments) }
            return
        }
        arguments(field.arguments, defs: def.arguments,
                  unknown: { "Unknown argument \"\($0)\" on field \"\(type.name).\(field.name.value)\"." },
                  missing: { "Field \"\(field.name.value)\" argument \"\($0.name)\" of type \"\($0.type)\" is required, but it was not provided." },
                  at: field.location, scope: &scope)
        directives(field.directives, location: "FIELD", scope: &scope)
        // 5.3.3 Leaf Field Selections
        guard let returnType = schema[def.type.namedType] else { return }
        if returnType.isLeaf {
            if let set = field.selectionSet {
                report("Field \"\(field.name.value)\" must not have a selection since type \"\(def.type)\" has no subfields.",
                       [set.location])
                selectionSet(set, on: nil, scope: &scope, visitedFragments: &visitedFragments)
            }
        } else if let set = field.selectionSet {
            selectionSet(set, on: returnType, scope: &scope, visitedFragments: &visitedFragments)
        } else {
            report("Field \"\(field.name.value)\" of type \"\(def.type)\" must have a selection of subfields. Did you mean \"\(field.name.value) { ... }\"?",
                   [field.location])
        }
    }

    mutating func arguments(_ given: [Argument], defs: [InputValueDef], unknown: (String) -> String,
                            missing: (InputValueDef) -> String, at location: SourceLocation, scope: inout VariableScope) {
        uniqueNames(given.map(\.name), of: "argument")
        for argument in given {
            // 5.4.1 Argument Names
            guard let def = defs.first(where: { $0.name == argument.name.value }) else {
                report(unknown(argument.name.value), [argument.location])
                collectVariables(argument.value, scope: &scope)
                continue
            }
            valueOfCorrectType(argument.value, def.type, scope: &scope)
        }
        // 5.4.2.1 Required Arguments
        for def in defs where def.defaultValue == nil {
            guard case .nonNull = def.type else { continue }
            let arg = given.first { $0.name.value == def.name }
            if arg == nil {
                report(missing(def), [location])
            }
        }
    }

    /// The arguments of a field or directive of no known definition: only their names
    /// given twice and the variables in them are checked.
    mutating func untypedArguments(_ given: [Argument], scope: inout VariableScope) {
        uniqueNames(given.map(\.name), of: "argument")
        for argument in given { collectVariables(argument.value, scope: &scope) }
    }

    /// 5.4.2 Argument Uniqueness and 5.6.2 Input Object Field Uniqueness: each name once
    /// in its list ("argument", "input field").
    mutating func uniqueNames(_ names: [Name], of kind: String) {
        var seen: [String: SourceLocation] = [:]
        for name in names {
            if let first = seen[name.value] {
                report("There can be only one \(kind) named \"\(name.value)\".", [first, name.location])
            }
            seen[name.value] = name.location
        }
    }

    mutating func directives(_ list: [Directive], location: String, scope: inout VariableScope) {
        var seen: [String: SourceLocation] = [:]
        for directive in list {
            let name = directive.name.value
            // 5.7.1 Directives Are Defined
            guard let def = schema.directive(name) else {
                report("Unknown directive \"@\(name)\".", [directive.location])
                untypedArguments(directive.arguments, scope: &scope)
                continue
            }
            // 5.7.2 Directives Are In Valid Locations
            if !def.locations.contains(location) {
                report("Directive \"@\(name)\" may not be used on \(location).", [directive.location])
            }
            // 5.7.3 Directives Are Unique Per Location
            if !def.isRepeatable {
                if let first = seen[name] {
                    report("The directive \"@\(name)\" can only be used once at this location.", [first, directive.location])
                }
                seen[name] = directive.location
            }
            arguments(directive.arguments, defs: def.arguments,
                      unknown: { "Unknown argument \"\($0)\" on directive \"@\(name)\"." },
                      missing: { "Directive \"@\(name)\" argument \"\($0.name)\" of type \"\($0.type)\" is required, but it was not provided." },
                      at: directive.location, scope: &scope)
        }
    }

    // MARK: - Values

    /// 5.6.1 Values of Correct Type, with 5.8.3 and 5.8.5 for the variables inside.
    mutating func valueOfCorrectType(_ value: Value, _ type: TypeReference, scope: inout VariableScope) {
        if case .variable(let name) = value.kind {
            variableUsage(name, at: value.location, expected: type, hasDefault: false, scope: &scope)
            return
        }
        switch type {
        case .nonNull(let inner, _):
            if case .null = value.kind {
                report("Expected value of type \"\(type)\", found null.", [value.location])
                return
            }
            valueOfCorrectType(value, inner, scope: &scope)
        case .list(let inner, _):
            if case .null = value.kind { return }  // a null list, not a list of one null
            if case .list(let items) = value.kind {
                for item in items { valueOfCorrectType(item, inner, scope: &scope) }
            } else {
                valueOfCorrectType(value, inner, scope: &scope)
            }
        case .named(let name, _):
            guard let named = schema[name] else { return }
            if case .null = value.kind { return }
            switch named.kind {
            case .inputObject:
                guard case .object(let fields) = value.kind else {
                    report("Expected value of type \"\(name)\", found \(ValuePrinter.print(value)).", [value.location])
                    collectVariables(value, standing: .named(name, value.location), scope: &scope)
                    return
                }
                uniqueNames(fields.map(\.name), of: "input field")
                for field in fields {
                    guard let def = named.inputFieldsByName[field.name.value] else {
                        report("Field \"\(field.name.value)\" is not defined by type \"\(name)\".", [field.location])
                        collectVariables(field.value, scope: &scope)
                        continue
                    }
                    if case .variable(let v) = field.value.kind {
                        variableUsage(v, at: field.value.location, expected: def.type, hasDefault: def.defaultValue != nil, scope: &scope)
                    } else {
                        valueOfCorrectType(field.value, def.type, scope: &scope)
                    }
                }
                for def in named.inputFields where def.defaultValue == nil {
                    if case .nonNull = def.type, !fields.contains(where: { $0.name.value == def.name }) {
                        report("Field \"\(name).\(def.name)\" of required type \"\(def.type)\" was not provided.", [value.location])
                    }
                }
            case .enumType, .scalar:
                collectVariables(value, standing: .named(name, value.location), scope: &scope)
                let coercion = InputCoercion(schema: schema)
                // Any variables inside (only possible for a custom scalar) do not decide validity.
                if (try? coercion.literal(value, .named(name, value.location), variables: [:])) == nil {
                    report(leafMessage(value, named), [value.location])
                }
            default:
                break
            }
        }
    }

    /// Why a literal is not a value of a leaf type: graphql-js's words for the built-in
    /// types, a custom scalar's own (from its hooks).
    func leafMessage(_ value: Value, _ type: NamedType) -> String {
        let printed = ValuePrinter.print(value)
        if type.kind == .enumType {
            if case .enumValue = value.kind {
                return "Value \"\(printed)\" does not exist in \"\(type.name)\" enum."
            }
            return "Enum \"\(type.name)\" cannot represent non-enum value: \(printed)."
        }
        switch type.name {
        case "Int":
            if case .int = value.kind { return "Int cannot represent non 32-bit signed integer value: \(printed)" }
            return "Int cannot represent non-integer value: \(printed)"
        case "Float": return "Float cannot represent non numeric value: \(printed)"
        case "String": return "String cannot represent a non string value: \(printed)"
        case "Boolean": return "Boolean cannot represent a non boolean value: \(printed)"
        case "ID": return "ID cannot represent a non-string and non-integer value: \(printed)"
        default:
            do {
                _ = try schema.coercion(ofScalar: type.name).parseLiteral(value, [:])
                return "\(type.name) cannot represent value: \(printed)"
            } catch {
                return error.message
            }
        }
    }

    /// The variables inside a literal that is not a value of the type where it stands (or
    /// that stands where no type is known: an unknown argument or input field), with 5.6.2
    /// for every object among them. As graphql-js's TypeInfo has it, a list's items stand
    /// where the list's items would, or where the list stands if no list is expected
    /// (`customData: [$v]` uses `$v` as a `JSON`); an object's fields stand where the input
    /// object's fields do, or where no type is known, so that a variable there is used but
    /// not judged.
    mutating func collectVariables(_ value: Value, standing type: TypeReference? = nil, hasDefault: Bool = false,
                                   scope: inout VariableScope) {
        switch value.kind {
        case .variable(let name): variableUsage(name, at: value.location, expected: type, hasDefault: hasDefault, scope: &scope)
        case .list(let items):
            let itemType = type.map { type in
                let nullable = if case .nonNull(let inner, _) = type { inner } else { type }
                return if case .list(let item, _) = nullable { item } else { nullable }
            }
            for i in items { collectVariables(i, standing: itemType, scope: &scope) }
        case .object(let fields):
            uniqueNames(fields.map(\.name), of: "input field")
            let object = type.flatMap { schema[$0.namedType] }.flatMap { $0.kind == .inputObject ? $0 : nil }
            for f in fields {
                let def = object?.inputFieldsByName[f.name.value]
                collectVariables(f.value, standing: def?.type, hasDefault: def?.defaultValue != nil, scope: &scope)
            }
        default: break
        }
    }

    /// 5.8.3 All Variable Uses Defined and 5.8.5 All Variable Usages Are Allowed.
    mutating func variableUsage(_ name: String, at location: SourceLocation, expected: TypeReference?, hasDefault: Bool,
                                scope: inout VariableScope) {
        guard let operation = scope.operation else { return }  // checked from the operations
        scope.used.insert(name)
        guard let def = scope.definitions[name] else {
            let suffix = operation.name.map { " by operation \"\($0.value)\"" } ?? ""
            report("Variable \"$\(name)\" is not defined\(suffix).", [location, operation.location])
            return
        }
        // A variable of an unknown type has its own error (5.8.2), not one for each use.
        guard let expected, schema[def.type.namedType] != nil else { return }
        var variableType = def.type
        if case .nonNull = expected, !(variableType.isNonNull) {
            let hasUsefulDefault = def.defaultValue.map { if case .null = $0.kind { return false } else { return true } } ?? false
            if hasUsefulDefault || hasDefault {
                variableType = .nonNull(variableType, variableType.location)
            }
        }
        if !schema.isSubtype(variableType, of: expected) {
            report("Variable \"$\(name)\" of type \"\(def.type)\" used in position expecting type \"\(expected)\".",
                   [def.location, location])
        }
    }
}

/// Walks a fragment reached from an operation, for the variable rules only.
struct FragmentVariableWalk {
    var validator: Validator

    /// `type`: the fragment's type condition, nil when it is no known composite type.
    mutating func walk(_ fragment: FragmentDefinition, on type: NamedType?, scope: inout Validator.VariableScope,
                       visited: inout Set<String>) {
        var probe = validator
        probe.errors = []
        probe.directives(fragment.directives, location: "FRAGMENT_DEFINITION", scope: &scope)
        probe.selectionSet(fragment.selectionSet, on: type, scope: &scope, visitedFragments: &visited)
        // Keep only the variable errors: the rest were reported when the fragment itself was validated.
        let variableErrors = probe.errors.filter { $0.message.hasPrefix("Variable \"$") }
        validator.errors.append(contentsOf: variableErrors)
    }
}

extension TypeReference {
    var isNonNull: Bool { if case .nonNull = self { return true } else { return false } }
}

extension SourceLocation {
    func namedLocation(of type: TypeReference) -> SourceLocation {
        switch type {
        case .named(_, let l): return l
        case .list(let inner, _), .nonNull(let inner, _): return namedLocation(of: inner)
        }
    }
}
