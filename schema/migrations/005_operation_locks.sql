-- Several mutations in one operation (RULES.md section 4) take the rows they will change
-- in one global order before the first of them runs: credit notes, invoices, payments
-- (each by id), the organisation when a credit note will be numbered, then customers (by
-- id), the order each mutation alone follows. Without it, two operations refunding the
-- same payments in different orders each hold what the other waits for, and one of them
-- waits out PostgreSQL's deadlock timeout (a second) before it is run again.
CREATE FUNCTION bg_lock_operation(p_org uuid, p_notes uuid[], p_invoices uuid[], p_payments uuid[], p_numbers boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    invoices uuid[];
    payments uuid[];
BEGIN
    PERFORM 1 FROM credit_note WHERE organisation_id = p_org AND id = ANY(p_notes) ORDER BY id FOR UPDATE;
    invoices := ARRAY(SELECT unnest(p_invoices)
                      UNION SELECT invoice_id FROM credit_note WHERE organisation_id = p_org AND id = ANY(p_notes));
    PERFORM 1 FROM invoice WHERE organisation_id = p_org AND id = ANY(invoices) ORDER BY id FOR UPDATE;
    payments := ARRAY(SELECT unnest(p_payments)
                      UNION SELECT payment_id FROM payment_application WHERE organisation_id = p_org AND invoice_id = ANY(invoices));
    PERFORM 1 FROM payment WHERE organisation_id = p_org AND id = ANY(payments) ORDER BY id FOR UPDATE;
    IF p_numbers THEN
        PERFORM 1 FROM organisation WHERE id = p_org FOR UPDATE;
    END IF;
    PERFORM 1 FROM customer WHERE organisation_id = p_org AND id IN (
        SELECT customer_id FROM invoice WHERE id = ANY(invoices) UNION SELECT customer_id FROM payment WHERE id = ANY(payments))
    ORDER BY id FOR UPDATE;
END $$;
