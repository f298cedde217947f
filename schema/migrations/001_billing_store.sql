-- The billing store: read-optimised. The figures of RULES.md section 3 are columns,
-- kept right by the same transaction that changes their sources, so reads never
-- aggregate. Every loader and connection has an index that serves it in order.
-- Money is bigint minor units. Enum values are stored as the API spells them.

CREATE TABLE organisation (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL,
    -- The next credit note number; taken under the row lock, so numbers are gapless.
    next_credit_note   bigint NOT NULL DEFAULT 1
);

CREATE TABLE api_key (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisation,
    -- sha256 of the plain key; the key itself is never stored.
    key_hash        bytea NOT NULL UNIQUE,
    scopes          text[] NOT NULL,
    label           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX api_key_organisation ON api_key (organisation_id);

CREATE TABLE customer (
    id                     uuid PRIMARY KEY,
    organisation_id        uuid NOT NULL REFERENCES organisation,
    external_id            text,
    name                   text NOT NULL,
    email                  text,
    currency               text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at             timestamptz NOT NULL,
    opening_credit_balance bigint NOT NULL DEFAULT 0 CHECK (opening_credit_balance >= 0),
    -- Maintained: opening balance plus credits returned by ISSUED credit notes.
    credit_balance         bigint NOT NULL DEFAULT 0,
    -- Maintained totals (schema type CustomerTotals).
    total_invoiced         bigint NOT NULL DEFAULT 0,
    total_paid             bigint NOT NULL DEFAULT 0,
    total_refunded         bigint NOT NULL DEFAULT 0,
    total_credited         bigint NOT NULL DEFAULT 0,
    total_outstanding      bigint NOT NULL DEFAULT 0,
    UNIQUE (organisation_id, external_id)
);
CREATE INDEX customer_page ON customer (organisation_id, created_at, id);
CREATE INDEX customer_email ON customer (organisation_id, email);

CREATE TABLE invoice (
    id              uuid PRIMARY KEY,
    organisation_id uuid NOT NULL REFERENCES organisation,
    customer_id     uuid NOT NULL REFERENCES customer,
    number          text NOT NULL,
    -- As imported: DRAFT, OPEN or VOID. `status` below is derived from it.
    base_status     text NOT NULL CHECK (base_status IN ('DRAFT', 'OPEN', 'VOID')),
    currency        text NOT NULL,
    issued_on       date NOT NULL,
    due_on          date,
    created_at      timestamptz NOT NULL,
    total           bigint NOT NULL CHECK (total >= 0),
    -- Maintained figures.
    amount_paid     bigint NOT NULL DEFAULT 0,
    amount_credited bigint NOT NULL DEFAULT 0,
    amount_returned bigint NOT NULL DEFAULT 0,
    balance         bigint NOT NULL DEFAULT 0,
    status          text NOT NULL CHECK (status IN ('DRAFT', 'OPEN', 'PARTIALLY_PAID', 'PAID', 'VOID')),
    UNIQUE (organisation_id, number)
);
CREATE INDEX invoice_page ON invoice (organisation_id, issued_on, id);
CREATE INDEX invoice_by_customer ON invoice (customer_id, issued_on, id);
CREATE INDEX invoice_receivable ON invoice (organisation_id, currency, due_on) WHERE status IN ('OPEN', 'PARTIALLY_PAID');

CREATE TABLE payment (
    id               uuid PRIMARY KEY,
    organisation_id  uuid NOT NULL REFERENCES organisation,
    customer_id      uuid NOT NULL REFERENCES customer,
    mode             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('SUCCEEDED', 'FAILED')),
    currency         text NOT NULL,
    amount           bigint NOT NULL CHECK (amount >= 0),
    bank_charges     bigint NOT NULL DEFAULT 0 CHECK (bank_charges >= 0),
    received_on      date NOT NULL,
    reference_number text,
    description      text,
    created_at       timestamptz NOT NULL,
    -- Maintained figures.
    amount_refunded  bigint NOT NULL DEFAULT 0,
    amount_applied   bigint NOT NULL DEFAULT 0,
    CHECK (amount_refunded <= amount)
);
CREATE INDEX payment_page ON payment (organisation_id, received_on, id);
CREATE INDEX payment_by_customer ON payment (customer_id, received_on, id);

-- Which payment paid how much of which invoice. The sort keys of both sides are copied
-- in (they never change) so that each direction is read in order from one index.
CREATE TABLE payment_application (
    organisation_id     uuid NOT NULL REFERENCES organisation,
    payment_id          uuid NOT NULL REFERENCES payment,
    invoice_id          uuid NOT NULL REFERENCES invoice,
    amount              bigint NOT NULL CHECK (amount > 0),
    payment_received_on date NOT NULL,
    invoice_issued_on   date NOT NULL,
    PRIMARY KEY (invoice_id, payment_received_on, payment_id)
);
CREATE UNIQUE INDEX application_by_payment ON payment_application (payment_id, invoice_issued_on, invoice_id);

CREATE TABLE credit_note (
    id                       uuid PRIMARY KEY,
    organisation_id          uuid NOT NULL REFERENCES organisation,
    invoice_id               uuid NOT NULL REFERENCES invoice,
    customer_id              uuid NOT NULL REFERENCES customer,
    number                   text NOT NULL,
    amount                   bigint NOT NULL CHECK (amount > 0),
    currency                 text NOT NULL,
    reason                   text NOT NULL,
    status                   text NOT NULL CHECK (status IN ('IN_PROGRESS', 'ISSUED', 'VOID', 'PAID')),
    repayment_method         text NOT NULL,
    amount_adjusted          bigint NOT NULL DEFAULT 0,
    credits_returned         bigint NOT NULL DEFAULT 0,
    amount_refunded          bigint NOT NULL DEFAULT 0,
    amount_repaid_externally bigint NOT NULL DEFAULT 0,
    custom_data              jsonb,
    created_at               timestamptz NOT NULL DEFAULT date_trunc('second', now()),
    -- The audit trail: which API key made it (the key's id, never the key).
    created_by_key           uuid REFERENCES api_key,
    voided_at                timestamptz,
    voided_by_key            uuid REFERENCES api_key,
    UNIQUE (organisation_id, number)
);
CREATE INDEX credit_note_page ON credit_note (organisation_id, created_at, id);
CREATE INDEX credit_note_by_invoice ON credit_note (invoice_id, created_at, id);
CREATE INDEX credit_note_by_customer ON credit_note (customer_id, created_at, id);

CREATE TABLE refund (
    id               uuid PRIMARY KEY,
    organisation_id  uuid NOT NULL REFERENCES organisation,
    payment_id       uuid NOT NULL REFERENCES payment,
    credit_note_id   uuid REFERENCES credit_note,
    amount           bigint NOT NULL CHECK (amount > 0),
    currency         text NOT NULL,
    mode             text NOT NULL,
    refunded_on      date NOT NULL,
    reference_number text,
    description      text,
    created_at       timestamptz NOT NULL DEFAULT date_trunc('second', now()),
    created_by_key   uuid REFERENCES api_key
);
CREATE INDEX refund_page ON refund (organisation_id, refunded_on, id);
CREATE INDEX refund_by_payment ON refund (payment_id, refunded_on, id);
CREATE INDEX refund_by_credit_note ON refund (credit_note_id, refunded_on, id) WHERE credit_note_id IS NOT NULL;

-- A mutation that succeeded with a key, so that a retry replays it.
CREATE TABLE idempotency_key (
    organisation_id uuid NOT NULL REFERENCES organisation,
    key             text NOT NULL CHECK (length(key) <= 255),
    mutation        text NOT NULL,
    -- The input with absent and null fields alike, keys sorted.
    fingerprint     text NOT NULL,
    -- The ids the mutation answered with.
    result          jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, key)
);
CREATE INDEX idempotency_key_age ON idempotency_key (created_at);
