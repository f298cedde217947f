"""A database that goes down and comes back: requests fail fast with SERVICE_UNAVAILABLE,
no mutation is half-applied, and the service recovers by itself."""
import subprocess
import time

import pytest

from conftest import Server, canonical, cluster, psql


def test_database_down_fails_fast_and_the_service_recovers(private_cluster):
    key = private_cluster["keys"][(1, "full")]
    server = Server(private_cluster["url"])
    try:
        ok = server.gql(canonical("dashboard"), {"first": 3}, key=key)
        assert not ok.errors
        payment = psql(private_cluster["url"], "SELECT id FROM payment WHERE status = 'SUCCEEDED' ORDER BY id LIMIT 1")

        cluster("pg_stop", private_cluster["data"])
        for _ in range(3):
            started = time.time()
            r = server.gql(canonical("dashboard"), {"first": 3}, key=key)
            assert time.time() - started < 5
            assert r.codes() == ["SERVICE_UNAVAILABLE"], r.raw
            assert "SELECT" not in r.raw.decode() and "data" not in r.json or r.json.get("data") is None
        refund = server.gql(canonical("refund"), {"paymentId": payment, "amount": 1}, key=key)
        assert refund.codes() == ["SERVICE_UNAVAILABLE"]

        cluster("pg_start", private_cluster["data"], private_cluster["port"])
        deadline = time.time() + 30
        while True:
            r = server.gql(canonical("dashboard"), {"first": 3}, key=key)
            if not r.errors:
                break
            assert time.time() < deadline, r.raw
            time.sleep(0.5)
        assert r.data["customers"]["nodes"] == ok.data["customers"]["nodes"]
        # The refund sent while the database was down did not happen, not even in part.
        assert psql(private_cluster["url"], f"SELECT amount_refunded FROM payment WHERE id = '{payment}'") == \
            psql(private_cluster["url"], f"SELECT COALESCE(sum(amount), 0) FROM refund WHERE payment_id = '{payment}'")
    finally:
        server.stop()


def test_several_loops_serve_and_stop_together(world):
    from concurrent.futures import ThreadPoolExecutor
    server = Server(world["url"], "--loops", "3", "--pool-size", "2")
    try:
        key = world["keys"][(1, "read")]
        with ThreadPoolExecutor(max_workers=12) as pool:
            responses = list(pool.map(lambda _: server.gql(canonical("dashboard"), {"first": 5}, key=key), range(60)))
        assert all(r.status == 200 and not r.errors for r in responses)
        assert len({json_of(r) for r in responses}) == 1  # every loop answers the same
    finally:
        server.proc.terminate()
        assert server.proc.wait(10) == 0  # SIGTERM stops every loop and the process exits cleanly


def json_of(response):
    import json
    return json.dumps(response.data, sort_keys=True)


def test_sigterm_drains_requests_in_flight(world):
    import socket
    import threading
    url = world["url"]
    org = world["model"].orgs[0]
    payment = psql(url, f"SELECT id FROM payment WHERE organisation_id = '{org}' AND status = 'SUCCEEDED' "
                        "AND amount > amount_refunded ORDER BY id DESC LIMIT 1")
    server = Server(url, "--loops", "1")
    holder = subprocess.Popen(["psql", url, "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        # Hold the payment's row lock, so that a refund of it waits inside the database.
        holder.stdin.write(f"BEGIN; SELECT id FROM payment WHERE id = '{payment}' FOR UPDATE; \\echo locked\n")
        holder.stdin.flush()
        seen = []
        while (line := holder.stdout.readline().strip()) != "locked":
            seen.append(line)
        assert payment in seen
        answer = {}
        request = threading.Thread(target=lambda: answer.update(r=server.gql(
            canonical("refund"), {"paymentId": payment, "amount": 1}, key=world["keys"][(1, "full")])))
        request.start()
        deadline = time.time() + 20
        while psql(url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%bg_refund_payment%'") != "1":
            assert time.time() < deadline, "the refund never reached the database"
            time.sleep(0.05)
        server.proc.terminate()
        time.sleep(0.5)
        assert server.proc.poll() is None  # still draining: the refund is in flight
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        holder.stdin.write("ROLLBACK;\n")
        holder.stdin.flush()
        request.join(30)
        r = answer["r"]
        assert r.status == 200 and not r.errors and r.data["refundPayment"]["refund"]["amount"] == 1
        assert server.proc.wait(10) == 0
    finally:
        holder.kill()
        if server.proc.poll() is None:
            server.proc.kill()
