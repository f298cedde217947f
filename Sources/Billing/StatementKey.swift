import Store

/// A statement's text and parameters as a dictionary key: a request's read cache
/// (`RequestContext`) and the groups of loads that may share a statement
/// (`SharedRead.Shape`). Its hash is computed once, from the text's (`Statement.sqlHash`)
/// and each parameter's length and last bytes only: parameters may be kilobytes of ids,
/// and two different statements with equal hashes are still told apart by `==`.
struct StatementKey: Hashable {
    let text: SQLKey
    let parameters: [ParameterValue?]
    private let hash: Int

    init(_ statement: Statement, droppingFirst dropped: Int = 0) {
        text = SQLKey(statement)
        parameters = Array(statement.parameters.dropFirst(dropped))
        var hasher = Hasher()
        hasher.combine(text.sqlHash)
        for parameter in parameters {
            switch parameter {
            case nil: hasher.combine(-1)
            case .text(var value)?: value.withUTF8 { Self.combine(UnsafeRawBufferPointer($0), into: &hasher) }
            case .uuids(let array)?: array.words.withUnsafeBytes { Self.combine($0, into: &hasher) }
            }
        }
        hash = hasher.finalize()
    }

    /// A parameter's length and its last 32 bytes, in one piece.
    private static func combine(_ bytes: UnsafeRawBufferPointer, into hasher: inout Hasher) {
        hasher.combine(bytes.count)
        hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: bytes.suffix(32)))
    }

    func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    static func == (a: StatementKey, b: StatementKey) -> Bool {
        a.hash == b.hash && a.text == b.text && a.parameters == b.parameters
    }
}
