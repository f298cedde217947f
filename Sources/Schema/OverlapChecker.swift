import Query

/// 5.3.2 Field Selection Merging: fields with the same response name in one selection
/// set (fragments included) must be mergeable.
///
/// The work stays linear in the document (RULES.md section 5), as graphql-js's
/// OverlappingFieldsCanBeMerged does with its caches: fields are known by their
/// signature (their text, fragment spreads unexpanded), a selection set is checked once
/// whatever number of places it is spread in (it is one node of the document), and a pair
/// of fields is compared once.
/// What remains quadratic (many distinct fields under one response name) is bounded by
/// `maxComparisons`; past it the document is refused as too complex to judge.
struct OverlapChecker {
    let schema: Schema
    let fragments: [String: FragmentDefinition]

    /// Pairs of fields compared, at most. A real query compares a few dozen.
    static let maxComparisons = 20_000
    private(set) var comparisons = 0
    var exhausted: Bool { comparisons > Self.maxComparisons }

    /// What a document whose merging needed more than `maxComparisons` gets: not a broken
    /// rule, but QUERY_TOO_COMPLEX (RULES.md section 5).
    static func tooManyComparisons(at location: SourceLocation) -> ValidationError {
        ValidationError(message: "The document compares more than \(maxComparisons) pairs of fields to merge them.",
                        locations: [location], tooComplex: true)
    }
    /// Selection sets already checked, by parent type and place in the document.
    private var checkedSets = Set<String>()
    /// Pairs of fields already compared, by their signatures: the result of each.
    private var comparedPairs: [String: Conflict?] = [:]
    /// Conflicts reported, by their places: one met again through another set is not
    /// reported twice.
    private var reported = Set<String>()

    init(schema: Schema, fragments: [String: FragmentDefinition]) {
        self.schema = schema
        self.fragments = fragments
    }

    /// `parentType` is nil beneath a field of no known type: such fields are still compared
    /// by name and arguments, as graphql-js does.
    struct Entry {
        let parentType: NamedType?
        let field: Field
        let def: FieldDef?
        /// The field as text (parent type, name, arguments, selections): two entries with
        /// the same signature can never conflict, so only one of them is compared. Made
        /// when asked: most fields share their response name with no other, and are
        /// never compared (an alias flood is thousands of them).
        var signature: String { (parentType?.name ?? "") + "." + OverlapChecker.print(field) }
    }

    /// One entry per signature: repeating a field a thousand times must not cost a
    /// million comparisons.
    static func distinct(_ entries: [Entry]) -> [Entry] {
        if entries.count < 2 { return entries }  // most response names: no set to build
        var seen = Set<String>()
        return entries.filter { seen.insert($0.signature).inserted }
    }

    struct Conflict {
        let responseName: String
        let reason: Reason
        let locations1: [SourceLocation]
        let locations2: [SourceLocation]
        /// The messages at the leaves of `reason`.
        var size = 1
    }

    /// Messages one explanation may hold. A cached conflict is copied into the
    /// explanation of every pair above it, so without a bound an explanation (and its
    /// locations) grows exponentially with the nesting while the comparisons stay few;
    /// past it, further conflicting subfields are left out of the text.
    static let maxReasons = 100

    indirect enum Reason {
        case message(String)
        case sub([(String, Reason)])

        var text: String {
            switch self {
            case .message(let m): return m
            case .sub(let parts):
                return parts.map { "subfields \"\($0.0)\" conflict because \($0.1.text)" }.joined(separator: " and ")
            }
        }
    }

    mutating func check(_ set: SelectionSet, on type: NamedType?, into errors: inout [ValidationError]) {
        checkSet(set, on: type, into: &errors)
    }

    private mutating func checkSet(_ set: SelectionSet, on type: NamedType?, into errors: inout [ValidationError]) {
        // Known by place, not text: a fragment's set is the same node wherever it is spread.
        guard checkedSets.insert("\(type?.name ?? "")@\(set.location)").inserted else { return }
        if Self.isFlatWithDistinctNames(set) { return }
        var visited = Set<String>()
        let byName = collect(set, on: type, visited: &visited)
        for (_, all) in byName {
            let entries = Self.distinct(all)
            for i in 0..<entries.count {
                for j in (i + 1)..<entries.count {
                    if errors.count > Validator.maxErrors || exhausted { return }
                    if let conflict = findConflict(entries[i], entries[j], parentsMutuallyExclusive: false) {
                        let key = "\(conflict.locations1)|\(conflict.locations2)"
                        guard reported.insert(key).inserted else { continue }
                        errors.append(ValidationError(
                            message: "Fields \"\(conflict.responseName)\" conflict because \(conflict.reason.text). Use different aliases on the fields to fetch both if this was intentional.",
                            locations: conflict.locations1 + conflict.locations2))
                    }
                }
            }
        }
        // Nested selection sets are checked on their own too, those of no known type as well.
        for entry in Self.distinct(byName.values.flatMap({ $0 }).filter { $0.field.selectionSet != nil }) {
            if let sub = entry.field.selectionSet {
                checkSet(sub, on: compositeType(of: entry), into: &errors)
            }
        }
    }

    /// Leaves only, no fragments, each under a response name of its own: nothing can
    /// conflict, and an alias flood of thousands of leaves is judged with one hash each.
    private static func isFlatWithDistinctNames(_ set: SelectionSet) -> Bool {
        var names = Set<String>(minimumCapacity: set.selections.count)
        return set.selections.allSatisfy { selection in
            guard case .field(let field) = selection, field.selectionSet == nil else { return false }
            return names.insert(field.responseKey).inserted
        }
    }

    /// The composite type an entry's selections are made on; nil for a field of no known
    /// definition, or of a leaf type.
    private func compositeType(of entry: Entry) -> NamedType? {
        entry.def.flatMap { schema.composite($0.type.namedType) }
    }

    /// Fields by response name, in order of first appearance, fragments expanded.
    func collect(_ set: SelectionSet, on type: NamedType?, visited: inout Set<String>) -> OrderedFields {
        var out = OrderedFields()
        collect(set, on: type, into: &out, visited: &visited)
        return out
    }

    private func collect(_ set: SelectionSet, on type: NamedType?, into out: inout OrderedFields, visited: inout Set<String>) {
        for selection in set.selections {
            switch selection {
            case .field(let f):
                out.append(f.responseKey, Entry(parentType: type, field: f, def: type.flatMap { schema.field(f.name.value, on: $0) }))
            case .inlineFragment(let i):
                // A condition names the type (nil if unknown); without one, the parent's.
                let t = if let condition = i.typeCondition { schema[condition.value] } else { type }
                collect(i.selectionSet, on: t, into: &out, visited: &visited)
            case .fragmentSpread(let s):
                guard !visited.contains(s.name.value), let f = fragments[s.name.value] else { continue }
                visited.insert(s.name.value)
                collect(f.selectionSet, on: schema[f.typeCondition.value], into: &out, visited: &visited)
            }
        }
    }

    /// `compare`, once per pair of signatures.
    private mutating func findConflict(_ a: Entry, _ b: Entry, parentsMutuallyExclusive: Bool) -> Conflict? {
        let (signatureA, signatureB) = (a.signature, b.signature)
        if signatureA == signatureB { return nil }  // the same field twice merges
        let key = (parentsMutuallyExclusive ? "1" : "0") + signatureA + "\u{0}" + signatureB
        if let known = comparedPairs[key] { return known }
        comparisons += 1
        if exhausted { return nil }
        // A pair met again while it is being compared is a fragment cycle (refused by its
        // own rule): it counts as no conflict, so that the comparison ends.
        comparedPairs[key] = .some(nil)
        let conflict = compare(a, b, parentsMutuallyExclusive: parentsMutuallyExclusive)
        comparedPairs[key] = conflict
        return conflict
    }

    private mutating func compare(_ a: Entry, _ b: Entry, parentsMutuallyExclusive: Bool) -> Conflict? {
        var exclusive = parentsMutuallyExclusive
        if let pa = a.parentType, let pb = b.parentType, pa.name != pb.name, pa.kind == .object, pb.kind == .object {
            exclusive = true
        }
        let name = a.field.responseKey
        if !exclusive {
            if a.field.name.value != b.field.name.value {
                return Conflict(responseName: name,
                                reason: .message("\"\(a.field.name.value)\" and \"\(b.field.name.value)\" are different fields"),
                                locations1: [a.field.location], locations2: [b.field.location])
            }
            if !sameArguments(a.field.arguments, b.field.arguments) {
                return Conflict(responseName: name, reason: .message("they have differing arguments"),
                                locations1: [a.field.location], locations2: [b.field.location])
            }
        }
        if let ta = a.def?.type, let tb = b.def?.type, typesConflict(ta, tb) {
            return Conflict(responseName: name,
                            reason: .message("they return conflicting types \"\(ta)\" and \"\(tb)\""),
                            locations1: [a.field.location], locations2: [b.field.location])
        }
        guard let setA = a.field.selectionSet, let setB = b.field.selectionSet else { return nil }
        var visitedA = Set<String>(), visitedB = Set<String>()
        let fieldsA = collect(setA, on: compositeType(of: a), visited: &visitedA)
        let fieldsB = collect(setB, on: compositeType(of: b), visited: &visitedB)
        var reasons: [(String, Reason)] = []
        var locations1: [SourceLocation] = [a.field.location]
        var locations2: [SourceLocation] = [b.field.location]
        var size = 0
        for (key, entriesA) in fieldsA {
            guard let entriesB = fieldsB[key] else { continue }
            for ea in Self.distinct(entriesA) {
                for eb in Self.distinct(entriesB) {
                    if let c = findConflict(ea, eb, parentsMutuallyExclusive: exclusive), size + c.size <= Self.maxReasons {
                        size += c.size
                        reasons.append((c.responseName, c.reason))
                        locations1 += c.locations1
                        locations2 += c.locations2
                    }
                }
            }
        }
        guard !reasons.isEmpty else { return nil }
        return Conflict(responseName: name, reason: .sub(reasons), locations1: locations1, locations2: locations2, size: size)
    }

    /// A field as GraphQL text, for signatures.
    static func print(_ field: Field) -> String {
        var out = field.responseKey + ":" + field.name.value
        if !field.arguments.isEmpty {
            out += "(" + field.arguments.map { "\($0.name.value):\(ValuePrinter.print($0.value))" }.joined(separator: ",") + ")"
        }
        for d in field.directives {
            out += "@" + d.name.value + "(" + d.arguments.map { "\($0.name.value):\(ValuePrinter.print($0.value))" }.joined(separator: ",") + ")"
        }
        if let set = field.selectionSet { out += print(set) }
        return out
    }

    static func print(_ set: SelectionSet) -> String {
        "{" + set.selections.map { selection -> String in
            switch selection {
            case .field(let f): return print(f)
            case .fragmentSpread(let s): return "..." + s.name.value
            case .inlineFragment(let i): return "...on " + (i.typeCondition?.value ?? "") + print(i.selectionSet)
            }
        }.joined(separator: " ") + "}"
    }

    private func sameArguments(_ a: [Argument], _ b: [Argument]) -> Bool {
        guard a.count == b.count else { return false }
        for arg in a {
            guard let other = b.first(where: { $0.name.value == arg.name.value }),
                  ValuePrinter.print(other.value) == ValuePrinter.print(arg.value) else { return false }
        }
        return true
    }

    private func typesConflict(_ a: TypeReference, _ b: TypeReference) -> Bool {
        switch (a, b) {
        case let (.list(x, _), .list(y, _)): return typesConflict(x, y)
        case (.list, _), (_, .list): return true
        case let (.nonNull(x, _), .nonNull(y, _)): return typesConflict(x, y)
        case (.nonNull, _), (_, .nonNull): return true
        case let (.named(x, _), .named(y, _)):
            guard let tx = schema[x], let ty = schema[y] else { return false }
            if tx.isLeaf || ty.isLeaf { return x != y }
            return false
        }
    }
}

/// Response names in order of first appearance, each with every field that uses it.
struct OrderedFields: Sequence {
    private(set) var keys: [String] = []
    private var entries: [String: [OverlapChecker.Entry]] = [:]

    mutating func append(_ key: String, _ entry: OverlapChecker.Entry) {
        if entries[key] == nil { keys.append(key) }
        entries[key, default: []].append(entry)
    }

    subscript(key: String) -> [OverlapChecker.Entry]? { entries[key] }
    var values: [[OverlapChecker.Entry]] { keys.map { entries[$0]! } }

    func makeIterator() -> AnyIterator<(String, [OverlapChecker.Entry])> {
        var i = 0
        return AnyIterator {
            guard i < keys.count else { return nil }
            defer { i += 1 }
            return (keys[i], entries[keys[i]]!)
        }
    }
}
