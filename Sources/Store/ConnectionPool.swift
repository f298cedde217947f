import EventLoop

/// The PostgreSQL connections of one event loop. Statements wait in order for an idle
/// connection; connections open on demand up to `size`. When the database cannot be
/// reached, waiting statements fail at once with `.unavailable` rather than hang, and
/// the next statement tries to connect again, so the service recovers by itself.
public final class ConnectionPool {
    private let loop: EventLoop
    private let conninfo: String
    private let size: Int
    private var connections: [AsyncConnection] = []
    /// Statements waiting for a connection, oldest first. An entry leaves the queue as it is
    /// sent, so nothing of a finished request stays reachable from here.
    private var waiting = FIFO<(Statement, (Result<ResultSet, DatabaseError>) -> Void)>()

    public init(loop: EventLoop, conninfo: String, size: Int) {
        self.loop = loop
        self.conninfo = conninfo
        self.size = max(1, size)
    }

    /// Runs one statement on some connection of the pool.
    public func run(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        waiting.push((statement, completion))
        dispatch()
    }

    private func dispatch() {
        for connection in connections where connection.state == .idle {
            guard let (statement, completion) = waiting.pop() else { break }
            connection.send(statement, completion: completion)
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

    private func changed(_ connection: AsyncConnection) {
        if connection.state == .closed {
            connections.removeAll { $0 === connection }
            // Nothing is connected and nothing is on its way: fail fast.
            if !connections.contains(where: { $0.state != .closed }) { failWaiting() }
        }
        dispatch()
    }

    private func failWaiting() {
        while let (_, completion) = waiting.pop() {
            completion(.failure(.unavailable("the database cannot be reached")))
        }
    }

    /// Closes every connection (at shutdown).
    public func close() {
        for c in connections { c.close() }
        connections = []
        failWaiting()
    }
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
