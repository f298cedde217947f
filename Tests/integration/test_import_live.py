"""An import into an organisation that is taking refunds and credit notes at the same
moment (RULES.md section 4: every figure stays what the raw rows say). The importer
recomputes the organisation's figures at its end; it must not write over what the
mutations committed meanwhile."""
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import BIN, PsqlSession, backends_waiting_on_a_lock, open_data, open_world, psql, seed, wait_until
from figures import Facts, assert_figures_match, assert_stored_match, record_credit_notes

REFUND = 'mutation($p: ID!) { refundPayment(input: {paymentId: $p, amount: 1}) { refund { id } } }'
NOTE = """mutation($input: CreateCreditNoteInput!) { createCreditNote(input: $input) { creditNote { id } } }"""


def newcomers(org, customers):
    """A file of new customers with their invoices, payments and refunds, for `org`."""
    path = os.path.join(tempfile.mkdtemp(), "more.jsonl")
    seed(path, customers=customers, orgs=1, seed_value=77)
    out = path + ".moved"
    with open(path) as f, open(out, "w") as moved:
        for line in f:
            row = json.loads(line)
            if row["type"] in ("organisation", "api_key"):
                continue
            row["organisation_id"] = org
            if row["type"] == "invoice":
                row["number"] = "IMP-" + row["number"]
            if row["type"] == "customer" and "external_id" in row:
                row["external_id"] = "imp_" + row["external_id"]
            moved.write(json.dumps(row) + "\n")
    return out


def start_import(path, url):
    """`billgraph import path` into url's database, running; its output is captured."""
    return subprocess.Popen([BIN, "import", path], env=dict(os.environ, BILLGRAPH_DATABASE_URL=url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def released(holder, importers):
    """Ends the holder's transaction, then each import's exit code and standard error."""
    holder.run("ROLLBACK;")
    return [(p.wait(60), p.stderr.read()) for p in importers]


def stopped(holder, importers):
    """Closes the holder and kills every import still running (after a failed wait)."""
    holder.close()
    for p in importers:
        if p.poll() is None:
            p.kill()


def test_an_import_beside_200_refunds_and_50_credit_notes_keeps_every_figure_exact():
    world = open_world(customers=40, seed_value=31)
    server, model, url = record_credit_notes(world["server"]), world["model"], world["url"]
    key = world["keys"][(1, "full")]
    org = model.orgs[0]
    try:
        payments = [p["id"] for p in model.payments.values()
                    if p["organisation_id"] == org and p["status"] == "succeeded" and model.refundable(p["id"]) >= 5000][:20]
        invoices = [i["id"] for i in model.invoices_of(org) if i["status"] == "open" and model.balance(i["id"]) >= 100]
        assert len(payments) == 20 and len(invoices) >= 50
        data = newcomers(org, customers=1500)
        importer = start_import(data, url)
        done = threading.Event()
        counts = {"refunds": 0, "notes": 0}

        def refunds(n):
            # Refunds go on until the import has ended, so that some land while it recomputes.
            k = n
            while counts["refunds"] < 200 or not done.is_set():
                r = server.gql(REFUND, {"p": payments[k % len(payments)]}, key=key)
                assert not r.errors, r.errors
                counts["refunds"] += 1
                k += 8
                time.sleep(0.01)

        def notes(k):
            r = server.gql(NOTE, {"input": {"invoiceId": invoices[k], "amount": 1, "reason": "live",
                                            "refundDestination": "CREDITS"}}, key=key)
            assert not r.errors, r.errors
            counts["notes"] += 1

        with ThreadPoolExecutor(max_workers=12) as pool:
            workers = [pool.submit(refunds, n) for n in range(8)] + [pool.submit(notes, k) for k in range(50)]
            out, err = importer.communicate(timeout=300)
            done.set()
            for w in workers:
                w.result(timeout=120)
        assert importer.returncode == 0, err
        assert counts["refunds"] >= 200 and counts["notes"] == 50
        facts = Facts(url)
        assert_stored_match(url, facts)
        customers = {p["customer_id"] for p in model.payments.values() if p["id"] in payments}
        assert_figures_match(server, key, url, invoice_ids=invoices[:50], payment_ids=payments, customer_ids=customers)
    finally:
        world["server"].stop()


def test_two_imports_into_one_organisation_apply_at_most_an_invoices_total():
    """Two files, each paying the whole rest of one stored invoice: either alone is good, both
    together would pay it twice. Held at the invoice until both have started, the second
    import must check its rules against what the first committed and be refused, naming its
    line; the invoice is paid once."""
    opened = open_data(customers=6, seed_value=43, orgs=1)
    url, org = opened["url"], opened["model"].orgs[0]
    invoice, customer, rest = psql(url, "SELECT id, customer_id, total - amount_paid FROM invoice "
                                        f"WHERE organisation_id = '{org}' AND base_status = 'OPEN' AND amount_paid < total "
                                        "ORDER BY id LIMIT 1").split("|")
    paid_before = int(psql(url, f"SELECT amount_paid FROM invoice WHERE id = '{invoice}'"))
    files = []
    for n in range(2):
        path = os.path.join(tempfile.mkdtemp(), f"payment-{n}.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps({"type": "payment", "id": str(uuid.uuid4()), "organisation_id": org, "customer_id": customer,
                                "mode": "cash", "status": "succeeded", "amount": int(rest), "received_on": "2030-06-01",
                                "created_at": "2030-06-01T09:00:00Z",
                                "applications": [{"invoice_id": invoice, "amount": int(rest)}]}) + "\n")
        files.append(path)
    holder = PsqlSession(url)
    importers = []
    try:
        # Every import that gets past its rules stops at the invoice (its application's
        # foreign key): without a hold on the organisation, both would be past them.
        holder.run(f"BEGIN; SELECT 1 FROM invoice WHERE id = '{invoice}' FOR UPDATE;")
        importers = [start_import(path, url) for path in files]
        wait_until(lambda: len(backends_waiting_on_a_lock(url, "")) == 2, 30, "both imports never waited")
        results = released(holder, importers)
    finally:
        stopped(holder, importers)
    assert sorted(code for code, _ in results) == [0, 1], results
    refused = next(err for code, err in results if code == 1)
    assert "line 1:" in refused and f"payments applied to invoice {invoice} would exceed its total" in refused, refused
    assert int(psql(url, f"SELECT amount_paid FROM invoice WHERE id = '{invoice}'")) == paid_before + int(rest)
    assert psql(url, f"SELECT count(*) FROM payment_application WHERE invoice_id = '{invoice}' "
                     "AND payment_received_on = '2030-06-01'") == "1"


def test_two_imports_into_two_organisations_of_one_new_id_refuse_the_second_by_its_line():
    """Ids are unique across organisations, and imports into different organisations do not
    take turns: two files that both define customer X check their rules side by side, and
    neither sees the other's X. Held until the second is writing, and the first then
    committed, the second must still be refused by its line (README, "Imports beside live
    mutations"), not by the store's key, and store nothing."""
    opened = open_data(customers=4, seed_value=47, orgs=2)
    url, orgs = opened["url"], opened["model"].orgs
    shared = str(uuid.uuid4())
    files = []
    for n, org in enumerate(orgs):
        path = os.path.join(tempfile.mkdtemp(), f"customers-{n}.jsonl")
        with open(path, "w") as f:
            for line, customer in enumerate([str(uuid.uuid4()), shared], start=1):
                f.write(json.dumps({"type": "customer", "id": customer, "organisation_id": org, "name": f"Side {n}.{line}",
                                    "currency": "EUR", "created_at": "2030-06-01T09:00:00Z"}) + "\n")
        files.append(path)
    customers_before = int(psql(url, "SELECT count(*) FROM customer"))
    holder = PsqlSession(url)
    importers = []
    try:
        # api_key is the last table an import writes: the first import stops there with
        # its X written, the second then stops at X (the store's key waits for the first).
        holder.run("BEGIN; LOCK TABLE api_key IN SHARE MODE;")
        importers.append(start_import(files[0], url))
        wait_until(lambda: len(backends_waiting_on_a_lock(url, "INSERT INTO api_key")) == 1, 30, "the first import never waited")
        importers.append(start_import(files[1], url))
        wait_until(lambda: len(backends_waiting_on_a_lock(url, "INSERT INTO customer")) == 1, 30,
                   "the second import never waited for the first one's customer")
        results = released(holder, importers)
    finally:
        stopped(holder, importers)
    assert results[0][0] == 0, results[0]
    code, err = results[1]
    assert code == 1, results[1]
    assert f"line 2: id {shared} is already stored" in err, err
    assert "duplicate key" not in err and "customer_pkey" not in err, err
    assert psql(url, f"SELECT organisation_id FROM customer WHERE id = '{shared}'") == orgs[0]
    assert int(psql(url, "SELECT count(*) FROM customer")) == customers_before + 2
