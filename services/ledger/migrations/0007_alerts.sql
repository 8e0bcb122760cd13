-- What each tenant wants to be told before its money runs out: below how many available
-- credits (null: never), and how many days before a grant with credits left expires.
CREATE TABLE alert_settings (
    tenant_id           text PRIMARY KEY,
    balance_low_below   bigint CHECK (balance_low_below >= 0),
    grant_expiring_days int NOT NULL DEFAULT 7 CHECK (grant_expiring_days BETWEEN 0 AND 365),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Every alert raised, once per crossing: at most one open alert per tenant, kind and subject
-- (the grant, the key's period; '' for the balance), so replicas that see the same crossing
-- raise it once. A balance alert is cleared when the balance rises back to the threshold,
-- and the next fall is a new crossing.
CREATE TABLE alerts (
    id         text PRIMARY KEY,
    tenant_id  text NOT NULL,
    alert      text NOT NULL,
    subject    text NOT NULL,
    details    jsonb NOT NULL,
    raised_at  timestamptz NOT NULL,
    cleared_at timestamptz
);
CREATE UNIQUE INDEX one_open_alert ON alerts (tenant_id, alert, subject) WHERE cleared_at IS NULL;
CREATE INDEX alerts_by_tenant ON alerts (tenant_id, raised_at DESC);

-- A hold the key's cap refused marks the key's period, so its alert is raised although the
-- spend stayed below the cap.
ALTER TABLE key_spend ADD COLUMN refused boolean NOT NULL DEFAULT false;
