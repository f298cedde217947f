import Digest
import Foundation
import XCTest

/// Checked against FIPS 180-4's examples and against the system's `sha256sum`, an
/// independent implementation, at every length around the block and padding edges.
final class SHA256Tests: XCTestCase {
    func testTheStandardsExamples() {
        XCTAssertEqual(SHA256.hex("".utf8), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(Array(repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testBytesGivenInPiecesOfAnySizeHashAsOne() throws {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ 3) }
        let whole = try sha256sum(bytes)
        for pieces in [[1000], [1, 999], [63, 1, 64, 872], [65, 65, 870], [7, 120, 3, 870], [0, 500, 0, 500]] {
            var hasher = SHA256()
            var start = 0
            for size in pieces {
                hasher.update(bytes[start..<start + size])
                start += size
            }
            XCTAssertEqual(hasher.finalize().map { String(format: "%02x", $0) }.joined(), whole, "pieces \(pieces)")
        }
    }

    func testEveryLengthAroundTheBlockEdgesAgreesWithSha256sum() throws {
        for length in [0, 1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            XCTAssertEqual(SHA256.hex(bytes), try sha256sum(bytes), "length \(length)")
        }
    }

    private func sha256sum(_ bytes: [UInt8]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(bytes))
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return String(text.prefix(64))
    }
}
