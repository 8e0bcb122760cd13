-- Spend caps per API key, in credits per UTC day and per UTC month (null: no cap). Ingest
-- writes them into each job the key submits; the ledger enforces them in the hold's own
-- transaction, against the key's spend it keeps.
ALTER TABLE api_keys
    ADD COLUMN daily_cap_credits bigint CHECK (daily_cap_credits >= 0),
    ADD COLUMN monthly_cap_credits bigint CHECK (monthly_cap_credits >= 0);
