import CLibUV
import EventLoop
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A TCP listener on one loop. Accepts connections and hands each to an `HTTPConnection`,
/// while the process has fewer than its `ConnectionBudget` open (RULES.md section 5).
public final class HTTPServer {
    /// What one connection may hold and for how long (RULES.md section 5); the
    /// connection's state machine applies them.
    public struct Limits: Sendable {
        public var maxBodyBytes = 1 << 20
        public var maxHeaderBytes = 64 << 10
        /// A connection where nothing moves for this long while the handler has nothing of
        /// it is closed (a keep-alive connection at rest, a client that reads no answers).
        public var idleTimeoutMilliseconds: UInt64 = 60_000
        /// A request must arrive whole within this long of its first byte, whatever the bytes.
        public var requestReadTimeoutMilliseconds: UInt64 = 30_000
        /// After a refusal, how long what the client still sends is read and dropped.
        public var lingerMilliseconds: UInt64 = 2_000
        /// Requests waiting (parsed, not yet with the handler) at which reading stops; it
        /// resumes below half.
        public var maxQueuedRequests = 16
        /// Answer bytes waiting for a client that does not read them at which reading (and
        /// handing requests to the handler) stops; it resumes below half.
        public var maxUnsentBytes = 4 << 20
        public init() {}
    }

    /// How often every connection's time limits are checked: their resolution.
    static let tickMilliseconds: UInt64 = 250

    let loop: EventLoop
    let handler: HTTPHandler
    let limits: Limits
    private let budget: ConnectionBudget
    private let listener = HandleBox<uv_tcp_t>()
    private var open: [ObjectIdentifier: HTTPConnection] = [:]
    private var sweeper: Timer?
    private var whenDrained: (() -> Void)?
    /// The port actually bound (useful with port 0).
    public private(set) var port = 0
    /// What every connection of this server reads into (`HTTPConnection.startReading`).
    /// libuv reads one socket at a time on a loop, and a read's bytes are parsed (and
    /// copied where they are kept) before the next read, so one buffer serves them all; a
    /// `malloc` and `free` of libuv's suggested 64 KB for each read cost an invoice detail
    /// about 8,000 instructions (freeing that much makes glibc consolidate its free lists).
    /// Allocated with the server and freed in its `deinit`: its connections refer to it
    /// unowned, so none reads after it is gone.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)

    /// `budget` may be shared by the servers of several loops: it bounds them together.
    public init(loop: EventLoop, handler: HTTPHandler, limits: Limits = Limits(),
                budget: ConnectionBudget = ConnectionBudget(limit: ConnectionBudget.defaultLimit)) {
        self.loop = loop
        self.handler = handler
        self.limits = limits
        self.budget = budget
    }

    deinit { readBuffer.deallocate() }

    /// Listens on `address`. With `sharedPort`, other servers (other loops, other threads)
    /// may listen on the same address, and the kernel spreads connections among them
    /// (`SO_REUSEPORT`).
    public func listen(on address: ListenAddress, sharedPort: Bool = false) throws(UVError) {
        let family = address.host.contains(":") ? AF_INET6 : AF_INET
        try check(uv_tcp_init_ex(loop.raw, listener.handle, UInt32(family)), "uv_tcp_init_ex")
        listener.attach(self)
        if sharedPort {
            var fd: uv_os_fd_t = -1
            var on: Int32 = 1
            try check(uv_fileno(listener.base, &fd), "uv_fileno")
            guard setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                throw UVError(code: -errno, operation: "setsockopt SO_REUSEPORT")
            }
        }
        var storage = sockaddr_storage()
        try withUnsafeMutablePointer(to: &storage) { (raw) throws(UVError) in
            let sa = UnsafeMutableRawPointer(raw).assumingMemoryBound(to: sockaddr.self)
            if address.host.contains(":") {
                try check(uv_ip6_addr(address.host, Int32(address.port), UnsafeMutableRawPointer(raw).assumingMemoryBound(to: sockaddr_in6.self)),
                          "invalid address \(address.host)")
            } else {
                try check(uv_ip4_addr(address.host, Int32(address.port), UnsafeMutableRawPointer(raw).assumingMemoryBound(to: sockaddr_in.self)),
                          "invalid address \(address.host)")
            }
            try check(uv_tcp_bind(listener.handle, sa, 0), "bind \(address)")
        }
        try check(uv_listen(UnsafeMutableRawPointer(listener.handle).assumingMemoryBound(to: uv_stream_t.self), 1024) { server, status in
            let h = UnsafeMutableRawPointer(server)?.assumingMemoryBound(to: uv_handle_t.self)
            guard status >= 0, let owner = HandleBox<uv_tcp_t>.owner(of: h, as: HTTPServer.self) else { return }
            owner.accept()
        }, "listen on \(address)")
        port = boundPort()
        let sweeper = try Timer(loop: loop)
        sweeper.start(after: Self.tickMilliseconds, repeat: Self.tickMilliseconds) { [weak self] in self?.tick() }
        sweeper.unref()
        self.sweeper = sweeper
    }

    private func boundPort() -> Int {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &storage) { raw -> Int in
            let sa = UnsafeMutableRawPointer(raw).assumingMemoryBound(to: sockaddr.self)
            guard uv_tcp_getsockname(listener.handle, sa, &length) == 0 else { return 0 }
            if Int32(sa.pointee.sa_family) == AF_INET6 {
                return Int(UInt16(bigEndian: UnsafeMutableRawPointer(raw).assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port))
            }
            return Int(UInt16(bigEndian: UnsafeMutableRawPointer(raw).assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port))
        }
    }

    private var listenerStream: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(listener.handle).assumingMemoryBound(to: uv_stream_t.self)
    }

    /// A connection over the budget is accepted and closed at once: left unaccepted, it
    /// would stop libuv from accepting any other.
    private func accept() {
        guard budget.admit() else { return reject() }
        let connection = HTTPConnection(server: self)
        guard connection.accept(from: listenerStream) else { return budget.release() }
        open[ObjectIdentifier(connection)] = connection
    }

    private func reject() {
        let refused = HandleBox<uv_tcp_t>()
        guard uv_tcp_init(loop.raw, refused.handle) == 0 else { return }
        refused.base.pointee.data = nil  // no owner: the close callback only frees the handle
        uv_accept(listenerStream, UnsafeMutableRawPointer(refused.handle).assumingMemoryBound(to: uv_stream_t.self))
        refused.close()
    }

    func closed(_ connection: HTTPConnection) {
        guard open.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return }
        budget.release()
        if open.isEmpty, let drained = whenDrained {
            whenDrained = nil
            drained()
        }
    }

    private func tick() {
        let now = loop.now
        for connection in open.values { connection.tick(now: now) }
    }

    /// Stops accepting and closes every connection.
    public func close() {
        whenDrained = nil
        sweeper?.close()
        listener.close()
        for connection in open.values { connection.abort() }
    }

    /// Stops accepting, lets every request already received be answered, and calls
    /// `drained` once the last connection has closed.
    public func drain(_ drained: @escaping () -> Void) {
        listener.close()
        whenDrained = drained
        for connection in Array(open.values) { connection.finish() }
        if open.isEmpty, let drained = whenDrained {
            whenDrained = nil
            drained()
        }
    }
}

/// The open connections of a whole process, counted across its loops (RULES.md section 5:
/// at most `--max-connections`). One instance is shared by every loop's `HTTPServer`.
public final class ConnectionBudget: Sendable {
    public static let defaultLimit = 10_000
    public let limit: Int
    private let open = Atomic<Int>(0)

    public init(limit: Int) {
        self.limit = limit
    }

    /// The connections open now, all loops together.
    public var openCount: Int { open.load(ordering: .relaxed) }

    /// Takes one place if there is one.
    func admit() -> Bool {
        if open.add(1, ordering: .relaxed).newValue <= limit { return true }
        open.subtract(1, ordering: .relaxed)
        return false
    }

    /// Gives back a place taken by `admit`.
    func release() {
        open.subtract(1, ordering: .relaxed)
    }
}
