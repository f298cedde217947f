-- Imports beside live mutations (RULES.md section 4: every write keeps the figures
-- exact). The importer recomputes an organisation's figures after loading it; done in one
-- statement, an UPDATE that waits for a row a refund holds computes its sums from the
-- snapshot it began with, and writes them over the refund's. So the recomputation first
-- takes the rows it will write, in the mutations' own lock order (invoices by id, then
-- payments by id, then the organisation, then customers by id: no deadlock with them),
-- and only then recomputes, each statement seeing every mutation committed before the
-- locks were all held, none of them able to commit after until the import does.
CREATE OR REPLACE FUNCTION bg_recompute_figures(p_org uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM invoice WHERE organisation_id = p_org ORDER BY id FOR UPDATE;
    PERFORM 1 FROM payment WHERE organisation_id = p_org ORDER BY id FOR UPDATE;
    PERFORM 1 FROM organisation WHERE id = p_org FOR UPDATE;
    PERFORM 1 FROM customer WHERE organisation_id = p_org ORDER BY id FOR UPDATE;

    UPDATE payment p
    SET amount_refunded = COALESCE(r.total, 0), amount_applied = COALESCE(a.total, 0)
    FROM payment p0
    LEFT JOIN (SELECT payment_id, sum(amount)::bigint AS total FROM refund WHERE organisation_id = p_org GROUP BY 1) r
           ON r.payment_id = p0.id
    LEFT JOIN (SELECT payment_id, sum(amount)::bigint AS total FROM payment_application WHERE organisation_id = p_org GROUP BY 1) a
           ON a.payment_id = p0.id
    WHERE p.id = p0.id AND p0.organisation_id = p_org
      AND (p.amount_refunded, p.amount_applied) IS DISTINCT FROM (COALESCE(r.total, 0), COALESCE(a.total, 0));

    WITH paid AS (
        SELECT a.invoice_id, sum(a.amount)::bigint AS total
        FROM payment_application a JOIN payment p ON p.id = a.payment_id AND p.status = 'SUCCEEDED'
        WHERE a.organisation_id = p_org GROUP BY 1
    ), notes AS (
        SELECT invoice_id, sum(amount)::bigint AS credited,
               sum(credits_returned + amount_refunded + amount_repaid_externally)::bigint AS returned
        FROM credit_note WHERE organisation_id = p_org AND status = 'ISSUED' GROUP BY 1
    ), figures AS (
        SELECT i.id, COALESCE(paid.total, 0) AS paid, COALESCE(notes.credited, 0) AS credited,
               COALESCE(notes.returned, 0) AS returned,
               greatest(0, i.total - COALESCE(paid.total, 0) - COALESCE(notes.credited, 0) + COALESCE(notes.returned, 0)) AS balance
        FROM invoice i
        LEFT JOIN paid ON paid.invoice_id = i.id
        LEFT JOIN notes ON notes.invoice_id = i.id
        WHERE i.organisation_id = p_org
    )
    UPDATE invoice i
    SET amount_paid = f.paid, amount_credited = f.credited, amount_returned = f.returned, balance = f.balance,
        status = bg_invoice_status(i.base_status, i.total, f.balance)
    FROM figures f
    WHERE i.id = f.id;

    WITH invoices AS (
        SELECT customer_id,
               sum(total) FILTER (WHERE base_status = 'OPEN')::bigint AS invoiced,
               sum(balance) FILTER (WHERE base_status = 'OPEN')::bigint AS outstanding
        FROM invoice WHERE organisation_id = p_org GROUP BY 1
    ), payments AS (
        SELECT customer_id, sum(amount)::bigint AS paid, sum(amount_refunded)::bigint AS refunded
        FROM payment WHERE organisation_id = p_org AND status = 'SUCCEEDED' GROUP BY 1
    ), notes AS (
        SELECT customer_id, sum(amount)::bigint AS credited, sum(credits_returned)::bigint AS credits
        FROM credit_note WHERE organisation_id = p_org AND status = 'ISSUED' GROUP BY 1
    )
    UPDATE customer c
    SET total_invoiced = COALESCE(i.invoiced, 0), total_outstanding = COALESCE(i.outstanding, 0),
        total_paid = COALESCE(p.paid, 0), total_refunded = COALESCE(p.refunded, 0),
        total_credited = COALESCE(n.credited, 0),
        credit_balance = c.opening_credit_balance + COALESCE(n.credits, 0)
    FROM customer c0
    LEFT JOIN invoices i ON i.customer_id = c0.id
    LEFT JOIN payments p ON p.customer_id = c0.id
    LEFT JOIN notes n ON n.customer_id = c0.id
    WHERE c.id = c0.id AND c0.organisation_id = p_org;
END $$;
