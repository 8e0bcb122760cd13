-- formerly: 0003_webhooks
-- Webhooks. Delivery owns them (DESIGN §2): the tenants' endpoints with their signing
-- secrets, the secret that signs jobs' own webhook URLs, the messages to send (its webhook
-- outbox: one per event and target, sent until delivered or out of retries) and every attempt.
CREATE TABLE webhook_endpoints (
    id                  uuid PRIMARY KEY,
    tenant_id           text NOT NULL,
    url                 text NOT NULL,
    description         text NOT NULL DEFAULT '',
    event_types         text[] NOT NULL,
    enabled             boolean NOT NULL DEFAULT true,
    disabled_reason     text,
    secret              text NOT NULL,
    -- After a rotation the previous secret signs too, until it expires.
    previous_secret     text,
    previous_expires_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- Deleted endpoints are kept (hidden) with their attempts, and sent nothing more.
    deleted_at          timestamptz
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at);

CREATE TABLE webhook_job_secrets (
    tenant_id  text PRIMARY KEY,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_messages (
    id              uuid PRIMARY KEY,
    -- The `webhook-id` header: one per (event, target), kept by retries and redeliveries.
    webhook_id      text NOT NULL UNIQUE,
    tenant_id       text NOT NULL,
    -- None for a job's own webhook_url, signed with the tenant's job secret.
    endpoint_id     uuid REFERENCES webhook_endpoints,
    url             text NOT NULL,
    job_id          uuid NOT NULL,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'abandoned')),
    -- Failed attempts since the message was queued (or redelivered): the step of the schedule.
    failures        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_messages_by_job ON webhook_messages (job_id);

CREATE TABLE webhook_attempts (
    id               uuid PRIMARY KEY,
    message_id       uuid NOT NULL REFERENCES webhook_messages ON DELETE CASCADE,
    attempted_at     timestamptz NOT NULL,
    status_code      int,
    latency_ms       int NOT NULL,
    response_excerpt text NOT NULL DEFAULT '',
    error            text
);
CREATE INDEX webhook_attempts_by_message ON webhook_attempts (message_id, attempted_at);
