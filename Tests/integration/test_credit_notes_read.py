"""Credit notes read back: the `creditNotes` connection (paging, both orders, every
filter), `Customer.creditNotes`, `Invoice.creditNotes`, the refunds filter
`creditNoteId`, and the reports after notes (`monthlySummary.credited` and `refunded`,
`arAging`). The world is made here, note by note, and what each read must answer is
computed from what the test made and from the raw facts (figures.py), never from the
service's own columns."""
import datetime
import time

import pytest

from conftest import open_world
from figures import Facts, record_credit_notes
from model import aging

CREATE = """mutation($input: CreateCreditNoteInput!) { createCreditNote(input: $input) {
  creditNote { id number amount status createdAt customer { id } invoice { id } refunds { id amount } } } }"""
VOID = "mutation($id: ID!) { voidCreditNote(input: {creditNoteId: $id}) { creditNote { id status } } }"
NODE = "id number amount status createdAt"


@pytest.fixture(scope="module")
def notebook():
    """A world of its own with a dozen credit notes of every kind, one of them voided."""
    world = open_world(customers=30, seed_value=11)
    server, model = record_credit_notes(world["server"]), world["model"]
    key = world["keys"][(1, "full")]
    org = model.orgs[0]
    invoices = [i for i in model.invoices_of(org) if i["status"] == "open"]
    unpaid = [i for i in invoices if not model.apps_by_invoice[i["id"]]]
    paid = [i for i in invoices if model.balance(i["id"]) == 0 and len(model.apps_by_invoice[i["id"]]) >= 2]
    assert len(unpaid) >= 4 and len(paid) >= 4, "the seeder must make unpaid and several-times-paid invoices"
    plan = [(unpaid[0], {}), (unpaid[1], {}), (unpaid[2], {}), (unpaid[3], {}),
            (paid[0], {"refundDestination": "CREDITS"}), (paid[1], {"refundDestination": "EXTERNAL"}),
            (paid[2], {"refundDestination": "ORIGINAL_PAYMENT_METHOD"}),
            (paid[3], {"refundDestination": "ORIGINAL_PAYMENT_METHOD"}), (unpaid[0], {}), (paid[0], {"refundDestination": "CREDITS"})]
    notes = []
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    for k, (inv, destination) in enumerate(plan):
        note_input = dict({"invoiceId": inv["id"], "amount": 7 + k, "reason": f"note {k}"}, **destination)
        r = server.gql(CREATE, {"input": note_input}, key=key)
        assert not r.errors, r.errors
        notes.append(r.data["createCreditNote"]["creditNote"])
        time.sleep(0.3)  # spread the notes over several seconds, so that createdAt orders them
    ended = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    voided = notes[1]
    assert server.gql(VOID, {"id": voided["id"]}, key=key).data["voidCreditNote"]["creditNote"]["status"] == "VOID"
    voided["status"] = "VOID"
    for n in notes:  # createdAt is the moment the note was made, to the second, in UTC
        made = datetime.datetime.fromisoformat(n["createdAt"].replace("Z", "+00:00"))
        assert started <= made <= ended, (n["createdAt"], started, ended)
    yield dict(world, notes=notes, key=key, org=org)
    world["server"].stop()


def ordered(notes, newest_first=False):
    rows = sorted(notes, key=lambda n: (n["createdAt"], n["id"]))
    return rows[::-1] if newest_first else rows


def node(n):
    return {k: n[k] for k in NODE.split()}


def page_through(server, key, arguments, page_size):
    """Every node of a creditNotes connection, page by page; checks the page info on the way."""
    seen, after = [], None
    while True:
        r = server.gql(f"""query($after: String) {{ creditNotes(first: {page_size}, after: $after{arguments}) {{
              totalCount pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ {NODE} }} }} }} }}""",
                       {"after": after}, key=key)
        assert not r.errors, r.errors
        page = r.data["creditNotes"]
        seen += [e["node"] for e in page["edges"]]
        if page["edges"]:
            assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            return seen, page["totalCount"]
        after = page["pageInfo"]["endCursor"]


@pytest.mark.parametrize("order", ["OLDEST_FIRST", "NEWEST_FIRST"])
def test_the_connection_pages_through_every_note_in_order(notebook, order):
    server, key, notes = notebook["server"], notebook["key"], notebook["notes"]
    got, total = page_through(server, key, f", order: {order}", page_size=3)
    want = [node(n) for n in ordered(notes, newest_first=order == "NEWEST_FIRST")]
    assert len(want) == 10 and got == want and total == 10


def test_every_filter_of_the_connection(notebook):
    server, key, notes = notebook["server"], notebook["key"], notebook["notes"]
    cases = {
        "status: VOID": [n for n in notes if n["status"] == "VOID"],
        "status: ISSUED": [n for n in notes if n["status"] == "ISSUED"],
        f'invoiceId: "{notes[0]["invoice"]["id"]}"': [n for n in notes if n["invoice"]["id"] == notes[0]["invoice"]["id"]],
        f'customerId: "{notes[4]["customer"]["id"]}"': [n for n in notes if n["customer"]["id"] == notes[4]["customer"]["id"]],
        f'customerId: "{notes[4]["customer"]["id"]}", status: ISSUED':
            [n for n in notes if n["customer"]["id"] == notes[4]["customer"]["id"] and n["status"] == "ISSUED"],
    }
    for condition, want in cases.items():
        assert want, condition  # every case selects some notes
        got, total = page_through(server, key, f", filter: {{{condition}}}", page_size=2)
        assert got == [node(n) for n in ordered(want)] and total == len(want), condition
    # Another organisation's key sees none of them.
    other = notebook["keys"][(2, "read")]
    r = server.gql(f'{{ creditNotes(filter: {{invoiceId: "{notes[0]["invoice"]["id"]}"}}) {{ totalCount nodes {{ id }} }} }}', key=other)
    assert r.data["creditNotes"] == {"totalCount": 0, "nodes": []}


def test_customer_and_invoice_lists_of_notes(notebook):
    server, key, notes = notebook["server"], notebook["key"], notebook["notes"]
    for customer in {n["customer"]["id"] for n in notes}:
        r = server.gql(f"""query($id: ID!) {{ customer(id: $id) {{ oldest: creditNotes {{ {NODE} }}
                          newest: creditNotes(order: NEWEST_FIRST, first: 1) {{ {NODE} }} }} }}""", {"id": customer}, key=key)
        mine = [n for n in notes if n["customer"]["id"] == customer]
        assert r.data["customer"]["oldest"] == [node(n) for n in ordered(mine)]
        assert r.data["customer"]["newest"] == [node(n) for n in ordered(mine, newest_first=True)[:1]]
    twice = notes[0]["invoice"]["id"]
    r = server.gql(f"query($id: ID!) {{ invoice(id: $id) {{ creditNotes {{ {NODE} }} }} }}", {"id": twice}, key=key)
    mine = [n for n in notes if n["invoice"]["id"] == twice]
    assert len(mine) == 2 and r.data["invoice"]["creditNotes"] == [node(n) for n in ordered(mine)]


def test_refunds_filtered_by_credit_note(notebook):
    server, key, notes = notebook["server"], notebook["key"], notebook["notes"]
    refunding = [n for n in notes if n["refunds"]]
    assert len(refunding) == 2
    for n in refunding:
        r = server.gql("query($id: ID!) { refunds(first: 100, filter: {creditNoteId: $id}) { totalCount nodes { id amount creditNote { id } } } }",
                       {"id": n["id"]}, key=key)
        got = r.data["refunds"]
        assert sorted((x["id"], x["amount"]) for x in got["nodes"]) == sorted((x["id"], x["amount"]) for x in n["refunds"])
        assert got["totalCount"] == len(n["refunds"]) and all(x["creditNote"]["id"] == n["id"] for x in got["nodes"])
    adjusted_only = notes[0]
    r = server.gql("query($id: ID!) { refunds(filter: {creditNoteId: $id}) { totalCount } }", {"id": adjusted_only["id"]}, key=key)
    assert r.data["refunds"]["totalCount"] == 0


def test_reports_after_credit_notes(notebook):
    server, key, notes, model, org = (notebook[k] for k in ("server", "key", "notes", "model", "org"))
    currencies = {n["id"]: model.customers[n["customer"]["id"]]["currency"] for n in notes}
    today = datetime.datetime.now(datetime.timezone.utc).date()
    month = today.replace(day=1).isoformat()
    for currency in sorted(set(currencies.values())):
        r = server.gql("query($c: String!, $d: Date!) { monthlySummary(currency: $c, from: $d, to: $d) { month credited refunded } }",
                       {"c": currency, "d": today.isoformat()}, key=key)
        credited = sum(n["amount"] for n in notes if currencies[n["id"]] == currency and n["status"] == "ISSUED")
        refunded = sum(x["amount"] for n in notes if currencies[n["id"]] == currency for x in n["refunds"])
        assert r.data["monthlySummary"] == [{"month": month, "credited": credited, "refunded": refunded}]
    # arAging: balances after the notes, from the raw facts.
    facts = Facts(notebook["url"])
    for currency in sorted(set(currencies.values())):
        want = aging(model, org, today.isoformat(), currency, balance=facts.balance,
                     status=lambda i: facts.invoice(i)["status"])
        r = server.gql("query($c: String!, $d: Date!) { arAging(asOf: $d, currency: $c) { asOf currency current days1To30 days31To60 days61To90 over90 total } }",
                       {"c": currency, "d": today.isoformat()}, key=key)
        assert r.data["arAging"] == want
