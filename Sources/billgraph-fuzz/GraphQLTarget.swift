import Query

/// `graphql`: the lexer and parser of GraphQL documents (Sources/Query), with small
/// limits so that inputs reach them. Proves that any text either parses or is refused
/// with a syntax error placed inside the document, and that what parses keeps within
/// the limits: no more nesting than `maxDepth`, no more names than `maxTokens`.
func fuzzGraphQL(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    let limits = ParserLimits(maxTokens: 500, maxDepth: 8)
    let document: Document
    do {
        document = try Parser.parse(text, limits: limits)
    } catch {
        let lines = 1 + text.unicodeScalars.filter { $0 == "\n" || $0 == "\r" }.count
        precondition(error.location.line >= 1 && error.location.line <= lines && error.location.column >= 1,
                     "error placed outside the document at \(error.location)")
        precondition(error.message.hasPrefix("Syntax Error: "), "unexpected wording: \(error.message)")
        return
    }
    var size = Size()
    for definition in document.definitions { size.measure(definition) }
    precondition(size.deepest <= limits.maxDepth, "nested \(size.deepest) deep past the limit \(limits.maxDepth)")
    precondition(size.names <= limits.maxTokens, "\(size.names) names past the token limit \(limits.maxTokens)")
}

/// How deep the nesting of a document goes (selection sets, lists and objects of values,
/// list types: what the parser's depth limit counts) and how many names it holds.
private struct Size {
    var names = 0
    var deepest = 0

    mutating func measure(_ definition: Definition) {
        switch definition {
        case .operation(let op):
            names += op.name == nil ? 0 : 1
            for v in op.variables {
                names += 1
                type(v.type, 1)
                if let d = v.defaultValue { value(d, 1) }
                directives(v.directives, 1)
            }
            directives(op.directives, 0)
            selections(op.selectionSet, 1)
        case .fragment(let f):
            names += 4  // fragment Name on Type
            directives(f.directives, 0)
            selections(f.selectionSet, 1)
        case .typeSystem:
            names += 1  // parsed for the schema file, refused in requests: only its existence is counted
        }
    }

    mutating func selections(_ set: SelectionSet, _ depth: Int) {
        deepest = max(deepest, depth)
        for selection in set.selections {
            switch selection {
            case .field(let f):
                names += f.alias == nil ? 1 : 2
                for a in f.arguments { names += 1; value(a.value, depth + 1) }
                directives(f.directives, depth)
                if let s = f.selectionSet { selections(s, depth + 1) }
            case .fragmentSpread(let s):
                names += 1
                directives(s.directives, depth)
            case .inlineFragment(let i):
                names += i.typeCondition == nil ? 0 : 2
                directives(i.directives, depth)
                selections(i.selectionSet, depth + 1)
            }
        }
    }

    mutating func directives(_ list: [Directive], _ depth: Int) {
        for d in list {
            names += 1
            for a in d.arguments { names += 1; value(a.value, depth + 1) }
        }
    }

    mutating func value(_ v: Value, _ depth: Int) {
        deepest = max(deepest, depth)
        switch v.kind {
        case .list(let items): for item in items { value(item, depth + 1) }
        case .object(let fields): for f in fields { names += 1; value(f.value, depth + 1) }
        case .variable, .enumValue: names += 1
        default: break
        }
    }

    mutating func type(_ t: TypeReference, _ depth: Int) {
        deepest = max(deepest, depth)
        switch t {
        case .named: names += 1
        case .list(let inner, _), .nonNull(let inner, _): type(inner, depth + (t.isList ? 1 : 0))
        }
    }
}

private extension TypeReference {
    var isList: Bool { if case .list = self { return true } else { return false } }
}
