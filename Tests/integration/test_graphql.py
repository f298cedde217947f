"""The query language and GraphQL over HTTP, compared with graphql-core where it can be."""
import json
import socket
import time
import urllib.parse

import pytest
from graphql import (GraphQLError, build_client_schema, build_schema, find_breaking_changes, find_dangerous_changes,
                     get_introspection_query, parse, validate)

from conftest import canonical, read_to_close, read_until
from corpus import INVALID, INVALID_SYNTAX, VALID
import os

CONTRACT_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "schema", "schema.graphql")
CONTRACT = build_schema(open(CONTRACT_PATH).read())
# The reference learns the contract's scalar rules (RULES.md section 1: a Date of
# 2024-13-01 fails validation), which the schema file alone cannot say.
_date = CONTRACT.type_map["Date"]


def _parse_date(value):
    import datetime
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("not a date")
    datetime.date.fromisoformat(value)
    return value


def _parse_date_literal(node, _variables=None):
    from graphql.language import StringValueNode
    if not isinstance(node, StringValueNode):
        raise ValueError("not a date")
    return _parse_date(node.value)


_date.parse_value = _parse_date
_date.parse_literal = _parse_date_literal

# Documents where the September 2025 specification is ahead of graphql-core 3.2: the
# rule "Operation Type Existence" refuses an operation whose root type the schema lacks.
NEWER_THAN_REFERENCE = ["subscription { __typename }"]


def read_key(world):
    return world["keys"][(1, "read")]


def reference(document):
    """('parse' | 'validate' | 'ok', sorted error locations) according to graphql-core."""
    try:
        ast = parse(document)
    except GraphQLError as e:
        return "parse", sorted((l.line, l.column) for l in e.locations)
    errors = validate(CONTRACT, ast)
    if errors:
        return "validate", sorted((l.line, l.column) for e in errors for l in (e.locations or []))
    return "ok", []


def ours(world, document):
    r = world["server"].gql(document, key=read_key(world))
    codes = r.codes()
    locations = sorted((l["line"], l["column"]) for e in r.errors for l in e.get("locations", []))
    if "GRAPHQL_PARSE_FAILED" in codes:
        assert "data" not in r.json and r.status == 200
        return "parse", locations
    if "GRAPHQL_VALIDATION_FAILED" in codes:
        assert "data" not in r.json and r.status == 200
        assert set(codes) == {"GRAPHQL_VALIDATION_FAILED"}
        return "validate", locations
    # A valid document is run, or refused as a request (several operations and no name):
    # never a crash.
    assert r.status in (200, 400) and "INTERNAL_SERVER_ERROR" not in codes, r.raw
    return "ok", []


@pytest.mark.parametrize("document", VALID + INVALID_SYNTAX + INVALID)
def test_documents_are_judged_as_graphql_core_judges_them(world, document):
    want = reference(document) if document not in NEWER_THAN_REFERENCE else ("validate", [(1, 1)])
    got = ours(world, document)
    assert got[0] == want[0], (document, got, want)
    if want[0] == "parse":
        assert got[1] == want[1], (document, got, want)
    if want[0] == "validate":
        # The same places are blamed (each rule reports its own locations).
        assert set(got[1]) == set(want[1]), (document, got, want)


def test_the_corpus_covers_each_kind():
    assert all(reference(d)[0] == "ok" for d in VALID)
    assert all(reference(d)[0] == "parse" for d in INVALID_SYNTAX)
    assert all(reference(d)[0] == "validate" for d in INVALID if d not in NEWER_THAN_REFERENCE)


def test_introspection_builds_the_contract_schema(world):
    query = get_introspection_query(descriptions=True, specified_by_url=True, directive_is_repeatable=True,
                                    schema_description=True, input_value_deprecation=True)
    r = world["server"].gql(query, key=read_key(world))
    assert not r.errors
    served = build_client_schema(r.data)
    assert find_breaking_changes(CONTRACT, served) == []
    assert find_dangerous_changes(CONTRACT, served) == []
    assert find_breaking_changes(served, CONTRACT) == []


def test_introspection_needs_a_key_but_no_scope(world):
    refunds_only = world["keys"][(1, "refunds")]
    r = world["server"].gql('{ __type(name: "Refund") { name fields { name } } __typename }', key=refunds_only)
    assert r.data["__type"]["name"] == "Refund" and r.data["__typename"] == "Query"
    assert world["server"].gql("{ __typename }").status == 401


def test_execution_semantics(world):
    server, key = world["server"], read_key(world)
    r = server.gql("""query Two { b: customers(first: 1) { totalCount } a: __typename }
                      query One { __typename }""", key=key, operation="Two")
    assert list(r.data.keys()) == ["b", "a"]
    r = server.gql("query Two { __typename } query One { __typename }", key=key)
    assert r.status == 400
    r = server.gql("{ __typename }", key=key, operation="Nope")
    assert r.status == 400
    # Merging across fragments, @skip/@include with variables.
    r = server.gql("""query($yes: Boolean!) { customers(first: 1) { nodes { id ...F name @include(if: $yes) } } }
                      fragment F on Customer { id email @skip(if: $yes) }""", {"yes": True}, key=key)
    assert list(r.data["customers"]["nodes"][0].keys()) == ["id", "name"]
    # A field error carries path and locations; a nullable root field is null, the rest still answers.
    r = server.gql("{\n  customers(first: 0) { totalCount }\n}", key=key)
    assert r.data is None
    assert r.errors[0]["path"] == ["customers"] and r.errors[0]["locations"] == [{"line": 2, "column": 3}]
    assert r.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_custom_scalars_refuse_bad_values_clearly(world):
    server, key = world["server"], read_key(world)
    r = server.gql("query($d: Date!) { arAging(asOf: $d, currency: \"USD\") { total } }", {"d": "2024-02-30"}, key=key)
    assert r.codes() == ["BAD_USER_INPUT"] and "path" not in r.errors[0] and "data" not in r.json
    assert "YYYY-MM-DD" in r.errors[0]["message"]
    r = server.gql("mutation($c: JSON) { createCreditNote(input: {invoiceId: \"x\", amount: 1, reason: \"r\", customData: $c}) { invoice { id } } }",
                   {"c": {"nested": [1, 2]}}, key=world["keys"][(1, "full")])
    assert r.codes() == ["NOT_FOUND"]
    r = server.gql("query($f: Int) { customers(first: $f) { totalCount } }", {"f": 2 ** 31}, key=key)
    assert r.codes() == ["BAD_USER_INPUT"]
    # An ID takes any integer, as graphql-core does: here one that names no customer.
    for number in ("9223372036854775808", "1e20", "1.5e1"):
        r = server.request(raw=('{"query": "query($v: ID!) { customer(id: $v) { id } }", "variables": {"v": %s}}' % number).encode(),
                           key=key)
        assert r.status == 200 and r.json == {"data": {"customer": None}}, (number, r.raw)
    assert server.gql("query($v: ID!) { customer(id: $v) { id } }", {"v": 1.5}, key=key).codes() == ["BAD_USER_INPUT"]


# ------------------------------------------------------------------------------ GraphQL over HTTP

def test_get_runs_queries_and_refuses_mutations(world):
    server, key = world["server"], read_key(world)
    qs = "?" + urllib.parse.urlencode({"query": "query($f: Int) { customers(first: $f) { totalCount } }",
                                       "variables": json.dumps({"f": 1})})
    r = server.request(key=key, method="GET", query_string=qs)
    assert r.status == 200 and r.data["customers"]["totalCount"] > 0
    assert r.headers["content-type"].startswith("application/json")
    qs = "?" + urllib.parse.urlencode({"query": "mutation { voidCreditNote(input: {creditNoteId: \"x\"}) { invoice { id } } }"})
    r = server.request(key=key, method="GET", query_string=qs)
    assert r.status == 405 and r.headers["allow"] == "POST" and r.codes()


@pytest.mark.parametrize("raw,content_type,status", [
    (b"{not json", "application/json", 400),
    (b"", "application/json", 400),
    (b"[]", "application/json", 400),
    (b'{"variables": {}}', "application/json", 400),
    (b'{"query": null}', "application/json", 400),
    (b'{"query": 1}', "application/json", 400),
    (b'{"query": "{ __typename }", "variables": []}', "application/json", 400),
    (b'{"query": "{ __typename }", "operationName": 5}', "application/json", 400),
    (b'{"query": "{ __typename }", "extensions": "x"}', "application/json", 400),
    (b'{"query": "{ __typename }", "variables": null, "operationName": null, "extensions": null}', "application/json", 200),
    (b'{"query": "{ __typename }"}', "text/plain", 415),
    (b'{"query": "{ __typename }"}', None, 415),
    (b'{"query": "{ __typename }"}', "application/json; charset=utf-8", 200),
    (b'{"query": "\xff"}', "application/json", 400),
])
def test_malformed_requests(world, raw, content_type, status):
    headers = {"Authorization": f"Bearer {read_key(world)}"}
    if content_type:
        headers["Content-Type"] = content_type
    r = world["server"].request(raw=raw, headers=headers)
    if content_type is None:  # urllib adds a form content type to a POST body; send it raw
        r = raw_http(world, b"POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + read_key(world).encode()
                     + b"\r\nContent-Length: " + str(len(raw)).encode() + b"\r\nConnection: close\r\n\r\n" + raw)[0]
    assert r.status == status, r.raw
    if status != 200:
        assert r.codes() == ["BAD_USER_INPUT"] and "data" not in r.json


@pytest.mark.parametrize("accept,media,invalid_status", [
    (None, "application/json", 200),
    ("application/json", "application/json", 200),
    ("*/*", "application/json", 200),
    ("application/graphql-response+json", "application/graphql-response+json", 400),
    ("application/graphql-response+json, application/json;q=0.9", "application/graphql-response+json", 400),
])
def test_media_types_and_status_codes(world, accept, media, invalid_status):
    headers = {"Accept": accept} if accept else {}
    server, key = world["server"], read_key(world)
    ok = server.request({"query": "{ __typename }"}, key=key, headers=headers)
    assert ok.status == 200 and ok.headers["content-type"].startswith(media)
    for bad in ["{ nope }", "{ customers {", ]:
        r = server.request({"query": bad}, key=key, headers=headers)
        assert r.status == invalid_status and r.headers["content-type"].startswith(media) and "data" not in r.json
    r = server.request({"query": "query($f: Int!) { customers(first: $f) { totalCount } }", "variables": {"f": "x"}},
                       key=key, headers=headers)
    assert r.status == invalid_status and "data" not in r.json and r.codes() == ["BAD_USER_INPUT"]


def test_unacceptable_media_type_and_methods(world):
    server, key = world["server"], read_key(world)
    assert server.request({"query": "{ __typename }"}, key=key, headers={"Accept": "text/html"}).status == 406
    r = server.request({"query": "{ __typename }"}, key=key, method="PUT")
    assert r.status == 405 and "POST" in r.headers["allow"] and r.codes()
    assert server.request({"query": "{ __typename }"}, key=key, path="/elsewhere").status == 404


def test_body_over_one_mebibyte_is_413(world):
    big = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * (1 << 20)}}).encode()
    r = world["server"].request(raw=big, key=read_key(world))
    assert r.status == 413 and r.codes()


def raw_http(world, payload, expect=1):
    """Sends raw bytes on one connection; returns the responses read."""
    with socket.create_connection(("127.0.0.1", world["server"].port), timeout=30) as s:
        s.sendall(payload)
        data = read_until(s, lambda d: _complete(d, expect), closed_ok=True)
    return _split(data)


def _complete(data, expect):
    try:
        return len(_split(data)) >= expect
    except ValueError:
        return False


def _split(data):
    from conftest import Response
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("incomplete")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("Content-Length", "0"))
        if len(rest) < length:
            raise ValueError("incomplete")
        out.append(Response(status, headers, rest[:length]))
        data = rest[length:]
    return out


def test_keep_alive_and_pipelined_requests_answer_in_order(world):
    key = read_key(world).encode()

    def request(query):
        body = json.dumps({"query": query}).encode()
        return (b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer " + key
                + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    responses = raw_http(world, request("{ a: __typename }") + request("{ customers(first: 1) { totalCount } }")
                         + request("{ b: __typename }"), expect=3)
    assert [r.status for r in responses] == [200, 200, 200]
    assert responses[0].data == {"a": "Query"} and responses[2].data == {"b": "Query"}
    assert "customers" in responses[1].data


def test_a_long_pipeline_is_answered_in_order(world):
    key = read_key(world).encode()

    def request(i):
        body = json.dumps({"query": f"{{ n{i}: __typename }}"}).encode()
        return (b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer " + key
                + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    # More than the connection queues before it stops reading (backpressure), in one write;
    # then one more on the same connection, which is read once the queue has drained.
    with socket.create_connection(("127.0.0.1", world["server"].port), timeout=30) as s:
        s.sendall(b"".join(request(i) for i in range(60)))
        data = read_until(s, lambda d: _complete(d, 60))
        assert [r.data for r in _split(data)] == [{f"n{i}": "Query"} for i in range(60)]
        s.sendall(request(60))
        more = read_until(s, lambda d: _complete(d, 1))
        assert _split(more)[0].data == {"n60": "Query"}


def test_large_answers_pipelined_to_a_slow_reader_arrive_whole_and_in_order(world):
    """The socket takes what it can of an answer at once; libuv writes the rest later,
    and the answers after it wait behind it. A client with little room that reads slowly
    gets every byte, in order."""
    server, key = world["server"], read_key(world)
    big = "{ invoices(first: 1000) { nodes { " + " ".join(f"a{i}: number" for i in range(100)) + " } } }"
    queries = [q for i in range(6) for q in (big, f"{{ n{i}: __typename }}")]
    big_answer = server.gql(big, key=key).data
    expected = [q == big and big_answer or {f"n{i // 2}": "Query"} for i, q in enumerate(queries)]
    # Six answers of about a megabyte to a reader with 8 KiB of room: more than the
    # server's socket holds (tcp_wmem allows it 4 MiB at most), so some are written in
    # parts (a copy of the server that wrote the rest from the answer's start fails here).
    assert len(json.dumps(big_answer)) > 900_000

    def request(query):
        body = json.dumps({"query": query}).encode()
        return (b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer "
                + key.encode() + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 10)
        s.settimeout(30)
        s.connect(("127.0.0.1", server.port))
        s.sendall(b"".join(request(q) for q in queries))
        # The last answer is the last query's: read until it has come.
        last, chunks, tail = b'{"data":{"n5":"Query"}}', [], b""
        while not tail.endswith(last):
            time.sleep(0.002)  # slower than the server writes: its socket fills up
            chunk = s.recv(64 << 10)
            assert chunk, "the server closed before all answers were written"
            chunks.append(chunk)
            tail = (tail + chunk)[-len(last):]
    answers = _split(b"".join(chunks))
    assert [r.status for r in answers] == [200] * len(queries)
    assert [r.data for r in answers] == expected


def test_malformed_http_gets_400_and_the_server_lives_on(world):
    responses = raw_http(world, b"NOT HTTP AT ALL\r\n\r\n")
    assert responses[0].status == 400
    assert world["server"].gql("{ __typename }", key=read_key(world)).status == 200


def test_expect_100_continue_is_answered_before_the_body(world):
    body = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 2000}}).encode()
    head = (b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
            b"Authorization: Bearer " + read_key(world).encode() + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", world["server"].port), timeout=5) as s:
        s.sendall(head)
        interim = read_until(s, lambda d: b"\r\n\r\n" in d)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        data = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):] + read_to_close(s)
    assert data.startswith(b"HTTP/1.1 200") and b'"__typename":"Query"' in data
