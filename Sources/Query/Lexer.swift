/// Turns a GraphQL document into tokens, one at a time, skipping ignored tokens
/// (white space, line terminators, commas, comments, the byte order mark).
/// Works on Unicode scalars so that columns count characters, as graphql-core does.
struct Lexer {
    private let body: [Unicode.Scalar]
    private var position = 0
    private var line = 1
    private var lineStart = 0
    private(set) var tokenCount = 0
    private let maxTokens: Int

    init(_ source: String, maxTokens: Int) {
        body = Array(source.unicodeScalars)
        self.maxTokens = maxTokens
    }

    private func location(at offset: Int) -> SourceLocation {
        SourceLocation(line: line, column: 1 + offset - lineStart)
    }

    private func error(_ message: String, at offset: Int) -> GraphQLSyntaxError {
        GraphQLSyntaxError(message: "Syntax Error: \(message)", location: location(at: offset))
    }

    private func char(_ offset: Int) -> Unicode.Scalar? {
        offset < body.count ? body[offset] : nil
    }

    /// `"x"` for printable ASCII, `U+1234` otherwise, `<EOF>` past the end.
    private func printCodePoint(at offset: Int) -> String {
        guard let c = char(offset) else { return "<EOF>" }
        if c.value >= 0x20 && c.value <= 0x7E { return c == "\"" ? "'\"'" : "\"\(c)\"" }
        let hex = String(c.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    mutating func next() throws(GraphQLSyntaxError) -> Token {
        let token = try readToken()
        if token.kind != .endOfFile {
            tokenCount += 1
            if tokenCount > maxTokens {
                throw GraphQLSyntaxError(
                    message: "Syntax Error: Document contains more than \(maxTokens) tokens. Parsing aborted.",
                    location: token.location)
            }
        }
        return token
    }

    private mutating func readToken() throws(GraphQLSyntaxError) -> Token {
        while let c = char(position) {
            switch c {
            case " ", "\t", ",", "\u{FEFF}":
                position += 1
                continue
            case "\n":
                position += 1
                newLine()
                continue
            case "\r":
                position += char(position + 1) == "\n" ? 2 : 1
                newLine()
                continue
            case "#":
                skipComment()
                continue
            case "\"":
                if char(position + 1) == "\"" && char(position + 2) == "\"" { return try readBlockString() }
                return try readString()
            default:
                break
            }
            if let kind = Self.punctuator(c) { return make(kind, from: position, to: position + 1) }
            if c == "." {
                if char(position + 1) == "." && char(position + 2) == "." {
                    return make(.spread, from: position, to: position + 3)
                }
            }
            if isDigit(c) || c == "-" { return try readNumber() }
            if isNameStart(c) { return readName() }
            if c == "'" {
                throw error("Unexpected single quote character ('), did you mean to use a double quote (\")?", at: position)
            }
            throw error("Unexpected character: \(printCodePoint(at: position)).", at: position)
        }
        return make(.endOfFile, from: body.count, to: body.count)
    }

    private mutating func newLine() {
        line += 1
        lineStart = position
    }

    private mutating func skipComment() {
        while let c = char(position), c != "\n", c != "\r" { position += 1 }
    }

    private mutating func make(_ kind: TokenKind, from start: Int, to end: Int, value: String = "") -> Token {
        let token = Token(kind: kind, value: value, location: location(at: start), start: start)
        position = end
        return token
    }

    private static func punctuator(_ c: Unicode.Scalar) -> TokenKind? {
        switch c {
        case "!": return .bang
        case "$": return .dollar
        case "&": return .amp
        case "(": return .parenL
        case ")": return .parenR
        case ":": return .colon
        case "=": return .equals
        case "@": return .at
        case "[": return .bracketL
        case "]": return .bracketR
        case "{": return .braceL
        case "|": return .pipe
        case "}": return .braceR
        default: return nil
        }
    }

    private func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 0x30 && c.value <= 0x39 }
    private func isNameStart(_ c: Unicode.Scalar) -> Bool {
        (c.value >= 0x41 && c.value <= 0x5A) || (c.value >= 0x61 && c.value <= 0x7A) || c == "_"
    }
    private func isNameContinue(_ c: Unicode.Scalar) -> Bool { isNameStart(c) || isDigit(c) }

    private mutating func readName() -> Token {
        let start = position
        var end = start + 1
        while let c = char(end), isNameContinue(c) { end += 1 }
        return make(.name, from: start, to: end, value: asciiText(start, end))
    }

    /// A name's text: names are ASCII, so each scalar is one byte (the general `text` costs
    /// several times more, and an alias flood is thousands of names).
    private func asciiText(_ start: Int, _ end: Int) -> String {
        String(unsafeUninitializedCapacity: end - start) { bytes in
            for i in start..<end { bytes[i - start] = UInt8(truncatingIfNeeded: body[i].value) }
            return end - start
        }
    }

    private func text(_ start: Int, _ end: Int) -> String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: body[start..<end])
        return String(s)
    }

    // IntValue / FloatValue: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    private mutating func readNumber() throws(GraphQLSyntaxError) -> Token {
        let start = position
        var p = position
        var isFloat = false
        if char(p) == "-" { p += 1 }
        if char(p) == "0" {
            p += 1
            if let c = char(p), isDigit(c) {
                throw error("Invalid number, unexpected digit after 0: \(printCodePoint(at: p)).", at: p)
            }
        } else {
            p = try readDigits(from: p)
        }
        if char(p) == "." {
            isFloat = true
            p = try readDigits(from: p + 1)
        }
        if char(p) == "e" || char(p) == "E" {
            isFloat = true
            p += 1
            if char(p) == "+" || char(p) == "-" { p += 1 }
            p = try readDigits(from: p)
        }
        if let c = char(p), c == "." || isNameStart(c) {
            throw error("Invalid number, expected digit but got: \(printCodePoint(at: p)).", at: p)
        }
        return make(isFloat ? .float : .int, from: start, to: p, value: text(start, p))
    }

    private func readDigits(from start: Int) throws(GraphQLSyntaxError) -> Int {
        guard let c = char(start), isDigit(c) else {
            throw error("Invalid number, expected digit but got: \(printCodePoint(at: start)).", at: start)
        }
        var p = start + 1
        while let c = char(p), isDigit(c) { p += 1 }
        return p
    }

    private func isSourceCharacter(_ c: Unicode.Scalar) -> Bool {
        c.value >= 0x20 || c == "\t"
    }

    private mutating func readString() throws(GraphQLSyntaxError) -> Token {
        let start = position
        var p = position + 1
        var value = String.UnicodeScalarView()
        while let c = char(p) {
            if c == "\"" { return make(.string, from: start, to: p + 1, value: String(value)) }
            if c == "\n" || c == "\r" { break }
            if c == "\\" {
                let (scalars, size) = try readEscape(at: p)
                value.append(contentsOf: scalars)
                p += size
                continue
            }
            guard isSourceCharacter(c) else {
                throw error("Invalid character within String: \(printCodePoint(at: p)).", at: p)
            }
            value.append(c)
            p += 1
        }
        throw error("Unterminated string.", at: p)
    }

    /// One escape sequence starting at the backslash: the scalars it stands for and its length.
    private func readEscape(at p: Int) throws(GraphQLSyntaxError) -> ([Unicode.Scalar], Int) {
        switch char(p + 1) {
        case "\"": return (["\""], 2)
        case "\\": return (["\\"], 2)
        case "/": return (["/"], 2)
        case "b": return (["\u{08}"], 2)
        case "f": return (["\u{0C}"], 2)
        case "n": return (["\n"], 2)
        case "r": return (["\r"], 2)
        case "t": return (["\t"], 2)
        case "u":
            if char(p + 2) == "{" { return try readVariableWidthEscape(at: p) }
            return try readFixedWidthEscape(at: p)
        default:
            throw error("Invalid character escape sequence: \"\(text(p, min(p + 2, body.count)))\".", at: p)
        }
    }

    // \u{X...}: 1 to 8 hex digits naming a Unicode scalar value.
    private func readVariableWidthEscape(at p: Int) throws(GraphQLSyntaxError) -> ([Unicode.Scalar], Int) {
        var point: UInt32 = 0
        var size = 3
        let maxSize = min(12, body.count - p)
        while size < maxSize {
            let c = body[p + size]
            size += 1
            if c == "}" {
                if size >= 5, let scalar = Unicode.Scalar(point) { return ([scalar], size) }
                break
            }
            guard let digit = hexValue(c), point <= 0x10FFFF else { break }
            point = point << 4 | digit
        }
        throw error("Invalid Unicode escape sequence: \"\(text(p, p + size))\".", at: p)
    }

    // \uXXXX, where a leading surrogate must be followed by a trailing one.
    private func readFixedWidthEscape(at p: Int) throws(GraphQLSyntaxError) -> ([Unicode.Scalar], Int) {
        let code = hex16(at: p + 2)
        if let code, let scalar = Unicode.Scalar(code) { return ([scalar], 6) }
        if let code, (0xD800...0xDBFF).contains(code), char(p + 6) == "\\", char(p + 7) == "u",
           let trailing = hex16(at: p + 8), (0xDC00...0xDFFF).contains(trailing),
           let scalar = Unicode.Scalar(0x10000 + ((code - 0xD800) << 10) + (trailing - 0xDC00)) {
            return ([scalar], 12)
        }
        throw error("Invalid Unicode escape sequence: \"\(text(p, min(p + 6, body.count)))\".", at: p)
    }

    private func hex16(at p: Int) -> UInt32? {
        guard p + 4 <= body.count else { return nil }
        var value: UInt32 = 0
        for i in 0..<4 {
            guard let d = hexValue(body[p + i]) else { return nil }
            value = value << 4 | d
        }
        return value
    }

    private func hexValue(_ c: Unicode.Scalar) -> UInt32? {
        switch c.value {
        case 0x30...0x39: return c.value - 0x30
        case 0x41...0x46: return c.value - 0x41 + 10
        case 0x61...0x66: return c.value - 0x61 + 10
        default: return nil
        }
    }

    private mutating func readBlockString() throws(GraphQLSyntaxError) -> Token {
        let start = position
        let startLine = line
        let startLineStart = lineStart
        var p = position + 3
        var lines: [String] = []
        var current = String.UnicodeScalarView()
        var lastLineStart = lineStart
        var extraLines = 0
        while let c = char(p) {
            if c == "\"" && char(p + 1) == "\"" && char(p + 2) == "\"" {
                lines.append(String(current))
                let token = Token(
                    kind: .blockString, value: BlockString.dedent(lines),
                    location: SourceLocation(line: startLine, column: 1 + start - startLineStart), start: start)
                position = p + 3
                line += extraLines
                lineStart = lastLineStart
                return token
            }
            if c == "\\" && char(p + 1) == "\"" && char(p + 2) == "\"" && char(p + 3) == "\"" {
                current.append(contentsOf: ["\"", "\"", "\""] as [Unicode.Scalar])
                p += 4
                continue
            }
            if c == "\n" || c == "\r" {
                lines.append(String(current))
                current = String.UnicodeScalarView()
                p += (c == "\r" && char(p + 1) == "\n") ? 2 : 1
                extraLines += 1
                lastLineStart = p
                continue
            }
            guard isSourceCharacter(c) else {
                throw error("Invalid character within String: \(printCodePoint(at: p)).", at: p)
            }
            current.append(c)
            p += 1
        }
        line += extraLines
        lineStart = lastLineStart
        throw GraphQLSyntaxError(message: "Syntax Error: Unterminated string.",
                                 location: SourceLocation(line: line, column: 1 + p - lineStart))
    }
}

/// The block string rules of the specification: common indentation removed,
/// blank leading and trailing lines dropped.
enum BlockString {
    static func dedent(_ lines: [String]) -> String {
        var commonIndent = Int.max
        var firstNonEmpty: Int?
        var lastNonEmpty = -1
        for (i, line) in lines.enumerated() {
            let indent = line.unicodeScalars.prefix(while: { $0 == " " || $0 == "\t" }).count
            if indent == line.unicodeScalars.count { continue }  // blank
            if firstNonEmpty == nil { firstNonEmpty = i }
            lastNonEmpty = i
            if i != 0 && indent < commonIndent { commonIndent = indent }
        }
        guard let first = firstNonEmpty else { return "" }
        var out: [String] = []
        for (i, line) in lines.enumerated() where i >= first && i <= lastNonEmpty {
            if i == 0 || commonIndent == Int.max {
                out.append(line)
            } else {
                out.append(String(String.UnicodeScalarView(line.unicodeScalars.dropFirst(commonIndent))))
            }
        }
        return out.joined(separator: "\n")
    }
}

