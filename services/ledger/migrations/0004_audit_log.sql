-- The audit trail: every admin and account action of every service (AuditRecorded events),
-- each once by its event id. The ledger keeps it because it already keeps the platform's
-- money history; `genline replay audit` rebuilds it from the topics.
CREATE TABLE audit_log (
    event_id  text PRIMARY KEY,
    at        timestamptz NOT NULL,
    service   text NOT NULL,
    actor     text NOT NULL,
    action    text NOT NULL,
    target    text NOT NULL,
    tenant_id text,
    details   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_by_time ON audit_log (at DESC, event_id DESC);
CREATE INDEX audit_log_by_actor ON audit_log (actor, at DESC);
CREATE INDEX audit_log_by_action ON audit_log (action, at DESC);
