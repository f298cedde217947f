import CHTTPParser
import CLibUV
import EventLoop
#if canImport(Glibc)
import Glibc
#endif

/// One client connection: bytes in through http_parser, requests to the handler one at a
/// time (pipelined requests wait their turn), responses out in order, keep-alive.
///
/// Lifetime: the TCP handle is owned through a `HandleBox` from `accept` to `close`; the
/// parser and its settings are owned here and live as long as this object, which the
/// handle's `data` keeps alive until the close callback.
final class HTTPConnection {
    private unowned let server: HTTPServer
    private let tcp = HandleBox<uv_tcp_t>()
    // Heap-allocated, owned here (freed in deinit): http_parser calls back into this
    // object while it holds them, which Swift's exclusive access to properties forbids.
    private let parser = UnsafeMutablePointer<http_parser>.allocate(capacity: 1)
    private let settings = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
    private var closing = false
    /// Set when the server drains: answer what was received, then close.
    private var finishing = false
    /// When the request being read began (loop milliseconds), or nil between requests.
    private var requestStarted: UInt64?
    /// After a refusal: the answer is sent, and what the client still sends is read and
    /// dropped until it closes, so that it sees the answer rather than a reset (lingering close).
    private var draining = false
    private var lastActivity: UInt64 = 0

    // The request being parsed.
    private var url: [UInt8] = []
    private var headers: [(String, String)] = []
    private var headerField: [UInt8] = []
    private var headerValue: [UInt8] = []
    private var inValue = false
    private var headerBytes = 0
    private var body: [UInt8] = []
    private var refusal: (Int, String)?

    // Requests parsed and not yet answered, in order.
    private enum Pending {
        case request(HTTPRequest, keepAlive: Bool)
        /// Refused by the server itself (malformed, too large): answered, then the connection closes.
        case refusal(status: Int, message: String)
    }
    private var queue: [Pending] = []
    private var busy = false

    init(server: HTTPServer) {
        self.server = server
        settings.initialize(to: http_parser_settings())
        parser.initialize(to: http_parser())
    }

    deinit {
        parser.deallocate()
        settings.deallocate()
    }

    private var stream: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(tcp.handle).assumingMemoryBound(to: uv_stream_t.self)
    }

    func accept(from listener: UnsafeMutablePointer<uv_tcp_t>) -> Bool {
        guard uv_tcp_init(server.loop.raw, tcp.handle) == 0 else { return false }
        tcp.attach(self)
        guard uv_accept(UnsafeMutableRawPointer(listener).assumingMemoryBound(to: uv_stream_t.self), stream) == 0 else {
            close()
            return false
        }
        uv_tcp_nodelay(tcp.handle, 1)
        lastActivity = server.loop.now
        setUpParser()
        startReading()
        return true
    }

    /// Requests parsed but not yet answered beyond which the connection stops reading
    /// (backpressure: a client that pipelines faster than it is answered waits).
    private static let maxQueued = 16
    private var reading = false

    private func startReading() {
        guard !reading, !closing else { return }
        reading = true
        uv_read_start(stream, { _, suggested, buf in
            buf?.pointee.base = malloc(suggested)?.assumingMemoryBound(to: CChar.self)
            buf?.pointee.len = buf?.pointee.base == nil ? 0 : suggested
        }, { stream, nread, buf in
            defer { free(buf?.pointee.base) }
            let h = UnsafeMutableRawPointer(stream)?.assumingMemoryBound(to: uv_handle_t.self)
            guard let connection = HandleBox<uv_tcp_t>.owner(of: h, as: HTTPConnection.self) else { return }
            if nread < 0 { return connection.close() }
            if connection.draining { return }
            if nread > 0, let base = buf?.pointee.base { connection.received(base, Int(nread)) }
        })
    }

    private func stopReading() {
        guard reading else { return }
        reading = false
        uv_read_stop(stream)
    }

    /// Whether the connection should go: idle past the timeout, a request that is taking
    /// too long to arrive (a client trickling bytes to hold a connection), or a refused
    /// client that does not finish.
    func isIdle(now: UInt64, timeout: UInt64) -> Bool {
        if draining { return now - lastActivity > 2_000 }
        if let started = requestStarted, now - started > server.limits.requestReadTimeoutMilliseconds { return true }
        return !busy && queue.isEmpty && now - lastActivity > timeout
    }

    // MARK: - Parsing

    private func setUpParser() {
        http_parser_init(parser, HTTP_REQUEST)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        settings.pointee.on_message_begin = { p in HTTPConnection.of(p).messageBegin() }
        settings.pointee.on_url = { p, at, length in HTTPConnection.of(p).append(&HTTPConnection.of(p).url, at, length) }
        settings.pointee.on_header_field = { p, at, length in HTTPConnection.of(p).headerField(at, length) }
        settings.pointee.on_header_value = { p, at, length in HTTPConnection.of(p).headerValue(at, length) }
        settings.pointee.on_headers_complete = { p in HTTPConnection.of(p).headersComplete() }
        settings.pointee.on_body = { p, at, length in HTTPConnection.of(p).bodyChunk(at, length) }
        settings.pointee.on_message_complete = { p in HTTPConnection.of(p).messageComplete() }
    }

    private static func of(_ parser: UnsafeMutablePointer<http_parser>?) -> HTTPConnection {
        Unmanaged<HTTPConnection>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
    }

    private func received(_ base: UnsafeMutablePointer<CChar>, _ count: Int) {
        lastActivity = server.loop.now
        guard !closing else { return }
        let parsed = http_parser_execute(parser, settings, base, count)
        if parser.pointee.upgrade != 0 || parsed != count {
            // Not HTTP/1.1 we can read: answer 400 once everything before it is answered.
            let status = refusal?.0 ?? 400
            let message = refusal?.1 ?? "The request is not valid HTTP/1.1."
            draining = true
            queueRefusal(status, message)
        }
    }

    private func append(_ buffer: inout [UInt8], _ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        guard let at else { return 0 }
        headerBytes += length
        if headerBytes > server.limits.maxHeaderBytes {
            refusal = (431, "The request headers are too large.")
            return 1
        }
        at.withMemoryRebound(to: UInt8.self, capacity: length) { buffer.append(contentsOf: UnsafeBufferPointer(start: $0, count: length)) }
        return 0
    }

    private func messageBegin() -> Int32 {
        requestStarted = server.loop.now
        url = []
        headers = []
        headerField = []
        headerValue = []
        inValue = false
        headerBytes = 0
        body = []
        return 0
    }

    private func headerField(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        if inValue { flushHeader() }
        return append(&headerField, at, length)
    }

    private func headerValue(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        inValue = true
        return append(&headerValue, at, length)
    }

    private func flushHeader() {
        headers.append((String(decoding: headerField, as: UTF8.self), String(decoding: headerValue, as: UTF8.self)))
        headerField = []
        headerValue = []
        inValue = false
    }

    private func headersComplete() -> Int32 {
        if inValue || !headerField.isEmpty { flushHeader() }
        // A declared body over the limit is refused before it is read.
        if parser.pointee.flags & UInt32(F_CONTENTLENGTH.rawValue) != 0, parser.pointee.content_length > UInt64(server.limits.maxBodyBytes) {
            refusal = (413, "The request body is larger than \(server.limits.maxBodyBytes) bytes.")
            return -1  // an error for http_parser (1 and 2 mean "no body"): parsing stops here
        }
        // curl and others wait (a second, for curl) for this before they send a body.
        if headers.contains(where: { $0.0.lowercased() == "expect" && $0.1.lowercased() == "100-continue" }) {
            sendRaw(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        return 0
    }

    private func bodyChunk(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        guard let at else { return 0 }
        if body.count + length > server.limits.maxBodyBytes {
            refusal = (413, "The request body is larger than \(server.limits.maxBodyBytes) bytes.")
            return 1
        }
        at.withMemoryRebound(to: UInt8.self, capacity: length) { body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length)) }
        return 0
    }

    private func messageComplete() -> Int32 {
        requestStarted = nil
        let target = String(decoding: url, as: UTF8.self)
        let path: String
        var query: String?
        if let q = target.firstIndex(of: "?") {
            path = String(target[..<q])
            query = String(target[target.index(after: q)...])
        } else {
            path = target
        }
        let method = String(cString: http_method_str(http_method(rawValue: parser.pointee.method)))
        let request = HTTPRequest(method: method, path: path, query: query, headers: headers, body: body)
        queue.append(.request(request, keepAlive: http_should_keep_alive(parser) != 0))
        body = []
        processNext()
        if queue.count >= Self.maxQueued { stopReading() }
        return 0
    }

    // MARK: - Answering

    private func queueRefusal(_ status: Int, _ message: String) {
        queue.append(.refusal(status: status, message: message))
        processNext()
    }

    private func processNext() {
        guard !busy, !closing, !queue.isEmpty else { return }
        busy = true
        let request: HTTPRequest
        let keepAlive: Bool
        switch queue.removeFirst() {
        case .refusal(let status, let message):
            return send(server.handler.refusal(status: status, message: message), keepAlive: false)
        case .request(let r, let k):
            (request, keepAlive) = (r, k)
        }
        var answered = false
        server.handler.handle(request) { [weak self] response in
            guard !answered else { return }
            answered = true
            self?.send(response, keepAlive: keepAlive)
        }
    }

    private func send(_ response: HTTPResponse, keepAlive: Bool) {
        guard !closing else { return }
        let last = !keepAlive || (finishing && queue.isEmpty)
        guard sendRaw(response.serialized(keepAlive: !last)) else { return close() }
        lastActivity = server.loop.now
        busy = false
        if last {
            shutdownAndClose()
        } else {
            processNext()
            if !finishing && queue.count < Self.maxQueued / 2 { startReading() }
        }
    }

    /// For a draining server: reads no more, answers the requests already received (the
    /// last with `Connection: close`), then closes. An idle connection closes at once.
    func finish() {
        guard !closing else { return }
        finishing = true
        stopReading()
        if !busy && queue.isEmpty { close() }
    }

    /// Queues bytes on the socket; false when libuv refused them.
    @discardableResult
    private func sendRaw(_ bytes: [UInt8]) -> Bool {
        let write = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count)
        storage.initialize(from: bytes, count: bytes.count)
        write.pointee.data = UnsafeMutableRawPointer(storage)
        var buffer = uv_buf_init(UnsafeMutableRawPointer(storage).assumingMemoryBound(to: CChar.self), UInt32(bytes.count))
        let status = uv_write(write, stream, &buffer, 1) { request, _ in
            // The write request and its bytes are freed here, when libuv is done with them.
            request?.pointee.data?.assumingMemoryBound(to: UInt8.self).deallocate()
            request?.deallocate()
        }
        if status < 0 {
            storage.deallocate()
            write.deallocate()
            return false
        }
        return true
    }

    /// Closes after pending writes are flushed (a draining connection waits for the client's end).
    private func shutdownAndClose() {
        closing = true
        if !draining { stopReading() }
        let shutdown = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        shutdown.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let status = uv_shutdown(shutdown, stream) { request, _ in
            if let data = request?.pointee.data {
                let connection = Unmanaged<HTTPConnection>.fromOpaque(data).takeUnretainedValue()
                if !connection.draining { connection.finishClose() }
            }
            request?.deallocate()
        }
        if status < 0 {
            shutdown.deallocate()
            finishClose()
        }
    }

    func close() {
        closing = true
        finishClose()
    }

    private func finishClose() {
        server.closed(self)
        tcp.close()
    }
}
