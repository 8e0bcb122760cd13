-- GET /v1/usage's days (images delivered and credits charged per UTC day) are summed from
-- a tenant's receipts of those days, found by when they were issued.
CREATE INDEX receipts_by_tenant_and_time ON receipts (tenant_id, issued_at);
