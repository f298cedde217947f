"""Claims the map in Tests/README.md found without a test: the exact depth limit and
what counts towards it, ids in another case, figures of a failed payment, and the
credit note rules that no other test decided."""
from conftest import open_world

ZERO = "00000000-0000-4000-8000-000000000000"


def read(world):
    return world["keys"][(1, "read")]


def path_of(fields):
    """A query exactly `fields` fields deep: customers, nodes, then invoices and customer
    in turn, and id last."""
    inner, names = "id", []
    for k in range(fields - 3):
        names.append("invoices(first: 1)" if k % 2 == 0 else "customer")
    for name in reversed(names):
        inner = f"{name} {{ {inner} }}"
    return f"{{ customers(first: 1) {{ nodes {{ {inner} }} }} }}"


def test_fifteen_levels_run_and_sixteen_are_refused_before_the_database(world):
    server = world["server"]
    ok = server.gql(path_of(15), key=read(world))
    assert ok.errors == [] and ok.statements() > 0
    refused = server.gql(path_of(16), key=read(world))
    assert refused.codes() == ["QUERY_TOO_COMPLEX"] and "16 levels" in refused.errors[0]["message"]
    assert refused.statements() == 0 and "data" not in refused.json


def test_schema_and_type_count_as_one_level_however_deep_inside(world):
    inner = "name"
    for _ in range(16):
        inner = f"ofType {{ {inner} }}"
    r = world["server"].gql(f'{{ __type(name: "Query") {{ fields {{ type {{ {inner} }} }} }} }}', key=read(world))
    assert r.errors == [], r.errors
    assert r.data["__type"]["fields"]


def test_an_id_in_another_case_is_no_id(world):
    model = world["model"]
    customer = model.customers_of(model.orgs[0])[0]
    r = world["server"].gql("query($id: ID!) { customer(id: $id) { id } }", {"id": customer["id"].upper()}, key=read(world))
    assert r.errors == [] and r.data == {"customer": None}
    r = world["server"].gql("query($id: ID!) { customer(id: $id) { id } }", {"id": customer["id"]}, key=read(world))
    assert r.data == {"customer": {"id": customer["id"]}}


def test_a_failed_payment_has_nothing_refundable(world):
    model = world["model"]
    failed = [p for p in model.payments.values() if p["status"] == "failed" and p["organisation_id"] == model.orgs[0]]
    assert failed
    for p in failed:
        r = world["server"].gql("query($id: ID!) { payment(id: $id) { status refundableAmount amountRefunded } }",
                                {"id": p["id"]}, key=read(world))
        assert r.data["payment"] == {"status": "FAILED", "refundableAmount": 0, "amountRefunded": 0}


def test_credit_note_rules_no_other_test_decides():
    """A VOID invoice cannot be credited; an empty split is no split (the payments are taken
    oldest first); a note's refunds take the payment's mode and today's date; a replay
    answers with the objects as they are now."""
    world = open_world(customers=20, seed_value=51)
    server, model = world["server"], world["model"]
    full = world["keys"][(1, "full")]
    try:
        void = next(i for i in model.invoices_of(model.orgs[0]) if i["status"] == "void")
        note = lambda inv, **more: server.gql(
            """mutation($input: CreateCreditNoteInput!) { createCreditNote(input: $input) {
               creditNote { id refunds { amount mode refundedOn payment { id } } } invoice { id balance } } }""",
            {"input": dict({"invoiceId": inv["id"], "amount": 5, "reason": "r"}, **more)}, key=full)
        assert note(void).codes() == ["INVALID_STATE"]
        paid = next(i for i in model.invoices_of(model.orgs[0])
                    if i["status"] == "open" and model.balance(i["id"]) == 0 and model.apps_by_invoice[i["id"]]
                    and all(not model.refunds_by_payment[p] for p, _ in model.apps_by_invoice[i["id"]]))
        oldest = min((model.payments[p] for p, _ in model.apps_by_invoice[paid["id"]]), key=lambda p: (p["received_on"], p["id"]))
        r = note(paid, refundDestination="ORIGINAL_PAYMENT_METHOD", refundSplit=[], idempotencyKey="empty-split")
        assert r.errors == [], r.errors
        import datetime
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        assert r.data["createCreditNote"]["creditNote"]["refunds"] == [
            {"amount": 5, "mode": oldest["mode"].upper(), "refundedOn": today, "payment": {"id": oldest["id"]}}]
        # The invoice changes after the note; its replay shows the invoice as it is now.
        assert not note(paid, amount=7, refundDestination="CREDITS").errors
        again = note(paid, refundDestination="ORIGINAL_PAYMENT_METHOD", refundSplit=[], idempotencyKey="empty-split")
        assert again.data["createCreditNote"]["creditNote"]["id"] == r.data["createCreditNote"]["creditNote"]["id"]
        now = server.gql("query($id: ID!) { invoice(id: $id) { balance } }", {"id": paid["id"]}, key=full)
        assert again.data["createCreditNote"]["invoice"]["balance"] == now.data["invoice"]["balance"]
    finally:
        server.stop()


def test_a_key_the_importer_accepts_is_a_key_the_server_accepts():
    """DATASET.md: a key is 16 to 128 printable ASCII characters, spaces among them. The
    importer and the server share that rule; a key of 15 or 129 characters is refused
    without a lookup, whatever it is."""
    import os
    import tempfile
    from conftest import Server, create_database, run_cli
    org = "33333333-3333-4333-8333-333333333333"
    spaced, short = "a key with spaces in it", "k" * 15
    path = os.path.join(tempfile.mkdtemp(), "keys.jsonl")
    with open(path, "w") as f:
        f.write('{"type": "organisation", "id": "%s", "name": "Spaces"}\n' % org)
        f.write('{"type": "api_key", "organisation_id": "%s", "key": "%s", "scopes": ["billing:read"]}\n' % (org, spaced))
    url = create_database()
    run_cli("import", path, url=url)
    server = Server(url)
    try:
        assert server.gql("{ customers { totalCount } }", key=spaced).data == {"customers": {"totalCount": 0}}
        assert server.gql("{ __typename }", key=short).status == 401
        assert server.gql("{ __typename }", key="k" * 129).status == 401
    finally:
        server.stop()
