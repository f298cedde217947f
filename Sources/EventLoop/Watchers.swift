import CLibUV

/// Watches a socket that someone else owns (libpq's connection socket) for readiness.
public final class PollWatcher {
    public struct Events: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: Int32(UV_READABLE.rawValue))
        public static let writable = Events(rawValue: Int32(UV_WRITABLE.rawValue))
    }

    private let box = HandleBox<uv_poll_t>()
    private let callback: (_ status: Int32, _ events: Events) -> Void
    private var current: Events = []

    public init(loop: EventLoop, fd: Int32, callback: @escaping (_ status: Int32, _ events: Events) -> Void) throws(UVError) {
        self.callback = callback
        try check(uv_poll_init(loop.raw, box.handle, fd), "uv_poll_init")
        box.attach(self)
    }

    /// Watches for `events`; a repeated call with the same events costs nothing.
    public func watch(_ events: Events) {
        guard events != current, !box.closing else { return }
        current = events
        if events.isEmpty {
            uv_poll_stop(box.handle)
            return
        }
        uv_poll_start(box.handle, events.rawValue) { handle, status, events in
            let h = UnsafeMutableRawPointer(handle)?.assumingMemoryBound(to: uv_handle_t.self)
            guard let watcher = HandleBox<uv_poll_t>.owner(of: h, as: PollWatcher.self) else { return }
            // On an error (POLLERR) libuv has already stopped the handle: forget what was
            // watched, so that the next `watch` starts it again instead of doing nothing.
            if status < 0 { watcher.current = [] }
            watcher.callback(status, Events(rawValue: events))
        }
    }

    /// Stops watching and releases the handle. Call before the socket is closed.
    public func close() {
        current = []
        box.close()
    }
}

/// A one-shot or repeating timer.
public final class Timer {
    private let box = HandleBox<uv_timer_t>()
    private var callback: () -> Void = {}

    public init(loop: EventLoop) throws(UVError) {
        try check(uv_timer_init(loop.raw, box.handle), "uv_timer_init")
        box.attach(self)
    }

    public func start(after milliseconds: UInt64, repeat interval: UInt64 = 0, _ callback: @escaping () -> Void) {
        self.callback = callback
        uv_timer_start(box.handle, { handle in
            let h = UnsafeMutableRawPointer(handle)?.assumingMemoryBound(to: uv_handle_t.self)
            HandleBox<uv_timer_t>.owner(of: h, as: Timer.self)?.callback()
        }, milliseconds, interval)
    }

    public func stop() { uv_timer_stop(box.handle) }

    /// Lets the loop exit while this timer is the only thing left.
    public func unref() { uv_unref(box.base) }

    public func close() {
        callback = {}
        box.close()
    }
}

/// Runs a callback once in each turn of the loop, just before the loop waits for I/O
/// (`uv_prepare`), while started. What the callbacks of a turn set aside (loads of
/// several requests that may share one statement) is handled before the loop waits
/// again, whichever callback set it aside: I/O, a timer, or another handle's. Nothing
/// blocks between a callback and the next prepare phase (the next turn's due timers run
/// first, and waiting comes after). A started prepare never keeps the loop from
/// waiting (unlike an idle handle) and costs nothing while stopped.
///
/// Lifetime: created, started and stopped on its loop's thread by its one owner, which
/// calls `close()` when the loop stops; the handle's memory goes in libuv's close callback.
public final class PrepareWatcher {
    private let box = HandleBox<uv_prepare_t>()
    private let callback: () -> Void
    private var started = false

    public init(loop: EventLoop, _ callback: @escaping () -> Void) throws(UVError) {
        self.callback = callback
        try check(uv_prepare_init(loop.raw, box.handle), "uv_prepare_init")
        box.attach(self)
    }

    /// Runs the callback before the loop next waits, and in every turn after it until
    /// `stop()`; a repeated call costs nothing.
    public func start() {
        guard !started, !box.closing else { return }
        started = true
        uv_prepare_start(box.handle) { handle in
            let h = UnsafeMutableRawPointer(handle)?.assumingMemoryBound(to: uv_handle_t.self)
            HandleBox<uv_prepare_t>.owner(of: h, as: PrepareWatcher.self)?.callback()
        }
    }

    public func stop() {
        guard started else { return }
        started = false
        uv_prepare_stop(box.handle)
    }

    public func close() {
        started = false
        box.close()
    }
}

/// Runs a callback when the loop receives a signal (SIGINT, SIGTERM).
public final class SignalWatcher {
    private let box = HandleBox<uv_signal_t>()
    private let callback: () -> Void

    public init(loop: EventLoop, signal: Int32, _ callback: @escaping () -> Void) throws(UVError) {
        self.callback = callback
        try check(uv_signal_init(loop.raw, box.handle), "uv_signal_init")
        box.attach(self)
        try check(uv_signal_start(box.handle, { handle, _ in
            let h = UnsafeMutableRawPointer(handle)?.assumingMemoryBound(to: uv_handle_t.self)
            HandleBox<uv_signal_t>.owner(of: h, as: SignalWatcher.self)?.callback()
        }, signal), "uv_signal_start")
    }

    public func close() { box.close() }
}

/// Wakes a loop from another thread (`uv_async_send`, libuv's one thread-safe call) to run
/// `callback` on the loop's own thread.
///
/// Lifetime: created on the loop's thread; `trigger` may be used from any thread until
/// `close()`, which the owner calls on the loop's thread once no other thread will send.
public final class AsyncWakeup {
    private let box = HandleBox<uv_async_t>()
    private let callback: () -> Void

    public init(loop: EventLoop, _ callback: @escaping () -> Void) throws(UVError) {
        self.callback = callback
        try check(uv_async_init(loop.raw, box.handle) { handle in
            let h = UnsafeMutableRawPointer(handle)?.assumingMemoryBound(to: uv_handle_t.self)
            HandleBox<uv_async_t>.owner(of: h, as: AsyncWakeup.self)?.callback()
        }, "uv_async_init")
        box.attach(self)
    }

    /// What another thread holds to wake this loop.
    public var trigger: Trigger { Trigger(handle: box.handle) }

    public struct Trigger: @unchecked Sendable {
        fileprivate let handle: UnsafeMutablePointer<uv_async_t>
        public func fire() { uv_async_send(handle) }
    }

    public func close() { box.close() }
}
