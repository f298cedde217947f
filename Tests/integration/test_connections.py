"""Clients cannot exhaust the server (RULES.md section 5 of the shared contract): a request
must arrive whole within its time from its first byte, blank lines included; at most
--max-connections connections are open, all loops together; a client that does not read
its answers stops being read, so the server's memory stays bounded.

Every socket loop here has a deadline and treats b"" from recv as the connection's end."""
import json
import select
import socket
import time

from conftest import Server, resident_kib


def post(key, query, pad=0):
    body = {"query": query}
    if pad:
        body["variables"] = {"pad": "x" * pad}
    data = json.dumps(body).encode()
    return (b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer "
            + key.encode() + b"\r\nContent-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)


def read_response(s, deadline):
    """One whole response from a keep-alive connection: (status, body); None if the
    server closed the connection first. Fails at the deadline."""
    data = b""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            if len(rest) >= length:
                return int(head.split()[1]), rest[:length]
        remaining = deadline - time.time()
        assert remaining > 0, "no whole response in time"
        s.settimeout(remaining)
        chunk = s.recv(65536)
        if not chunk:
            return None
        data += chunk


def answer(s, seconds=30):
    """The next response on `s`, which must come within `seconds`."""
    response = read_response(s, time.time() + seconds)
    assert response is not None, "the server closed the connection instead of answering"
    return response


def closed_by_server(s, deadline):
    """Waits until the server ends the connection (EOF or reset); False at the deadline.
    Any bytes it sends first are a failure: these connections are owed no answer."""
    while time.time() < deadline:
        ready, _, _ = select.select([s], [], [], max(0.0, min(0.2, deadline - time.time())))
        if not ready:
            continue
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            return True
        assert chunk == b"", f"unexpected bytes: {chunk[:80]!r}"
        return True
    return False


def test_a_client_dribbling_blank_lines_is_disconnected_within_the_request_timeout(world):
    server = Server(world["url"], "--loops", "1", "--request-timeout-ms", "1500")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            started = time.time()
            ended = None
            while ended is None and time.time() < started + 10:
                try:
                    s.sendall(b"\r\n")  # http_parser skips these without beginning a request
                except (BrokenPipeError, ConnectionResetError):
                    ended = time.time()
                    break
                if closed_by_server(s, time.time() + 0.2):
                    ended = time.time()
            assert ended is not None, "a client sending only blank lines was never disconnected"
            # 1.5 s, to the quarter second the server checks its clocks, and some slack.
            assert 1.4 <= ended - started <= 3.5, ended - started

        # The clock is for requests being read: a keep-alive connection at rest between
        # requests is not cut by it, and a request sent in pieces within the time is answered.
        key = world["keys"][(1, "read")]
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(post(key, "{ a: __typename }"))
            assert answer(s) == (200, b'{"data":{"a":"Query"}}')
            time.sleep(2.5)
            request = post(key, "{ b: __typename }")
            s.sendall(request[:20])
            time.sleep(0.5)
            s.sendall(request[20:])
            assert answer(s) == (200, b'{"data":{"b":"Query"}}')
    finally:
        server.stop()


def test_connections_beyond_max_connections_are_closed_at_once(world):
    # Two loops, one budget: the limit holds for the process, whichever loop accepts.
    server = Server(world["url"], "--loops", "2", "--max-connections", "5")
    key = world["keys"][(1, "read")]
    held = []
    try:
        for i in range(5):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            held.append(s)
            s.sendall(post(key, f"{{ n{i}: __typename }}"))
            assert answer(s)[0] == 200

        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        started = time.time()
        assert closed_by_server(extra, started + 3), "the sixth connection was not closed"
        assert time.time() - started < 1.5
        extra.close()

        for i, s in enumerate(held):  # the first five still work
            s.sendall(post(key, f"{{ again{i}: __typename }}"))
            assert answer(s) == (200, f'{{"data":{{"again{i}":"Query"}}}}'.encode())

        # A place given back is taken again (the server sees the close a moment later).
        held.pop().close()
        deadline = time.time() + 10
        while True:
            assert time.time() < deadline, "no place was given back"
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            try:
                s.sendall(post(key, "{ late: __typename }"))
                late = read_response(s, time.time() + 5)
            except (BrokenPipeError, ConnectionResetError):
                late = None
            if late is not None:
                held.append(s)
                assert late[0] == 200
                break
            s.close()
            time.sleep(0.1)
    finally:
        for s in held:
            s.close()
        server.stop()


def test_a_client_that_never_reads_its_answers_leaves_memory_bounded(world):
    server = Server(world["url"], "--loops", "1")
    key = world["keys"][(1, "read")]
    # About 1 MB of answer for 64 KB of request: one statement, then the same column
    # under 100 names for every invoice of the organisation.
    big = "{ invoices(first: 1000) { nodes { " + " ".join(f"a{i}: number" for i in range(100)) + " } } }"
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as warm:
            for _ in range(3):
                warm.sendall(post(key, big, pad=64 << 10))
                status, body = answer(warm)
                assert status == 200 and len(body) > 500_000, (status, body[:200])
        before = resident_kib(server.proc.pid)

        # 39 MB of requests, 600 MB of answers: more than the kernel's buffers on both sides hold.
        payload = b"".join(post(key, big, pad=64 << 10) for _ in range(600))
        hog = socket.socket()
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)  # little room for answers in the kernel
        hog.settimeout(5)
        hog.connect(("127.0.0.1", server.port))
        try:
            hog.setblocking(False)
            sent, last_progress, deadline = 0, time.time(), time.time() + 120
            while sent < len(payload) and time.time() - last_progress < 3:
                assert time.time() < deadline, "the server kept reading a client that reads nothing"
                try:
                    n = hog.send(payload[sent:sent + (256 << 10)])
                    sent, last_progress = sent + n, time.time()
                except BlockingIOError:
                    time.sleep(0.05)
            assert sent < len(payload), "the server read everything from a client that reads nothing"

            # Wait until the server's memory stops growing (it has stopped working for this client).
            deadline, samples = time.time() + 30, [resident_kib(server.proc.pid)]
            while time.time() < deadline:
                time.sleep(0.5)
                samples.append(resident_kib(server.proc.pid))
                if len(samples) >= 5 and max(samples[-5:]) - min(samples[-5:]) < 1024:
                    break
            grown_mib = (max(samples) - before) / 1024
            assert grown_mib < 64, f"resident memory grew by {grown_mib:.0f} MiB for one client: {samples}"

            # Everyone else is still answered, on the same loop.
            r = server.gql("{ __typename }", key=key)
            assert r.status == 200 and r.data == {"__typename": "Query"}
        finally:
            hog.close()
    finally:
        server.stop()


def test_a_client_that_resets_while_answers_are_written_does_not_kill_the_server(world):
    """Closing a socket with unread data sends a reset; the server's next write to it
    fails with EPIPE, which must cost that connection, not the process (SIGPIPE)."""
    import struct
    server = Server(world["url"], "--loops", "1")
    key = world["keys"][(1, "read")]
    big = "{ invoices(first: 1000) { nodes { " + " ".join(f"a{i}: number" for i in range(100)) + " } } }"
    try:
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
            s.sendall(b"".join(post(key, big) for _ in range(20)))
            time.sleep(0.3)  # answers are being written
            s.close()
        time.sleep(1)
        assert server.proc.poll() is None, f"the server died: exit status {server.proc.returncode}"
        assert server.gql("{ __typename }", key=key).data == {"__typename": "Query"}
        # Whether a write lands on a reset socket twice is a matter of timing; that the
        # process ignores SIGPIPE is not.
        with open(f"/proc/{server.proc.pid}/status") as f:
            ignored = int(next(line.split()[1] for line in f if line.startswith("SigIgn:")), 16)
        assert ignored & (1 << (13 - 1)), "SIGPIPE is not ignored"
    finally:
        server.stop()
