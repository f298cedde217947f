"""Identical loads of concurrent query requests share one statement (README, "Coalescing";
issue 13): two organisations' dashboards coalesced each see exactly their own rows, the
item budget and the per-parent limits hold per request, and a failed shared statement
gives every member the error it would have had alone. The servers here run one loop and
let the first load of a turn wait for others (`--coalesce-wait-ms`), so that requests
sent together share their statements whatever the machine's load; the coalescing is
proved by the server's own counters, read from /metrics before and after."""
import datetime
import json
import os
import tempfile
import threading
import uuid
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (PsqlSession, Server, backends_waiting_on_a_lock, canonical, counter, new_database, psql, run_cli,
                      wait_until)

DASHBOARD = canonical("dashboard")
WAIT_MS = "500"  # far more than two threads released together need, on a loaded machine too


def coalesced_loads(server):
    return counter(server, "billgraph_coalesced_loads_total")


def together(calls):
    """Runs the calls at once, each on its own thread released by one barrier; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(10)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def expected_customer(model, customer):
    """A dashboard node, worked out from the imported file (model.py), never from the server."""
    def payment(p):
        return {"id": p["id"], "mode": p["mode"].upper(), "amount": p["amount"], "receivedOn": p["received_on"],
                "amountRefunded": model.amount_refunded(p["id"]),
                "refunds": [{"id": r["id"], "amount": r["amount"], "refundedOn": r["refunded_on"]}
                            for r in model.refunds_of_payment(p["id"])]}

    def invoice(i):
        return {"id": i["id"], "number": i["number"], "status": model.invoice_status(i["id"]), "issuedOn": i["issued_on"],
                "dueOn": i.get("due_on"), "total": i["total"], "amountPaid": model.amount_paid(i["id"]),
                "balance": model.balance(i["id"]), "payments": [payment(p) for p in model.payments_of_invoice(i["id"])]}

    return {"id": customer["id"], "name": customer["name"], "email": customer.get("email"),
            "currency": customer["currency"], "creditBalance": customer.get("credit_balance", 0),
            "invoices": [invoice(i) for i in model.invoices_of_customer(customer["id"], newest_first=True)[:10]]}


@pytest.fixture(scope="module")
def coalescing(world):
    """A server over the shared world, one loop, whose loads wait WAIT_MS for company."""
    server = Server(world["url"], "--loops", "1", "--coalesce-wait-ms", WAIT_MS)
    yield server
    server.stop()


def test_two_organisations_dashboards_coalesced_each_see_only_their_own_rows(world, coalescing):
    model = world["model"]
    orgs = model.orgs[:2]
    keys = [world["keys"][(1, "full")], world["keys"][(2, "full")]]
    # Pages of several sizes, so that the members' keys differ in number as well as owner.
    for first in (3, 7, 25):
        before = coalesced_loads(coalescing)
        answers = together([lambda key=key: coalescing.gql(DASHBOARD, {"first": first}, key=key) for key in keys])
        after = coalesced_loads(coalescing)
        for org, answer in zip(orgs, answers):
            assert answer.status == 200 and not answer.errors, answer.raw
            customers = model.customers_of(org)[:first]
            assert customers
            assert answer.data["customers"]["nodes"] == [expected_customer(model, c) for c in customers]
            # A member counts the statement it took part in once: as many as alone.
            assert answer.statements() == 4
        # Only the two requests ran, each of one organisation: every shared statement held
        # both; the invoices, payments and refunds levels each shared one.
        assert after - before == 6, (before, after)


def test_the_dataset_makes_the_tenancy_test_meaningful(world):
    """Both organisations have customers with more than ten invoices (the per-parent limit
    cuts), payments and refunds, so a statement that mixed or cut their rows would show."""
    model = world["model"]
    for org in model.orgs[:2]:
        customers = model.customers_of(org)[:25]
        assert any(len(model.invoices_of_customer(c["id"])) > 10 for c in customers)
        invoices = [i for c in customers for i in model.invoices_of_customer(c["id"], newest_first=True)[:10]]
        payments = [p for i in invoices for p in model.payments_of_invoice(i["id"])]
        assert payments and any(model.refunds_of_payment(p["id"]) for p in payments)


def test_each_request_answers_as_it_would_alone(world, coalescing):
    """Different queries and organisations at once: each answer (body and statement count)
    is the one a server that never coalesces gives the same request, including a request
    refused for its item budget beside others that are not (RULES.md section 8), and a
    list without a limit (the detail's applications)."""
    alone = Server(world["url"], "--loops", "1", "--coalesce", "off")
    small = Server(world["url"], "--loops", "1", "--coalesce-wait-ms", WAIT_MS, "--max-result-items", "120")
    small_alone = Server(world["url"], "--loops", "1", "--coalesce", "off", "--max-result-items", "120")
    try:
        model = world["model"]
        invoice = model.invoices_of(model.orgs[1])[0]["id"]
        k1, k2 = world["keys"][(1, "full")], world["keys"][(2, "full")]
        requests = [(DASHBOARD, {"first": 5}, k1), (DASHBOARD, {"first": 9}, k2),
                    (canonical("invoice_detail"), {"id": invoice}, k2),
                    ("{ customers(first: 4) { nodes { id creditNotes { id number } invoices(first: 2) { id } } } }", None, k1),
                    ("{ customers(first: 6) { nodes { id invoices(first: 2) { id } } } }", None, k2)]
        for shared, single in ((coalescing, alone), (small, small_alone)):
            before = coalesced_loads(shared)
            answers = together([lambda q=q, v=v, k=k: shared.gql(q, v, key=k) for q, v, k in requests])
            assert coalesced_loads(shared) > before
            for (query, variables, key), answer in zip(requests, answers):
                expected = single.gql(query, variables, key=key)
                assert (answer.status, answer.json, answer.statements()) == \
                       (expected.status, expected.json, expected.statements()), query
            if shared is coalescing:
                # Answered in full, the dashboards as the imported file says.
                assert all(a.status == 200 and not a.errors for a in answers), [a.raw for a in answers]
                for (query, variables, _), answer, org in zip(requests[:2], answers, model.orgs[:2]):
                    assert answer.data["customers"]["nodes"] == \
                        [expected_customer(model, c) for c in model.customers_of(org)[:variables["first"]]]
        # The small budget refuses the larger dashboards and answers the small lists.
        refused = small.gql(DASHBOARD, {"first": 9}, key=k2)
        assert refused.codes() == ["QUERY_TOO_COMPLEX"]
        assert not small.gql("{ customers(first: 6) { nodes { id invoices(first: 2) { id } } } }", key=k2).errors
    finally:
        for server in (alone, small, small_alone):
            server.stop()


def test_a_failed_shared_statement_fails_each_member_as_alone(world):
    """The refunds level of two organisations' dashboards shares one statement; held up
    by a lock past the statement time limit, it fails both requests with the error a
    statement cut off gives alone (SERVICE_UNAVAILABLE, no data), and tells no SQL."""
    server = Server(world["url"], "--loops", "1", "--coalesce-wait-ms", WAIT_MS, "--statement-timeout-ms", "1500")
    locker = PsqlSession(world["url"])
    try:
        locker.run("BEGIN; LOCK TABLE refund IN ACCESS EXCLUSIVE MODE;")
        keys = [world["keys"][(1, "full")], world["keys"][(2, "full")]]
        before = coalesced_loads(server)
        answers = together([lambda key=key: server.gql(DASHBOARD, {"first": 5}, key=key) for key in keys])
        for answer in answers:
            assert answer.status == 200, answer.raw
            assert answer.json == {"errors": answer.errors} and answer.codes() == ["SERVICE_UNAVAILABLE"]
            assert "SELECT" not in answer.raw.decode() and "refund r" not in answer.raw.decode()
            assert answer.statements() == 4
        assert coalesced_loads(server) - before == 6
    finally:
        locker.run("ROLLBACK;")
        locker.close()
        server.stop()
    wait_until(lambda: not backends_waiting_on_a_lock(world["url"], "refund r"), 5, "no statement left waiting")


def wait_until_held(server, requests):
    """Waits until the server holds `requests` connections besides the one asking (each
    request here is a connection of its own until it is answered), then a moment more for
    the last one's loads to be queued in the turn that reads it."""
    wait_until(lambda: counter(server, "billgraph_open_connections") >= requests + 1, 10, f"{requests} requests at the server")
    time.sleep(0.2)


def statements_let_through(world, server, limit):
    """Sends `limit` + 3 requests of one refund while the refund table is locked: asserts
    that `limit` statements reach PostgreSQL and the others wait in the server, and that
    once the lock goes every request is answered in full."""
    locker = PsqlSession(world["url"])
    try:
        key = world["keys"][(1, "full")]
        refund = psql(world["url"], f"SELECT id FROM refund WHERE organisation_id = '{world['model'].orgs[0]}' LIMIT 1").strip()
        query = f'{{ refund(id: "{refund}") {{ id amount refundedOn }} }}'
        expected = server.gql(query, key=key)
        assert expected.status == 200 and expected.data["refund"]["id"] == refund, expected.raw
        locker.run("BEGIN; LOCK TABLE refund IN ACCESS EXCLUSIVE MODE;")
        with ThreadPoolExecutor(limit + 3) as pool:
            answers = [pool.submit(server.gql, query, key=key) for _ in range(limit + 3)]
            wait_until(lambda: len(backends_waiting_on_a_lock(world["url"], "refund r")) == limit, 10, f"{limit} statements at the lock")
            wait_until_held(server, limit + 3)
            assert len(backends_waiting_on_a_lock(world["url"], "refund r")) == limit, "more than the limit reached PostgreSQL"
            locker.run("ROLLBACK;")
            answers = [answer.result(30) for answer in answers]
        assert [(a.status, a.json) for a in answers] == [(200, expected.json)] * (limit + 3)
    finally:
        locker.close()


def test_query_statements_beyond_the_limit_wait_in_the_server(world):
    """`serve --query-statements 3`: with every statement held up by a lock, three reach
    PostgreSQL and the others wait in the server. (Mutations' transactions are not limited.)"""
    server = Server(world["url"], "--loops", "1", "--coalesce", "off", "--query-statements", "3")
    try:
        statements_let_through(world, server, 3)
    finally:
        server.stop()


def test_by_default_a_process_runs_as_many_statements_of_queries_as_the_machine_has_cores(world):
    """Without `--query-statements`, the machine's cores are shared among the loops, at
    least one a loop (README, "On the loop"): one loop runs as many as there are cores,
    and the start-up line says what each loop runs."""
    cores = os.cpu_count()
    server = Server(world["url"], "--loops", "1", "--coalesce", "off")
    try:
        assert any(f"(1 loop, {cores} statement" in line for line in server.log), server.log
        statements_let_through(world, server, cores)
    finally:
        server.stop()
    for loops in (2, cores + 1):
        server = Server(world["url"], "--loops", str(loops))
        try:
            each = max(1, cores // loops)
            said = f"({loops} loops, {each} statement{'s' if each > 1 else ''} of queries at once a loop"
            assert any(said in line for line in server.log), (said, server.log)
        finally:
            server.stop()


def test_query_statements_must_be_at_least_one():
    refused = run_cli("serve", "--query-statements", "0", url="host=127.0.0.1 port=1 dbname=none", check=False)
    assert refused.returncode != 0 and "--query-statements must be at least 1" in refused.stderr, refused.stderr


def coalesced_behind_a_locked_refund(world, server, more, pause):
    """Sends a payment's request (its id and refunds) while the refund table is locked and,
    once its refunds statement waits at the lock, `more` such requests one after another,
    `pause` seconds apart; then lets the lock go. Asserts that each answer is the one it
    had before, and returns how many loads and statements were coalesced meanwhile."""
    locker = PsqlSession(world["url"])
    try:
        key = world["keys"][(1, "full")]
        payments = psql(world["url"], "SELECT p.id FROM payment p WHERE p.organisation_id = "
                        f"'{world['model'].orgs[0]}' AND EXISTS (SELECT FROM refund r WHERE r.payment_id = p.id) "
                        f"ORDER BY p.id LIMIT {more + 1}").split()
        assert len(payments) >= min(more + 1, 8), payments
        asked = [payments[i % len(payments)] for i in range(more + 1)]
        queries = [f'{{ payment(id: "{p}") {{ id refunds {{ id amount }} }} }}' for p in asked]
        # Each payment's refunds as the imported file has them (the world is never written).
        expected = [{"data": {"payment": {"id": p, "refunds": [{"id": r["id"], "amount": r["amount"]}
                                                               for r in world["model"].refunds_of_payment(p)]}}}
                    for p in asked]
        assert all(e["data"]["payment"]["refunds"] for e in expected), expected
        locker.run("BEGIN; LOCK TABLE refund IN ACCESS EXCLUSIVE MODE;")
        before = (coalesced_loads(server), counter(server, "billgraph_coalesced_statements_total"))
        with ThreadPoolExecutor(more + 1) as pool:
            answers = [pool.submit(server.gql, queries[0], key=key)]
            wait_until(lambda: len(backends_waiting_on_a_lock(world["url"], "refund r")) == 1, 10, "the first at the lock")
            for query in queries[1:]:
                answers.append(pool.submit(server.gql, query, key=key))
                time.sleep(pause)  # a turn of the loop of its own
            wait_until_held(server, more + 1)
            assert len(backends_waiting_on_a_lock(world["url"], "refund r")) == 1
            locker.run("ROLLBACK;")
            answers = [answer.result(30) for answer in answers]
        assert [(a.status, a.json) for a in answers] == [(200, e) for e in expected]
        after = (coalesced_loads(server), counter(server, "billgraph_coalesced_statements_total"))
        return after[0] - before[0], after[1] - before[1]
    finally:
        locker.close()


def test_loads_join_a_statement_that_waits_for_its_turn(world):
    """`--query-statements 1`: while one request's refunds statement is held at a lock,
    three more requests, sent one after another, wait for their turns. Their loads come in
    turns of their own, yet share statements: one that waits for its turn takes the loads
    that come meanwhile (sent alone, each load would be a statement of its own). Each
    request still gets exactly its own rows."""
    server = Server(world["url"], "--loops", "1", "--query-statements", "1")
    try:
        # The three lookups in one statement, then their three refunds loads in one.
        assert coalesced_behind_a_locked_refund(world, server, more=3, pause=0.3) == (6, 2)
    finally:
        server.stop()


def test_loads_that_find_a_waiting_statement_full_join_the_next_one(world):
    """`--query-statements 1`: while one request's refunds statement is held at a lock,
    40 more requests come, each in a turn of the loop of its own, and their payment
    lookups wait for their turn. The first 32 fill the lookup statement that waits
    (`maxMembers`); the other 8 join the one that waits after it, rather than each making
    a statement of its own. Once the lock goes, their refunds loads come 32 and then 8 at
    a time, as the lookups' results do: 80 loads in four statements, none alone. Each
    request still gets exactly its own rows."""
    server = Server(world["url"], "--loops", "1", "--query-statements", "1")
    try:
        assert coalesced_behind_a_locked_refund(world, server, more=40, pause=0.05) == (80, 4)
    finally:
        server.stop()


def applications_dataset(counts):
    """One organisation and customer, and an open invoice for each count in `counts` with
    that many applications, one a payment, each payment received on a day of its own (the
    applications' order, RULES.md section 1, is then the file's). Returns the file's path,
    the key, and per invoice its id and its applications as (amount, payment id) in order."""
    org, customer, key = str(uuid.uuid4()), str(uuid.uuid4()), "bg_probe_" + uuid.uuid4().hex
    lines = [{"type": "organisation", "id": org, "name": "Probe"},
             {"type": "api_key", "organisation_id": org, "key": key, "scopes": ["billing:read"]},
             {"type": "customer", "id": customer, "organisation_id": org, "name": "C", "currency": "EUR",
              "created_at": "2024-01-01T00:00:00Z"}]
    invoices, day = [], datetime.date(2024, 1, 2)
    for n, count in enumerate(counts):
        invoice = str(uuid.uuid4())
        lines.append({"type": "invoice", "id": invoice, "organisation_id": org, "customer_id": customer,
                      "number": f"INV-{n}", "status": "open", "issued_on": "2024-01-01", "total": 1_000_000,
                      "created_at": "2024-01-01T00:00:00Z"})
        applications = []
        for i in range(count):
            payment, amount = str(uuid.uuid4()), 100 + i
            day += datetime.timedelta(days=1)
            lines.append({"type": "payment", "id": payment, "organisation_id": org, "customer_id": customer,
                          "mode": "cash", "status": "succeeded", "amount": amount, "received_on": day.isoformat(),
                          "created_at": "2024-01-01T00:00:00Z", "applications": [{"invoice_id": invoice, "amount": amount}]})
            applications.append((amount, payment))
        invoices.append((invoice, applications))
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    with os.fdopen(fd, "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    return path, key, invoices


def test_lists_without_a_limit_share_and_a_parent_with_more_than_the_probe_is_read_again_alone():
    """An invoice's `paymentApplications` has no `first`: it shares a statement as if its
    limit were 101 (`ChildListLoad.probe` + 1), and a parent given 101 rows, which may have
    more, is read again alone. Four detail requests at once, of invoices with 2, 100, 101
    and 250 applications: their four lookups share one statement, and their four
    applications loads another; each answer holds every
    application in order; the two over the probe took one statement more (the lookup, the
    applications, the payments, and the second read). A server that never coalesces
    reads each list once, with no probe. Under a budget of 150 items (RULES.md section 8),
    the list of 250 is refused and the others answered in full."""
    url = new_database()
    path, key, invoices = applications_dataset([2, 100, 101, 250])
    run_cli("migrate", url=url)
    run_cli("import", path, url=url)
    query = "query($id: ID!) { invoice(id: $id) { paymentApplications { amount payment { id } } } }"
    server = Server(url, "--loops", "1", "--coalesce-wait-ms", WAIT_MS)
    small = Server(url, "--loops", "1", "--coalesce-wait-ms", WAIT_MS, "--max-result-items", "150")
    alone = Server(url, "--loops", "1", "--coalesce", "off")
    try:
        assert not server.gql(query, {"id": invoices[0][0]}, key=key).errors  # the key looked up once
        before = (coalesced_loads(server), counter(server, "billgraph_coalesced_statements_total"))
        answers = together([lambda i=i: server.gql(query, {"id": i}, key=key) for i, _ in invoices])
        after = (coalesced_loads(server), counter(server, "billgraph_coalesced_statements_total"))
        for (invoice, applications), answer in zip(invoices, answers):
            assert answer.status == 200 and not answer.errors, answer.raw
            got = [(a["amount"], a["payment"]["id"]) for a in answer.data["invoice"]["paymentApplications"]]
            assert got == applications, invoice
            assert answer.statements() == (4 if len(applications) > 100 else 3), (len(applications), answer.raw)
        assert (after[0] - before[0], after[1] - before[1]) == (8, 2), (before, after)
        for (invoice, _), answer in zip(invoices, answers):
            single = alone.gql(query, {"id": invoice}, key=key)
            assert (single.data, single.statements()) == (answer.data, 3), (invoice, single.raw)

        assert not small.gql(query, {"id": invoices[0][0]}, key=key).errors
        answers = together([lambda i=i: small.gql(query, {"id": i}, key=key) for i, _ in invoices])
        assert [a.codes() for a in answers] == [[], [], [], ["QUERY_TOO_COMPLEX"]], [a.raw for a in answers]
        for (_, applications), answer in zip(invoices[:3], answers):
            assert [(a["amount"], a["payment"]["id"]) for a in answer.data["invoice"]["paymentApplications"]] == applications
    finally:
        for each in (server, small, alone):
            each.stop()


def test_lookups_by_id_coalesced_find_only_their_own_organisations_rows(world, coalescing):
    """Root lookups by id share a statement too, each id matched with its own request's
    organisation: organisation 2 asking for organisation 1's invoice beside organisation
    1 asking for it gets null, in the same statement."""
    model = world["model"]
    invoice = model.invoices_of(model.orgs[0])[0]
    k1, k2 = world["keys"][(1, "full")], world["keys"][(2, "full")]
    query = "query($id: ID!) { invoice(id: $id) { id number total } }"
    before = coalesced_loads(coalescing)
    own, other = together([lambda k=k: coalescing.gql(query, {"id": invoice["id"]}, key=k) for k in (k1, k2)])
    assert coalesced_loads(coalescing) - before == 2
    assert own.status == 200 and not own.errors and other.status == 200 and not other.errors, (own.raw, other.raw)
    assert own.data["invoice"] == {"id": invoice["id"], "number": invoice["number"], "total": invoice["total"]}
    assert other.data["invoice"] is None
