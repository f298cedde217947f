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
    private var waiting: [(Statement, (Result<ResultSet, DatabaseError>) -> Void)] = []
    private var waitingStart = 0
    /// Statements sent since the pool started; tests read it to count statements per request.
    public private(set) var statementsSent = 0

    public init(loop: EventLoop, conninfo: String, size: Int) {
        self.loop = loop
        self.conninfo = conninfo
        self.size = max(1, size)
    }

    /// Runs one statement on some connection of the pool.
    public func run(_ statement: Statement, completion: @escaping (Result<ResultSet, DatabaseError>) -> Void) {
        waiting.append((statement, completion))
        dispatch()
    }

    private var waitingCount: Int { waiting.count - waitingStart }

    private func dispatch() {
        for connection in connections where connection.state == .idle && waitingCount > 0 {
            let (statement, completion) = waiting[waitingStart]
            waitingStart += 1
            statementsSent += 1
            connection.send(statement, completion: completion)
        }
        if waitingStart > 64 && waitingStart * 2 > waiting.count {
            waiting.removeFirst(waitingStart)
            waitingStart = 0
        }
        let connecting = connections.filter { $0.state == .connecting }.count
        if waitingCount > connecting && connections.count < size {
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
        let failed = waiting[waitingStart...]
        waiting = []
        waitingStart = 0
        for (_, completion) in failed { completion(.failure(.unavailable("the database cannot be reached"))) }
    }

    /// Closes every connection (at shutdown).
    public func close() {
        for c in connections { c.close() }
        connections = []
        failWaiting()
    }
}
