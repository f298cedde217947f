import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

/// Connection strings for connections made on an event loop.
public enum ConnectionTarget {
    /// The same connection string with the host name already resolved (`hostaddr`).
    ///
    /// `PQconnectStart` looks a host name up with a blocking `getaddrinfo`, which must not
    /// happen on a loop. Called once at start-up, where blocking is fine, this makes every
    /// later (re)connect on the loop name-lookup free. Socket directories, literal
    /// addresses, several hosts, and strings that already give `hostaddr` are left alone.
    public static func resolvingHost(_ conninfo: String) -> String {
        guard let options = parse(conninfo) else { return conninfo }
        guard let host = options.first(where: { $0.0 == "host" })?.1, !host.isEmpty,
              !options.contains(where: { $0.0 == "hostaddr" }),
              !host.hasPrefix("/"), !host.hasPrefix("@"), !host.contains(","), !isLiteralAddress(host),
              let address = lookUp(host) else { return conninfo }
        return render(options + [("hostaddr", address)])
    }

    /// The connection string with a server setting added to its `options`
    /// (`-c name=value`), keeping whatever options it already had.
    public static func setting(_ name: String, _ value: String, in conninfo: String) -> String {
        guard var options = parse(conninfo) else { return conninfo }
        let flag = "-c \(name)=\(value)"
        if let i = options.firstIndex(where: { $0.0 == "options" }) {
            options[i].1 += " " + flag
        } else {
            options.append(("options", flag))
        }
        return render(options)
    }

    /// Where a connection string points, for the log: `host:port` (never a password).
    public static func displayName(_ conninfo: String) -> String {
        let options = parse(conninfo) ?? []
        let host = options.last(where: { $0.0 == "host" || $0.0 == "hostaddr" })?.1 ?? "localhost"
        let port = options.last(where: { $0.0 == "port" })?.1 ?? "5432"
        return "\(host):\(port)"
    }

    /// How long a connection attempt on a loop may take: the string's `connect_timeout`
    /// (seconds; libpq counts 1 as 2), else 5 seconds. libpq applies `connect_timeout` only
    /// to its blocking connects, so the pool enforces it itself, and never waits for ever.
    public static func connectTimeoutMilliseconds(_ conninfo: String) -> UInt64 {
        guard let value = parse(conninfo)?.last(where: { $0.0 == "connect_timeout" })?.1,
              let seconds = Int(value), seconds > 0 else { return 5_000 }
        return UInt64(max(2, min(seconds, 3_600))) * 1_000
    }

    private static func render(_ options: [(String, String)]) -> String {
        options.map { "\($0.0)=\(quote($0.1))" }.joined(separator: " ")
    }

    /// The options a connection string sets, as libpq reads it (key=value or URL).
    static func parse(_ conninfo: String) -> [(String, String)]? {
        var error: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(conninfo, &error) else {
            if let error { PQfreemem(error) }
            return nil
        }
        defer { PQconninfoFree(parsed) }
        var options: [(String, String)] = []
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { options.append((String(cString: keyword), String(cString: value))) }
            option += 1
        }
        return options
    }

    /// A value quoted for a key=value connection string.
    static func quote(_ value: String) -> String {
        var out = "'"
        for c in value {
            if c == "'" || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out + "'"
    }

    private static func isLiteralAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    private static func lookUp(_ host: String) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch first.pointee.ai_family {
        case AF_INET:
            var address = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            guard inet_ntop(AF_INET, &address, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        case AF_INET6:
            var address = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        default:
            return nil
        }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
