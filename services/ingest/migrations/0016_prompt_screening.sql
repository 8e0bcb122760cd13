-- A tenant's own prompt rules (category, terms, wildcard patterns), and what happens to its
-- jobs while the hosted moderation provider is down: fail_open (they go on) or fail_closed.
CREATE TABLE prompt_screening (
    tenant_id  text PRIMARY KEY REFERENCES tenants,
    rules      jsonb NOT NULL DEFAULT '[]',
    policy     text CHECK (policy IN ('fail_open', 'fail_closed')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
