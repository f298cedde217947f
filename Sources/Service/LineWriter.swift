import Dispatch
import Metrics
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Lines for standard output or standard error, written by a thread of their own so that
/// a loop never waits for whoever reads them: the access log (`AccessLog`) and the
/// server's messages (`billgraph serve`; `BILLGRAPH_TRACE_SQL` writes a line a statement).
///
/// Either is often a pipe to a log collector; written by the loops themselves, a collector
/// that stopped reading for a moment stopped the service with it (a pipe holds about 200
/// access log lines). Loops append whole lines to `pending` under a lock, so lines never
/// interleave, and the writer thread takes them all at once and writes them out as fast
/// as the reader takes them. Once `maxPendingBytes` wait besides the batch being written,
/// further lines are dropped rather than stalling requests: counted in `dropped`, and said
/// on standard error once writing goes on (README, "Operating it"). The two buffers keep
/// their memory, so appending copies no more than a line under the lock.
///
/// Lifetime: one per output, made with the service; its thread sleeps while there is
/// nothing to write and ends with the process (it refers to this object, which is
/// therefore never freed). `flush` lets a stopping service write what is pending first.
public final class LineWriter: Sendable {
    /// How far the reader may fall behind, besides the batch being written: about 25,000
    /// access log lines.
    static let maxPendingBytes = 8 << 20

    private struct Pending {
        var bytes: [UInt8] = []
        /// Lines dropped since the writer last took `bytes`.
        var dropped = 0
        /// The writer holds a batch it has not written whole yet.
        var writing = false
    }

    private let pending = Mutex(Pending())
    /// Signalled when `pending` goes from empty to not, once for each time.
    private let wakeup = DispatchSemaphore(value: 0)
    private let dropped: Counter

    /// Starts the writer thread, which writes to `fd`; `what` names the lines in the
    /// notice of lines dropped ("access log lines").
    public init(fd: Int32, what: String, dropped: Counter = Counter()) throws {
        self.dropped = dropped
        let output = fd == 1 ? "standard output" : fd == 2 ? "standard error" : "its output"
        let thread = try Thread.start { [self] in
            var batch: [UInt8] = []
            while true {
                wakeup.wait()
                let lost = pending.withLock { state in
                    swap(&state.bytes, &batch)  // `state.bytes` gets the emptied batch and its memory
                    state.writing = true
                    defer { state.dropped = 0 }
                    return state.dropped
                }
                Self.write(batch, to: fd)
                if lost > 0 {
                    Self.write(Array("billgraph: \(lost) \(what) dropped: \(output) was not read fast enough\n".utf8), to: 2)
                }
                batch.removeAll(keepingCapacity: true)
                pending.withLock { $0.writing = false }
            }
        }
        pthread_detach(thread)
    }

    /// Hands over one line (without its line break), or drops it when the reader is too
    /// far behind; never waits for the reader.
    public func write(_ line: [UInt8]) {
        let wasEmpty = pending.withLock { state -> Bool? in
            guard state.bytes.count + line.count < Self.maxPendingBytes else {
                state.dropped += 1
                return nil
            }
            let wasEmpty = state.bytes.isEmpty
            state.bytes.append(contentsOf: line)
            state.bytes.append(UInt8(ascii: "\n"))
            return wasEmpty
        }
        switch wasEmpty {
        case nil: dropped.increment()
        case true?: wakeup.signal()
        case false?: break
        }
    }

    /// Waits until every line handed over is written, or `seconds` have passed (a reader
    /// that never reads again must not keep a stopping service alive).
    public func flush(seconds: Int = 5) {
        for _ in 0..<(seconds * 100) {
            if pending.withLock({ $0.bytes.isEmpty && !$0.writing }) { return }
            usleep(10_000)
        }
    }

    /// Writes all of `bytes`, waiting as long as the reader makes it; gives up silently
    /// when the output is gone (the lines are lost, the service goes on).
    private static func write(_ bytes: [UInt8], to fd: Int32) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n < 0 && errno == EAGAIN {  // an output another process made non-blocking
                    var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&ready, 1, -1)
                    continue
                }
                if n <= 0 { return }
                offset += n
            }
        }
    }
}
