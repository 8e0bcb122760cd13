-- POST /v1/verify finds the job of a delivered file by its C2PA manifest's label or its
-- watermark's id, both recorded on the job's outputs: a containment search over them.
CREATE INDEX jobs_outputs ON jobs USING gin ((view->'outputs') jsonb_path_ops);

-- The request rate of callers without an account (POST /v1/verify), by address: a GCRA
-- theoretical arrival time per client, as rate_limits keeps per tenant.
CREATE TABLE anonymous_rate_limits (
    client text PRIMARY KEY,
    tat    timestamptz NOT NULL
);
