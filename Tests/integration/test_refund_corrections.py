"""Refunds as the billing systems we follow handle them (RULES.md section 4): a credit
note that takes over a refund already made, `updateRefund`, and the audit trail. Every
step is checked against the raw facts (figures.py); what a key may see is checked
with two keys of one organisation."""
import datetime
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import open_world, psql, run_cli
from figures import assert_figures_match, record_credit_notes

REFUND = """mutation($p: ID!, $a: Int!) { refundPayment(input: {paymentId: $p, amount: $a}) {
  refund { id createdBy { id label } } } }"""
TAKEOVER = """mutation($input: CreateCreditNoteInput!) { createCreditNote(input: $input) {
  creditNote { id amountRefunded repaymentMethod refunds { id amount } createdBy { id label } } } }"""
UPDATE = """mutation($input: UpdateRefundInput!) { updateRefund(input: $input) {
  refund { id amount mode refundedOn referenceNumber description creditNote { id } } payment { id amountRefunded } } }"""
ZERO = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def ledger():
    """A world of its own, with two labelled keys of organisation 1."""
    world = open_world(customers=40, seed_value=41)
    record_credit_notes(world["server"])
    org = world["model"].orgs[0]
    for label in ("alice", "bob"):
        made = run_cli("keys", "create", "--organisation", org, "--scopes", "billing:read,refunds:write,credit_notes:write",
                       "--label", label, url=world["url"]).stdout
        world[label] = {"key": next(line.split()[-1] for line in made.splitlines() if line.startswith("key:")),
                        "id": next(line.split()[-1] for line in made.splitlines() if line.startswith("key id:"))}
    yield world
    world["server"].stop()


# Invoices a test of this module has taken: the tests run in any order on one ledger, and
# each needs invoices (and their payments) that no other test has refunded from.
USED = set()


def paid_invoices(ledger):
    """Open invoices paid in full by unrefunded payments that paid nothing else."""
    model = ledger["model"]
    for inv in model.invoices_of(model.orgs[0]):
        apps = model.apps_by_invoice[inv["id"]]
        if (inv["id"] not in USED and inv["status"] == "open" and apps and sum(a for _, a in apps) == inv["total"]
                and inv["total"] >= 1000
                and all(len(model.apps_by_payment[p]) == 1 and not model.refunds_by_payment[p] for p, _ in apps)):
            USED.add(inv["id"])
            yield inv


def an_invoice(ledger):
    return next(paid_invoices(ledger))


def first_payment(ledger, inv):
    return ledger["model"].apps_by_invoice[inv["id"]][0][0]


def refund(ledger, payment, amount, who="alice"):
    r = ledger["server"].gql(REFUND, {"p": payment, "a": amount}, key=ledger[who]["key"])
    assert not r.errors, r.errors
    return r.data["refundPayment"]["refund"]


def take_over(ledger, inv, entries, amount=None, who="alice", key=None):
    note_input = {"invoiceId": inv["id"], "amount": amount or sum(e["amount"] for e in entries), "reason": "documents a refund",
                  "refundDestination": "ORIGINAL_PAYMENT_METHOD", "refundSplit": entries}
    if key:
        note_input["idempotencyKey"] = key
    return ledger["server"].gql(TAKEOVER, {"input": note_input}, key=ledger[who]["key"])


def check_figures(ledger, inv):
    payments = [p for p, _ in ledger["model"].apps_by_invoice[inv["id"]]]
    assert_figures_match(ledger["server"], ledger["alice"]["key"], ledger["url"], invoice_ids=[inv["id"]],
                         payment_ids=payments, customer_ids=[inv["customer_id"]])


# ---------------------------------------------------------------------------------------- takeover

def test_a_credit_note_takes_over_a_refund_already_made(ledger):
    inv = an_invoice(ledger)
    pid = first_payment(ledger, inv)
    made = refund(ledger, pid, 300)
    check_figures(ledger, inv)
    r = take_over(ledger, inv, [{"paymentId": pid, "amount": 300, "refundId": made["id"]}])
    assert not r.errors, r.errors
    note = r.data["createCreditNote"]["creditNote"]
    # No new refund: the note owns the one that was made, and counts it.
    assert note["refunds"] == [{"id": made["id"], "amount": 300}] and note["amountRefunded"] == 300
    assert psql(ledger["url"], f"SELECT count(*) FROM refund WHERE payment_id = '{pid}'") == "1"
    assert psql(ledger["url"], f"SELECT credit_note_id FROM refund WHERE id = '{made['id']}'") == note["id"]
    check_figures(ledger, inv)


def test_a_takeover_is_not_held_to_the_payments_refundable_amount(ledger):
    inv = an_invoice(ledger)
    pid = first_payment(ledger, inv)
    amount = int(psql(ledger["url"], f"SELECT amount FROM payment WHERE id = '{pid}'"))
    made = refund(ledger, pid, amount)  # nothing is refundable any more
    r = take_over(ledger, inv, [{"paymentId": pid, "amount": amount, "refundId": made["id"]}])
    assert not r.errors, r.errors
    check_figures(ledger, inv)


def test_takeover_errors_in_the_contracts_order(ledger):
    inv, other = an_invoice(ledger), an_invoice(ledger)
    pid, other_pid = first_payment(ledger, inv), first_payment(ledger, other)
    mine, theirs = refund(ledger, pid, 40), refund(ledger, other_pid, 40)
    codes = lambda entries, **kw: take_over(ledger, inv, entries, **kw).codes()
    assert codes([{"paymentId": pid, "amount": 40, "refundId": theirs["id"]}]) == ["BAD_USER_INPUT"]  # another payment's
    assert codes([{"paymentId": pid, "amount": 40, "refundId": ZERO}]) == ["BAD_USER_INPUT"]  # no such refund
    assert codes([{"paymentId": pid, "amount": 40, "refundId": "not-an-id"}]) == ["BAD_USER_INPUT"]
    assert codes([{"paymentId": pid, "amount": 39, "refundId": mine["id"]}]) == ["REFUND_SPLIT_MISMATCH"]  # not its amount
    # The entry's payment and amount are checked first.
    assert codes([{"paymentId": other_pid, "amount": 39, "refundId": mine["id"]}]) == ["BAD_USER_INPUT"]
    assert codes([{"paymentId": pid, "amount": 0, "refundId": mine["id"]}], amount=1) == ["BAD_USER_INPUT"]
    # Held to what the payment gave this invoice less what earlier notes refunded from it,
    # not to what is left of the payment: a payment that gave this invoice a, and has more
    # than a, refunds a - 1 through a note; a refund of 2 on it cannot then be taken over.
    check_figures(ledger, inv)
    model = ledger["model"]
    x = next(i for i in model.invoices_of(model.orgs[0])
             if i["id"] not in USED and i["status"] == "open" and model.balance(i["id"]) == 0
             and len(model.apps_by_invoice[i["id"]]) >= 2
             and any(model.payments[p]["amount"] > a and not model.refunds_by_payment[p] for p, a in model.apps_by_invoice[i["id"]]))
    USED.add(x["id"])
    a_pid, a = next((p, a) for p, a in model.apps_by_invoice[x["id"]]
                    if model.payments[p]["amount"] > a and not model.refunds_by_payment[p])
    first = take_over(ledger, x, [{"paymentId": a_pid, "amount": a - 1}])
    assert not first.errors, first.errors
    two = refund(ledger, a_pid, 2)
    assert take_over(ledger, x, [{"paymentId": a_pid, "amount": 2, "refundId": two["id"]}]).codes() == ["AMOUNT_EXCEEDS_REFUNDABLE"]
    # Entry by entry: the first entry at fault decides, whichever check it fails.
    b_pid = next(p for p, _ in model.apps_by_invoice[x["id"]] if p != a_pid)
    too_much = {"paymentId": b_pid, "amount": 2 ** 31 - 1}
    bad_takeover = {"paymentId": a_pid, "amount": 2, "refundId": ZERO}
    assert take_over(ledger, x, [too_much, bad_takeover], amount=1).codes() == ["AMOUNT_EXCEEDS_REFUNDABLE"]
    assert take_over(ledger, x, [bad_takeover, too_much], amount=1).codes() == ["BAD_USER_INPUT"]
    check_figures(ledger, x)
    # Owned by a note already.
    owned = refund(ledger, other_pid, 5)
    assert not take_over(ledger, other, [{"paymentId": other_pid, "amount": 5, "refundId": owned["id"]}]).errors
    assert take_over(ledger, other, [{"paymentId": other_pid, "amount": 5, "refundId": owned["id"]}]).codes() == ["BAD_USER_INPUT"]
    check_figures(ledger, other)


def test_taking_over_an_imported_refund(ledger):
    model = ledger["model"]
    imported = next(r for r in sorted(model.refunds.values(), key=lambda r: r["id"])
                    if r["organisation_id"] == model.orgs[0] and len(model.apps_by_payment[r["payment_id"]]) == 1
                    and model.invoices[model.apps_by_payment[r["payment_id"]][0][0]]["status"] == "open"
                    and r["amount"] <= model.apps_by_payment[r["payment_id"]][0][1])
    inv = model.invoices[model.apps_by_payment[imported["payment_id"]][0][0]]
    seen = ledger["server"].gql("query($id: ID!) { refund(id: $id) { createdBy { id } creditNote { id } } }",
                                {"id": imported["id"]}, key=ledger["alice"]["key"])
    assert seen.data["refund"] == {"createdBy": None, "creditNote": None}  # imported: no key made it
    r = take_over(ledger, inv, [{"paymentId": imported["payment_id"], "amount": imported["amount"], "refundId": imported["id"]}],
                  amount=imported["amount"] + model.balance(inv["id"]))
    assert not r.errors, r.errors
    assert r.data["createCreditNote"]["creditNote"]["refunds"] == [{"id": imported["id"], "amount": imported["amount"]}]
    check_figures(ledger, inv)


def test_two_notes_racing_for_one_refund_exactly_one_wins(ledger):
    inv = an_invoice(ledger)
    pid = first_payment(ledger, inv)
    made = refund(ledger, pid, 25)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: take_over(ledger, inv, [{"paymentId": pid, "amount": 25, "refundId": made["id"]}]),
                                range(8)))
    assert sorted(a.codes() for a in answers) == [[]] + [["BAD_USER_INPUT"]] * 7
    check_figures(ledger, inv)


def test_a_takeover_replays_with_its_idempotency_key(ledger):
    inv = an_invoice(ledger)
    pid = first_payment(ledger, inv)
    made = refund(ledger, pid, 60)
    entries = [{"paymentId": pid, "amount": 60, "refundId": made["id"]}]
    first = take_over(ledger, inv, entries, key="take-60")
    again = take_over(ledger, inv, entries, key="take-60")
    assert not first.errors and again.data == first.data
    assert take_over(ledger, inv, [{"paymentId": pid, "amount": 60}], key="take-60").codes() == ["IDEMPOTENCY_KEY_REUSED"]
    assert psql(ledger["url"], "SELECT count(*) FROM credit_note WHERE reason = 'documents a refund' "
                               f"AND invoice_id = '{inv['id']}'") == "1"
    check_figures(ledger, inv)


# ---------------------------------------------------------------------------------------- updateRefund

def test_update_refund_corrects_the_record_and_never_the_money(ledger):
    inv = an_invoice(ledger)
    pid = first_payment(ledger, inv)
    made = refund(ledger, pid, 70)
    key = ledger["alice"]["key"]
    update = lambda **fields: ledger["server"].gql(UPDATE, {"input": dict({"refundId": made["id"]}, **fields)}, key=key)
    received = ledger["model"].payments[pid]["received_on"]
    today = datetime.datetime.now(datetime.timezone.utc).date()
    r = update(mode="CASH", referenceNumber="RF-123", description="typo fixed", refundedOn=received)
    assert r.data["updateRefund"]["refund"] == {"id": made["id"], "amount": 70, "mode": "CASH", "refundedOn": received,
                                                 "referenceNumber": "RF-123", "description": "typo fixed", "creditNote": None}
    assert r.data["updateRefund"]["payment"]["amountRefunded"] == 70
    # Blanks clear; null and absent keep.
    r = update(referenceNumber=" \t ", description=None)
    assert r.data["updateRefund"]["refund"]["referenceNumber"] is None
    assert r.data["updateRefund"]["refund"]["description"] == "typo fixed"
    # The same update twice changes nothing the second time.
    stored = f"SELECT mode, reference_number, description, refunded_on, amount FROM refund WHERE id = '{made['id']}'"
    first = update(mode="CASH")
    row = psql(ledger["url"], stored)
    second = update(mode="CASH")
    assert not first.errors and not second.errors and first.data == second.data, (first.raw, second.raw)
    assert psql(ledger["url"], stored) == row
    # The errors, in order.
    assert ledger["server"].gql(UPDATE, {"input": {"refundId": ZERO, "mode": "CASH"}}, key=key).codes() == ["NOT_FOUND"]
    assert ledger["server"].gql(UPDATE, {"input": {"refundId": ZERO}}, key=key).codes() == ["NOT_FOUND"]
    assert update().codes() == ["BAD_USER_INPUT"]
    day_before = (datetime.date.fromisoformat(received) - datetime.timedelta(days=1)).isoformat()
    assert update(refundedOn=day_before).codes() == ["BAD_USER_INPUT"]
    assert update(refundedOn=(today + datetime.timedelta(days=1)).isoformat()).codes() == ["BAD_USER_INPUT"]
    assert update(refundedOn=today.isoformat()).errors == []
    forbidden = ledger["server"].gql(UPDATE, {"input": {"refundId": made["id"], "mode": "CHECK"}}, key=ledger["keys"][(1, "read")])
    assert forbidden.codes() == ["FORBIDDEN"]
    elsewhere = ledger["server"].gql(UPDATE, {"input": {"refundId": made["id"], "mode": "CHECK"}}, key=ledger["keys"][(2, "full")])
    assert elsewhere.codes() == ["NOT_FOUND"]
    # The amount is not a field of the input at all.
    assert ledger["server"].gql("mutation { updateRefund(input: {refundId: \"x\", amount: 1}) { refund { id } } }",
                                key=key).codes() == ["GRAPHQL_VALIDATION_FAILED"]
    check_figures(ledger, inv)


def test_a_moved_date_moves_every_figure_that_depends_on_it(ledger):
    key, model = ledger["alice"]["key"], ledger["model"]
    inv = next(i for i in paid_invoices(ledger)
               if any(model.payments[p]["amount"] >= 81 for p, _ in model.apps_by_invoice[i["id"]]))
    pid = next(p for p, _ in model.apps_by_invoice[inv["id"]] if model.payments[p]["amount"] >= 81)
    made = refund(ledger, pid, 80)
    later = refund(ledger, pid, 1)  # stays dated today, so the moved one comes before it
    received = model.payments[pid]["received_on"]
    currency = model.customers[inv["customer_id"]]["currency"]
    month = received[:7] + "-01"
    summary = "query($c: String!, $d: Date!) { monthlySummary(currency: $c, from: $d, to: $d) { refunded } }"
    window = "query($d: Date!) { refunds(first: 1000, filter: {refundedFrom: $d, refundedTo: $d}) { nodes { id } } }"
    before = ledger["server"].gql(summary, {"c": currency, "d": month}, key=key).data["monthlySummary"][0]["refunded"]
    assert made["id"] not in [n["id"] for n in ledger["server"].gql(window, {"d": received}, key=key).data["refunds"]["nodes"]]
    assert not ledger["server"].gql(UPDATE, {"input": {"refundId": made["id"], "refundedOn": received}}, key=key).errors
    after = ledger["server"].gql(summary, {"c": currency, "d": month}, key=key).data["monthlySummary"][0]["refunded"]
    assert after == before + 80
    assert made["id"] in [n["id"] for n in ledger["server"].gql(window, {"d": received}, key=key).data["refunds"]["nodes"]]
    # The payment's refunds come in their new order: oldest first by refundedOn, then id.
    listed = ledger["server"].gql("query($id: ID!) { payment(id: $id) { refunds { id refundedOn } } }", {"id": pid}, key=key)
    rows = listed.data["payment"]["refunds"]
    assert [r["id"] for r in rows] == [made["id"], later["id"]], rows
    assert rows[0]["refundedOn"] == received and rows[1]["refundedOn"] > received, rows


# ---------------------------------------------------------------------------------------- the audit trail

def test_the_audit_trail_names_the_key_never_the_key_itself(ledger):
    server, alice, bob = ledger["server"], ledger["alice"], ledger["bob"]
    inv = an_invoice(ledger)
    pid = first_payment(ledger, inv)
    made = refund(ledger, pid, 11, who="alice")
    assert made["createdBy"] == {"id": alice["id"], "label": "alice"}
    note = server.gql("""mutation($input: CreateCreditNoteInput!) { createCreditNote(input: $input) {
                        creditNote { id createdBy { id label } voidedAt voidedBy { id } } } }""",
                      {"input": {"invoiceId": inv["id"], "amount": 12, "reason": "r", "refundDestination": "CREDITS"}},
                      key=bob["key"])
    created = note.data["createCreditNote"]["creditNote"]
    assert created["createdBy"] == {"id": bob["id"], "label": "bob"} and created["voidedAt"] is None and created["voidedBy"] is None
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    voided = server.gql("""mutation($n: ID!) { voidCreditNote(input: {creditNoteId: $n}) {
                           creditNote { id status createdBy { label } voidedAt voidedBy { id label } } } }""",
                        {"n": created["id"]}, key=alice["key"])
    got = voided.data["voidCreditNote"]["creditNote"]
    assert got["status"] == "VOID" and got["createdBy"] == {"label": "bob"} and got["voidedBy"] == {"id": alice["id"], "label": "alice"}
    at = datetime.datetime.fromisoformat(got["voidedAt"].replace("Z", "+00:00"))
    assert before <= at <= datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    for answer in (note, voided):
        assert alice["key"] not in answer.raw.decode() and bob["key"] not in answer.raw.decode()
    # Reading the trail needs billing:read: a key that may only write is refused, and
    # its operation is not applied.
    writer = ledger["keys"][(1, "writer")]
    r = server.gql(REFUND, {"p": pid, "a": 1}, key=writer)
    assert r.codes() == ["FORBIDDEN"] and r.data is None
    assert psql(ledger["url"], f"SELECT count(*) FROM refund WHERE payment_id = '{pid}'") == "1"
    plain = server.gql('mutation($p: ID!) { refundPayment(input: {paymentId: $p, amount: 1}) { refund { id } } }', {"p": pid}, key=writer)
    assert plain.errors == []
    # voidedAt is the trail too: the void is refused and not applied.
    other = server.gql("""mutation($input: CreateCreditNoteInput!) { createCreditNote(input: $input) { creditNote { id } } }""",
                       {"input": {"invoiceId": inv["id"], "amount": 1, "reason": "r", "refundDestination": "CREDITS"}},
                       key=writer)
    other_id = other.data["createCreditNote"]["creditNote"]["id"]
    r = server.gql("mutation($n: ID!) { voidCreditNote(input: {creditNoteId: $n}) { creditNote { status voidedAt } } }",
                   {"n": other_id}, key=writer)
    assert r.codes() == ["FORBIDDEN"] and r.data is None and r.errors[0]["path"] == ["voidCreditNote", "creditNote", "voidedAt"], r.raw
    assert psql(ledger["url"], f"SELECT status FROM credit_note WHERE id = '{other_id}'") == "ISSUED"
    listed = run_cli("keys", "list", "--organisation", ledger["model"].orgs[0], url=ledger["url"]).stdout
    assert "alice" in listed and "bob" in listed
