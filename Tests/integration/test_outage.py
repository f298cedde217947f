"""The database goes away, with the server idle and with clients sending queries
(RULES.md section 5): requests fail fast with SERVICE_UNAVAILABLE, the server retries with
back-off (under 5% of a core and a few connection attempts a second, all loops together,
while no requests come), and it answers again within 2 seconds of the database.

The server runs under `strace -f --seccomp-bpf -e trace=connect`, started by the test (so
no ptrace permission is needed and only connect() stops the server), which writes every
connect() with its time: the attempts are counted from what the process really did."""
import json
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request

from conftest import Server, canonical, cluster, cpu_seconds, psql, wait_until

class Trace:
    """connect() calls of the server, read from strace's output file."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "connect.trace")

    def wrapper(self):
        return ["strace", "-f", "--seccomp-bpf", "-e", "trace=connect", "-e", "signal=none", "-ttt", "-o", self.path]

    def connects(self, start, end, port):
        """connect() calls to the database's port between two times (seconds since the epoch)."""
        count = 0
        with open(self.path) as f:
            for line in f:
                m = re.match(r"(?:\d+\s+)?(\d+\.\d+) connect\(.*sin_port=htons\((\d+)\)", line)
                if m and int(m.group(2)) == int(port) and start <= float(m.group(1)) < end:
                    count += 1
        return count


def post(server, query, variables, key, timeout=5):
    """A GraphQL request with a short deadline; returns (seconds taken, status, error codes)."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/graphql", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    answer = json.loads(raw)
    codes = [e.get("extensions", {}).get("code") for e in answer.get("errors", [])]
    return time.monotonic() - started, status, codes


def assert_unavailable_fast(server, key, payment):
    """A mutation and a query sent now are refused with SERVICE_UNAVAILABLE within a second."""
    for query, variables in [(canonical("refund"), {"paymentId": payment, "amount": 1}),
                             (canonical("dashboard"), {"first": 3})]:
        took, status, codes = post(server, query, variables, key)
        assert codes == ["SERVICE_UNAVAILABLE"] and status in (200, 503), (status, codes)
        assert took < 1, f"answered in {took:.2f} s"


def assert_quiet(server, trace, port, seconds=5):
    """With no requests: under 5% of a core and at most a few connection attempts a second."""
    started_cpu, started = cpu_seconds(f"/proc/{server.pid}/stat"), time.time()
    time.sleep(seconds)
    used, ended = cpu_seconds(f"/proc/{server.pid}/stat") - started_cpu, time.time()
    attempts = trace.connects(started, ended, port)
    share = used / (ended - started)
    assert share < 0.05, f"{share:.1%} of a core while idle with the database down"
    # At least one: the pools keep trying (at most a second apart), and a trace that
    # counted none would prove nothing about the bound.
    assert 1 <= attempts <= 3 * seconds, f"{attempts} connection attempts in {seconds} s"
    return share, attempts / (ended - started)


def wait_for_answers(server, key, deadline_seconds):
    """Queries until one succeeds; the time it took, or fails past the deadline."""
    started = time.monotonic()
    while True:
        try:
            took, status, codes = post(server, canonical("dashboard"), {"first": 3}, key, timeout=2)
        except OSError as e:  # a poll that timed out is asked again until the deadline
            status, codes = 0, [repr(e)]
        if status == 200 and not codes:
            return time.monotonic() - started
        assert time.monotonic() - started < deadline_seconds, f"still {status} {codes} after {deadline_seconds} s"
        time.sleep(0.05)


def test_outage_idle_and_under_load(private_cluster):
    assert shutil.which("strace"), "strace is needed to count connection attempts (scripts/test installs it)"
    cluster_ = private_cluster
    key = cluster_["keys"][(1, "full")]
    port = cluster_["port"]
    payment = psql(cluster_["url"], "SELECT id FROM payment WHERE status = 'SUCCEEDED' ORDER BY id LIMIT 1")
    refunded = psql(cluster_["url"], f"SELECT amount_refunded FROM payment WHERE id = '{payment}'")
    refunds = f"SELECT count(*) FROM refund WHERE payment_id = '{payment}'"
    refund_rows = psql(cluster_["url"], refunds)
    trace = Trace(tempfile.mkdtemp())
    # Three loops, so three pools: the limits hold for the process as a whole.
    server = Server(cluster_["url"], "--loops", "3", "--pool-size", "4", wrapper=trace.wrapper())
    measured = {}
    try:
        assert wait_for_answers(server, key, 10) < 10

        # 1. The database stops while the server is idle.
        cluster("pg_stop", cluster_["data"])
        assert_unavailable_fast(server, key, payment)
        measured["idle outage"] = assert_quiet(server, trace, port)
        assert_unavailable_fast(server, key, payment)
        cluster("pg_start", cluster_["data"], port)
        measured["recovery after idle outage"] = wait_for_answers(server, key, 2)

        # 2. The database stops while 16 clients send queries.
        stop = threading.Event()
        answers = []

        def client():
            while not stop.is_set():
                try:
                    answers.append(post(server, canonical("dashboard"), {"first": 3}, key))
                except OSError as e:  # a hung or refused request counts as a failure
                    answers.append((99, 0, [repr(e)]))

        clients = [threading.Thread(target=client, daemon=True) for _ in range(16)]
        for c in clients:
            c.start()
        time.sleep(1)
        cluster("pg_stop", cluster_["data"])
        time.sleep(3)
        assert_unavailable_fast(server, key, payment)
        stop.set()
        for c in clients:
            c.join(10)
        assert not any(c.is_alive() for c in clients)
        assert answers and all(took < 5 for took, _, _ in answers), max(a[0] for a in answers)
        assert all(codes in ([], ["SERVICE_UNAVAILABLE"]) for _, _, codes in answers), \
            {str(codes) for _, _, codes in answers}
        assert any(codes == ["SERVICE_UNAVAILABLE"] for _, _, codes in answers)

        # 3. The clients have stopped; the database is still down.
        measured["outage after load"] = assert_quiet(server, trace, port)
        assert_unavailable_fast(server, key, payment)

        cluster("pg_start", cluster_["data"], port)
        measured["recovery after load"] = wait_for_answers(server, key, 2)

        # Nothing sent during the outages happened, not even in part.
        def nothing_applied():
            assert psql(cluster_["url"], f"SELECT amount_refunded FROM payment WHERE id = '{payment}'") == refunded
            assert psql(cluster_["url"], refunds) == refund_rows
        nothing_applied()
        # The server's own count agrees: a few failed attempts a second over the outage.
        def reported():
            return [(int(n), float(s)) for n, s in
                    re.findall(r"reachable again after (\d+) failed connection attempt\(s\) in ([\d.]+) s", "".join(server.log))]
        # The server's messages are written by a thread of its own: read once both are in.
        wait_until(lambda: len(reported()) >= 2, 5, "both recoveries reported")
        outages = reported()
        assert len(outages) == 2, server.log
        for n, seconds in outages:
            assert 1 <= n <= 3 * max(1.0, seconds), (n, seconds)
        nothing_applied()  # and still not, once the pools have been back a while
    finally:
        server.stop()
        print("measured:", measured)
