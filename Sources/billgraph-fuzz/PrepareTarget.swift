import Engine
import JSON
import Query
import Schema

/// `prepare`: what a request goes through before any database work, against the contract
/// schema: parse, validation (Sources/Schema), choice of operation, variable coercion
/// and planning (Sources/Engine `Preparation`). The input is a document, optionally
/// followed by a line `#variables` and a JSON object of variables. Every operation of
/// the document is prepared by name. Proves that this ends (libFuzzer's `-timeout` and
/// `-rss_limit_mb` bound its time and memory) in a plan within the limits or in
/// errors of the kinds a request may get.
func fuzzPreparation(_ bytes: [UInt8]) {
    let (query, variablesText) = split(bytes, at: Array("\n#variables\n".utf8))
    var variables: [(String, JSONValue)] = []
    if let variablesText, case .object(let members)? = try? JSONParser.parse(variablesText) { variables = members }
    let preparation = Preparation(schema: Schema.contract)
    let request = String(decoding: query, as: UTF8.self)

    let valid: Preparation.ValidDocument
    switch preparation.validDocument(request) {
    case .success(let document): valid = document
    case .failure(.documentRejected(let errors)):
        precondition(!errors.isEmpty && errors.allSatisfy { $0.code == .parseFailed || $0.code == .validationFailed },
                     "a document refused without its errors: \(errors)")
        return
    case .failure(.tooComplex(let error)):
        precondition(error.code == .queryTooComplex, "too complex without QUERY_TOO_COMPLEX: \(error)")
        return
    case .failure(let failure):
        preconditionFailure("a document refused as a bad request: \(failure)")
    }
    let names = valid.document.definitions.compactMap { d -> String? in
        if case .operation(let op) = d { return op.name?.value ?? "" } else { return nil }
    }
    precondition(!names.isEmpty, "a valid document without an operation")
    for name in names {
        guard case .success(let operation) = preparation.operation(in: valid, named: name.isEmpty ? nil : name) else {
            preconditionFailure("operation \"\(name)\" of a valid document not found")
        }
        switch preparation.plan(operation, in: valid, variables: variables) {
        case .success(let plan):
            precondition(depth(plan.fields) <= preparation.maxDepth, "a plan deeper than the limit was accepted")
            precondition(composites(plan.fields) <= preparation.maxCompositeFields, "a plan past the breadth limit was accepted")
            precondition(plan.fieldCount <= preparation.maxExpandedFields, "a plan of \(plan.fieldCount) fields was accepted")
        case .failure(.documentRejected(let errors)):
            precondition(!errors.isEmpty && errors.allSatisfy { $0.code == .badUserInput }, "coercion failed without a BAD_USER_INPUT error")
        case .failure(.tooComplex(let error)):
            precondition(error.code == .queryTooComplex)
        case .failure(.badRequest(let error)):
            precondition(error.code == .badUserInput)
        }
    }
}

/// The bytes before the first `separator`, and those after it (nil without one).
func split(_ bytes: [UInt8], at separator: [UInt8]) -> ([UInt8], [UInt8]?) {
    guard bytes.count >= separator.count else { return (bytes, nil) }
    for i in 0...(bytes.count - separator.count) where bytes[i..<(i + separator.count)].elementsEqual(separator) {
        return (Array(bytes[..<i]), Array(bytes[(i + separator.count)...]))
    }
    return (bytes, nil)
}

/// Fields on the longest path (`__schema` and `__type` count as one), and fields that
/// return objects or lists (introspection aside): what RULES.md section 5 limits.
private func depth(_ fields: [PlannedField]) -> Int {
    fields.map { $0.name == "__schema" || $0.name == "__type" ? 1 : 1 + depth($0.children) }.max() ?? 0
}

private func composites(_ fields: [PlannedField]) -> Int {
    fields.map { $0.name == "__schema" || $0.name == "__type" || $0.children.isEmpty ? 0 : 1 + composites($0.children) }
        .reduce(0, +)
}
