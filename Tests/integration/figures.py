"""Every figure of RULES.md section 3 recomputed from the raw rows with SQL written
independently of the service's own maintenance, and compared with what the API answers."""
from conftest import psql

RAW_INVOICE_FIGURES = """
SELECT i.id, i.total, i.base_status,
  COALESCE((SELECT sum(a.amount) FROM payment_application a JOIN payment p ON p.id = a.payment_id
            WHERE a.invoice_id = i.id AND p.status = 'SUCCEEDED'), 0),
  COALESCE((SELECT sum(n.amount) FROM credit_note n WHERE n.invoice_id = i.id AND n.status = 'ISSUED'), 0),
  COALESCE((SELECT sum(n.credits_returned + n.amount_refunded + n.amount_repaid_externally)
            FROM credit_note n WHERE n.invoice_id = i.id AND n.status = 'ISSUED'), 0)
FROM invoice i WHERE i.id = ANY('{%s}'::uuid[])
"""

RAW_PAYMENT_FIGURES = """
SELECT p.id, p.amount, p.status,
  COALESCE((SELECT sum(r.amount) FROM refund r WHERE r.payment_id = p.id), 0),
  COALESCE((SELECT sum(a.amount) FROM payment_application a WHERE a.payment_id = p.id), 0)
FROM payment p WHERE p.id = ANY('{%s}'::uuid[])
"""

RAW_CUSTOMER_FIGURES = """
SELECT c.id, c.opening_credit_balance
  + COALESCE((SELECT sum(n.credits_returned) FROM credit_note n WHERE n.customer_id = c.id AND n.status = 'ISSUED'), 0),
  COALESCE((SELECT sum(i.total) FROM invoice i WHERE i.customer_id = c.id AND i.base_status = 'OPEN'), 0),
  COALESCE((SELECT sum(p.amount) FROM payment p WHERE p.customer_id = c.id AND p.status = 'SUCCEEDED'), 0),
  COALESCE((SELECT sum(r.amount) FROM refund r JOIN payment p ON p.id = r.payment_id
            WHERE p.customer_id = c.id AND p.status = 'SUCCEEDED'), 0),
  COALESCE((SELECT sum(n.amount) FROM credit_note n WHERE n.customer_id = c.id AND n.status = 'ISSUED'), 0),
  COALESCE((SELECT string_agg(i.id::text, ',') FROM invoice i WHERE i.customer_id = c.id AND i.base_status = 'OPEN'), '')
FROM customer c WHERE c.id = ANY('{%s}'::uuid[])
"""


def rows(url, sql, ids):
    out = psql(url, sql % ",".join(ids))
    return [line.split("|") for line in out.splitlines() if line]


def expected_invoices(url, ids):
    result = {}
    for iid, total, base, paid, credited, returned in rows(url, RAW_INVOICE_FIGURES, ids):
        total, paid, credited, returned = int(total), int(paid), int(credited), int(returned)
        balance = max(0, total - paid - credited + returned)
        if base in ("DRAFT", "VOID"):
            status = base
        elif balance == 0:
            status = "PAID"
        elif total - balance == 0:
            status = "OPEN"
        else:
            status = "PARTIALLY_PAID"
        result[iid] = {"amountPaid": paid, "amountCredited": credited, "amountReturned": returned,
                       "balance": balance, "status": status}
    return result


def expected_payments(url, ids):
    result = {}
    for pid, amount, status, refunded, applied in rows(url, RAW_PAYMENT_FIGURES, ids):
        amount, refunded, applied = int(amount), int(refunded), int(applied)
        result[pid] = {"amountRefunded": refunded,
                       "refundableAmount": amount - refunded if status == "SUCCEEDED" else 0,
                       "amountUnapplied": amount - applied}
    return result


def expected_customers(url, ids):
    result = {}
    for cid, balance, invoiced, paid, refunded, credited, invoices in rows(url, RAW_CUSTOMER_FIGURES, ids):
        balances = expected_invoices(url, invoices.split(",")) if invoices else {}
        result[cid] = {"creditBalance": int(balance),
                       "totals": {"invoiced": int(invoiced), "paid": int(paid), "refunded": int(refunded),
                                  "credited": int(credited),
                                  "outstanding": sum(f["balance"] for f in balances.values())}}
    return result


def assert_figures_match(server, key, url, invoice_ids=(), payment_ids=(), customer_ids=()):
    """Asks the API for each object and compares with the raw-row computation."""
    for iid, want in expected_invoices(url, list(invoice_ids)).items():
        r = server.gql("query($id: ID!) { invoice(id: $id) { amountPaid amountCredited amountReturned balance status } }",
                       {"id": iid}, key=key)
        assert r.data["invoice"] == want, (iid, r.data, want)
    for pid, want in expected_payments(url, list(payment_ids)).items():
        r = server.gql("query($id: ID!) { payment(id: $id) { amountRefunded refundableAmount amountUnapplied } }",
                       {"id": pid}, key=key)
        assert r.data["payment"] == want, (pid, r.data, want)
    for cid, want in expected_customers(url, list(customer_ids)).items():
        r = server.gql("query($id: ID!) { customer(id: $id) { creditBalance totals { invoiced paid refunded credited outstanding } } }",
                       {"id": cid}, key=key)
        assert r.data["customer"] == want, (cid, r.data, want)
