import Store

/// A statement's text and parameters as a dictionary key: a request's read cache
/// (`RequestContext`) and the groups of loads that may share a statement
/// (`SharedRead.Shape`). Its hash is computed once, and from the text and each
/// parameter's length and last bytes only: parameters may be kilobytes of ids, and two
/// different statements with equal hashes are still told apart by `==`.
struct StatementKey: Hashable {
    let sql: String
    let parameters: [ParameterValue?]
    private let hash: Int

    init(sql: String, parameters: [ParameterValue?]) {
        self.sql = sql
        self.parameters = parameters
        var hasher = Hasher()
        hasher.combine(sql)
        for parameter in parameters {
            switch parameter {
            case nil: hasher.combine(-1)
            case .text(let text)?: Self.combine(text.utf8, into: &hasher)
            case .uuids(let array)?: Self.combine(array.bytes, into: &hasher)
            }
        }
        hash = hasher.finalize()
    }

    init(_ statement: Statement) {
        self.init(sql: statement.sql, parameters: statement.parameters)
    }

    private static func combine<Bytes: BidirectionalCollection<UInt8>>(_ bytes: Bytes, into hasher: inout Hasher) {
        hasher.combine(bytes.count)
        for byte in bytes.suffix(32) { hasher.combine(byte) }
    }

    func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    static func == (a: StatementKey, b: StatementKey) -> Bool {
        a.hash == b.hash && a.sql == b.sql && a.parameters == b.parameters
    }
}
