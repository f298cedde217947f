"""Fixtures of the integration suite: a fresh database per session with a generated
dataset imported through the real command line, and the real server on a loopback port.

Needs BILLGRAPH_BIN (the built binary) and BILLGRAPH_TEST_ADMIN_URL (a libpq URL of a
PostgreSQL where databases may be created); scripts/test sets both. Without them the
suite fails rather than skips: a database test that skips proves nothing."""
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from model import Model


def _required_env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the suite through scripts/test")
    return value


BIN = _required_env("BILLGRAPH_BIN")
ADMIN_URL = _required_env("BILLGRAPH_TEST_ADMIN_URL")


def psql(url, sql):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-tAc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def database_url(name):
    return re.sub(r"dbname=\S+", f"dbname={name}", ADMIN_URL)


def create_database():
    name = "bgtest_" + uuid.uuid4().hex[:12]
    psql(ADMIN_URL, f"CREATE DATABASE {name}")
    url = database_url(name)
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
    command (strace); `pid` is the server's own process either way."""

    def __init__(self, url, *options, wrapper=()):
        self.proc = subprocess.Popen([*wrapper, BIN, "serve", "--listen", "127.0.0.1:0", "--database-url", url, *options],
                                     stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        deadline = time.time() + 30
        self.port = None
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/graphql", line)
            if m:
                self.port = int(m.group(1))
                break
            if not line and self.proc.poll() is not None:
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("the server did not start")
        if wrapper:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                self.pid = int(f.read().split()[0])
        # Keep reading what the server logs, so that a full pipe never blocks it.
        self.log = []
        threading.Thread(target=lambda: self.log.extend(iter(self.proc.stderr.readline, "")), daemon=True).start()

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


def open_world(customers, seed_value):
    """A fresh database with a generated dataset (two organisations) imported through the
    command line, the model of that dataset, and a server over it."""
    path = os.path.join(tempfile.mkdtemp(), "data.jsonl")
    keys = seed(path, customers=customers, seed_value=seed_value)
    url = create_database()
    run_cli("import", path, url=url)
    return {"server": Server(url), "model": Model(path), "keys": keys, "url": url, "path": path}


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
        yield {"data": data, "port": port, "url": url, "keys": keys}
    finally:
        cluster("pg_stop", data)


@pytest.fixture(scope="session")
def world():
    """The read-only world most tests share."""
    opened = open_world(customers=60, seed_value=8)
    yield opened
    opened["server"].stop()
