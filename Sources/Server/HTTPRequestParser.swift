import CHTTPParser

/// Reads HTTP/1.1 requests out of bytes with http_parser, within the server's size limits
/// (RULES.md section 5: a body over 1 MiB is 413, found from its `Content-Length` before
/// it is read; headers over `maxHeaderBytes` are 431; anything else unreadable is 400).
///
/// `parse` returns what the bytes held, in order, once http_parser is done with them, so
/// that nothing runs inside http_parser's callbacks but collecting.
///
/// Lifetime: the parser and its settings are allocated in `init` and freed in `deinit`;
/// while `parse` runs, http_parser reaches this object through `data` (unretained: it
/// cannot outlive the call).
/// Visible to the package (not public) for the `http` fuzz harness.
package final class HTTPRequestParser {
    package enum Event {
        /// A request line began (http_parser skips blank lines before one without a word).
        case begun
        /// The head asks for `100 Continue` before the body is sent.
        case continueExpected
        /// A whole request; `keepAlive` is false when the connection is to close after it.
        case request(HTTPRequest, keepAlive: Bool)
        /// The bytes are not a request the server reads; nothing more is parsed.
        case failed(status: Int, message: String)
    }

    private let limits: HTTPServer.Limits
    // Heap-allocated, owned here: http_parser calls back into this object while it holds
    // them, which Swift's exclusive access to stored properties would forbid.
    private let parser = UnsafeMutablePointer<http_parser>.allocate(capacity: 1)
    private let settings = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
    private var events: [Event] = []

    // The request being parsed.
    private var url: [UInt8] = []
    private var headers: [(String, String)] = []
    private var headerField: [UInt8] = []
    private var headerValue: [UInt8] = []
    private var inValue = false
    private var headerBytes = 0
    private var body: [UInt8] = []
    private var refusal: (status: Int, message: String)?

    package init(limits: HTTPServer.Limits) {
        self.limits = limits
        parser.initialize(to: http_parser())
        settings.initialize(to: Self.callbacks)
        http_parser_init(parser, HTTP_REQUEST)
    }

    deinit {
        parser.deallocate()
        settings.deallocate()
    }

    /// What `bytes` held, in order. After `.failed`, later calls return nothing useful:
    /// the connection takes no more requests.
    package func parse(_ bytes: UnsafeRawBufferPointer) -> [Event] {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return [] }
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let parsed = http_parser_execute(parser, settings, base.assumingMemoryBound(to: CChar.self), bytes.count)
        if parser.pointee.upgrade != 0 || parsed != bytes.count {
            events.append(.failed(status: refusal?.status ?? 400,
                                  message: refusal?.message ?? "The request is not valid HTTP/1.1."))
        }
        defer { events = [] }
        return events
    }

    private static let callbacks: http_parser_settings = {
        var s = http_parser_settings()
        s.on_message_begin = { p in of(p).messageBegin() }
        s.on_url = { p, at, length in of(p).urlPart(at, length) }
        s.on_header_field = { p, at, length in of(p).headerField(at, length) }
        s.on_header_value = { p, at, length in of(p).headerValue(at, length) }
        s.on_headers_complete = { p in of(p).headersComplete() }
        s.on_body = { p, at, length in of(p).bodyChunk(at, length) }
        s.on_message_complete = { p in of(p).messageComplete() }
        return s
    }()

    private static func of(_ parser: UnsafeMutablePointer<http_parser>?) -> HTTPRequestParser {
        Unmanaged<HTTPRequestParser>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
    }

    private func messageBegin() -> Int32 {
        url = []
        headers = []
        headerField = []
        headerValue = []
        inValue = false
        headerBytes = 0
        body = []
        events.append(.begun)
        return 0
    }

    /// Counts `length` more bytes of the request line and headers against `maxHeaderBytes`;
    /// false, with the refusal set, past it.
    private func admitHeadBytes(_ length: Int) -> Bool {
        headerBytes += length
        guard headerBytes <= limits.maxHeaderBytes else {
            refusal = (431, "The request headers are too large.")
            return false
        }
        return true
    }

    private func urlPart(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        guard let at else { return 0 }
        guard admitHeadBytes(length) else { return 1 }
        url.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    private func headerField(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        if inValue { flushHeader() }
        guard let at else { return 0 }
        guard admitHeadBytes(length) else { return 1 }
        headerField.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    private func headerValue(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        inValue = true
        guard let at else { return 0 }
        guard admitHeadBytes(length) else { return 1 }
        headerValue.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    /// The header read so far becomes a name and a value; its buffers keep their room
    /// for the next one.
    private func flushHeader() {
        headers.append((String(decoding: headerField, as: UTF8.self), String(decoding: headerValue, as: UTF8.self)))
        headerField.removeAll(keepingCapacity: true)
        headerValue.removeAll(keepingCapacity: true)
        inValue = false
    }

    private func headersComplete() -> Int32 {
        if inValue || !headerField.isEmpty { flushHeader() }
        // A declared body over the limit is refused before it is read.
        if parser.pointee.flags & UInt32(F_CONTENTLENGTH.rawValue) != 0, parser.pointee.content_length > UInt64(limits.maxBodyBytes) {
            refusal = (413, "The request body is larger than \(limits.maxBodyBytes) bytes.")
            return -1  // an error for http_parser (1 and 2 mean "no body"): parsing stops here
        }
        // curl and others wait (a second, for curl) for this before they send a body.
        if headers.contains(where: { HTTPRequest.sameName($0.0, "expect") && HTTPRequest.sameName($0.1, "100-continue") }) {
            events.append(.continueExpected)
        }
        return 0
    }

    private func bodyChunk(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        guard let at else { return 0 }
        if body.count + length > limits.maxBodyBytes {
            refusal = (413, "The request body is larger than \(limits.maxBodyBytes) bytes.")
            return 1
        }
        body.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    /// As much of the request as was read before a `.failed`: its method, path and
    /// headers, as far as they came (for the access log; the body is not kept).
    var refusedHead: HTTPRequest {
        let target = String(decoding: url, as: UTF8.self)
        let path = target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target
        let method = url.isEmpty ? "" : String(cString: http_method_str(http_method(rawValue: parser.pointee.method)))
        return HTTPRequest(method: method, path: path, query: nil, headers: headers, body: [])
    }

    private func messageComplete() -> Int32 {
        let target = String(decoding: url, as: UTF8.self)
        var path = target
        var query: String?
        if let q = target.firstIndex(of: "?") {
            path = String(target[..<q])
            query = String(target[target.index(after: q)...])
        }
        let method = String(cString: http_method_str(http_method(rawValue: parser.pointee.method)))
        let request = HTTPRequest(method: method, path: path, query: query, headers: headers, body: body)
        events.append(.request(request, keepAlive: http_should_keep_alive(parser) != 0))
        body = []
        return 0
    }
}
