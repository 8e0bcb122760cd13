-- Listing filters by template and pages newest first by (created_at, id), a stable order
-- while new jobs arrive.
ALTER TABLE jobs ADD COLUMN template text;
UPDATE jobs SET template = view->>'template';
ALTER TABLE jobs ALTER COLUMN template SET NOT NULL;
DROP INDEX jobs_by_tenant;
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, created_at DESC, id DESC);

-- The sweeper looks for jobs that are not final, oldest change first.
CREATE INDEX jobs_open ON jobs (updated_at)
    WHERE state NOT IN ('rejected', 'succeeded', 'partially_succeeded', 'failed', 'canceled', 'expired');

-- Idempotency keys expire: a key older than the TTL may be used again for another request.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
