/// What the connections of one loop's pool are doing, apart from libpq, sockets and
/// timers: a value that takes events (a statement or lease is asked for, a connection
/// became ready, failed to connect, became free, was lost, the back-off timer fired, the
/// pool closes) and answers with actions its driver, `ConnectionPool`, runs.
///
/// Health:
/// - `healthy`: connections open on demand, up to `size`; a waiter waits for one.
/// - `backingOff`: the last connection attempt failed (or the process-wide schedule said
///   not yet). A timer is armed for the next attempt, which is made whether or not anyone
///   waits, so the pool is connected again soon after the database is. Meanwhile a waiter
///   that no open connection can serve fails at once (`SERVICE_UNAVAILABLE`) rather than
///   wait for the database.
/// - `closed`: everything fails at once.
///
/// Statements that take turns (the reads of queries) run on at most `statementLimit`
/// connections at once; other statements (an API key's lookup, a health check) and
/// leases (the transactions of mutations) may take any connection up to `size`. Waiters
/// are served in the order they came, except that a statement whose turn cannot come yet
/// lets the others pass. PostgreSQL answers best with about as many statements running as
/// it has cores: on two cores shared with the server, 4 a loop instead of 16 tightened the
/// dashboard's tail and answered more requests (RESULTS.md).
///
/// Every waiter leaves the queue by exactly one path: `.serve` or `.fail`.
struct PoolStateMachine<Waiter> {
    enum Slot: Equatable, Sendable {
        /// A connection attempt on its way.
        case connecting
        /// Connected, free.
        case idle
        /// Running a statement, or lent out.
        case busy
    }

    /// What a waiter wants a connection for.
    enum Demand: Sendable {
        /// One statement that takes its turn: counted against `statementLimit`.
        case statementInTurn
        /// Any free connection: for one statement outside the turns, or a lease.
        case anyConnection
    }

    enum Health: Equatable, Sendable {
        case healthy
        /// Until the timer fires, at this time (loop milliseconds).
        case backingOff(until: UInt64)
        case closed
    }

    enum Action {
        /// Make a connection attempt for this slot (the driver asks the process-wide
        /// schedule first and reports `connectFailed` if it says not yet).
        case connect(id: Int)
        /// Run the waiter on this connection.
        case serve(Waiter, id: Int)
        /// Give the waiter this error.
        case fail(Waiter, DatabaseError)
        /// (Re)arm the pool's one timer for this time.
        case armTimer(at: UInt64)
        case disarmTimer
        /// Close this connection (at shutdown).
        case close(id: Int)
    }

    let size: Int
    /// Connections that may run statements that take turns at once.
    let statementLimit: Int
    private(set) var health: Health = .healthy
    private(set) var slots: [(id: Int, slot: Slot)] = []
    /// Waiters by what they want, each with the number of its arrival (`arrivals`).
    private var waitingInTurn = FIFO<(arrival: Int, waiter: Waiter)>()
    private var waitingForAny = FIFO<(arrival: Int, waiter: Waiter)>()
    private var arrivals = 0
    /// The connections running a statement that took its turn now.
    private(set) var runningStatements: [Int] = []
    private var nextID = 0

    /// `statementLimit`: nil for `size`.
    init(size: Int, statementLimit: Int? = nil) {
        self.size = max(1, size)
        self.statementLimit = min(self.size, max(1, statementLimit ?? size))
    }

    var waitingCount: Int { waitingInTurn.count + waitingForAny.count }

    /// Waiters that a free connection would serve now.
    var servableCount: Int { waitingForAny.count + min(waitingInTurn.count, statementLimit - runningStatements.count) }

    func slot(_ id: Int) -> Slot? { slots.first { $0.id == id }?.slot }

    private func count(_ slot: Slot) -> Int { slots.reduce(0) { $0 + ($1.slot == slot ? 1 : 0) } }

    // MARK: events

    /// A statement or a lease wants a connection.
    mutating func requested(_ waiter: Waiter, for demand: Demand) -> [Action] {
        if health == .closed {
            return [.fail(waiter, .unavailable("the pool is closed"))]
        }
        arrivals += 1
        switch demand {
        case .statementInTurn: waitingInTurn.push((arrivals, waiter))
        case .anyConnection: waitingForAny.push((arrivals, waiter))
        }
        return dispatch()
    }

    /// A connection attempt succeeded: the database is there.
    mutating func connected(id: Int) -> [Action] {
        guard set(id, from: .connecting, to: .idle) else { return [] }
        var actions: [Action] = []
        if case .backingOff = health { actions.append(.disarmTimer) }
        health = .healthy
        return actions + dispatch()
    }

    /// A connection attempt failed (or was not allowed yet); the next one is due at
    /// `retryAt`, as the process-wide schedule says.
    mutating func connectFailed(id: Int, error: DatabaseError, retryAt: UInt64) -> [Action] {
        guard remove(id, where: { $0 == .connecting }) else { return [] }
        guard health != .closed else { return [] }
        health = .backingOff(until: retryAt)
        return [.armTimer(at: retryAt)] + dispatch(error: error)
    }

    /// A connection finished its statement, or its lease was given back clean.
    mutating func released(id: Int) -> [Action] {
        guard set(id, from: .busy, to: .idle) else { return [] }
        runningStatements.removeAll { $0 == id }
        return dispatch()
    }

    /// A connection that was open closed (the server went away, or it was given back
    /// inside a transaction).
    mutating func lost(id: Int, error: DatabaseError) -> [Action] {
        guard remove(id, where: { $0 != .connecting }) else { return [] }
        runningStatements.removeAll { $0 == id }
        return dispatch(error: error)
    }

    /// The back-off timer fired: make one attempt, whether or not anyone waits.
    mutating func timerFired() -> [Action] {
        guard case .backingOff = health else { return [] }
        guard count(.connecting) == 0 else { return [] }  // an attempt is already out; it reports
        return [.connect(id: addSlot())]
    }

    /// Shutdown: every waiter fails, every connection closes.
    mutating func close() -> [Action] {
        var actions: [Action] = []
        if case .backingOff = health { actions.append(.disarmTimer) }
        health = .closed
        actions += failAll(.unavailable("the pool is closed"))
        actions += slots.map { .close(id: $0.id) }
        slots = []
        runningStatements = []
        return actions
    }

    // MARK: dispatch

    /// Serves waiters from free connections, opens more when healthy, and when backing
    /// off with nothing open that could serve them, fails them at once.
    private mutating func dispatch(error: DatabaseError? = nil) -> [Action] {
        var actions: [Action] = []
        for i in slots.indices where slots[i].slot == .idle {
            guard let (waiter, demand) = nextServed() else { break }
            slots[i].slot = .busy
            if demand == .statementInTurn { runningStatements.append(slots[i].id) }
            actions.append(.serve(waiter, id: slots[i].id))
        }
        guard waitingCount > 0 else { return actions }
        switch health {
        case .healthy:
            // Connections for the waiters that could run now, had they one.
            var connecting = count(.connecting)
            while servableCount > connecting && slots.count < size {
                actions.append(.connect(id: addSlot()))
                connecting += 1
            }
        case .backingOff:
            // Busy connections will serve the queue when they are free; with none, nothing will.
            if count(.busy) == 0 {
                actions += failAll(.unavailable("the database cannot be reached" + (error.map { " (\($0))" } ?? "")))
            }
        case .closed:
            actions += failAll(.unavailable("the pool is closed"))
        }
        return actions
    }

    /// The waiter a free connection serves next: the first to come of those that may run now.
    private mutating func nextServed() -> (Waiter, Demand)? {
        let inTurn = runningStatements.count < statementLimit ? waitingInTurn.first?.arrival : nil
        let takeInTurn: Bool
        switch (inTurn, waitingForAny.first?.arrival) {
        case (nil, nil): return nil
        case (let a?, let b?): takeInTurn = a < b
        case (_?, nil): takeInTurn = true
        case (nil, _?): takeInTurn = false
        }
        return takeInTurn ? waitingInTurn.pop().map { ($0.waiter, .statementInTurn) }
                          : waitingForAny.pop().map { ($0.waiter, .anyConnection) }
    }

    private mutating func failAll(_ error: DatabaseError) -> [Action] {
        var actions: [Action] = []
        while let next = waitingForAny.pop() ?? waitingInTurn.pop() { actions.append(.fail(next.waiter, error)) }
        return actions
    }

    private mutating func addSlot() -> Int {
        nextID += 1
        slots.append((nextID, .connecting))
        return nextID
    }

    private mutating func set(_ id: Int, from old: Slot, to new: Slot) -> Bool {
        guard let i = slots.firstIndex(where: { $0.id == id }), slots[i].slot == old else { return false }
        slots[i].slot = new
        return true
    }

    private mutating func remove(_ id: Int, where accepted: (Slot) -> Bool) -> Bool {
        guard let i = slots.firstIndex(where: { $0.id == id }), accepted(slots[i].slot) else { return false }
        slots.remove(at: i)
        return true
    }
}

/// A first-in, first-out queue with O(1) push and pop that keeps no popped element.
struct FIFO<Element> {
    private var items: [Element?] = []
    private var head = 0

    var count: Int { items.count - head }

    mutating func push(_ item: Element) { items.append(item) }

    var first: Element? { head < items.count ? items[head] : nil }

    mutating func pop() -> Element? {
        guard head < items.count else { return nil }
        // Moved out of its slot, not copied and then overwritten with nil: a copy and a
        // destroy fewer of an element that may be a large enum (copied through its metadata).
        let item = items[head].take()
        head += 1
        if head > 32 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return item
    }
}
