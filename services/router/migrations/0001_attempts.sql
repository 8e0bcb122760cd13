-- Every generation attempt, with what it cost, so each job's margin is known.
CREATE TABLE attempts (
    job_id         uuid NOT NULL,
    attempt        int NOT NULL,
    tenant_id      text NOT NULL,
    provider       text NOT NULL,
    candidates     int NOT NULL,
    cost_micro_usd bigint NOT NULL CHECK (cost_micro_usd >= 0),
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt)
);
