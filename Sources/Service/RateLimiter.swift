import Billing
import Server
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Each API key's budget of points per minute (RULES.md section 8), one for the whole
/// process: every loop spends from the same windows, under one lock taken once per
/// operation, so the budget is exact however the kernel spreads a key's connections.
///
/// A key's window opens with the first operation it pays for and lasts `windowMilliseconds`;
/// the next operation after that opens a new one with the whole budget. An operation is
/// paid whole or refused whole, before any database work.
final class RateLimiter: Sendable {
    static let windowMilliseconds: UInt64 = 60_000
    /// Windows kept before the ended ones are dropped: bounded by the keys that exist.
    static let pruneAbove = 10_000

    /// What a key may still spend, as the `RateLimit-*` headers say it.
    struct Allowance: Equatable {
        let limit: Int
        let remaining: Int
        /// Whole seconds until the window ends and the budget is whole again (at least 1).
        let resetSeconds: Int
    }

    enum Decision: Equatable {
        case allowed(Allowance)
        case refused(Allowance)
    }

    private struct Window {
        var opened: UInt64
        var spent: Int
    }

    private let windows = Mutex<[String: Window]>([:])
    private let clock: @Sendable () -> UInt64

    /// `clock` gives milliseconds of a monotonic clock; tests pass one of their own.
    init(clock: @escaping @Sendable () -> UInt64 = RateLimiter.monotonicMilliseconds) {
        self.clock = clock
    }

    /// Pays `cost` points from `key`'s budget of `limit`, or refuses without paying.
    func spend(_ cost: Int, key: String, limit: Int) -> Decision {
        let now = clock()
        return windows.withLock { windows in
            var window = current(windows[key], now: now)
            let fits = window.spent + cost <= limit
            if fits { window.spent += cost }
            if windows.count >= Self.pruneAbove { windows = windows.filter { now < $0.value.opened + Self.windowMilliseconds } }
            windows[key] = window
            let allowance = Allowance(limit: limit, remaining: limit - window.spent,
                                      resetSeconds: Self.seconds(until: window.opened + Self.windowMilliseconds, from: now))
            return fits ? .allowed(allowance) : .refused(allowance)
        }
    }

    /// What `key` has left, paying nothing (for answers that ran no operation).
    func allowance(key: String, limit: Int) -> Allowance {
        let now = clock()
        let window = windows.withLock { current($0[key], now: now) }
        return Allowance(limit: limit, remaining: limit - window.spent,
                         resetSeconds: Self.seconds(until: window.opened + Self.windowMilliseconds, from: now))
    }

    private func current(_ window: Window?, now: UInt64) -> Window {
        guard let window, now < window.opened + Self.windowMilliseconds else { return Window(opened: now, spent: 0) }
        return window
    }

    private static func seconds(until end: UInt64, from now: UInt64) -> Int {
        max(1, Int((end - min(end, now) + 999) / 1000))
    }

    static let monotonicMilliseconds: @Sendable () -> UInt64 = {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1000 + UInt64(time.tv_nsec) / 1_000_000
    }
}

// MARK: - Budgets as HTTP says them

extension RateLimiter {
    /// What paying for an operation came to.
    enum Payment {
        /// Paid; nil when the key has no limit.
        case allowed(Allowance?)
        case refused(Allowance)
    }

    /// Pays `cost` from the key's budget; a key whose limit is 0 pays nothing.
    func spend(_ cost: Int, for principal: Principal) -> Payment {
        guard principal.rateLimit > 0 else { return .allowed(nil) }
        switch spend(cost, key: principal.keyID, limit: principal.rateLimit) {
        case .allowed(let allowance): return .allowed(allowance)
        case .refused(let allowance): return .refused(allowance)
        }
    }

    /// The response with the key's `RateLimit-*` headers, unless it has them already (an
    /// operation's answer says what its payment left) or the key has no limit.
    func withHeaders(_ response: HTTPResponse, for principal: Principal) -> HTTPResponse {
        guard principal.rateLimit > 0, !response.headers.contains(where: { $0.0 == "RateLimit-Limit" }) else { return response }
        return Self.withHeaders(response, allowance(key: principal.keyID, limit: principal.rateLimit))
    }

    static func withHeaders(_ response: HTTPResponse, _ allowance: Allowance) -> HTTPResponse {
        var response = response
        response.headers += allowance.headers
        return response
    }

    /// The answer's `extensions.cost` = `{"requested": N, "remaining": M}`, as the member
    /// the engine writes into its `extensions` (`Execution.extensions`): written with the
    /// answer, not spliced into it afterwards, which cost two copies of a 300 KB page.
    static func costExtension(requested: Int, remaining: Int) -> [UInt8] {
        Array("\"cost\":{\"requested\":\(requested),\"remaining\":\(remaining)}".utf8)
    }
}

extension RateLimiter.Allowance {
    /// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (seconds).
    var headers: [(String, String)] {
        [("RateLimit-Limit", String(limit)), ("RateLimit-Remaining", String(remaining)), ("RateLimit-Reset", String(resetSeconds))]
    }
}
