"""RULES.md section 4, "Several mutations in one operation": an operation is applied
entirely or not at all, whatever fails in it and whatever happens to the database or
the server meanwhile. What was applied is read from the raw rows, never from the
answer alone."""
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import PsqlSession, Server, backends_waiting_on_a_lock, cluster, open_world, psql
from figures import assert_figures_match, record_credit_notes

ZERO = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def bank():
    """A world of its own, since mutations change it."""
    opened = open_world(customers=40, seed_value=21)
    record_credit_notes(opened["server"])
    yield opened
    opened["server"].stop()


def refunded(url, payment):
    """What the refund rows of a payment add up to."""
    return int(psql(url, f"SELECT COALESCE(sum(amount), 0) FROM refund WHERE payment_id = '{payment}'"))


def notes(url):
    return int(psql(url, "SELECT count(*) FROM credit_note"))


def fresh_payment(bank, used=set()):
    model = bank["model"]
    for p in sorted(model.payments.values(), key=lambda p: p["id"]):
        if (p["organisation_id"] == model.orgs[0] and p["status"] == "succeeded" and p["amount"] >= 1000
                and not model.refunds_by_payment[p["id"]] and p["id"] not in used):
            used.add(p["id"])
            return p
    raise AssertionError("no payment left")


def invoice(bank, predicate, used=set()):
    model = bank["model"]
    for inv in model.invoices_of(model.orgs[0]):
        if inv["status"] == "open" and inv["id"] not in used and predicate(inv):
            used.add(inv["id"])
            return inv
    raise AssertionError("no invoice left")


def failed_payment(bank):
    model = bank["model"]
    return next(p for p in model.payments.values() if p["status"] == "failed" and p["organisation_id"] == model.orgs[0])


def unpaid(bank):
    return invoice(bank, lambda i: not bank["model"].apps_by_invoice[i["id"]] and i["total"] >= 1000)


def paid(bank):
    model = bank["model"]
    return invoice(bank, lambda i: model.balance(i["id"]) == 0 and model.apps_by_invoice[i["id"]] and i["total"] >= 1000)


# Each case: (code, the failing second field, the key's label). The first field is always a
# refund with an idempotency key.
CASES = {
    "NOT_FOUND": lambda b: f'refundPayment(input: {{paymentId: "{ZERO}", amount: 1}}) {{ refund {{ id }} }}',
    "INVALID_STATE": lambda b: f'refundPayment(input: {{paymentId: "{failed_payment(b)["id"]}", amount: 1}}) {{ refund {{ id }} }}',
    "BAD_USER_INPUT": lambda b: f'refundPayment(input: {{paymentId: "{fresh_payment(b)["id"]}", amount: 0}}) {{ refund {{ id }} }}',
    "AMOUNT_EXCEEDS_REFUNDABLE": lambda b: f'refundPayment(input: {{paymentId: "{fresh_payment(b)["id"]}", amount: 2000000000}}) {{ refund {{ id }} }}',
    "AMOUNT_EXCEEDS_CREDITABLE": lambda b: (f'createCreditNote(input: {{invoiceId: "{unpaid(b)["id"]}", amount: 2000000000, '
                                            f'reason: "r"}}) {{ creditNote {{ id }} }}'),
    "REFUND_DESTINATION_REQUIRED": lambda b: (f'createCreditNote(input: {{invoiceId: "{paid(b)["id"]}", amount: 1, reason: "r"}}) '
                                              '{ creditNote { id } }'),
    "REFUND_SPLIT_MISMATCH": lambda b: split_mismatch(b),
    "IDEMPOTENCY_KEY_REUSED": lambda b: (f'refundPayment(input: {{paymentId: "{b["reused"]}", amount: 2, idempotencyKey: "taken"}}) '
                                         '{ refund { id } }'),
    "FORBIDDEN": lambda b: f'createCreditNote(input: {{invoiceId: "{unpaid(b)["id"]}", amount: 1, reason: "r"}}) {{ creditNote {{ id }} }}',
    "BAD_USER_INPUT customData": lambda b: (f'createCreditNote(input: {{invoiceId: "{unpaid(b)["id"]}", amount: 1, reason: "r", '
                                            'customData: {k: "\\u0000"}}) { creditNote { id } }'),
    "BAD_USER_INPUT customData list": lambda b: (f'createCreditNote(input: {{invoiceId: "{unpaid(b)["id"]}", amount: 1, reason: "r", '
                                                 'customData: [1]}) { creditNote { id } }'),
}


def split_mismatch(bank):
    inv = paid(bank)
    pid = bank["model"].apps_by_invoice[inv["id"]][0][0]
    return (f'createCreditNote(input: {{invoiceId: "{inv["id"]}", amount: 5, reason: "r", refundDestination: ORIGINAL_PAYMENT_METHOD, '
            f'refundSplit: [{{paymentId: "{pid}", amount: 4}}]}}) {{ creditNote {{ id }} }}')


@pytest.mark.parametrize("case", list(CASES))
def test_a_failing_field_leaves_the_whole_operation_unapplied(bank, case):
    server, url = bank["server"], bank["url"]
    full = bank["keys"][(1, "full")]
    if case == "IDEMPOTENCY_KEY_REUSED":
        bank["reused"] = fresh_payment(bank)["id"]
        assert not server.gql(f'mutation {{ refundPayment(input: {{paymentId: "{bank["reused"]}", amount: 1, '
                              'idempotencyKey: "taken"}) { refund { id } } }', key=full).errors
    label = "refunds" if case == "FORBIDDEN" else "full"
    first = fresh_payment(bank)
    before, numbered = refunded(url, first["id"]), notes(url)
    k = f"atomic-{case}"
    r = server.gql(f"""mutation {{
        a: refundPayment(input: {{paymentId: "{first["id"]}", amount: 100, idempotencyKey: "{k}"}}) {{ refund {{ id }} }}
        b: {CASES[case](bank)}
    }}""", key=bank["keys"][(1, label)])
    assert r.status == 200 and r.data is None, r.raw
    assert r.codes() == [case.split()[0]] and r.errors[0]["path"] == ["b"], r.errors
    # Nothing of the operation happened: not the refund, not a credit note number, not the key.
    assert refunded(url, first["id"]) == before and notes(url) == numbered
    again = server.gql(f"""mutation {{ refundPayment(input: {{paymentId: "{first["id"]}", amount: 100, idempotencyKey: "{k}"}})
                           {{ payment {{ amountRefunded }} }} }}""", key=full)
    assert again.data["refundPayment"]["payment"]["amountRefunded"] == before + 100
    assert_figures_match(server, full, url, payment_ids=[first["id"]], customer_ids=[first["customer_id"]])


def test_an_operation_of_replays_answers_as_the_first_call_and_a_mix_applies_once(bank):
    server, url, full = bank["server"], bank["url"], bank["keys"][(1, "full")]
    p, q = fresh_payment(bank), fresh_payment(bank)
    op = """mutation($p: ID!, $q: ID!, $k1: String, $k2: String) {
        a: refundPayment(input: {paymentId: $p, amount: 10, idempotencyKey: $k1}) { refund { id } }
        b: refundPayment(input: {paymentId: $q, amount: 20, idempotencyKey: $k2}) { refund { id } } }"""
    first = server.gql(op, {"p": p["id"], "q": q["id"], "k1": "pair-1", "k2": "pair-2"}, key=full)
    assert not first.errors
    replay = server.gql(op, {"p": p["id"], "q": q["id"], "k1": "pair-1", "k2": "pair-2"}, key=full)
    assert replay.data == first.data
    mixed = server.gql(op, {"p": p["id"], "q": q["id"], "k1": "pair-1", "k2": "pair-3"}, key=full)
    assert mixed.data["a"] == first.data["a"] and mixed.data["b"]["refund"]["id"] != first.data["b"]["refund"]["id"]
    assert refunded(url, p["id"]) == 10 and refunded(url, q["id"]) == 40


def test_three_refunds_in_one_operation_under_concurrency_apply_whole_or_not_at_all(bank):
    """Forty operations of three refunds each race for one payment with 100 refundable:
    each is applied whole (3 refunds) or not at all, and exactly 33 fit."""
    server, url, full = bank["server"], bank["url"], bank["keys"][(1, "full")]
    p = fresh_payment(bank)
    assert not server.gql(f'mutation {{ refundPayment(input: {{paymentId: "{p["id"]}", amount: {p["amount"] - 100}}}) '
                          '{ refund { id } } }', key=full).errors
    op = """mutation($p: ID!, $d: String) {
        a: refundPayment(input: {paymentId: $p, amount: 1, description: $d}) { refund { id } }
        b: refundPayment(input: {paymentId: $p, amount: 1, description: $d}) { refund { id } }
        c: refundPayment(input: {paymentId: $p, amount: 1, description: $d}) { refund { id } } }"""
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda n: server.gql(op, {"p": p["id"], "d": f"op-{n}"}, key=full), range(40)))
    applied = [a for a in answers if not a.errors]
    assert len(applied) == 33 and all(a.codes() == ["AMOUNT_EXCEEDS_REFUNDABLE"] for a in answers if a.errors)
    counts = psql(url, f"SELECT description, count(*) FROM refund WHERE payment_id = '{p['id']}' AND description LIKE 'op-%' "
                       "GROUP BY description")
    assert sorted(int(line.split("|")[1]) for line in counts.splitlines()) == [3] * 33
    assert refunded(url, p["id"]) == p["amount"] - 1


def test_operations_taking_the_same_rows_in_opposite_orders_wait_rather_than_deadlock(bank):
    """Each operation refunds two payments, half of them in one order and half in the
    other. Without the operation's locks taken up front in one order, such pairs
    deadlock, and PostgreSQL breaks each deadlock only after a second."""
    server, url, full = bank["server"], bank["url"], bank["keys"][(1, "full")]
    p, q = fresh_payment(bank), fresh_payment(bank)
    op = """mutation($x: ID!, $y: ID!) {
        a: refundPayment(input: {paymentId: $x, amount: 1}) { refund { id } }
        b: refundPayment(input: {paymentId: $y, amount: 1}) { refund { id } } }"""
    logged = len(server.log)
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda n: server.gql(op, {"x": p["id"], "y": q["id"]} if n % 2 else {"x": q["id"], "y": p["id"]},
                                                     key=full), range(60)))
    assert all(not a.errors for a in answers), [a.errors for a in answers if a.errors][:2]
    assert refunded(url, p["id"]) == 60 and refunded(url, q["id"]) == 60
    time.sleep(0.2)
    assert not [line for line in server.log[logged:] if "deadlock" in line], server.log[logged:][:3]


# ---------------------------------------------------------------------------------------- crashes

PAIR = """mutation($p: ID!, $q: ID!, $k1: String, $k2: String, $d: String) {
    a: refundPayment(input: {paymentId: $p, amount: 1, idempotencyKey: $k1, description: $d}) { refund { id } }
    b: refundPayment(input: {paymentId: $q, amount: 1, idempotencyKey: $k2, description: $d}) { refund { id } } }"""


def pairs_in_flight(url, server, key, payments, count, disaster, server_killed=False):
    """Sends `count` two-refund operations at once, calls `disaster` while they run, and
    returns the answers (None where the connection broke, which only a killed server may do).
    The first payment's row is held locked until then, so that the disaster strikes while the
    operations that refund it are surely in flight, waiting inside their transactions."""
    def send(n):
        p, q = payments[n % len(payments)], payments[(n + 1) % len(payments)]
        try:
            return server.gql(PAIR, {"p": p, "q": q, "k1": f"crash-{n}-a", "k2": f"crash-{n}-b", "d": f"crash-{n}"}, key=key)
        except Exception:
            if not server_killed:
                raise
            return None
    holder = PsqlSession(url)
    try:
        holder.run(f"BEGIN; SELECT 1 FROM payment WHERE id = '{payments[0]}' FOR UPDATE;")
        with ThreadPoolExecutor(max_workers=count) as pool:
            futures = [pool.submit(send, n) for n in range(count)]
            deadline = time.time() + 30
            while not backends_waiting_on_a_lock(url, "bg_lock_operation"):
                assert time.time() < deadline, "no operation came to wait on the locked payment"
                time.sleep(0.05)
            disaster()
            holder.close()  # its transaction ends: what still waited goes on, or finds its server gone
            return [f.result(timeout=60) for f in futures]
    finally:
        holder.close()


def halves(url):
    """For each operation that left rows: how many of its two refunds exist."""
    rows = psql(url, "SELECT description, count(*) FROM refund WHERE description LIKE 'crash-%' GROUP BY description")
    return {line.split("|")[0]: int(line.split("|")[1]) for line in rows.splitlines()}


def retry_all(server, key, payments, count):
    for n in range(count):
        p, q = payments[n % len(payments)], payments[(n + 1) % len(payments)]
        deadline = time.time() + 30
        while True:
            r = server.gql(PAIR, {"p": p, "q": q, "k1": f"crash-{n}-a", "k2": f"crash-{n}-b", "d": f"crash-{n}"}, key=key)
            if not r.errors:
                break
            assert r.codes() == ["SERVICE_UNAVAILABLE"] and time.time() < deadline, r.raw
            time.sleep(0.2)


def succeeded_payments(url, n):
    return psql(url, f"SELECT id FROM payment WHERE status = 'SUCCEEDED' AND amount >= 1000 ORDER BY id LIMIT {n}").split()


def test_the_database_stopped_under_100_operations_applies_each_whole_or_not_at_all(private_cluster):
    url, key = private_cluster["url"], private_cluster["keys"][(1, "full")]
    server = Server(url, "--pool-size", "8")
    try:
        payments = succeeded_payments(url, 10)
        answers = pairs_in_flight(url, server, key, payments, 100,
                                  lambda: cluster("pg_crash", private_cluster["data"]))
        cluster("pg_start", private_cluster["data"], private_cluster["port"])
        assert any(a.codes() == ["SERVICE_UNAVAILABLE"] for a in answers), "the crash struck no operation"
        # An operation that answered with data was applied, whole.
        seen = halves(url)
        assert all(count == 2 for count in seen.values()), seen
        for n, a in enumerate(answers):
            if a is not None and a.status == 200 and a.json.get("data"):
                assert seen.get(f"crash-{n}") == 2, n
            elif a is not None:
                assert a.codes() == ["SERVICE_UNAVAILABLE"], a.raw
        # Retried with the same keys, every operation is applied exactly once.
        retry_all(server, key, payments, 100)
        assert halves(url) == {f"crash-{n}": 2 for n in range(100)}
        assert_figures_match(server, key, url, payment_ids=payments)
    finally:
        server.stop()


def test_the_server_killed_under_100_operations_leaves_each_key_replayable_or_free(private_cluster):
    url, key = private_cluster["url"], private_cluster["keys"][(1, "full")]
    server = Server(url, "--pool-size", "8")
    payments = succeeded_payments(url, 10)
    try:
        answers = pairs_in_flight(url, server, key, payments, 100, lambda: os.kill(server.proc.pid, signal.SIGKILL),
                                  server_killed=True)
        assert None in answers, "the kill struck no operation"
    finally:
        if server.proc.poll() is None:  # the test failed before its kill: leave no server behind
            server.proc.kill()
        server.proc.wait(10)
    time.sleep(0.5)  # PostgreSQL notices the lost connections and rolls their transactions back
    assert all(count == 2 for count in halves(url).values()), halves(url)
    applied_before = set(halves(url))
    assert len(applied_before) < 100, "every operation had been applied before the kill"
    server = Server(url)
    try:
        retry_all(server, key, payments, 100)
        assert halves(url) == {f"crash-{n}": 2 for n in range(100)}  # the applied ones replayed, the rest applied once
        assert applied_before <= set(halves(url))
        assert_figures_match(server, key, url, payment_ids=payments)
    finally:
        server.stop()
