-- Delivery decides each job's outcome once: delivered, failed, or canceled (expired) when a
-- cancel reached it before the images were published. Whichever of the scored event and
-- the cancel commits first wins; the other changes nothing.
CREATE TABLE job_outcomes (
    job_id     uuid PRIMARY KEY,
    tenant_id  text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'canceled', 'expired')),
    decided_at timestamptz NOT NULL DEFAULT now()
);
