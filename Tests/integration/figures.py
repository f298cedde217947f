"""Every figure of RULES.md section 3 recomputed from raw facts only, and compared with
what the API answers.

The facts: the imported rows (invoices, payments and their applications, opening credit
balances), the refund rows, each credit note's own facts (its invoice, amount, number,
status and times) and what the test asked each note for (its destination and split,
recorded with `note_sent`). The split of every note (what it adjusts, and where the rest
goes) is worked out here, in Python, from the invoice's state before the note: no column
that the service maintains is read, so a note that stores a wrong split consistently
still fails here.

Order of events: credit notes are replayed in number order within their organisation
(the number is the commit order); a void comes right after the notes recorded before it
(`note_voided`); a direct refund comes before the notes of its second and after those
of earlier seconds (times are kept to the second: a refund made in the same second as
a note counts as made before it, which is how the tests make them)."""
from collections import defaultdict

from conftest import psql
from model import Model

# Credit note id -> what the test asked for: {"destination": ..., "split": [(payment, amount)] or None}.
NOTES_SENT = {}
# What the tests did, in order: ("note", id) and ("void", id).
JOURNAL = []


def note_sent(note_id, note_input):
    """Records what a created credit note was asked for (from the mutation's input)."""
    split = note_input.get("refundSplit")
    if note_id not in NOTES_SENT:
        JOURNAL.append(("note", note_id))
    NOTES_SENT[note_id] = {"destination": note_input.get("refundDestination"),
                           "split": [(e["paymentId"], e["amount"]) for e in split] if split else None}


def note_voided(note_id):
    """Records that a test voided a credit note."""
    JOURNAL.append(("void", note_id))


def _table(url, sql):
    return [line.split("|") for line in psql(url, sql).splitlines() if line]


class Facts:
    """The raw facts of a database, and the figures they imply."""

    def __init__(self, url):
        self.invoices = {i: {"customer": c, "total": int(t), "base": b}
                         for i, c, t, b in _table(url, "SELECT id, customer_id, total, base_status FROM invoice")}
        self.payments = {p: {"customer": c, "amount": int(a), "status": s, "received_on": d}
                         for p, c, a, s, d in _table(url, "SELECT id, customer_id, amount, status, received_on FROM payment")}
        self.applied = defaultdict(int)  # (payment, invoice) -> amount
        for p, i, a in _table(url, "SELECT payment_id, invoice_id, amount FROM payment_application"):
            self.applied[(p, i)] += int(a)
        self.opening = {c: int(b) for c, b in _table(url, "SELECT id, opening_credit_balance FROM customer")}
        self.refunds = [{"payment": p, "amount": int(a), "note": n or None, "second": int(float(t))}
                        for p, a, n, t in _table(url, "SELECT payment_id, amount, credit_note_id, "
                                                      "extract(epoch FROM created_at) FROM refund")]
        self.notes = [{"id": n, "invoice": i, "customer": c, "amount": int(a), "status": s,
                       "number": int(num.split("-")[1]), "org": o, "second": int(float(t)),
                       "voided_second": int(float(v)) if v else None}
                      for n, i, c, a, s, num, o, t, v in _table(
                          url, "SELECT id, invoice_id, customer_id, amount, status, number, organisation_id, "
                               "extract(epoch FROM created_at), extract(epoch FROM voided_at) FROM credit_note")]
        self._index()
        self._replay()

    def _index(self):
        """The facts grouped by payment and by customer, once: asked per row of a large
        store (`assert_stored_match`), a scan of every fact per row took minutes."""
        self.refunds_of = defaultdict(int)  # payment -> sum of its refunds
        for r in self.refunds:
            self.refunds_of[r["payment"]] += r["amount"]
        self.applied_of = defaultdict(int)  # payment -> sum of its applications
        for (p, _), a in self.applied.items():
            self.applied_of[p] += a
        self.open_invoices_of = defaultdict(list)  # customer -> its OPEN invoices
        for i, inv in self.invoices.items():
            if inv["base"] == "OPEN":
                self.open_invoices_of[inv["customer"]].append(i)
        self.succeeded_of = defaultdict(list)  # customer -> its SUCCEEDED payments
        for p, pay in self.payments.items():
            if pay["status"] == "SUCCEEDED":
                self.succeeded_of[pay["customer"]].append(p)

    # --- the replay ----------------------------------------------------------------------

    def _events(self):
        """(second, rank, org, place, kind, item) in the order they happened (see above)."""
        events = [(r["second"], 0, "", 0, "refund", r) for r in self.refunds if r["note"] is None]
        journal_place = {entry: k for k, entry in enumerate(JOURNAL)}
        by_org = defaultdict(list)
        for n in self.notes:
            by_org[n["org"]].append(n)
        for org, notes in by_org.items():
            notes.sort(key=lambda n: n["number"])
            second = 0
            for place, n in enumerate(notes):
                second = max(second, n["second"])  # numbers never go back in time
                events.append((second, 1, org, 2 * place, "note", n))
            for n in notes:
                if n["status"] != "VOID":
                    continue
                assert ("void", n["id"]) in journal_place, f"credit note {n['id']} was voided without note_voided"
                voided = journal_place[("void", n["id"])]
                before = [k for k, m in enumerate(notes) if journal_place.get(("note", m["id"]), -1) < voided]
                after = max(before + [notes.index(n)])
                events.append((max(e[0] for e in events if e[4] == "note" and e[5] is notes[after]), 1, org,
                               2 * after + 1, "void", n))
        return sorted(events, key=lambda e: e[:4])

    def _replay(self):
        self.paid = defaultdict(int)  # invoice -> applications of SUCCEEDED payments
        for (p, i), a in self.applied.items():
            if self.payments[p]["status"] == "SUCCEEDED":
                self.paid[i] += a
        self.credited = defaultdict(int)
        self.returned = defaultdict(int)
        self.credits = defaultdict(int)  # customer -> credits returned by ISSUED notes
        self.refunded = defaultdict(int)  # payment -> refunded so far
        by_note = defaultdict(lambda: defaultdict(int))  # (payment, invoice) -> refunded by notes of that invoice
        self.note_figures = {}
        self.linked = defaultdict(lambda: defaultdict(int))  # note -> payment -> amount of its refunds
        for r in self.refunds:
            if r["note"]:
                self.linked[r["note"]][r["payment"]] += r["amount"]
        for *_, kind, item in self._events():
            if kind == "refund":
                self.refunded[item["payment"]] += item["amount"]
            elif kind == "note":
                self._issue(item, by_note)
            else:
                f = self.note_figures[item["id"]]
                self.credited[item["invoice"]] -= item["amount"]
                self.returned[item["invoice"]] -= item["amount"] - f["amountAdjusted"]
                self.credits[item["customer"]] -= f["creditsReturned"]

    def balance(self, invoice):
        inv = self.invoices[invoice]
        return max(0, inv["total"] - self.paid[invoice] - self.credited[invoice] + self.returned[invoice])

    def _issue(self, note, by_note):
        invoice, amount = note["invoice"], note["amount"]
        adjusted = min(amount, self.balance(invoice))
        rest = amount - adjusted
        sent = NOTES_SENT.get(note["id"])
        assert sent is not None or rest == 0, f"credit note {note['id']} was not recorded with note_sent"
        destination = sent["destination"] if rest else None
        figures = {"amountAdjusted": adjusted, "creditsReturned": 0, "amountRefunded": 0, "amountRepaidExternally": 0,
                   "repaymentMethod": {None: "INVOICE_ADJUSTED", "CREDITS": "CREDITS", "EXTERNAL": "EXTERNAL_PAYMENT",
                                       "ORIGINAL_PAYMENT_METHOD": "ORIGINAL_PAYMENT_METHOD"}[destination]}
        if destination == "CREDITS":
            figures["creditsReturned"] = rest
            self.credits[note["customer"]] += rest
        elif destination == "EXTERNAL":
            figures["amountRepaidExternally"] = rest
        elif destination == "ORIGINAL_PAYMENT_METHOD":
            figures["amountRefunded"] = rest
            split = sent["split"] or self._oldest_first(invoice, rest, by_note)
            expected = {p: a for p, a in split if a}
            assert dict(self.linked[note["id"]]) == expected, \
                f"credit note {note['id']} refunded {dict(self.linked[note['id']])}, expected {expected}"
            for p, a in expected.items():
                self.refunded[p] += a
                by_note[p][invoice] += a
        self.credited[invoice] += amount
        self.returned[invoice] += rest
        self.note_figures[note["id"]] = figures

    def _oldest_first(self, invoice, rest, by_note):
        """RULES.md section 4: the invoice's SUCCEEDED payments oldest first (receivedOn, then
        id), each giving min(its refundable amount, what it applied to this invoice minus
        what earlier notes of this invoice refunded from it)."""
        payments = sorted((p for (p, i) in self.applied if i == invoice and self.payments[p]["status"] == "SUCCEEDED"),
                          key=lambda p: (self.payments[p]["received_on"], p))
        split = []
        for p in payments:
            can_give = min(self.payments[p]["amount"] - self.refunded[p], self.applied[(p, invoice)] - by_note[p][invoice])
            give = min(rest, max(0, can_give))
            split.append((p, give))
            rest -= give
        assert rest == 0, f"the payments of invoice {invoice} cannot cover a note, yet it was issued"
        return split

    # --- the figures the API must answer ------------------------------------------------

    def invoice(self, invoice):
        inv, balance = self.invoices[invoice], self.balance(invoice)
        if inv["base"] in ("DRAFT", "VOID"):
            status = inv["base"]
        elif balance == 0:
            status = "PAID"
        elif inv["total"] - balance == 0:
            status = "OPEN"
        else:
            status = "PARTIALLY_PAID"
        return {"amountPaid": self.paid[invoice], "amountCredited": self.credited[invoice],
                "amountReturned": self.returned[invoice], "balance": balance, "status": status}

    def payment(self, payment):
        p = self.payments[payment]
        refunded, applied = self.refunds_of[payment], self.applied_of[payment]
        return {"amountRefunded": refunded, "refundableAmount": p["amount"] - refunded if p["status"] == "SUCCEEDED" else 0,
                "amountUnapplied": p["amount"] - applied}

    def customer(self, customer):
        open_invoices, succeeded = self.open_invoices_of[customer], self.succeeded_of[customer]
        return {"creditBalance": self.opening[customer] + self.credits[customer],
                "totals": {"invoiced": sum(self.invoices[i]["total"] for i in open_invoices),
                           "paid": sum(self.payments[p]["amount"] for p in succeeded),
                           "refunded": sum(self.refunds_of[p] for p in succeeded),
                           "credited": sum(n["amount"] for n in self.notes
                                           if n["customer"] == customer and n["status"] == "ISSUED"),
                           "outstanding": sum(self.balance(i) for i in open_invoices)}}

    def notes_of(self, invoice):
        return {n["id"]: self.note_figures[n["id"]] for n in self.notes if n["invoice"] == invoice}


NOTE_FIELDS = "amountAdjusted creditsReturned amountRefunded amountRepaidExternally repaymentMethod"


def assert_figures_match(server, key, url, invoice_ids=(), payment_ids=(), customer_ids=()):
    """Asks the API for each object and compares with the figures of the raw facts,
    the credit notes of each invoice included."""
    assert invoice_ids or payment_ids or customer_ids, "nothing asked, nothing checked"
    facts = Facts(url)
    for iid in invoice_ids:
        r = server.gql("query($id: ID!) { invoice(id: $id) { amountPaid amountCredited amountReturned balance status "
                       f"creditNotes {{ id {NOTE_FIELDS} }} }} }}", {"id": iid}, key=key)
        got = dict(r.data["invoice"])
        notes = {n.pop("id"): n for n in got.pop("creditNotes")}
        assert got == facts.invoice(iid), (iid, got, facts.invoice(iid))
        assert notes == facts.notes_of(iid), (iid, notes, facts.notes_of(iid))
    for pid in payment_ids:
        r = server.gql("query($id: ID!) { payment(id: $id) { amountRefunded refundableAmount amountUnapplied } }",
                       {"id": pid}, key=key)
        assert r.data["payment"] == facts.payment(pid), (pid, r.data, facts.payment(pid))
    for cid in customer_ids:
        r = server.gql("query($id: ID!) { customer(id: $id) { creditBalance totals { invoiced paid refunded credited outstanding } } }",
                       {"id": cid}, key=key)
        assert r.data["customer"] == facts.customer(cid), (cid, r.data, facts.customer(cid))
    return facts


def record_credit_notes(server):
    """Wraps `server.gql` so that every credit note a test creates or voids through it is
    recorded (`note_sent`, `note_voided`). A creating query passes its input as the
    `input` variable, or is the canonical query (which always asks for the original
    payments); both select the note's `id`."""
    plain = server.gql

    def gql(query, variables=None, key=None, operation=None):
        r = plain(query, variables, key=key, operation=operation)
        data = (r.json or {}).get("data") or {}
        created, voided = data.get("createCreditNote"), data.get("voidCreditNote")
        for answer in (created, voided):
            assert not answer or "id" in (answer.get("creditNote") or {}), "select the credit note's id, for figures.py"
        if created:
            canonical = "refundDestination: ORIGINAL_PAYMENT_METHOD" in query
            assert "input" in (variables or {}) or canonical, "pass the note's input as $input, for figures.py"
            note_sent(created["creditNote"]["id"], (variables or {}).get("input", {"refundDestination": "ORIGINAL_PAYMENT_METHOD"}))
        if voided and ("void", voided["creditNote"]["id"]) not in JOURNAL:
            note_voided(voided["creditNote"]["id"])
        return r

    server.gql = gql
    return server


def assert_stored_match(url, facts):
    """Every maintained column of every row equals what the raw facts say (of a store with
    invoices, payments and customers: an empty one would prove nothing)."""
    invoices = _table(url, "SELECT id, amount_paid, amount_credited, amount_returned, balance, status FROM invoice")
    assert invoices and facts.payments and facts.opening, "an empty store proves nothing"
    for iid, paid, credited, returned, balance, status in invoices:
        got = {"amountPaid": int(paid), "amountCredited": int(credited), "amountReturned": int(returned),
               "balance": int(balance), "status": status}
        assert got == facts.invoice(iid), (iid, got, facts.invoice(iid))
    for pid, refunded in _table(url, "SELECT id, amount_refunded FROM payment"):
        assert int(refunded) == facts.payment(pid)["amountRefunded"], (pid, refunded, facts.payment(pid))
    for cid, *columns in _table(url, "SELECT id, credit_balance, total_invoiced, total_paid, total_refunded, "
                                     "total_credited, total_outstanding FROM customer"):
        balance, invoiced, paid, refunded, credited, outstanding = map(int, columns)
        got = {"creditBalance": balance, "totals": {"invoiced": invoiced, "paid": paid, "refunded": refunded,
                                                    "credited": credited, "outstanding": outstanding}}
        assert got == facts.customer(cid), (cid, got, facts.customer(cid))


def _assert_same(got, expected, what):
    """`got == expected` (dicts, or sorted lists), naming a few differences when not."""
    if got == expected:
        return
    if isinstance(got, dict):
        differ = [(k, got.get(k), expected.get(k)) for k in sorted(set(got) | set(expected)) if got.get(k) != expected.get(k)]
    else:
        differ = [("stored only", sorted(set(got) - set(expected))[:3]), ("file only", sorted(set(expected) - set(got))[:3])]
    raise AssertionError(f"{what}: {len(differ)} differences, first {differ[:3]}")


def assert_raw_rows_are_the_file(url, *paths):
    """The store holds exactly the rows of the files (read here with `Model`, not by the
    importer): every id of each kind, and every fact `Facts` reads of them (a customer's
    organisation, external id and opening credit balance; an invoice's customer, total
    and status; a payment's customer, amount and status; each application; a refund's
    payment and amount). With `assert_stored_match`, which checks every maintained figure
    against those facts, an import is then checked against its files alone."""
    models = [Model(path) for path in paths]
    customers = {c["id"]: c for m in models for c in m.customers.values()}
    invoices = {i["id"]: i for m in models for i in m.invoices.values()}
    payments = {p["id"]: p for m in models for p in m.payments.values()}
    refunds = {r["id"]: r for m in models for r in m.refunds.values()}
    assert customers and invoices and payments and refunds, "files without every kind of row prove little"

    def stored(sql):
        return {row[0]: tuple(row[1:]) for row in _table(url, sql)}

    _assert_same(stored("SELECT id, organisation_id, coalesce(external_id, ''), opening_credit_balance FROM customer"),
                 {k: (c["organisation_id"], c.get("external_id") or "", str(c.get("credit_balance", 0)))
                  for k, c in customers.items()}, "customers")
    _assert_same(stored("SELECT id, customer_id, total, base_status FROM invoice"),
                 {k: (i["customer_id"], str(i["total"]), i["status"].upper()) for k, i in invoices.items()}, "invoices")
    _assert_same(stored("SELECT id, customer_id, amount, status FROM payment"),
                 {k: (p["customer_id"], str(p["amount"]), p["status"].upper()) for k, p in payments.items()}, "payments")
    _assert_same(sorted(tuple(row) for row in _table(url, "SELECT payment_id, invoice_id, amount FROM payment_application")),
                 sorted((p, i, str(a)) for m in models for p, i, a in m.applications), "applications")
    _assert_same(stored("SELECT id, payment_id, amount FROM refund"),
                 {k: (r["payment_id"], str(r["amount"])) for k, r in refunds.items()}, "refunds")
