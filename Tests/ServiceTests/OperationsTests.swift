import JSON
import Metrics
@testable import Service
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The pieces of the operator's side that need no server: the access-log line, request
/// ids, error codes read from an answer, and the readiness verdict on migrations. The
/// integration suite (test_operations.py) checks them end to end over HTTP.
final class OperationsTests: XCTestCase {
    func testAnAccessLogLineHasEveryFieldInOrderAndEscapesWhatTheClientSent() throws {
        let entry = AccessLog.Entry(requestID: "id \"1\"", method: "POST", path: "/graphql\n", status: 200,
                                    durationNanoseconds: 12_345_678, operationType: "query", operationName: "Dashboard",
                                    keyID: "k", organisationID: "o", statements: 4, bytes: 1234, errorCodes: ["A", "B"])
        let line = AccessLog.line(entry, time: "2026-11-30T14:05:09.123Z")
        XCTAssertFalse(line.contains(UInt8(ascii: "\n")))
        let parsed = try JSONParser.parse(line)
        guard case .object(let members) = parsed else { return XCTFail("not an object") }
        XCTAssertEqual(members.map(\.0), ["time", "request_id", "method", "path", "status", "duration_ms", "operation_type",
                                          "operation_name", "key_id", "organisation_id", "statements", "bytes", "error_codes"])
        XCTAssertEqual(parsed["request_id"]?.stringValue, "id \"1\"")
        XCTAssertEqual(parsed["path"]?.stringValue, "/graphql\n")
        XCTAssertEqual(parsed["duration_ms"], .number("12.346"))
        XCTAssertEqual(parsed["error_codes"], .array([.string("A"), .string("B")]))
        let unknown = AccessLog.Entry(requestID: "r", method: "", path: "", status: 413, durationNanoseconds: 400,
                                      operationType: "none", operationName: nil, keyID: nil, organisationID: nil,
                                      statements: 0, bytes: 10, errorCodes: [])
        let second = try JSONParser.parse(AccessLog.line(unknown, time: "t"))
        XCTAssertEqual(second["duration_ms"], .number("0.000"))
        XCTAssertEqual(second["key_id"], .null)
        XCTAssertEqual(second["operation_name"], .null)
    }

    /// A reader of standard output that stops reading costs lines, never a wait: with the
    /// pipe full and nobody reading it, 45,000 lines (19 MB, against 8 MiB pending besides
    /// the batch being written) are all handed over at once; those beyond the bound are
    /// counted as dropped; once the reader reads, every other line arrives whole and in order.
    func testAStalledReaderDropsLinesButNeverHoldsTheWriter() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]) }
        // The pipe is filled first, so that the writer's first batch waits too, however
        // soon its thread runs.
        let flags = fcntl(fds[1], F_GETFL)
        _ = fcntl(fds[1], F_SETFL, flags | O_NONBLOCK)
        let filler = Array(repeating: UInt8(ascii: "#"), count: 99) + [UInt8(ascii: "\n")]
        while filler.withUnsafeBytes({ Glibc.write(fds[1], $0.baseAddress!, $0.count) }) == filler.count {}
        _ = fcntl(fds[1], F_SETFL, flags)
        let dropped = Counter()
        let log = try AccessLog(fd: fds[1], dropped: dropped)
        let count = 45_000
        func entry(_ n: Int) -> AccessLog.Entry {
            AccessLog.Entry(requestID: String(n), method: "POST", path: "/graphql?" + String(repeating: "p", count: 200),
                            status: 200, durationNanoseconds: 1_000, operationType: "query", operationName: nil, keyID: nil,
                            organisationID: nil, statements: 1, bytes: 1, errorCodes: [])
        }
        for n in 0..<count { log.write(entry(n), time: "t") }
        let lost = Int(dropped.value)
        let lineBytes = AccessLog.line(entry(count), time: "t").count + 1
        XCTAssertGreaterThan(lost, 0)
        XCTAssertGreaterThanOrEqual(count - lost, LineWriter.maxPendingBytes / lineBytes - 1, "at least the bound is kept")
        var ids: [Int] = []
        var rest: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while ids.count < count - lost {
            let n = read(fds[0], &buffer, buffer.count)
            XCTAssertGreaterThan(n, 0)
            guard n > 0 else { break }
            rest += buffer[0..<n]
            while let end = rest.firstIndex(of: UInt8(ascii: "\n")) {
                if rest.first != UInt8(ascii: "#") {
                    let line = try JSONParser.parse(Array(rest[..<end]))
                    ids.append(try XCTUnwrap(line["request_id"]?.stringValue.flatMap { Int($0) }))
                }
                rest.removeSubrange(...end)
            }
        }
        XCTAssertEqual(ids, Array(0..<(count - lost)), "the first lines, whole and in order; the last ones dropped")
    }

    func testTimesAreRFC3339InUTCWithMilliseconds() {
        XCTAssertEqual(AccessLog.format(seconds: 0, milliseconds: 7), "1970-01-01T00:00:00.007Z")
        XCTAssertEqual(AccessLog.format(seconds: 1_796_047_509, milliseconds: 123), "2026-11-30T14:05:09.123Z")
    }

    func testTheRequestIdHeaderIsFoundWhateverItsCase() {
        XCTAssertEqual(RequestIDs.header(in: [("Accept", "*/*"), ("x-REQUEST-id", "a")]), "a")
        XCTAssertEqual(RequestIDs.header(in: [("X-Request-Id", "b"), ("X-Request-Id", "c")]), "b")
        XCTAssertNil(RequestIDs.header(in: [("X-Request-Ids", "d"), ("X-Request_Id", "e"), ("Request-Id", "f")]))
    }

    func testTheLogClockWritesRFC3339WithMilliseconds() {
        var clock = LogClock()
        for _ in 0..<3 {
            let time = clock.now()
            XCTAssertNotNil(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/), time)
        }
    }

    func testRequestIdsAreTakenWhenPrintableAndShortElseMade() {
        XCTAssertEqual(RequestIDs.valid("abc-123"), "abc-123")
        XCTAssertEqual(RequestIDs.valid(String(repeating: "x", count: 128)), String(repeating: "x", count: 128))
        XCTAssertNil(RequestIDs.valid(String(repeating: "x", count: 129)))
        XCTAssertNil(RequestIDs.valid(""))
        XCTAssertNil(RequestIDs.valid(nil))
        XCTAssertNil(RequestIDs.valid("caf\u{e9}"))
        XCTAssertNil(RequestIDs.valid("a\tb"))
        var ids = RequestIDs()
        let made = (0..<1000).map { _ in ids.make() }
        XCTAssertEqual(Set(made).count, 1000)
        XCTAssertTrue(made.allSatisfy { $0.utf8.count == 32 && $0.allSatisfy(\.isHexDigit) })
    }

    func testErrorCodesAreReadFromTopLevelErrorsOnly() {
        let errors = #"{"data":{"errors":[{"extensions":{"code":"NOPE"}}]},"errors":[{"message":"m","extensions":{"code":"FORBIDDEN"}},{"message":"n","extensions":{"code":"FORBIDDEN"}},{"message":"o","extensions":{"code":"NOT_FOUND"}}]}"#
        XCTAssertEqual(FrontHandler.errorCodes(Array(errors.utf8)), ["FORBIDDEN", "NOT_FOUND"])
        // An alias named errors in data, without top-level errors: nothing.
        XCTAssertEqual(FrontHandler.errorCodes(Array(#"{"data":{"errors":[{"extensions":{"code":"X"}}]}}"#.utf8)), [])
        XCTAssertEqual(FrontHandler.errorCodes(Array(#"{"errors":[{"message":"m","extensions":{"code":"UNAUTHENTICATED"}}]}"#.utf8)),
                       ["UNAUTHENTICATED"])
        XCTAssertEqual(FrontHandler.errorCodes([]), [])
        // The rate limiter's `extensions` after them (RULES.md section 8).
        let costed = #"{"data":{"a":null},"errors":[{"message":"m","extensions":{"code":"FORBIDDEN"}}],"extensions":{"cost":{"requested":2,"remaining":5}}}"#
        XCTAssertEqual(FrontHandler.errorCodes(Array(costed.utf8)), ["FORBIDDEN"])
        let refused = #"{"errors":[{"message":"m","extensions":{"code":"RATE_LIMITED"}}],"extensions":{"cost":{"requested":9,"remaining":1}}}"#
        XCTAssertEqual(FrontHandler.errorCodes(Array(refused.utf8)), ["RATE_LIMITED"])
        let clean = #"{"data":{"a":[1,2]},"extensions":{"cost":{"requested":2,"remaining":5}}}"#
        XCTAssertFalse(FrontHandler.mayHoldErrors(Array(clean.utf8)))
        XCTAssertFalse(FrontHandler.mayHoldErrors(Array(#"{"data":{"a":[1,2]}}"#.utf8)))
    }

    func testMigrationsAreCurrentOnlyWhenTheyMatchExactly() {
        XCTAssertNil(Readiness.judge(applied: "1,2,3", expected: [1, 2, 3]))
        XCTAssertTrue(Readiness.judge(applied: "1,2", expected: [1, 2, 3])!.contains("not applied (3)"))
        XCTAssertTrue(Readiness.judge(applied: "", expected: [1])!.contains("not applied (1)"))
        XCTAssertTrue(Readiness.judge(applied: "1,2,3,4", expected: [1, 2, 3])!.contains("does not know (4)"))
    }
}
