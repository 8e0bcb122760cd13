-- Money in through a payment gateway (Stripe first): checkouts, auto top-ups, refunds and
-- disputes. Every processor event is recorded once by its id, in the transaction that
-- applies it; a repeat is acknowledged and changes nothing.

-- Credits a tenant owes after a refund or a lost dispute took back more than it had left:
-- while it owes, new jobs are refused; a later grant pays the debt first.
ALTER TABLE accounts ADD COLUMN owed bigint NOT NULL DEFAULT 0 CONSTRAINT owed_never_negative CHECK (owed >= 0);
ALTER TABLE entries DROP CONSTRAINT entries_kind_check,
    ADD CONSTRAINT entries_kind_check CHECK (kind IN ('grant', 'reserve', 'charge', 'release', 'refund', 'expire',
                                                      'reclaim', 'chargeback'));

-- The processor's events, each once: the webhook's inbox.
CREATE TABLE payment_events (
    event_id    text PRIMARY KEY,
    type        text NOT NULL,
    object_id   text,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- The tenant's customer at the processor, and the card it saved for off-session charges.
CREATE TABLE payment_customers (
    tenant_id      text PRIMARY KEY,
    customer_id    text NOT NULL UNIQUE,
    payment_method text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Checkout Sessions: a pack bought through the processor's hosted page.
CREATE TABLE checkout_sessions (
    session_id     text PRIMARY KEY,
    tenant_id      text NOT NULL,
    pack           text NOT NULL,
    credits        bigint NOT NULL CHECK (credits > 0),
    amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
    currency       text NOT NULL,
    save_card      boolean NOT NULL,
    url            text NOT NULL,
    state          text NOT NULL CHECK (state IN ('open', 'awaiting_payment', 'paid', 'expired', 'failed')),
    payment_intent text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkout_sessions_by_tenant ON checkout_sessions (tenant_id, created_at DESC);

-- A payment that granted credits, by the processor's payment intent: what it paid, what it
-- granted, and how much of it refunds and disputes have taken back so far.
ALTER TABLE payments
    ADD COLUMN payment_intent    text UNIQUE,
    ADD COLUMN source            text NOT NULL DEFAULT 'webhook',
    ADD COLUMN credits_reclaimed bigint NOT NULL DEFAULT 0 CHECK (credits_reclaimed >= 0);

-- What the processor says of a charge, whichever arrives first: the cumulative refunded
-- amount (charge.refunded carries it whole, so the largest seen is the truth).
CREATE TABLE payment_refunds (
    payment_intent  text PRIMARY KEY,
    charge_id       text NOT NULL,
    refunded_minor  bigint NOT NULL CHECK (refunded_minor >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Disputes: the disputed share of a payment's credits is held while it is open, debited
-- for good when lost, given back when won.
CREATE TABLE disputes (
    dispute_id      text PRIMARY KEY,
    payment_intent  text NOT NULL,
    amount_minor    bigint NOT NULL CHECK (amount_minor >= 0),
    status          text NOT NULL,
    credits_held    bigint NOT NULL DEFAULT 0 CHECK (credits_held >= 0),
    credits_owed    bigint NOT NULL DEFAULT 0 CHECK (credits_owed >= 0),
    resolution      text CHECK (resolution IN ('won', 'lost')),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX disputes_by_payment ON disputes (payment_intent);

-- Auto top-up: below `below` credits, buy `pack`, at most `max_per_month` times a calendar month.
CREATE TABLE auto_topup_rules (
    tenant_id      text PRIMARY KEY,
    below          bigint NOT NULL CHECK (below > 0),
    pack           text NOT NULL,
    max_per_month  int NOT NULL CHECK (max_per_month > 0),
    enabled        boolean NOT NULL DEFAULT true,
    paused_reason  text,
    failures       int NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Each off-session charge an auto top-up attempts; its id is the idempotency key sent to the
-- processor. At most one per tenant is in flight.
CREATE TABLE auto_topup_attempts (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL,
    pack            text NOT NULL,
    credits         bigint NOT NULL CHECK (credits > 0),
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    currency        text NOT NULL,
    state           text NOT NULL CHECK (state IN ('requested', 'processing', 'succeeded', 'failed')),
    payment_intent  text,
    failure_code    text,
    failure_message text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX one_auto_topup_in_flight ON auto_topup_attempts (tenant_id) WHERE state IN ('requested', 'processing');
CREATE INDEX auto_topup_attempts_by_tenant ON auto_topup_attempts (tenant_id, created_at DESC);
