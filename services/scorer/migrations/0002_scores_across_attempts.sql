-- A job's candidates are scored over several attempts and judged together: a candidate's
-- index is unique within its job, so it alone keys the score. `candidate` is the score as
-- published (provider, attempt, dimensions, failed), so every attempt's scores can be
-- published again with the selection.
ALTER TABLE scores DROP CONSTRAINT scores_pkey;
ALTER TABLE scores ADD PRIMARY KEY (job_id, index);
ALTER TABLE scores ADD COLUMN provider text NOT NULL DEFAULT '';
ALTER TABLE scores ADD COLUMN candidate jsonb;

-- One row per job being scored: locked while an attempt is judged, so attempts of one job
-- never interleave, and holding the outcome once one was published.
CREATE TABLE scored_jobs (
    job_id     uuid PRIMARY KEY,
    attempts   int NOT NULL DEFAULT 0,
    outcome    text,
    decided_at timestamptz
);
