import EventLoop

/// The PostgreSQL connections of one event loop. Statements wait in order for an idle
/// connection; connections open on demand up to `size`. When the database cannot be
/// reached, waiting statements fail at once with `.unavailable` rather than hang, and
/// the next statement tries to connect again, so the service recovers by itself.
///
/// A transaction needs one connection for several statements: `lease` hands one out,
/// and nothing else runs on it until the lease is released.
public final class ConnectionPool {
    private let loop: EventLoop
    private let conninfo: String
    private let size: Int
    private var connections: [AsyncConnection] = []
    /// What waits for a connection, oldest first. An entry leaves the queue as it is
    /// served, so nothing of a finished request stays reachable from here.
    private var waiting = FIFO<Waiter>()

    private enum Waiter {
        case statement(Statement, (Result<ResultSet, DatabaseError>) -> Void)
        case lease((Result<Lease, DatabaseError>) -> Void)

        func fail(_ error: DatabaseError) {
            switch self {
            case .statement(_, let completion): completion(.failure(error))
            case .lease(let completion): completion(.failure(error))
            }
        }
    }

    public init(loop: EventLoop, conninfo: String, size: Int) {
        self.loop = loop
        self.conninfo = conninfo
        self.size = max(1, size)
    }

    /// Runs one statement on some connection of the pool.
    public func run(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        waiting.push(.statement(statement, completion))
        dispatch()
    }

    /// Hands out one connection for the caller alone until it calls `Lease.release()`.
    public func lease(completion: @escaping (Result<Lease, DatabaseError>) -> Void) {
        waiting.push(.lease(completion))
        dispatch()
    }

    private func dispatch() {
        for connection in connections where connection.state == .idle && !connection.leased {
            guard let waiter = waiting.pop() else { break }
            switch waiter {
            case .statement(let statement, let completion):
                connection.send(statement, completion: completion)
            case .lease(let completion):
                connection.leased = true
                completion(.success(Lease(connection: connection) { [weak self] in self?.returned(connection) }))
            }
        }
        let connecting = connections.filter { $0.state == .connecting }.count
        if waiting.count > connecting && connections.count < size {
            open()
        }
    }

    private func open() {
        let connection = AsyncConnection(loop: loop, conninfo: conninfo) { [weak self] c in self?.changed(c) }
        if connection.state == .closed {
            failWaiting()
        } else {
            connections.append(connection)
        }
    }

    private func returned(_ connection: AsyncConnection) {
        connection.leased = false
        dispatch()
    }

    private func changed(_ connection: AsyncConnection) {
        if connection.state == .closed {
            connections.removeAll { $0 === connection }
            // Nothing is connected and nothing is on its way: fail fast.
            if !connections.contains(where: { $0.state != .closed }) { failWaiting() }
        }
        dispatch()
    }

    private func failWaiting() {
        while let waiter = waiting.pop() {
            waiter.fail(.unavailable("the database cannot be reached"))
        }
    }

    /// Closes every connection (at shutdown).
    public func close() {
        for c in connections { c.close() }
        connections = []
        failWaiting()
    }
}

/// One connection lent to one caller (a transaction) until `release()`, which must be
/// called exactly once. Statements run on it one after another, in the order sent: the
/// loads of one level of a query go out together, so they wait here for their turn.
public final class Lease {
    private let connection: AsyncConnection
    private var onRelease: (() -> Void)?
    private var queued = FIFO<(Statement, (Result<ResultSet, DatabaseError>) -> Void)>()
    private var running = false

    init(connection: AsyncConnection, onRelease: @escaping () -> Void) {
        self.connection = connection
        self.onRelease = onRelease
    }

    public func run(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        queued.push((statement, completion))
        sendNext()
    }

    private func sendNext() {
        guard !running, let (statement, completion) = queued.pop() else { return }
        running = true
        connection.send(statement) { [self] result in
            running = false
            completion(result)
            sendNext()
        }
    }

    /// Gives the connection back. A connection left busy or in a transaction is closed
    /// instead, so no half-done work can reach the next user.
    public func release() {
        guard let onRelease else { return }
        self.onRelease = nil
        let clean = connection.state == .idle && connection.isIdleOutsideTransaction
        if !clean && connection.state != .closed { connection.fail(.unavailable("released busy or inside a transaction")) }
        onRelease()
    }

    deinit { release() }
}

/// A first-in, first-out queue with O(1) push and pop that keeps no popped element.
struct FIFO<Element> {
    private var items: [Element?] = []
    private var head = 0

    var count: Int { items.count - head }

    mutating func push(_ item: Element) { items.append(item) }

    mutating func pop() -> Element? {
        guard head < items.count else { return nil }
        let item = items[head]
        items[head] = nil
        head += 1
        if head > 32 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return item
    }
}
