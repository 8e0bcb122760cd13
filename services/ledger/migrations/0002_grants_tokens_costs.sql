-- Retry tokens (free regenerations) and what a reported bad image earns the tenant.
ALTER TABLE accounts
    ADD COLUMN retry_tokens int NOT NULL DEFAULT 0 CONSTRAINT retry_tokens_never_negative CHECK (retry_tokens >= 0),
    ADD COLUMN report_policy text NOT NULL DEFAULT 'refund' CHECK (report_policy IN ('refund', 'retry_token'));

-- A job fully covered by retry tokens holds no credits.
ALTER TABLE transfers DROP CONSTRAINT transfers_amount_check;
ALTER TABLE transfers
    ADD CONSTRAINT transfers_amount_check CHECK (amount >= 0),
    ADD COLUMN tokens_held int NOT NULL DEFAULT 0 CHECK (tokens_held >= 0 AND tokens_held <= images),
    ADD COLUMN tier text NOT NULL DEFAULT 'stable',
    ADD COLUMN pricebook_version text NOT NULL DEFAULT '',
    ADD COLUMN max_provider_spend bigint NOT NULL DEFAULT 0 CHECK (max_provider_spend >= 0),
    ADD COLUMN delivered int CHECK (delivered >= 0 AND delivered <= images);
CREATE INDEX transfers_pending_timeout ON transfers (timeout_at) WHERE state = 'pending';

-- Posted credits are the sum of grants' remaining credits; charges consume the
-- earliest-expiring grant first.
CREATE TABLE grants (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES accounts,
    source        text NOT NULL,
    amount        bigint NOT NULL CHECK (amount > 0),
    remaining     bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expires_at    timestamptz,
    rollover_days int CHECK (rollover_days > 0),
    payment_id    text UNIQUE,
    created_at    timestamptz NOT NULL
);
CREATE INDEX grants_active ON grants (tenant_id) WHERE remaining > 0;
CREATE INDEX grants_expiring ON grants (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
INSERT INTO grants (id, tenant_id, source, amount, remaining, created_at)
    SELECT gen_random_uuid(), tenant_id, 'opening', posted, posted, now() FROM accounts WHERE posted > 0;

-- Double entry: every line moves credits from one named account to another.
ALTER TABLE entries
    ADD COLUMN debit_account text,
    ADD COLUMN credit_account text,
    ADD COLUMN grant_id uuid;
UPDATE entries SET
    debit_account = CASE kind WHEN 'grant' THEN 'platform:issued' WHEN 'reserve' THEN 'tenant:' || tenant_id ELSE 'platform:holds' END,
    credit_account = CASE kind WHEN 'grant' THEN 'tenant:' || tenant_id WHEN 'reserve' THEN 'platform:holds'
                               WHEN 'charge' THEN 'platform:revenue' ELSE 'tenant:' || tenant_id END;
ALTER TABLE entries
    ALTER COLUMN debit_account SET NOT NULL,
    ALTER COLUMN credit_account SET NOT NULL,
    ADD CONSTRAINT entries_two_sides CHECK (debit_account <> credit_account),
    DROP CONSTRAINT entries_kind_check,
    ADD CONSTRAINT entries_kind_check CHECK (kind IN ('grant', 'reserve', 'charge', 'release', 'refund', 'expire'));
CREATE INDEX entries_by_tenant ON entries (tenant_id, id);

-- What providers cost per job, from the router's events, so each job's margin is known.
CREATE TABLE provider_costs (
    job_id         uuid NOT NULL,
    attempt        int NOT NULL,
    provider       text NOT NULL,
    cost_micro_usd bigint NOT NULL CHECK (cost_micro_usd >= 0),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt)
);

-- One report per delivered image.
CREATE TABLE reports (
    job_id      uuid NOT NULL,
    n           int NOT NULL,
    tenant_id   text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('refund', 'retry_token')),
    amount      bigint NOT NULL CHECK (amount >= 0),
    reported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, n)
);

-- Verified payment webhooks; the event id makes a replayed webhook grant nothing.
CREATE TABLE payments (
    event_id     text PRIMARY KEY,
    tenant_id    text NOT NULL,
    credits      bigint NOT NULL CHECK (credits > 0),
    amount_minor bigint NOT NULL,
    currency     text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    grant_id     uuid REFERENCES grants
);
