/// A place in a GraphQL document: 1-based line and column (columns count Unicode scalars).
public struct SourceLocation: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
    public var description: String { "\(line):\(column)" }
}

/// A syntax error, worded as graphql-js words it (`Syntax Error: Expected Name, found "}".`).
public struct GraphQLSyntaxError: Error, Equatable, Sendable {
    public let message: String
    public let location: SourceLocation
}

/// Limits that keep abusive documents cheap to refuse.
public struct ParserLimits: Sendable {
    public var maxTokens: Int
    public var maxDepth: Int
    public init(maxTokens: Int = 20_000, maxDepth: Int = 64) {
        self.maxTokens = maxTokens
        self.maxDepth = maxDepth
    }
}
