-- Admitted jobs with their spec and provider-spend cap, so rework attempts need no other
-- service's tables; what each job has spent and the next free candidate index.
CREATE TABLE jobs (
    job_id           uuid PRIMARY KEY,
    tenant_id        text NOT NULL,
    tier             text NOT NULL,
    template         text NOT NULL,
    spec             jsonb NOT NULL,
    budget_micro_usd bigint NOT NULL CHECK (budget_micro_usd >= 0),  -- 0: no cap
    spent_micro_usd  bigint NOT NULL DEFAULT 0 CHECK (spent_micro_usd >= 0),
    next_index       int NOT NULL DEFAULT 0 CHECK (next_index >= 0),
    final            boolean NOT NULL DEFAULT false,
    stop_reason      text,
    admitted_at      timestamptz NOT NULL DEFAULT now()
);

-- Attempts to generate: written with the event that asks for them, claimed by one router
-- process at a time (the claim lapses if that process dies), done once their outcome is
-- committed with the event that announces it.
CREATE TABLE attempt_requests (
    job_id        uuid NOT NULL REFERENCES jobs,
    attempt       int NOT NULL CHECK (attempt >= 1),
    images_needed int NOT NULL CHECK (images_needed >= 1),
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    claimed_by    text,
    claimed_until timestamptz,
    tries         int NOT NULL DEFAULT 0,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX attempt_requests_pending ON attempt_requests (requested_at) WHERE state = 'pending';

-- Expected vs actual cost of every attempt, and each provider call it made.
ALTER TABLE attempts
    ADD COLUMN expected_cost_micro_usd bigint NOT NULL DEFAULT 0 CHECK (expected_cost_micro_usd >= 0),
    ADD COLUMN calls jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN stop_reason text;

-- Scored outcomes per provider and template, faded by age (a half-life) as of updated_at.
CREATE TABLE pass_rates (
    provider   text NOT NULL,
    template   text NOT NULL,
    passed     double precision NOT NULL CHECK (passed >= 0),
    failed     double precision NOT NULL CHECK (failed >= 0),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (provider, template)
);
