#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// When the next connection attempt may be made while the database cannot be reached:
/// exponential back-off with jitter, shared by every pool of the process (one per loop),
/// so that the process as a whole makes about one attempt a second however many loops it
/// runs, and is back within about a second of the database.
///
/// After the n-th failed attempt in a row the next is due after a delay drawn uniformly
/// from [d/2, d], d = min(`cap`, `base` * 2^(n-1)): 25-50 ms, 50-100 ms, ... then 0.5-1 s.
/// Only one attempt is out at a time while failing (the probe); a successful one makes
/// the schedule healthy again, and then every pool connects freely.
///
/// A value type with the clock (`now`, milliseconds) and the randomness (`jitter`, in
/// [0, 1)) given by the caller, so that it is tested without time or threads.
struct ReconnectSchedule: Sendable {
    enum Permit: Equatable, Sendable {
        /// Healthy: connect.
        case connect
        /// Failing, and the delay has passed: this caller makes the one attempt.
        case probe
        /// Not yet: try again at this time.
        case wait(until: UInt64)
    }

    let base: UInt64
    let cap: UInt64
    /// How long a probe may take before another caller may make an attempt.
    let probeTimeout: UInt64
    /// How soon a caller turned away while another's probe is out asks again.
    let probeRecheck: UInt64

    /// Failed attempts in a row (0: healthy).
    private(set) var failures = 0
    private(set) var notBefore: UInt64 = 0
    /// While a probe is out: when it is given up on.
    private(set) var probeDeadline: UInt64?
    /// When the current outage was first seen (for the log).
    private(set) var downSince: UInt64?

    init(base: UInt64 = 50, cap: UInt64 = 1_000, probeTimeout: UInt64 = 5_000, probeRecheck: UInt64 = 100) {
        self.base = max(1, base)
        self.cap = max(self.base, cap)
        self.probeTimeout = probeTimeout
        self.probeRecheck = max(1, probeRecheck)
    }

    var isHealthy: Bool { failures == 0 }

    /// The delay after `failures` failed attempts in a row, before jitter.
    func ceiling(after failures: Int) -> UInt64 {
        guard failures > 0 else { return 0 }
        let shift = min(failures - 1, 30)
        let (grown, overflow) = base.multipliedReportingOverflow(by: UInt64(1) << UInt64(shift))
        return overflow ? cap : min(cap, grown)
    }

    /// The delay after `failures` failed attempts, for a jitter in [0, 1): in [d/2, d].
    func delay(after failures: Int, jitter: Double) -> UInt64 {
        let d = ceiling(after: failures)
        let j = min(max(jitter, 0), 1)
        return d / 2 + UInt64((Double(d - d / 2) * j).rounded(.down))
    }

    /// May a connection attempt be made now?
    mutating func permit(now: UInt64) -> Permit {
        guard failures > 0 else { return .connect }
        if let deadline = probeDeadline, now < deadline {
            return .wait(until: min(deadline, now + probeRecheck))
        }
        guard now >= notBefore else { return .wait(until: notBefore) }
        probeDeadline = now + probeTimeout
        return .probe
    }

    /// An attempt failed; returns when the next one is due.
    @discardableResult
    mutating func failed(now: UInt64, jitter: Double) -> UInt64 {
        if failures == 0 { downSince = now }
        failures += 1
        probeDeadline = nil
        notBefore = now + delay(after: failures, jitter: jitter)
        return notBefore
    }

    /// An attempt succeeded: healthy again.
    mutating func succeeded() {
        failures = 0
        notBefore = 0
        probeDeadline = nil
        downSince = nil
    }
}

/// The process's `ReconnectSchedule`, shared by the pools of every loop. The only mutable
/// state loops share: taken for a few instructions once per connection attempt, never on
/// the path of a statement. It logs when the database stops answering and when it is back.
public final class ReconnectGate: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t> = .allocate(capacity: 1)
    private var schedule: ReconnectSchedule
    private let log: @Sendable (String) -> Void

    public init(connectTimeoutMilliseconds: UInt64 = 5_000, log: @escaping @Sendable (String) -> Void = { _ in }) {
        schedule = ReconnectSchedule(probeTimeout: connectTimeoutMilliseconds)
        self.log = log
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    private func locked<T>(_ body: (inout ReconnectSchedule) -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body(&schedule)
    }

    /// Failed attempts in a row so far (0: healthy).
    var failures: Int { locked { $0.failures } }

    func permit(now: UInt64) -> ReconnectSchedule.Permit {
        locked { $0.permit(now: now) }
    }

    /// Records a failed attempt; returns when the next one is due.
    func failed(now: UInt64, reason: DatabaseError) -> UInt64 {
        let jitter = Double.random(in: 0..<1)
        let (first, until) = locked { s -> (Bool, UInt64) in
            let first = s.isHealthy
            return (first, s.failed(now: now, jitter: jitter))
        }
        if first { log("\(reason); connecting again with back-off (at most about one attempt a second)") }
        return until
    }

    func succeeded(now: UInt64) {
        let outage = locked { s -> (failures: Int, since: UInt64?) in
            let outage = (s.failures, s.downSince)
            s.succeeded()
            return outage
        }
        if outage.failures > 0 {
            let seconds = Double(now - min(now, outage.since ?? now)) / 1000
            log("database reachable again after \(outage.failures) failed connection attempt(s) in \(seconds) s")
        }
    }
}
