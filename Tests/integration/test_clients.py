"""What GraphQL clients expect (RULES.md section 8), through the real server over HTTP:
cost and rate limits per API key, batches (by hand and with python gql's own
execute_batch), automatic persisted queries over POST and GET, and trusted documents."""
import glob
import hashlib
import json
import os
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import QUERIES, Server, canonical, create_key, open_data, open_world, psql, run_cli, wait_until

# Two batched loads, counted by hand from the schema: the page of customers, then the
# invoices of all of them (RULES.md section 8: one statement per batched load).
TWO_LOADS = "{ customers(first: 2) { nodes { id invoices(first: 2) { id } } } }"
ONE_LOAD = "{ customers(first: 1) { nodes { id } } }"


@pytest.fixture(scope="module")
def limited():
    """A world of its own: the tests create keys with small budgets in it."""
    opened = open_data(customers=6, seed_value=21)
    opened["server"] = Server(opened["url"], "--loops", "2", env={"BILLGRAPH_TRACE_SQL": "1"})
    yield opened
    opened["server"].stop()


def org(world):
    return world["model"].orgs[0]


def budget(r):
    return {name: r.headers.get(name.lower()) for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")}


def mark_trace(server, key, marker):
    """Sends a request whose one traced statement names the marker, and waits until that is
    in the trace. The server writes its trace from a thread of its own, in order, so the
    lines of every request answered before are in too."""
    r = server.gql("query($n: String) { customers(first: 1, filter: {nameContains: $n}) { nodes { id } } }",
                   {"n": marker}, key=key)
    assert r.status == 200 and not r.errors and r.statements() == 1, r.raw
    wait_until(lambda: marker in server.log_text(), 10, f"the trace of {marker}")


def traced_between(server, first, last):
    """Statements traced after the first marker's line and before the last's."""
    text = server.log_text()
    return text.count("trace: ", text.index(first), text.rfind("trace: ", 0, text.index(last)))


# ------------------------------------------------------------------------- cost and rate limits

def test_an_operation_costs_the_statements_of_its_plan(limited):
    server = limited["server"]
    _, key = create_key(limited["url"], org(limited), "billing:read", "--rate-limit", "1000")
    r = server.gql(TWO_LOADS, key=key)
    assert r.status == 200 and r.statements() == 2
    assert r.json["extensions"]["cost"] == {"requested": 2, "remaining": 998}
    # Each alias counts; introspection and __typename cost nothing, but an operation costs at least 1.
    aliased = server.gql("{ a: customers(first: 1) { nodes { id } } b: customers(first: 1) { nodes { id } } }", key=key)
    assert aliased.json["extensions"]["cost"] == {"requested": 2, "remaining": 996}
    assert server.gql("{ __typename }", key=key).json["extensions"]["cost"] == {"requested": 1, "remaining": 995}
    # totalCount is a statement of its own.
    counted = server.gql("{ customers(first: 1) { totalCount nodes { id } } }", key=key)
    assert counted.statements() == 2 and counted.json["extensions"]["cost"]["requested"] == 2
    # The dashboard is four loads (customers, invoices, payments, refunds).
    dashboard = server.gql(canonical("dashboard"), {"first": 3}, key=key)
    assert dashboard.statements() == 4 and dashboard.json["extensions"]["cost"]["requested"] == 4


def test_a_mutation_field_costs_ten(limited):
    server = limited["server"]
    _, key = create_key(limited["url"], org(limited), "billing:read,credit_notes:write", "--rate-limit", "1000")
    missing = "00000000-0000-4000-8000-000000000000"
    r = server.gql("""mutation($id: ID!) { a: voidCreditNote(input: {creditNoteId: $id}) { __typename }
                                           b: voidCreditNote(input: {creditNoteId: $id}) { __typename } }""",
                   {"id": missing}, key=key)
    assert r.codes()[0] == "NOT_FOUND"
    assert r.json["extensions"]["cost"] == {"requested": 20, "remaining": 980}
    # Refused for its arguments (a required id nulled through a variable's default): still 10.
    r = server.gql('mutation($id: ID = "x") { voidCreditNote(input: {creditNoteId: $id}) { __typename } }', {"id": None}, key=key)
    assert r.codes() == ["BAD_USER_INPUT"] and r.json["extensions"]["cost"] == {"requested": 10, "remaining": 970}, r.raw


@pytest.mark.timeout(150)
def test_a_small_budget_is_refused_at_the_right_request_and_recovers(limited):
    server = limited["server"]
    key_id, key = create_key(limited["url"], org(limited), "billing:read", "--rate-limit", "9")
    assert "rate-limit 9" in run_cli("keys", "list", "--organisation", org(limited), url=limited["url"]).stdout
    _, unlimited = create_key(limited["url"], org(limited), "billing:read", "--rate-limit", "0")  # for the trace's markers
    started = time.monotonic()
    # 9 points pay for four operations of 2; the fifth would overspend.
    for remaining in (7, 5, 3, 1):
        r = server.gql(TWO_LOADS, key=key)
        assert r.status == 200 and r.data["customers"]["nodes"], r.raw
        assert budget(r)["RateLimit-Limit"] == "9" and budget(r)["RateLimit-Remaining"] == str(remaining)
        assert 55 <= int(budget(r)["RateLimit-Reset"]) <= 60
        assert r.json["extensions"]["cost"] == {"requested": 2, "remaining": remaining}
    mark_trace(server, unlimited, "before-the-refusal")
    refused = server.gql(TWO_LOADS, key=key)
    assert refused.status == 429 and refused.codes() == ["RATE_LIMITED"] and refused.data is None
    assert budget(refused)["RateLimit-Remaining"] == "1"
    reset = int(refused.headers["retry-after"])
    assert reset == int(budget(refused)["RateLimit-Reset"]) and 1 <= reset <= 60
    assert refused.json["extensions"]["cost"] == {"requested": 2, "remaining": 1}
    # Refused before any database work: not a statement was sent for it.
    assert refused.statements() == 0
    # A cheaper operation still fits in what is left; then nothing does.
    fits = server.gql(ONE_LOAD, key=key)
    assert fits.status == 200 and fits.statements() > 0
    mark_trace(server, unlimited, "after-the-one-that-fits")
    assert traced_between(server, "before-the-refusal", "after-the-one-that-fits") == fits.statements()
    assert server.gql(ONE_LOAD, key=key).status == 429
    # Answers that run no operation still say what the budget has left.
    broken = server.gql("{ customers(", key=key)
    assert broken.codes() == ["GRAPHQL_PARSE_FAILED"] and budget(broken)["RateLimit-Remaining"] == "0"
    assert broken.json["extensions"]["cost"] == {"requested": 0, "remaining": 0}, broken.raw
    for refused in (server.request(raw=b"{", key=key), server.gql("{ nothing }", key=key)):  # bad JSON; invalid document
        assert refused.json["extensions"]["cost"] == {"requested": 0, "remaining": 0}, refused.raw
    # The window ends a minute after the first operation; then the whole budget is back.
    time.sleep(max(0, started + 60.5 - time.monotonic()))
    recovered = server.gql(TWO_LOADS, key=key)
    assert recovered.status == 200 and budget(recovered)["RateLimit-Remaining"] == "7", recovered.raw


def test_keys_have_budgets_of_their_own(limited):
    server = limited["server"]
    _, spent = create_key(limited["url"], org(limited), "billing:read", "--rate-limit", "2")
    _, other = create_key(limited["url"], org(limited), "billing:read", "--rate-limit", "2")
    assert server.gql(TWO_LOADS, key=spent).status == 200
    assert server.gql(TWO_LOADS, key=spent).status == 429
    r = server.gql(TWO_LOADS, key=other)
    assert r.status == 200 and budget(r)["RateLimit-Remaining"] == "0"
    # A key created without --rate-limit has the default budget; a limit of 0 is none.
    _, default = create_key(limited["url"], org(limited), "billing:read")
    assert budget(server.gql(ONE_LOAD, key=default))["RateLimit-Limit"] == "6000"
    _, unlimited = create_key(limited["url"], org(limited), "billing:read", "--rate-limit", "0")
    free = server.gql(ONE_LOAD, key=unlimited)
    # A key with no limit has no budget to report.
    assert free.status == 200 and "ratelimit-limit" not in free.headers and "extensions" not in free.json


def test_concurrent_requests_of_one_key_never_overspend(limited):
    """Two loops (the server runs --loops 2) and 24 client threads spend from one budget."""
    server = limited["server"]
    _, key = create_key(limited["url"], org(limited), "billing:read", "--rate-limit", "150")

    def one(_):
        r = server.gql(ONE_LOAD, key=key)
        assert r.status in (200, 429), r.raw
        return r.status

    with ThreadPoolExecutor(24) as pool:
        statuses = list(pool.map(one, range(400)))
    assert statuses.count(200) == 150 and statuses.count(429) == 250


def test_an_answer_that_spends_nothing_says_the_same_remaining_in_its_headers_and_extensions(limited):
    """RULES.md section 8: every answer to a known key carries `RateLimit-Remaining` and
    `extensions.cost.remaining`. While requests of the key spend from its budget on both
    loops, answers that ran no operation (a malformed Billgraph-Min-LSN) must say one
    remaining in both places: the budget read once for the answer, not once for each."""
    server = limited["server"]
    _, key = create_key(limited["url"], org(limited), "billing:read", "--rate-limit", "10000000")
    spending = threading.Event()

    def spend():
        while not spending.is_set():
            r = server.gql("{ __typename }", key=key)
            assert r.status == 200, r.raw

    def spend_nothing(_):
        r = server.request({"query": "{ __typename }"}, key=key, headers={"Billgraph-Min-LSN": "not a position"})
        assert r.status == 400 and r.json["extensions"]["cost"]["requested"] == 0, r.raw
        return int(r.headers["ratelimit-remaining"]), r.json["extensions"]["cost"]["remaining"]

    with ThreadPoolExecutor(8) as pool:
        spenders = [pool.submit(spend) for _ in range(4)]
        try:
            answers = list(ThreadPoolExecutor(4).map(spend_nothing, range(2000)))
        finally:
            spending.set()
        for spender in spenders:
            spender.result()
    assert len({remaining for remaining, _ in answers}) > 100  # the budget moved while they were answered
    assert [a for a in answers if a[0] != a[1]] == []


# -------------------------------------------------------------------------------------- batches

def test_a_batch_is_answered_in_order_each_as_if_alone(world):
    server, key = world["server"], world["keys"][(1, "full")]
    queries = [{"query": ONE_LOAD}, {"query": "{ customers("}, {"query": TWO_LOADS},
               {"query": "query($n: Int!) { customers(first: $n) { nodes { id } } }"}, {"query": "{ nothing }"}]
    alone = [server.request(q, key=key) for q in queries]
    r = server.request(queries, key=key)
    assert r.status == 200 and isinstance(r.json, list) and len(r.json) == len(queries)
    for single, answer in zip(alone, r.json):
        assert answer == single.json
    assert [bool(a.get("errors")) for a in r.json] == [False, True, False, True, True]
    assert r.json[1]["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert r.statements() == sum(a.statements() for a in alone) == 3


def test_the_limits_of_a_batch(world):
    server, key = world["server"], world["keys"][(1, "full")]
    assert server.request([], key=key).status == 400
    assert server.request([{"query": "{ __typename }"}] * 21, key=key).status == 400
    assert server.request([{"query": "{ __typename }"}, 1], key=key).status == 400
    assert server.request([{"query": "{ __typename }"}, [{"query": "{ __typename }"}]], key=key).status == 400
    # An object that is not a request refuses the whole batch, before anything of it runs.
    for broken in ({"variables": {}}, {"query": 1}, {"query": "{ __typename }", "variables": []}):
        r = server.request([{"query": ONE_LOAD}, broken], key=key)
        assert r.status == 400 and r.codes() == ["BAD_USER_INPUT"] and "x-billgraph-statements" not in r.headers, broken
    full = server.request([{"query": "{ __typename }"}] * 20, key=key)
    assert full.status == 200 and [a["data"] for a in full.json] == [{"__typename": "Query"}] * 20


def test_each_mutation_of_a_batch_is_its_own_transaction():
    shop = open_world(customers=8, seed_value=22)
    try:
        server, key, model = shop["server"], shop["keys"][(1, "full")], shop["model"]
        payment = next(p for p in sorted(model.payments.values(), key=lambda p: p["id"])
                       if p["organisation_id"] == model.orgs[0] and p["status"] == "succeeded"
                       and p["amount"] >= 100 and not model.refunds_by_payment[p["id"]])
        refund = "mutation($p: ID!, $a: Int!) { refundPayment(input: {paymentId: $p, amount: $a}) { payment { amountRefunded } } }"
        batch = [{"query": refund, "variables": {"p": payment["id"], "a": a}} for a in (3, 1_000_000_000, 4)]
        r = server.request(batch, key=key)
        assert r.status == 200
        # The one that fails takes nothing with it: the others are applied, each after the one before.
        assert r.json[0]["data"] == {"refundPayment": {"payment": {"amountRefunded": 3}}}
        assert r.json[1]["data"] is None and r.json[1]["errors"][0]["extensions"]["code"] == "AMOUNT_EXCEEDS_REFUNDABLE"
        assert r.json[2]["data"] == {"refundPayment": {"payment": {"amountRefunded": 7}}}
        stored = psql(shop["url"], f"SELECT string_agg(amount::text, ',' ORDER BY amount) FROM refund WHERE payment_id = '{payment['id']}'")
        assert stored == "3,4"
    finally:
        shop["server"].stop()


def test_gql_execute_batch(world):
    """python gql's own batching, schema fetched and checked by the client."""
    from gql import Client, GraphQLRequest, gql
    from gql.transport.requests import RequestsHTTPTransport

    server, key = world["server"], world["keys"][(1, "full")]
    transport = RequestsHTTPTransport(url=f"http://127.0.0.1:{server.port}/graphql",
                                      headers={"Authorization": f"Bearer {key}"}, timeout=60)
    with Client(transport=transport, fetch_schema_from_transport=True) as session:
        first = GraphQLRequest(gql("query($n: Int!) { customers(first: $n) { nodes { id name } } }"), variable_values={"n": 2})
        second = GraphQLRequest(gql("{ invoices(first: 3) { nodes { number total } } }"))
        results = session.execute_batch([first, second])
    model = world["model"]
    org = model.orgs[0]
    expected = [{"customers": {"nodes": [{"id": c["id"], "name": c["name"]} for c in model.customers_of(org)[:2]]}},
                {"invoices": {"nodes": [{"number": i["number"], "total": i["total"]} for i in model.invoices_of(org)[:3]]}}]
    assert results == expected


# ------------------------------------------------------------------------------- persisted queries

def apq(query):
    return {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(query.encode()).hexdigest()}}


def get(server, key, **params):
    encoded = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    return server.request(method="GET", key=key, query_string="?" + urllib.parse.urlencode(encoded))


def test_automatic_persisted_queries_over_post(world):
    server, key = world["server"], world["keys"][(1, "full")]
    query = "query ApqPost { customers(first: 2) { nodes { id } } }"
    model = world["model"]
    expected = {"customers": {"nodes": [{"id": c["id"]} for c in model.customers_of(model.orgs[0])[:2]]}}
    first = server.request({"extensions": apq(query)}, key=key)
    assert first.status == 200 and first.data is None
    assert first.errors[0]["message"] == "PersistedQueryNotFound" and first.codes() == ["PERSISTED_QUERY_NOT_FOUND"]
    assert first.statements() == 0
    registered = server.request({"query": query, "extensions": apq(query)}, key=key)
    assert registered.status == 200 and registered.data == expected
    again = server.request({"extensions": apq(query)}, key=key)
    assert again.status == 200 and again.data == expected
    # Stored in the database, under the SHA-256 of the text.
    digest = hashlib.sha256(query.encode()).hexdigest()
    assert psql(world["url"], f"SELECT body FROM persisted_document WHERE sha256 = decode('{digest}', 'hex')") == query
    # The hash must be the query's.
    wrong = server.request({"query": query + " ", "extensions": apq(query)}, key=key)
    assert wrong.status == 400 and wrong.codes() == ["BAD_USER_INPUT"]
    assert server.request({"extensions": {"persistedQuery": {"version": 2, "sha256Hash": digest}}}, key=key).status == 400


def test_automatic_persisted_queries_over_get_and_in_another_process(world):
    server, key = world["server"], world["keys"][(1, "full")]
    query = "query ApqGet($n: Int!) { invoices(first: $n) { nodes { number } } }"
    variables = {"n": 3}
    model = world["model"]
    expected = {"invoices": {"nodes": [{"number": i["number"]} for i in model.invoices_of(model.orgs[0])[:3]]}}
    first = get(server, key, extensions=apq(query), variables=variables)
    assert first.status == 200 and first.codes() == ["PERSISTED_QUERY_NOT_FOUND"]
    registered = get(server, key, query=query, extensions=apq(query), variables=variables)
    assert registered.status == 200 and registered.data == expected
    again = get(server, key, extensions=apq(query), variables=variables)
    assert again.status == 200 and again.data == expected
    # A second process on the same database knows the document without being sent it.
    other = Server(world["url"])
    try:
        seen = get(other, key, extensions=apq(query), variables=variables)
        assert seen.status == 200 and seen.data == expected
    finally:
        other.stop()


# ------------------------------------------------------------------------------- trusted documents

def test_trusted_documents_from_the_command_line_to_the_server():
    opened = open_data(customers=4, seed_value=23)
    url, key = opened["url"], opened["keys"][(1, "full")]
    files = sorted(glob.glob(os.path.join(QUERIES, "*.graphql")))
    added = run_cli("documents", "add", *files, url=url).stdout.split("\n")
    hashes = {}
    for path in files:
        with open(path, "rb") as f:
            hashes[os.path.basename(path)] = hashlib.sha256(f.read()).hexdigest()
    assert sorted(line.split()[0] for line in added if line) == sorted(hashes.values())
    listed = run_cli("documents", "list", url=url).stdout
    assert sorted(line.split()[0] for line in listed.splitlines()) == sorted(hashes.values())
    server = Server(url, "--trusted-documents-only")
    try:
        dashboard = canonical("dashboard")
        ok = server.gql(dashboard, {"first": 2}, key=key)
        assert ok.status == 200 and len(ok.data["customers"]["nodes"]) == 2
        # By its hash alone, too.
        by_hash = server.request({"extensions": apq(dashboard), "variables": {"first": 2}}, key=key)
        assert by_hash.status == 200 and by_hash.data == ok.data
        # Anything else is refused unparsed: a broken document gets the same answer as a valid one.
        for other in ("{ customers(first: 1) { nodes { id } } }", "{ customers(", dashboard + " "):
            refused = server.gql(other, key=key)
            assert refused.status == 400 and refused.codes() == ["DOCUMENT_NOT_TRUSTED"] and refused.statements() == 0
        unknown = server.request({"extensions": apq("{ __typename }")}, key=key)
        assert unknown.status == 400 and unknown.codes() == ["DOCUMENT_NOT_TRUSTED"]
        # Nor is a persisted query registered in this mode.
        sent = server.request({"query": "{ __typename }", "extensions": apq("{ __typename }")}, key=key)
        assert sent.status == 400 and sent.codes() == ["DOCUMENT_NOT_TRUSTED"], sent.raw
        digest = hashlib.sha256(b"{ __typename }").hexdigest()
        assert psql(url, f"SELECT count(*) FROM persisted_document WHERE sha256 = decode('{digest}', 'hex')") == "0"
        # Removed: refused again once the server's cache has let go (a few seconds).
        run_cli("documents", "remove", hashes["dashboard.graphql"], url=url)
        assert hashes["dashboard.graphql"] not in run_cli("documents", "list", url=url).stdout
        wait_until(lambda: server.gql(dashboard, {"first": 2}, key=key).status == 400, 15, "the removal to be seen")
        still = server.gql(canonical("invoices_page"), {}, key=key)
        assert still.status == 200 and not still.errors and still.data["invoices"]["nodes"], still.raw
        assert run_cli("documents", "remove", hashes["dashboard.graphql"], url=url, check=False).returncode == 1
    finally:
        server.stop()
