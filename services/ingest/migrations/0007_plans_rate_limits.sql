-- formerly: 0005_plans_rate_limits
-- Every tenant is on a plan (plans.yaml); existing tenants start on the free one.
ALTER TABLE tenants ADD COLUMN plan text NOT NULL DEFAULT 'free';

-- The request-rate limit's state: per tenant, the theoretical arrival time of its next
-- request (GCRA). One row, updated atomically, whichever replica answers.
CREATE TABLE rate_limits (
    tenant_id text PRIMARY KEY REFERENCES tenants,
    tat       timestamptz NOT NULL
);

-- A submission counts the tenant's jobs that are not final (its concurrent-jobs limit).
CREATE INDEX jobs_open_by_tenant ON jobs (tenant_id)
    WHERE state NOT IN ('rejected', 'succeeded', 'partially_succeeded', 'failed', 'canceled', 'expired');
