import Billing
import EventLoop
import Store
import Synchronization

/// How the statements of query requests share the database (RULES.md §5: no client can
/// stall or exhaust the server). Without it, one request of 300 aliases puts 300
/// statements in its loop's pool queue at once, and every other request waits behind
/// them; and a few requests reading results of half a million items at once hold
/// gigabytes. So:
/// - each request has at most `maxInFlight` statements with the pool at a time, and the
///   rest wait in the request's own lane, not in the pool's queue;
/// - a request that has read more than `heavyRows` rows (`serve --heavy-read-rows`,
///   default 5,000) goes on one statement at a time,
///   and only while it holds the process's one slot for heavy reads (`HeavyReadGate`),
///   so at most one such request reads at a time, whatever the loop, and the others
///   wait holding what little they read before.
///
/// Ordinary requests (the dashboard reads about 600 rows with at most three statements
/// a level) never notice. Mutations run on a leased connection in their transaction and
/// do not pass here.
/// The process's single slot for reading a large result. Shared by every loop.
public final class HeavyReadGate: Sendable {
    private struct State {
        var holder: ObjectIdentifier?
        var waiting: [(id: ObjectIdentifier, wake: @Sendable () -> Void)] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// True when `id` holds the slot now. Otherwise `id` waits in line, and `wake` is
    /// called (on whichever thread releases the slot) once it holds it.
    func acquire(_ id: ObjectIdentifier, wake: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            if s.holder == nil {
                s.holder = id
                return true
            }
            s.waiting.append((id, wake))
            return false
        }
    }

    /// `id` is done, holding the slot or waiting for it: the slot passes to the next in line.
    func release(_ id: ObjectIdentifier) {
        let next: (@Sendable () -> Void)? = state.withLock { s in
            s.waiting.removeAll { $0.id == id }
            guard s.holder == id else { return nil }
            guard !s.waiting.isEmpty else {
                s.holder = nil
                return nil
            }
            let next = s.waiting.removeFirst()
            s.holder = next.id
            return next.wake
        }
        next?()  // outside the lock: it wakes another loop
    }
}

/// The lanes of one loop's requests, and the wakeup through which the gate tells this
/// loop that one of its waiting lanes may go on.
///
/// Lifetime: created and used on its loop's thread; `close()` (when the loop stops)
/// closes the wakeup handle.
public final class StatementLanes {
    public static let defaultHeavyRows = 5_000
    /// Statements of one request with the pool at a time.
    static let maxInFlight = 4

    let heavyRows: Int
    private let gate: HeavyReadGate
    private var wakeup: AsyncWakeup!
    /// Lanes waiting for the heavy slot, by id.
    private var waiting: [ObjectIdentifier: StatementLane] = [:]
    /// Set when the loop stops, before the wakeup closes: no other thread fires it after.
    private let closed = Flag()

    init(loop: EventLoop, gate: HeavyReadGate, heavyRows: Int) throws {
        self.heavyRows = heavyRows
        self.gate = gate
        wakeup = try AsyncWakeup(loop: loop) { [weak self] in self?.resumeGranted() }
    }

    /// A lane for one request, whose statements go to `target` (the database chosen for
    /// the request, RULES.md section 9), and its loads that may share a statement through
    /// `coalescer`; `finish()` it when the request is answered.
    func lane(to target: ReadRoute, coalescer: ReadCoalescer?) -> StatementLane {
        StatementLane(lanes: self, target: target, coalescer: coalescer)
    }

    /// The loop stops: its waiting lanes leave the line, so that the slot is never handed
    /// to this loop again, and then the wakeup closes.
    func close() {
        closed.flag.store(true, ordering: .releasing)
        for id in waiting.keys { release(id) }
        wakeup.close()
    }

    /// True when `lane` holds the heavy slot now; otherwise it is resumed when it does.
    fileprivate func acquire(for lane: StatementLane) -> Bool {
        let granted = Flag()
        let (trigger, closed) = (wakeup.trigger, closed)
        let wake: @Sendable () -> Void = {
            granted.flag.store(true, ordering: .releasing)
            if !closed.flag.load(ordering: .acquiring) { trigger.fire() }
        }
        if gate.acquire(lane.id, wake: wake) { return true }
        lane.grant = granted
        waiting[lane.id] = lane
        return false
    }

    fileprivate func release(_ id: ObjectIdentifier) {
        waiting[id] = nil
        gate.release(id)
    }

    private func resumeGranted() {
        for (id, lane) in waiting where lane.grant?.flag.load(ordering: .acquiring) == true {
            waiting[id] = nil
            lane.resume()
        }
    }
}

/// A flag one thread sets and another reads: a lane's grant, set by whichever thread
/// passes it the slot; a loop's closing, read by those threads.
private final class Flag: Sendable {
    let flag = Atomic<Bool>(false)
}

/// The statements of one query request on their way to the pool (see `StatementLanes`).
/// A load sharing a statement with other requests' (`ReadCoalescer`) takes one of this
/// request's places while it is out, and counts only its own rows as read.
final class StatementLane {
    typealias Completion = (Result<ResultSet, DatabaseError>) -> Void

    private enum Queued {
        case statement(Statement, Completion)
        case shared(SharedRead, ReadCoalescer, ReadCoalescer.Completion)
    }

    /// Known to the gate by identity: a lane is alive while it waits for the slot or holds
    /// it (it gives it back in `finish`, at the latest when it goes), so no two share one.
    var id: ObjectIdentifier { ObjectIdentifier(self) }
    private let lanes: StatementLanes
    private let target: ReadRoute
    private let coalescer: ReadCoalescer?
    private var queued: [Queued] = []
    private var next = 0
    private var inFlight = 0
    private var rowsRead = 0
    private enum Weight { case light, waiting, holding, finished }
    private var weight = Weight.light
    fileprivate var grant: Flag?

    fileprivate init(lanes: StatementLanes, target: ReadRoute, coalescer: ReadCoalescer?) {
        self.lanes = lanes
        self.target = target
        self.coalescer = coalescer
    }

    /// Whether this request's loads may share statements (`serve --coalesce on`).
    var shares: Bool { coalescer != nil }

    func run(_ statement: Statement, completion: @escaping Completion) {
        queued.append(.statement(statement, completion))
        pump()
    }

    /// Runs `read` through the coalescer; only with `shares` (the handler asks it first).
    func run(_ read: SharedRead, completion: @escaping ReadCoalescer.Completion) {
        guard let coalescer else { preconditionFailure("a shared read on a lane that does not share") }
        queued.append(.shared(read, coalescer, completion))
        pump()
    }

    /// The request is answered: the heavy slot, if held or awaited, passes on.
    func finish() {
        if weight == .waiting || weight == .holding { lanes.release(id) }
        weight = .finished
    }

    deinit { finish() }  // a request dropped unanswered (the loop stopping) must not keep the slot

    fileprivate func resume() {
        guard weight == .waiting else { return }
        weight = .holding
        pump()
    }

    private func pump() {
        while next < queued.count, inFlight < (weight == .light ? StatementLanes.maxInFlight : 1) {
            if weight == .light, rowsRead > lanes.heavyRows {
                weight = .waiting
                if lanes.acquire(for: self) { weight = .holding } else { return }
            }
            if weight == .waiting { return }
            let item = queued[next]
            next += 1
            inFlight += 1
            switch item {
            case .statement(let statement, let completion):
                target.run(statement) { [self] result in
                    done(rows: (try? result.get())?.rowCount ?? 0)
                    completion(result)
                    pump()
                }
            case .shared(let read, let coalescer, let completion):
                target.run(read, on: coalescer) { [self] result in
                    done(rows: (try? result.get())?.count ?? 0)
                    completion(result)
                    pump()
                }
            }
        }
        if next == queued.count {  // let go of what was sent
            queued.removeAll(keepingCapacity: true)
            next = 0
        }
    }

    private func done(rows: Int) {
        inFlight -= 1
        rowsRead += rows
    }
}
