-- Jobs canceled before or while the router generates for them: no attempt is started for
-- them, and an attempt that finishes after the cancel is not published.
CREATE TABLE canceled_jobs (
    job_id      uuid PRIMARY KEY,
    canceled_at timestamptz NOT NULL DEFAULT now()
);
