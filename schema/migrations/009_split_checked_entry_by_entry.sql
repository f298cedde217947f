-- A refund split is checked entry by entry (README, "Credit notes"): each entry's payment,
-- amount, takeover and what its payment can give, before the next entry is looked at, so
-- that the first entry at fault decides the error. 006 checked every entry's payment,
-- amount and takeover first, then every entry's capacity: a later entry's bad takeover
-- could hide an earlier entry's AMOUNT_EXCEEDS_REFUNDABLE.

-- Checks a refund split against the invoice's payments; returns it as
-- [{paymentId, amount, refundId}]. An entry with a refundId takes over a refund already
-- made on its payment (RULES.md section 4): locked here, so that two notes racing for it
-- cannot both have it; held to what the payment gave this invoice, not to its
-- refundable amount, which already counts it.
CREATE OR REPLACE FUNCTION bg_checked_split(p_invoice uuid, p_split jsonb, p_remainder bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    entry record;
    cap bigint;
    total bigint := 0;
    seen uuid[] := '{}';
    pid uuid;
    taken bigint;
BEGIN
    FOR entry IN SELECT e->>'paymentId' AS id, (e->>'amount')::bigint AS amount, e->>'refundId' AS refund
                 FROM jsonb_array_elements(p_split) e LOOP
        pid := CASE WHEN entry.id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN entry.id::uuid END;
        IF pid IS NULL OR pid = ANY(seen)
           OR NOT EXISTS (SELECT 1 FROM payment_application a WHERE a.invoice_id = p_invoice AND a.payment_id = pid) THEN
            RAISE EXCEPTION 'BAD_USER_INPUT|Each refundSplit entry must name a distinct payment of this invoice.';
        END IF;
        IF entry.amount <= 0 THEN RAISE EXCEPTION 'BAD_USER_INPUT|Each refundSplit amount must be greater than 0.'; END IF;
        IF entry.refund IS NULL THEN
            SELECT c.capacity INTO cap FROM bg_refund_capacity(p_invoice) c WHERE c.payment_id = pid;
        ELSE
            SELECT r.amount INTO taken FROM refund r
            WHERE entry.refund ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              AND r.id = entry.refund::uuid AND r.payment_id = pid AND r.credit_note_id IS NULL
            FOR UPDATE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'BAD_USER_INPUT|Refund % is not a refund of payment % that no credit note owns yet.', entry.refund, pid;
            END IF;
            IF taken <> entry.amount THEN
                RAISE EXCEPTION 'REFUND_SPLIT_MISMATCH|Refund % is of %, not %.', entry.refund, taken, entry.amount;
            END IF;
            SELECT a.amount - COALESCE((SELECT sum(r.amount) FROM refund r JOIN credit_note n ON n.id = r.credit_note_id
                                        WHERE n.invoice_id = p_invoice AND r.payment_id = a.payment_id), 0)
            INTO cap FROM payment_application a WHERE a.invoice_id = p_invoice AND a.payment_id = pid;
        END IF;
        IF cap IS NULL OR entry.amount > cap THEN
            RAISE EXCEPTION 'AMOUNT_EXCEEDS_REFUNDABLE|Payment % can give back at most %.', pid, COALESCE(cap, 0);
        END IF;
        total := total + entry.amount;
        seen := seen || pid;
    END LOOP;
    IF total <> p_remainder THEN
        RAISE EXCEPTION 'REFUND_SPLIT_MISMATCH|The split adds up to %, but % is to be refunded.', total, p_remainder;
    END IF;
    RETURN (SELECT jsonb_agg(jsonb_build_object('paymentId', e->>'paymentId', 'amount', (e->>'amount')::bigint, 'refundId', e->>'refundId'))
            FROM jsonb_array_elements(p_split) e);
END $$;
