-- Evaluations: images the line did not make, judged by the scorer as a job's candidates are.
-- One answered at once, or a batch worked through in the background a few images at a time
-- (`next_image`), charged once when it ends, and told by webhook when it names one.
CREATE TABLE evaluations (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants,
    kind            text NOT NULL CHECK (kind IN ('single', 'batch')),
    status          text NOT NULL,
    request         jsonb NOT NULL,
    images          integer NOT NULL,
    next_image      integer NOT NULL DEFAULT 0,
    profile         text,
    failure         jsonb,
    charge          jsonb,
    webhook_url     text,
    webhook_state   text,
    webhook_attempts integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    lease_until     timestamptz,
    not_before      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evaluations_by_tenant ON evaluations (tenant_id, created_at DESC);
CREATE INDEX evaluations_to_run ON evaluations (not_before)
    WHERE status IN ('pending', 'running') OR webhook_state = 'pending';

-- Each image's source and verdict, in the order it was given.
CREATE TABLE evaluation_images (
    evaluation_id uuid NOT NULL REFERENCES evaluations ON DELETE CASCADE,
    n             integer NOT NULL,
    source        jsonb NOT NULL,
    key           text,
    verdict       jsonb,
    error         jsonb,
    PRIMARY KEY (evaluation_id, n)
);
