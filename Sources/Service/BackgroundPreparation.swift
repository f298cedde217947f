import Dispatch
import Engine
import EventLoop
import JSON
import Query
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Large documents are prepared (parsed, validated, planned) off the loops, on one thread
/// of the process that runs at a lower priority than the loops (RULES.md section 5: no
/// client can stall the server).
///
/// A document of thousands of fields costs tens of milliseconds to prepare, all of it
/// before the first statement; on a loop, every request of that loop waits meanwhile, at
/// each of its levels. Documents that large are not cached (`DocumentCache`), so a client
/// sending them again and again costs that much every time. Here they cost a thread the
/// kernel schedules below the loops: ordinary requests go first, and large documents use
/// what CPU is left (a few percent when the server is saturated, all of it otherwise).
///
/// Lifetime: one per process, made with the service and never stopped: its thread sleeps
/// when there is nothing to do, and ends with the process. (The thread refers to this
/// object, so it is never freed.)
public final class PreparationThread: Sendable {
    /// Jobs waiting, all loops together; past it, a large document is refused with 503.
    static let maxWaiting = 64
    /// The thread's nice value (the loops run at 0); 10 leaves a job about a tenth of a
    /// core when the loops want everything, by the kernel's weights.
    static let niceness: Int32 = 10

    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let waiting = DispatchSemaphore(value: 0)

    /// Starts the thread; it sleeps until the first job.
    public init() throws {
        let thread = try Thread.start { [self] in
            // On Linux the nice value is the thread's own: 0 here is the calling thread.
            setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, Self.niceness)
            while true {
                waiting.wait()
                let job = jobs.withLock { $0.removeFirst() }
                job()
            }
        }
        pthread_detach(thread)
    }

    /// Runs `job` on the preparation thread, after the jobs before it; false (and `job` is
    /// not run) when `maxWaiting` jobs wait already.
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        let accepted = jobs.withLock { jobs -> Bool in
            guard jobs.count < Self.maxWaiting else { return false }
            jobs.append(job)
            return true
        }
        if accepted { waiting.signal() }
        return accepted
    }
}

/// One loop's side of the preparation thread: hands it documents and runs what comes
/// back on the loop's own thread.
///
/// Lifetime: created and used on its loop's thread; `close()` (when the loop stops) closes
/// the wakeup handle, and answers that arrive later are dropped with their requests.
final class PreparationDesk {
    private let thread: PreparationThread
    private let inbox: Inbox
    private var wakeup: AsyncWakeup!
    /// What each handed-over document's request does next, by ticket.
    private var waiting: [Int: (Prepared) -> Void] = [:]
    private var nextTicket = 0

    init(loop: EventLoop, thread: PreparationThread) throws {
        self.thread = thread
        inbox = Inbox()
        wakeup = try AsyncWakeup(loop: loop) { [weak self] in self?.deliver() }
        inbox.trigger = wakeup.trigger
    }

    /// Runs `prepare` on the preparation thread and calls `then` with its result on this
    /// loop; false (and `then` is never called) when too many documents wait already.
    func prepare(_ prepare: @escaping @Sendable () -> Prepared, then: @escaping (Prepared) -> Void) -> Bool {
        let ticket = nextTicket
        let accepted = thread.submit { [inbox] in
            inbox.post(ticket, HandedOver(prepare()))
        }
        guard accepted else { return false }
        nextTicket += 1
        waiting[ticket] = then
        return true
    }

    func close() {
        inbox.close()
        wakeup.close()
        waiting = [:]
    }

    private func deliver() {
        for (ticket, prepared) in inbox.take() {
            waiting.removeValue(forKey: ticket)?(prepared.value)
        }
    }

    /// The answers on their way from the preparation thread to the loop. `post` fires
    /// the loop's wakeup under the lock that `close` takes before the handle is closed,
    /// so no answer wakes a closed handle.
    private final class Inbox: @unchecked Sendable {  // `trigger` is set once, before any post
        struct State {
            var answers: [(Int, HandedOver)] = []
            var closed = false
        }

        private let state = Mutex(State())
        var trigger: AsyncWakeup.Trigger?

        func post(_ ticket: Int, _ prepared: HandedOver) {
            state.withLock { s in
                guard !s.closed else { return }
                s.answers.append((ticket, prepared))
                trigger?.fire()
            }
        }

        func take() -> [(Int, HandedOver)] {
            state.withLock { s in
                defer { s.answers = [] }
                return s.answers
            }
        }

        func close() { state.withLock { $0.closed = true } }
    }

    /// A prepared operation passing from the preparation thread to a loop. Its plan is a
    /// tree of classes, which Swift cannot prove unshared; it is: the thread made it and
    /// keeps no reference once it has posted it. (The plan's fields refer to shapes kept
    /// with the document, `PlanShape`, which are immutable and `Sendable`.)
    private struct HandedOver: @unchecked Sendable {
        let value: Prepared
        init(_ value: Prepared) { self.value = value }
    }
}

/// A request's document made ready: valid, its operation chosen, and that operation
/// planned (or the reason it cannot be, which comes after other refusals: see
/// `GraphQLHandler.proceed`).
struct PreparedRequest {
    let valid: Preparation.ValidDocument
    let operation: OperationDefinition
    let plan: Result<OperationPlan, Preparation.RequestFailure>

    /// Every step, from `valid` when the document is known already (from the cache).
    static func make(_ text: String, _ request: ClientRequest, _ preparation: Preparation,
                     valid known: Preparation.ValidDocument? = nil) -> Prepared {
        (known.map { .success($0) } ?? preparation.validDocument(text)).flatMap { valid in
            preparation.operation(in: valid, named: request.operationName).map { operation in
                PreparedRequest(valid: valid, operation: operation,
                                plan: preparation.plan(operation, in: valid, variables: request.variables))
            }
        }
    }
}

typealias Prepared = Result<PreparedRequest, Preparation.RequestFailure>
