"""Every rule of RULES.md sections 2 and 3 on the read side, against the independent
model: root connections in both orders, every filter, nested lists, figures, reports,
bad arguments, limits, and tenancy."""
import pytest

from conftest import Server
from model import aging, monthly

ORDER_KEYS = {"customers": "created_at", "invoices": "issued_on", "payments": "received_on", "refunds": "refunded_on"}
FIELDS = {"customers": "createdAt", "invoices": "issuedOn", "payments": "receivedOn", "refunds": "refundedOn"}


def key(world, org=1):
    return world["keys"][(org, "read")]


def rows_of(world, connection, org_index=0):
    model = world["model"]
    org = model.orgs[org_index]
    source = {"customers": model.customers, "invoices": model.invoices, "payments": model.payments,
              "refunds": model.refunds}[connection]
    return sorted([r for r in source.values() if r["organisation_id"] == org], key=lambda r: (r[ORDER_KEYS[connection]], r["id"]))


def walk(world, connection, order="OLDEST_FIRST", filter_=None, first=7, k=None):
    server = world["server"]
    query = f"""query($after: String, $filter: {connection[:-1].capitalize() if connection != 'creditNotes' else 'CreditNote'}Filter, $first: Int) {{
      {connection}(first: $first, after: $after, order: {order}, filter: $filter) {{
        totalCount pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ id }} }} nodes {{ id }} }} }}"""
    ids, after, total = [], None, None
    while True:
        r = server.gql(query, {"after": after, "filter": filter_, "first": first}, key=k or key(world))
        assert not r.errors, r.errors
        page = r.data[connection]
        assert [e["node"]["id"] for e in page["edges"]] == [n["id"] for n in page["nodes"]]
        total = page["totalCount"] if total is None else total
        assert page["totalCount"] == total
        ids += [n["id"] for n in page["nodes"]]
        if page["nodes"]:
            assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        else:
            assert page["pageInfo"]["endCursor"] is None
        if not page["pageInfo"]["hasNextPage"]:
            return ids, total
        assert len(page["nodes"]) == first
        after = page["pageInfo"]["endCursor"]


@pytest.mark.parametrize("connection", ["customers", "invoices", "payments", "refunds"])
@pytest.mark.parametrize("order", ["OLDEST_FIRST", "NEWEST_FIRST"])
def test_every_root_connection_pages_through_every_row_once_in_both_orders(world, connection, order):
    expected = [r["id"] for r in rows_of(world, connection)]
    if order == "NEWEST_FIRST":
        expected.reverse()
    first = max(1, len(expected) // 9)  # about ten pages
    ids, total = walk(world, connection, order, first=first)
    assert ids == expected
    assert total == len(expected)


def test_a_page_of_exactly_the_remaining_rows_says_no_next_page(world):
    n = len(rows_of(world, "customers"))
    r = world["server"].gql(f"{{ customers(first: {n}) {{ pageInfo {{ hasNextPage }} }} }}", key=key(world))
    assert r.data["customers"]["pageInfo"]["hasNextPage"] is False
    r = world["server"].gql(f"{{ customers(first: {n - 1}) {{ pageInfo {{ hasNextPage }} }} }}", key=key(world))
    assert r.data["customers"]["pageInfo"]["hasNextPage"] is True


def filtered(world, connection, predicate):
    return [r["id"] for r in rows_of(world, connection) if predicate(r)]


def NOTHING(row):
    """The predicate of a case that must select nothing; every other case must select rows."""
    return False


def check_filters(world, connection, cases, first):
    for filter_, predicate in cases:
        ids, total = walk(world, connection, filter_=filter_, first=first)
        want = filtered(world, connection, predicate)
        assert bool(want) == (predicate is not NOTHING), f"{filter_} must select {'nothing' if predicate is NOTHING else 'some rows'}"
        assert ids == want, filter_
        assert total == len(ids)


def test_customer_filters(world):
    model = world["model"]
    customers = rows_of(world, "customers")
    with_email = next(c for c in customers if c.get("email"))
    with_ext = next(c for c in customers if c.get("external_id"))
    cases = [
        ({"email": with_email["email"]}, lambda c: c.get("email") == with_email["email"]),
        ({"externalId": with_ext["external_id"]}, lambda c: c.get("external_id") == with_ext["external_id"]),
        ({"currency": "EUR"}, lambda c: c["currency"] == "EUR"),
        ({"nameContains": "MÜLLER"}, lambda c: "müller" in c["name"].lower()),
        ({"nameContains": "acme"}, lambda c: "acme" in c["name"].lower()),
        ({"nameContains": "100%"}, lambda c: "100%" in c["name"]),
        ({"nameContains": "%"}, lambda c: "%" in c["name"]),
        ({"nameContains": "_"}, lambda c: "_" in c["name"]),
        ({"nameContains": "\\"}, lambda c: "\\" in c["name"]),
        ({"nameContains": "o'n"}, lambda c: "o'n" in c["name"].lower()),
        ({"nameContains": "ørsted énergie"}, lambda c: "ørsted énergie" in c["name"].lower()),
        ({"nameContains": "%_"}, NOTHING),
        ({"nameContains": "back\\"}, lambda c: "back\\" in c["name"].lower()),
        ({"currency": "USD", "nameContains": "a"}, lambda c: c["currency"] == "USD" and "a" in c["name"].lower()),
        ({"email": "nobody@nowhere.example"}, NOTHING),
    ]
    check_filters(world, "customers", cases, first=50)


def test_invoice_filters(world):
    model = world["model"]
    customer = max(rows_of(world, "customers"), key=lambda c: len(model.invoices_by_customer[c["id"]]))
    cases = [
        ({"customerId": customer["id"]}, lambda i: i["customer_id"] == customer["id"]),
        ({"customerId": "not-a-uuid"}, NOTHING),
        ({"status": ["PAID", "PARTIALLY_PAID"]}, lambda i: model.invoice_status(i["id"]) in ("PAID", "PARTIALLY_PAID")),
        ({"status": []}, NOTHING),
        ({"status": ["DRAFT"]}, lambda i: i["status"] == "draft"),
        ({"currency": "JPY"}, lambda i: model.customers[i["customer_id"]]["currency"] == "JPY"),
        ({"issuedFrom": "2024-01-01", "issuedTo": "2024-03-31"}, lambda i: "2024-01-01" <= i["issued_on"] <= "2024-03-31"),
        ({"issuedFrom": "2024-06-15"}, lambda i: i["issued_on"] >= "2024-06-15"),
        ({"dueBefore": "2024-01-01"}, lambda i: i.get("due_on") is not None and i["due_on"] < "2024-01-01"),
    ]
    check_filters(world, "invoices", cases, first=200)
    # Bounds are inclusive: an invoice issued on the bound day is in.
    day = rows_of(world, "invoices")[10]["issued_on"]
    ids, _ = walk(world, "invoices", filter_={"issuedFrom": day, "issuedTo": day}, first=100)
    assert ids == filtered(world, "invoices", lambda i: i["issued_on"] == day) and ids
    # dueBefore is exclusive: an invoice due on the bound day is out.
    dues = sorted(i["due_on"] for i in rows_of(world, "invoices") if i.get("due_on"))
    due = dues[len(dues) // 2]
    ids, _ = walk(world, "invoices", filter_={"dueBefore": due}, first=500)
    assert ids and ids == filtered(world, "invoices", lambda i: i.get("due_on") is not None and i["due_on"] < due)


def test_payment_filters(world):
    model = world["model"]
    inv = next(i for i in rows_of(world, "invoices") if len(model.apps_by_invoice[i["id"]]) >= 2)
    paying = max(rows_of(world, "customers"), key=lambda c: sum(p["customer_id"] == c["id"] for p in model.payments.values()))
    idle = next(c for c in rows_of(world, "customers")
                if model.invoices_by_customer[c["id"]] and all(p["customer_id"] != c["id"] for p in model.payments.values()))
    cases = [
        ({"customerId": paying["id"]}, lambda p: p["customer_id"] == paying["id"]),
        ({"customerId": idle["id"]}, NOTHING),
        ({"invoiceId": inv["id"]}, lambda p: any(i == inv["id"] for i, _ in model.apps_by_payment[p["id"]])),
        ({"status": "FAILED"}, lambda p: p["status"] == "failed"),
        ({"receivedFrom": "2024-02-01", "receivedTo": "2024-02-29"}, lambda p: "2024-02-01" <= p["received_on"] <= "2024-02-29"),
        ({"hasRefunds": True}, lambda p: bool(model.refunds_by_payment[p["id"]])),
        ({"hasRefunds": False}, lambda p: not model.refunds_by_payment[p["id"]]),
    ]
    check_filters(world, "payments", cases, first=300)


def test_refund_filters(world):
    model = world["model"]
    payment = next(p for p in rows_of(world, "payments") if model.refunds_by_payment[p["id"]])
    cases = [
        ({"paymentId": payment["id"]}, lambda r: r["payment_id"] == payment["id"]),
        ({"refundedFrom": "2024-01-01", "refundedTo": "2024-06-30"}, lambda r: "2024-01-01" <= r["refunded_on"] <= "2024-06-30"),
        ({"creditNoteId": "00000000-0000-4000-8000-000000000000"}, NOTHING),
    ]
    check_filters(world, "refunds", cases, first=100)


def test_nested_lists_with_their_own_first_order_and_filters(world):
    model, server = world["model"], world["server"]
    customer = max(rows_of(world, "customers"), key=lambda c: len(model.invoices_by_customer[c["id"]]))
    r = server.gql("""query($id: ID!) { customer(id: $id) {
        all: invoices(first: 1000) { id }
        newest: invoices(first: 3, order: NEWEST_FIRST) { id }
        paid: invoices(status: [PAID]) { id }
        none: invoices(status: []) { id }
        window: invoices(issuedFrom: "2024-01-01", issuedTo: "2024-12-31") { id }
        payments(first: 1000) { id }
        failed: payments(status: FAILED) { id }
        lastPayment: payments(first: 1, order: NEWEST_FIRST) { id }
        creditNotes { id }
        totals { invoiced paid refunded credited outstanding }
    } }""", {"id": customer["id"]}, key=key(world))
    assert not r.errors, r.errors
    c = r.data["customer"]
    invoices = model.invoices_of_customer(customer["id"])
    assert [i["id"] for i in c["all"]] == [i["id"] for i in invoices]
    assert [i["id"] for i in c["newest"]] == [i["id"] for i in invoices[::-1][:3]]
    assert [i["id"] for i in c["paid"]] == [i["id"] for i in invoices if model.invoice_status(i["id"]) == "PAID"]
    assert c["none"] == []
    assert [i["id"] for i in c["window"]] == [i["id"] for i in invoices if "2024-01-01" <= i["issued_on"] <= "2024-12-31"]
    payments = sorted([p for p in model.payments.values() if p["customer_id"] == customer["id"]],
                      key=lambda p: (p["received_on"], p["id"]))
    assert [p["id"] for p in c["payments"]] == [p["id"] for p in payments]
    assert [p["id"] for p in c["failed"]] == [p["id"] for p in payments if p["status"] == "failed"]
    assert [p["id"] for p in c["lastPayment"]] == [p["id"] for p in payments[-1:]]
    assert c["creditNotes"] == []  # the read world has none: test_credit_notes_read.py reads them
    assert c["totals"] == model.customer_totals(customer["id"])
    assert c["all"] and c["newest"] and c["paid"] and c["window"] and c["payments"] and c["lastPayment"]


def test_nested_failed_payments(world):
    model, server = world["model"], world["server"]
    failed = [p for p in model.payments.values() if p["status"] == "failed" and p["organisation_id"] == model.orgs[0]]
    assert failed, "the seeder makes failed payments"
    customer = failed[0]["customer_id"]
    r = server.gql("query($id: ID!) { customer(id: $id) { failed: payments(status: FAILED) { id } ok: payments(status: SUCCEEDED) { id } } }",
                   {"id": customer}, key=key(world))
    mine = sorted([p for p in model.payments.values() if p["customer_id"] == customer], key=lambda p: (p["received_on"], p["id"]))
    assert [p["id"] for p in r.data["customer"]["failed"]] == [p["id"] for p in mine if p["status"] == "failed"]
    assert [p["id"] for p in r.data["customer"]["ok"]] == [p["id"] for p in mine if p["status"] == "succeeded"]


def test_payment_applications_both_ways(world):
    model, server = world["model"], world["server"]
    payment = next(p for p in rows_of(world, "payments") if len(model.apps_by_payment[p["id"]]) >= 2)
    r = server.gql("""query($id: ID!) { payment(id: $id) {
        amountUnapplied refundableAmount amountRefunded bankCharges currency
        applications { amount invoice { id } payment { id } }
        invoices { id issuedOn }
        refunds(order: NEWEST_FIRST) { id }
        customer { id } } }""", {"id": payment["id"]}, key=key(world))
    p = r.data["payment"]
    apps = sorted(model.apps_by_payment[payment["id"]],
                  key=lambda ia: (model.invoices[ia[0]]["issued_on"], ia[0]))
    assert p["applications"] == [{"amount": a, "invoice": {"id": i}, "payment": {"id": payment["id"]}} for i, a in apps]
    assert [i["id"] for i in p["invoices"]] == [i for i, _ in apps]
    assert p["amountUnapplied"] == payment["amount"] - sum(a for _, a in apps)
    assert p["refundableAmount"] == model.refundable(payment["id"])
    assert p["bankCharges"] == payment.get("bank_charges", 0)
    assert [x["id"] for x in p["refunds"]] == [x["id"] for x in model.refunds_of_payment(payment["id"])][::-1]
    assert p["customer"] == {"id": payment["customer_id"]}
    inv = apps[0][0]
    r = server.gql("""query($id: ID!) { invoice(id: $id) { paymentApplications { amount payment { id } }
                      payments(order: NEWEST_FIRST, first: 1) { id } } }""", {"id": inv}, key=key(world))
    by_invoice = sorted(model.apps_by_invoice[inv], key=lambda pa: (model.payments[pa[0]]["received_on"], pa[0]))
    assert r.data["invoice"]["paymentApplications"] == [{"amount": a, "payment": {"id": pid}} for pid, a in by_invoice]
    assert r.data["invoice"]["payments"] == [{"id": by_invoice[-1][0]}]


@pytest.mark.parametrize("same_day", [False, True])
def test_an_invoices_payments_come_oldest_first_then_by_id(world, same_day):
    model, server = world["model"], world["server"]

    def days(i):
        return [model.payments[p]["received_on"] for p, _ in model.apps_by_invoice[i["id"]]]
    inv = next(i for i in rows_of(world, "invoices")
               if len(days(i)) >= 2 and (len(set(days(i))) < len(days(i))) == same_day)
    r = server.gql("query($id: ID!) { invoice(id: $id) { payments { id } newest: payments(order: NEWEST_FIRST) { id } } }",
                   {"id": inv["id"]}, key=key(world))
    want = [p["id"] for p in model.payments_of_invoice(inv["id"])]
    assert len(want) >= 2 and [p["id"] for p in r.data["invoice"]["payments"]] == want
    assert [p["id"] for p in r.data["invoice"]["newest"]] == want[::-1]


def test_lookups_by_external_id_number_and_bad_ids(world):
    model, server = world["model"], world["server"]
    customer = next(c for c in rows_of(world, "customers") if c.get("external_id"))
    invoice = rows_of(world, "invoices")[0]
    r = server.gql("""query($e: String!, $n: String!) { customerByExternalId(externalId: $e) { id }
                      invoiceByNumber(number: $n) { id number }
                      a: customer(id: "NOT-A-UUID") { id } b: invoice(id: "0B7A3C9E-1111-4111-8111-222222222222") { id }
                      c: refund(id: "00000000-0000-4000-8000-000000000000") { id } d: creditNote(id: "x") { id }
                      e: payment(id: "") { id } }""", {"e": customer["external_id"], "n": invoice["number"]}, key=key(world))
    assert not r.errors
    assert r.data == {"customerByExternalId": {"id": customer["id"]}, "invoiceByNumber": {"id": invoice["id"], "number": invoice["number"]},
                      "a": None, "b": None, "c": None, "d": None, "e": None}


def test_reports(world):
    model, server = world["model"], world["server"]
    org = model.orgs[0]
    for currency in ["USD", "EUR", "JPY"]:
        for as_of in ["2024-06-30", "2025-03-01"]:
            r = server.gql(f"""{{ arAging(asOf: "{as_of}", currency: "{currency}") {{
                asOf currency current days1To30 days31To60 days61To90 over90 total }} }}""", key=key(world))
            assert r.data["arAging"] == aging(model, org, as_of, currency)
    r = server.gql("""{ monthlySummary(currency: "USD", from: "2023-11-15", to: "2024-03-02") {
        month invoiced received refunded credited } }""", key=key(world))
    assert r.data["monthlySummary"] == monthly(model, org, "USD", "2023-11-15", "2024-03-02")
    assert len(r.data["monthlySummary"]) == 5
    r = server.gql('{ monthlySummary(currency: "USD", from: "2024-03-01", to: "2024-02-01") { month } }', key=key(world))
    assert r.codes() == ["BAD_USER_INPUT"] and r.errors[0]["path"] == ["monthlySummary"]
    r = server.gql('{ monthlySummary(currency: "USD", from: "2000-01-01", to: "2010-01-01") { month } }', key=key(world))
    assert r.codes() == ["BAD_USER_INPUT"]
    r = server.gql('{ monthlySummary(currency: "USD", from: "2000-01-01", to: "2009-12-31") { month } }', key=key(world))
    assert len(r.data["monthlySummary"]) == 120


@pytest.mark.parametrize("query,path", [
    ("{ customers(first: 0) { totalCount } }", ["customers"]),
    ("{ customers(first: 1001) { totalCount } }", ["customers"]),
    ('{ invoices(after: "garbage") { totalCount } }', ["invoices"]),
    ("{ customers(first: 1) { nodes { invoices(first: 0) { id } } } }", ["customers", "nodes", 0, "invoices"]),
    ("{ customers(first: 1) { nodes { payments(first: 5000) { id } } } }", ["customers", "nodes", 0, "payments"]),
])
def test_bad_arguments_are_bad_user_input_with_the_fields_path(world, query, path):
    r = world["server"].gql(query, key=key(world))
    assert r.codes() == ["BAD_USER_INPUT"]
    assert r.errors[0]["path"] == path
    assert r.json["data"] is None  # every field on the way is non-null


def test_errors_after_a_null_caught_on_the_way_keep_their_own_paths(world):
    """RULES.md section 1: each error's path is where it happened, also when an earlier
    sibling's error made its nullable parent null (the writer once kept the path of the
    first error for the next)."""
    customer = rows_of(world, "customers")[0]["id"]
    r = world["server"].gql("""query($c: ID!) { a: customer(id: $c) { invoices(first: 0) { id } }
                                               b: customer(id: $c) { invoices(first: 0) { id } } }""",
                            {"c": customer}, key=key(world))
    assert r.data == {"a": None, "b": None}, r.raw
    assert [e["path"] for e in r.errors] == [["a", "invoices"], ["b", "invoices"]], r.raw
    assert r.codes() == ["BAD_USER_INPUT", "BAD_USER_INPUT"]


def test_cursors_belong_to_their_connection_order_and_filter(world):
    server = world["server"]
    page = server.gql("{ invoices(first: 2) { pageInfo { endCursor } } }", key=key(world))
    cursor = page.data["invoices"]["pageInfo"]["endCursor"]
    ok = server.gql("query($a: String) { invoices(first: 2, after: $a) { nodes { id } } }", {"a": cursor}, key=key(world))
    assert not ok.errors
    for query in ["query($a: String) { payments(after: $a) { totalCount } }",
                  "query($a: String) { invoices(after: $a, order: NEWEST_FIRST) { totalCount } }",
                  'query($a: String) { invoices(after: $a, filter: {currency: "USD"}) { totalCount } }',
                  "query($a: String) { invoices(after: $a) { totalCount } }".replace("$a)", "$a, first: 3)")]:
        r = server.gql(query, {"a": cursor}, key=key(world))
        expected = [] if "first: 3" in query else ["BAD_USER_INPUT"]
        assert r.codes() == expected, query
    # A filter means what it asks for: given empty or with only nulls, it filters nothing,
    # and its cursors page the same rows as those of no filter (README, "Cursors").
    second_page = [i["id"] for i in rows_of(world, "invoices")[2:4]]
    assert [n["id"] for n in ok.data["invoices"]["nodes"]] == second_page
    for filter_ in ["{}", "{currency: null, status: null}"]:
        r = server.gql(f"query($a: String) {{ invoices(first: 2, after: $a, filter: {filter_}) {{ nodes {{ id }} }} }}",
                       {"a": cursor}, key=key(world))
        assert not r.errors and [n["id"] for n in r.data["invoices"]["nodes"]] == second_page, (filter_, r.raw)
    # A status list is a set: the cursor of [PAID, OPEN] pages [OPEN, PAID, OPEN] alike.
    statuses = {"PAID", "OPEN"}
    both = [i["id"] for i in rows_of(world, "invoices") if world["model"].invoice_status(i["id"]) in statuses]
    assert len(both) > 4
    listed = server.gql("{ invoices(first: 2, filter: {status: [PAID, OPEN]}) { pageInfo { endCursor } } }", key=key(world))
    r = server.gql("query($a: String) { invoices(first: 2, after: $a, filter: {status: [OPEN, PAID, OPEN]}) { nodes { id } } }",
                   {"a": listed.data["invoices"]["pageInfo"]["endCursor"]}, key=key(world))
    assert not r.errors and [n["id"] for n in r.data["invoices"]["nodes"]] == both[2:4], r.raw
    nulls = server.gql("{ invoices(first: 2, filter: {currency: null}) { pageInfo { endCursor } } }", key=key(world))
    r = server.gql("query($a: String) { invoices(first: 2, after: $a) { nodes { id } } }",
                   {"a": nulls.data["invoices"]["pageInfo"]["endCursor"]}, key=key(world))
    assert not r.errors and [n["id"] for n in r.data["invoices"]["nodes"]] == second_page, r.raw
    # A cursor of another organisation's page is ours in form: it only positions within our rows.
    other = server.gql("{ invoices(first: 2) { pageInfo { endCursor } } }", key=key(world, 2))
    r = server.gql("query($a: String) { invoices(first: 5, after: $a) { nodes { id } } }",
                   {"a": other.data["invoices"]["pageInfo"]["endCursor"]}, key=key(world))
    own = {i["id"] for i in rows_of(world, "invoices")}
    assert not r.errors and r.data["invoices"]["nodes"], r.raw
    assert all(n["id"] in own for n in r.data["invoices"]["nodes"])


def test_explicit_null_means_the_default(world):
    r = world["server"].gql("{ customers(first: null, order: null) { nodes { id } } }", key=key(world))
    assert [n["id"] for n in r.data["customers"]["nodes"]] == [c["id"] for c in rows_of(world, "customers")[:50]]


def test_a_fragment_chain_deeper_than_the_stack_is_refused_and_the_server_lives(world):
    chain = "query Chain { __schema { types { ...T0 } } }\n" + "\n".join(
        f"fragment T{i} on __Type {{ ofType {{ ...T{i + 1} }} }}" for i in range(1700)) + "\nfragment T1700 on __Type { name }"
    r = world["server"].gql(chain, key=key(world))
    assert r.status == 200 and r.codes() == ["QUERY_TOO_COMPLEX"] and "data" not in r.json
    assert world["server"].gql("{ __typename }", key=key(world)).data == {"__typename": "Query"}


def test_breadth_limit_refuses_before_any_database_work(world):
    wide = "{ " + " ".join(f"c{i}: customers(first: 1) {{ totalCount }}" for i in range(301)) + " }"
    r = world["server"].gql(wide, key=key(world))
    assert r.status == 200 and r.codes() == ["QUERY_TOO_COMPLEX"] and "data" not in r.json
    fine = "{ " + " ".join(f"c{i}: customers(first: 1) {{ totalCount }}" for i in range(300)) + " }"
    r = world["server"].gql(fine, key=key(world))
    assert not r.errors and len(r.data) == 300
    # Introspection does not count: the standard query selects many lists.
    from graphql import get_introspection_query
    assert not world["server"].gql(get_introspection_query(descriptions=True), key=key(world)).errors


def test_result_size_limit_stops_while_loading(world):
    server = Server(world["url"], "--max-result-items", "100")
    try:
        small = server.gql("{ customers(first: 20) { nodes { id } } }", key=key(world))
        assert not small.errors
        big = server.gql("{ customers(first: 60) { nodes { invoices { payments { id } } } } }", key=key(world))
        assert big.codes() == ["QUERY_TOO_COMPLEX"] and "data" not in big.json and big.status == 200
        graphql_response = server.request({"query": "{ customers(first: 200) { nodes { id } } }"}, key=key(world),
                                          headers={"Accept": "application/graphql-response+json"})
        assert graphql_response.status == 400 and graphql_response.codes() == ["QUERY_TOO_COMPLEX"]
    finally:
        server.stop()


def test_scopes_are_checked_per_field(world):
    refunds_only = world["keys"][(1, "refunds")]
    r = world["server"].gql("{ customers(first: 1) { totalCount } }", key=refunds_only)
    assert not r.errors  # refunds keys also carry billing:read in the demo data
    psql_key = world["keys"][(1, "read")]
    r = world["server"].gql("mutation { refundPayment(input: {paymentId: \"x\", amount: 1}) { refund { id } } }", key=psql_key)
    assert r.codes() == ["FORBIDDEN"] and r.errors[0]["path"] == ["refundPayment"]


def test_another_organisations_ids_are_invisible_everywhere(world):
    """Every root field and every id argument or filter, with organisation 2's ids, seen by organisation 1."""
    model, server = world["model"], world["server"]
    inv = rows_of(world, "invoices", 1)[0]
    pay = next(p for p in rows_of(world, "payments", 1) if model.refunds_by_payment[p["id"]])
    ref = model.refunds_by_payment[pay["id"]][0]
    cust = model.customers[inv["customer_id"]]
    query = """query($c: ID!, $i: ID!, $p: ID!, $r: ID!, $e: String!, $n: String!) {
      customer(id: $c) { id } customerByExternalId(externalId: $e) { id }
      invoice(id: $i) { id } invoiceByNumber(number: $n) { id } payment(id: $p) { id } refund(id: $r) { id }
      creditNote(id: $i) { id }
      customers(filter: {externalId: $e}) { totalCount }
      invoices(filter: {customerId: $c}) { totalCount }
      payments(filter: {customerId: $c}) { totalCount }
      byInvoice: payments(filter: {invoiceId: $i}) { totalCount }
      refunds(filter: {paymentId: $p}) { totalCount }
      creditNotes(filter: {invoiceId: $i}) { totalCount }
      notesByCustomer: creditNotes(filter: {customerId: $c}) { totalCount }
    }"""
    variables = {"c": cust["id"], "i": inv["id"], "p": pay["id"], "r": ref["id"], "e": cust.get("external_id", "none"),
                 "n": inv["number"]}
    r = server.gql(query, variables, key=key(world, 1))
    assert not r.errors
    for name, value in r.data.items():
        assert value in (None, {"totalCount": 0}), (name, value)
    seen = server.gql(query, variables, key=key(world, 2))
    assert seen.data["invoice"] == {"id": inv["id"]} and seen.data["refunds"]["totalCount"] >= 1
