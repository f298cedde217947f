"""Claims of the README and RULES.md about keys, HTTP refusals and timestamps, each with a
test that would fail if the claim broke: scopes (a key without billing:read), introspection
with no scope at all, a revoked key stopping within the 5-second key cache, the codes in
the bodies of HTTP refusals, and DateTime values to the second in UTC."""
import calendar
import datetime
import json
import os
import re
import socket
import tempfile
import time

import pytest
from graphql import get_introspection_query

from conftest import Server, create_key, open_data, psql, read_until, run_cli

ORG3 = "77777777-7777-4777-8777-777777777777"


@pytest.fixture(scope="module")
def claims():
    """A database of its own (these tests create and revoke keys, and import), whose session
    time zone is not UTC, so that a timestamp shown in the server's zone would differ."""
    opened = open_data(customers=8, seed_value=14)  # enough for every kind of row, refunds included
    dbname = re.search(r"dbname=(\S+)", opened["url"]).group(1)
    psql(opened["url"], f"ALTER DATABASE {dbname} SET timezone = 'Asia/Kathmandu'")  # UTC+05:45
    opened["org"] = opened["model"].orgs[0]
    opened["server"] = Server(opened["url"])
    yield opened
    opened["server"].stop()


# ------------------------------------------------------------------ scopes

def test_a_key_without_billing_read_is_forbidden_every_query_field(claims):
    server, url, org = claims["server"], claims["url"], claims["org"]
    _, writer = create_key(url, org, "refunds:write")
    _, noter = create_key(url, org, "credit_notes:write")
    for key in (writer, noter):
        r = server.gql("{ customers(first: 1) { totalCount } }", key=key)
        assert r.status == 200 and r.codes() == ["FORBIDDEN"] and r.errors[0]["path"] == ["customers"], r.raw
        assert r.json["data"] is None  # customers is non-null
        assert "billing:read" in r.errors[0]["message"]
        # A nullable field is null with its error; the rest of the query still answers.
        r = server.gql('{ invoice(id: "00000000-0000-4000-8000-000000000000") { id } __typename }', key=key)
        assert r.data == {"invoice": None, "__typename": "Query"} and r.codes() == ["FORBIDDEN"]
        assert r.errors[0]["path"] == ["invoice"]
        for field in ['invoiceByNumber(number: "x") { id }', 'arAging(asOf: "2024-01-01", currency: "USD") { total }',
                      "payments { totalCount }", "refunds { totalCount }", "creditNotes { totalCount }"]:
            assert server.gql("{ " + field + " }", key=key).codes() == ["FORBIDDEN"], field
    # The same key does what its scope allows.
    payment = psql(url, f"SELECT id FROM payment WHERE organisation_id = '{org}' AND status = 'SUCCEEDED' "
                        "AND amount > amount_refunded ORDER BY id LIMIT 1")
    r = server.gql('mutation($p: ID!) { refundPayment(input: {paymentId: $p, amount: 1}) { refund { amount } } }',
                   {"p": payment}, key=writer)
    assert r.data == {"refundPayment": {"refund": {"amount": 1}}}, r.raw


def test_a_mutation_without_its_scope_is_forbidden_and_changes_nothing(claims):
    server, url, org = claims["server"], claims["url"], claims["org"]
    _, noter = create_key(url, org, "credit_notes:write,billing:read")
    payment = psql(url, f"SELECT id FROM payment WHERE organisation_id = '{org}' AND status = 'SUCCEEDED' "
                        "AND amount > amount_refunded ORDER BY id DESC LIMIT 1")
    before = psql(url, f"SELECT amount_refunded FROM payment WHERE id = '{payment}'")
    r = server.gql('mutation($p: ID!) { refundPayment(input: {paymentId: $p, amount: 1, idempotencyKey: "scoped"}) '
                   '{ refund { id } } }', {"p": payment}, key=noter)
    assert r.codes() == ["FORBIDDEN"] and r.errors[0]["path"] == ["refundPayment"] and r.json["data"] is None
    assert psql(url, f"SELECT amount_refunded FROM payment WHERE id = '{payment}'") == before
    assert psql(url, "SELECT count(*) FROM idempotency_key WHERE key = 'scoped'") == "0"


def test_introspection_needs_a_key_but_no_scope(claims):
    """README/RULES.md section 1: __typename, __schema and __type need a valid key but no scope.
    (test_graphql's version uses a demo key that also carries billing:read.)"""
    server, url, org = claims["server"], claims["url"], claims["org"]
    _, writer = create_key(url, org, "refunds:write")
    r = server.gql('{ __schema { queryType { name } } __type(name: "Invoice") { name } __typename }', key=writer)
    assert r.status == 200 and not r.errors, r.raw
    assert r.data == {"__schema": {"queryType": {"name": "Query"}}, "__type": {"name": "Invoice"}, "__typename": "Query"}
    full = server.gql(get_introspection_query(descriptions=True), key=writer)
    assert not full.errors and full.data["__schema"]["mutationType"] == {"name": "Mutation"}
    r = server.gql("mutation { __typename }", key=writer)
    assert r.data == {"__typename": "Mutation"} and not r.errors
    # Still a key: none, or an unknown one, is 401.
    assert server.gql("{ __typename }").status == 401
    assert server.gql("{ __typename }", key="bg_no_such_key_0000000000").status == 401


# ------------------------------------------------------------------ revocation

def test_a_revoked_key_stops_working_within_five_seconds(claims):
    """README, "Key cache": each loop remembers a key for 5 seconds, so a revoked key stops
    working within 5 seconds (not necessarily at once). Every loop is asked (each has its own
    cache: several connections spread over them), and after 5 s none may accept the key."""
    server, url, org = claims["server"], claims["url"], claims["org"]
    key_id, key = create_key(url, org, "billing:read")
    for _ in range(10):  # warm the cache of every loop
        assert server.gql("{ __typename }", key=key).status == 200
    run_cli("keys", "revoke", key_id, url=url)
    revoked = time.monotonic()
    seen = []
    while time.monotonic() - revoked < 7:
        seen.append((time.monotonic() - revoked, server.gql("{ __typename }", key=key).status))
        time.sleep(0.05)
    assert {status for _, status in seen} <= {200, 401}
    accepted = [t for t, status in seen if status == 200]
    assert not accepted or max(accepted) <= 5.3, f"accepted {max(accepted):.2f} s after it was revoked"
    assert all(status == 401 for t, status in seen if t > 5.3)
    r = server.gql("{ __typename }", key=key)
    assert r.status == 401 and r.codes() == ["UNAUTHENTICATED"]


# ------------------------------------------------------------------ HTTP refusals

def raw_request(server, payload):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(payload)
        data = read_until(s, lambda d: b"\r\n\r\n" in d and len(d.partition(b"\r\n\r\n")[2]) >= _length(d),
                          closed_ok=True)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    return status, {k.lower(): v for k, v in headers.items()}, json.loads(body[:_length(data)])


def _length(data):
    m = re.search(rb"Content-Length: (\d+)", data.partition(b"\r\n\r\n")[0], re.I)
    return int(m.group(1)) if m else 0


def refusals(key):
    body = b'{"query": "{ __typename }"}'
    auth = b"Authorization: Bearer " + key.encode() + b"\r\n"

    def post(path=b"/graphql", extra=b"", payload=body, method=b"POST", content_type=b"Content-Type: application/json\r\n"):
        return (method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth + content_type + extra
                + b"Content-Length: " + str(len(payload)).encode() + b"\r\nConnection: close\r\n\r\n" + payload)
    return [
        (401, "UNAUTHENTICATED", post().replace(auth, b"")),
        (401, "UNAUTHENTICATED", post().replace(key.encode(), b"bg_not_a_key_at_all_000")),
        (404, "BAD_USER_INPUT", post(path=b"/elsewhere")),
        (404, "BAD_USER_INPUT", post(path=b"/")),
        (405, "BAD_USER_INPUT", post(method=b"PUT")),
        (405, "BAD_USER_INPUT", post(method=b"GET", payload=b"").replace(b"/graphql",
                                b"/graphql?query=mutation%7B__typename%7D")),
        (406, "BAD_USER_INPUT", post(extra=b"Accept: text/html\r\n")),
        (413, "BAD_USER_INPUT", post(payload=b"").replace(b"Content-Length: 0", b"Content-Length: 2000000")),
        (415, "BAD_USER_INPUT", post(content_type=b"Content-Type: text/plain\r\n")),
        (415, "BAD_USER_INPUT", post(content_type=b"")),
        (400, "BAD_USER_INPUT", b"NOT HTTP AT ALL\r\n\r\n"),
        (400, "BAD_USER_INPUT", post(payload=b"{not json")),
    ]


@pytest.mark.parametrize("case", range(12))
def test_http_refusals_carry_a_graphql_body_with_their_code(claims, case):
    """README, "HTTP refusals": 401, 404, 405, 406, 413, 415 and malformed HTTP carry a
    GraphQL-shaped body: UNAUTHENTICATED for 401, BAD_USER_INPUT otherwise; no data."""
    status, code, payload = refusals(claims["keys"][(1, "read")])[case]
    got, headers, body = raw_request(claims["server"], payload)
    assert got == status, body
    assert headers["content-type"].startswith("application/json")
    assert set(body) == {"errors"}, body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    assert isinstance(body["errors"][0]["message"], str) and body["errors"][0]["message"]
    if status == 405:
        assert "POST" in headers["allow"]
    if status == 401:
        assert headers["www-authenticate"].startswith("Bearer")


# ------------------------------------------------------------------ timestamps

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def expected_stamp(url, table, row_id):
    """The stored time cut to the second, in UTC, computed here from the epoch (not by the
    server's own formatting)."""
    epoch = float(psql(url, f"SELECT extract(epoch FROM created_at) FROM {table} WHERE id = '{row_id}'"))
    return datetime.datetime.fromtimestamp(int(epoch // 1), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fractional_dataset(path):
    """One organisation whose objects were created a hair before midnight (UTC) at the end of a
    year, as an importer may be given: cut, not rounded, they stay in that year."""
    customer, invoice, payment, refund = (f"8888888{n}-8888-4888-8888-888888888888" for n in range(4))
    lines = [{"type": "organisation", "id": ORG3, "name": "Late"},
             {"type": "api_key", "organisation_id": ORG3, "key": "bg_late_org_key_0001", "scopes": ["billing:read", "credit_notes:write"]},
             {"type": "customer", "id": customer, "organisation_id": ORG3, "name": "Eve", "currency": "EUR",
              "created_at": "2024-12-31T23:59:59.999999Z"},
             {"type": "invoice", "id": invoice, "organisation_id": ORG3, "customer_id": customer, "number": "L-1",
              "status": "open", "issued_on": "2024-12-31", "total": 5000, "created_at": "2024-12-31T23:59:59.5Z"},
             {"type": "payment", "id": payment, "organisation_id": ORG3, "customer_id": customer, "mode": "cash",
              "status": "succeeded", "amount": 5000, "received_on": "2024-12-31", "created_at": "2024-06-30T18:15:00.000001Z",
              "applications": [{"invoice_id": invoice, "amount": 5000}]},
             {"type": "refund", "id": refund, "organisation_id": ORG3, "payment_id": payment, "amount": 10,
              "refunded_on": "2025-01-01", "created_at": "2025-01-01T00:00:00Z"}]
    with open(path, "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    return customer, invoice, payment, refund


def test_timestamps_are_shown_to_the_second_in_utc(claims):
    server, url = claims["server"], claims["url"]
    path = os.path.join(tempfile.mkdtemp(), "late.jsonl")
    customer, invoice, payment, refund = fractional_dataset(path)
    run_cli("import", path, url=url)
    key = "bg_late_org_key_0001"
    r = server.gql("""query($c: ID!, $i: ID!, $p: ID!, $r: ID!) { customer(id: $c) { createdAt }
        invoice(id: $i) { createdAt } payment(id: $p) { createdAt } refund(id: $r) { createdAt } }""",
                   {"c": customer, "i": invoice, "p": payment, "r": refund}, key=key)
    assert r.data == {"customer": {"createdAt": "2024-12-31T23:59:59Z"}, "invoice": {"createdAt": "2024-12-31T23:59:59Z"},
                      "payment": {"createdAt": "2024-06-30T18:15:00Z"}, "refund": {"createdAt": "2025-01-01T00:00:00Z"}}, r.raw
    # A credit note made now, and voided: its times come from the database's clock.
    made = server.gql("""mutation($i: ID!) { createCreditNote(input: {invoiceId: $i, amount: 5, reason: "late",
        refundDestination: CREDITS}) { creditNote { id createdAt } } }""", {"i": invoice}, key=key)
    note = made.data["createCreditNote"]["creditNote"]
    assert STAMP.match(note["createdAt"]) and note["createdAt"] == expected_stamp(url, "credit_note", note["id"])
    now = datetime.datetime.now(datetime.timezone.utc)
    shown = datetime.datetime.strptime(note["createdAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((now - shown).total_seconds()) < 120  # UTC, not the session's UTC+05:45


@pytest.mark.parametrize("connection,table", [("customers", "customer"), ("invoices", "invoice"),
                                              ("payments", "payment"), ("refunds", "refund")])
def test_every_createdAt_of_the_generated_data_is_utc_to_the_second(claims, connection, table):
    r = claims["server"].gql(f"{{ {connection}(first: 1000) {{ nodes {{ id createdAt }} }} }}", key=claims["keys"][(1, "read")])
    nodes = r.data[connection]["nodes"]
    # The generated rows alone (a test of this module may add a refund, in any order).
    generated = int(psql(claims["url"], f"SELECT count(*) FROM {table} WHERE organisation_id = '{claims['org']}' "
                                        "AND created_at < now() - interval '1 hour'"))
    assert generated > 0 and len(nodes) >= generated
    stored = dict(line.split("|") for line in psql(
        claims["url"], f"SELECT id, floor(extract(epoch FROM created_at))::bigint FROM {table} "
                       f"WHERE organisation_id = '{claims['org']}'").splitlines())
    for node in nodes:
        assert STAMP.match(node["createdAt"]), node
        seconds = calendar.timegm(time.strptime(node["createdAt"], "%Y-%m-%dT%H:%M:%SZ"))
        assert seconds == int(stored[node["id"]]), node
