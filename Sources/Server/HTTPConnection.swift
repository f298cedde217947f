import CLibUV
import EventLoop
#if canImport(Glibc)
import Glibc
#endif

/// One client connection: the socket and the parser, driven by an
/// `HTTPConnectionStateMachine`, which decides everything (what to read, when to hand a
/// request to the handler, what to write, when to close); this class runs its actions.
///
/// Lifetime: the TCP handle is owned through a `HandleBox` from `accept` to `close`; its
/// `data` keeps this object alive until the close callback. Each write keeps it alive too,
/// until libuv reports the write (done, failed, or cancelled by the close). The handler's
/// `respond` holds it weakly: an answer that comes after the close is dropped.
final class HTTPConnection {
    private unowned let server: HTTPServer
    private let tcp = HandleBox<uv_tcp_t>()
    private let parser: HTTPRequestParser
    private var machine: HTTPConnectionStateMachine
    /// Bytes the kernel took at once in `write`: reported to the machine as written when
    /// the actions of the batch that wrote them are done, as if libuv had called back.
    private var writtenAtOnce = 0

    init(server: HTTPServer) {
        self.server = server
        parser = HTTPRequestParser(limits: server.limits)
        machine = HTTPConnectionStateMachine(limits: server.limits, now: server.loop.now)
    }

    private var stream: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(tcp.handle).assumingMemoryBound(to: uv_stream_t.self)
    }

    func accept(from listener: UnsafeMutablePointer<uv_stream_t>) -> Bool {
        guard uv_tcp_init(server.loop.raw, tcp.handle) == 0 else { return false }
        tcp.attach(self)
        guard uv_accept(listener, stream) == 0 else {
            tcp.close()
            return false
        }
        uv_tcp_nodelay(tcp.handle, 1)
        run(machine.opened())
        return true
    }

    // MARK: - Events from the server

    /// The server's clock (every `HTTPServer.tickMilliseconds`): time limits.
    func tick(now: UInt64) { run(machine.tick(now: now)) }

    /// The server drains: answer what was received, then close; close at once if idle.
    func finish() { run(machine.finish(now: server.loop.now)) }

    /// The server closes the connection whatever it is doing.
    func abort() { run(machine.abort()) }

    // MARK: - Events from libuv and the handler

    private func received(_ bytes: UnsafeRawBufferPointer) {
        let now = server.loop.now
        guard machine.bytesReceived(now: now) == .parse else { return }
        for event in parser.parse(bytes) {
            // The refusal is told what was read of the request (for the access log).
            run(machine.parsed(event, now: now) { status, message in
                server.handler.refusal(status: status, message: message, head: parser.refusedHead)
            })
        }
    }

    private func writeDone(bytes: Int, status: Int32) {
        run(status < 0 ? machine.peerClosed() : machine.writeCompleted(bytes: bytes, now: server.loop.now))
    }

    // MARK: - Actions

    private func run(_ actions: [HTTPConnectionStateMachine.Action]) {
        for action in actions {
            switch action {
            case .startReading: startReading()
            case .stopReading: uv_read_stop(stream)
            case .dispatch(let request): dispatch(request)
            case .write(let head, let body): write(head, body)
            case .shutdown: shutdown()
            case .close: close()
            }
        }
        if writtenAtOnce > 0 {
            let bytes = writtenAtOnce
            writtenAtOnce = 0
            run(machine.writeCompleted(bytes: bytes, now: server.loop.now))
        }
    }

    private func startReading() {
        let status = uv_read_start(stream, { handle, _, buf in
            let buffer = HandleBox<uv_tcp_t>.owner(of: handle, as: HTTPConnection.self)?.server.readBuffer
            buf?.pointee.base = buffer?.baseAddress?.assumingMemoryBound(to: CChar.self)
            buf?.pointee.len = buffer?.count ?? 0
        }, { stream, nread, buf in
            let h = UnsafeMutableRawPointer(stream)?.assumingMemoryBound(to: uv_handle_t.self)
            guard let connection = HandleBox<uv_tcp_t>.owner(of: h, as: HTTPConnection.self) else { return }
            if nread < 0 { return connection.run(connection.machine.peerClosed()) }
            if nread > 0, let base = buf?.pointee.base {
                connection.received(UnsafeRawBufferPointer(start: base, count: nread))
            }
        })
        if status < 0 { run(machine.peerClosed()) }
    }

    private func dispatch(_ request: HTTPRequest) {
        var answered = false
        server.handler.handle(request) { [weak self] response in
            guard !answered, let self else { return }
            answered = true
            run(machine.responseReady(response, now: server.loop.now))
        }
    }

    /// Gives the kernel what it takes at once; libuv writes the rest later, from a copy.
    private func write(_ head: [UInt8], _ body: [UInt8]) {
        let count = head.count + body.count
        let taken = writeAtOnce(head, body)
        if taken == count {
            writtenAtOnce += count
            return
        }
        // The socket failed (the client reset it): nothing to copy for a write that cannot be.
        if taken < 0 { return run(machine.peerClosed()) }
        let status = PendingWrite.start(head, body, from: taken, on: stream) { [self] status in writeDone(bytes: count, status: status) }
        if status < 0 { run(machine.peerClosed()) }
    }

    /// How many bytes of the head and then the body the socket took without waiting (most
    /// answers fit in its buffer, and then no copy is kept for libuv to write from); none
    /// while earlier writes wait in libuv's queue (it refuses, which keeps the order);
    /// negative when the socket failed.
    private func writeAtOnce(_ head: [UInt8], _ body: [UInt8]) -> Int {
        head.withUnsafeBufferPointer { head in
            body.withUnsafeBufferPointer { body in
                var buffers = [head, body].map { part in
                    uv_buf_init(UnsafeMutableRawPointer(mutating: part.baseAddress)?.assumingMemoryBound(to: CChar.self),
                                UInt32(part.count))
                }
                let written = Int(uv_try_write(stream, &buffers, UInt32(buffers.count)))
                return written == Int(UV_EAGAIN.rawValue) ? 0 : written
            }
        }
    }

    private func shutdown() {
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        let status = uv_shutdown(request, stream) { request, _ in
            // libuv calls back once, even when the close cancels the shutdown.
            guard let request else { return }
            let connection = Unmanaged<HTTPConnection>.fromOpaque(request.pointee.data!).takeRetainedValue()
            request.deallocate()
            connection.run(connection.machine.shutdownCompleted())
        }
        if status < 0 {
            Unmanaged<HTTPConnection>.fromOpaque(request.pointee.data!).release()
            request.deallocate()
            run(machine.peerClosed())
        }
    }

    private func close() {
        server.closed(self)
        tcp.close()
    }
}

/// One `uv_write` of a copy of some bytes (what the socket did not take at once of a head
/// and a body, copied into one buffer), and what to do when libuv is done with it.
///
/// Lifetime: retained through the request's `data` from `uv_write` until its callback,
/// which libuv always calls (with `UV_ECANCELED` when the handle closes first); the
/// bytes and the request are freed there.
private final class PendingWrite {
    private let request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
    private let storage: UnsafeMutableRawBufferPointer
    private let done: (Int32) -> Void

    /// The bytes of `head` and then `body` from the `offset`th on.
    private init(_ head: [UInt8], _ body: [UInt8], from offset: Int, done: @escaping (Int32) -> Void) {
        let headPart = head[min(offset, head.count)...]
        let bodyPart = body[max(0, offset - head.count)...]
        storage = .allocate(byteCount: headPart.count + bodyPart.count, alignment: 1)
        storage.copyBytes(from: headPart)
        UnsafeMutableRawBufferPointer(rebasing: storage[headPart.count...]).copyBytes(from: bodyPart)
        self.done = done
    }

    deinit {
        storage.deallocate()
        request.deallocate()
    }

    /// Queues the bytes on `stream`; libuv's status (negative when it refused them).
    static func start(_ head: [UInt8], _ body: [UInt8], from offset: Int, on stream: UnsafeMutablePointer<uv_stream_t>,
                      done: @escaping (Int32) -> Void) -> Int32 {
        let write = PendingWrite(head, body, from: offset, done: done)
        write.request.pointee.data = Unmanaged.passRetained(write).toOpaque()
        var buffer = uv_buf_init(write.storage.baseAddress?.assumingMemoryBound(to: CChar.self), UInt32(write.storage.count))
        let status = uv_write(write.request, stream, &buffer, 1) { request, status in
            guard let data = request?.pointee.data else { return }
            let write = Unmanaged<PendingWrite>.fromOpaque(data).takeRetainedValue()
            write.done(status)
        }
        if status < 0 { Unmanaged<PendingWrite>.fromOpaque(write.request.pointee.data!).release() }
        return status
    }
}
