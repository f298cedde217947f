"""An independent model of a billgraph dataset: reads the JSON Lines file and computes
every figure of RULES.md section 3 and every list order of section 2 in plain Python,
so the service's answers can be checked against something it did not compute."""
import json
from collections import defaultdict


def _order(rows, date_key):
    return sorted(rows, key=lambda r: (r[date_key], r["id"]))


class Model:
    def __init__(self, path):
        self.orgs = []
        self.customers = {}
        self.invoices = {}
        self.payments = {}
        self.refunds = {}
        self.applications = []  # (payment, invoice, amount)
        with open(path, encoding="utf-8") as f:
            for line in f:
                obj = json.loads(line)
                kind = obj.pop("type")
                if kind == "organisation":
                    self.orgs.append(obj["id"])
                elif kind == "customer":
                    self.customers[obj["id"]] = obj
                elif kind == "invoice":
                    self.invoices[obj["id"]] = obj
                elif kind == "payment":
                    self.payments[obj["id"]] = obj
                    for a in obj.get("applications", []):
                        self.applications.append((obj["id"], a["invoice_id"], a["amount"]))
                elif kind == "refund":
                    self.refunds[obj["id"]] = obj
        self.apps_by_invoice = defaultdict(list)
        self.apps_by_payment = defaultdict(list)
        for p, i, amount in self.applications:
            self.apps_by_invoice[i].append((p, amount))
            self.apps_by_payment[p].append((i, amount))
        self.refunds_by_payment = defaultdict(list)
        for r in self.refunds.values():
            self.refunds_by_payment[r["payment_id"]].append(r)
        self.invoices_by_customer = defaultdict(list)
        for i in self.invoices.values():
            self.invoices_by_customer[i["customer_id"]].append(i)

    # --- section 3 figures -------------------------------------------------------------

    def amount_paid(self, invoice_id):
        return sum(a for p, a in self.apps_by_invoice[invoice_id] if self.payments[p]["status"] == "succeeded")

    def balance(self, invoice_id):
        inv = self.invoices[invoice_id]
        return max(0, inv["total"] - self.amount_paid(invoice_id))

    def invoice_status(self, invoice_id):
        inv = self.invoices[invoice_id]
        if inv["status"] in ("draft", "void"):
            return inv["status"].upper()
        balance = self.balance(invoice_id)
        if balance == 0:
            return "PAID"
        if inv["total"] - balance == 0:
            return "OPEN"
        return "PARTIALLY_PAID"

    def amount_refunded(self, payment_id):
        return sum(r["amount"] for r in self.refunds_by_payment[payment_id])

    def refundable(self, payment_id):
        p = self.payments[payment_id]
        return p["amount"] - self.amount_refunded(payment_id) if p["status"] == "succeeded" else 0

    def customer_totals(self, customer_id):
        invs = [i for i in self.invoices_by_customer[customer_id] if i["status"] == "open"]
        pays = [p for p in self.payments.values() if p["customer_id"] == customer_id and p["status"] == "succeeded"]
        return {
            "invoiced": sum(i["total"] for i in invs),
            "paid": sum(p["amount"] for p in pays),
            "refunded": sum(self.amount_refunded(p["id"]) for p in pays),
            "credited": 0,
            "outstanding": sum(self.balance(i["id"]) for i in invs),
        }

    # --- section 2 orders ---------------------------------------------------------------

    def customers_of(self, org):
        return _order([c for c in self.customers.values() if c["organisation_id"] == org], "created_at")

    def invoices_of(self, org):
        return _order([i for i in self.invoices.values() if i["organisation_id"] == org], "issued_on")

    def invoices_of_customer(self, customer_id, newest_first=False):
        rows = _order(self.invoices_by_customer[customer_id], "issued_on")
        return rows[::-1] if newest_first else rows

    def payments_of_invoice(self, invoice_id):
        return _order([self.payments[p] for p, _ in self.apps_by_invoice[invoice_id]], "received_on")

    def refunds_of_payment(self, payment_id):
        return _order(self.refunds_by_payment[payment_id], "refunded_on")


def _months(first, last):
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        yield y, m
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def aging(model, org, as_of, currency, balance=None, status=None):
    """arAging from the model: OPEN and PARTIALLY_PAID invoices by days past due. After
    credit notes, `balance` and `status` (of an invoice id) come from the raw facts."""
    import datetime
    balance = balance or model.balance
    status = status or model.invoice_status
    buckets = {"current": 0, "days1To30": 0, "days31To60": 0, "days61To90": 0, "over90": 0}
    day = datetime.date.fromisoformat(as_of)
    for inv in model.invoices_of(org):
        if model.customers[inv["customer_id"]]["currency"] != currency:
            continue
        if status(inv["id"]) not in ("OPEN", "PARTIALLY_PAID"):
            continue
        owed = balance(inv["id"])
        late = (day - datetime.date.fromisoformat(inv["due_on"])).days if inv.get("due_on") else 0
        key = ("current" if late <= 0 else "days1To30" if late <= 30 else "days31To60" if late <= 60
               else "days61To90" if late <= 90 else "over90")
        buckets[key] += owed
    return dict(asOf=as_of, currency=currency, **buckets, total=sum(buckets.values()))


def monthly(model, org, currency, first, last):
    import datetime
    rows = []
    currency_of = lambda customer_id: model.customers[customer_id]["currency"]
    for y, m in _months(datetime.date.fromisoformat(first), datetime.date.fromisoformat(last)):
        prefix = f"{y:04d}-{m:02d}"
        rows.append({
            "month": f"{prefix}-01",
            "invoiced": sum(i["total"] for i in model.invoices.values() if i["organisation_id"] == org
                            and i["status"] == "open" and i["issued_on"].startswith(prefix)
                            and currency_of(i["customer_id"]) == currency),
            "received": sum(p["amount"] for p in model.payments.values() if p["organisation_id"] == org
                            and p["status"] == "succeeded" and p["received_on"].startswith(prefix)
                            and currency_of(p["customer_id"]) == currency),
            "refunded": sum(r["amount"] for r in model.refunds.values() if r["organisation_id"] == org
                            and r["refunded_on"].startswith(prefix)
                            and currency_of(model.payments[r["payment_id"]]["customer_id"]) == currency),
            "credited": 0,
        })
    return rows
