CREATE TABLE tenants (
    id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored hashed; the prefix lets a tenant tell its keys apart.
CREATE TABLE api_keys (
    key_hash   text PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants,
    prefix     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- The job read model, built from the events of every service.
CREATE TABLE jobs (
    id         uuid PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants,
    state      text NOT NULL,
    view       jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, created_at DESC);

-- A retried POST with the same Idempotency-Key returns the first job instead of a new one.
CREATE TABLE idempotency_keys (
    tenant_id    text NOT NULL REFERENCES tenants,
    key          text NOT NULL,
    request_hash text NOT NULL,
    job_id       uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
