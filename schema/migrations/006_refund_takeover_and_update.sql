-- Refunds as the billing systems we follow handle them (RULES.md section 4): a credit
-- note may take over a refund already made (`refundSplit[].refundId`), and a refund's
-- record can be corrected (`updateRefund`). The two functions of 003 that change are
-- replaced whole; bg_update_refund is new.

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
        IF entry.refund IS NOT NULL THEN
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
        END IF;
        seen := seen || pid;
    END LOOP;
    FOR entry IN SELECT (e->>'paymentId')::uuid AS id, (e->>'amount')::bigint AS amount, e->>'refundId' AS refund
                 FROM jsonb_array_elements(p_split) e LOOP
        IF entry.refund IS NULL THEN
            SELECT c.capacity INTO cap FROM bg_refund_capacity(p_invoice) c WHERE c.payment_id = entry.id;
        ELSE
            SELECT a.amount - COALESCE((SELECT sum(r.amount) FROM refund r JOIN credit_note n ON n.id = r.credit_note_id
                                        WHERE n.invoice_id = p_invoice AND r.payment_id = a.payment_id), 0)
            INTO cap FROM payment_application a WHERE a.invoice_id = p_invoice AND a.payment_id = entry.id;
        END IF;
        IF cap IS NULL OR entry.amount > cap THEN
            RAISE EXCEPTION 'AMOUNT_EXCEEDS_REFUNDABLE|Payment % can give back at most %.', entry.id, COALESCE(cap, 0);
        END IF;
        total := total + entry.amount;
    END LOOP;
    IF total <> p_remainder THEN
        RAISE EXCEPTION 'REFUND_SPLIT_MISMATCH|The split adds up to %, but % is to be refunded.', total, p_remainder;
    END IF;
    RETURN (SELECT jsonb_agg(jsonb_build_object('paymentId', e->>'paymentId', 'amount', (e->>'amount')::bigint, 'refundId', e->>'refundId'))
            FROM jsonb_array_elements(p_split) e);
END $$;

CREATE OR REPLACE FUNCTION bg_create_credit_note(
    p_org uuid, p_api_key uuid, p_idempotency_key text, p_fingerprint text,
    p_invoice uuid, p_amount bigint, p_reason text, p_destination text, p_split jsonb, p_custom_data jsonb)
RETURNS TABLE (credit_note_id uuid, invoice_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    replay jsonb;
    inv invoice%ROWTYPE;
    adjusted bigint;
    remainder bigint;
    method text;
    note_id uuid := gen_random_uuid();
    number bigint;
    split_given boolean := p_split IS NOT NULL AND jsonb_array_length(p_split) > 0;
    entry record;
    cap record;
    take bigint;
    left_to_cover bigint;
    refunds jsonb := '[]';
    taken_over bigint := 0;
BEGIN
    replay := bg_claim_key(p_org, p_idempotency_key, 'createCreditNote', p_fingerprint);
    IF replay IS NOT NULL THEN
        RETURN QUERY SELECT (replay->>'creditNote')::uuid, (replay->>'invoice')::uuid;
        RETURN;
    END IF;

    -- The checks, in the contract's order.
    SELECT * INTO inv FROM invoice i WHERE i.id = p_invoice AND i.organisation_id = p_org FOR UPDATE;
    IF NOT FOUND THEN RAISE EXCEPTION 'NOT_FOUND|No invoice with this id.'; END IF;
    IF inv.status IN ('DRAFT', 'VOID') THEN
        RAISE EXCEPTION 'INVALID_STATE|A % invoice cannot be credited.', inv.status;
    END IF;
    IF p_amount <= 0 THEN RAISE EXCEPTION 'BAD_USER_INPUT|The amount must be greater than 0.'; END IF;
    IF btrim(p_reason, E' \t\r\n') = '' THEN RAISE EXCEPTION 'BAD_USER_INPUT|The reason must not be blank.'; END IF;
    IF p_amount > inv.total - inv.amount_credited THEN
        RAISE EXCEPTION 'AMOUNT_EXCEEDS_CREDITABLE|The amount % exceeds the creditable amount %.', p_amount, inv.total - inv.amount_credited;
    END IF;

    adjusted := least(p_amount, inv.balance);
    remainder := p_amount - adjusted;
    IF remainder = 0 THEN
        IF split_given AND p_destination = 'ORIGINAL_PAYMENT_METHOD' THEN
            RAISE EXCEPTION 'REFUND_SPLIT_MISMATCH|Nothing is refunded, so a refund split must be empty.';
        END IF;
        method := 'INVOICE_ADJUSTED';
    ELSIF p_destination IS NULL THEN
        RAISE EXCEPTION 'REFUND_DESTINATION_REQUIRED|% of the amount goes back to the customer: say where with refundDestination.', remainder;
    ELSIF p_destination = 'CREDITS' THEN
        method := 'CREDITS';
    ELSIF p_destination = 'EXTERNAL' THEN
        method := 'EXTERNAL_PAYMENT';
    ELSE
        method := 'ORIGINAL_PAYMENT_METHOD';
        -- The payments that give, locked by id (the global lock order), with what each can give.
        PERFORM 1 FROM payment p WHERE p.id IN (SELECT a.payment_id FROM payment_application a WHERE a.invoice_id = inv.id)
        ORDER BY p.id FOR UPDATE;
        IF split_given THEN
            refunds := bg_checked_split(inv.id, p_split, remainder);
        ELSE
            left_to_cover := remainder;
            FOR cap IN SELECT * FROM bg_refund_capacity(inv.id) LOOP
                EXIT WHEN left_to_cover = 0;
                take := least(cap.capacity, left_to_cover);
                CONTINUE WHEN take <= 0;
                refunds := refunds || jsonb_build_object('paymentId', cap.payment_id, 'amount', take);
                left_to_cover := left_to_cover - take;
            END LOOP;
            IF left_to_cover > 0 THEN
                RAISE EXCEPTION 'AMOUNT_EXCEEDS_REFUNDABLE|The invoice''s payments can give back only % of %.', remainder - left_to_cover, remainder;
            END IF;
        END IF;
    END IF;
    IF p_custom_data IS NOT NULL AND jsonb_typeof(p_custom_data) <> 'object' THEN
        RAISE EXCEPTION 'BAD_USER_INPUT|customData must be a JSON object.';
    END IF;

    -- The organisation's next number, under its row lock: gapless, since a failed
    -- mutation rolls the counter back with everything else.
    UPDATE organisation SET next_credit_note = next_credit_note + 1 WHERE id = p_org
    RETURNING next_credit_note - 1 INTO number;
    INSERT INTO credit_note (id, organisation_id, invoice_id, customer_id, number, amount, currency, reason, status,
                             repayment_method, amount_adjusted, credits_returned, amount_refunded, amount_repaid_externally,
                             custom_data, created_by_key)
    VALUES (note_id, p_org, inv.id, inv.customer_id, 'CN-' || lpad(number::text, greatest(6, length(number::text)), '0'), p_amount, inv.currency, p_reason,
            'ISSUED', method, adjusted,
            CASE WHEN method = 'CREDITS' THEN remainder ELSE 0 END,
            CASE WHEN method = 'ORIGINAL_PAYMENT_METHOD' THEN remainder ELSE 0 END,
            CASE WHEN method = 'EXTERNAL_PAYMENT' THEN remainder ELSE 0 END,
            p_custom_data, p_api_key);

    FOR entry IN SELECT (e->>'paymentId')::uuid AS pid, (e->>'amount')::bigint AS amount, (e->>'refundId')::uuid AS refund
                 FROM jsonb_array_elements(refunds) e LOOP
        IF entry.refund IS NOT NULL THEN
            -- Taken over: that money has already gone; the refund now belongs to the note.
            UPDATE refund SET credit_note_id = note_id WHERE id = entry.refund;
            taken_over := taken_over + entry.amount;
            CONTINUE;
        END IF;
        INSERT INTO refund (id, organisation_id, payment_id, credit_note_id, amount, currency, mode, refunded_on,
                            description, created_by_key)
        SELECT gen_random_uuid(), p_org, p.id, note_id, entry.amount, p.currency, p.mode, bg_today(), p_reason, p_api_key
        FROM payment p WHERE p.id = entry.pid;
        UPDATE payment SET amount_refunded = amount_refunded + entry.amount WHERE id = entry.pid;
    END LOOP;

    PERFORM bg_adjust_invoice(inv.id, p_amount, remainder);
    UPDATE customer
    SET credit_balance = credit_balance + CASE WHEN method = 'CREDITS' THEN remainder ELSE 0 END,
        total_refunded = total_refunded + CASE WHEN method = 'ORIGINAL_PAYMENT_METHOD' THEN remainder - taken_over ELSE 0 END
    WHERE id = inv.customer_id;

    IF p_idempotency_key IS NOT NULL THEN
        PERFORM bg_remember_key(p_org, p_idempotency_key, jsonb_build_object('creditNote', note_id, 'invoice', inv.id));
    END IF;
    RETURN QUERY SELECT note_id, inv.id;
END $$;


-- updateRefund (RULES.md section 4): corrects a refund's record, never its amount,
-- payment or credit note. NULL arguments keep their value; a reference or description of
-- only white space clears it. Returns the refund's and its payment's ids.
CREATE FUNCTION bg_update_refund(p_org uuid, p_refund uuid, p_mode text, p_refunded_on date, p_reference text, p_description text)
RETURNS TABLE (refund_id uuid, payment_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    ref refund%ROWTYPE;
    received date;
BEGIN
    SELECT * INTO ref FROM refund r WHERE r.id = p_refund AND r.organisation_id = p_org FOR UPDATE;
    IF NOT FOUND THEN RAISE EXCEPTION 'NOT_FOUND|No refund with this id.'; END IF;
    IF p_mode IS NULL AND p_refunded_on IS NULL AND p_reference IS NULL AND p_description IS NULL THEN
        RAISE EXCEPTION 'BAD_USER_INPUT|Give at least one of mode, refundedOn, referenceNumber, description.';
    END IF;
    SELECT p.received_on INTO received FROM payment p WHERE p.id = ref.payment_id;
    IF p_refunded_on < received OR p_refunded_on > bg_today() THEN
        RAISE EXCEPTION 'BAD_USER_INPUT|refundedOn must be between the payment''s receivedOn (%) and today (%).', received, bg_today();
    END IF;
    UPDATE refund SET
        mode = COALESCE(p_mode, mode),
        refunded_on = COALESCE(p_refunded_on, refunded_on),
        reference_number = CASE WHEN p_reference IS NULL THEN reference_number
                                WHEN btrim(p_reference, E' \t\r\n') = '' THEN NULL ELSE p_reference END,
        description = CASE WHEN p_description IS NULL THEN description
                           WHEN btrim(p_description, E' \t\r\n') = '' THEN NULL ELSE p_description END
    WHERE id = ref.id;
    RETURN QUERY SELECT ref.id, ref.payment_id;
END $$;
