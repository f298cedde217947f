import JSON
import Query
import Schema
import Synchronization

/// What a client sent: the GraphQL-over-HTTP request parameters.
public struct GraphQLRequest: Sendable {
    public var query: String
    public var variables: [(String, JSONValue)]
    public var operationName: String?

    public init(query: String, variables: [(String, JSONValue)] = [], operationName: String? = nil) {
        self.query = query
        self.variables = variables
        self.operationName = operationName
    }
}

/// Turns a request into an executable plan, or into the request errors that leave no data:
/// parse, measure every operation against the limits of RULES.md section 5, validate,
/// pick the operation, coerce variables, and plan. Every step before planning costs what
/// the document's text costs; planning, which expands fragments, runs only on an
/// operation measured small.
public struct Preparation: Sendable {
    public let schema: Schema
    public var limits: ParserLimits
    public var maxDepth: Int
    /// Object and list fields one operation may select (each may cost a statement).
    public var maxCompositeFields: Int
    /// Fields one operation may select once its fragments are expanded.
    public var maxExpandedFields: Int

    public init(schema: Schema, limits: ParserLimits = ParserLimits(), maxDepth: Int = 15,
                maxCompositeFields: Int = 300, maxExpandedFields: Int = 10_000) {
        self.schema = schema
        self.limits = limits
        self.maxDepth = maxDepth
        self.maxCompositeFields = maxCompositeFields
        self.maxExpandedFields = maxExpandedFields
    }

    /// A document that parsed and validated, kept so that repeated queries skip both,
    /// and the shapes of its operations once planned, so that they skip planning too.
    public struct ValidDocument: Sendable {
        public let document: Document
        let fragments: [String: FragmentDefinition]
        let shapes = PlanShapes()
    }

    public func validDocument(_ query: String) -> Result<ValidDocument, RequestFailure> {
        let document: Document
        do {
            document = try Parser.parse(query, limits: limits)
        } catch {
            return .failure(.documentRejected([GraphQLError(error.message, code: .parseFailed, locations: [error.location])]))
        }
        if let tooDeep = Validator.tooDeeplyNested(document, schema: schema) {
            return .failure(.tooComplex(GraphQLError(tooDeep.message, code: .queryTooComplex, locations: tooDeep.locations)))
        }
        var fragments: [String: FragmentDefinition] = [:]
        for case .fragment(let f) in document.definitions where fragments[f.name.value] == nil { fragments[f.name.value] = f }
        // Measured before it is validated: the measure costs what the text costs, and a
        // document built to expand (doubling fragments) is refused before validation
        // spends anything on it.
        for case .operation(let op) in document.definitions {
            let rootName = op.kind == .mutation ? schema.mutationType : op.kind == .query ? schema.queryType : nil
            if let root = rootName.flatMap({ schema[$0] }), let tooLarge = refusal(of: op, fragments: fragments, rootType: root) {
                return .failure(.tooComplex(tooLarge))
            }
        }
        let errors = Validator.validate(document, schema: schema)
        if let costly = errors.first(where: \.tooComplex) {
            return .failure(.tooComplex(GraphQLError(costly.message, code: .queryTooComplex, locations: costly.locations)))
        }
        if !errors.isEmpty {
            return .failure(.documentRejected(errors.map {
                GraphQLError($0.message, code: .validationFailed, locations: $0.locations)
            }))
        }
        return .success(ValidDocument(document: document, fragments: fragments))
    }

    /// Why a request has no data.
    public enum RequestFailure: Error, Sendable {
        /// The document does not parse or validate, or variables cannot be coerced.
        case documentRejected([GraphQLError])
        /// The operation to run cannot be chosen (HTTP 400 whatever the media type).
        case badRequest(GraphQLError)
        /// A limit of RULES.md section 5.
        case tooComplex(GraphQLError)
    }

    public func operation(in valid: ValidDocument, named name: String?) -> Result<OperationDefinition, RequestFailure> {
        let operations = valid.document.definitions.compactMap { d -> OperationDefinition? in
            if case .operation(let op) = d { return op } else { return nil }
        }
        if let name {
            guard let op = operations.first(where: { $0.name?.value == name }) else {
                return .failure(.badRequest(GraphQLError("Unknown operation named \"\(name)\".", code: .badUserInput)))
            }
            return .success(op)
        }
        guard operations.count == 1 else {
            return .failure(.badRequest(GraphQLError(
                operations.isEmpty ? "Must provide an operation." : "Must provide operation name if query contains multiple operations.",
                code: .badUserInput)))
        }
        return .success(operations[0])
    }

    public func plan(_ operation: OperationDefinition, in valid: ValidDocument,
                     variables: [(String, JSONValue)]) -> Result<OperationPlan, RequestFailure> {
        let coerced: [String: JSONValue]
        do {
            coerced = try InputCoercion(schema: schema).coerceVariables(operation.variables, values: variables)
        } catch {
            return .failure(.documentRejected([GraphQLError(error.message, code: .badUserInput, locations: error.locations)]))
        }
        let rootName = operation.kind == .mutation ? schema.mutationType : schema.queryType
        guard let rootName, let root = schema[rootName] else {
            return .failure(.badRequest(GraphQLError("The schema has no \(operation.kind.rawValue) type.", code: .badUserInput)))
        }
        var planner = Planner(schema: schema, fragments: valid.fragments, variables: coerced)
        let flags = valid.shapes.directiveVariables(of: operation, fragments: valid.fragments).map { name -> Bool? in
            if case .bool(let flag)? = coerced[name] { flag } else { nil }
        }
        let key = PlanShapes.Key(operation: operation.name?.value, flags: flags)
        let shape = valid.shapes.shape(for: key, tokens: valid.document.tokenCount) {
            planner.shape(operation, rootType: root)
        }
        return .success(planner.bind(shape))
    }

    /// The first limit the operation breaks, measured without expanding its fragments.
    private func refusal(of operation: OperationDefinition, fragments: [String: FragmentDefinition],
                         rootType: NamedType) -> GraphQLError? {
        var measurer = OperationMeasurer(schema: schema, fragments: fragments)
        let size = measurer.measure(operation.selectionSet, on: rootType)
        let message: String
        if size.depth > maxDepth {
            message = "The query is \(size.depth) levels deep; at most \(maxDepth) are allowed."
        } else if size.fields > maxExpandedFields {
            message = "The query selects \(size.fields) fields once its fragments are expanded; at most \(maxExpandedFields) are allowed."
        } else if size.compositeFields > maxCompositeFields {
            message = "The query selects \(size.compositeFields) objects or lists; at most \(maxCompositeFields) are allowed."
        } else {
            return nil
        }
        return GraphQLError(message, code: .queryTooComplex)
    }

    /// All steps at once, for callers that cache nothing.
    public func prepare(_ request: GraphQLRequest) -> Result<(OperationDefinition, OperationPlan), RequestFailure> {
        validDocument(request.query).flatMap { valid in
            operation(in: valid, named: request.operationName).flatMap { op in
                plan(op, in: valid, variables: request.variables).map { (op, $0) }
            }
        }
    }
}

/// The shapes planned for one document (`PlanShape`), by operation and by the values of
/// the variables its `@skip` and `@include` read (the shape depends on no other). A
/// repeated query is then planned once, whatever its other variables.
///
/// Bounded with the document: at most `maxShapes` of them, holding together no more
/// planned fields than the document has tokens (`fieldsPerToken`), so that what the
/// document cache charges a document by its tokens still bounds what it holds. A
/// document whose fragments multiply its fields is planned anew each time, as before
/// there were shapes.
public final class PlanShapes: Sendable {
    struct Key: Hashable {
        let operation: String?
        /// The value of each variable of `directiveVariables`, nil when not a Boolean.
        let flags: [Bool?]
    }

    static let maxShapes = 8
    /// The planned fields all kept shapes of a document may hold, per token of its text.
    public static let fieldsPerToken = 1

    private struct Kept {
        var shapes: [Key: PlanShape] = [:]
        var fields = 0
        var directiveVariables: [String?: [String]] = [:]
    }

    private let kept = Mutex(Kept())

    /// The variables that `@skip` and `@include` read in `operation` and the fragments it
    /// spreads, in the order met; found once per operation.
    func directiveVariables(of operation: OperationDefinition, fragments: [String: FragmentDefinition]) -> [String] {
        if let names = kept.withLock({ $0.directiveVariables[operation.name?.value] }) { return names }
        var names: [String] = [], visited = Set<String>()
        Self.collect(operation.selectionSet, fragments, &visited, into: &names)
        kept.withLock { $0.directiveVariables[operation.name?.value] = names }
        return names
    }

    private static func collect(_ set: SelectionSet, _ fragments: [String: FragmentDefinition], _ visited: inout Set<String>,
                                into names: inout [String]) {
        for selection in set.selections {
            for directive in selection.directives where directive.name.value == "skip" || directive.name.value == "include" {
                for case .variable(let name) in directive.arguments.map(\.value.kind) where !names.contains(name) {
                    names.append(name)
                }
            }
            switch selection {
            case .field(let field):
                if let children = field.selectionSet { collect(children, fragments, &visited, into: &names) }
            case .inlineFragment(let inline):
                collect(inline.selectionSet, fragments, &visited, into: &names)
            case .fragmentSpread(let spread):
                guard visited.insert(spread.name.value).inserted, let fragment = fragments[spread.name.value] else { continue }
                collect(fragment.selectionSet, fragments, &visited, into: &names)
            }
        }
    }

    /// The shape kept for `key`, or the one `make` plans (kept while the document's shapes
    /// hold at most `tokens` × `fieldsPerToken` fields).
    func shape(for key: Key, tokens: Int, make: () -> PlanShape) -> PlanShape {
        if let shape = kept.withLock({ $0.shapes[key] }) { return shape }
        let shape = make()
        kept.withLock { kept in
            guard kept.shapes.count < Self.maxShapes, kept.fields + shape.fieldCount <= tokens * Self.fieldsPerToken,
                  kept.shapes[key] == nil else { return }
            kept.shapes[key] = shape
            kept.fields += shape.fieldCount
        }
        return shape
    }
}
