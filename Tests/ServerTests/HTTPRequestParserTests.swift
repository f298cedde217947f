@testable import Server
import XCTest

/// What the parser makes of bytes, as words: "begun", "continue", "request GET /p?q keep-alive",
/// "failed 413".
private func parse(_ parser: HTTPRequestParser, _ text: String) -> [String] {
    Array(text.utf8).withUnsafeBytes { bytes in
        parser.parse(bytes).map { event in
            switch event {
            case .begun: return "begun"
            case .continueExpected: return "continue"
            case .failed(let status, _): return "failed \(status)"
            case .request(let r, let keepAlive):
                let target = r.path + (r.query.map { "?" + $0 } ?? "")
                return "request \(r.method) \(target) \(keepAlive ? "keep-alive" : "close")"
            }
        }
    }
}

final class HTTPRequestParserTests: XCTestCase {
    private var limits = HTTPServer.Limits()

    func testBlankLinesBeforeARequestBeginNothing() {
        // Why the request clock starts at the first byte of any kind, not at a message's begin.
        let parser = HTTPRequestParser(limits: limits)
        XCTAssertEqual(parse(parser, "\r\n"), [])
        XCTAssertEqual(parse(parser, "\r\n\r\n"), [])
        XCTAssertEqual(parse(parser, "GET /graphql?query=x HTTP/1.1\r\nHost: a\r\n\r\n"),
                       ["begun", "request GET /graphql?query=x keep-alive"])
    }

    func testPipelinedRequestsInOneReadAndOneRequestOverSeveral() {
        let parser = HTTPRequestParser(limits: limits)
        let post = "POST /graphql HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
        XCTAssertEqual(parse(parser, post + post + "POST /gra"),
                       ["begun", "request POST /graphql keep-alive", "begun", "request POST /graphql keep-alive", "begun"])
        XCTAssertEqual(parse(parser, "phql HTTP/1.1\r\nContent-"), [])
        XCTAssertEqual(parse(parser, "Length: 2\r\nConnection: close\r\n\r\n{}"), ["request POST /graphql close"])
    }

    func testRequestPartsReachTheHandler() {
        let parser = HTTPRequestParser(limits: limits)
        var request: HTTPRequest?
        Array("POST /graphql HTTP/1.1\r\nX-A: 1\r\nx-b: two\r\nContent-Length: 3\r\n\r\nabc".utf8).withUnsafeBytes {
            if case .request(let r, _) = parser.parse($0).last { request = r }
        }
        XCTAssertEqual(request?.header("x-a"), "1")
        XCTAssertEqual(request?.header("X-B"), "two")
        XCTAssertEqual(request?.body, Array("abc".utf8))
        XCTAssertNil(request?.header("x-"))
        XCTAssertNil(request?.header("x-ab"))
    }

    /// Only ASCII letters fold: `^` and `~`, `@` and `` ` `` differ by the same bit as `A` and `a`.
    func testHeaderNamesFoldOnlyLetters() {
        let request = HTTPRequest.head(method: "GET", path: "/", headers: [("X-^", "caret"), ("X-@", "at"), ("Ünï", "u")])
        XCTAssertEqual(request.header("x-^"), "caret")
        XCTAssertNil(request.header("x-~"))
        XCTAssertEqual(request.header("X-@"), "at")
        XCTAssertNil(request.header("x-`"))
        XCTAssertEqual(request.header("Ünï"), "u")
        XCTAssertNil(request.header("üNÏ"), "not an ASCII letter: not folded")
    }

    func testHTTP10ClosesUnlessAskedToKeepAlive() {
        XCTAssertEqual(parse(HTTPRequestParser(limits: limits), "GET / HTTP/1.0\r\n\r\n"), ["begun", "request GET / close"])
        XCTAssertEqual(parse(HTTPRequestParser(limits: limits), "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
                       ["begun", "request GET / keep-alive"])
    }

    func testExpectContinueIsReportedAfterTheHead() {
        let parser = HTTPRequestParser(limits: limits)
        XCTAssertEqual(parse(parser, "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
                       ["begun", "continue"])
        XCTAssertEqual(parse(parser, "{}"), ["request POST / keep-alive"])
    }

    func testADeclaredBodyOverTheLimitIsRefusedBeforeItIsRead() {
        limits.maxBodyBytes = 10
        let parser = HTTPRequestParser(limits: limits)
        XCTAssertEqual(parse(parser, "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n"),
                       ["begun", "failed 413"], "no 100 Continue for a body that will not be read")
    }

    func testAChunkedBodyOverTheLimitIsRefused() {
        limits.maxBodyBytes = 10
        let parser = HTTPRequestParser(limits: limits)
        XCTAssertEqual(parse(parser, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n"),
                       ["begun", "failed 413"])
    }

    func testHeadersOverTheLimitAre431() {
        limits.maxHeaderBytes = 64
        let parser = HTTPRequestParser(limits: limits)
        XCTAssertEqual(parse(parser, "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 100) + "\r\n\r\n"),
                       ["begun", "failed 431"])
    }

    func testWhatIsNotHTTPIs400() {
        XCTAssertEqual(parse(HTTPRequestParser(limits: limits), "NOT HTTP AT ALL\r\n\r\n"), ["begun", "failed 400"],
                       "N could have begun NOTIFY")
        XCTAssertEqual(parse(HTTPRequestParser(limits: limits), "\u{16}\u{03}\u{01}"), ["failed 400"], "TLS")
        XCTAssertEqual(parse(HTTPRequestParser(limits: limits), "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"),
                       ["begun", "request GET / keep-alive", "failed 400"])
    }
}
