-- formerly: 0008_receipts
-- One signed receipt per final job, chained per tenant by `sequence` (the chain's head is
-- the tenant's highest) and each naming the hash of the one before.
CREATE TABLE receipts (
    job_id    uuid PRIMARY KEY,
    tenant_id text NOT NULL,
    sequence  bigint NOT NULL,
    sha256    text NOT NULL,
    document  jsonb NOT NULL,
    issued_at timestamptz NOT NULL,
    UNIQUE (tenant_id, sequence)
);

-- Every public key receipts were signed with, the current one and those rotated out, as
-- GET /.well-known/genline-keys.json publishes them.
CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,
    public_key      bytea NOT NULL,
    first_used_at   timestamptz NOT NULL DEFAULT now(),
    last_started_at timestamptz NOT NULL DEFAULT now()
);
