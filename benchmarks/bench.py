"""The benchmark driver behind benchmarks/run (see there)."""
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import floor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(HERE, ".cache")
BIN = os.environ["BILLGRAPH_BIN"]
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "20000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "15"))
# BENCH_ONLY (see benchmarks/run): floor, scaling, mutations, or overhead (see overhead_report).
ONLY = os.environ.get("BENCH_ONLY", "")
# BENCH_BASELINE_BIN: a billgraph built without them (e.g. main's before they came), for BENCH_ONLY=overhead.
BASELINE_BIN = os.environ.get("BENCH_BASELINE_BIN", "")
# BENCH_ROUNDS: how many times BENCH_ONLY=overhead runs each configuration, interleaved.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# BENCH_QUERY: which canonical query BENCH_ONLY=floor measures (dashboard, invoice_detail or invoices_page).
QUERY = os.environ.get("BENCH_QUERY", "dashboard")
# BENCH_SERVER_ARGS: more options of `serve` for every server of the run, after the
# defaults (so `--pool-size 4` replaces the 16), e.g. "--coalesce off".
SERVER_ARGS = os.environ.get("BENCH_SERVER_ARGS", "").split()
CONCURRENCY = [32, 128]
# The dashboard's concurrencies for the chart of throughput and p99 (benchmarks/dashboard-scaling.svg).
SCALING = [8, 32, 128, 512]
FLOOR_NOTE = ("Floor: what a per-request batching DataLoader sends PostgreSQL for the same request (benchmarks/floor.py: the "
              "key looked up, then one statement per level with the level's keys as an array), run by `pgbench -M prepared` "
              "as one transaction per request, at the same concurrency, on the same random pages (dashboard pages 2 to the "
              "last, random invoices with payments and refunds, invoices pages 2 to the last). Ratio = billgraph's "
              "requests/s ÷ the floor's transactions/s. CPU per request from /proc: the server process, and every process "
              "of the cluster (backends that ended included), over the requests or transactions of the run. p50 and p99: "
              "wrk's, and pgbench's per-transaction log.\n")


def log(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


def sh(command, **kw):
    return subprocess.run(["bash", "-c", f"source scripts/lib/common.sh && {command}"], cwd=ROOT, check=True,
                          capture_output=True, text=True, **kw).stdout.strip()


def psql(url, sql):
    return subprocess.run(["psql", url, "-tAc", sql], check=True, capture_output=True, text=True).stdout.strip()


def dataset():
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"data-{CUSTOMERS}.jsonl")
    keys = path + ".keys"
    if not os.path.exists(keys):
        log(f"generating {CUSTOMERS} customers per organisation")
        with open(path, "w") as out, open(keys, "w") as err:
            subprocess.run([BIN, "seed", "--customers", str(CUSTOMERS), "--orgs", "2"], stdout=out, stderr=err, check=True)
    key = re.search(r"org 1 full: (\S+)", open(keys).read()).group(1)
    return path, key


def start_database():
    work = tempfile.mkdtemp()
    os.chmod(work, 0o755)
    port = os.environ.get("BENCH_PG_PORT") or sh("free_port")
    data = os.path.join(work, "pg")
    # No replica reads this cluster's WAL, so it keeps only what crash recovery needs, as
    # PostgreSQL advises for bulk loads: the import then writes the empty store's tables
    # without WAL (README, "Loading an empty store").
    sh(f'pg_start "{data}" {port} "-c shared_buffers=1GB -c fsync=off -c max_connections=600 '
       f'-c wal_level=minimal -c max_wal_senders=0"')
    admin = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    psql(admin, "CREATE DATABASE bench")
    return data, admin.replace("dbname=postgres", "dbname=bench")


def floor_report(data, url, key, plan, chart):
    """The floor comparison's table, and the scaling chart when `chart` (the dashboard at SCALING)."""
    rows, figures = floor_comparison(data, url, key, plan)
    report = [FLOOR_NOTE, *FLOOR_HEADER, *rows, ""]
    if chart:
        path = scaling_chart(figures, SCALING)
        report.append(f"![requests/s and p99 against connections]({os.path.basename(path)})\n")
    return report


def start_server(url, trace=False, args=(), stdout=subprocess.DEVNULL, binary=None):
    """Starts the server on a free port of 127.0.0.1 (`args`: more options of `serve`) and
    returns the process, whose standard error is a pipe the caller reads, and the port.
    Its standard output (the access log) goes to `stdout`: nowhere unless asked."""
    env = dict(os.environ, BILLGRAPH_TRACE_SQL="1" if trace else "0")
    proc = subprocess.Popen([binary or BIN, "serve", "--listen", "127.0.0.1:0", "--database-url", url, "--pool-size", "16", *SERVER_ARGS, *args],
                            stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)
    while True:
        line = proc.stderr.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
        if m:
            return proc, int(m.group(1))
        if not line:
            raise RuntimeError("server did not start")


def post(port, key, body):
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def canonical(name):
    return open(os.path.join(ROOT, "schema", "queries", name + ".graphql")).read()


def requests_for(url, port, key):
    """The three canonical queries with realistic variables."""
    invoice = psql(url, """SELECT a.invoice_id FROM payment_application a JOIN refund r ON r.payment_id = a.payment_id
                           JOIN organisation o ON o.id = a.organisation_id AND o.name = 'Organisation 1'
                           ORDER BY a.invoice_id LIMIT 1""")
    return {
        "dashboard (25 customers)": {"query": canonical("dashboard"), "variables": {"first": 25}},
        "invoice_detail": {"query": canonical("invoice_detail"), "variables": {"id": invoice}},
        "invoices_page (1000 invoices)": {"query": canonical("invoices_page"), "variables": {}},
    }


def traced_statements(url, key, body):
    """The statements one request sends, with their parameters, from the server's trace."""
    proc, port = start_server(url, trace=True)
    # Read as it comes: a full pipe would block the server, whose traces of a 1,000-row
    # page (its keys and their organisations) pass the pipe's 64 KB.
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        post(port, key, body)
        post(port, key, body)  # the second request: the key lookup is cached, only the query's statements remain
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(10)
    traces = [json.loads(line.split("trace: ", 1)[1]) for line in lines if "trace: " in line]
    return traces[len(traces) // 2:]


def literal(sql, parameters):
    def value(m):
        v = parameters[int(m.group(1)) - 1]
        return "NULL" if v is None else "'" + v.replace("'", "''") + "'"
    return re.sub(r"\$(\d+)", value, sql)


def wrk(port, key, body, connections):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    payload = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
    script.write(f'wrk.method = "POST"\nwrk.body = "{payload}"\n'
                 f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer {key}"\n')
    script.close()
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{SECONDS}s", "--latency", "-s", script.name,
                          f"http://127.0.0.1:{port}/graphql"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"\s50%\s+([\d.]+\w+)", out).group(1)
    p99 = re.search(r"\s99%\s+([\d.]+\w+)", out).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, p99, int(errors.group(1)) if errors else 0


def wrk_mutations(port, key, payments, fields, connections):
    """Operations of `fields` refunds of 1 each, on payments drawn at random, at `connections`."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write("local payments = {" + ",".join(f'"{p}"' for p in payments) + "}\n")
    script.write(f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
request = function()
  local parts = {{}}
  for i = 1, {fields} do
    parts[i] = "r" .. i .. ": refundPayment(input: {{paymentId: \\\\\\"" .. payments[math.random(#payments)] ..
               "\\\\\\", amount: 1}}) {{ refund {{ id }} }}"
  end
  return wrk.format(nil, nil, nil, '{{"query": "mutation {{ ' .. table.concat(parts, " ") .. ' }}"}}')
end
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) failed = 0 end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then failed = failed + 1 end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("failed") end
  io.write("failed: " .. n .. "\\n")
end
""")
    script.close()
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{SECONDS}s", "--latency", "-s", script.name,
                          f"http://127.0.0.1:{port}/graphql"], capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"\s50%\s+([\d.]+\w+)", out).group(1)
    p99 = re.search(r"\s99%\s+([\d.]+\w+)", out).group(1)
    return rps, p50, p99, int(re.search(r"failed: (\d+)", out).group(1))


def mutation_report(url, key):
    """RULES.md section 4: each operation is one transaction; what that costs."""
    payments = psql(url, """SELECT p.id FROM payment p JOIN organisation o ON o.id = p.organisation_id AND o.name = 'Organisation 1'
                            WHERE p.status = 'SUCCEEDED' AND p.amount - p.amount_refunded >= 1000 ORDER BY p.id LIMIT 5000""").split()
    lines = ["", "Mutations: operations of one refund, and of three refunds in one transaction, on payments drawn at "
             "random from 5,000 (refunds of 1 each), 32 keep-alive connections.\n",
             "| operation | connections | operations/s | refunds/s | p50 | p99 | failed |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for fields in (1, 3):
        proc, port = start_server(url)
        try:
            log(f"mutations: {fields} refund(s) an operation, wrk, 32 connections")
            rps, p50, p99, failed = wrk_mutations(port, key, payments, fields, 32)
        finally:
            proc.terminate()
            proc.wait(10)
        lines.append(f"| {fields} refund{'s' if fields > 1 else ''} | 32 | {rps:.0f} | {rps * fields:.0f} | {p50} | {p99} | {failed} |")
    return lines


def latency_ms(text):
    """wrk's latency ("870.00us", "25.55ms", "1.14s") in milliseconds."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wrk_bodies(port, key, bodies, connections):
    """wrk with a body drawn at random from `bodies` for every request. Returns requests/s,
    requests answered, p50 and p99 in ms, and non-2xx answers."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write("local bodies = {\n" + ",\n".join("[==[" + json.dumps(b) + "]==]" for b in bodies) + "}\n")
    script.write(f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(os.time() * 100 + seed) end
request = function() return wrk.format(nil, nil, nil, bodies[math.random(#bodies)]) end
""")
    script.close()
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{SECONDS}s", "--latency", "-s", script.name,
                          f"http://127.0.0.1:{port}/graphql"], capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    count = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = latency_ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1))
    p99 = latency_ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, count, p50, p99, int(errors.group(1)) if errors else 0


def cursors(port, key, connection, size, pages):
    """The `after` cursor of pages 2..pages of `connection` (in its default order) at `size`
    items a page: the cursor of item (p - 1) * size."""
    query = f"query($after: String) {{ {connection}(first: 1000, after: $after) {{ edges {{ cursor }} pageInfo {{ hasNextPage endCursor }} }} }}"
    every, after = [], None
    while len(every) < (pages - 1) * size:
        page = post(port, key, {"query": query, "variables": {"after": after}})["data"][connection]
        every += [e["cursor"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    return [every[(p - 1) * size - 1] for p in range(2, pages + 1)]


def floor_requests(url, port, key, sizes):
    """For each canonical query, the bodies wrk draws from, in the floor's page order (page 2
    first, or invoice 1), and a function from a body's index to the floor's variables."""
    dashboard = canonical("dashboard")
    invoices_page = canonical("invoices_page")
    detail_ids = psql(url, "SELECT id FROM bench_invoice ORDER BY n").split()
    return {
        "dashboard": ([{"query": dashboard, "variables": {"first": floor.DASHBOARD_PAGE, "after": c}}
                       for c in cursors(port, key, "customers", floor.DASHBOARD_PAGE, sizes["dashboard"])],
                      lambda i: {"page": i + 2}),
        "invoice_detail": ([{"query": canonical("invoice_detail"), "variables": {"id": i}} for i in detail_ids],
                           lambda i: {"n": i + 1}),
        "invoices_page": ([{"query": invoices_page, "variables": {"after": c}}
                           for c in cursors(port, key, "invoices", floor.INVOICES_PAGE, sizes["invoices_page"])],
                          lambda i: {"page": i + 2}),
    }


def check_floor(url, port, key, name, bodies, variables, defines):
    """Fails the run unless the floor's statements return, for a few requests, what billgraph
    answers to them: the same rows and figures (see floor.seen_by_server)."""
    for i in sorted({0, len(bodies) // 2, len(bodies) - 1}):
        answer = post(port, key, bodies[i])
        assert "errors" not in answer, answer.get("errors")
        server = floor.seen_by_server(name, answer["data"])
        rows = floor.floor_rows(url, name, {**defines, **variables(i)})
        assert server == floor.seen_by_floor(name, rows), f"the floor of {name} disagrees with billgraph at request {i}"


def floor_comparison(data, url, key, plan):
    """billgraph under wrk and the floor under pgbench, each query of `plan` (pairs of a
    query and its concurrencies) at each concurrency; the rows of the report's table, and
    per (query, connections) the figures for the chart."""
    org = psql(url, f"SELECT organisation_id FROM api_key WHERE key_hash = decode('{floor.key_hash(key)}', 'hex')")
    sizes = floor.prepare(psql_script, url, org)
    proc, port = start_server(url)
    try:
        requests = floor_requests(url, port, key, sizes)
    finally:
        proc.terminate()
        proc.wait(10)
    rows, figures = [], {}
    for name, concurrency in plan:
        bodies, variables = requests[name]
        defines = {"org": org, "keyhash": floor.key_hash(key), "pages": sizes[name]}
        for c in concurrency:
            proc, port = start_server(url)
            try:
                if c == concurrency[0]:
                    check_floor(url, port, key, name, bodies, variables, defines)
                post(port, key, bodies[0])
                log(f"{name}: wrk, {c} connections")
                server_before, pg_before = floor.process_cpu(proc.pid), floor.cluster_cpu(data)
                sent_before = counters(port)
                rps, count, p50, p99, errors = wrk_bodies(port, key, bodies, c)
                server_ms = (floor.process_cpu(proc.pid) - server_before) / count * 1000
                pg_ms = (floor.cluster_cpu(data) - pg_before) / count * 1000
                sent = {series: (after - sent_before[series]) / count for series, after in counters(port).items()}
                log(f"{name}: per request, statements sent {sent['billgraph_db_statements_total']:.2f}, "
                    f"loads in shared statements {sent.get('billgraph_coalesced_loads_total', 0):.2f}")
                rss, peak = memory_kb(proc.pid)
            finally:
                proc.terminate()
                proc.wait(10)
            log(f"{name}: pgbench floor, {c} connections")
            before = floor.cluster_cpu(data)
            tps, transactions, floor_p50, floor_p99 = floor.pgbench(url, name, c, SECONDS, defines)
            floor_pg_ms = (floor.cluster_cpu(data) - before) / transactions * 1000
            figures[name, c] = ((rps, p99), (tps, floor_p99))
            rows.append(f"| {name} | {c} | {rps:.0f} | {p50:.1f} | {p99:.1f} | {errors} | {rss // 1024} MiB ({peak // 1024} MiB) "
                        f"| {server_ms:.2f} | {pg_ms:.2f} | {tps:.0f} | {floor_p50:.1f} | {floor_p99:.1f} | {floor_pg_ms:.2f} "
                        f"| {rps / tps:.2f} |")
            log(rows[-1])  # as it comes: a long run that fails later keeps what it measured
    return rows, figures


def counters(port):
    """The server's statements sent to the primary, and loads answered by shared
    statements (README, "Coalescing"; absent from builds before it), from /metrics."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = {}
    for line in text.splitlines():
        for name in ("billgraph_db_statements_total{target=\"primary\"}", "billgraph_coalesced_loads_total"):
            if line.startswith(name + " "):
                found[name.split("{")[0]] = float(line.split()[-1])
    return found


FLOOR_HEADER = ["| query | connections | requests/s | p50 ms | p99 ms | non-2xx | server RSS (peak) | server CPU ms/request "
                "| PostgreSQL CPU ms/request | floor tps | floor p50 ms | floor p99 ms | floor PostgreSQL CPU ms/transaction "
                "| ratio |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]


def scaling_chart(figures, concurrency):
    """benchmarks/dashboard-scaling.svg from the dashboard's figures at each concurrency."""
    path = os.path.join(HERE, "dashboard-scaling.svg")
    floor.chart(path, "Dashboard (25 customers, random pages): billgraph and the DataLoader floor", concurrency,
                {"billgraph": [figures["dashboard", c][0] for c in concurrency],
                 "floor (pgbench -M prepared)": [figures["dashboard", c][1] for c in concurrency]})
    return path


def psql_script(url, sql, variables):
    args = ["psql", url, "-v", "ON_ERROR_STOP=1", "-q"]
    for k, v in variables.items():
        args += ["-v", f"{k}={v}"]
    subprocess.run(args, input=sql, check=True, capture_output=True, text=True)


def memory_kb(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)), int(re.search(r"VmHWM:\s+(\d+)", status).group(1))


SMALL_SORT = 1000


def explain(url, statements):
    """Problems in the plans: a sequential scan of a table of more than SMALL_SORT rows
    (an empty table is scanned for free), or a Sort of more than SMALL_SORT rows. (PostgreSQL may sort one parent's handful of rows inside a lateral
    subquery rather than walk an index backwards; that sorts no table.)"""
    problems = []
    table_rows = lambda name: float(psql(url, f"SELECT reltuples FROM pg_class WHERE relname = '{name}'"))
    for s in statements:
        plan = json.loads(psql(url, "EXPLAIN (FORMAT JSON) " + literal(s["sql"], s["parameters"])))
        def walk(node):
            kind = node["Node Type"]
            if kind == "Sort" and node["Plans"][0]["Plan Rows"] > SMALL_SORT:
                problems.append(f"Sort of {node['Plans'][0]['Plan Rows']} rows in: {' '.join(s['sql'].split())[:90]}...")
            if kind == "Seq Scan" and table_rows(node["Relation Name"]) > SMALL_SORT:
                problems.append(f"Seq Scan on {node.get('Relation Name')} in: {' '.join(s['sql'].split())[:90]}...")
            for child in node.get("Plans", []):
                walk(child)
        walk(plan[0]["Plan"])
    return problems


def cpu_seconds(pid):
    """User and system time of a whole process (every thread), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def overhead_report(url, key):
    """What metrics and the access log cost. Three servers: BENCH_BASELINE_BIN (a build
    without them), this build with its access log written to a file, and this build with
    `--access-log off` (metrics are always on). Two loads: the dashboard query at 32 and 128
    connections, and `{ __typename }` at 32, which needs no database, so the server's fixed
    cost per request is all there is to it and is the bottleneck. Each round runs every
    server once per load, starting with another each round, `ROUNDS` rounds; a change is
    the median over rounds of a server's figure divided by the baseline's of the same
    round, so that the machine's drift from round to round cancels."""
    assert BASELINE_BIN, "BENCH_ONLY=overhead needs BENCH_BASELINE_BIN, a build without metrics"
    loads = [("dashboard (25 customers)", requests_for(url, None, key)["dashboard (25 customers)"], CONCURRENCY),
             ("{ __typename } (no database)", {"query": "{ __typename }"}, [32])]
    configurations = [("baseline (no metrics, no access log)", BASELINE_BIN, ()),
                      ("metrics, access log to a file", BIN, ()),
                      ("metrics, --access-log off", BIN, ("--access-log", "off"))]
    log_file = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
    figures = {}  # (load, connections, configuration) -> [(requests/s, µs of server CPU a request, p50, p99)] by round
    logged = 0
    for r in range(ROUNDS):
        for load, body, concurrency in loads:
            for c in concurrency:
                for name, binary, args in configurations[r % 3:] + configurations[:r % 3]:
                    with open(log_file.name, "w") as out:
                        proc, port = start_server(url, args=args, stdout=out, binary=binary)
                        try:
                            post(port, key, body)
                            log(f"overhead round {r + 1}: {load}, {name}, {c} connections")
                            before = cpu_seconds(proc.pid)
                            rps, p50, p99, errors = wrk(port, key, body, c)
                            used = cpu_seconds(proc.pid) - before
                            assert errors == 0, f"{errors} non-2xx answers"
                        finally:
                            proc.terminate()
                            proc.wait(10)
                    figures.setdefault((load, c, name), []).append((rps, used / (rps * SECONDS) * 1e6, p50, p99))
                    logged = max(logged, os.path.getsize(log_file.name))
    os.unlink(log_file.name)
    report = ["## What metrics and the access log cost\n",
              f"Measured {datetime.date.today().isoformat()} with `BENCH_ONLY=overhead` against main's build from before "
              f"them ({ROUNDS} rounds, {SECONDS} s a run, same dataset and machine). Server CPU is the server "
              "process's user and system time during the run (/proc/PID/stat) over the requests it answered. "
              "A change is the median, over the rounds, of the figure divided by the baseline's of the same round.\n",
              "| load | connections | configuration | requests/s, each round | change | server CPU µs/request, each round | change | p50, p99 (first round) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for load, _, concurrency in loads:
        for c in concurrency:
            base = figures[(load, c, configurations[0][0])]
            for name, _, _ in configurations:
                runs = figures[(load, c, name)]
                first = name == configurations[0][0]
                rps_change = statistics.median(run[0] / b[0] for run, b in zip(runs, base)) - 1
                cpu_change = statistics.median(run[1] / b[1] for run, b in zip(runs, base)) - 1
                report.append(f"| {load} | {c} | {name} | {', '.join(f'{run[0]:.0f}' for run in runs)} "
                              f"| {'' if first else f'{rps_change:+.1%}'} | {', '.join(f'{run[1]:.0f}' for run in runs)} "
                              f"| {'' if first else f'{cpu_change:+.1%}'} | {runs[0][2]}, {runs[0][3]} |")
    report.append(f"\nThe largest access log of one run was {logged // 1024} KiB.")
    return report


def main():
    path, key = dataset()
    data, url = start_database()
    try:
        subprocess.run([BIN, "migrate", "--database-url", url], check=True, capture_output=True)
        log("importing")
        started = time.time()
        imported = subprocess.run([BIN, "import", path, "--database-url", url], check=True, capture_output=True, text=True)
        import_seconds = time.time() - started
        lines = re.search(r"imported (\d+) lines", imported.stderr).group(1)
        # What is measured is throughput, not the per-key budget (RULES.md section 8): no limit.
        psql(url, "UPDATE api_key SET rate_limit = 0")
        psql(url, "VACUUM ANALYZE")
        if ONLY == "mutations":
            print("\n".join(mutation_report(url, key)))
            return
        if ONLY == "overhead":
            print("\n".join(overhead_report(url, key)))
            return
        if ONLY in ("floor", "scaling"):
            plan = [(QUERY, CONCURRENCY)] if ONLY == "floor" else [("dashboard", SCALING)]
            print("\n".join(floor_report(data, url, key, plan, chart=ONLY == "scaling")))
            return
        requests = requests_for(url, None, key)
        report = [f"# Benchmarks\n",
                  f"Measured {datetime.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores, "
                  f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB "
                  f"({platform.platform()}); PostgreSQL {psql(url, 'SHOW server_version')} on the same machine.",
                  f"The server runs its default one loop per core ({os.cpu_count()}), 16 PostgreSQL connections each, of which by default the machine's cores shared among the loops (at least 1 a loop) run the statements of queries at once (`--query-statements`).",
                  f"Dataset: `billgraph seed --customers {CUSTOMERS} --orgs 2`, {lines} lines, imported in "
                  f"{import_seconds:.1f} s. Each run lasts {SECONDS} s; the server and the database share the 2 cores "
                  f"with wrk or pgbench.\n"]
        report += floor_report(data, url, key, [("dashboard", SCALING), ("invoice_detail", CONCURRENCY),
                                                ("invoices_page", CONCURRENCY)], chart=True)
        plans = []
        for name, body in requests.items():
            plans += explain(url, traced_statements(url, key, body))
        report.append(f"Statements per request: " + ", ".join(
            f"{name}: {len(traced_statements(url, key, body))}" for name, body in requests.items()) + ".\n")
        report.append("EXPLAIN of every statement of the three queries: " +
                      (f"no sequential scan, and no sort of more than {SMALL_SORT} rows (a lateral subquery may "
                       "top-N sort one parent's few rows)." if not plans else "\n\n- " + "\n- ".join(plans)))
        report += mutation_report(url, key)
        print("\n".join(report))
    finally:
        sh(f'pg_stop "{data}"')


if __name__ == "__main__":
    main()
