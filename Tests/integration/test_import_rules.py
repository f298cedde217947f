"""The importer's rules across objects (schema/DATASET.md): every object's organisation is
the organisation of the objects it names, invoice numbers and external ids are unique in an
organisation (not across them), and payments apply only to open invoices of their customer.
Within one file and against what is already stored, a broken line stops the import with its
number and the reason, and nothing of the file is stored."""
import json
import os
import tempfile
import uuid

import pytest

from conftest import create_database, psql, run_cli, seed

COUNTS = "SELECT (SELECT count(*) FROM organisation) || ',' || (SELECT count(*) FROM customer) || ',' || " \
         "(SELECT count(*) FROM invoice) || ',' || (SELECT count(*) FROM payment) || ',' || (SELECT count(*) FROM refund)"


@pytest.fixture(scope="module")
def two_orgs():
    path = os.path.join(tempfile.mkdtemp(), "data.jsonl")
    seed(path, customers=4, orgs=2, seed_value=21)
    with open(path) as f:
        return [json.loads(line) for line in f]


def write(lines):
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    with os.fdopen(fd, "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    return path


def of(lines, kind, org=None, **where):
    """The objects of a kind, of the n-th organisation (1-based), matching `where`."""
    orgs = [o["id"] for o in lines if o["type"] == "organisation"]
    return [o for o in lines if o["type"] == kind and (org is None or o["organisation_id"] == orgs[org - 1])
            and all(o.get(k) == v for k, v in where.items())]


def new_id():
    return str(uuid.uuid4())


def invoice_line(org, customer, number, status="open"):
    return {"type": "invoice", "id": new_id(), "organisation_id": org, "customer_id": customer, "number": number,
            "status": status, "issued_on": "2025-02-01", "total": 1000, "created_at": "2025-02-01T00:00:00Z"}


def payment_line(org, customer, applications, amount=1000):
    return {"type": "payment", "id": new_id(), "organisation_id": org, "customer_id": customer, "mode": "cash",
            "status": "succeeded", "amount": amount, "received_on": "2025-02-02", "created_at": "2025-02-02T00:00:00Z",
            "applications": applications}


def cases(lines):
    """(name, extra lines to append, the reason the last of them is refused)."""
    (org1, org2) = [o["id"] for o in lines if o["type"] == "organisation"][:2]
    c1, c1b = of(lines, "customer", 1)[:2]
    c2 = of(lines, "customer", 2)[0]
    inv1 = of(lines, "invoice", 1, status="open")[0]
    inv2 = of(lines, "invoice", 2, status="open")[0]
    pay2 = next(p for p in of(lines, "payment", 2, status="succeeded") if p["amount"] > 0)
    mine = invoice_line(org1, c1["id"], "NEW-1")
    other_customers = invoice_line(org1, c1b["id"], "NEW-2")
    return [
        ("invoice of another organisation's customer", [invoice_line(org1, c2["id"], "X-1")], "belongs to another organisation"),
        ("payment of another organisation's customer", [payment_line(org1, c2["id"], [])], "belongs to another organisation"),
        ("application to another organisation's invoice",
         [payment_line(org1, c1["id"], [{"invoice_id": inv2["id"], "amount": 1}])], "belongs to another organisation"),
        ("refund of another organisation's payment",
         [{"type": "refund", "id": new_id(), "organisation_id": org1, "payment_id": pay2["id"], "amount": 1,
           "refunded_on": "2025-02-03", "created_at": "2025-02-03T00:00:00Z"}], "belongs to another organisation"),
        ("an organisation that does not exist",
         [dict(invoice_line(org1, c1["id"], "X-2"), organisation_id="00000000-0000-4000-8000-000000000009")],
         "is not defined"),
        ("an invoice number used in the organisation", [invoice_line(org1, c1["id"], inv1["number"])], "already used in this organisation"),
        ("an invoice number used twice in the file", [mine, invoice_line(org1, c1b["id"], "NEW-1")], "already used in this organisation"),
        ("an external id used in the organisation",
         [{"type": "customer", "id": new_id(), "organisation_id": org1, "name": "Twin", "currency": "USD",
           "created_at": "2025-01-01T00:00:00Z", "external_id": next(c["external_id"] for c in of(lines, "customer", 1)
                                                                       if c.get("external_id"))}],
         "already used in this organisation"),
        ("application to a draft invoice", [dict(mine, status="draft"),
                                            payment_line(org1, c1["id"], [{"invoice_id": mine["id"], "amount": 5}])], "is not open"),
        ("application to a void invoice", [dict(mine, status="void"),
                                           payment_line(org1, c1["id"], [{"invoice_id": mine["id"], "amount": 5}])], "is not open"),
        ("application to another customer's invoice", [other_customers,
                                                       payment_line(org1, c1["id"], [{"invoice_id": other_customers["id"], "amount": 5}])],
         "belongs to another customer"),
        # The payment in between is good as the file reads up to it: only the second
        # definition is broken (summed against both definitions, it looked paid twice).
        ("an invoice defined again after a payment to it",
         [mine, payment_line(org1, c1["id"], [{"invoice_id": mine["id"], "amount": 600}]), dict(mine, number="NEW-3")],
         f"id {mine['id']} was already used on line"),
    ]


@pytest.mark.parametrize("case", range(12))
def test_a_line_breaking_a_rule_across_objects_stops_the_import(two_orgs, case):
    name, extra, reason = cases(two_orgs)[case]
    lines = two_orgs + extra
    url = create_database()
    result = run_cli("import", write(lines), url=url, check=False)
    assert result.returncode == 1, (name, result.stderr)
    assert f"line {len(lines)}:" in result.stderr and reason in result.stderr, (name, result.stderr)
    assert "nothing was stored" in result.stderr
    assert psql(url, COUNTS) == "0,0,0,0,0"


@pytest.mark.parametrize("case", range(12))
def test_the_same_rules_hold_against_what_is_already_stored(two_orgs, case):
    """The same lines in a second file, after the first was imported: the names resolve
    against the store, and the rules are the same. Nothing of the second file is stored."""
    name, extra, reason = cases(two_orgs)[case]
    url = create_database()
    run_cli("import", write(two_orgs), url=url)
    before = psql(url, COUNTS)
    result = run_cli("import", write(extra), url=url, check=False)
    assert result.returncode == 1, (name, result.stderr)
    assert f"line {len(extra)}:" in result.stderr and reason in result.stderr, (name, result.stderr)
    assert psql(url, COUNTS) == before


def test_numbers_and_external_ids_are_unique_per_organisation_only(two_orgs):
    (org1, org2) = [o["id"] for o in two_orgs if o["type"] == "organisation"][:2]
    inv1 = of(two_orgs, "invoice", 1)[0]
    ext = next(c["external_id"] for c in of(two_orgs, "customer", 1) if c.get("external_id"))
    c2 = of(two_orgs, "customer", 2)[0]
    url = create_database()
    extra = [invoice_line(org2, c2["id"], inv1["number"]),
             {"type": "customer", "id": new_id(), "organisation_id": org2, "name": "Twin", "currency": "USD",
              "created_at": "2025-01-01T00:00:00Z", "external_id": ext}]
    result = run_cli("import", write(two_orgs + extra), url=url, check=False)
    assert result.returncode == 0, result.stderr
    assert psql(url, f"SELECT count(DISTINCT organisation_id) FROM invoice WHERE number = '{inv1['number']}'") == "2"
    assert psql(url, f"SELECT count(DISTINCT organisation_id) FROM customer WHERE external_id = '{ext}'") == "2"


def test_an_organisation_is_defined_before_the_first_line_that_names_it(two_orgs):
    """A customer of an organisation the file defines only on the next line is refused at
    the customer's line; the same two lines the other way round are imported."""
    org = new_id()
    customer = {"type": "customer", "id": new_id(), "organisation_id": org, "name": "Early", "currency": "EUR",
                "created_at": "2025-01-01T00:00:00Z"}
    definition = {"type": "organisation", "id": org, "name": "Late"}
    url = create_database()
    lines = two_orgs + [customer, definition]
    result = run_cli("import", write(lines), url=url, check=False)
    assert result.returncode == 1, result.stderr
    assert f"line {len(lines) - 1}: organisation {org} is not defined on an earlier line nor stored" in result.stderr, \
        result.stderr
    assert psql(url, COUNTS) == "0,0,0,0,0"
    result = run_cli("import", write(two_orgs + [definition, customer]), url=url, check=False)
    assert result.returncode == 0, result.stderr
    assert psql(url, f"SELECT organisation_id FROM customer WHERE id = '{customer['id']}'") == org
