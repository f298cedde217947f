"""The importer through the real command line: strict, all-or-nothing, with line numbers."""
import json
import os
import tempfile

import pytest

from conftest import create_database, new_database, psql, run_cli, seed

COUNTS = "SELECT (SELECT count(*) FROM organisation) || ',' || (SELECT count(*) FROM customer) || ',' || " \
         "(SELECT count(*) FROM invoice) || ',' || (SELECT count(*) FROM payment) || ',' || (SELECT count(*) FROM refund)"


@pytest.fixture(scope="module")
def dataset():
    workdir = tempfile.mkdtemp()
    path = os.path.join(workdir, "data.jsonl")
    seed(path, customers=12, orgs=1, seed_value=5)  # 12: every hard case of the seeder, refunds among them
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    return lines


def write(lines):
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    with os.fdopen(fd, "w") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def first(lines, kind, predicate=lambda o: True):
    return next(i for i, o in enumerate(lines) if o["type"] == kind and predicate(o))


def broken(dataset, kind, change, predicate=lambda o: True):
    lines = [dict(o) for o in dataset]
    i = first(lines, kind, predicate)
    change(lines[i])
    return lines, i + 1  # 1-based line number


CASES = [
    ("negative total", "invoice", lambda o: o.update(total=-5), "total"),
    ("unknown key", "customer", lambda o: o.update(nickname="x"), "unknown key \"nickname\""),
    ("bad currency", "customer", lambda o: o.update(currency="usd"), "currency"),
    ("bad date", "invoice", lambda o: o.update(issued_on="2024-02-30"), "issued_on"),
    ("bad timestamp", "customer", lambda o: o.update(created_at="yesterday"), "created_at"),
    ("uppercase id", "customer", lambda o: o.update(id=o["id"].upper()), "UUID"),
    ("unknown customer", "invoice", lambda o: o.update(customer_id="00000000-0000-4000-8000-000000000000"), "customer"),
    ("bad status", "invoice", lambda o: o.update(status="paid"), "status"),
    ("money as text", "payment", lambda o: o.update(amount="100"), "amount"),
    ("short key", "api_key", lambda o: o.update(key="short"), "16 to 128"),
    ("bad scope", "api_key", lambda o: o.update(scopes=["admin"]), "scopes"),
    ("over-applied", "payment", lambda o: o.update(amount=0), "more than the amount"),
    ("failed with applications", "payment", lambda o: o.update(status="failed"), "failed payment"),
    ("refund too large", "refund", lambda o: o.update(amount=10 ** 12), "exceed"),
    ("money beyond 64 bits", "invoice", lambda o: o.update(total=2 ** 63), "total"),
    ("non-ASCII digits in a fraction", "customer", lambda o: o.update(created_at="2024-05-01T12:00:00.\u0663Z"), "created_at"),
    ("non-ASCII digits in a date", "invoice", lambda o: o.update(issued_on="2024-05-\u0660\u0661"), "issued_on"),
    ("refund near 2^63", "refund", lambda o: o.update(amount=2 ** 63 - 1), "exceed"),
    ("NUL in a name", "customer", lambda o: o.update(name="a\u0000b"), "U+0000"),
]


@pytest.mark.parametrize("name,kind,change,reason", CASES, ids=[c[0] for c in CASES])
def test_a_broken_line_stops_the_import_with_its_number_and_nothing_is_stored(dataset, name, kind, change, reason):
    predicate = (lambda o: o.get("applications")) if kind == "payment" else (lambda o: True)
    lines, number = broken(dataset, kind, change, predicate)
    url = create_database()
    result = run_cli("import", write(lines), url=url, check=False)
    assert result.returncode == 1
    assert f"line {number}:" in result.stderr and reason in result.stderr, result.stderr
    assert "nothing was stored" in result.stderr
    assert psql(url, COUNTS) == "0,0,0,0,0"


def test_sums_that_overflow_64_bits_stop_the_import_with_their_line(dataset):
    """A second refund of Int64.max on a payment already partly refunded: the running sum
    would wrap around (and crashed the importer before); now it is that line's error."""
    lines = [dict(o) for o in dataset]
    i = first(lines, "refund")
    extra = dict(lines[i], id="00000000-0000-4000-8000-0000000000ff", amount=2 ** 63 - 1)
    lines.insert(i + 1, extra)
    url = create_database()
    result = run_cli("import", write(lines), url=url, check=False)
    assert result.returncode == 1
    assert f"line {i + 2}:" in result.stderr and "would exceed" in result.stderr, result.stderr
    assert psql(url, COUNTS) == "0,0,0,0,0"


def test_not_json_and_unknown_type(dataset):
    url = create_database()
    result = run_cli("import", write([dataset[0], "{not json"]), url=url, check=False)
    assert result.returncode == 1 and "line 2:" in result.stderr and "JSON" in result.stderr
    result = run_cli("import", write([dataset[0], {"type": "dragon"}]), url=url, check=False)
    assert result.returncode == 1 and "line 2: unknown type" in result.stderr


def test_a_second_file_may_name_stored_objects_and_stdin_works(dataset):
    url = create_database()
    run_cli("import", write(dataset), url=url)
    payment = next(o for o in dataset if o["type"] == "payment" and o["status"] == "succeeded")
    refunded = sum(o["amount"] for o in dataset if o["type"] == "refund" and o["payment_id"] == payment["id"])
    refund = {"type": "refund", "id": "11111111-1111-4111-8111-111111111111", "organisation_id": payment["organisation_id"],
              "payment_id": payment["id"], "amount": 1, "refunded_on": "2025-01-01", "created_at": "2025-01-01T00:00:00Z"}
    result = run_cli("import", "-", url=url, input=json.dumps(refund) + "\n")
    assert "imported 1 lines" in result.stderr
    stored = psql(url, f"SELECT amount_refunded FROM payment WHERE id = '{payment['id']}'")
    assert int(stored) == refunded + 1
    # The same object again is refused with its line, and the rest of that file is not stored.
    again = run_cli("import", write([refund]), url=url, check=False)
    assert again.returncode == 1 and "line 1:" in again.stderr


def test_the_same_id_twice_in_a_file(dataset):
    url = create_database()
    customer = next(o for o in dataset if o["type"] == "customer")
    lines = dataset + [dict(customer, external_id="another")]
    result = run_cli("import", write(lines), url=url, check=False)
    assert result.returncode == 1 and f"line {len(lines)}:" in result.stderr and "already used" in result.stderr


def test_keys_create_list_revoke():
    from conftest import Server
    url = create_database()
    run_cli("import", write([{"type": "organisation", "id": "22222222-2222-4222-8222-222222222222", "name": "K"}]), url=url)
    created = run_cli("keys", "create", "--organisation", "22222222-2222-4222-8222-222222222222",
                      "--scopes", "billing:read", "--label", "ci", url=url)
    key = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("key:"))
    key_id = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("key id:"))
    assert key not in psql(url, "SELECT string_agg(encode(key_hash, 'escape'), ',') FROM api_key")
    listed = run_cli("keys", "list", "--organisation", "22222222-2222-4222-8222-222222222222", url=url).stdout
    assert key_id in listed and key not in listed
    server = Server(url)
    try:
        assert server.gql("{ customers { totalCount } }", key=key).data == {"customers": {"totalCount": 0}}
        forbidden = server.gql("mutation { voidCreditNote(input: {creditNoteId: \"x\"}) { invoice { id } } }", key=key)
        assert forbidden.codes() == ["FORBIDDEN"]
        run_cli("keys", "revoke", key_id, url=url)
    finally:
        server.stop()
    server = Server(url)  # a fresh server: no cached answer for the key
    try:
        assert server.gql("{ __typename }", key=key).status == 401
    finally:
        server.stop()
    bad = run_cli("keys", "create", "--organisation", "22222222-2222-4222-8222-222222222222", "--scopes", "root", url=url, check=False)
    assert bad.returncode != 0 and "unknown scope" in bad.stderr
    again = run_cli("keys", "revoke", key_id, url=url, check=False)
    assert again.returncode == 1 and "no such active key" in again.stderr
    missing = run_cli("import", "/nonexistent/file.jsonl", url=url, check=False)
    assert missing.returncode == 1 and "cannot open" in missing.stderr
    down = run_cli("migrate", url="host=127.0.0.1 port=1 connect_timeout=2", check=False)
    assert down.returncode == 1 and "cannot connect to the database" in down.stderr


def test_housekeeping_deletes_expired_idempotency_keys_only(dataset):
    url = create_database()  # not the shared world: this test writes
    run_cli("import", write(dataset), url=url)
    org = next(o["id"] for o in dataset if o["type"] == "organisation")
    psql(url, f"INSERT INTO idempotency_key (organisation_id, key, mutation, fingerprint, result, created_at) VALUES "
              f"('{org}', 'old-key', 'refundPayment', '{{}}', 'null', now() - interval '49 hours'), "
              f"('{org}', 'new-key', 'refundPayment', '{{}}', 'null', now() - interval '23 hours')")
    result = run_cli("housekeeping", url=url)
    assert "deleted 1 expired" in result.stderr
    assert psql(url, "SELECT string_agg(key, ',' ORDER BY key) FROM idempotency_key WHERE key IN ('old-key', 'new-key')") == "new-key"


def test_money_beyond_32_bits_is_answered_exactly():
    from conftest import Server
    org, customer = "33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444"
    lines = [{"type": "organisation", "id": org, "name": "Big"},
             {"type": "api_key", "organisation_id": org, "key": "bg_big_money_key_0001", "scopes": ["billing:read"]},
             {"type": "customer", "id": customer, "organisation_id": org, "name": "Whale", "currency": "USD",
              "created_at": "2024-01-01T00:00:00Z"}]
    for n in range(3):
        lines.append({"type": "invoice", "id": f"55555555-5555-4555-8555-55555555555{n}", "organisation_id": org,
                      "customer_id": customer, "number": f"BIG-{n}", "status": "open", "issued_on": "2024-01-01",
                      "total": 2_000_000_000, "created_at": "2024-01-01T00:00:00Z"})
    url = create_database()
    run_cli("import", write(lines), url=url)
    server = Server(url)
    try:
        r = server.gql('{ arAging(asOf: "2024-06-01", currency: "USD") { current total } '
                       'customers { nodes { totals { invoiced outstanding } } } }', key="bg_big_money_key_0001")
        assert r.data["arAging"] == {"current": 6_000_000_000, "total": 6_000_000_000}
        assert r.data["customers"]["nodes"][0]["totals"] == {"invoiced": 6_000_000_000, "outstanding": 6_000_000_000}
    finally:
        server.stop()


def test_commands_on_a_database_never_migrated_say_to_migrate(dataset):
    """An import (or a key made) before `billgraph migrate` is refused with what to do, not
    with the SQL error of the first missing table, and leaves the database as it was."""
    url = new_database("bgtest_bare_")
    path = write(dataset)
    for args in (["import", path], ["keys", "list", "--organisation", dataset[0]["id"]]):
        out = run_cli(*args, url=url, check=False)
        assert out.returncode != 0, args
        assert "run billgraph migrate first" in out.stderr, out.stderr
        assert "SQLSTATE" not in out.stderr and "relation" not in out.stderr, out.stderr
    assert psql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
    run_cli("migrate", url=url)
    run_cli("import", path, url=url)
    assert psql(url, "SELECT count(*) FROM customer") == str(sum(1 for o in dataset if o["type"] == "customer"))


def test_migrate_refuses_a_database_that_does_not_keep_utf8():
    """Text is UTF-8 in the API and the dataset: a LATIN1 database would keep a name's UTF-8
    bytes as Latin-1 characters. `migrate` says what to do and creates nothing."""
    url = new_database("bgtest_latin1_", "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    out = run_cli("migrate", url=url, check=False)
    assert out.returncode == 1, out.stderr
    assert "the database's encoding is LATIN1" in out.stderr and "ENCODING 'UTF8'" in out.stderr, out.stderr
    assert psql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"


def test_timestamps_are_kept_to_the_second_they_are_shown_with():
    """README, "Imported timestamps": a fraction of a second is accepted and dropped, so
    that customers created in the same shown second come in id order (RULES.md section 2:
    ties break by id), not in the order of fractions nobody sees."""
    from conftest import Server
    org = "66666666-6666-4666-8666-666666666666"
    lines = [{"type": "organisation", "id": org, "name": "Fractions"},
             {"type": "api_key", "organisation_id": org, "key": "bg_fraction_key_00001", "scopes": ["billing:read"]}]
    # The higher id has the earlier fraction.
    for n, at in ((1, "2024-01-01T10:00:00.900Z"), (2, "2024-01-01T10:00:00.100Z"), (3, "2024-01-01T09:59:59.999999Z")):
        lines.append({"type": "customer", "id": f"7777777{n}-7777-4777-8777-777777777777", "organisation_id": org,
                      "name": f"C{n}", "currency": "USD", "created_at": at})
    url = create_database()
    run_cli("import", write(lines), url=url)
    server = Server(url)
    try:
        r = server.gql("{ customers { nodes { id createdAt } } }", key="bg_fraction_key_00001")
        assert [(c["id"][7], c["createdAt"]) for c in r.data["customers"]["nodes"]] == [
            ("3", "2024-01-01T09:59:59Z"), ("1", "2024-01-01T10:00:00Z"), ("2", "2024-01-01T10:00:00Z")], r.raw
    finally:
        server.stop()


def test_name_contains_ignores_case_as_unicode_case_folding_does():
    """RULES.md section 2: "case is ignored across Unicode". The expected customers come from
    Python's str.casefold, Unicode's full case folding."""
    from conftest import Server
    org = "88888888-8888-4888-8888-888888888888"
    names = ["Straße Bau GmbH", "STRASSE Works", "Οσμή Ltd", "ΣΟΦΙΑ ος", "\u212aelvin Labs", "kettle Co", "Müller AG"]
    lines = [{"type": "organisation", "id": org, "name": "Folding"},
             {"type": "api_key", "organisation_id": org, "key": "bg_folding_key_000001", "scopes": ["billing:read"]}]
    for n, name in enumerate(names):
        lines.append({"type": "customer", "id": f"9999999{n}-9999-4999-8999-999999999999", "organisation_id": org,
                      "name": name, "currency": "EUR", "created_at": f"2024-01-01T00:00:0{n}Z"})
    url = create_database()
    run_cli("import", write(lines), url=url)
    server = Server(url)
    try:
        for needle in ["strasse", "STRASSE", "straß", "ΟΣ", "σο", "ς", "K", "kelvin", "MÜLLER"]:
            r = server.gql("query($s: String) { customers(filter: {nameContains: $s}) { nodes { name } } }",
                           {"s": needle}, key="bg_folding_key_000001")
            expected = [name for name in names if needle.casefold() in name.casefold()]
            assert expected and [c["name"] for c in r.data["customers"]["nodes"]] == expected, (needle, r.raw)
    finally:
        server.stop()


def test_utc_may_be_written_as_rfc_3339_allows_and_other_offsets_are_refused():
    """DATASET.md: "timestamps RFC 3339 in UTC". UTC written +00:00 (as Python's isoformat
    writes it), -00:00, or with a lower-case t or z is UTC; +01:00 is not, and stops the import
    at its line."""
    from conftest import Server
    org = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
    lines = [{"type": "organisation", "id": org, "name": "Offsets"},
             {"type": "api_key", "organisation_id": org, "key": "bg_offsets_key_000001", "scopes": ["billing:read"]}]
    for n, at in enumerate(["2024-01-01T10:00:01+00:00", "2024-01-01T10:00:02.5-00:00", "2024-01-01t10:00:03z"]):
        lines.append({"type": "customer", "id": f"bbbbbbb{n}-bbbb-4bbb-8bbb-bbbbbbbbbbbb", "organisation_id": org,
                      "name": f"C{n}", "currency": "USD", "created_at": at})
    url = create_database()
    for at in ("2024-01-01T11:00:00+01:00", "2024-13-01T11:00:00+00:00"):  # not UTC; no 13th month
        wrong = dict(lines[-1], id="bbbbbbbf-bbbb-4bbb-8bbb-bbbbbbbbbbbb", created_at=at)
        refused = run_cli("import", write(lines + [wrong]), url=url, check=False)
        assert refused.returncode == 1 and f"line {len(lines) + 1}:" in refused.stderr, refused.stderr
        assert f'must be an RFC 3339 timestamp in UTC such as 2024-05-01T12:00:00Z, got "{at}"' in refused.stderr, refused.stderr
    run_cli("import", write(lines), url=url)
    server = Server(url)
    try:
        r = server.gql("{ customers { nodes { createdAt } } }", key="bg_offsets_key_000001")
        assert [c["createdAt"] for c in r.data["customers"]["nodes"]] == [
            "2024-01-01T10:00:01Z", "2024-01-01T10:00:02Z", "2024-01-01T10:00:03Z"], r.raw
    finally:
        server.stop()
