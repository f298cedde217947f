"""The database floor of benchmarks/run (issue 13): what a per-request batching DataLoader
would send PostgreSQL for the same request, run by `pgbench -M prepared` at the same
concurrency on the same random pages, beside billgraph under wrk, in one run.

The floor's statements are not billgraph's. They are what a straightforward DataLoader
server sends for each canonical query: the API key looked up (no cache), then one
statement per level of the query with the level's keys as one array: by id, by parent
with `= ANY(ids)`, or through a lateral join where each parent has a limit (a
customer's latest 10 invoices). They read the plain columns the query asks for (the
figures of RULES.md section 3 are maintained columns, so a DataLoader reads them as
billgraph does) and leave formatting to the application, as such a server would.

pgbench cannot carry one statement's rows into the next statement's parameters, which a
DataLoader does (the customers' ids become the invoice level's keys). So the ids each
level receives are precomputed for every page into small `bench_*` tables, and each
statement reads its array with one primary-key probe (an InitPlan) where a DataLoader
would bind `$1`; single values (an invoice's customer) are carried with `\\gset`.
`check_floor` compares, for one page of each query, the rows the floor's statements
return with what billgraph answers, so a floor that asks for less than the query needs
fails the run.

CPU per request is read from /proc: the server process's utime+stime, and those of the
cluster (the postmaster with its reaped children's times, cutime+cstime, plus every live
child), over the requests or transactions of the run.
"""
import csv
import glob
import io
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

DASHBOARD_PAGE = 25
INVOICES_PAGE = 1000
DETAIL_INVOICES = 2000

# The ids each request's levels receive, per page or invoice, from independent SQL over
# the tables (psql variable :org). Pages are numbered from 1; page p starts after the
# row numbered (p - 1) * size, which is where a client's cursor for page p points.
SETUP = f"""
DROP TABLE IF EXISTS bench_dashboard, bench_invoice, bench_invoices_page;
CREATE TABLE bench_dashboard AS
WITH c AS (SELECT id, created_at, row_number() OVER (ORDER BY created_at, id) AS n
           FROM customer WHERE organisation_id = :'org')
SELECT (page.n - 1) / {DASHBOARD_PAGE} + 1 AS page, before.created_at AS after_at, before.id AS after_id,
       array_agg(page.id ORDER BY page.n) AS customer_ids, NULL::uuid[] AS invoice_ids, NULL::uuid[] AS payment_ids
FROM c page JOIN c before ON before.n = ((page.n - 1) / {DASHBOARD_PAGE}) * {DASHBOARD_PAGE}
GROUP BY 1, 2, 3;
UPDATE bench_dashboard SET invoice_ids = ARRAY(
    SELECT i.id FROM unnest(customer_ids) k(id)
    CROSS JOIN LATERAL (SELECT id FROM invoice WHERE customer_id = k.id ORDER BY issued_on DESC, id DESC LIMIT 10) i);
UPDATE bench_dashboard SET payment_ids = ARRAY(
    SELECT DISTINCT payment_id FROM payment_application WHERE invoice_id = ANY(invoice_ids));
ALTER TABLE bench_dashboard ADD PRIMARY KEY (page);

-- Invoice detail: invoices with the whole shape (payments with refunds), as billgraph's
-- own benchmark chose one, in a fixed pseudo-random order.
CREATE TABLE bench_invoice AS
SELECT row_number() OVER (ORDER BY md5(i.id::text)) AS n, i.id, NULL::uuid[] AS payment_ids, NULL::uuid[] AS credit_note_ids
FROM invoice i WHERE i.organisation_id = :'org' AND EXISTS (
    SELECT FROM payment_application a JOIN refund r ON r.payment_id = a.payment_id WHERE a.invoice_id = i.id)
ORDER BY md5(i.id::text) LIMIT {DETAIL_INVOICES};
UPDATE bench_invoice SET payment_ids = ARRAY(SELECT payment_id FROM payment_application WHERE invoice_id = id);
UPDATE bench_invoice SET credit_note_ids = ARRAY(
    SELECT DISTINCT credit_note_id FROM refund WHERE payment_id = ANY(payment_ids) AND credit_note_id IS NOT NULL);
ALTER TABLE bench_invoice ADD PRIMARY KEY (n);

CREATE TABLE bench_invoices_page AS
WITH i AS (SELECT id, customer_id, issued_on, row_number() OVER (ORDER BY issued_on, id) AS n
           FROM invoice WHERE organisation_id = :'org')
SELECT (page.n - 1) / {INVOICES_PAGE} + 1 AS page, before.issued_on AS after_on, before.id AS after_id,
       array_agg(DISTINCT page.customer_id) AS customer_ids
FROM i page JOIN i before ON before.n = ((page.n - 1) / {INVOICES_PAGE}) * {INVOICES_PAGE}
GROUP BY 1, 2, 3;
ALTER TABLE bench_invoices_page ADD PRIMARY KEY (page);
ANALYZE bench_dashboard, bench_invoice, bench_invoices_page;
"""

KEY_LOOKUP = ("SELECT id, organisation_id, scopes, rate_limit FROM api_key "
              "WHERE key_hash = decode(:keyhash, 'hex') AND revoked_at IS NULL;")

# One pgbench transaction per request. `:org` and `:keyhash` come from -D; `:page` and
# `:n` are drawn per transaction. A statement ending in \gset sets its columns as variables.
SCRIPTS = {
    "dashboard": [
        "\\set page random(2, :pages)",
        KEY_LOOKUP,
        "SELECT c.id, c.name, c.email, c.currency, c.credit_balance, c.created_at FROM customer c "
        "WHERE c.organisation_id = :org AND (c.created_at, c.id) > "
        "(SELECT after_at, after_id FROM bench_dashboard WHERE page = :page) "
        f"ORDER BY c.created_at, c.id LIMIT {DASHBOARD_PAGE + 1};",
        "SELECT x.* FROM unnest((SELECT customer_ids FROM bench_dashboard WHERE page = :page)) AS k(customer_id) "
        "CROSS JOIN LATERAL (SELECT i.customer_id, i.id, i.number, i.status, i.issued_on, i.due_on, i.total, "
        "i.amount_paid, i.balance FROM invoice i WHERE i.customer_id = k.customer_id AND i.organisation_id = :org "
        "ORDER BY i.issued_on DESC, i.id DESC LIMIT 10) x;",
        "SELECT a.invoice_id, p.id, p.mode, p.amount, p.received_on, p.amount_refunded "
        "FROM payment_application a JOIN payment p ON p.id = a.payment_id "
        "WHERE a.invoice_id = ANY((SELECT invoice_ids FROM bench_dashboard WHERE page = :page)::uuid[]) "
        "AND a.organisation_id = :org ORDER BY a.invoice_id, a.payment_received_on, a.payment_id;",
        "SELECT r.payment_id, r.id, r.amount, r.refunded_on FROM refund r "
        "WHERE r.payment_id = ANY((SELECT payment_ids FROM bench_dashboard WHERE page = :page)::uuid[]) "
        "AND r.organisation_id = :org ORDER BY r.payment_id, r.refunded_on, r.id;",
    ],
    "invoice_detail": [
        "\\set n random(1, :pages)",
        KEY_LOOKUP,
        "SELECT i.id AS invoice_id, i.number, i.status, i.total, i.balance, i.customer_id, "
        "cardinality((SELECT credit_note_ids FROM bench_invoice WHERE n = :n)) AS credit_notes FROM invoice i "
        "WHERE i.id = (SELECT id FROM bench_invoice WHERE n = :n) AND i.organisation_id = :org \\gset",
        "SELECT c.id, c.name, c.email, c.credit_balance FROM customer c "
        "WHERE c.id = :customer_id AND c.organisation_id = :org;",
        "SELECT a.invoice_id, a.payment_id, a.amount FROM payment_application a "
        "WHERE a.invoice_id = :invoice_id AND a.organisation_id = :org ORDER BY a.payment_received_on, a.payment_id;",
        "SELECT n.invoice_id, n.id, n.number, n.amount, n.repayment_method, n.status FROM credit_note n "
        "WHERE n.invoice_id = :invoice_id AND n.organisation_id = :org ORDER BY n.created_at, n.id;",
        "SELECT p.id, p.status, p.amount, CASE WHEN p.status = 'SUCCEEDED' THEN p.amount - p.amount_refunded ELSE 0 END "
        "FROM payment p WHERE p.id = ANY((SELECT payment_ids FROM bench_invoice WHERE n = :n)::uuid[]) AND p.organisation_id = :org;",
        "SELECT r.payment_id, r.id, r.amount, r.refunded_on, r.credit_note_id FROM refund r "
        "WHERE r.payment_id = ANY((SELECT payment_ids FROM bench_invoice WHERE n = :n)::uuid[]) "
        "AND r.organisation_id = :org ORDER BY r.payment_id, r.refunded_on, r.id;",
        # A DataLoader sends no statement for a level without keys: refunds with no credit note.
        "\\if :credit_notes > 0",
        "SELECT n.id, n.number FROM credit_note n "
        "WHERE n.id = ANY((SELECT credit_note_ids FROM bench_invoice WHERE n = :n)::uuid[]) AND n.organisation_id = :org;",
        "\\endif",
    ],
    "invoices_page": [
        "\\set page random(2, :pages)",
        KEY_LOOKUP,
        "SELECT i.id, i.number, i.status, i.currency, i.issued_on, i.due_on, i.total, i.amount_paid, "
        "i.amount_credited, i.balance, i.customer_id FROM invoice i WHERE i.organisation_id = :org AND "
        "(i.issued_on, i.id) > (SELECT after_on, after_id FROM bench_invoices_page WHERE page = :page) "
        f"ORDER BY i.issued_on, i.id LIMIT {INVOICES_PAGE + 1};",
        "SELECT c.id, c.external_id FROM customer c "
        "WHERE c.id = ANY((SELECT customer_ids FROM bench_invoices_page WHERE page = :page)::uuid[]) AND c.organisation_id = :org;",
    ],
}


def prepare(psql_script, url, org):
    """Creates the bench_* tables; returns, per query, how many pages (or invoices) there are."""
    psql_script(url, SETUP, {"org": org})
    return {"dashboard": _count(url, "SELECT max(page) FROM bench_dashboard"),
            "invoice_detail": _count(url, "SELECT count(*) FROM bench_invoice"),
            "invoices_page": _count(url, "SELECT max(page) FROM bench_invoices_page")}


def _count(url, sql):
    return int(subprocess.run(["psql", url, "-tAc", sql], check=True, capture_output=True, text=True).stdout.strip())


def _rows(url, sql):
    """The column names and the rows of one statement."""
    out = subprocess.run(["psql", url, "--csv", "-c", sql], check=True, capture_output=True, text=True).stdout
    header, *rows = list(csv.reader(io.StringIO(out)))
    return header, rows


def _substitute(sql, variables):
    """The statement with its pgbench variables as literals (for checking it with psql)."""
    def value(m):
        return "'" + str(variables[m.group(1)]).replace("'", "''") + "'"
    return re.sub(r":([a-z_]+)", lambda m: value(m) if m.group(1) in variables else m.group(0), sql)


def floor_rows(url, name, variables):
    """Runs one transaction of the floor's script with psql; the rows of each statement."""
    variables = dict(variables)
    results = []
    skipping = False
    for line in SCRIPTS[name]:
        if line.startswith("\\set") or line.startswith("\\endif"):
            skipping = False
            continue
        if line.startswith("\\if"):
            variable = line.split()[1][1:]
            skipping = not int(variables[variable]) > 0
            continue
        if skipping:
            continue
        gset = line.endswith("\\gset")
        sql = _substitute(line.removesuffix("\\gset").rstrip().rstrip(";"), variables)
        header, rows = _rows(url, sql)
        if gset:
            assert len(rows) == 1, f"\\gset needs one row: {sql}"
            variables.update(zip(header, rows[0]))
        results.append(rows)
    return results


def pgbench(url, name, connections, seconds, defines):
    """Runs the floor's script; returns transactions/s, transactions, p50 and p99 in ms
    (from pgbench's per-transaction log) and the cluster's CPU seconds (see cluster_cpu)."""
    work = tempfile.mkdtemp()
    script = os.path.join(work, f"{name}.sql")
    with open(script, "w") as f:
        f.write("\n".join(SCRIPTS[name]) + "\n")
    args = ["pgbench", "-n", "-M", "prepared", "-c", str(connections), "-j", "2", "-T", str(seconds),
            "-l", "--log-prefix", os.path.join(work, "log"), "-f", script]
    for k, v in defines.items():
        args += ["-D", f"{k}={v}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, cwd=work)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out.stderr[-2000:]}")
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    count = int(re.search(r"number of transactions actually processed: (\d+)", out.stdout).group(1))
    latencies = []
    for path in glob.glob(os.path.join(work, "log.*")):
        with open(path) as f:
            latencies += [int(line.split()[2]) / 1000 for line in f]
    shutil.rmtree(work)
    return tps, count, percentile(latencies, 50), percentile(latencies, 99)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields


def process_cpu(pid):
    """utime + stime of a process, in seconds."""
    f = _stat(pid)
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def cluster_cpu(data):
    """CPU seconds the cluster in `data` has used: the postmaster's own and its reaped
    children's (utime, stime, cutime, cstime), plus every live child's utime + stime.
    The difference of two readings is what its processes used between them, backends
    that started or ended in between included. Read once no backend is ending (a second
    after the clients are gone): one reaped between the two reads would count nowhere."""
    time.sleep(1)
    postmaster = int(open(os.path.join(data, "postmaster.pid")).readline())
    f = _stat(postmaster)
    ticks = sum(int(x) for x in f[11:15])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            child = _stat(entry)
        except OSError:
            continue
        if int(child[1]) == postmaster:
            ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def key_hash(key):
    return hashlib.sha256(key.encode()).hexdigest()


def chart(path, title, concurrency, series):
    """An SVG of two panels, requests/s and p99 (ms) against connections, one line per
    series: `series` maps a name to a list of (requests/s, p99 ms) in `concurrency`'s order."""
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    width, height, margin = 420, 300, 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" height="{height + 60}" '
             f'font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{width}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    for panel, (label, index) in enumerate([("requests/s", 0), ("p99 latency (ms)", 1)]):
        left = panel * width + margin
        plot_w, plot_h, top = width - margin - 20, height - 80, 40
        top_value = max(v[index] for values in series.values() for v in values) * 1.15 or 1
        x = lambda i: left + plot_w * i / (len(concurrency) - 1)
        y = lambda v: top + plot_h * (1 - v / top_value)
        parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>')
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 35}" text-anchor="middle">connections</text>')
        parts.append(f'<text x="{left - 45}" y="{top + plot_h / 2}" text-anchor="middle" '
                     f'transform="rotate(-90 {left - 45} {top + plot_h / 2})">{label}</text>')
        for t in range(5):
            v = top_value * t / 4
            parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
            parts.append(f'<text x="{left - 5}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
        for i, c in enumerate(concurrency):
            parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{c}</text>')
        for s, (name, values) in enumerate(series.items()):
            points = " ".join(f"{x(i):.1f},{y(v[index]):.1f}" for i, v in enumerate(values))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colours[s]}" stroke-width="2"/>')
            for i, v in enumerate(values):
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v[index]):.1f}" r="3" fill="{colours[s]}"/>')
            parts.append(f'<text x="{left + 10}" y="{top + 16 + 15 * s}" fill="{colours[s]}">{name}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def _none(v):
    return "" if v is None else str(v)


def seen_by_server(name, data):
    """What billgraph answered, reduced to what `seen_by_floor` reduces the floor's rows to."""
    if name == "dashboard":
        customers = data["customers"]["nodes"]
        invoices = [(c["id"], i["id"], i["status"], str(i["total"]), str(i["amountPaid"]), str(i["balance"]))
                    for c in customers for i in c["invoices"]]
        payments = sorted((i["id"], p["id"], str(p["amount"]), str(p["amountRefunded"]))
                          for c in customers for i in c["invoices"] for p in i["payments"])
        refunds = sorted({(p["id"], r["id"], str(r["amount"]), r["refundedOn"])
                          for c in customers for i in c["invoices"] for p in i["payments"] for r in p["refunds"]})
        return [c["id"] for c in customers], sorted(invoices), payments, refunds
    if name == "invoice_detail":
        invoice = data["invoice"]
        applications = sorted((a["payment"]["id"], str(a["amount"])) for a in invoice["paymentApplications"])
        payments = sorted({(a["payment"]["id"], str(a["payment"]["refundableAmount"])) for a in invoice["paymentApplications"]})
        refunds = sorted({(r["id"], _none(r["creditNote"] and r["creditNote"]["number"]))
                          for a in invoice["paymentApplications"] for r in a["payment"]["refunds"]})
        notes = [n["id"] for n in invoice["creditNotes"]]
        return invoice["customer"]["id"], applications, payments, refunds, notes
    invoices = data["invoices"]["nodes"]
    return ([(i["id"], str(i["total"]), str(i["balance"])) for i in invoices],
            sorted({(i["customer"]["id"], _none(i["customer"]["externalId"])) for i in invoices}))


def seen_by_floor(name, results):
    """The floor's rows for one request (floor_rows), reduced as `seen_by_server` does."""
    if name == "dashboard":
        _, customers, invoices, payments, refunds = results
        return ([c[0] for c in customers[:DASHBOARD_PAGE]], sorted((r[0], r[1], r[3], r[6], r[7], r[8]) for r in invoices),
                sorted((r[0], r[1], r[3], r[5]) for r in payments), sorted((r[0], r[1], r[2], r[3]) for r in refunds))
    if name == "invoice_detail":
        _, invoice, customer, applications, notes, payments, refunds, *by_id = results
        numbers = {r[0]: r[1] for r in (by_id[0] if by_id else [])}
        return (customer[0][0], sorted((r[1], r[2]) for r in applications), sorted((r[0], r[3]) for r in payments),
                sorted((r[1], numbers.get(r[4], "")) for r in refunds), [r[1] for r in notes])
    _, invoices, customers = results
    return [(r[0], r[6], r[9]) for r in invoices[:INVOICES_PAGE]], sorted((r[0], r[1]) for r in customers)
