-- Remote jobs at hosted providers, written with their attempt before the first poll: a
-- router that dies or stops while they run resumes them (polls again) instead of paying
-- for them twice. `handle` is what the adapter needs to poll and cancel the job.
CREATE TABLE remote_jobs (
    job_id      uuid NOT NULL,
    attempt     int NOT NULL,
    capability  text NOT NULL,
    provider    text NOT NULL,
    start_index int NOT NULL CHECK (start_index >= 0),
    count       int NOT NULL CHECK (count >= 1),
    handle      jsonb NOT NULL,
    state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'succeeded', 'failed', 'canceled')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    PRIMARY KEY (job_id, attempt, capability, provider, start_index, count),
    FOREIGN KEY (job_id, attempt) REFERENCES attempt_requests
);
