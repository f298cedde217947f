"""Fixtures of the integration suite: a fresh database per session with a generated
dataset imported through the real command line, and the real server on a loopback port.

Needs BILLGRAPH_BIN (the built binary) and BILLGRAPH_TEST_ADMIN_URL (a libpq URL of a
PostgreSQL where databases may be created); scripts/test sets both. Without them the
suite fails rather than skips: a database test that skips proves nothing."""
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from model import Model

_RUN_TEMP = None
# The databases this run made, dropped at its end: on a developer's own cluster, runs had
# left hundreds behind (scripts/test's cluster goes away with its run anyway).
_RUN_DATABASES = []


def pytest_configure(config):
    """Every temporary file and folder of the tests (datasets of up to a gigabyte among them)
    goes into one folder of this run, removed at its end: left in /tmp, a day of runs had
    filled 15 GB. Open to other users, as /tmp is, for the private clusters' `postgres`."""
    global _RUN_TEMP
    _RUN_TEMP = tempfile.tempdir = tempfile.mkdtemp(prefix="billgraph-tests-")
    os.chmod(_RUN_TEMP, 0o755)


def pytest_unconfigure(config):
    tempfile.tempdir = None
    for name in _RUN_DATABASES:
        subprocess.run(["psql", ADMIN_URL, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)
    if _RUN_TEMP:
        shutil.rmtree(_RUN_TEMP, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, config):
    """The random order's seed, at the end where a failure is read (pytest-randomly prints it
    in the header, which -q hides)."""
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.hasplugin("randomly") and isinstance(seed, int):
        terminalreporter.write_line(f"random order seed {seed}: repeat it with -p randomly --randomly-seed={seed}")


def _required_env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the suite through scripts/test")
    return value


BIN = _required_env("BILLGRAPH_BIN")
ADMIN_URL = _required_env("BILLGRAPH_TEST_ADMIN_URL")
ADMIN_PORT = re.search(r"port=(\d+)", ADMIN_URL).group(1)
# Set by scripts/test for its second run: every server of the suite's own cluster then
# reaches it through PgBouncer in transaction-pooling mode, with no named prepared
# statements (RULES.md section 9). Command-line tools and psql still go straight to it.
PGBOUNCER_PORT = os.environ.get("BILLGRAPH_TEST_PGBOUNCER_PORT")


def psql(url, sql):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-tAc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def database_url(name):
    return re.sub(r"dbname=\S+", f"dbname={name}", ADMIN_URL)


def new_database(prefix="bgtest_", options=""):
    """An empty database of this run (dropped at its end); its URL."""
    name = prefix + uuid.uuid4().hex[:12]
    psql(ADMIN_URL, f"CREATE DATABASE {name} {options}")
    _RUN_DATABASES.append(name)
    return database_url(name)


def create_database():
    url = new_database()
    run_cli("migrate", url=url)
    return url


def run_cli(*args, url=None, input=None, check=True):
    env = dict(os.environ)
    if url:
        env["BILLGRAPH_DATABASE_URL"] = url
    return subprocess.run([BIN, *args], env=env, input=input, capture_output=True, text=True, check=check)


def seed(path, customers, orgs=2, seed_value=7):
    with open(path, "w") as out:
        proc = subprocess.run([BIN, "seed", "--customers", str(customers), "--orgs", str(orgs), "--seed", str(seed_value)],
                              stdout=out, stderr=subprocess.PIPE, text=True, check=True)
    keys = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"org (\d+) (\w+): (\S+)", line)
        if m:
            keys[(int(m.group(1)), m.group(2))] = m.group(3)
    return keys


class Server:
    """The real billgraph server on a free loopback port. `wrapper` runs it under another
    command (strace); `pid` is the server's own process either way. `env` adds environment
    variables (the statement trace), or removes those given as None. `access` holds the lines of its access log (standard
    output), read by a thread of their own; with `access_paused`, only once
    `resume_access()` is called (a log collector that stops reading); with `log_paused`, its
    standard error is not read past the port it announces until `resume_log()`."""

    def __init__(self, url, *options, wrapper=(), env=None, start_timeout=30, listen="127.0.0.1:0", access_paused=False,
                 log_paused=False):
        # PgBouncer cannot carry a statement_timeout of the server's choosing (it sets 30 s
        # itself): a server given another goes straight to the database.
        if PGBOUNCER_PORT and f"port={ADMIN_PORT} " in url and "--statement-timeout-ms" not in options:
            url = url.replace(f"port={ADMIN_PORT} ", f"port={PGBOUNCER_PORT} ")
            options = ("--prepared-statements", "off", *options)
        self.proc = subprocess.Popen([*wrapper, BIN, "serve", "--listen", listen, "--database-url", url, *options],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None})
        self.access = []
        self._access_reading = threading.Event()
        if not access_paused:
            self._access_reading.set()

        def read_access():
            self._access_reading.wait()
            for line in iter(self.proc.stdout.readline, ""):
                self.access.append(line)

        threading.Thread(target=read_access, daemon=True).start()
        self.pid = self.proc.pid
        # One thread reads everything the server logs, for as long as it runs (so that a full
        # pipe never blocks it), and reports the port it announces; this thread waits for that
        # with a deadline, which a blocking readline here could not keep.
        self.log = []
        announced = queue.Queue()
        self._log_reading = threading.Event()
        if not log_paused:
            self._log_reading.set()

        def read():
            port = None
            for line in iter(self.proc.stderr.readline, ""):
                self.log.append(line)
                m = port is None and re.search(r"listening on http://127\.0\.0\.1:(\d+)/graphql", line)
                if m:
                    port = int(m.group(1))
                    announced.put(port)
                    self._log_reading.wait()
            announced.put(None)  # the server closed its standard error: it has exited

        threading.Thread(target=read, daemon=True).start()
        try:
            self.port = announced.get(timeout=start_timeout)
        except queue.Empty:
            self.port = None
        if self.port is None:
            self.proc.kill()
            self.proc.wait(10)
            raise RuntimeError("the server did not start: " + "".join(self.log[-20:]))
        if wrapper:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                self.pid = int(f.read().split()[0])

    def resume_access(self):
        self._access_reading.set()

    def resume_log(self):
        self._log_reading.set()

    def log_text(self):
        return "".join(self.log)

    def request(self, body=None, key=None, method="POST", headers=None, path="/graphql", raw=None, query_string=""):
        all_headers = {}
        if body is not None or raw is not None:
            all_headers["Content-Type"] = "application/json"
        if key:
            all_headers["Authorization"] = f"Bearer {key}"
        all_headers.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}{query_string}", data=data,
                                     headers=all_headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return Response(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())

    def gql(self, query, variables=None, key=None, operation=None):
        body = {"query": query}
        if variables is not None:
            body["variables"] = variables
        if operation:
            body["operationName"] = operation
        return self.request(body, key=key)

    def stop(self):
        if self.pid != self.proc.pid:
            try:
                os.kill(self.pid, 15)  # the server itself, not only its wrapper
            except ProcessLookupError:
                pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            if self.pid != self.proc.pid:
                try:
                    os.kill(self.pid, 9)
                except ProcessLookupError:
                    pass


def resident_kib(pid):
    """A process's resident memory (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.raw = body
        self.json = json.loads(body) if body else None

    @property
    def data(self):
        return self.json.get("data")

    @property
    def errors(self):
        return self.json.get("errors", [])

    def codes(self):
        return [e.get("extensions", {}).get("code") for e in self.errors]

    def statements(self):
        return int(self.headers["x-billgraph-statements"])


QUERIES = os.path.join(os.path.dirname(__file__), "..", "..", "schema", "queries")


def canonical(name):
    with open(os.path.join(QUERIES, name + ".graphql")) as f:
        return f.read()


def open_data(customers, seed_value, orgs=2):
    """A fresh database with a generated dataset imported through the command line, and the
    model of that dataset (no server)."""
    path = os.path.join(tempfile.mkdtemp(), "data.jsonl")
    keys = seed(path, customers=customers, orgs=orgs, seed_value=seed_value)
    url = create_database()
    run_cli("import", path, url=url)
    # The generated keys have no rate limit (RULES.md section 8), so that the tests of
    # everything else may send as much as they need; test_clients.py tests the budgets
    # with keys of its own.
    psql(url, "UPDATE api_key SET rate_limit = 0")
    return {"model": Model(path), "keys": keys, "url": url, "path": path}


def open_world(customers, seed_value):
    """A fresh database with a generated dataset (two organisations) imported through the
    command line, the model of that dataset, and a server over it."""
    opened = open_data(customers, seed_value)
    opened["server"] = Server(opened["url"])
    return opened


ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def cluster(command, directory, port=""):
    """pg_start or pg_stop (scripts/lib/common.sh) on a cluster of the test's own."""
    subprocess.run(["bash", "-c", f'source scripts/lib/common.sh && {command} "{directory}" {port}'],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)


@pytest.fixture
def private_cluster():
    """A PostgreSQL cluster of the test's own, which the test may stop and start, with a
    small dataset (one organisation) imported."""
    workdir = tempfile.mkdtemp()
    os.chmod(workdir, 0o755)
    port = subprocess.run(["python3", "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"],
                          capture_output=True, text=True).stdout.strip()
    data = os.path.join(workdir, "pg")
    cluster("pg_start", data, f'{port} "-c fsync=off"')
    try:
        admin = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        psql(admin, "CREATE DATABASE resilience")
        url = admin.replace("dbname=postgres", "dbname=resilience")
        run_cli("migrate", url=url)
        path = os.path.join(workdir, "data.jsonl")
        keys = seed(path, customers=10, orgs=1)
        run_cli("import", path, url=url)
        psql(url, "UPDATE api_key SET rate_limit = 0")  # as in open_data
        yield {"data": data, "port": port, "url": url, "keys": keys, "model": Model(path)}
    finally:
        cluster("pg_stop", data)


@pytest.fixture(scope="session")
def world():
    """The read-only world most tests share, in whatever order they run: no test may change
    it (not a row, not a setting). A test that writes opens a world or database of its own."""
    opened = open_world(customers=60, seed_value=8)
    yield opened
    opened["server"].stop()


# ------------------------------------------------------------------ helpers with deadlines

def counter(server, name):
    """The value of the unlabelled sample `name` of the server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return float(next(l for l in text.splitlines() if l.startswith(name + " ")).split()[1])


def wait_until(predicate, timeout, what):
    """Polls predicate until it answers something true, which it returns; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def read_until(sock, done, timeout=30, closed_ok=False):
    """Reads from a socket until done(bytes so far) is true. Fails at the deadline, and when the
    peer closes first unless closed_ok (then returns what came)."""
    deadline = time.monotonic() + timeout
    data = b""
    while not done(data):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no complete answer within {timeout} s; got {data[:300]!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue  # the deadline check above ends the loop
        if not chunk:
            if closed_ok:
                return data
            raise AssertionError(f"the connection closed before a complete answer; got {data[:300]!r}")
        data += chunk
    return data


def read_to_close(sock, timeout=30):
    """Reads a socket until the peer closes it; fails if it is still open at the deadline."""
    return read_until(sock, lambda _: False, timeout=timeout, closed_ok=True)


class PsqlSession:
    """An interactive psql kept open across statements, to hold locks (or a transaction) while
    the server works. Output is read by a thread; every wait for it has a deadline."""

    def __init__(self, url):
        self.proc = subprocess.Popen(["psql", url, "-X", "-q", "-tA"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        self.sent = 0

        def read():
            for line in iter(self.proc.stdout.readline, ""):
                self.lines.put(line.rstrip("\n"))
            self.lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def send(self, sql):
        """Sends statements without waiting for them (they may wait on a lock); returns a ticket for `wait`."""
        self.sent += 1
        marker = f"--psql-done-{self.sent}--"
        self.proc.stdin.write(sql.rstrip() + f"\n\\echo {marker}\n")
        self.proc.stdin.flush()
        return marker

    def wait(self, ticket, timeout=30):
        """The output lines of the statements sent with `ticket`, once they have finished."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"psql did not finish within {timeout} s; said {out}")
            if line is None:
                raise AssertionError(f"psql ended; said {out}")
            if line == ticket:
                return out
            out.append(line)

    def run(self, sql, timeout=30):
        out = self.wait(self.send(sql), timeout)
        assert not any(line.startswith(("ERROR", "FATAL")) for line in out), out
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def backends_waiting_on_a_lock(url, text):
    """Process ids of the backends of url's database whose statement holds text and waits on a lock."""
    out = psql(url, "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() "
                    f"AND query LIKE '%{text}%' AND pid <> pg_backend_pid()")
    return [int(pid) for pid in out.split()]


def cpu_seconds(stat_path):
    """User and system time from a /proc stat file: /proc/PID/stat (every thread of the
    process) or /proc/PID/task/TID/stat (one thread)."""
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)


def create_key(url, organisation, scopes, *options):
    """Creates an API key through the command line; returns (its id, the key)."""
    created = run_cli("keys", "create", "--organisation", organisation, "--scopes", scopes, *options, url=url)
    key = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("key:"))
    key_id = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("key id:"))
    return key_id, key


# Words that would show SQL, the driver's or the database's own messages, or a stack trace.
_INTERNALS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|SQLSTATE)\b|\bbg_[a-z_]+|\$\d|"
                        r"(?i:libpq|postgres|psql|connection to server|could not connect|refused|terminat|"
                        r"statement timeout|deadlock|\.swift\b|fatal error|backtrace)")


def assert_no_internals(response):
    """RULES.md section 5: errors never show SQL, stack traces or other organisations' data."""
    text = response.raw.decode("utf-8", "replace")
    found = _INTERNALS.search(text)
    assert not found, f"the answer shows {found.group(0)!r}: {text}"
