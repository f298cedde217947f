"""Hostile clients for benchmarks/hostile, one attack per process.

    python3 benchmarks/attacks.py ATTACK --port PORT --key KEY --seconds S

runs ATTACK against http://127.0.0.1:PORT/graphql until S seconds have passed, then
closes every connection and prints one JSON object on standard output:
{"attack": ..., "notes": "what the server did", "counters": {...}}. Every wait has the
same deadline, so the process ends on time whatever the server does. Only the standard
library: asyncio streams, or raw sockets where the client must never read.

It can also be aimed by hand at a server being worked on (`--list` names the attacks).
"""
import argparse
import asyncio
import base64
import collections
import json
import os
import random
import re
import resource
import socket
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The deadline of the whole attack (time.monotonic()), set by main().
DEADLINE = 0.0


class PastDeadline(Exception):
    pass


def remaining():
    return DEADLINE - time.monotonic()


async def within(awaitable, limit=None):
    """Awaits until the attack's deadline (or `limit` seconds, whichever is sooner)."""
    left = remaining() if limit is None else min(limit, remaining())
    if left <= 0:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise PastDeadline()
    try:
        return await asyncio.wait_for(awaitable, left)
    except asyncio.TimeoutError:
        if remaining() <= 0:
            raise PastDeadline() from None
        raise


class Tally:
    """What the server did, counted by the attackers."""

    def __init__(self):
        self.counts = collections.Counter()
        self.answers = collections.Counter()       # "401", "200 QUERY_TOO_COMPLEX", "200 data", ...
        self.answer_ms = collections.defaultdict(list)
        self.errors = collections.Counter()        # connect errors and the like, by kind

    def answer(self, label, seconds):
        self.answers[label] += 1
        self.answer_ms[label].append(seconds * 1000)

    def error(self, kind, exc=None):
        name = type(exc).__name__ if exc is not None else ""
        if isinstance(exc, OSError) and exc.errno:
            name = errno_name(exc.errno)
        self.errors[f"{kind} {name}".strip()] += 1

    def answers_text(self):
        if not self.answers:
            return "no answers"
        parts = []
        for label, n in self.answers.most_common():
            times = self.answer_ms[label]
            parts.append(f"{label} ×{n} (median {statistics.median(times):.0f} ms, max {max(times):.0f} ms)")
        return "answers: " + ", ".join(parts)

    def errors_text(self):
        return ", ".join(f"{k} ×{n}" for k, n in self.errors.most_common())


def errno_name(number):
    import errno
    return errno.errorcode.get(number, str(number))


# --- HTTP on asyncio streams ------------------------------------------------------------

class Target:
    def __init__(self, host, port, key, sources):
        self.host, self.port, self.key = host, port, key
        # Source addresses 127.0.0.2.. so that many connections do not run out of ephemeral ports.
        self.sources = [f"127.0.0.{2 + i}" for i in range(sources)] if host.startswith("127.") and sources else [None]
        self.next_source = 0

    def source(self):
        s = self.sources[self.next_source % len(self.sources)]
        self.next_source += 1
        return s

    async def connect(self, limit=5, **kw):
        source = self.source()
        return await within(asyncio.open_connection(self.host, self.port, limit=1 << 20,
                                                    local_addr=(source, 0) if source else None, **kw), limit)

    def post(self, body, key=None, extra=b""):
        key = self.key if key is None else key
        return (b"POST /graphql HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer %s\r\n%sContent-Length: %d\r\n\r\n"
                % (self.host.encode(), self.port, key.encode() if isinstance(key, str) else key, extra, len(body))) + body


def graphql_body(query, variables=None):
    return json.dumps({"query": query, "variables": variables or {}}).encode()


async def read_response(reader):
    """(status, body bytes, whether the server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        body = await reader.read()
    return status, body, headers.get("connection", "").lower() == "close"


def label_of(status, body):
    """"401", "200 data", "200 QUERY_TOO_COMPLEX", "400 BAD_USER_INPUT"..."""
    start = body[:65536]
    code = re.search(rb'"code"\s*:\s*"([A-Z_]+)"', start)
    if status == 200 and start.lstrip().startswith(b'{"data"') and not code:
        return "200 data"
    if status == 200 and not code:
        return "200 data" if b'"data"' in start else "200"
    return f"{status} {code.group(1).decode()}" if code else str(status)


async def ask_repeatedly(target, tally, bodies, connections, key_for=None, note_size=False):
    """`connections` clients, each sending the next body and reading its answer until the
    deadline. `bodies(i)` gives the i-th body; `key_for(i)` the i-th key (default: the target's)."""
    counter = iter(range(1 << 62))

    async def client():
        while remaining() > 0:
            try:
                reader, writer = await target.connect()
            except PastDeadline:
                return
            except Exception as e:  # noqa: BLE001 - every failure is counted, none ends the attack
                tally.error("connect", e)
                await asyncio.sleep(0.1)
                continue
            try:
                while True:
                    i = next(counter)
                    request = target.post(bodies(i), key=key_for(i) if key_for else None)
                    started = time.monotonic()
                    writer.write(request)
                    tally.counts["sent"] += 1
                    tally.counts["bytes sent"] += len(request)
                    await within(writer.drain())
                    status, body, close = await within(read_response(reader))
                    tally.answer(label_of(status, body), time.monotonic() - started)
                    tally.counts["answer bytes"] += len(body)
                    if close:
                        tally.counts["closed by server"] += 1
                        break
            except PastDeadline:
                tally.counts["unanswered at the deadline"] += 1
                return
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                tally.error("closed", e)
            except Exception as e:  # noqa: BLE001
                tally.error("failed", e)
            finally:
                writer.transport.abort()

    await asyncio.gather(*(client() for _ in range(connections)))


# --- the attacks ------------------------------------------------------------------------

def dashboard():
    return open(os.path.join(ROOT, "schema", "queries", "dashboard.graphql")).read()


async def idle(target, tally, count=10_000):
    """10,000 connections that send nothing (from 127.0.0.2.. so that ephemeral ports do not
    run out); one the server closes is opened again half a second later."""
    # Plain sockets connected one after another (a connection over loopback is made at
    # once unless the server's backlog is full) and watched with add_reader: opening
    # 10,000 costs the attacker far less CPU than 10,000 tasks would, so the ramp is short.
    loop = asyncio.get_running_loop()
    sockets = {}
    started = time.monotonic()
    all_open = None

    def open_one(first):
        nonlocal all_open
        if remaining() <= 0:
            return
        s = socket.socket()
        try:
            source = target.source()
            if source:
                s.bind((source, 0))
            s.settimeout(max(0.01, min(2, remaining())))
            s.connect((target.host, target.port))
        except OSError as e:
            s.close()
            tally.error("connect", e)
            loop.call_later(0.5, open_one, first)
            return
        s.setblocking(False)
        sockets[s.fileno()] = s
        loop.add_reader(s.fileno(), readable, s)
        tally.counts["opened" if first else "reopened"] += 1
        tally.counts["most open at once"] = max(tally.counts["most open at once"], len(sockets))
        if len(sockets) == count and all_open is None:
            all_open = time.monotonic() - started

    def readable(s):
        try:
            data = s.recv(4096)
        except BlockingIOError:
            return
        except OSError as e:
            tally.error("closed", e)
            data = b""
        if data.startswith(b"HTTP/"):
            tally.answers[data.split(b" ")[1].decode(errors="replace")] += 1
        if data:
            return
        tally.counts["closed by server"] += 1
        loop.remove_reader(s.fileno())
        del sockets[s.fileno()]
        s.close()
        loop.call_later(0.5, open_one, False)

    try:
        for i in range(count):
            if remaining() <= 0:
                break
            open_one(True)
            if i % 100 == 99:
                await asyncio.sleep(0)  # let the callbacks of closed connections run
        await asyncio.sleep(max(0, remaining()))
    finally:
        for fd, s in list(sockets.items()):
            loop.remove_reader(fd)
            s.close()
    return (f"{count} idle connections: {tally.counts['opened']} opened, at most {tally.counts['most open at once']} "
            f"open at once" + (f" (all {count} after {all_open:.1f} s)" if all_open is not None else "") +
            f", {tally.counts['closed by server']} closed by the server (then reopened: {tally.counts['reopened']})")


async def slow(target, tally, count=1_000, interval=2.0):
    """1,000 connections: half dribble a request's headers a byte every 2 seconds, half
    dribble blank lines (CR LF) every 2 seconds; one the server closes is opened again."""
    header = b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: "

    def dribble(kind, i):
        if kind == "blank lines":
            return b"\r\n"
        return header[i:i + 1] if i < len(header) else b"a"

    async def one(kind):
        await asyncio.sleep(random.uniform(0, interval))
        while remaining() > 0:
            try:
                reader, writer = await target.connect()
            except PastDeadline:
                return
            except Exception as e:  # noqa: BLE001
                tally.error("connect", e)
                await asyncio.sleep(0.5)
                continue
            tally.counts[f"{kind}: opened"] += 1
            opened = time.monotonic()
            watch = asyncio.ensure_future(reader.read(4096))
            try:
                i = 0
                while not watch.done():
                    writer.write(dribble(kind, i))
                    i += 1
                    tally.counts["bytes sent"] += 1
                    await within(writer.drain())
                    await within(asyncio.wait({watch}, timeout=interval))
                data = watch.result()
                if data.startswith(b"HTTP/"):
                    tally.answers[f"{kind}: {data.split(b' ')[1].decode()}"] += 1
                tally.counts[f"{kind}: closed by server"] += 1
                tally.answer_ms[f"{kind}: closed after"].append((time.monotonic() - opened) * 1000)
            except PastDeadline:
                return
            except ConnectionError as e:
                tally.error(f"{kind}: closed", e)
                tally.counts[f"{kind}: closed by server"] += 1
                tally.answer_ms[f"{kind}: closed after"].append((time.monotonic() - opened) * 1000)
            finally:
                watch.cancel()
                writer.transport.abort()

    kinds = ["headers", "blank lines"]
    seconds = remaining()
    await asyncio.gather(*(one(kinds[i % 2]) for i in range(count)))
    parts = []
    for kind in kinds:
        closed = tally.counts[f"{kind}: closed by server"]
        after = tally.answer_ms.get(f"{kind}: closed after")
        parts.append(f"{kind}: {closed} closed by the server" +
                     (f" (after {statistics.median(after) / 1000:.0f} s median)" if after else ""))
    short = " (shorter than the contract's 30 s to receive a request)" if seconds < 31 else ""
    return f"{count} slow clients for {seconds:.0f} s{short}, a byte every {interval:.0f} s; " + "; ".join(parts)


async def pipeline(target, tally, connections=8, batch=16, first=100):
    """8 connections that pipeline dashboard requests (100 customers, nested lists) as fast
    as the server takes them and never read an answer (raw sockets, a 4 KB receive buffer),
    then reset."""
    request = target.post(graphql_body(dashboard(), {"first": first}))
    loop = asyncio.get_running_loop()
    per_connection = []

    async def one():
        sent = 0
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        try:
            source = target.source()
            if source:
                s.bind((source, 0))
            await within(loop.sock_connect(s, (target.host, target.port)), 5)
            while True:
                await within(loop.sock_sendall(s, request * batch))
                sent += batch
                tally.counts["requests sent"] += batch
        except PastDeadline:
            pass
        except Exception as e:  # noqa: BLE001
            tally.error("closed", e)
        finally:
            per_connection.append(sent)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return (f"{connections} connections pipelined dashboard(first: {first}) requests and read nothing: "
            f"{tally.counts['requests sent']} written ({min(per_connection)}–{max(per_connection)} per connection, "
            f"most of them left in the kernel's buffers) before writing blocked or the time was up")


async def bogus_keys(target, tally, distinct=10_000, size=60_000, connections=8):
    """Requests with 10,000 different random keys of 60,000 characters each
    (Authorization: Bearer), cycling, from 8 connections as fast as they are answered."""
    salt = random.getrandbits(64)
    body = graphql_body("{ __typename }")

    def key(i):
        raw = random.Random(f"{salt}-{i % distinct}").randbytes(size * 3 // 4)
        return base64.b64encode(raw)[:size]

    await ask_repeatedly(target, tally, lambda i: body, connections, key_for=key)
    return (f"{tally.counts['sent']} requests with {min(tally.counts['sent'], distinct)} different {size // 1000} KB "
            f"keys from {connections} connections")


async def comments(target, tally, distinct=1_000, connections=4):
    """The dashboard query padded with distinct comment lines to 200–900 KB, 1,000
    different documents, cycling, from 4 connections."""
    query = dashboard()
    rng = random.Random()
    # Lines of 100 characters, 1 MB of them: a document is a slice of whole lines.
    pad = "".join(f"# {rng.getrandbits(256):064x} {rng.getrandbits(128):032x}\n" for _ in range(10_000))
    salt = random.getrandbits(64)

    def body(i):
        r = random.Random(f"{salt}-{i % distinct}")
        start = r.randrange(0, 1_000) * 100
        size = r.randrange(2_000, 9_000) * 100
        text = f"# document {i % distinct} of {salt}\n" + pad[start:start + size] + query
        return graphql_body(text, {"first": 25})

    await ask_repeatedly(target, tally, body, connections)
    return (f"{tally.counts['sent']} documents ({min(tally.counts['sent'], distinct)} different, "
            f"{tally.counts['bytes sent'] / max(1, tally.counts['sent']) / 1000:.0f} KB on average) "
            f"from {connections} connections")


def fragment_bomb(levels):
    lines = ["{ customers(first: 1) { nodes { ...F1 } } }"]
    for n in range(1, levels):
        lines.append(f"fragment F{n} on Customer {{ a: invoices(first: 1) {{ customer {{ ...F{n + 1} }} }} "
                     f"b: invoices(first: 1) {{ customer {{ ...F{n + 1} }} }} }}")
    lines.append(f"fragment F{levels} on Customer {{ id }}")
    return "\n".join(lines)


async def fragments(target, tally, connections=4):
    """Doubling fragments (F1 selects F2 twice, ... down to Fn { id }), 20, 40 and 200 of
    them in turn, from 4 connections."""
    bodies = [graphql_body(fragment_bomb(n)) for n in (20, 40, 200)]
    await ask_repeatedly(target, tally, lambda i: bodies[i % 3], connections)
    return (f"{tally.counts['sent']} fragment bombs (20, 40, 200 doubling fragments in turn) "
            f"from {connections} connections")


async def aliases(target, tally, connections=4):
    """Thousands of aliases of one field, under the parser's 20,000 tokens: 5,000 distinct
    aliases of a customer's name, 5,000 repeats of one alias, 6,600 aliases of __typename, in turn."""
    bodies = [
        graphql_body("{ customers(first: 1) { nodes { " + " ".join(f"a{i}: name" for i in range(5000)) + " } } }"),
        graphql_body("{ customers(first: 1) { nodes { " + " ".join("a: name" for _ in range(5000)) + " } } }"),
        graphql_body("{ " + " ".join(f"t{i}: __typename" for i in range(6600)) + " }"),
    ]
    await ask_repeatedly(target, tally, lambda i: bodies[i % 3], connections)
    return (f"{tally.counts['sent']} alias floods (5,000 distinct aliases, 5,000 repeats of one alias, "
            f"6,600 aliases of __typename, in turn) from {connections} connections")


async def budget(target, tally, count=290, connections=4):
    """One query with 290 aliases of a list with a large `first` (each `first` different,
    so that no two are the same read): at the root (about 250,000 list items, under the
    500,000 limit, on a large enough dataset), and nested under 1,000 customers (millions of
    items, over it), in turn, from 4 connections."""
    root = "{ " + " ".join(f"a{i}: invoices(first: {1000 - i}) {{ nodes {{ id }} }}" for i in range(count)) + " }"
    nested = ("{ customers(first: 1000) { nodes { " +
              " ".join(f"a{i}: invoices(first: {1000 - i}) {{ id }}" for i in range(count)) + " } } }")
    bodies = [graphql_body(root), graphql_body(nested)]
    await ask_repeatedly(target, tally, lambda i: bodies[i % 2], connections)
    return (f"{tally.counts['sent']} queries of {count} aliases (root invoices(first: ~1000) and, in turn, "
            f"invoices(first: ~1000) under customers(first: 1000)) from {connections} connections")


ATTACKS = {
    "idle": idle,
    "slow": slow,
    "pipeline": pipeline,
    "bogus-keys": bogus_keys,
    "comments": comments,
    "fragments": fragments,
    "aliases": aliases,
    "budget": budget,
}


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def run(name, target, seconds):
    global DEADLINE
    DEADLINE = time.monotonic() + seconds
    tally = Tally()
    task = asyncio.ensure_future(ATTACKS[name](target, tally))
    try:
        # The attackers stop themselves at the deadline; this is the backstop.
        summary = await asyncio.wait_for(task, seconds + 5)
    except asyncio.TimeoutError:
        summary = f"{name}: stopped 5 s after its deadline"
    notes = [summary]
    if tally.answers and name not in ("idle", "slow"):
        notes.append(tally.answers_text())
    elif tally.answers:
        notes.append("answers: " + ", ".join(f"{k} ×{n}" for k, n in tally.answers.most_common()))
    if tally.errors:
        notes.append(tally.errors_text())
    if tally.counts["unanswered at the deadline"]:
        notes.append(f"{tally.counts['unanswered at the deadline']} waiting for an answer at the deadline")
    return {"attack": name, "notes": "; ".join(notes), "counters": dict(tally.counts),
            "answers": dict(tally.answers), "errors": dict(tally.errors)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("attack", nargs="?", choices=sorted(ATTACKS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--key", help="a valid API key (billing:read)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--sources", type=int, default=8, help="source addresses 127.0.0.2.. to connect from")
    parser.add_argument("--list", action="store_true", help="list the attacks and exit")
    args = parser.parse_args()
    if args.list or not args.attack:
        for name, f in ATTACKS.items():
            print(f"{name:11} {' '.join(f.__doc__.split())}")
        return
    if args.port is None or args.key is None:
        parser.error("--port and --key are needed")
    raise_file_limit()
    result = asyncio.run(run(args.attack, Target(args.host, args.port, args.key, args.sources), args.seconds))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
