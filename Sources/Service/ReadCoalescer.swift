import Billing
import EventLoop
import Metrics
import Store

/// Sends the identical loads of concurrent query requests on one loop as one statement
/// (README, "Coalescing"). A load that may share (`SharedRead`: a child list or objects
/// by id, of a query, within its request's item budget) joins the open group of its
/// shape and its pool; before the loop next waits for I/O (a `PrepareWatcher`: the loads
/// that one turn's I/O callbacks made, such as every request whose previous level's
/// result came in) each group is sent as one statement over the union of its members'
/// keys, each key with its own organisation, and each member gets its own rows
/// (`SharedRead.split`) or the statement's error. So a load never waits for company
/// while the loop could be waiting, unless `serve --coalesce-wait-ms` says otherwise.
/// A group sent to its pool that waits there for its turn (`ConnectionPool.runInTurn`:
/// a loop runs only a few statements of queries at once) still takes the loads of its
/// shape that come meanwhile: its statement is made when its turn comes.
///
/// Only loads bound for the same pool share: a replica's request never joins a
/// statement to the primary (RULES.md section 9). A group holds at most `maxMembers`
/// loads and `maxKeys` keys; beyond them another starts. Mutations never come here.
///
/// Lifetime: created and used on its loop's thread; `close()` (when the loop stops, once
/// its requests are answered) sends what is gathered and closes the handles; loads that
/// come after are sent alone at once.
final class ReadCoalescer {
    typealias Completion = (Result<RowSlice, DatabaseError>) -> Void

    static let maxMembers = 32
    static let maxKeys = 8_192

    private struct GroupKey: Hashable {
        let pool: ObjectIdentifier
        let shape: SharedRead.Shape
    }

    private final class Group {
        let key: GroupKey
        let pool: ConnectionPool
        var members: [SharedRead] = []
        var completions: [Completion] = []
        var keyCount = 0

        init(key: GroupKey, pool: ConnectionPool) {
            self.key = key
            self.pool = pool
        }

        func add(_ read: SharedRead, _ completion: @escaping Completion) {
            members.append(read)
            completions.append(completion)
            keyCount += read.keyCount
        }

        func hasRoom(for read: SharedRead) -> Bool {
            members.count < ReadCoalescer.maxMembers && keyCount + read.keyCount <= ReadCoalescer.maxKeys
        }
    }

    private var open: [GroupKey: Group] = [:]
    /// Groups sent to their pool and waiting for their turn there, by shape, in the order
    /// they were sent: a load of their shape joins the first with room. When one of them
    /// has filled up (many requests at once), the next still takes loads; were only the
    /// first to take them, every later load of the shape would start a group of its own,
    /// a statement of one member each turn, while the full one waits.
    private var waiting: [GroupKey: [Group]] = [:]
    /// Groups that filled up, waiting to be sent with the others.
    private var full: [Group] = []
    private var prepare: PrepareWatcher!
    /// Set when loads wait for company (`waitMilliseconds` > 0).
    private let timer: Timer?
    private let waitMilliseconds: UInt64
    private var timerStarted = false
    private var closed = false
    private let coalescedLoads: Counter
    private let coalescedStatements: Counter

    /// `waitMilliseconds`: how long the first load of a turn may wait for others (tests);
    /// 0, the default, sends every group before the loop next waits.
    init(loop: EventLoop, waitMilliseconds: UInt64, metrics: ServiceMetrics) throws {
        self.waitMilliseconds = waitMilliseconds
        coalescedLoads = metrics.coalescedLoads
        coalescedStatements = metrics.coalescedStatements
        timer = waitMilliseconds > 0 ? try Timer(loop: loop) : nil
        prepare = try PrepareWatcher(loop: loop) { [unowned self] in sendAll() }
    }

    /// Adds `read`, bound for `pool`, to its group; `completion` gets its rows.
    func run(_ read: SharedRead, on pool: ConnectionPool, completion: @escaping Completion) {
        let key = GroupKey(pool: ObjectIdentifier(pool), shape: read.shape)
        if let group = waiting[key]?.first(where: { $0.hasRoom(for: read) }) { return group.add(read, completion) }
        if closed {
            let alone = Group(key: key, pool: pool)
            alone.add(read, completion)
            return send(alone)
        }
        if let group = open[key], group.keyCount + read.keyCount > Self.maxKeys {
            full.append(group)
            open[key] = nil
        }
        let group = open[key] ?? Group(key: key, pool: pool)
        open[key] = group
        group.add(read, completion)
        if group.members.count == Self.maxMembers {
            full.append(group)
            open[key] = nil
        }
        schedule()
    }

    /// Sends what is gathered, and lets later loads go alone.
    func close() {
        sendAll()
        closed = true
        prepare.close()
        timer?.close()
    }

    private func schedule() {
        guard let timer else { return prepare.start() }
        guard !timerStarted else { return }
        timerStarted = true
        timer.start(after: waitMilliseconds) { [unowned self] in
            timerStarted = false
            sendAll()
        }
    }

    /// Sends every group. A completion that fails at once (a pool that has lost its
    /// database) may make new loads meanwhile: they are sent too, before the loop waits.
    private func sendAll() {
        while !open.isEmpty || !full.isEmpty {
            let groups = full + open.values
            full.removeAll()
            open.removeAll()
            for group in groups { send(group) }
        }
        prepare.stop()
    }

    /// Sends `group` to its pool, where it takes the loads of its shape until its turn
    /// comes (or it fails first); then its members are fixed.
    private func send(_ group: Group) {
        waiting[group.key, default: []].append(group)
        group.pool.runInTurn(making: { [self] in
            stopWaiting(group)
            if group.members.count > 1 {
                coalescedLoads.increment(by: UInt64(group.members.count))
                coalescedStatements.increment()
            }
            return SharedRead.statement(for: group.members)
        }) { [self] result in
            stopWaiting(group)
            switch result {
            case .success(let rows):
                for (completion, slice) in zip(group.completions, SharedRead.split(rows, among: group.members)) {
                    completion(.success(slice))
                }
            case .failure(let error):
                for completion in group.completions { completion(.failure(error)) }
            }
        }
    }

    private func stopWaiting(_ group: Group) {
        guard var groups = waiting.removeValue(forKey: group.key) else { return }
        groups.removeAll { $0 === group }
        if !groups.isEmpty { waiting[group.key] = groups }
    }
}
