-- formerly: 0005_job_log
-- The per-job event log. `seq` numbers a job's entries 1, 2, 3 … (jobs.log_seq is the last
-- one given); `tenant_seq` numbers all of a tenant's entries the same way (tenants.log_seq),
-- the cursor of the tenant-wide stream. Both counters are bumped under the row lock of the
-- transaction that writes the entries, so entries commit in the order of their numbers and
-- a reader that goes by number misses none.
ALTER TABLE jobs ADD COLUMN log_seq int NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN log_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE job_log (
    job_id     uuid NOT NULL REFERENCES jobs,
    seq        int NOT NULL CHECK (seq >= 1),
    tenant_id  text NOT NULL REFERENCES tenants,
    tenant_seq bigint NOT NULL CHECK (tenant_seq >= 1),
    type       text NOT NULL,
    time       timestamptz NOT NULL,
    payload    jsonb NOT NULL,
    PRIMARY KEY (job_id, seq),
    UNIQUE (tenant_id, tenant_seq)
);
