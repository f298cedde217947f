import Foundation
import JSON
import XCTest

/// JSONWriter: strings escaped exactly as RFC 8259 requires, checked against an
/// independent writer (Python's json.dumps), and structure written compactly in order.
final class JSONWriterTests: XCTestCase {
    func testWrittenTextParsesBackToTheSameValue() throws {
        let tricky = ["", "\"", "\\", "/", "\u{0}\u{1}\u{1F}\u{7F}", "\u{2028}\u{2029}", "\r\n\t\u{8}\u{C}", "😀é中", "</script>"]
        let value = JSONValue.object(tricky.enumerated().map { ("k\($0.offset)\($0.element)", .array([.string($0.element), .number("-1.5e3")])) })
        var writer = JSONWriter()
        writer.value(value)
        XCTAssertEqual(try JSONParser.parse(writer.bytes), value)
        XCTAssertFalse(writer.bytes.contains { $0 < 0x20 }, "control characters are escaped")
        var one = JSONWriter()
        one.string("\u{1}\"\\\n")
        XCTAssertEqual(one.string, #""\u0001\"\\\n""#)
    }

    func testValuesAreWrittenCompactlyWithMembersInTheirOrder() {
        var writer = JSONWriter()
        writer.value(.object([("b", .number("1")), ("a", .array([.null, .bool(true), .bool(false), .number("-0.5e-3")])),
                              ("", .object([]))]))
        XCTAssertEqual(writer.string, #"{"b":1,"a":[null,true,false,-0.5e-3],"":{}}"#)
        var parts = JSONWriter()
        parts.raw("{")
        parts.key("n")
        parts.int(-42)
        parts.raw("}")
        XCTAssertEqual(parts.string, #"{"n":-42}"#)
        for value in [0, 9, 10, 99, 100, -1, 1_000_000_007, Int.max, Int.min] {
            var figure = JSONWriter()
            figure.int(value)
            XCTAssertEqual(figure.string, String(value))
        }
        XCTAssertEqual(JSONValue.string("a\"b").serialized, #""a\"b""#)
    }

    /// Every number next to a power of ten (one below, at, one above), zero and the
    /// largest, and numbers spread over every length, at every width from 1 to 19: the
    /// digits `String` gives, zero-padded on the left to the width.
    func testDigitsOfEveryLengthAtEveryWidth() {
        var values: [UInt] = [0, 1, 9, UInt.max, UInt.max - 1]
        var power: UInt = 10
        for _ in 1...19 {
            values += [power - 1, power, power + 1]
            if power <= UInt.max / 10 { power *= 10 } else { break }
        }
        var generator = SystemRandomNumberGenerator()
        values += (0..<2_000).map { _ in UInt.random(in: 0...UInt.max, using: &generator) >> UInt.random(in: 0...63) }
        var buffer = [UInt8](repeating: 0, count: 40)
        for value in values {
            for width in 1...19 {
                let count = buffer.withUnsafeMutableBufferPointer { DecimalDigits.write(value, width: width, at: $0.baseAddress!) }
                let plain = String(value)
                let expected = String(repeating: "0", count: max(0, width - plain.count)) + plain
                XCTAssertEqual(String(decoding: buffer[..<count], as: UTF8.self), expected, "\(value) at width \(width)")
            }
        }
    }

    /// Every control character, the two that must always be escaped, and characters that
    /// need no escape (DEL, `/`, U+2028, letters beyond ASCII): written byte for byte as
    /// Python's json.dumps writes them without `ensure_ascii` (short escapes where JSON has
    /// them, `\u00XX` in lowercase otherwise, everything else as it is in UTF-8).
    func testStringsAreEscapedAsPythonEscapesThem() throws {
        let strings = (0..<0x20).map { String(UnicodeScalar(UInt8($0))) }
            + ["\"", "\\", "/", "\u{7F}", "\u{2028}", "é中😀", "mixed \u{1}text\"with\\all\n"]
        let script = #"""
import base64, json, sys
for line in sys.stdin.read().split("\n")[:-1]:
    print(base64.b64encode(json.dumps(base64.b64decode(line).decode("utf-8"), ensure_ascii=False).encode("utf-8")).decode())
"""#
        let python = try JSONParserTests.python(script, strings).map { String(decoding: Data(base64Encoded: $0) ?? Data(), as: UTF8.self) }
        XCTAssertEqual(python.count, strings.count)
        for (text, theirs) in zip(strings, python) {
            var writer = JSONWriter()
            writer.string(text)
            XCTAssertEqual(writer.string, theirs, "\(text.debugDescription)")
        }
    }

    /// Every character that needs an escape is found at each position of strings of every
    /// length up to 20 (words of eight bytes, and the bytes after the last), among ASCII and
    /// multi-byte text, and the text after it still gets its room (the writer starts small
    /// and grows within the string): checked against a plain byte-by-byte escaper written here.
    func testEscapesAreFoundAtEveryPositionOfAWord() {
        func plain(_ text: String) -> [UInt8] {
            var out = Array("\"".utf8)
            for byte in text.utf8 {
                switch byte {
                case 0x22: out += Array("\\\"".utf8)
                case 0x5C: out += Array("\\\\".utf8)
                case 0x0A: out += Array("\\n".utf8)
                case 0x0D: out += Array("\\r".utf8)
                case 0x09: out += Array("\\t".utf8)
                case 0x08: out += Array("\\b".utf8)
                case 0x0C: out += Array("\\f".utf8)
                case 0..<0x20: out += Array(String(format: "\\u%04x", byte).utf8)
                default: out.append(byte)
                }
            }
            return out + Array("\"".utf8)
        }
        for special in ["\"", "\\", "\u{0}", "\u{1F}", "\n", "\u{7F}", " ", "!", "#", "[", "]", "é", "\u{80}", "\u{FF}"] {
            for (length, position) in (1...20).flatMap({ length in (0..<length).map { (length, $0) } }) {
                for filler in ["a", "中", "~"] {
                    var characters = Array(repeating: filler, count: length)
                    characters[position] = special
                    let text = characters.joined()
                    var writer = JSONWriter(capacity: 16)  // grown within the string
                    writer.string(text)
                    XCTAssertEqual(writer.bytes, plain(text), "\(special.debugDescription) at \(position)")
                }
            }
        }
    }

    /// `copy` of every length up to well past the ones it copies a word at a time: the
    /// bytes arrive whole, and nothing before or after them is touched.
    func testCopiesOfEveryLengthTouchOnlyTheirBytes() {
        let source = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for count in 0...source.count {
            var destination = [UInt8](repeating: 0xEE, count: count + 16)
            source.withUnsafeBufferPointer { all in
                destination.withUnsafeMutableBufferPointer { out in
                    JSONWriter.copy(UnsafeBufferPointer(rebasing: all[..<count]), to: out.baseAddress! + 8)
                }
            }
            XCTAssertEqual(Array(destination[8..<(8 + count)]), Array(source[..<count]), "\(count) bytes")
            let around: [UInt8] = Array(destination[..<8]) + Array(destination[(8 + count)...])
            XCTAssertEqual(around, [UInt8](repeating: 0xEE, count: 16), "\(count) bytes")
        }
    }

    /// The writer owns one buffer that it grows by doubling: what was written before a
    /// growth survives it, `write(atMost:)` adds only what its body says it wrote, and
    /// `truncate` takes back to an earlier length. Checked against an array built alongside.
    func testGrowingFormattingInPlaceAndTruncating() {
        var writer = JSONWriter(capacity: 16)
        var expected: [UInt8] = []
        for n in 0..<2_000 {
            let text = Array("\(n * 7919),".utf8)
            if n % 3 == 0 {
                writer.write(atMost: 64) { p in
                    for (i, byte) in text.enumerated() { p[i] = byte }
                    return text.count
                }
            } else {
                writer.append(text)
            }
            expected += text
            if n % 97 == 0 {
                let cut = expected.count - text.count
                writer.truncate(to: cut)
                expected.removeSubrange(cut...)
            }
        }
        XCTAssertGreaterThan(expected.count, 10_000, "the buffer grew many times over")
        XCTAssertEqual(writer.count, expected.count)
        XCTAssertEqual(writer.bytes, expected)
        writer.withBytes { XCTAssertEqual(Array($0), expected) }
    }
}
