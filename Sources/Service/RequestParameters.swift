import Engine
import JSON

/// The GraphQL-over-HTTP request parameters, read from a POST body or a GET query
/// string. A request that is not well-formed is refused with HTTP 400 (RULES.md section 1).
enum RequestParameters {
    struct Malformed: Error {
        let message: String
    }

    /// What a POST body holds: one request, or a batch of them (RULES.md section 8).
    enum Body {
        case single(ClientRequest)
        case batch([ClientRequest])
    }

    /// A batch holds 1 to `maxBatch` request objects (RULES.md section 8).
    static let maxBatch = 20

    static func fromJSONBody(_ body: [UInt8]) throws(Malformed) -> Body {
        guard !body.isEmpty else { throw Malformed(message: "The request has no body.") }
        let json: JSONValue
        do { json = try JSONParser.parse(body) } catch {
            throw Malformed(message: "The body is not valid JSON: \(error.message).")
        }
        switch json {
        case .object(let members):
            return .single(try request(members))
        case .array(let items):
            guard (1...maxBatch).contains(items.count) else {
                throw Malformed(message: "A batch holds 1 to \(maxBatch) requests; this one holds \(items.count).")
            }
            // Every element must be a request object as a request alone must be; one that is
            // not refuses the whole batch, before anything of it runs.
            var requests: [ClientRequest] = []
            for (index, item) in items.enumerated() {
                guard case .object(let members) = item else {
                    throw Malformed(message: "Element \(index) of the batch is not a request object.")
                }
                do { requests.append(try request(members)) } catch {
                    throw Malformed(message: "Element \(index) of the batch: \(error.message)")
                }
            }
            return .batch(requests)
        default:
            throw Malformed(message: "The body must be a JSON object, or an array of them (a batch).")
        }
    }

    private static func request(_ members: [(String, JSONValue)]) throws(Malformed) -> ClientRequest {
        var params: [String: JSONValue] = [:]
        for (k, v) in members { params[k] = v }
        return try request(query: params["query"], variables: params["variables"],
                           operationName: params["operationName"], extensions: params["extensions"])
    }

    static func fromQueryString(_ query: String?) throws(Malformed) -> ClientRequest {
        var params: [String: String] = [:]
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = percentDecode(String(parts[0])) else { throw Malformed(message: "The query string is not valid.") }
            guard let value = percentDecode(parts.count > 1 ? String(parts[1]) : "") else {
                throw Malformed(message: "The query string is not valid.")
            }
            if params[name] == nil { params[name] = value }
        }
        func json(_ name: String) throws(Malformed) -> JSONValue? {
            guard let text = params[name], !text.isEmpty else { return nil }
            do { return try JSONParser.parse(text) } catch {
                throw Malformed(message: "The \(name) parameter is not valid JSON.")
            }
        }
        return try request(query: params["query"].map(JSONValue.string), variables: try json("variables"),
                           operationName: params["operationName"].map(JSONValue.string), extensions: try json("extensions"))
    }

    private static func request(query: JSONValue?, variables: JSONValue?, operationName: JSONValue?,
                                extensions: JSONValue?) throws(Malformed) -> ClientRequest {
        let persisted = try persistedQueryHash(extensions)
        var text: String?
        switch query {
        case .string(let s)?: text = s
        case nil, .null?:
            // Without a query, only a persisted query's hash says what to run.
            guard persisted != nil else { throw Malformed(message: "The request has no query.") }
        default: throw Malformed(message: "The query must be a string.")
        }
        var variableValues: [(String, JSONValue)] = []
        switch variables {
        case nil, .null?: break
        case .object(let members)?: variableValues = members
        default: throw Malformed(message: "The variables must be a JSON object.")
        }
        var name: String?
        switch operationName {
        case nil, .null?: break
        case .string(let s)?: name = s
        default: throw Malformed(message: "The operationName must be a string.")
        }
        return ClientRequest(query: text, variables: variableValues, operationName: name, persistedQueryHash: persisted)
    }

    /// `extensions.persistedQuery.sha256Hash` (Apollo's automatic persisted queries,
    /// version 1), in lowercase hexadecimal; nil when the request carries none.
    private static func persistedQueryHash(_ extensions: JSONValue?) throws(Malformed) -> String? {
        switch extensions {
        case nil, .null?: return nil
        case .object?: break
        default: throw Malformed(message: "The extensions must be a JSON object.")
        }
        guard let persisted = extensions?["persistedQuery"], persisted != .null else { return nil }
        guard case .object = persisted, persisted["version"] == .number("1"),
              case .string(let hash)? = persisted["sha256Hash"] else {
            throw Malformed(message: "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": \"<64 hexadecimal digits>\"}.")
        }
        let lower = hash.lowercased()
        guard lower.utf8.count == 64, lower.utf8.allSatisfy({ hex($0) != nil }) else {
            throw Malformed(message: "extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits.")
        }
        return lower
    }

    /// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; UTF-8 required.
    static func percentDecode(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let c = iterator.next() {
            switch c {
            case UInt8(ascii: "+"): bytes.append(0x20)
            case UInt8(ascii: "%"):
                guard let h = iterator.next(), let l = iterator.next(), let hi = hex(h), let lo = hex(l) else { return nil }
                bytes.append(hi << 4 | lo)
            default: bytes.append(c)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}

/// One GraphQL-over-HTTP request as the client sent it: the document's text, or only a
/// persisted query's hash (RULES.md section 8), or both.
struct ClientRequest: Sendable {
    var query: String?
    var variables: [(String, JSONValue)]
    var operationName: String?
    /// `extensions.persistedQuery.sha256Hash`, lowercase.
    var persistedQueryHash: String?
}

/// The response media type a client accepts (GraphQL-over-HTTP, "Accept").
enum MediaType: String {
    case graphQLResponse = "application/graphql-response+json"
    case json = "application/json"

    var contentType: String { rawValue + "; charset=utf-8" }

    /// nil when the client accepts neither (HTTP 406).
    static func negotiate(_ accept: String?) -> MediaType? {
        guard let accept, !accept.trimmingSpaces.isEmpty else { return .json }
        var best: (MediaType, Double)?
        for item in accept.split(separator: ",") {
            let parts = item.split(separator: ";").map { String($0).trimmingSpaces.lowercased() }
            var q = 1.0
            for p in parts.dropFirst() where p.hasPrefix("q=") { q = Double(p.dropFirst(2)) ?? 0 }
            guard q > 0 else { continue }
            let type: MediaType?
            switch parts[0] {
            case "application/graphql-response+json": type = .graphQLResponse
            case "application/json", "*/*", "application/*": type = .json
            default: type = nil
            }
            guard let type else { continue }
            // Equal preference: the GraphQL response type wins, as the specification advises.
            if best == nil || q > best!.1 || (q == best!.1 && type == .graphQLResponse) { best = (type, q) }
        }
        return best?.0
    }
}

extension String {
    /// Without the spaces and tabs at either end: HTTP's optional white space around
    /// header values and their parts.
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
