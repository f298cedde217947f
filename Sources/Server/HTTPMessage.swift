/// One HTTP request as the server hands it to its handler.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path without the query string, e.g. `/graphql`.
    public var path: String
    /// The raw query string after `?`, if any.
    public var query: String?
    public var headers: [(String, String)]
    public var body: [UInt8]

    /// The first header with this name, compared without regard to case.
    public func header(_ name: String) -> String? {
        headers.first { Self.sameName($0.0, name) }?.1
    }

    /// Header names are ASCII tokens (RFC 9110 section 5.1), so they are compared byte by
    /// byte with ASCII letters folded: no lowercased copies (a request looks up about 30
    /// headers, among all it has). Token values, such as `Expect: 100-continue`, likewise.
    static func sameName(_ a: String, _ b: String) -> Bool {
        func folded(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }
        return a.utf8.count == b.utf8.count && a.utf8.elementsEqual(b.utf8) { folded($0) == folded($1) }
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Status line and headers, ready for the socket; the body follows them as it is.
    /// Written as bytes, piece by piece: string interpolation cost a small answer more than
    /// its body (about 11,000 instructions for a dozen headers).
    func head(keepAlive: Bool) -> [UInt8] {
        var head: [UInt8] = []
        head.reserveCapacity(512)
        func add(_ text: String) { head.append(contentsOf: text.utf8) }
        add("HTTP/1.1 "); add(String(status)); add(" "); add(Self.reason(status)); add("\r\n")
        for (name, value) in headers { add(name); add(": "); add(value); add("\r\n") }
        add("Content-Length: "); add(String(body.count)); add("\r\n")
        add(keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n")
        return head
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 413: return "Content Too Large"
        case 415: return "Unsupported Media Type"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status \(status)"
        }
    }
}

extension HTTPRequest {
    /// A request head with no query string and no body.
    public static func head(method: String, path: String, headers: [(String, String)] = []) -> HTTPRequest {
        HTTPRequest(method: method, path: path, query: nil, headers: headers, body: [])
    }
}

/// Answers requests. `respond` must be called exactly once, on the loop's thread.
public protocol HTTPHandler: AnyObject {
    func handle(_ request: HTTPRequest, respond: @escaping (HTTPResponse) -> Void)
    /// The answer to a request the server refuses before the handler sees it (413, 400).
    func refusal(status: Int, message: String) -> HTTPResponse
    /// The same, told what was read of the request (`refusedHead`: method, path, headers).
    func refusal(status: Int, message: String, head: HTTPRequest) -> HTTPResponse
}

extension HTTPHandler {
    public func refusal(status: Int, message: String, head: HTTPRequest) -> HTTPResponse {
        refusal(status: status, message: message)
    }
}

/// Where to listen: `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:80`.
public struct ListenAddress: Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init?(_ text: String) {
        var hostPart: Substring
        var portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        if hostPart.isEmpty { hostPart = "0.0.0.0" }
        guard let port = Int(portPart), (0...65535).contains(port) else { return nil }
        host = String(hostPart)
        self.port = port
    }

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
