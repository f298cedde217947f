"""Claims of the README and RULES.md section 4 about mutations that no other test proves:
concurrent credit notes on one invoice, idempotency keys whose first call rolled back,
credit notes and voids across organisations, the audit trail of keys, a failed mutation
(even one that failed after taking its number) consuming no credit note number, the
database lost in the middle of a request, the order in which customData is checked, and
the retry of a transaction that fails with a deadlock or a serialization failure.

Every test here writes, so the module has a world of its own; the retry tests each have a
database of their own, since they change its settings. Objects are chosen from the stored
rows (not from the generator's habits) and each test takes objects no other test took."""
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (PsqlSession, Server, assert_no_internals, backends_waiting_on_a_lock, create_key, open_data, psql,
                      wait_until)
from figures import assert_figures_match, record_credit_notes

CREATE = """mutation($input: CreateCreditNoteInput!) { createCreditNote(input: $input) {
  creditNote { id number amount status amountAdjusted customData } invoice { id amountCredited balance status } } }"""
VOID = """mutation($id: ID!, $key: String) { voidCreditNote(input: {creditNoteId: $id, idempotencyKey: $key}) {
  creditNote { id status } invoice { id amountCredited balance } } }"""
REFUND = """mutation($p: ID!, $amount: Int!, $key: String) {
  refundPayment(input: {paymentId: $p, amount: $amount, idempotencyKey: $key}) { refund { id amount } payment { amountRefunded } } }"""


@pytest.fixture(scope="module")
def shop():
    opened = open_data(customers=30, seed_value=15)
    # Every note made or voided through it is recorded, for figures.py's replay.
    opened["server"] = record_credit_notes(Server(opened["url"]))
    opened["used"] = set()
    yield opened
    opened["server"].stop()


def key(shop, org=1, label="full"):
    return shop["keys"][(org, label)]


def org_id(shop, org=1):
    return shop["model"].orgs[org - 1]


def take(shop, sql, what):
    """The first id the query lists that no test of this module took before."""
    for row in psql(shop["url"], sql).splitlines():
        if row.split("|")[0] not in shop["used"]:
            shop["used"].add(row.split("|")[0])
            return row.split("|") if "|" in row else row
    raise AssertionError(f"the dataset has no (more) {what}")


def unpaid_invoice(shop, org=1):
    """An OPEN invoice with no payment and no credit note: id, total."""
    iid, total = take(shop, f"""SELECT i.id || '|' || i.total FROM invoice i WHERE i.organisation_id = '{org_id(shop, org)}'
        AND i.status = 'OPEN' AND i.total >= 1000 AND i.amount_credited = 0
        AND NOT EXISTS (SELECT 1 FROM payment_application a WHERE a.invoice_id = i.id) ORDER BY i.id""", "unpaid invoice")
    return iid, int(total)


def paid_invoice(shop, org=1):
    """A PAID invoice paid by one SUCCEEDED, unrefunded payment applied to it alone: id, total, payment."""
    iid, total, pid = take(shop, f"""SELECT i.id || '|' || i.total || '|' || a.payment_id FROM invoice i
        JOIN payment_application a ON a.invoice_id = i.id JOIN payment p ON p.id = a.payment_id
        WHERE i.organisation_id = '{org_id(shop, org)}' AND i.status = 'PAID' AND i.amount_credited = 0 AND i.total >= 1000
          AND p.status = 'SUCCEEDED' AND p.amount_refunded = 0
          AND (SELECT count(*) FROM payment_application b WHERE b.invoice_id = i.id) = 1
          AND (SELECT count(*) FROM payment_application b WHERE b.payment_id = p.id) = 1
          AND p.customer_id NOT IN (SELECT customer_id FROM invoice WHERE id::text = ANY('{{{",".join(shop["used"])}}}'))
        ORDER BY i.id""", "invoice paid by one payment")
    return iid, int(total), pid


def refundable_payment(shop, org=1, minimum=100):
    return take(shop, f"""SELECT id FROM payment WHERE organisation_id = '{org_id(shop, org)}' AND status = 'SUCCEEDED'
        AND amount - amount_refunded >= {minimum} ORDER BY id""", "refundable payment")


def next_number(shop, org=1):
    return int(psql(shop["url"], f"SELECT next_credit_note FROM organisation WHERE id = '{org_id(shop, org)}'"))


def create(shop, k=None, **fields):
    return shop["server"].gql(CREATE, {"input": fields}, key=k or key(shop))


def code(r):
    assert r.status == 200, r.raw
    return r.codes()[0] if r.errors else None


# ------------------------------------------------------------------ concurrency on one invoice

def test_concurrent_credit_notes_on_one_invoice_never_exceed_the_creditable_amount(shop):
    """RULES.md section 4: the rules hold exactly as if mutations ran one at a time. 24 notes
    at once on one invoice, of an amount that fits k times: exactly k succeed, the rest are
    AMOUNT_EXCEEDS_CREDITABLE, and the k numbers are the organisation's next k."""
    invoice, total = unpaid_invoice(shop)
    amount = total // 7 + 1
    fits = total // amount
    first = next_number(shop)

    def one(_):
        return create(shop, invoiceId=invoice, amount=amount, reason="at once")

    with ThreadPoolExecutor(max_workers=24) as pool:
        responses = list(pool.map(one, range(24)))
    outcomes = [code(r) for r in responses]
    assert outcomes.count(None) == fits, outcomes
    assert outcomes.count("AMOUNT_EXCEEDS_CREDITABLE") == 24 - fits, outcomes
    numbers = sorted(r.data["createCreditNote"]["creditNote"]["number"] for r in responses if not r.errors)
    assert numbers == [f"CN-{n:06d}" for n in range(first, first + fits)]
    assert next_number(shop) == first + fits
    stored = psql(shop["url"], f"SELECT count(*) || '|' || sum(amount) FROM credit_note WHERE invoice_id = '{invoice}'")
    assert stored == f"{fits}|{fits * amount}" and fits * amount <= total
    assert_figures_match(shop["server"], key(shop), shop["url"], invoice_ids=[invoice])


# ------------------------------------------------------------------ idempotency

def test_a_key_whose_first_call_failed_can_be_used_again_with_the_same_input(shop):
    """RULES.md section 4: "A call that failed consumes no key." The same key and the same
    input, refused while the rule fails, succeed once it no longer does; then replay."""
    invoice, total = unpaid_invoice(shop)
    first = create(shop, invoiceId=invoice, amount=total - 10, reason="most of it")
    note = first.data["createCreditNote"]["creditNote"]["id"]
    same = {"invoiceId": invoice, "amount": 50, "reason": "retry me", "idempotencyKey": "after-rollback"}
    assert code(create(shop, **same)) == "AMOUNT_EXCEEDS_CREDITABLE"  # only 10 left to credit
    assert psql(shop["url"], "SELECT count(*) FROM idempotency_key WHERE key = 'after-rollback'") == "0"
    assert code(shop["server"].gql(VOID, {"id": note}, key=key(shop))) is None  # now 'total' is creditable again
    ok = create(shop, **same)
    assert code(ok) is None
    made = ok.data["createCreditNote"]["creditNote"]
    assert made["amount"] == 50 and made["amountAdjusted"] == 50
    replay = create(shop, **same)
    assert replay.data["createCreditNote"]["creditNote"]["id"] == made["id"]
    assert code(create(shop, **dict(same, amount=51))) == "IDEMPOTENCY_KEY_REUSED"
    assert psql(shop["url"], f"SELECT count(*) FROM credit_note WHERE invoice_id = '{invoice}' AND status = 'ISSUED'") == "1"


def test_a_call_waiting_on_a_key_whose_first_call_rolled_back_proceeds(shop):
    """README, "Mutations": a second call with the same key waits on the first's row, then
    proceeds if the first rolled back. The first call is held on a payment lock, the second
    waits on the key, the first's connection is cut (it rolls back): the second succeeds, once."""
    url, server = shop["url"], shop["server"]
    payment = refundable_payment(shop)
    before = psql(url, f"SELECT amount_refunded FROM payment WHERE id = '{payment}'")
    holder = PsqlSession(url)
    answers = {}

    def call(name):
        answers[name] = server.gql(REFUND, {"p": payment, "amount": 5, "key": "in-flight"}, key=key(shop))
    first, second = threading.Thread(target=call, args=("first",)), threading.Thread(target=call, args=("second",))
    try:
        holder.run(f"BEGIN; SELECT 1 FROM payment WHERE id = '{payment}' FOR UPDATE;")
        first.start()
        (first_pid,) = wait_until(lambda: backends_waiting_on_a_lock(url, "bg_refund_payment"), 20, "the first call never waited")
        second.start()
        wait_until(lambda: len(backends_waiting_on_a_lock(url, "bg_refund_payment")) == 2, 20, "the second call never waited")
        psql(url, f"SELECT pg_terminate_backend({first_pid})")
        first.join(20)
        # RULES.md section 4: a field failed for the database: data null, its error with its path.
        first_answer = answers["first"]
        assert first_answer.codes() == ["SERVICE_UNAVAILABLE"] and first_answer.json["data"] is None, first_answer.raw
        assert first_answer.errors[0]["path"] == ["refundPayment"], first_answer.raw
        time.sleep(0.3)
        assert second.is_alive()  # it now waits on the payment, having claimed the key itself
        holder.run("ROLLBACK;")
        second.join(20)
    finally:
        holder.close()
    r = answers["second"]
    assert code(r) is None and r.data["refundPayment"]["payment"]["amountRefunded"] == int(before) + 5, r.raw
    assert psql(url, f"SELECT count(*) FROM refund WHERE payment_id = '{payment}' AND amount = 5 "
                     f"AND created_at > now() - interval '1 minute'") == "1"
    again = server.gql(REFUND, {"p": payment, "amount": 5, "key": "in-flight"}, key=key(shop))
    assert again.data["refundPayment"]["refund"]["id"] == r.data["refundPayment"]["refund"]["id"]


# ------------------------------------------------------------------ tenancy

def test_credit_notes_and_voids_across_organisations_are_not_found_and_change_nothing(shop):
    url, server = shop["url"], shop["server"]
    theirs, _ = unpaid_invoice(shop, org=2)
    made = create(shop, k=key(shop, org=2), invoiceId=theirs, amount=100, reason="theirs")
    their_note = made.data["createCreditNote"]["creditNote"]["id"]
    mine, _, my_payment = paid_invoice(shop, org=1)
    _, _, their_payment = paid_invoice(shop, org=2)
    state = ("SELECT string_agg(id || ':' || next_credit_note, ',' ORDER BY id) FROM organisation",
             "SELECT count(*) || '|' || string_agg(status, ',' ORDER BY id) FROM credit_note",
             f"SELECT amount_credited || '|' || balance || '|' || status FROM invoice WHERE id IN ('{theirs}', '{mine}')",
             "SELECT sum(amount_refunded) FROM payment", "SELECT count(*) FROM idempotency_key",
             f"SELECT amount_refunded || '|' || (SELECT count(*) FROM refund WHERE payment_id = p.id) FROM payment p "
             f"WHERE id IN ('{my_payment}', '{their_payment}')")
    before = [psql(url, q) for q in state]
    assert code(create(shop, invoiceId=theirs, amount=1, reason="not mine", idempotencyKey="cross-1")) == "NOT_FOUND"
    assert code(create(shop, invoiceId=theirs, amount=1, reason="x", refundDestination="CREDITS")) == "NOT_FOUND"
    r = server.gql(VOID, {"id": their_note, "key": "cross-2"}, key=key(shop))
    assert code(r) == "NOT_FOUND" and r.json["data"] is None
    # Their payment named in a split of my own invoice is not a payment of this invoice.
    split = create(shop, invoiceId=mine, amount=10, reason="x", refundDestination="ORIGINAL_PAYMENT_METHOD",
                   refundSplit=[{"paymentId": their_payment, "amount": 10}])
    assert code(split) == "BAD_USER_INPUT"
    assert [psql(url, q) for q in state] == before
    assert psql(url, f"SELECT status FROM credit_note WHERE id = '{their_note}'") == "ISSUED"


# ------------------------------------------------------------------ audit trail

def test_the_keys_that_create_and_void_are_recorded_by_id(shop):
    """README: every refund and credit note records the id of the API key that made it
    (created_by_key, and voided_by_key for voids), never the key."""
    url, server = shop["url"], shop["server"]
    org = org_id(shop)
    maker_id, maker = create_key(url, org, "credit_notes:write,billing:read")
    voider_id, voider = create_key(url, org, "credit_notes:write")
    refunder_id, refunder = create_key(url, org, "refunds:write")
    invoice, total, payment = paid_invoice(shop)
    made = create(shop, k=maker, invoiceId=invoice, amount=40, reason="audited", refundDestination="ORIGINAL_PAYMENT_METHOD")
    note = made.data["createCreditNote"]["creditNote"]["id"]
    assert psql(url, f"SELECT created_by_key FROM credit_note WHERE id = '{note}'") == maker_id
    assert psql(url, f"SELECT string_agg(DISTINCT created_by_key::text, ',') FROM refund WHERE credit_note_id = '{note}'") == maker_id
    # A note whose money left cannot be voided; one of credits can, by another key.
    credits = create(shop, k=maker, invoiceId=invoice, amount=30, reason="audited", refundDestination="CREDITS")
    credit_note = credits.data["createCreditNote"]["creditNote"]["id"]
    assert psql(url, f"SELECT voided_by_key IS NULL AND voided_at IS NULL FROM credit_note WHERE id = '{credit_note}'") == "t"
    voided = server.gql(VOID, {"id": credit_note}, key=voider)
    assert code(voided) is None and voided.data["voidCreditNote"]["creditNote"]["status"] == "VOID"
    row = psql(url, f"SELECT created_by_key || '|' || voided_by_key || '|' || (voided_at IS NOT NULL) FROM credit_note "
                    f"WHERE id = '{credit_note}'")
    assert row == f"{maker_id}|{voider_id}|true"
    refund = server.gql(REFUND, {"p": refundable_payment(shop), "amount": 1}, key=refunder)
    rid = refund.data["refundPayment"]["refund"]["id"]
    assert psql(url, f"SELECT created_by_key FROM refund WHERE id = '{rid}'") == refunder_id
    # Ids, never the keys: no column of these tables holds a key's text.
    for secret in (maker, voider, refunder):
        assert psql(url, f"SELECT (SELECT count(*) FROM credit_note n WHERE n::text LIKE '%{secret}%') "
                         f"+ (SELECT count(*) FROM refund r WHERE r::text LIKE '%{secret}%')") == "0"


# ------------------------------------------------------------------ numbers and lost connections

def test_failed_credit_notes_consume_no_number_even_after_taking_one(shop):
    """RULES.md section 4: numbers are gapless and a failed mutation uses none. Failures of
    every check, then one that fails after it took the number (its connection is cut while it
    waits on the customer's row): the next note has the next number all the same. This is
    also the database lost in the middle of a request (README, "Database down"): the answer
    is SERVICE_UNAVAILABLE at the field's path with data null (RULES.md section 4), and nothing is half-applied."""
    url, server = shop["url"], shop["server"]
    invoice, total, payment = paid_invoice(shop)
    draft = psql(url, f"SELECT id FROM invoice WHERE organisation_id = '{org_id(shop)}' AND status = 'DRAFT' LIMIT 1")
    n = next_number(shop)
    ok = create(shop, invoiceId=invoice, amount=10, reason="one", refundDestination="CREDITS")
    assert ok.data["createCreditNote"]["creditNote"]["number"] == f"CN-{n:06d}"
    failures = [({"invoiceId": "00000000-0000-4000-8000-000000000000"}, "NOT_FOUND"),
                ({"amount": 0}, "BAD_USER_INPUT"), ({"reason": "   "}, "BAD_USER_INPUT"),
                ({"amount": total}, "AMOUNT_EXCEEDS_CREDITABLE"), ({"refundDestination": None}, "REFUND_DESTINATION_REQUIRED"),
                ({"refundDestination": "ORIGINAL_PAYMENT_METHOD", "refundSplit": [{"paymentId": payment, "amount": 1}]},
                 "REFUND_SPLIT_MISMATCH"),
                ({"customData": [1]}, "BAD_USER_INPUT")]
    assert draft, "the dataset has a DRAFT invoice in every organisation"
    failures.append(({"invoiceId": draft}, "INVALID_STATE"))
    for change, expected in failures:
        fields = dict({"invoiceId": invoice, "amount": 10, "reason": "r", "refundDestination": "CREDITS"}, **change)
        assert code(create(shop, **{k: v for k, v in fields.items() if v is not None})) == expected, change
    assert next_number(shop) == n + 1

    customer = psql(url, f"SELECT customer_id FROM invoice WHERE id = '{invoice}'")
    snapshot = (f"SELECT amount_credited || '|' || amount_returned || '|' || balance FROM invoice WHERE id = '{invoice}'",
                f"SELECT credit_balance || '|' || total_credited FROM customer WHERE id = '{customer}'",
                f"SELECT count(*) FROM credit_note WHERE invoice_id = '{invoice}'")
    before = [psql(url, q) for q in snapshot]
    holder, observer = PsqlSession(url), PsqlSession(url)
    answer = {}
    try:
        holder.run(f"BEGIN; SELECT 1 FROM customer WHERE id = '{customer}' FOR UPDATE;")
        request = threading.Thread(target=lambda: answer.update(r=create(
            shop, invoiceId=invoice, amount=10, reason="cut off", refundDestination="CREDITS")))
        request.start()
        (pid,) = wait_until(lambda: backends_waiting_on_a_lock(url, "bg_create_credit_note"), 20, "the note never waited")
        # It holds the organisation's row: it has taken the next number.
        busy = observer.wait(observer.send(f"SELECT 1 FROM organisation WHERE id = '{org_id(shop)}' FOR UPDATE NOWAIT;"))
        assert any("could not obtain lock" in line for line in busy), busy
        psql(url, f"SELECT pg_terminate_backend({pid})")
        request.join(20)
    finally:
        holder.close()
        observer.close()
    r = answer["r"]
    assert r.status == 200 and r.codes() == ["SERVICE_UNAVAILABLE"] and r.json["data"] is None, r.raw
    assert r.errors[0]["path"] == ["createCreditNote"], r.raw
    assert_no_internals(r)
    assert [psql(url, q) for q in snapshot] == before
    assert next_number(shop) == n + 1
    again = create(shop, invoiceId=invoice, amount=10, reason="two", refundDestination="CREDITS")
    assert again.data["createCreditNote"]["creditNote"]["number"] == f"CN-{n + 1:06d}", again.raw
    assert_figures_match(server, key(shop), url, invoice_ids=[invoice], customer_ids=[customer])


def test_a_read_that_loses_the_database_mid_way_is_service_unavailable(shop):
    url, server = shop["url"], shop["server"]
    holder = PsqlSession(url)
    answer = {}
    try:
        holder.run("BEGIN; LOCK TABLE customer IN ACCESS EXCLUSIVE MODE;")
        request = threading.Thread(target=lambda: answer.update(r=server.request(
            {"query": "{ customers(first: 1) { totalCount } }"}, key=key(shop, label="read"),
            headers={"Accept": "application/graphql-response+json"})))
        request.start()
        wait_until(lambda: backends_waiting_on_a_lock(url, "customer"), 20, "the read never waited")
        # The page and its count may be two statements, on two connections, the second
        # reaching the lock later: each that waits is cut off until the answer comes.
        deadline = time.monotonic() + 20
        while request.is_alive() and time.monotonic() < deadline:
            for pid in backends_waiting_on_a_lock(url, "customer"):
                psql(url, f"SELECT pg_terminate_backend({pid})")
            request.join(0.1)
    finally:
        holder.close()
    assert not request.is_alive(), "the read was never answered"
    r = answer["r"]
    assert r.status == 503 and r.codes() == ["SERVICE_UNAVAILABLE"] and "data" not in r.json, r.raw
    assert_no_internals(r)
    ok = server.gql("{ customers(first: 1) { totalCount } }", key=key(shop, label="read"))
    assert ok.data["customers"]["totalCount"] == 30  # the pool connected again by itself


# ------------------------------------------------------------------ order of checks

def test_custom_data_is_checked_last_after_the_split(shop):
    """README, "Credit notes": customData is checked last, after the split (RULES.md section 4's
    order: invoice, state, amount, reason, creditable amount, destination and split; then
    customData). With a bad customData every earlier failure still wins, with its own message."""
    invoice, total, payment = paid_invoice(shop)
    unpaid, _ = unpaid_invoice(shop)
    bad = ["not an object", 5, True, [1, 2]]
    cases = [
        ({"amount": 0}, "BAD_USER_INPUT", "amount"),
        ({"reason": " "}, "BAD_USER_INPUT", "reason"),
        ({"amount": total + 1, "refundDestination": "CREDITS"}, "AMOUNT_EXCEEDS_CREDITABLE", None),
        ({}, "REFUND_DESTINATION_REQUIRED", None),
        ({"refundDestination": "ORIGINAL_PAYMENT_METHOD", "refundSplit": [{"paymentId": payment, "amount": 4}]},
         "REFUND_SPLIT_MISMATCH", None),
        ({"refundDestination": "ORIGINAL_PAYMENT_METHOD", "refundSplit": [{"paymentId": payment, "amount": 0}]},
         "BAD_USER_INPUT", "refundSplit"),
        ({"refundDestination": "ORIGINAL_PAYMENT_METHOD", "refundSplit": [{"paymentId": payment, "amount": total + 1}],
          "amount": total}, "AMOUNT_EXCEEDS_REFUNDABLE", None),
        ({"invoiceId": unpaid, "refundDestination": "ORIGINAL_PAYMENT_METHOD",
          "refundSplit": [{"paymentId": payment, "amount": 10}]}, "REFUND_SPLIT_MISMATCH", None),  # nothing to refund
    ]
    for custom in bad:
        for change, expected, word in cases:
            fields = dict({"invoiceId": invoice, "amount": 10, "reason": "r", "customData": custom}, **change)
            r = create(shop, **fields)
            assert code(r) == expected, (custom, change, r.raw)
            if word:
                assert word in r.errors[0]["message"] and "customData" not in r.errors[0]["message"], r.raw
        # Everything else right: now customData is what is wrong.
        r = create(shop, invoiceId=invoice, amount=10, reason="r", refundDestination="CREDITS", customData=custom)
        assert code(r) == "BAD_USER_INPUT" and "customData" in r.errors[0]["message"], (custom, r.raw)
    assert psql(shop["url"], f"SELECT count(*) FROM credit_note WHERE invoice_id IN ('{invoice}', '{unpaid}')") == "0"
    r = create(shop, invoiceId=invoice, amount=10, reason="r", refundDestination="CREDITS", customData={"ok": [1, {"b": None}]})
    assert r.data["createCreditNote"]["creditNote"]["customData"] == {"ok": [1, {"b": None}]}
    r = create(shop, invoiceId=invoice, amount=10, reason="r", refundDestination="CREDITS", customData=None)
    assert code(r) is None and r.data["createCreditNote"]["creditNote"]["customData"] is None


# ------------------------------------------------------------------ retries

def database_name(url):
    return re.search(r"dbname=(\S+)", url).group(1)


def traced_attempts(server, function):
    return sum(1 for line in server.log if line.startswith("billgraph: trace: ") and function in line)


def test_a_mutation_chosen_as_a_deadlock_victim_is_retried_and_succeeds_once():
    """README, "Mutations": the service retries a transaction that fails with a deadlock. psql
    holds the customer's row; the refund locks the payment and waits for the customer; psql
    then asks for the payment: a cycle. The refund's backend, whose deadlock_timeout (5 s) is
    the shorter, finds it and is rolled back; the service runs the refund again at once.

    The retry is so quick that it usually takes the payment again before psql's waiting
    backend wakes up, which makes the same cycle again (and psql's wait starts anew, so a
    lock_timeout would not end it). psql's statement therefore gives up 7 s after it was
    sent (statement_timeout): after the first deadlock (5 s after the refund began to wait,
    which was just before psql asked) and before the retry's own check (5 s after it began
    to wait), and psql's transaction lets go. Either way the refund runs exactly twice and
    succeeds once."""
    opened = open_data(customers=3, seed_value=16)
    url = opened["url"]
    psql(url, f"ALTER DATABASE {database_name(url)} SET deadlock_timeout = '5s'")  # the server's connections
    server = Server(url, "--loops", "1", env={"BILLGRAPH_TRACE_SQL": "1"})
    holder = PsqlSession(url)
    org = opened["model"].orgs[0]
    payment, customer, refunded = psql(url, f"SELECT id || '|' || customer_id || '|' || amount_refunded FROM payment "
                                            f"WHERE organisation_id = '{org}' AND status = 'SUCCEEDED' "
                                            "AND amount - amount_refunded >= 10 ORDER BY id LIMIT 1").split("|")
    answer = {}
    try:
        holder.run(f"BEGIN; SET LOCAL deadlock_timeout = '60s'; SELECT 1 FROM customer WHERE id = '{customer}' FOR UPDATE;")
        request = threading.Thread(target=lambda: answer.update(r=server.gql(
            REFUND, {"p": payment, "amount": 7}, key=opened["keys"][(1, "full")])))
        request.start()
        wait_until(lambda: backends_waiting_on_a_lock(url, "bg_refund_payment"), 20, "the refund never waited")
        cycle = holder.wait(holder.send(f"SET LOCAL statement_timeout = '7s'; "
                                        f"SELECT 'payment locked' FROM payment WHERE id = '{payment}' FOR UPDATE;"))
        # Granted (psql won the payment from the retry), or given up while the retry held it.
        assert cycle == ["payment locked"] or any("statement timeout" in line for line in cycle), cycle
        holder.run("ROLLBACK;")
        request.join(20)
    finally:
        holder.close()
        server.stop()
    r = answer["r"]
    assert not r.errors, r.raw
    assert r.data["refundPayment"]["payment"]["amountRefunded"] == int(refunded) + 7
    wait_until(lambda: "stopped" in server.log_text(), 5, "the server's last line")  # its trace is written before
    assert traced_attempts(server, "bg_refund_payment") == 2, server.log_text()
    assert psql(url, f"SELECT count(*) FROM refund WHERE payment_id = '{payment}' AND amount = 7") == "1"
    assert psql(url, f"SELECT amount_refunded FROM payment WHERE id = '{payment}'") == str(int(refunded) + 7)


def test_a_mutation_that_fails_to_serialize_is_retried_and_succeeds_once():
    """The same for a serialization failure. Mutations run under READ COMMITTED, where
    PostgreSQL does not raise one, so this database runs them under REPEATABLE READ: the
    refund's snapshot is taken, it waits for the payment psql has updated, psql commits,
    and the refund fails to serialize (SQLSTATE 40001); tried again, it succeeds."""
    opened = open_data(customers=3, seed_value=17)
    url = opened["url"]
    psql(url, f"ALTER DATABASE {database_name(url)} SET default_transaction_isolation = 'repeatable read'")
    server = Server(url, "--loops", "1", env={"BILLGRAPH_TRACE_SQL": "1"})
    holder = PsqlSession(url)
    org = opened["model"].orgs[0]
    payment, refunded = psql(url, f"SELECT id || '|' || amount_refunded FROM payment WHERE organisation_id = '{org}' "
                                  "AND status = 'SUCCEEDED' AND amount - amount_refunded >= 10 ORDER BY id LIMIT 1").split("|")
    answer = {}
    try:
        holder.run(f"BEGIN; UPDATE payment SET description = 'touched' WHERE id = '{payment}';")
        request = threading.Thread(target=lambda: answer.update(r=server.gql(
            REFUND, {"p": payment, "amount": 3}, key=opened["keys"][(1, "full")])))
        request.start()
        wait_until(lambda: backends_waiting_on_a_lock(url, "bg_refund_payment"), 20, "the refund never waited")
        holder.run("COMMIT;")
        request.join(20)
    finally:
        holder.close()
        server.stop()
    r = answer["r"]
    assert not r.errors, r.raw
    assert r.data["refundPayment"]["payment"]["amountRefunded"] == int(refunded) + 3
    wait_until(lambda: "stopped" in server.log_text(), 5, "the server's last line")  # its trace is written before
    assert traced_attempts(server, "bg_refund_payment") == 2, server.log_text()
    assert psql(url, f"SELECT count(*) || '|' || max(p.description) FROM refund r JOIN payment p ON p.id = r.payment_id "
                     f"WHERE r.payment_id = '{payment}' AND r.amount = 3") == "1|touched"


def test_a_mutation_that_conflicts_five_times_is_unavailable_and_still_says_where_the_primary_was():
    """README, "Mutations": a transaction is tried five times. Here every attempt fails to
    serialize: this database has a trigger on refund that raises SQLSTATE 40001, what
    PostgreSQL raises for a serialization failure (the test above makes a real one; making
    five in a row by handing a row from one psql session to the next races the service's
    immediate retry). Each attempt counts itself in a sequence, which a rollback does not
    undo. The answer says SERVICE_UNAVAILABLE, nothing is applied, and it still carries
    Billgraph-Commit-LSN (RULES.md section 9: every mutation response)."""
    opened = open_data(customers=3, seed_value=18)
    url = opened["url"]
    psql(url, "CREATE SEQUENCE refund_attempt; "
              "CREATE FUNCTION fail_to_serialize() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
              "PERFORM nextval('refund_attempt'); "
              "RAISE EXCEPTION 'could not serialize access' USING ERRCODE = 'serialization_failure'; END $$; "
              "CREATE TRIGGER fail_to_serialize BEFORE INSERT ON refund FOR EACH ROW EXECUTE FUNCTION fail_to_serialize();")
    server = Server(url, "--loops", "1")
    org = opened["model"].orgs[0]
    payment, refunded = psql(url, f"SELECT id || '|' || amount_refunded FROM payment WHERE organisation_id = '{org}' "
                                  "AND status = 'SUCCEEDED' AND amount - amount_refunded >= 10 ORDER BY id LIMIT 1").split("|")
    try:
        r = server.gql(REFUND, {"p": payment, "amount": 3}, key=opened["keys"][(1, "full")])
    finally:
        server.stop()
    assert r.codes() == ["SERVICE_UNAVAILABLE"] and "conflicted" in r.errors[0]["message"], r.raw
    assert_no_internals(r)
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", r.headers.get("billgraph-commit-lsn", "")), r.headers
    assert psql(url, "SELECT last_value FROM refund_attempt") == "5"
    assert psql(url, f"SELECT amount_refunded FROM payment WHERE id = '{payment}'") == refunded
    assert psql(url, f"SELECT count(*) FROM refund WHERE payment_id = '{payment}' AND amount = 3") == "0"
