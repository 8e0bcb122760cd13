-- Jobs that ended (canceled, expired) before the ledger reserved anything for them: a
-- JobSubmitted that arrives later is refused instead of holding credits for a dead job.
CREATE TABLE closed_jobs (
    job_id    uuid PRIMARY KEY,
    tenant_id text NOT NULL,
    outcome   text NOT NULL,
    closed_at timestamptz NOT NULL DEFAULT now()
);

-- An attempt may call several providers (fallback): each one's spend is booked under its name.
ALTER TABLE provider_costs DROP CONSTRAINT provider_costs_pkey;
ALTER TABLE provider_costs ADD PRIMARY KEY (job_id, attempt, provider);
