-- Every image published to the public bucket.
CREATE TABLE delivered_images (
    job_id       uuid NOT NULL,
    n            int NOT NULL,
    tenant_id    text NOT NULL,
    key          text NOT NULL UNIQUE,
    source_key   text NOT NULL,
    sha256       text NOT NULL,
    size_bytes   bigint NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, n)
);
