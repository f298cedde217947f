-- The mutations of RULES.md section 4. Each is one function, called as one statement,
-- so each runs in exactly one transaction: it happens entirely or not at all.
--
-- Locks, always taken in this order so that two mutations never wait on each other in
-- a cycle: idempotency key < credit note < invoice < payments (by id) < organisation
-- (credit note numbers) < customer.
--
-- A broken rule raises SQLSTATE P0001 with the message 'CODE|text'; the service shows
-- the code and the text (which never holds SQL or other organisations' data).

-- Claims an idempotency key for this transaction, or finds the result of the call that
-- claimed it. A concurrent call with the same key waits on the key's row until the first
-- commits (then it replays) or rolls back (then it proceeds: a failed call uses no key).
CREATE FUNCTION bg_claim_key(p_org uuid, p_key text, p_mutation text, p_fingerprint text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    stored idempotency_key%ROWTYPE;
BEGIN
    IF p_key IS NULL THEN RETURN NULL; END IF;
    INSERT INTO idempotency_key (organisation_id, key, mutation, fingerprint, result)
    VALUES (p_org, p_key, p_mutation, p_fingerprint, 'null')
    ON CONFLICT (organisation_id, key) DO NOTHING;
    IF FOUND THEN RETURN NULL; END IF;
    SELECT * INTO stored FROM idempotency_key WHERE organisation_id = p_org AND key = p_key;
    IF stored.mutation <> p_mutation OR stored.fingerprint <> p_fingerprint THEN
        RAISE EXCEPTION 'IDEMPOTENCY_KEY_REUSED|This idempotency key was used with another mutation or other input.';
    END IF;
    RETURN stored.result;
END $$;

CREATE FUNCTION bg_remember_key(p_org uuid, p_key text, p_result jsonb) RETURNS void
LANGUAGE sql AS $$
    UPDATE idempotency_key SET result = p_result WHERE organisation_id = p_org AND key = p_key;
$$;

CREATE FUNCTION bg_today() RETURNS date LANGUAGE sql STABLE AS $$ SELECT (now() AT TIME ZONE 'UTC')::date $$;

-- Applies a change of an invoice's credited and returned amounts, keeping its balance,
-- its status and its customer's outstanding total right. The caller holds the invoice's lock.
CREATE FUNCTION bg_adjust_invoice(p_invoice uuid, p_credited bigint, p_returned bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    inv invoice%ROWTYPE;
    new_balance bigint;
BEGIN
    SELECT * INTO inv FROM invoice WHERE id = p_invoice;
    new_balance := greatest(0, inv.total - inv.amount_paid - (inv.amount_credited + p_credited) + (inv.amount_returned + p_returned));
    UPDATE invoice
    SET amount_credited = amount_credited + p_credited, amount_returned = amount_returned + p_returned,
        balance = new_balance, status = bg_invoice_status(base_status, total, new_balance)
    WHERE id = p_invoice;
    UPDATE customer SET total_outstanding = total_outstanding + (new_balance - inv.balance), total_credited = total_credited + p_credited
    WHERE id = inv.customer_id;
END $$;

-- refundPayment. Returns the refund's and the payment's ids.
CREATE FUNCTION bg_refund_payment(
    p_org uuid, p_api_key uuid, p_idempotency_key text, p_fingerprint text,
    p_payment uuid, p_amount bigint, p_mode text, p_refunded_on date, p_reference text, p_description text)
RETURNS TABLE (refund_id uuid, payment_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    replay jsonb;
    pay payment%ROWTYPE;
    new_id uuid := gen_random_uuid();
BEGIN
    replay := bg_claim_key(p_org, p_idempotency_key, 'refundPayment', p_fingerprint);
    IF replay IS NOT NULL THEN
        RETURN QUERY SELECT (replay->>'refund')::uuid, (replay->>'payment')::uuid;
        RETURN;
    END IF;

    SELECT * INTO pay FROM payment p WHERE p.id = p_payment AND p.organisation_id = p_org FOR UPDATE;
    IF NOT FOUND THEN RAISE EXCEPTION 'NOT_FOUND|No payment with this id.'; END IF;
    IF pay.status <> 'SUCCEEDED' THEN RAISE EXCEPTION 'INVALID_STATE|Only a SUCCEEDED payment can be refunded.'; END IF;
    IF p_amount <= 0 THEN RAISE EXCEPTION 'BAD_USER_INPUT|The amount must be greater than 0.'; END IF;
    IF p_amount > pay.amount - pay.amount_refunded THEN
        RAISE EXCEPTION 'AMOUNT_EXCEEDS_REFUNDABLE|The amount % exceeds the refundable amount %.', p_amount, pay.amount - pay.amount_refunded;
    END IF;

    INSERT INTO refund (id, organisation_id, payment_id, amount, currency, mode, refunded_on, reference_number,
                        description, created_by_key)
    VALUES (new_id, p_org, pay.id, p_amount, pay.currency, COALESCE(p_mode, pay.mode), COALESCE(p_refunded_on, bg_today()),
            p_reference, p_description, p_api_key);
    UPDATE payment SET amount_refunded = amount_refunded + p_amount WHERE id = pay.id;
    -- A refund without a credit note gives back money, not the invoice: invoice figures stay.
    UPDATE customer SET total_refunded = total_refunded + p_amount WHERE id = pay.customer_id;

    IF p_idempotency_key IS NOT NULL THEN
        PERFORM bg_remember_key(p_org, p_idempotency_key, jsonb_build_object('refund', new_id, 'payment', pay.id));
    END IF;
    RETURN QUERY SELECT new_id, pay.id;
END $$;

-- What each SUCCEEDED payment of an invoice can still give back through a credit note:
-- min(its refundable amount, what it applied to the invoice minus what earlier credit
-- notes of the invoice refunded from it). Oldest first (receivedOn, then id).
CREATE FUNCTION bg_refund_capacity(p_invoice uuid)
RETURNS TABLE (payment_id uuid, capacity bigint, received_on date, mode text, currency text, customer_id uuid)
LANGUAGE sql STABLE AS $$
    SELECT p.id,
           least(p.amount - p.amount_refunded,
                 a.amount - COALESCE((SELECT sum(r.amount) FROM refund r JOIN credit_note n ON n.id = r.credit_note_id
                                      WHERE n.invoice_id = p_invoice AND r.payment_id = p.id), 0))::bigint,
           p.received_on, p.mode, p.currency, p.customer_id
    FROM payment_application a JOIN payment p ON p.id = a.payment_id
    WHERE a.invoice_id = p_invoice AND p.status = 'SUCCEEDED'
    ORDER BY p.received_on, p.id
$$;

-- createCreditNote. p_split is a JSON array of {"paymentId", "amount"} or NULL.
-- Returns the note's and the invoice's ids.
CREATE FUNCTION bg_create_credit_note(
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

    FOR entry IN SELECT (e->>'paymentId')::uuid AS pid, (e->>'amount')::bigint AS amount FROM jsonb_array_elements(refunds) e LOOP
        INSERT INTO refund (id, organisation_id, payment_id, credit_note_id, amount, currency, mode, refunded_on,
                            description, created_by_key)
        SELECT gen_random_uuid(), p_org, p.id, note_id, entry.amount, p.currency, p.mode, bg_today(), p_reason, p_api_key
        FROM payment p WHERE p.id = entry.pid;
        UPDATE payment SET amount_refunded = amount_refunded + entry.amount WHERE id = entry.pid;
    END LOOP;

    PERFORM bg_adjust_invoice(inv.id, p_amount, remainder);
    UPDATE customer
    SET credit_balance = credit_balance + CASE WHEN method = 'CREDITS' THEN remainder ELSE 0 END,
        total_refunded = total_refunded + CASE WHEN method = 'ORIGINAL_PAYMENT_METHOD' THEN remainder ELSE 0 END
    WHERE id = inv.customer_id;

    IF p_idempotency_key IS NOT NULL THEN
        PERFORM bg_remember_key(p_org, p_idempotency_key, jsonb_build_object('creditNote', note_id, 'invoice', inv.id));
    END IF;
    RETURN QUERY SELECT note_id, inv.id;
END $$;

-- Checks a refund split against the invoice's payments; returns it as [{paymentId, amount}].
CREATE FUNCTION bg_checked_split(p_invoice uuid, p_split jsonb, p_remainder bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    entry record;
    cap bigint;
    total bigint := 0;
    seen uuid[] := '{}';
    pid uuid;
BEGIN
    FOR entry IN SELECT e->>'paymentId' AS id, (e->>'amount')::bigint AS amount FROM jsonb_array_elements(p_split) e LOOP
        pid := CASE WHEN entry.id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN entry.id::uuid END;
        IF pid IS NULL OR pid = ANY(seen)
           OR NOT EXISTS (SELECT 1 FROM payment_application a WHERE a.invoice_id = p_invoice AND a.payment_id = pid) THEN
            RAISE EXCEPTION 'BAD_USER_INPUT|Each refundSplit entry must name a distinct payment of this invoice.';
        END IF;
        IF entry.amount <= 0 THEN RAISE EXCEPTION 'BAD_USER_INPUT|Each refundSplit amount must be greater than 0.'; END IF;
        seen := seen || pid;
    END LOOP;
    FOR entry IN SELECT (e->>'paymentId')::uuid AS id, (e->>'amount')::bigint AS amount FROM jsonb_array_elements(p_split) e LOOP
        SELECT c.capacity INTO cap FROM bg_refund_capacity(p_invoice) c WHERE c.payment_id = entry.id;
        IF cap IS NULL OR entry.amount > cap THEN
            RAISE EXCEPTION 'AMOUNT_EXCEEDS_REFUNDABLE|Payment % can give back at most %.', entry.id, COALESCE(cap, 0);
        END IF;
        total := total + entry.amount;
    END LOOP;
    IF total <> p_remainder THEN
        RAISE EXCEPTION 'REFUND_SPLIT_MISMATCH|The split adds up to %, but % is to be refunded.', total, p_remainder;
    END IF;
    RETURN (SELECT jsonb_agg(jsonb_build_object('paymentId', e->>'paymentId', 'amount', (e->>'amount')::bigint)) FROM jsonb_array_elements(p_split) e);
END $$;

-- voidCreditNote. Returns the note's and the invoice's ids.
CREATE FUNCTION bg_void_credit_note(p_org uuid, p_api_key uuid, p_idempotency_key text, p_fingerprint text, p_note uuid)
RETURNS TABLE (credit_note_id uuid, invoice_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    replay jsonb;
    note credit_note%ROWTYPE;
    balance_now bigint;
BEGIN
    replay := bg_claim_key(p_org, p_idempotency_key, 'voidCreditNote', p_fingerprint);
    IF replay IS NOT NULL THEN
        RETURN QUERY SELECT (replay->>'creditNote')::uuid, (replay->>'invoice')::uuid;
        RETURN;
    END IF;

    SELECT * INTO note FROM credit_note n WHERE n.id = p_note AND n.organisation_id = p_org FOR UPDATE;
    IF NOT FOUND THEN RAISE EXCEPTION 'NOT_FOUND|No credit note with this id.'; END IF;
    IF note.status <> 'ISSUED' THEN RAISE EXCEPTION 'INVALID_STATE|Only an ISSUED credit note can be voided.'; END IF;
    IF note.amount_refunded > 0 OR note.amount_repaid_externally > 0 THEN
        RAISE EXCEPTION 'INVALID_STATE|The money of this credit note has left; it cannot be voided.';
    END IF;
    PERFORM 1 FROM invoice i WHERE i.id = note.invoice_id FOR UPDATE;
    SELECT c.credit_balance INTO balance_now FROM customer c WHERE c.id = note.customer_id FOR UPDATE;
    IF note.credits_returned > balance_now THEN
        RAISE EXCEPTION 'INVALID_STATE|The credits this note returned are no longer all in the customer''s credit balance.';
    END IF;

    UPDATE credit_note SET status = 'VOID', voided_at = now(), voided_by_key = p_api_key WHERE id = note.id;
    PERFORM bg_adjust_invoice(note.invoice_id, -note.amount, -(note.credits_returned + note.amount_refunded + note.amount_repaid_externally));
    UPDATE customer SET credit_balance = credit_balance - note.credits_returned WHERE id = note.customer_id;

    IF p_idempotency_key IS NOT NULL THEN
        PERFORM bg_remember_key(p_org, p_idempotency_key, jsonb_build_object('creditNote', note.id, 'invoice', note.invoice_id));
    END IF;
    RETURN QUERY SELECT note.id, note.invoice_id;
END $$;
