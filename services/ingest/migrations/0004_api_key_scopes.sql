-- Keys a tenant manages itself: an id to name one by, a name and scopes chosen at creation,
-- when it was last used (kept to the minute), and, once rotated, until when it still works.
-- Keys made before scopes existed keep every scope, so no client breaks.
ALTER TABLE api_keys ADD COLUMN id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid();
ALTER TABLE api_keys ADD COLUMN name text NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN scopes text[] NOT NULL
    DEFAULT ARRAY['jobs:write', 'jobs:read', 'account:read', 'keys:manage', 'webhooks:manage'];
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
