"""Mutations against a real PostgreSQL through the real server: every rule of RULES.md
section 4, concurrency that hurts, idempotency, and every figure checked afterwards."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import canonical, open_world, psql
from figures import assert_figures_match, record_credit_notes

REFUND = canonical("refund")
CREDIT = canonical("credit_note")

CREATE = """mutation($input: CreateCreditNoteInput!) { createCreditNote(input: $input) {
  creditNote { id number amount status repaymentMethod amountAdjusted creditsReturned amountRefunded amountRepaidExternally
               customData refunds { amount payment { id } } }
  invoice { id status amountCredited amountReturned balance } } }"""
VOID = """mutation($id: ID!, $key: String) { voidCreditNote(input: {creditNoteId: $id, idempotencyKey: $key}) {
  creditNote { id status } invoice { id balance amountCredited } } }"""


@pytest.fixture(scope="module")
def shop():
    """A world of its own, since mutations change it."""
    opened = open_world(customers=40, seed_value=3)
    record_credit_notes(opened["server"])
    yield opened
    opened["server"].stop()


def key(shop, label="full", org=1):
    return shop["keys"][(org, label)]


def payment_with_amount(shop, minimum, org_index=0, used=set()):
    """A SUCCEEDED, unrefunded payment of at least `minimum`, not handed out before."""
    model = shop["model"]
    org = model.orgs[org_index]
    for p in sorted(model.payments.values(), key=lambda p: p["id"]):
        if (p["organisation_id"] == org and p["status"] == "succeeded" and p["amount"] >= minimum
                and not model.refunds_by_payment[p["id"]] and p["id"] not in used):
            used.add(p["id"])
            return p
    raise AssertionError("no such payment")


def invoice_where(shop, predicate, used=set()):
    model = shop["model"]
    org = model.orgs[0]
    for inv in model.invoices_of(org):
        if inv["id"] not in used and predicate(inv):
            used.add(inv["id"])
            return inv
    raise AssertionError("no such invoice")


def paid_in_full_by_one_payment(shop):
    model = shop["model"]

    def ok(inv):
        apps = model.apps_by_invoice[inv["id"]]
        return (inv["status"] == "open" and len(apps) == 1 and apps[0][1] == inv["total"] and inv["total"] >= 1000
                and not model.refunds_by_payment[apps[0][0]] and len(model.apps_by_payment[apps[0][0]]) == 1)
    return invoice_where(shop, ok)


def unpaid_open_invoice(shop):
    model = shop["model"]
    return invoice_where(shop, lambda inv: inv["status"] == "open" and not model.apps_by_invoice[inv["id"]]
                         and inv["total"] >= 1000)


def code(r):
    assert r.status == 200, r.raw
    return r.codes()[0] if r.errors else None


# ---------------------------------------------------------------------------------------- refunds

def test_refund_creates_a_refund_and_keeps_figures(shop):
    server, p = shop["server"], payment_with_amount(shop, 1000)
    r = server.gql(REFUND, {"paymentId": p["id"], "amount": 250}, key=key(shop))
    assert not r.errors, r.errors
    out = r.data["refundPayment"]
    assert out["refund"]["amount"] == 250 and out["refund"]["currency"] == shop["model"].customers[p["customer_id"]]["currency"]
    assert out["payment"] == {"id": p["id"], "amountRefunded": 250, "refundableAmount": p["amount"] - 250}
    detail = server.gql("query($id: ID!) { refund(id: $id) { mode creditNote { id } payment { id } } }",
                        {"id": out["refund"]["id"]}, key=key(shop))
    assert detail.data["refund"] == {"mode": p["mode"].upper(), "creditNote": None, "payment": {"id": p["id"]}}
    # A refund without a credit note gives back money, not the invoice.
    invoices = [i for i, _ in shop["model"].apps_by_payment[p["id"]]]
    assert_figures_match(server, key(shop), shop["url"], invoice_ids=invoices, payment_ids=[p["id"]])
    # The audit trail: which key, never the key.
    who = psql(shop["url"], f"SELECT k.scopes::text FROM refund r JOIN api_key k ON k.id = r.created_by_key WHERE r.id = '{out['refund']['id']}'")
    assert "refunds:write" in who


def test_refund_errors_in_the_contracts_order(shop):
    server = shop["server"]
    p = payment_with_amount(shop, 1000)
    failed = next(x for x in shop["model"].payments.values()
                  if x["status"] == "failed" and x["organisation_id"] == shop["model"].orgs[0])
    other_org = payment_with_amount(shop, 1, org_index=1)
    assert code(server.gql(REFUND, {"paymentId": "00000000-0000-4000-8000-000000000000", "amount": 1}, key=key(shop))) == "NOT_FOUND"
    assert code(server.gql(REFUND, {"paymentId": "NOT-A-UUID", "amount": 1}, key=key(shop))) == "NOT_FOUND"
    assert code(server.gql(REFUND, {"paymentId": other_org["id"], "amount": 1}, key=key(shop))) == "NOT_FOUND"
    assert code(server.gql(REFUND, {"paymentId": failed["id"], "amount": 1}, key=key(shop))) == "INVALID_STATE"
    assert code(server.gql(REFUND, {"paymentId": p["id"], "amount": 0}, key=key(shop))) == "BAD_USER_INPUT"
    assert code(server.gql(REFUND, {"paymentId": p["id"], "amount": p["amount"] + 1}, key=key(shop))) == "AMOUNT_EXCEEDS_REFUNDABLE"
    assert code(server.gql(REFUND, {"paymentId": p["id"], "amount": 1}, key=key(shop, "read"))) == "FORBIDDEN"
    assert code(server.gql(REFUND, {"paymentId": p["id"], "amount": 1, "key": "k" * 256}, key=key(shop))) == "BAD_USER_INPUT"
    # Scope comes before everything else, the key's length before the mutation's own checks.
    assert code(server.gql(REFUND, {"paymentId": "x", "amount": 0, "key": "k" * 256}, key=key(shop, "read"))) == "FORBIDDEN"
    assert code(server.gql(REFUND, {"paymentId": "x", "amount": 0, "key": "k" * 256}, key=key(shop))) == "BAD_USER_INPUT"
    # Before the values found bad while planning, too: a string PostgreSQL cannot store, a
    # required value given as null through a variable's default (RULES.md section 5).
    unstorable = 'mutation($d: String) { refundPayment(input: {paymentId: "x", amount: 1, description: $d}) { refund { id } } }'
    nulled = 'mutation($p: ID = "x") { refundPayment(input: {paymentId: $p, amount: 1}) { refund { id } } }'
    for query, variables in ((unstorable, {"d": "a\u0000b"}), (nulled, {"p": None})):
        assert code(server.gql(query, variables, key=key(shop, "read"))) == "FORBIDDEN", query
        assert code(server.gql(query, variables, key=key(shop))) == "BAD_USER_INPUT", query
    # Nothing of that changed the payment.
    assert_figures_match(server, key(shop), shop["url"], payment_ids=[p["id"]])
    r = server.gql("query($id: ID!) { payment(id: $id) { amountRefunded } }", {"id": p["id"]}, key=key(shop))
    assert r.data["payment"]["amountRefunded"] == 0


def test_mutation_root_fields_run_one_after_another_in_one_transaction(shop):
    server = shop["server"]
    p = payment_with_amount(shop, 1000)
    r = server.gql("""mutation($p: ID!) {
        first: refundPayment(input: {paymentId: $p, amount: 3}) { payment { amountRefunded } }
        second: refundPayment(input: {paymentId: $p, amount: 4}) { payment { amountRefunded } }
    }""", {"p": p["id"]}, key=key(shop))
    # Each payload is read after its own mutation and before the next one runs.
    assert r.data == {"first": {"payment": {"amountRefunded": 3}}, "second": {"payment": {"amountRefunded": 7}}}
    failing = server.gql("""mutation($p: ID!) {
        ok: refundPayment(input: {paymentId: $p, amount: 1}) { payment { amountRefunded } }
        tooMuch: refundPayment(input: {paymentId: $p, amount: 1000000000}) { payment { amountRefunded } }
        never: refundPayment(input: {paymentId: $p, amount: 1}) { payment { amountRefunded } }
    }""", {"p": p["id"]}, key=key(shop))
    # RULES.md section 4: nothing of a failed operation is applied, and its answer says so.
    assert failing.data is None
    assert failing.codes() == ["AMOUNT_EXCEEDS_REFUNDABLE"] and failing.errors[0]["path"] == ["tooMuch"]
    after = server.gql("query($id: ID!) { payment(id: $id) { amountRefunded } }", {"id": p["id"]}, key=key(shop))
    assert after.data["payment"]["amountRefunded"] == 7


def test_200_concurrent_refunds_of_one_unit_on_100_refundable(shop):
    server, url = shop["server"], shop["url"]
    p = payment_with_amount(shop, 1000)
    # Bring the refundable amount down to exactly 100.
    assert not server.gql(REFUND, {"paymentId": p["id"], "amount": p["amount"] - 100}, key=key(shop)).errors

    def refund(_):
        return code(server.gql(REFUND, {"paymentId": p["id"], "amount": 1}, key=key(shop, "refunds")))

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(refund, range(200)))
    assert outcomes.count(None) == 100
    assert outcomes.count("AMOUNT_EXCEEDS_REFUNDABLE") == 100
    r = server.gql("query($id: ID!) { payment(id: $id) { amountRefunded refundableAmount refunds(first: 1000) { amount } } }",
                   {"id": p["id"]}, key=key(shop))
    assert r.data["payment"]["amountRefunded"] == p["amount"]
    assert r.data["payment"]["refundableAmount"] == 0
    assert len(r.data["payment"]["refunds"]) == 101
    assert_figures_match(server, key(shop), url, payment_ids=[p["id"]], customer_ids=[p["customer_id"]])


def test_the_same_idempotency_key_twenty_times_at_once_changes_things_once(shop):
    server = shop["server"]
    p = payment_with_amount(shop, 1000)

    def refund(_):
        return server.gql(REFUND, {"paymentId": p["id"], "amount": 7, "key": "same-moment"}, key=key(shop))

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(refund, range(20)))
    assert all(not r.errors for r in responses), [r.errors for r in responses if r.errors]
    assert len({r.data["refundPayment"]["refund"]["id"] for r in responses}) == 1
    r = server.gql("query($id: ID!) { payment(id: $id) { amountRefunded } }", {"id": p["id"]}, key=key(shop))
    assert r.data["payment"]["amountRefunded"] == 7


def test_idempotency_replays_and_refuses_other_input(shop):
    server = shop["server"]
    p = payment_with_amount(shop, 1000)
    first = server.gql(REFUND, {"paymentId": p["id"], "amount": 5, "key": "retry-1"}, key=key(shop))
    again = server.gql(REFUND, {"paymentId": p["id"], "amount": 5, "key": "retry-1"}, key=key(shop))
    assert again.data["refundPayment"]["refund"]["id"] == first.data["refundPayment"]["refund"]["id"]
    # Absent and null fields are alike.
    same = server.gql("""mutation($p: ID!) { refundPayment(input: {paymentId: $p, amount: 5, idempotencyKey: "retry-1",
                         mode: null, description: null}) { refund { id } } }""", {"p": p["id"]}, key=key(shop))
    assert same.data["refundPayment"]["refund"]["id"] == first.data["refundPayment"]["refund"]["id"]
    assert code(server.gql(REFUND, {"paymentId": p["id"], "amount": 6, "key": "retry-1"}, key=key(shop))) == "IDEMPOTENCY_KEY_REUSED"
    inv = unpaid_open_invoice(shop)
    other = server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 1, "reason": "x", "idempotencyKey": "retry-1"}},
                       key=key(shop))
    assert code(other) == "IDEMPOTENCY_KEY_REUSED"
    # A failed call consumes no key.
    assert code(server.gql(REFUND, {"paymentId": p["id"], "amount": 10**9, "key": "retry-2"}, key=key(shop))) == "AMOUNT_EXCEEDS_REFUNDABLE"
    assert code(server.gql(REFUND, {"paymentId": p["id"], "amount": 3, "key": "retry-2"}, key=key(shop))) is None
    r = server.gql("query($id: ID!) { payment(id: $id) { amountRefunded } }", {"id": p["id"]}, key=key(shop))
    assert r.data["payment"]["amountRefunded"] == 8
    # Keys belong to an organisation: the same key elsewhere is a different key.
    p2 = payment_with_amount(shop, 10, org_index=1)
    assert code(server.gql(REFUND, {"paymentId": p2["id"], "amount": 1, "key": "retry-1"}, key=key(shop, org=2))) is None


def test_one_key_on_two_fields_of_one_operation_applies_once(shop):
    """README, "Mutations" (the contract is silent): the second field with the same key and
    input answers with the first's refund; with other input the operation fails whole."""
    server, p = shop["server"], payment_with_amount(shop, 10)
    twice = """mutation($p: ID!, $a: Int!, $b: Int!) {
        x: refundPayment(input: {paymentId: $p, amount: $a, idempotencyKey: "twice"}) { refund { id } payment { amountRefunded } }
        y: refundPayment(input: {paymentId: $p, amount: $b, idempotencyKey: "twice"}) { refund { id } payment { amountRefunded } } }"""
    refunds = f"SELECT count(*) || '|' || amount_refunded FROM payment p JOIN refund r ON r.payment_id = p.id WHERE p.id = '{p['id']}' GROUP BY p.id"
    other = server.gql(twice, {"p": p["id"], "a": 2, "b": 3}, key=key(shop))
    assert code(other) == "IDEMPOTENCY_KEY_REUSED" and other.json["data"] is None, other.raw
    assert psql(shop["url"], refunds) == ""
    same = server.gql(twice, {"p": p["id"], "a": 2, "b": 2}, key=key(shop))
    assert not same.errors, same.raw
    assert same.data["x"] == same.data["y"] == {"refund": {"id": same.data["x"]["refund"]["id"]}, "payment": {"amountRefunded": 2}}
    assert psql(shop["url"], refunds) == "1|2"


# ---------------------------------------------------------------------------------------- credit notes

def test_credit_note_on_an_unpaid_invoice_only_adjusts(shop):
    server, inv = shop["server"], unpaid_open_invoice(shop)
    r = server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 300, "reason": "discount",
                                      "customData": {"ticket": 42, "tags": ["a"]}}}, key=key(shop))
    assert not r.errors, r.errors
    note = r.data["createCreditNote"]["creditNote"]
    assert note["repaymentMethod"] == "INVOICE_ADJUSTED" and note["amountAdjusted"] == 300
    assert note["creditsReturned"] == note["amountRefunded"] == note["amountRepaidExternally"] == 0
    assert note["customData"] == {"ticket": 42, "tags": ["a"]}
    assert note["number"].startswith("CN-") and len(note["number"]) == 9
    assert r.data["createCreditNote"]["invoice"]["balance"] == inv["total"] - 300
    assert r.data["createCreditNote"]["invoice"]["status"] == "PARTIALLY_PAID"
    assert_figures_match(server, key(shop), shop["url"], invoice_ids=[inv["id"]], customer_ids=[inv["customer_id"]])


@pytest.mark.parametrize("destination,method,field", [("CREDITS", "CREDITS", "creditsReturned"),
                                                      ("EXTERNAL", "EXTERNAL_PAYMENT", "amountRepaidExternally")])
def test_credit_note_beyond_the_balance_goes_to_its_destination(shop, destination, method, field):
    server, inv = shop["server"], paid_in_full_by_one_payment(shop)
    missing = server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 100, "reason": "late"}}, key=key(shop))
    assert code(missing) == "REFUND_DESTINATION_REQUIRED"
    r = server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 100, "reason": "late",
                                      "refundDestination": destination}}, key=key(shop))
    note = r.data["createCreditNote"]["creditNote"]
    assert note["repaymentMethod"] == method and note[field] == 100 and note["amountAdjusted"] == 0
    assert r.data["createCreditNote"]["invoice"]["balance"] == 0
    assert_figures_match(server, key(shop), shop["url"], invoice_ids=[inv["id"]], customer_ids=[inv["customer_id"]])


def test_credit_note_refunds_the_original_payment(shop):
    server, inv = shop["server"], paid_in_full_by_one_payment(shop)
    r = server.gql(CREDIT, {"invoiceId": inv["id"], "amount": 400, "reason": "returned goods"}, key=key(shop))
    assert not r.errors, r.errors
    note = r.data["createCreditNote"]["creditNote"]
    pid = shop["model"].apps_by_invoice[inv["id"]][0][0]
    assert note["refunds"] == [{"id": note["refunds"][0]["id"], "amount": 400, "payment": {"id": pid}}]
    assert note["amountRefunded"] == 400
    detail = server.gql("query($id: ID!) { creditNote(id: $id) { refunds { description refundedOn payment { id } } } }",
                        {"id": note["id"]}, key=key(shop))
    assert detail.data["creditNote"]["refunds"][0]["description"] == "returned goods"
    # Earlier credit notes' refunds count against what the payment can still give for this invoice.
    too_much = server.gql(CREDIT, {"invoiceId": inv["id"], "amount": inv["total"] - 400, "reason": "rest"}, key=key(shop))
    assert not too_much.errors
    over = server.gql(CREDIT, {"invoiceId": inv["id"], "amount": 1, "reason": "more"}, key=key(shop))
    assert code(over) == "AMOUNT_EXCEEDS_CREDITABLE"
    assert_figures_match(server, key(shop), shop["url"], invoice_ids=[inv["id"]], payment_ids=[pid],
                         customer_ids=[inv["customer_id"]])


def paid_in_full_by_several_payments(shop, same_day=None, at_least=2, refunded=False):
    """An open invoice paid in full by `at_least` or more payments that paid nothing else,
    unrefunded unless `refunded` allows it."""
    model = shop["model"]

    def ok(inv):
        apps = model.apps_by_invoice[inv["id"]]
        days = [model.payments[p]["received_on"] for p, _ in apps]
        return (inv["status"] == "open" and len(apps) >= at_least and sum(a for _, a in apps) == inv["total"]
                and all(len(model.apps_by_payment[p]) == 1 and (refunded or not model.refunds_by_payment[p]) for p, _ in apps)
                and (same_day is None or (len(set(days)) < len(days)) == same_day))
    return invoice_where(shop, ok)


def oldest_first(shop, inv):
    """The invoice's payments as RULES.md section 4 takes them: receivedOn, then id."""
    model = shop["model"]
    return sorted((model.payments[p] for p, _ in model.apps_by_invoice[inv["id"]]), key=lambda p: (p["received_on"], p["id"]))


@pytest.mark.parametrize("same_day", [False, True])
def test_credit_note_refunds_several_payments_oldest_first(shop, same_day):
    server = shop["server"]
    inv = paid_in_full_by_several_payments(shop, same_day=same_day)
    payments = oldest_first(shop, inv)
    applied = dict(shop["model"].apps_by_invoice[inv["id"]])
    # More than the oldest payment gave this invoice: it gives all of that, the next one the rest.
    amount = applied[payments[0]["id"]] + 1
    r = server.gql(CREDIT, {"invoiceId": inv["id"], "amount": amount, "reason": "returned goods"}, key=key(shop))
    assert not r.errors, r.errors
    refunds = sorted((x["payment"]["id"], x["amount"]) for x in r.data["createCreditNote"]["creditNote"]["refunds"])
    assert refunds == sorted([(payments[0]["id"], applied[payments[0]["id"]]), (payments[1]["id"], 1)])
    assert_figures_match(server, key(shop), shop["url"], invoice_ids=[inv["id"]], payment_ids=[p["id"] for p in payments],
                         customer_ids=[inv["customer_id"]])


def test_each_payment_gives_at_most_what_it_can_and_a_split_is_followed(shop):
    server = shop["server"]
    model = shop["model"]
    inv = paid_in_full_by_several_payments(shop, at_least=3, refunded=True)
    payments = oldest_first(shop, inv)
    first, second, third = payments[0], payments[1], payments[2]
    applied = dict(model.apps_by_invoice[inv["id"]])
    caps = {p["id"]: min(model.refundable(p["id"]), applied[p["id"]]) for p in payments}
    assert caps[second["id"]] >= 7 and caps[third["id"]] >= 3
    # The oldest payment is refunded directly down to 10 refundable: it can give 10, no more.
    assert not server.gql(REFUND, {"paymentId": first["id"], "amount": model.refundable(first["id"]) - 10}, key=key(shop)).errors
    r = server.gql(CREDIT, {"invoiceId": inv["id"], "amount": 15, "reason": "capped"}, key=key(shop))
    refunds = sorted((x["payment"]["id"], x["amount"]) for x in r.data["createCreditNote"]["creditNote"]["refunds"])
    assert refunds == sorted([(first["id"], 10), (second["id"], 5)])
    # A split across two payments is followed as given.
    split = [{"paymentId": third["id"], "amount": 3}, {"paymentId": second["id"], "amount": 2}]
    r = server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 5, "reason": "split",
                                      "refundDestination": "ORIGINAL_PAYMENT_METHOD", "refundSplit": split}}, key=key(shop))
    assert not r.errors, r.errors
    refunds = sorted((x["payment"]["id"], x["amount"]) for x in r.data["createCreditNote"]["creditNote"]["refunds"])
    assert refunds == sorted((e["paymentId"], e["amount"]) for e in split)
    # What is left to refund is less than what is left to credit: the cap, not the
    # creditable amount, refuses the next note. (The oldest payment can give nothing more;
    # the others what they applied less what the two notes took from them.)
    left = sum(caps[p["id"]] for p in payments[1:]) - 10
    creditable = inv["total"] - 15 - 5
    assert left < creditable
    over = server.gql(CREDIT, {"invoiceId": inv["id"], "amount": left + 1, "reason": "over"}, key=key(shop))
    assert code(over) == "AMOUNT_EXCEEDS_REFUNDABLE"
    exact = server.gql(CREDIT, {"invoiceId": inv["id"], "amount": left, "reason": "all that is left"}, key=key(shop))
    assert not exact.errors, exact.errors
    assert_figures_match(server, key(shop), shop["url"], invoice_ids=[inv["id"]], payment_ids=[p["id"] for p in payments],
                         customer_ids=[inv["customer_id"]])


def test_credit_note_errors_in_the_contracts_order(shop):
    server, model = shop["server"], shop["model"]
    draft = invoice_where(shop, lambda i: i["status"] == "draft")
    inv = paid_in_full_by_one_payment(shop)
    pid = model.apps_by_invoice[inv["id"]][0][0]

    def create(**fields):
        return code(server.gql(CREATE, {"input": dict({"invoiceId": inv["id"], "amount": 10, "reason": "r"}, **fields)},
                               key=key(shop)))
    assert create(invoiceId="00000000-0000-4000-8000-000000000000") == "NOT_FOUND"
    assert create(invoiceId=draft["id"]) == "INVALID_STATE"
    assert create(amount=0, reason="  ") == "BAD_USER_INPUT"
    assert create(reason=" \t ") == "BAD_USER_INPUT"
    assert create(amount=inv["total"] + 1, refundDestination="CREDITS") == "AMOUNT_EXCEEDS_CREDITABLE"
    assert create() == "REFUND_DESTINATION_REQUIRED"
    split = "ORIGINAL_PAYMENT_METHOD"
    assert create(refundDestination=split, refundSplit=[{"paymentId": pid, "amount": 5}]) == "REFUND_SPLIT_MISMATCH"
    assert create(refundDestination=split, refundSplit=[{"paymentId": pid, "amount": 0}]) == "BAD_USER_INPUT"
    assert create(refundDestination=split, refundSplit=[{"paymentId": pid, "amount": 5},
                                                        {"paymentId": pid, "amount": 5}]) == "BAD_USER_INPUT"
    other = payment_with_amount(shop, 1)
    assert create(refundDestination=split, refundSplit=[{"paymentId": other["id"], "amount": 10}]) == "BAD_USER_INPUT"
    assert create(refundDestination=split, refundSplit=[{"paymentId": pid, "amount": inv["total"] + 1}],
                  amount=inv["total"]) == "AMOUNT_EXCEEDS_REFUNDABLE"
    assert create(refundDestination="CREDITS", customData=[1, 2]) == "BAD_USER_INPUT"
    r = server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 10, "reason": "r"}}, key=key(shop, "refunds"))
    assert code(r) == "FORBIDDEN"
    # A split with another destination is ignored; a correct split is used.
    assert create(refundDestination="CREDITS", refundSplit=[{"paymentId": pid, "amount": 99}]) is None
    assert create(refundDestination=split, refundSplit=[{"paymentId": pid, "amount": 10}]) is None
    assert_figures_match(server, key(shop), shop["url"], invoice_ids=[inv["id"]], payment_ids=[pid],
                         customer_ids=[inv["customer_id"]])


def test_50_concurrent_credit_notes_are_numbered_without_gaps(shop):
    server, url = shop["server"], shop["url"]
    # A fresh organisation's worth of numbering: count what exists, then add 50 at once.
    before = int(psql(url, f"SELECT count(*) FROM credit_note WHERE organisation_id = '{shop['model'].orgs[1]}'"))
    invoices = [i for i in shop["model"].invoices_of(shop["model"].orgs[1]) if i["status"] == "open"][:50]
    assert len(invoices) == 50

    def create(inv):
        return server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 1, "reason": "cent",
                                             "refundDestination": "CREDITS"}}, key=key(shop, org=2))

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(create, invoices))
    assert all(not r.errors for r in responses), [r.errors for r in responses if r.errors][:3]
    numbers = sorted(r.data["createCreditNote"]["creditNote"]["number"] for r in responses)
    assert numbers == [f"CN-{n:06d}" for n in range(before + 1, before + 51)]
    assert_figures_match(server, key(shop, org=2), url, invoice_ids=[i["id"] for i in invoices],
                         customer_ids={i["customer_id"] for i in invoices})


def test_void_credit_note(shop):
    server, url = shop["server"], shop["url"]
    inv = paid_in_full_by_one_payment(shop)
    credits = server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 50, "reason": "r",
                                            "refundDestination": "CREDITS"}}, key=key(shop))
    note = credits.data["createCreditNote"]["creditNote"]
    r = server.gql(VOID, {"id": note["id"], "key": "void-1"}, key=key(shop))
    assert r.data["voidCreditNote"]["creditNote"] == {"id": note["id"], "status": "VOID"}
    assert r.data["voidCreditNote"]["invoice"]["amountCredited"] == 0
    assert server.gql(VOID, {"id": note["id"], "key": "void-1"}, key=key(shop)).data["voidCreditNote"]["creditNote"]["status"] == "VOID"
    assert code(server.gql(VOID, {"id": note["id"]}, key=key(shop))) == "INVALID_STATE"
    assert code(server.gql(VOID, {"id": "00000000-0000-4000-8000-000000000000"}, key=key(shop))) == "NOT_FOUND"
    refunded = server.gql(CREDIT, {"invoiceId": inv["id"], "amount": 20, "reason": "r"}, key=key(shop))
    assert code(server.gql(VOID, {"id": refunded.data["createCreditNote"]["creditNote"]["id"]}, key=key(shop))) == "INVALID_STATE"
    external = server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 20, "reason": "r",
                                             "refundDestination": "EXTERNAL"}}, key=key(shop))
    assert code(server.gql(VOID, {"id": external.data["createCreditNote"]["creditNote"]["id"]}, key=key(shop))) == "INVALID_STATE"
    assert code(server.gql(VOID, {"id": note["id"]}, key=key(shop, "refunds"))) == "FORBIDDEN"
    assert_figures_match(server, key(shop), url, invoice_ids=[inv["id"]], customer_ids=[inv["customer_id"]])


def test_void_refused_when_the_credits_were_spent(shop):
    server, url = shop["server"], shop["url"]
    inv = paid_in_full_by_one_payment(shop)
    r = server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 60, "reason": "r", "refundDestination": "CREDITS"}},
                   key=key(shop))
    note = r.data["createCreditNote"]["creditNote"]
    # The credits were spent elsewhere (another system drew the customer's balance down).
    saved = psql(url, f"SELECT credit_balance FROM customer WHERE id = '{inv['customer_id']}'")
    psql(url, f"UPDATE customer SET credit_balance = 0 WHERE id = '{inv['customer_id']}'")
    try:
        assert code(server.gql(VOID, {"id": note["id"]}, key=key(shop))) == "INVALID_STATE"
        status = server.gql("query($id: ID!) { creditNote(id: $id) { status } }", {"id": note["id"]}, key=key(shop))
        assert status.data["creditNote"]["status"] == "ISSUED"
    finally:  # other tests check this customer's figures against the raw facts
        psql(url, f"UPDATE customer SET credit_balance = {saved} WHERE id = '{inv['customer_id']}'")


def test_credit_note_numbers_grow_past_six_digits(shop):
    server, url = shop["server"], shop["url"]
    org = shop["model"].orgs[0]
    inv = unpaid_open_invoice(shop)
    saved = psql(url, f"SELECT next_credit_note FROM organisation WHERE id = '{org}'")
    psql(url, f"UPDATE organisation SET next_credit_note = 1000000 WHERE id = '{org}'")
    try:
        r = server.gql(CREATE, {"input": {"invoiceId": inv["id"], "amount": 1, "reason": "r"}}, key=key(shop))
        assert r.data["createCreditNote"]["creditNote"]["number"] == "CN-1000000"
    finally:
        psql(url, f"UPDATE organisation SET next_credit_note = {saved} WHERE id = '{org}'")
