"""The canonical read queries over HTTP, checked against the independent model."""
import pytest

from conftest import canonical


def full_key(world, org=1):
    return world["keys"][(org, "full")]


def walk(server, query, key, connection, variables=None, page_limit=1000):
    """Follows endCursor until hasNextPage is false; returns the pages' nodes."""
    nodes, after, pages = [], None, 0
    while True:
        r = server.gql(query, dict(variables or {}, after=after), key=key)
        assert r.status == 200, r.raw
        assert not r.errors, r.errors
        page = r.data[connection]
        nodes.extend(page["nodes"])
        pages += 1
        assert pages < page_limit
        if not page["pageInfo"]["hasNextPage"]:
            # The last page has an endCursor exactly when it has nodes.
            assert (page["pageInfo"]["endCursor"] is None) == (not page["nodes"])
            return nodes
        assert page["pageInfo"]["endCursor"]
        after = page["pageInfo"]["endCursor"]


def test_dashboard_walks_every_customer_once_with_right_figures(world):
    server, model = world["server"], world["model"]
    org = model.orgs[0]
    nodes = walk(server, canonical("dashboard"), full_key(world), "customers", {"first": 25})
    expected = model.customers_of(org)
    assert [n["id"] for n in nodes] == [c["id"] for c in expected]
    for node, customer in zip(nodes, expected):
        assert node["name"] == customer["name"]
        assert node["email"] == customer.get("email")
        assert node["currency"] == customer["currency"]
        assert node["creditBalance"] == customer.get("credit_balance", 0)
        invoices = model.invoices_of_customer(customer["id"], newest_first=True)[:10]
        assert [i["id"] for i in node["invoices"]] == [i["id"] for i in invoices]
        for got, inv in zip(node["invoices"], invoices):
            assert got["number"] == inv["number"]
            assert got["status"] == model.invoice_status(inv["id"])
            assert got["issuedOn"] == inv["issued_on"]
            assert got["dueOn"] == inv.get("due_on")
            assert got["total"] == inv["total"]
            assert got["amountPaid"] == model.amount_paid(inv["id"])
            assert got["balance"] == model.balance(inv["id"])
            payments = model.payments_of_invoice(inv["id"])
            assert [p["id"] for p in got["payments"]] == [p["id"] for p in payments]
            for gp, p in zip(got["payments"], payments):
                assert gp["mode"] == p["mode"].upper()
                assert gp["amount"] == p["amount"]
                assert gp["receivedOn"] == p["received_on"]
                assert gp["amountRefunded"] == model.amount_refunded(p["id"])
                refunds = model.refunds_of_payment(p["id"])
                assert gp["refunds"] == [{"id": r["id"], "amount": r["amount"], "refundedOn": r["refunded_on"]}
                                         for r in refunds]


def test_dashboard_limits_each_customers_invoices_separately(world):
    server, model = world["server"], world["model"]
    r = server.gql(canonical("dashboard"), {"first": 60}, key=full_key(world))
    counts = [len(n["invoices"]) for n in r.data["customers"]["nodes"]]
    assert max(counts) == 10  # some customer has more than ten invoices, and is cut at ten
    assert any(len(model.invoices_by_customer[n["id"]]) > 10 for n in r.data["customers"]["nodes"])


def test_invoice_detail_matches_the_model(world):
    server, model = world["server"], world["model"]
    org = model.orgs[0]
    refunded = [i for i in model.invoices_of(org)
                if any(model.refunds_by_payment[p] for p, _ in model.apps_by_invoice[i["id"]])]
    sample = refunded[:5] + model.invoices_of(org)[:5]
    assert refunded, "the dataset should have refunded invoices"
    for inv in sample:
        r = server.gql(canonical("invoice_detail"), {"id": inv["id"]}, key=full_key(world))
        assert not r.errors, r.errors
        got = r.data["invoice"]
        customer = model.customers[inv["customer_id"]]
        assert got["id"] == inv["id"] and got["number"] == inv["number"]
        assert got["status"] == model.invoice_status(inv["id"])
        assert got["total"] == inv["total"] and got["balance"] == model.balance(inv["id"])
        assert got["customer"] == {"id": customer["id"], "name": customer["name"], "email": customer.get("email"),
                                   "creditBalance": customer.get("credit_balance", 0)}
        apps = sorted(model.apps_by_invoice[inv["id"]],
                      key=lambda pa: (model.payments[pa[0]]["received_on"], pa[0]))
        assert [a["payment"]["id"] for a in got["paymentApplications"]] == [p for p, _ in apps]
        for a, (pid, amount) in zip(got["paymentApplications"], apps):
            p = model.payments[pid]
            assert a["amount"] == amount
            assert a["payment"]["status"] == p["status"].upper()
            assert a["payment"]["amount"] == p["amount"]
            assert a["payment"]["refundableAmount"] == model.refundable(pid)
            assert [x["id"] for x in a["payment"]["refunds"]] == [x["id"] for x in model.refunds_of_payment(pid)]
            assert all(x["creditNote"] is None for x in a["payment"]["refunds"])
        assert got["creditNotes"] == []


def test_invoices_page_walks_every_invoice_exactly_once(world):
    server, model = world["server"], world["model"]
    org = model.orgs[0]
    query = canonical("invoices_page").replace("first: 1000", "first: 100")  # several pages at this scale
    nodes = walk(server, query, full_key(world), "invoices")
    expected = model.invoices_of(org)
    assert [n["id"] for n in nodes] == [i["id"] for i in expected]
    assert len({n["id"] for n in nodes}) == len(nodes)
    for node, inv in zip(nodes, expected):
        assert node["status"] == model.invoice_status(inv["id"])
        assert node["currency"] == model.customers[inv["customer_id"]]["currency"]
        assert node["amountPaid"] == model.amount_paid(inv["id"])
        assert node["amountCredited"] == 0
        assert node["balance"] == model.balance(inv["id"])
        assert node["customer"] == {"id": inv["customer_id"],
                                    "externalId": model.customers[inv["customer_id"]].get("external_id")}


def test_canonical_invoices_page_as_written(world):
    server, model = world["server"], world["model"]
    r = server.gql(canonical("invoices_page"), {}, key=full_key(world))
    page = r.data["invoices"]
    assert len(page["nodes"]) == min(1000, len(model.invoices_of(model.orgs[0])))
    assert page["pageInfo"]["hasNextPage"] == (len(model.invoices_of(model.orgs[0])) > 1000)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-key-at-all"},
                                     {"X-API-Key": "bg_wrong_key_0000000000"}, {"Authorization": "Basic abc"}])
def test_requests_without_a_valid_key_get_401(world, headers):
    r = world["server"].request({"query": "{ __typename }"}, headers=headers)
    assert r.status == 401
    assert r.codes() == ["UNAUTHENTICATED"]
    assert "data" not in r.json


def test_x_api_key_header_works(world):
    r = world["server"].request({"query": "{ __typename }"}, headers={"X-API-Key": full_key(world)})
    assert r.status == 200 and r.data == {"__typename": "Query"}


def test_another_organisations_ids_are_invisible(world):
    server, model = world["server"], world["model"]
    other = model.orgs[1]
    inv = model.invoices_of(other)[0]
    customer = model.customers[inv["customer_id"]]
    pay = next(p for p in model.payments.values() if p["organisation_id"] == other)
    query = """query($i: ID!, $c: ID!, $p: ID!, $n: String!) {
        invoice(id: $i) { id } customer(id: $c) { id } payment(id: $p) { id } invoiceByNumber(number: $n) { id }
        invoices(filter: {customerId: $c}) { totalCount nodes { id } }
    }"""
    r = server.gql(query, {"i": inv["id"], "c": customer["id"], "p": pay["id"], "n": inv["number"]}, key=full_key(world, 1))
    assert not r.errors
    assert r.data["invoice"] is None and r.data["customer"] is None and r.data["payment"] is None
    assert r.data["invoices"] == {"totalCount": 0, "nodes": []}
    # The number is not unique across organisations: it finds organisation 1's own invoice, never the other's.
    assert r.data["invoiceByNumber"] is None or r.data["invoiceByNumber"]["id"] != inv["id"]
    # And the owner sees them.
    r = server.gql(query, {"i": inv["id"], "c": customer["id"], "p": pay["id"], "n": inv["number"]}, key=full_key(world, 2))
    assert r.data["invoice"] == {"id": inv["id"]} and r.data["customer"] == {"id": customer["id"]}


def test_statement_count_follows_the_query_shape_not_the_page_size(world):
    server = world["server"]
    small = server.gql(canonical("dashboard"), {"first": 2}, key=full_key(world))
    large = server.gql(canonical("dashboard"), {"first": 60}, key=full_key(world))
    assert not small.errors and not large.errors
    assert len(large.data["customers"]["nodes"]) == 60
    # customers, their invoices, the invoices' payments, the payments' refunds: one statement a level.
    assert small.statements() == large.statements() == 4


def test_a_field_asked_at_several_places_is_loaded_once(world):
    server, model = world["server"], world["model"]
    twice = server.gql("""{ a: customers(first: 5) { nodes { id name } } b: customers(first: 5) { nodes { id name } } }""",
                       key=full_key(world))
    assert twice.statements() == 1 and twice.data["a"] == twice.data["b"]
    inv = model.invoices_of(model.orgs[0])[0]
    r = server.gql("""query($id: ID!) { invoice(id: $id) { c1: customer { id name } c2: customer { id name } ...F } }
                      fragment F on Invoice { customer { id name } }""", {"id": inv["id"]}, key=full_key(world))
    assert r.statements() == 2  # the invoice, then its customer once
    assert r.data["invoice"]["c1"] == r.data["invoice"]["c2"] == r.data["invoice"]["customer"]


def test_one_document_answers_each_requests_order_and_filter_of_a_list(world):
    """A document's plan and the SQL texts its loads send are kept with the document
    (README, "Planned once per document"), while a list's order and filter come from each
    request's variables: the same document, asked in turn oldest first, newest first,
    filtered and not, answers each as the model says."""
    server, model = world["server"], world["model"]
    customer = next(c for c in model.customers_of(model.orgs[0])
                    if len(model.invoices_of_customer(c["id"])) >= 4
                    and len({model.invoice_status(i["id"]) for i in model.invoices_of_customer(c["id"])}) >= 2)
    newest = model.invoices_of_customer(customer["id"], newest_first=True)
    query = ("query($id: ID!, $o: Order!, $s: [InvoiceStatus!]) "
             "{ customer(id: $id) { invoices(first: 3, order: $o, status: $s) { id } } }")
    answers = set()
    for order, statuses in [("OLDEST_FIRST", None), ("NEWEST_FIRST", None), ("NEWEST_FIRST", [model.invoice_status(newest[0]["id"])]),
                            ("OLDEST_FIRST", None), ("NEWEST_FIRST", None), ("OLDEST_FIRST", [model.invoice_status(newest[-1]["id"])])]:
        r = server.gql(query, {"id": customer["id"], "o": order, "s": statuses}, key=full_key(world))
        assert r.status == 200 and not r.errors, r.raw
        expected = [i["id"] for i in model.invoices_of_customer(customer["id"], newest_first=order == "NEWEST_FIRST")
                    if statuses is None or model.invoice_status(i["id"]) in statuses][:3]
        assert [i["id"] for i in r.data["customer"]["invoices"]] == expected, (order, statuses)
        answers.add(tuple(expected))
    assert len(answers) >= 3  # the orders and filters asked for differ in what they answer
