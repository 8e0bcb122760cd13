-- A delivered image can be reported once.
CREATE TABLE output_reports (
    job_id      uuid NOT NULL REFERENCES jobs,
    n           int NOT NULL,
    reason      text NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, n)
);
