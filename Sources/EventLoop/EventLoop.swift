import CLibUV

/// One libuv loop. Everything that belongs to it (handles, connections, requests) is
/// used only on the thread that runs it, so nothing here needs a lock.
public final class EventLoop {
    /// Owned: initialised in `init`, closed in `deinit` once every handle is closed.
    public let raw: UnsafeMutablePointer<uv_loop_t>

    public init() throws(UVError) {
        raw = .allocate(capacity: 1)
        do {
            try check(uv_loop_init(raw), "uv_loop_init")
        } catch {
            raw.deallocate()
            throw error
        }
    }

    /// Runs until `stop()` is called or no handle is active.
    public func run() { uv_run(raw, UV_RUN_DEFAULT) }

    public func stop() { uv_stop(raw) }

    /// Milliseconds of the loop's clock.
    public var now: UInt64 { uv_now(raw) }

    /// A monotonic clock in nanoseconds (libuv's `uv_hrtime`), for measuring durations.
    @inline(__always)
    public static func hrtime() -> UInt64 { uv_hrtime() }

    deinit {
        // Give close callbacks a chance to run, then release the loop.
        uv_run(raw, UV_RUN_NOWAIT)
        uv_loop_close(raw)
        raw.deallocate()
    }
}

/// Owns one libuv handle of type `H` on behalf of a Swift object.
///
/// Lifetime: the handle's memory is allocated in `init` and freed only in the close
/// callback, as libuv requires. While the handle is open its `data` holds a retained
/// reference to the owner, so callbacks always find a live owner; the close callback
/// drops that reference.
public final class HandleBox<H> {
    public let handle: UnsafeMutablePointer<H>
    private var isClosing = false

    public init() {
        handle = .allocate(capacity: 1)
    }

    /// The handle as libuv's generic type.
    public var base: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
    }

    /// Stores a retained reference to `owner` in the handle's `data`.
    public func attach(_ owner: AnyObject) {
        base.pointee.data = Unmanaged.passRetained(owner).toOpaque()
    }

    /// The owner stored by `attach`, from a callback's handle pointer.
    public static func owner<T: AnyObject>(of handle: UnsafeMutablePointer<uv_handle_t>?, as: T.Type) -> T? {
        guard let data = handle?.pointee.data else { return nil }
        return Unmanaged<T>.fromOpaque(data).takeUnretainedValue()
    }

    /// Closes the handle; its memory and the owner's reference go in the close callback.
    public func close() {
        guard !isClosing else { return }
        isClosing = true
        uv_close(base) { handle in
            guard let handle else { return }
            if let data = handle.pointee.data { Unmanaged<AnyObject>.fromOpaque(data).release() }
            handle.deallocate()
        }
    }

    public var closing: Bool { isClosing }
}
