public enum TokenKind: Equatable, Sendable {
    case startOfFile, endOfFile
    case bang, dollar, amp, parenL, parenR, spread, colon, equals, at, bracketL, bracketR, braceL, pipe, braceR
    case name, int, float, string, blockString

    /// How graphql-js names the kind in "Expected X, found Y".
    var description: String {
        switch self {
        case .startOfFile: return "<SOF>"
        case .endOfFile: return "<EOF>"
        case .bang: return "!"
        case .dollar: return "$"
        case .amp: return "&"
        case .parenL: return "("
        case .parenR: return ")"
        case .spread: return "..."
        case .colon: return ":"
        case .equals: return "="
        case .at: return "@"
        case .bracketL: return "["
        case .bracketR: return "]"
        case .braceL: return "{"
        case .pipe: return "|"
        case .braceR: return "}"
        case .name: return "Name"
        case .int: return "Int"
        case .float: return "Float"
        case .string: return "String"
        case .blockString: return "BlockString"
        }
    }

    var isPunctuator: Bool {
        switch self {
        case .name, .int, .float, .string, .blockString, .startOfFile, .endOfFile: return false
        default: return true
        }
    }
}

public struct Token: Sendable {
    public var kind: TokenKind
    /// The token's value: a name, the digits of a number, a string's cooked text.
    public var value: String
    public var location: SourceLocation
    /// Byte offset where the token starts, for error wording.
    var start: Int

    /// How the token is quoted in an error message.
    var errorDescription: String {
        switch kind {
        case .name, .int, .float, .string, .blockString: return "\(kind.description) \"\(value)\""
        case .endOfFile, .startOfFile: return kind.description
        default: return "\"\(kind.description)\""
        }
    }
}
