import Foundation
import JSON
import XCTest

/// The strict JSON parser (Sources/JSON) against RFC 8259 and against an independent
/// implementation, Python's `json` module: every document of a corpus is judged by both, and
/// they must agree, except where this parser is deliberately stricter than Python (each of
/// those is a test of its own below: duplicate keys, NaN and Infinity, lone surrogates,
/// nesting past 512 levels).
final class JSONParserTests: XCTestCase {
    private func parse(_ text: String) -> JSONValue? { try? JSONParser.parse(text) }

    private func refused(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> JSONSyntaxError? {
        do {
            let value = try JSONParser.parse(bytes)
            XCTFail("accepted \(String(decoding: bytes, as: UTF8.self).debugDescription) as \(value)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    private func refused(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> JSONSyntaxError? {
        refused(Array(text.utf8), file: file, line: line)
    }

    // MARK: - Values and whitespace

    func testScalarsArraysAndObjectsAtTheTopLevel() throws {
        XCTAssertEqual(parse("null"), .null)
        XCTAssertEqual(parse("true"), .bool(true))
        XCTAssertEqual(parse("false"), .bool(false))
        XCTAssertEqual(parse("\"x\""), .string("x"))
        XCTAssertEqual(parse("7"), .number("7"))
        XCTAssertEqual(parse("[]"), .array([]))
        XCTAssertEqual(parse("{}"), .object([]))
        XCTAssertEqual(parse("[ ]"), .array([]))
        XCTAssertEqual(parse("{ \n}"), .object([]))
        XCTAssertEqual(parse(#"{"b":1,"a":[true,null,{"c":"d"}]}"#),
                       .object([("b", .number("1")), ("a", .array([.bool(true), .null, .object([("c", .string("d"))])]))]))
    }

    func testMembersKeepTheirOrder() throws {
        guard case .object(let members)? = parse(#"{"z":1,"a":2,"m":3}"#) else { return XCTFail() }
        XCTAssertEqual(members.map(\.0), ["z", "a", "m"])
    }

    func testOnlyTheFourWhitespaceCharactersOfTheRFC() throws {
        XCTAssertEqual(parse(" \t\r\n[ \t\r\n1 \t\r\n, \t\r\n2 \t\r\n] \t\r\n"), .array([.number("1"), .number("2")]))
        for other in ["\u{0B}", "\u{0C}", "\u{A0}", "\u{2028}", "\u{FEFF}", "\u{3000}"] {
            _ = refused(other + "1")
            _ = refused("[1" + other + "]")
        }
        _ = refused("")
        _ = refused("  \n ")
    }

    func testTrailingGarbageIsRefusedWhereItStarts() throws {
        for (text, offset) in [("1 2", 2), ("{}x", 2), ("[]]", 2), (#""a"b"#, 3), ("nullx", 4), ("truefalse", 4),
                               ("1,", 1), ("{} {}", 3), ("0 // comment", 2)] {
            XCTAssertEqual(refused(text)?.offset, offset, text)
            XCTAssertEqual(refused(text)?.message, "unexpected text after the value", text)
        }
    }

    func testWordsAreExact() throws {
        for text in ["nul", "tru", "fals", "NULL", "True", "nulll", "t rue", "undefined", "'x'", "x"] {
            _ = refused(text)
        }
    }

    // MARK: - Numbers

    func testNumbersKeepTheirTextExactly() throws {
        for text in ["0", "-0", "1", "-1", "10", "1.5", "1.50", "-0.0", "1e10", "1E10", "1e+2", "1E-2", "-1.0e-5", "0e0",
                     "123456789012345678901234567890", "0.000000000000000000000000001", "1e400", "-1e-400"] {
            XCTAssertEqual(parse(text), .number(text), text)
            XCTAssertEqual(parse("[\(text)]"), .array([.number(text)]), text)
        }
    }

    func testMalformedNumbersAreRefused() throws {
        for text in ["01", "-01", "00", "-", "+1", ".5", "1.", "1.e3", "1e", "1e+", "1E-", "0x10", "1_000", "--1", "- 1",
                     "1.2.3", "1e2e3", "NaN", "Infinity", "-Infinity", "infinity", "nan", "[1.]", "[-]", "{\"a\":.1}"] {
            _ = refused(text)
        }
    }

    func testIntegersAreExactToSixtyFourBits() throws {
        XCTAssertEqual(parse("9223372036854775807")?.int64Value, Int64.max)
        XCTAssertEqual(parse("-9223372036854775808")?.int64Value, Int64.min)
        XCTAssertNil(parse("9223372036854775808")?.int64Value)
        XCTAssertNil(parse("-9223372036854775809")?.int64Value)
        XCTAssertEqual(parse("9007199254740993")?.int64Value, 9_007_199_254_740_993)  // not a Double: 2^53 + 1
        XCTAssertNil(parse("1.0")?.int64Value)
        XCTAssertNil(parse("1e3")?.int64Value)
        XCTAssertEqual(parse("-0")?.int64Value, 0)
    }

    // MARK: - Strings

    func testEveryEscapeOfTheRFC() throws {
        XCTAssertEqual(parse(#""\" \\ \/ \b \f \n \r \t""#), .string("\" \\ / \u{08} \u{0C} \n \r \t"))
        XCTAssertEqual(parse(#""\u0041\u00e9\u00E9\u4e2D\u0000\u001f""#), .string("A\u{E9}\u{E9}\u{4E2D}\u{0}\u{1F}"))
        XCTAssertEqual(parse(#""\uFFFF""#), .string("\u{FFFF}"))
    }

    func testUnknownAndShortEscapesAreRefused() throws {
        for text in [#""\a""#, #""\x41""#, #""\U0041""#, #""\u12""#, #""\u12G4""#, #""\u""#, #""\'""#, #""\0""#,
                     #""\ u0041""#, "\"\\", "\"\\u004"] {
            _ = refused(text)
        }
    }

    func testSurrogatePairsMakeOneCharacter() throws {
        XCTAssertEqual(parse(#""\ud83d\ude00""#), .string("\u{1F600}"))
        XCTAssertEqual(parse(#""\uD83D\uDE00""#), .string("\u{1F600}"))
        XCTAssertEqual(parse(#""\ud800\udc00\udbff\udfff""#), .string("\u{10000}\u{10FFFF}"))
        XCTAssertEqual(parse(#"{"\ud834\udd1e":1}"#), .object([("\u{1D11E}", .number("1"))]))
    }

    /// Python's json accepts these and makes strings no UTF-8 can hold (nor PostgreSQL);
    /// RFC 8259 section 8.2 leaves them unpredictable. They are refused.
    func testLoneSurrogatesAreRefused() throws {
        for text in [#""\ud83d""#, #""\ude00""#, #""\ud83dx""#, #""\ud83d\ud83d""#, #""\ud83d\u0041""#, #""\ude00\ud83d""#,
                     #""\ud83d\n""#, #""a\udfffb""#, #"{"\ud800":1}"#] {
            XCTAssertEqual(refused(text)?.message, "unpaired surrogate", text)
        }
    }

    func testControlCharactersMustBeEscaped() throws {
        for byte in UInt8(0)..<0x20 {
            _ = refused([0x22, byte, 0x22])
        }
        XCTAssertEqual(parse("\"\u{7F}\""), .string("\u{7F}"))  // DEL is not a control character for JSON
    }

    func testUTF8IsKeptAndInvalidUTF8IsRefused() throws {
        XCTAssertEqual(parse("\"Müller 中文 😀\""), .string("Müller 中文 😀"))
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0x80, 0x22], [0x22, 0xC0, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22],
                               [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0xC3, 0x22]] {
            XCTAssertEqual(refused(bytes)?.message, "invalid UTF-8", "\(bytes)")
        }
        _ = refused([0xEF, 0xBB, 0xBF, 0x31])  // a byte order mark (RFC 8259 section 8.1: must not be added)
    }

    // MARK: - Objects and structure

    func testDuplicateKeysAreRefusedAtTheSecondKey() throws {
        let error = refused(#"{"a":1,"b":2,"a":3}"#)
        XCTAssertEqual(error?.message, #"duplicate key "a""#)
        XCTAssertEqual(error?.offset, 13)
        XCTAssertEqual(refused(#"{"a":1,"\u0061":2}"#)?.message, #"duplicate key "a""#)  // the same key once unescaped
        _ = refused(#"{"x":{"k":1},"y":[{"k":1,"k":2}]}"#)  // at any depth
        XCTAssertNotNil(parse(#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#))  // the same key in different objects
        XCTAssertNotNil(parse(#"{"a":1,"A":2,"a ":3}"#))
    }

    /// Small objects compare each key with the earlier ones, large ones hash them: a key
    /// repeated on either side of the switch, or across it, is refused all the same.
    func testDuplicateKeysAreRefusedInLargeObjects() throws {
        let keys = (0..<40).map { "\"k\($0)\":\($0)" }
        XCTAssertNotNil(parse("{" + keys.joined(separator: ",") + "}"))
        for (first, second) in [(3, 10), (3, 30), (20, 35)] {
            var repeated = keys
            repeated[second] = "\"k\(first)\":0"
            XCTAssertEqual(refused("{" + repeated.joined(separator: ",") + "}")?.message, "duplicate key \"k\(first)\"",
                           "k\(first) again at member \(second)")
        }
        XCTAssertEqual(refused("{" + keys.joined(separator: ",") + ",\"e\\u0301\":1,\"e\u{301}\":2}")?.message,
                       "duplicate key \"e\u{301}\"")
        XCTAssertNotNil(parse("{" + keys.joined(separator: ",") + ",\"\u{E9}\":1,\"e\u{301}\":2}"))
    }

    /// Keys are compared as RFC 8259 section 8.3 compares strings, code unit by code unit:
    /// "é" written as one character and as "e" and a combining accent are two keys (as they
    /// are for Python and for PostgreSQL's jsonb), not a duplicate.
    func testKeysThatOnlyLookAlikeAreDistinct() throws {
        guard case .object(let members)? = parse("{\"\u{E9}\":1,\"e\u{301}\":2}") else {
            return XCTFail("two distinct keys refused")
        }
        XCTAssertEqual(members.count, 2)
        XCTAssertNotNil(parse("{\"\u{212B}\":1,\"\u{C5}\":2}"))  // ANGSTROM SIGN and LATIN CAPITAL A WITH RING
    }

    func testStructuralMistakesAreRefusedWhereTheyAre() throws {
        for (text, offset) in [("[1,]", 3), (#"{"a":1,}"#, 7), ("[1 2]", 3), (#"{"a" 1}"#, 5), (#"{a:1}"#, 1),
                               (#"{'a':1}"#, 1), ("[", 1), (#"{"a":"#, 5), (#"{"a":1"#, 6), ("[1,,2]", 3), ("{,}", 1),
                               (#"{"a":1 "b":2}"#, 7), ("]", 0), ("}", 0), (":", 0), (#""abc"#, 4)] {
            XCTAssertEqual(refused(text)?.offset, offset, text)
        }
        for text in ["/* c */ 1", "[1] // c", "[1,2", "{\"a\":1}}", "{\"a\"::1}", "[1:2]", "{\"a\",1}"] {
            _ = refused(text)
        }
    }

    // MARK: - Depth

    func testNestingUpTo512LevelsAndNoFurther() throws {
        let deepest = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        XCTAssertNotNil(parse(deepest))
        let mixed = String(repeating: "{\"a\":[", count: 256) + String(repeating: "]}", count: 256)
        XCTAssertNotNil(parse(mixed))
        let tooDeep = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
        XCTAssertEqual(refused(tooDeep)?.message, "nesting too deep")
        XCTAssertEqual(refused(tooDeep)?.offset, 512)  // the 513th bracket
        // Far deeper input is refused as quickly, without exhausting the stack.
        let hostile = String(repeating: "{\"a\":[", count: 200_000)
        XCTAssertEqual(refused(hostile)?.message, "nesting too deep")
        // Depth is counted by what is open, not by how many containers were seen.
        let wide = "[" + Array(repeating: "[[1]]", count: 10_000).joined(separator: ",") + "]"
        XCTAssertNotNil(parse(wide))
    }

    // MARK: - Against Python's json module

    /// Documents on which RFC 8259, Python's json and this parser must all agree.
    static let corpus: [String] = [
        "null", "true", "false", "0", "-0", "12", "-3.25", "1e5", "1E-5", "2.5e+3", "123456789012345678901234567890",
        "\"\"", "\"abc\"", #""a\"b\\c\/d\b\f\n\r\t""#, #""\u00e9\u4E2D\ud83d\ude00""#, "\"Müller\"", "\"\u{7F}\"",
        "[]", "{}", "[1,2,3]", " [ 1 , [ ] , { } ] ", #"{"a":{"b":[null,true,{"c":"d"}]}}"#, #"{"":""}"#,
        #"{"é":1,"e\u0301":2}"#, "{\"\u{E9}\":1,\"e\u{301}\":2}",
        String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
        // refused by both
        "", " ", "01", "1.", ".1", "+1", "-", "1e", "0x1", "[1,]", #"{"a":1,}"#, "[1 2]", "{a:1}", "{'a':1}", "'a'",
        "nul", "True", "[", "]", "{", #"{"a"}"#, #"{"a":}"#, "1 2", "[] x", #""\x41""#, #""\u12""#, "\"a\u{1}b\"",
        "\"a\tb\"", "\"a\nb\"", "/*x*/1", "1 //x", "\u{0C}1", "\u{A0}1", "\u{FEFF}1", "[1,,2]", "{,}", "\"abc",
    ]

    func testEveryDocumentOfTheCorpusIsJudgedAsPythonJudgesIt() throws {
        let python = try pythonJudgements(Self.corpus)
        XCTAssertEqual(python.count, Self.corpus.count)
        for (document, theirs) in zip(Self.corpus, python) {
            let ours: String
            do {
                ours = Self.canonical(try JSONParser.parse(document))
            } catch {
                ours = "error"
            }
            XCTAssertEqual(ours, theirs, document.debugDescription)
        }
    }

    /// Where this parser is stricter than Python, on purpose: Python accepts each of these.
    func testPythonAcceptsWhatThisParserRefusesOnPurpose() throws {
        let stricter = [#"{"a":1,"a":2}"#, #"{"a":{"b":1,"b":1}}"#, "NaN", "Infinity", "-Infinity", "[NaN]", #""\ud83d""#,
                        #""\ude00x""#]
        let judgements = try pythonJudgements(stricter)
        XCTAssertEqual(judgements.count, stricter.count)
        for (document, theirs) in zip(stricter, judgements) {
            XCTAssertNotEqual(theirs, "error", "Python refuses \(document.prefix(20)) too: move it to the corpus")
            _ = refused(document)
        }
    }

    /// A form both sides can write: numbers as their text, strings as the hex of their UTF-8.
    static func canonical(_ value: JSONValue) -> String {
        switch value {
        case .null: return "n"
        case .bool(let b): return b ? "t" : "f"
        case .number(let text): return "#" + text
        case .string(let s): return "s" + s.utf8.map { String(format: "%02x", $0) }.joined()
        case .array(let items): return "[" + items.map(canonical).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.map { canonical(.string($0.0)) + ":" + canonical($0.1) }.joined(separator: ",") + "}"
        }
    }

    /// Python's json.loads of each document (sent base64-encoded, one a line): its canonical
    /// form, or "error".
    private func pythonJudgements(_ documents: [String]) throws -> [String] {
        let script = #"""
import base64, json, sys
class Members(list): pass
def canon(v):
    if v is None: return "n"
    if v is True: return "t"
    if v is False: return "f"
    if isinstance(v, tuple): return "#" + v[1]
    if isinstance(v, str): return "s" + v.encode("utf-8", "surrogatepass").hex()
    if isinstance(v, Members): return "{" + ",".join(canon(k) + ":" + canon(x) for k, x in v) + "}"
    return "[" + ",".join(canon(x) for x in v) + "]"
number = lambda text: ("#", text)
for line in sys.stdin.read().split("\n")[:-1]:
    try:
        text = base64.b64decode(line).decode("utf-8")
        value = json.loads(text, object_pairs_hook=Members, parse_int=number, parse_float=number, parse_constant=number)
        print(canon(value))
    except (ValueError, RecursionError):
        print("error")
"""#
        return try Self.python(script, documents)
    }

    /// Runs `script` with python3, each of `texts` base64-encoded on a line of its standard
    /// input; its lines of output.
    static func python(_ script: String, _ texts: [String]) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let lines = texts.map { Data($0.utf8).base64EncodedString() + "\n" }.joined()
        input.fileHandleForWriting.write(Data(lines.utf8))
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "python3 failed")
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }
}
