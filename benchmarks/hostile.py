"""The driver behind benchmarks/hostile: a normal dashboard load while hostile clients attack.

For a quiet run and then each attack in turn, on a freshly started release server:
wrk sends the canonical dashboard query (schema/queries/dashboard.graphql, 25 customers,
a random page each time) on keep-alive connections for HOSTILE_SECONDS; half a second
after it starts, one attack (benchmarks/attacks.py, in its own process) begins, and ends
with the load. Meanwhile the server's VmRSS and VmHWM are sampled every 100 ms, and a probe
sends a dashboard request on a new connection every 250 ms, to see a loop that stops
answering (wrk's figures count only answered requests). Prints a
Markdown table: the load's throughput and p99, p99 against the quiet run, the server's
peak resident memory, and what the server did to the attackers.

Environment: BENCH_CUSTOMERS (customers per organisation, default 2000; the dataset is
generated once and cached in benchmarks/.cache like benchmarks/run's), HOSTILE_SECONDS
(default 20 per run), HOSTILE_CONNECTIONS (the load's connections, default 16),
HOSTILE_RSS_LIMIT_MIB (the server is killed beyond this resident size so that an attack
cannot take the machine down, default 4096), HOSTILE_SERVER_ARGS (more options for
`billgraph serve`, split on spaces), BILLGRAPH_BIN (set by benchmarks/hostile).
"""
import argparse
import collections
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
os.environ.setdefault("BENCH_CUSTOMERS", "2000")

SECONDS = int(os.environ.get("HOSTILE_SECONDS", "20"))
CONNECTIONS = int(os.environ.get("HOSTILE_CONNECTIONS", "16"))
RSS_LIMIT_MIB = int(os.environ.get("HOSTILE_RSS_LIMIT_MIB", "4096"))
SERVER_ARGS = os.environ.get("HOSTILE_SERVER_ARGS", "").split()
WRK_TIMEOUT = 10        # seconds: a load request unanswered this long counts as a timeout
ATTACK_DELAY = 0.5      # the attack starts this long after the load
GOAL_RATIO, GOAL_MIB = 3, 256

# The table's rows: (attack name in attacks.py, what the row says).
ATTACKS = [
    ("idle", "10,000 idle connections"),
    ("slow", "1,000 slow clients (headers / blank lines)"),
    ("pipeline", "pipelined large answers, never read"),
    ("bogus-keys", "10,000 bogus 60 KB API keys"),
    ("comments", "1,000 comment-padded documents (200–900 KB)"),
    ("fragments", "fragment bombs (20, 40, 200 fragments)"),
    ("aliases", "alias floods"),
    ("budget", "290-alias result-budget queries"),
]

bench = None  # benchmarks/bench.py, imported once BILLGRAPH_BIN is known
children = []  # processes to kill if the driver stops early


def log(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


# --- the server -------------------------------------------------------------------------

class Server:
    """A release server with its standard error drained (kept: the last lines) and its
    memory sampled every 100 ms; killed if it grows beyond RSS_LIMIT_MIB."""

    def __init__(self, url):
        self.proc, self.port = bench.start_server(url, args=SERVER_ARGS, stdout=subprocess.DEVNULL)
        children.append(self.proc)
        self.stderr = []
        self.peak_kb = 0
        self.killed_for_memory = False
        self.stopping = False
        self.load_started = None  # set by measure()
        self.ended = None  # when the sampler saw the process gone
        self.sampling = True
        threading.Thread(target=self._drain, daemon=True).start()
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr = (self.stderr + [line.rstrip()])[-20:]

    def _sample(self):
        while self.sampling:
            if self.proc.poll() is not None:
                self.ended = time.monotonic()
                break
            try:
                status = open(f"/proc/{self.proc.pid}/status").read()
                rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
                hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
            except (OSError, AttributeError):
                self.ended = time.monotonic()
                break  # gone (a zombie has no VmRSS)
            self.peak_kb = max(self.peak_kb, rss, hwm)
            if rss > RSS_LIMIT_MIB * 1024 and not self.killed_for_memory:
                self.killed_for_memory = True
                log(f"server at {rss // 1024} MiB: killing it (HOSTILE_RSS_LIMIT_MIB={RSS_LIMIT_MIB})")
                self.proc.kill()
            time.sleep(0.1)

    def alive(self):
        return self.proc.poll() is None

    def died(self):
        """Why the process ended before we stopped it, or None."""
        code = self.proc.poll()
        if code is None or self.stopping:
            return None
        if self.killed_for_memory:
            return f"killed by the benchmark at {RSS_LIMIT_MIB} MiB resident"
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        if self.ended and self.load_started:
            how += f", {self.ended - self.load_started:.1f} s after the load began"
        last = next((line for line in reversed(self.stderr) if line.strip()), "")
        return f"server died ({how})" + (f": {last[:160]}" if last else "")

    def stop(self):
        """SIGTERM, then SIGKILL after 12 s (the server drains for up to 10 s). Returns a note or None."""
        died = self.died()
        self.stopping = True
        note = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(12)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                note = "did not stop within 12 s of SIGTERM (killed)"
        self.sampling = False
        self.sampler.join(1)
        return died, note


def post(port, key, body, timeout):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


# --- the load ---------------------------------------------------------------------------

class Probe:
    """A dashboard request on a new connection every 250 ms (so that each may land on any
    loop), each waiting at most until the end of the run. wrk only counts the requests that
    were answered, so a loop that stops answering shows here: probes still waiting at the end."""

    def __init__(self, port, key, bodies, seconds):
        self.port, self.key, self.bodies = port, key, bodies
        self.end = time.monotonic() + seconds
        self.results = []  # (seconds waited, answered, error)
        self.lock = threading.Lock()
        self.threads = []
        self.ticker = threading.Thread(target=self._tick, daemon=True)
        self.ticker.start()

    def _tick(self):
        import random
        while time.monotonic() < self.end - 0.25:
            t = threading.Thread(target=self._one, args=(random.choice(self.bodies),), daemon=True)
            t.start()
            self.threads.append(t)
            time.sleep(0.25)

    def _one(self, body):
        started = time.monotonic()
        error = None
        try:
            post(self.port, self.key, body, max(0.1, self.end - started))
            answered = True
        except Exception as e:  # noqa: BLE001
            answered = False
            reason = getattr(e, "reason", e)
            error = "timeout" if isinstance(reason, TimeoutError) or "timed out" in str(e) else type(reason).__name__
        with self.lock:
            self.results.append((time.monotonic() - started, answered, error))

    def summary(self):
        """(note or None, whether the server stalled: a probe unanswered for more than 2 s, and
        when more than 1% of the probes were left unanswered, a lower bound of their p99 in ms:
        the 99th percentile of how long each probe was answered in or had waited)."""
        self.ticker.join(1)
        for t in self.threads:
            t.join(max(0.1, self.end - time.monotonic() + 2))
        with self.lock:
            results = list(self.results)
        # A probe sent in the last second may simply be in flight when the run ends.
        waited = [w for w, answered, e in results if not answered and e == "timeout" and w > 1]
        failed = collections.Counter(e for _, answered, e in results if not answered and e != "timeout")
        slowest = max((w for w, answered, _ in results if answered), default=0)
        notes = []
        if waited:
            notes.append(f"{len(waited)} of {len(results)} probe requests (a dashboard request on a new connection "
                         f"every 250 ms) unanswered after more than 1 s at the end of the run (the oldest waiting "
                         f"{max(waited):.1f} s)")
        if failed:
            notes.append(f"probe requests failed: " + ", ".join(f"{k} ×{n}" for k, n in failed.items()))
        if slowest > 1:
            notes.append(f"slowest probe answered in {slowest:.1f} s")
        stalled = any(w > 2 for w in waited)
        p99_at_least = None
        timed = sorted(w for w, answered, e in results if answered or e == "timeout")
        if timed and len(waited) > 0.01 * len(timed):
            p99_at_least = timed[min(len(timed) - 1, int(len(timed) * 0.99))] * 1000
        return "; ".join(notes) or None, stalled, p99_at_least

def wrk_script(key, bodies):
    """A wrk script sending a random one of `bodies` each time, and printing its figures as JSON at the end."""
    entries = ",\n".join(f"[==[{json.dumps(b)}]==]" for b in bodies)
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
local bodies = {{
{entries}
}}
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'HOSTILE {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
""")
    script.close()
    return script.name


def start_wrk(port, script, seconds):
    proc = subprocess.Popen(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", f"{WRK_TIMEOUT}s",
                             "-s", script, f"http://127.0.0.1:{port}/graphql"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children.append(proc)
    return proc


def wrk_result(proc, seconds):
    try:
        out, _ = proc.communicate(timeout=seconds + WRK_TIMEOUT + 20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, "wrk did not finish (killed)"
    m = re.search(r"^HOSTILE (\{.*\})$", out, re.M)
    if not m:
        return None, "wrk: " + " ".join(out.split())[:200]
    return json.loads(m.group(1)), None


# --- one run ----------------------------------------------------------------------------

def measure(url, keys, script, bodies, attack, seconds):
    """Runs the load (and the attack, if any) against a new server; returns the row's figures."""
    server = Server(url)
    attacker = None
    notes = []
    stalled = False
    probe_p99 = None
    try:
        for _ in range(3):
            post(server.port, keys["load"], {"query": bench.canonical("dashboard"), "variables": {"first": 25}}, 10)
        load = start_wrk(server.port, script, seconds)
        server.load_started = time.monotonic()
        probe = Probe(server.port, keys["load"], bodies, seconds)
        if attack:
            time.sleep(ATTACK_DELAY)
            attacker_errors = tempfile.TemporaryFile("w+")
            attacker = subprocess.Popen([sys.executable, os.path.join(HERE, "attacks.py"), attack,
                                         "--port", str(server.port), "--key", keys["attack"],
                                         "--seconds", str(seconds - ATTACK_DELAY)],
                                        stdout=subprocess.PIPE, stderr=attacker_errors, text=True)
            children.append(attacker)
        figures, problem = wrk_result(load, seconds)
        if problem:
            notes.append(problem)
        probe_note, stalled, probe_p99 = probe.summary()
        if probe_note:
            notes.append(probe_note)
        if attacker:
            try:
                out, _ = attacker.communicate(timeout=30)
                result = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
                if not result:
                    attacker_errors.seek(0)
                    notes.insert(0, "the attacker failed: " + " ".join(attacker_errors.read().split())[-300:])
                else:
                    notes.insert(0, result["notes"])
            except subprocess.TimeoutExpired:
                attacker.kill()
                attacker.communicate()
                notes.insert(0, "the attacker did not stop at its deadline (killed)")
        if server.alive():
            started = time.monotonic()
            try:
                post(server.port, keys["load"], {"query": bench.canonical("dashboard"), "variables": {"first": 25}}, 5)
                after = f"afterwards a dashboard request took {(time.monotonic() - started) * 1000:.0f} ms"
            except Exception as e:  # noqa: BLE001
                after = f"afterwards a dashboard request failed ({type(e).__name__}: {e})"
                stalled = True
            if attack:
                notes.append(after)
    finally:
        if attacker and attacker.poll() is None:
            attacker.kill()
        died, stop_note = server.stop()
    if died:
        notes.append(died)
    if stop_note:
        notes.append(stop_note)
    return {"figures": figures, "peak_kb": server.peak_kb, "notes": notes, "probe_p99": probe_p99,
            "broke": stalled or bool(died) or bool(stop_note)}


def load_figures(figures, probe_p99):
    """(requests/s of 2xx answers, p99 in ms or None, p99 text, notes about the load)."""
    if not figures or figures["requests"] == 0:
        if probe_p99:
            return 0.0, probe_p99, f"≥ {probe_p99:.0f}", ["the load got no answers"]
        return 0.0, None, "—", ["the load got no answers"]
    notes = []
    ok = figures["requests"] - figures["status"]
    rps = ok / (figures["duration_us"] / 1e6)
    p99 = figures["p99_us"] / 1000
    text = f"{p99:.0f}" if p99 >= 10 else f"{p99:.1f}"
    timeouts = figures["timeout"]
    if timeouts:
        notes.append(f"the load had {timeouts} requests time out after {WRK_TIMEOUT} s")
        if timeouts > 0.01 * (figures["requests"] + timeouts):
            p99, text = WRK_TIMEOUT * 1000.0, f"≥ {WRK_TIMEOUT * 1000}"
    if probe_p99 and probe_p99 > p99:
        p99, text = probe_p99, f"≥ {probe_p99:.0f}"
    if figures["status"]:
        notes.append(f"the load got {figures['status']} non-2xx answers")
    socket_errors = {k: figures[k] for k in ("connect", "read", "write") if figures[k]}
    if socket_errors:
        notes.append("load socket errors: " + ", ".join(f"{k} {n}" for k, n in socket_errors.items()))
    return rps, p99, text, notes


# --- set-up -----------------------------------------------------------------------------

def has_rate_limits():
    help_text = subprocess.run([bench.BIN, "keys", "create", "--help"], capture_output=True, text=True).stdout
    return "--rate-limit" in help_text


def create_key(url, organisation, label):
    """A billing:read key of organisation; without a rate limit when the server has them, so that
    what is measured is section 5's protections rather than the per-key budget."""
    command = [bench.BIN, "keys", "create", "--database-url", url, "--organisation", organisation,
               "--scopes", "billing:read", "--label", label]
    if has_rate_limits():
        command += ["--rate-limit", "0"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return re.search(r"key:\s+(\S+)", out).group(1)


def dashboard_bodies(url, key):
    """The dashboard query (25 customers) at the start of every page of organisation 1's customers."""
    server = Server(url)
    try:
        cursors, after = [None], None
        while True:
            page = post(server.port, key, {"query": "query($after: String) { customers(first: 1000, after: $after) "
                                                    "{ edges { cursor } pageInfo { hasNextPage endCursor } } }",
                                           "variables": {"after": after}}, 60)["data"]["customers"]
            cursors += [e["cursor"] for e in page["edges"][24::25]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        big = post(server.port, key, {"query": bench.canonical("dashboard"), "variables": {"first": 100}}, 60)
    finally:
        server.stop()
    query = bench.canonical("dashboard")
    bodies = [{"query": query, "variables": {"first": 25, "after": c}} for c in cursors[:-1] or cursors]
    return bodies, len(json.dumps(big))


def main():
    global bench
    parser = argparse.ArgumentParser(
        prog="benchmarks/hostile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="attacks: " + ", ".join(name for name, _ in ATTACKS) +
               " (benchmarks/attacks.py --list describes each; it can also aim one at a running server)")
    parser.add_argument("--only", help="comma-separated attacks to run (after the quiet run), default all")
    args = parser.parse_args()
    chosen = ATTACKS
    if args.only:
        names = args.only.split(",")
        unknown = set(names) - {n for n, _ in ATTACKS}
        if unknown:
            parser.error(f"unknown attack(s): {', '.join(sorted(unknown))}")
        chosen = [a for a in ATTACKS if a[0] in names]

    sys.path.insert(0, HERE)
    import bench as bench_module
    bench = bench_module

    # Never hang: SIGTERM ends the driver through the same clean-up as an error, and so
    # does a watchdog far beyond what the runs need.
    def stop(signum, _frame):
        raise SystemExit(f"stopped by signal {signal.Signals(signum).name}")
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(1800 + (len(chosen) + 1) * (SECONDS + 120))

    path, _ = bench.dataset()
    data, url = bench.start_database()
    script = None
    try:
        subprocess.run([bench.BIN, "migrate", "--database-url", url], check=True, capture_output=True)
        log(f"importing {os.path.basename(path)}")
        imported = subprocess.run([bench.BIN, "import", path, "--database-url", url], check=True, capture_output=True, text=True)
        lines = re.search(r"imported (\d+) lines", imported.stderr).group(1)
        bench.psql(url, "VACUUM ANALYZE")
        organisation = bench.psql(url, "SELECT id FROM organisation WHERE name = 'Organisation 1'")
        keys = {"load": create_key(url, organisation, "hostile load"), "attack": create_key(url, organisation, "hostile attacker")}
        bodies, big_answer = dashboard_bodies(url, keys["load"])
        script = wrk_script(keys["load"], bodies)

        log(f"warming up ({min(SECONDS, 5)} s)")
        server = Server(url)
        try:
            start_wrk(server.port, script, min(SECONDS, 5)).communicate(timeout=SECONDS + 60)
        finally:
            server.stop()

        rows = []
        quiet_p99 = None
        for attack, title in [(None, "none (quiet)")] + chosen:
            log(f"{title}: {SECONDS} s")
            try:
                run = measure(url, keys, script, bodies, attack, SECONDS)
            except Exception as e:  # noqa: BLE001 - one broken row must not lose the others
                run = {"figures": None, "peak_kb": 0, "notes": [f"benchmark error: {type(e).__name__}: {e}"],
                       "probe_p99": None, "broke": True}
            figures, peak_kb, notes, broke = run["figures"], run["peak_kb"], run["notes"], run["broke"]
            rps, p99, p99_text, load_notes = load_figures(figures, run["probe_p99"])
            notes += load_notes
            if attack is None:
                quiet_p99 = p99
            ratio = p99 / quiet_p99 if p99 is not None and quiet_p99 else None
            peak = peak_kb / 1024
            missed = []
            if ratio is None or ratio > GOAL_RATIO:
                missed.append("p99")
            if peak >= GOAL_MIB:
                missed.append("memory")
            if broke:
                missed.append("the server stalled or died")
            if attack:
                notes.insert(0, "goal met" if not missed else "**goal missed** (" + ", ".join(missed) + ")")
            rows.append(f"| {title} | {rps:.0f} | {p99_text} | {('≥ ' if '≥' in p99_text else '') + f'{ratio:.1f}×' if ratio is not None else '—'} "
                        f"| {peak:.0f} | {'; '.join(notes).replace('|', '/')} |")
            log(rows[-1])

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        built = (f"the release build of this checkout ({commit}{' with uncommitted changes' if dirty else ''})"
                 if os.path.realpath(bench.BIN).startswith(os.path.realpath(ROOT) + os.sep) else f"billgraph from {bench.BIN}")
        report = [
            "# Hostile clients\n",
            f"Measured {datetime.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores "
            f"({platform.platform()}), {built}; PostgreSQL "
            f"{bench.psql(url, 'SHOW server_version').split()[0]}, the server, wrk and the attacker share the machine.",
            f"Dataset: `billgraph seed --customers {bench.CUSTOMERS} --orgs 2`, {lines} lines. The server runs its "
            f"defaults{' with ' + ' '.join(SERVER_ARGS) if SERVER_ARGS else ''} and is started afresh for every row.\n",
            f"Load: wrk, {CONNECTIONS} keep-alive connections, the canonical dashboard query (25 customers with "
            f"their latest 10 invoices, payments and refunds) at a random one of {len(bodies)} pages, "
            f"{SECONDS} s per row. The attack starts {ATTACK_DELAY} s after the load and stops with it. "
            f"Throughput counts 2xx answers; p99 is wrk's, which counts only answered requests: so when more than 1% "
            f"time out (after {WRK_TIMEOUT} s) p99 shows as ≥ {WRK_TIMEOUT * 1000}, and when more than 1% of the "
            f"probes (a dashboard request on a new connection every 250 ms, beside wrk) are still unanswered at the "
            f"end after more than 1 s, p99 shows as ≥ the probes' p99 counting how long those had waited. Peak RSS is the most of VmRSS "
            f"and VmHWM sampled every 100 ms (the server is killed beyond {RSS_LIMIT_MIB} MiB). The attackers and the "
            f"load use two keys of the same organisation{', both without a rate limit' if has_rate_limits() else ''}. "
            f"The pipelining attack's answer (dashboard, first: 100) is {big_answer / 1000:.0f} KB.\n",
            f"Goal: p99 within {GOAL_RATIO}x of the quiet run and memory under {GOAL_MIB} MiB.\n",
            "| attack | throughput (req/s) | p99 (ms) | p99 / quiet | peak RSS (MiB) | notes |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
        print("\n".join(report), flush=True)
    finally:
        for proc in children:
            if proc.poll() is None:
                proc.kill()
        bench.sh(f'pg_stop "{data}"')
        shutil.rmtree(os.path.dirname(data), ignore_errors=True)
        if script:
            os.unlink(script)


if __name__ == "__main__":
    main()
