"""What more than one database and process give on this machine (SCALING.md, RULES.md
section 9): the dashboard query against the primary alone, read from a hot standby,
through PgBouncer (transaction pooling, --prepared-statements off), and spread over two
server processes on one port; refunds; and what Billgraph-Min-LSN costs a read made
right after a write. Run by benchmarks/replicas (release build, private clusters).

Environment: BILLGRAPH_BIN, BENCH_PRIMARY_URL, BENCH_STANDBY_URL, BENCH_BOUNCER_PORT,
BENCH_KEY_READ, BENCH_KEY_FULL, BENCH_SECONDS (default 10)."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ["BILLGRAPH_BIN"]
PRIMARY = os.environ["BENCH_PRIMARY_URL"]
STANDBY = os.environ["BENCH_STANDBY_URL"]
BOUNCER = re.sub(r"port=\d+", f"port={os.environ['BENCH_BOUNCER_PORT']}", PRIMARY)
READ, FULL = os.environ["BENCH_KEY_READ"], os.environ["BENCH_KEY_FULL"]
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROOT = os.path.join(os.path.dirname(__file__), "..")
DASHBOARD = open(os.path.join(ROOT, "schema", "queries", "dashboard.graphql")).read()


def serve(url, *options, port=0):
    proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--database-url", url, "--access-log", "off",
                             *options], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
        if m:
            time.sleep(1.5)  # the replica watch's first check
            return proc, int(m.group(1))
    raise RuntimeError("the server did not start")


def stop(*procs):
    for proc in procs:
        proc.terminate()
        proc.wait(15)


def wrk(port, body, key, connections=32):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    payload = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
    script.write(f'wrk.method = "POST"\nwrk.body = "{payload}"\n'
                 f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer {key}"\n')
    script.close()
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{SECONDS}s", "--latency", "-s", script.name,
                          f"http://127.0.0.1:{port}/graphql"], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"Latency Distribution[\s\S]*?99%\s+(\S+)", out).group(1)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, p99, int(bad.group(1)) if bad else 0


def post(port, body, key, headers=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}",
                                              **(headers or {})})
    with urllib.request.urlopen(request) as r:
        return dict(r.headers), json.loads(r.read())


def dashboard_rows():
    body = {"query": DASHBOARD, "variables": {"first": 25}}
    rows = []
    for label, url, options in [("primary alone", PRIMARY, ()),
                                ("read from the standby", PRIMARY, ("--replica-url", STANDBY)),
                                ("primary alone, --prepared-statements off", PRIMARY, ("--prepared-statements", "off")),
                                ("through PgBouncer, --prepared-statements off", BOUNCER, ("--prepared-statements", "off"))]:
        proc, port = serve(url, *options)
        try:
            served = post(port, body, READ)[0]["Billgraph-Served-By"]
            rows.append((label, served, *wrk(port, body, READ)))
        finally:
            stop(proc)
    # Two processes of one loop each on one port, against one process of two loops.
    first, port = serve(PRIMARY, "--reuse-port", "--loops", "1")
    second, _ = serve(PRIMARY, "--reuse-port", "--loops", "1", port=port)
    try:
        rows.append(("two processes of one loop, one port", "primary", *wrk(port, body, READ)))
    finally:
        stop(first, second)
    return rows


def payments(count):
    out = subprocess.run(["psql", PRIMARY, "-tAc", "SELECT p.id FROM payment p JOIN api_key k ON k.organisation_id = p.organisation_id "
                          f"WHERE k.key_hash = sha256(convert_to('{FULL}', 'UTF8')) AND p.status = 'SUCCEEDED' "
                          f"AND p.amount - p.amount_refunded >= 1000 ORDER BY p.id LIMIT {count}"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == count, out
    return out


def read_after_write(rounds=300):
    """A refund, then a read of its payment: without Min-LSN (the replica may not have it
    yet), and with it; the read's latency and where it was served."""
    proc, port = serve(PRIMARY, "--replica-url", STANDBY)
    mutation = "mutation($p: ID!) { refundPayment(input: {paymentId: $p, amount: 1}) { payment { amountRefunded } } }"
    query = "query($p: ID!) { payment(id: $p) { amountRefunded } }"
    targets = payments(20)
    rows = []
    try:
        for label, with_lsn in [("without Billgraph-Min-LSN", False), ("with Billgraph-Min-LSN", True)]:
            took, stale, sources = [], 0, {"primary": 0, "replica": 0}
            for n in range(rounds):
                p = targets[n % len(targets)]
                headers, answer = post(port, {"query": mutation, "variables": {"p": p}}, FULL)
                wrote = answer["data"]["refundPayment"]["payment"]["amountRefunded"]
                start = time.perf_counter()
                read_headers, read = post(port, {"query": query, "variables": {"p": p}}, READ,
                                          {"Billgraph-Min-LSN": headers["Billgraph-Commit-LSN"]} if with_lsn else None)
                took.append((time.perf_counter() - start) * 1000)
                stale += read["data"]["payment"]["amountRefunded"] != wrote
                sources[read_headers["Billgraph-Served-By"]] += 1
            took.sort()
            rows.append((label, f"{took[len(took) // 2]:.2f} ms", f"{took[int(len(took) * 0.99)]:.2f} ms", stale, rounds,
                         sources["replica"]))
    finally:
        stop(proc)
    return rows


def main():
    print(f"Dashboard (25 customers), wrk, 32 connections, {SECONDS} s each; server, PostgreSQL (primary and standby), "
          "PgBouncer and wrk share the 2 cores.\n")
    print("| setup | served by | requests/s | p99 | non-2xx |\n| --- | --- | --- | --- | --- |")
    for label, served, rate, p99, bad in dashboard_rows():
        print(f"| {label} | {served} | {rate:.0f} | {p99} | {bad} |")
    print("\nA refund, then at once a read of its payment (one client, one at a time):\n")
    print("| read | p50 | p99 | reads missing the refund | reads | served by the replica |\n| --- | --- | --- | --- | --- | --- |")
    for row in read_after_write():
        print("| " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    sys.exit(main())
