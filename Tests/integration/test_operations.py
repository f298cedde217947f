"""What an operator sees and runs (RULES.md section 7), over real HTTP: /healthz, /readyz
across a database stop and start, /metrics checked by promtool and scraped by a real
Prometheus, --admin-listen, and the access log with X-Request-Id."""
import json
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Server, canonical, cluster, create_key, psql, wait_until

LOG_FIELDS = ["time", "request_id", "method", "path", "status", "duration_ms", "operation_type", "operation_name",
              "key_id", "organisation_id", "statements", "bytes", "error_codes"]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REFUND = canonical("refund")
DASHBOARD = canonical("dashboard")


def get(port, path, headers=None, timeout=10):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def access_lines(server, count, timeout=5):
    """The server's access log once it holds at least `count` lines, each parsed."""
    wait_until(lambda: len(server.access) >= count, timeout, f"{count} access-log lines")
    return [json.loads(line) for line in list(server.access)]


def line_for(server, request_id, timeout=5):
    def find():
        for line in list(server.access):
            entry = json.loads(line)
            if entry["request_id"] == request_id:
                return entry
        return None
    return wait_until(find, timeout, f"the access-log line of {request_id}")


def assert_well_formed(entry):
    assert list(entry.keys()) == LOG_FIELDS, entry
    assert TIME.match(entry["time"]), entry["time"]
    assert isinstance(entry["status"], int) and isinstance(entry["statements"], int) and isinstance(entry["bytes"], int)
    assert isinstance(entry["duration_ms"], (int, float)) and entry["duration_ms"] >= 0
    assert entry["operation_type"] in ("query", "mutation", "none")
    assert isinstance(entry["error_codes"], list)


def metric(text, name, **labels):
    """The value of one sample of the exposition text, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()) and len(found) == len(labels):
            return float(m.group(4))
    return None


# ------------------------------------------------------------------ health and readiness

def test_healthz_and_readyz_need_no_key(world):
    server = world["server"]
    status, headers, body = get(server.port, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, headers, body = get(server.port, "/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ready"})
    assert headers["Content-Type"] == "application/json"
    # No key is needed, so /readyz must not load the database: 40 at once share a few
    # statements. Each loop (one a core, the default) asks at most once every 250 ms.
    statements = lambda: metric(get(server.port, "/metrics")[2].decode(), "billgraph_db_statements_total", target="primary")
    before, started = statements(), time.monotonic()
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(lambda _: get(server.port, "/readyz")[0], range(40)))
    took = time.monotonic() - started
    assert answers == [200] * 40
    assert statements() - before <= os.cpu_count() * (math.ceil(took / 0.25) + 1), took
    refused = server.request(raw=b"{}", path="/metrics")
    assert refused.status == 405 and refused.headers["allow"] == "GET"


@pytest.mark.timeout(180)
def test_readyz_follows_the_database_within_two_seconds(private_cluster):
    c = private_cluster
    server = Server(c["url"], "--loops", "2", "--pool-size", "2")
    try:
        wait_until(lambda: get(server.port, "/readyz")[0] == 200, 10, "ready at start")
        for _ in range(2):  # twice: the second outage starts from a recovered pool
            cluster("pg_stop", c["data"])
            gone = time.monotonic()
            wait_until(lambda: get(server.port, "/readyz", timeout=3)[0] == 503, 2, "503 after the database stopped")
            assert time.monotonic() - gone < 2.5
            # Each loop answers for itself and reuses an answer for 250 ms: after that, every loop says 503.
            time.sleep(0.3)
            status, _, body = get(server.port, "/readyz")
            answer = json.loads(body)
            assert status == 503 and answer["status"] == "unready" and answer["reason"], answer
            assert "SELECT" not in answer["reason"] and "postgres" not in answer["reason"].lower()
            # Liveness is not readiness: the process still serves.
            assert get(server.port, "/healthz")[0] == 200
            cluster("pg_start", c["data"], c["port"])
            back = time.monotonic()
            wait_until(lambda: get(server.port, "/readyz", timeout=3)[0] == 200, 2, "200 after the database came back")
            assert time.monotonic() - back < 2.5
    finally:
        server.stop()


def test_readyz_is_unready_while_migrations_are_not_current(private_cluster):
    c = private_cluster
    server = Server(c["url"], "--loops", "1")
    try:
        assert get(server.port, "/readyz")[0] == 200
        # An answer is reused for 250 ms: each change is seen within a second.
        psql(c["url"], "INSERT INTO schema_migrations (version, name) VALUES (999, '999_from_a_newer_build')")
        status, _, body = wait_until(lambda: (lambda a: a[0] == 503 and a)(get(server.port, "/readyz")), 1, "unready")
        assert "does not know (999)" in json.loads(body)["reason"], body
        psql(c["url"], "DELETE FROM schema_migrations WHERE version IN (999, 6)")
        status, _, body = wait_until(lambda: (lambda a: b"not applied" in a[2] and a)(get(server.port, "/readyz")), 1,
                                     "unready for a missing migration")
        assert status == 503 and "not applied (6)" in json.loads(body)["reason"], body
    finally:
        server.stop()


# ------------------------------------------------------------------ metrics

def test_metrics_pass_promtool_and_name_every_series_of_the_contract(world):
    assert shutil.which("promtool"), "promtool is needed (scripts/test installs Debian's prometheus)"
    server = world["server"]
    key = world["keys"][(1, "full")]
    assert server.gql(DASHBOARD, {"first": 3}, key=key).status == 200
    assert server.gql("{ nope }", key=key).status == 200  # a validation error, counted by code
    status, headers, body = get(server.port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    checked = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    text = body.decode()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert types == {**types, **{
        "billgraph_http_requests_total": "counter", "billgraph_http_request_duration_seconds": "histogram",
        "billgraph_graphql_errors_total": "counter", "billgraph_db_statements_total": "counter",
        "billgraph_db_statement_duration_seconds": "histogram", "billgraph_db_pool_connections": "gauge",
        "billgraph_db_pool_waiting": "gauge", "billgraph_open_connections": "gauge",
        "billgraph_mutations_total": "counter", "billgraph_transaction_retries_total": "counter",
        "billgraph_event_loop_lag_seconds": "histogram", "process_cpu_seconds_total": "counter",
        "process_resident_memory_bytes": "gauge", "process_open_fds": "gauge"}}
    assert metric(text, "billgraph_http_requests_total", code="200", operation_type="query") >= 1
    # A document that does not validate has no operation: its type is none.
    assert metric(text, "billgraph_http_requests_total", code="200", operation_type="none") >= 1
    assert metric(text, "billgraph_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED") >= 1
    assert metric(text, "billgraph_db_statements_total", target="primary") >= 4
    assert metric(text, "billgraph_db_pool_connections", target="primary", state="idle") >= 1
    assert metric(text, "billgraph_open_connections") >= 1  # this scrape's own
    assert metric(text, "process_resident_memory_bytes") > 1 << 20
    assert metric(text, "process_open_fds") > 3
    # Each loop's probe fires every 100 ms.
    wait_until(lambda: metric(get(server.port, "/metrics")[2].decode(), "billgraph_event_loop_lag_seconds_count") > 0,
               5, "loop lag observed")
    # The buckets the contract's figures need.
    les = lambda name: re.findall(rf'^{name}_bucket{{.*le="([^"]+)"}}', text, re.M)
    assert {"0.001", "10", "+Inf"} <= set(les("billgraph_http_request_duration_seconds"))
    assert {"0.0001", "5", "+Inf"} <= set(les("billgraph_db_statement_duration_seconds"))
    assert {"0.0001", "1", "+Inf"} <= set(les("billgraph_event_loop_lag_seconds"))


def prometheus_query(port, expression):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=5) as r:
        answer = json.loads(r.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@pytest.mark.timeout(180)
def test_a_real_prometheus_scrapes_the_numbers_that_were_sent(private_cluster):
    assert shutil.which("prometheus"), "prometheus is needed (scripts/test installs Debian's prometheus)"
    c = private_cluster
    key = c["keys"][(1, "full")]
    # One loop: one key cache, so the key is looked up exactly once.
    server = Server(c["url"], "--loops", "1")
    directory = tempfile.mkdtemp()
    prom_port = free_port()
    with open(os.path.join(directory, "prometheus.yml"), "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: billgraph
    static_configs:
      - targets: ['127.0.0.1:{server.port}']
""")
    prometheus = subprocess.Popen(["prometheus", f"--config.file={directory}/prometheus.yml",
                                   f"--storage.tsdb.path={directory}/data", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def scraped(expression):
            try:
                return prometheus_query(prom_port, expression)
            except OSError:
                return None
        wait_until(lambda: scraped('up{job="billgraph"} == 1'), 60, "Prometheus scraping billgraph")

        # Known traffic: 12 dashboards, 5 invoice pages, 3 rejected documents, 2 without a key.
        statements = 0
        for _ in range(12):
            r = server.gql(DASHBOARD, {"first": 3}, key=key)
            assert r.status == 200 and not r.errors
            statements += int(r.headers["x-billgraph-statements"])
        for _ in range(5):
            r = server.gql("{ invoices(first: 5) { edges { node { id } } } }", key=key)
            assert r.status == 200 and not r.errors
            statements += int(r.headers["x-billgraph-statements"])
        for _ in range(3):
            assert server.gql("{ nope }", key=key).status == 200
        for _ in range(2):
            assert server.gql("{ __typename }").status == 401
        statements += 1  # the key's one lookup (remembered for a few seconds after)

        def settled():
            found = scraped("sum(billgraph_http_requests_total)")
            return found and float(found[0]["value"][1]) == 22 and found
        wait_until(settled, 20, "Prometheus holding the 22 requests")
        by_labels = {(s["metric"]["code"], s["metric"]["operation_type"]): float(s["value"][1])
                     for s in scraped("billgraph_http_requests_total")}
        # A document that does not validate has no operation: its type is none.
        assert by_labels == {("200", "query"): 17, ("200", "none"): 3, ("401", "none"): 2}, by_labels
        assert all(s["metric"]["job"] == "billgraph" for s in scraped("billgraph_http_requests_total"))
        db = scraped('billgraph_db_statements_total{target="primary"}')
        assert float(db[0]["value"][1]) == statements, (db, statements)
        errors = scraped('billgraph_graphql_errors_total{code="GRAPHQL_VALIDATION_FAILED"}')
        assert float(errors[0]["value"][1]) == 3
        assert float(scraped('sum(billgraph_http_request_duration_seconds_count{code="200"})')[0]["value"][1]) == 20
    finally:
        prometheus.terminate()
        prometheus.wait(20)
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_admin_listen_moves_the_three_endpoints(private_cluster):
    c = private_cluster
    admin_port = free_port()
    server = Server(c["url"], "--loops", "2", "--admin-listen", f"127.0.0.1:{admin_port}")
    try:
        wait_until(lambda: f"operator endpoints on http://127.0.0.1:{admin_port}/" in server.log_text(), 5, "the admin address logged")
        for path in ["/healthz", "/readyz", "/metrics"]:
            assert get(admin_port, path)[0] == 200, path
            assert get(server.port, path)[0] == 404, path
        assert get(admin_port, "/graphql")[0] == 404
        key = c["keys"][(1, "full")]
        assert server.gql(DASHBOARD, {"first": 1}, key=key).status == 200
        text = get(admin_port, "/metrics")[2].decode()
        assert metric(text, "billgraph_http_requests_total", code="200", operation_type="query") == 1
    finally:
        server.stop()


# ------------------------------------------------------------------ access log and request ids

def test_request_ids_are_taken_or_made_and_echoed(world):
    server = world["server"]
    key = world["keys"][(1, "full")]
    r = server.request({"query": "{ __typename }"}, key=key, headers={"X-Request-Id": "trace-42/a b"})
    assert r.headers["x-request-id"] == "trace-42/a b"
    assert line_for(server, "trace-42/a b")["status"] == 200
    made = set()
    for bad in ["x" * 129, "caf\u00e9".encode().decode("latin-1"), None]:
        r = server.request({"query": "{ __typename }"}, key=key, headers={"X-Request-Id": bad} if bad else {})
        rid = r.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid) and rid != bad, rid
        made.add(rid)
        assert line_for(server, rid)["path"] == "/graphql"
    assert len(made) == 3
    assert get(server.port, "/healthz", {"X-Request-Id": "probe-1"})[1]["X-Request-Id"] == "probe-1"
    ok = "x" * 128
    assert server.request({"query": "{ __typename }"}, key=key, headers={"X-Request-Id": ok}).headers["x-request-id"] == ok


@pytest.mark.timeout(180)
def test_every_access_log_line_is_complete_and_right_and_tells_no_secret(private_cluster):
    c = private_cluster
    full, writer = c["keys"][(1, "full")], c["keys"][(1, "writer")]
    organisation = psql(c["url"], "SELECT id FROM organisation LIMIT 1")
    payment = psql(c["url"], "SELECT id FROM payment WHERE status = 'SUCCEEDED' ORDER BY id LIMIT 1")
    customer_names = psql(c["url"], "SELECT name FROM customer").splitlines()
    customer_emails = [e for e in psql(c["url"], "SELECT coalesce(email, '') FROM customer").splitlines() if e]
    server = Server(c["url"], "--loops", "2")
    try:
        # A query, with variables whose values must not be logged.
        r = server.request({"query": DASHBOARD, "variables": {"first": 4}, "operationName": "Dashboard"}, key=full,
                           headers={"X-Request-Id": "q-1"})
        assert r.status == 200 and not r.errors, r.raw
        q = line_for(server, "q-1")
        assert_well_formed(q)
        assert (q["method"], q["path"], q["status"], q["operation_type"]) == ("POST", "/graphql", 200, "query")
        assert q["operation_name"] == "Dashboard"
        assert q["organisation_id"] == organisation and re.fullmatch(r"[0-9a-f-]{36}", q["key_id"])
        assert q["statements"] == int(r.headers["x-billgraph-statements"]) > 0
        assert q["bytes"] == len(r.raw) and q["error_codes"] == []

        # A query over GET: the query string (with its variables) is not logged.
        r = server.request(None, key=full, method="GET", headers={"X-Request-Id": "g-1"},
                           query_string="?" + urllib.parse.urlencode({"query": "query($id: ID!) { customer(id: $id) { id } }",
                                                                      "variables": json.dumps({"id": "VAR-SECRET-7331"})}))
        assert r.status == 200
        g = line_for(server, "g-1")
        assert (g["method"], g["path"], g["operation_type"]) == ("GET", "/graphql", "query")

        # A mutation, applied, with an idempotency key that is a secret of the client's.
        r = server.request({"query": REFUND, "variables": {"paymentId": payment, "amount": 1, "key": "idem-SECRET-77"}},
                           key=writer, headers={"X-Request-Id": "m-1"})
        assert r.status == 200 and not r.errors, r.raw
        m = line_for(server, "m-1")
        assert_well_formed(m)
        assert (m["operation_type"], m["operation_name"], m["status"], m["error_codes"]) == ("mutation", "Refund", 200, [])
        assert m["statements"] == int(r.headers["x-billgraph-statements"]) > 0
        # A mutation refused: the amount is too large.
        r = server.request({"query": REFUND, "variables": {"paymentId": payment, "amount": 10 ** 12}}, key=writer,
                           headers={"X-Request-Id": "m-2"})
        m2 = line_for(server, "m-2")
        assert m2["operation_type"] == "mutation" and m2["error_codes"] == [r.codes()[0]] and r.codes(), r.raw

        # Refusals: no key, an unknown key, a body too large, a rejected document.
        r = server.request({"query": "{ __typename }"}, headers={"X-Request-Id": "r-401"})
        assert r.status == 401
        e = line_for(server, "r-401")
        assert_well_formed(e)
        assert (e["status"], e["error_codes"], e["key_id"], e["operation_type"]) == (401, ["UNAUTHENTICATED"], None, "none")
        r = server.request({"query": "{ __typename }"}, key="bg_unknown_0123456789abcdef", headers={"X-Request-Id": "r-401b"})
        assert line_for(server, "r-401b")["status"] == 401
        r = server.request(raw=b'{"query": "' + b"a" * (1 << 20) + b'"}', key=full, headers={"X-Request-Id": "r-413"})
        assert r.status == 413
        e = line_for(server, "r-413")
        assert_well_formed(e)
        assert (e["status"], e["method"], e["path"], e["statements"]) == (413, "POST", "/graphql", 0)
        assert r.headers["x-request-id"] == "r-413"
        r = server.request({"query": "{ nope }"}, key=full, headers={"X-Request-Id": "r-doc"})
        assert line_for(server, "r-doc")["error_codes"] == ["GRAPHQL_VALIDATION_FAILED"]
        # 429: a key whose budget (1 point a minute) is smaller than the operation's cost.
        limited_id, limited = create_key(c["url"], organisation, "billing:read", "--rate-limit", "1")
        r = server.request({"query": "{ customers(first: 1) { totalCount } }"}, key=limited, headers={"X-Request-Id": "r-429"})
        assert r.status == 429, r.raw
        e = line_for(server, "r-429")
        assert_well_formed(e)
        assert (e["status"], e["error_codes"], e["statements"], e["key_id"]) == (429, ["RATE_LIMITED"], 0, limited_id)

        # A database outage: the line says SERVICE_UNAVAILABLE.
        cluster("pg_stop", c["data"])
        try:
            r = server.request({"query": DASHBOARD, "variables": {"first": 2}}, key=full, headers={"X-Request-Id": "o-1"})
            o = line_for(server, "o-1")
            assert_well_formed(o)
            assert o["error_codes"] == ["SERVICE_UNAVAILABLE"] and o["status"] == r.status, (o, r.status, r.raw)
            r = server.request({"query": REFUND, "variables": {"paymentId": payment, "amount": 1}}, key=writer,
                               headers={"X-Request-Id": "o-2"})
            o = line_for(server, "o-2")
            assert o["error_codes"] == ["SERVICE_UNAVAILABLE"] and o["status"] == r.status, (o, r.raw)
        finally:
            cluster("pg_start", c["data"], c["port"])

        # Every line parses and has every field; none holds a key, a variable's value or customer data.
        lines = list(server.access)
        assert len(lines) == 11
        for line in lines:
            assert_well_formed(json.loads(line))
            for secret in [full, writer, limited, "bg_unknown_0123456789abcdef", "idem-SECRET-77", "VAR-SECRET-7331", payment,
                           *customer_names, *customer_emails]:
                assert secret not in line, (secret, line)
        assert not any(line.strip().startswith("{") for line in server.log), "access-log lines went to standard error"
    finally:
        server.stop()


def test_a_reader_that_stops_reading_the_access_log_stalls_no_request(private_cluster):
    """Standard output is a pipe that nobody reads for 3,000 requests, over fifteen times what
    the pipe holds: written by the loop, the log stalled the server after about 200 lines.
    Every request is answered in time; once the pipe is read, every line is there, in order."""
    c = private_cluster
    server = Server(c["url"], "--loops", "1", access_paused=True)
    try:
        # Without a key: answered 401 without the database, and logged (probes are not).
        path = "/graphql?query=%7B__typename%7D&padding=" + "p" * 100
        for n in range(3000):
            status, _, _ = get(server.port, path, headers={"X-Request-Id": f"stalled-{n}"}, timeout=5)
            assert status == 401, n
        server.resume_access()
        lines = access_lines(server, 3000, timeout=20)
        assert [entry["request_id"] for entry in lines] == [f"stalled-{n}" for n in range(3000)]
        assert metric(get(server.port, "/metrics")[2].decode(), "billgraph_access_log_dropped_lines_total") == 0
    finally:
        server.stop()


def test_a_reader_that_stops_reading_standard_error_stalls_no_request(private_cluster):
    """The statement trace writes a line a statement to standard error; with nobody reading
    it for 2,000 requests (over 600 KB, ten times what the pipe holds) every request is
    answered in time, and once it is read every line is there."""
    c = private_cluster
    key = c["keys"][(1, "full")]
    server = Server(c["url"], "--loops", "1", "--access-log", "off", env={"BILLGRAPH_TRACE_SQL": "1"}, log_paused=True)
    try:
        query = "{ customers(first: 1) { nodes { id name email } } }"
        for n in range(2000):
            r = server.request({"query": query}, key=key)
            assert r.status == 200 and not r.errors, (n, r.raw)
        server.resume_log()
        wait_until(lambda: server.log_text().count("trace: ") >= 2000, 20, "every statement's trace line")
        assert "dropped" not in server.log_text()
    finally:
        server.stop()


def test_access_log_off_writes_nothing_on_standard_output(private_cluster):
    c = private_cluster
    server = Server(c["url"], "--access-log", "off")
    try:
        assert server.gql("{ __typename }", key=c["keys"][(1, "full")]).status == 200
        assert server.gql("{ __typename }").status == 401
        time.sleep(0.5)
        assert server.access == []
    finally:
        server.stop()


def test_mutations_are_counted_applied_replayed_or_refused(private_cluster):
    c = private_cluster
    writer = c["keys"][(1, "writer")]
    payment = psql(c["url"], "SELECT id FROM payment WHERE status = 'SUCCEEDED' ORDER BY id LIMIT 1")
    server = Server(c["url"], "--loops", "2")

    def counts():
        text = get(server.port, "/metrics")[2].decode()
        return {(m, o): metric(text, "billgraph_mutations_total", mutation=m, outcome=o)
                for m in ["refundPayment", "createCreditNote", "voidCreditNote", "updateRefund"]
                for o in ["applied", "replayed", "refused"]}

    try:
        before = counts()
        assert set(before.values()) == {0}, before
        refund = lambda amount, key=None: server.gql(REFUND, {"paymentId": payment, "amount": amount, "key": key}, key=writer)
        assert not refund(1, "count-me").errors
        assert not refund(1, "count-me").errors  # the same key and input: the first answer again
        assert not refund(1).errors              # no key: applied
        assert refund(2_000_000_000).codes() == ["AMOUNT_EXCEEDS_REFUNDABLE"]
        assert refund(2, "count-me").codes() == ["IDEMPOTENCY_KEY_REUSED"]
        two = server.gql("""mutation($p: ID!) { a: refundPayment(input: {paymentId: $p, amount: 1, idempotencyKey: "count-me"}) { refund { id } }
                                                b: refundPayment(input: {paymentId: $p, amount: 1, idempotencyKey: "new-one"}) { refund { id } } }""",
                         {"p": payment}, key=writer)
        assert not two.errors, two.raw
        after = counts()
        changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        assert changed == {("refundPayment", "applied"): 3, ("refundPayment", "replayed"): 2,
                           ("refundPayment", "refused"): 2}, changed
        assert int(psql(c["url"], "SELECT count(*) FROM idempotency_key WHERE key IN ('count-me', 'new-one')")) == 2
    finally:
        server.stop()


def test_the_server_runs_with_a_malloc_cache_of_4096_blocks_a_size_and_keeps_a_setting_it_is_given(world):
    """`serve` starts itself again, the same process, with glibc's per-thread cache set
    larger (Billgraph.swift, `startAgainWithLargerMallocCache`); tunables already set are
    kept, and a cache size set already is the one it runs with."""
    def started_with(server, tunables):
        # The environment the process was started with. glibc splits GLIBC_TUNABLES in
        # place at its colons as it reads it, so the block is read with every NUL a colon.
        with open(f"/proc/{server.pid}/environ", "rb") as f:
            block = b":" + f.read().replace(b"\0", b":")
        return b":GLIBC_TUNABLES=" + tunables + b":" in block and b":GLIBC_TUNABLES=" + tunables + b":glibc" not in block

    cases = [
        (None, b"glibc.malloc.tcache_count=4096"),
        ("", b"glibc.malloc.tcache_count=4096"),
        ("glibc.malloc.arena_max=2", b"glibc.malloc.arena_max=2:glibc.malloc.tcache_count=4096"),
        ("glibc.malloc.tcache_count=100", b"glibc.malloc.tcache_count=100"),
    ]
    for given, expected in cases:
        server = Server(world["url"], env={"GLIBC_TUNABLES": given})
        try:
            assert started_with(server, expected), given
            assert server.proc.poll() is None and server.pid == server.proc.pid
            assert server.gql("{ __typename }", key=world["keys"][(1, "full")]).data == {"__typename": "Query"}
        finally:
            server.stop()
