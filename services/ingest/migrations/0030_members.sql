-- The tenant's people and machines. A member is a person (an email, and once they signed in
-- through the tenant's identity provider, its issuer and subject) or a service account (a
-- name, no person), each with one role (services/ingest/accounts/roles.py). A removed member
-- stays, marked, so the audit trail's ids keep naming someone.
CREATE TABLE members (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   text NOT NULL REFERENCES tenants,
    kind        text NOT NULL CHECK (kind IN ('person', 'service')),
    email       text CHECK (email = lower(email)),
    name        text NOT NULL DEFAULT '',
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'billing', 'viewer')),
    idp_issuer  text,
    idp_subject text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz,
    CHECK ((kind = 'person') = (email IS NOT NULL)),
    CHECK ((idp_issuer IS NULL) = (idp_subject IS NULL)),
    CHECK (kind = 'person' OR role <> 'owner')
);
CREATE UNIQUE INDEX members_by_email ON members (tenant_id, email) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX members_by_identity ON members (tenant_id, idp_issuer, idp_subject) WHERE removed_at IS NULL;
CREATE INDEX members_by_tenant ON members (tenant_id, created_at);

-- A tenant that has owners keeps at least one: demoting or removing the last is refused by
-- the database itself. The service also locks the tenant's row around every change of its
-- members, so two changes at once cannot each leave the other as the last owner.
CREATE FUNCTION members_keep_an_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.role = 'owner' AND OLD.removed_at IS NULL AND NOT EXISTS (
        SELECT 1 FROM members WHERE tenant_id = OLD.tenant_id AND role = 'owner' AND removed_at IS NULL) THEN
        RAISE EXCEPTION 'tenant % would be left without an owner', OLD.tenant_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'members_keep_an_owner';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER members_keep_an_owner AFTER UPDATE OR DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION members_keep_an_owner();

-- Who owns a key: a member or a service account; none for the tenant's own keys (the ones
-- operators issue, and those made before members existed). A key dies with its owner unless
-- it was moved first.
ALTER TABLE api_keys ADD COLUMN owner_id uuid REFERENCES members;
CREATE INDEX api_keys_by_owner ON api_keys (owner_id) WHERE owner_id IS NOT NULL;

-- Keys keep what they could do: receipts were read with jobs:read, every key was managed with
-- keys:manage, and a key holding every scope there was holds the new ones too.
UPDATE api_keys SET scopes = scopes || ARRAY['receipts:read']
    WHERE 'jobs:read' = ANY(scopes) AND NOT 'receipts:read' = ANY(scopes);
UPDATE api_keys SET scopes = scopes || ARRAY['keys:admin']
    WHERE 'keys:manage' = ANY(scopes) AND NOT 'keys:admin' = ANY(scopes);
UPDATE api_keys SET scopes = scopes || ARRAY['members:manage', 'audit:read', 'sso:manage']
    WHERE scopes @> ARRAY['jobs:write', 'jobs:read', 'account:read', 'keys:manage', 'webhooks:manage',
                          'billing:manage'] AND NOT 'members:manage' = ANY(scopes);
ALTER TABLE api_keys ALTER COLUMN scopes SET DEFAULT ARRAY['jobs:write', 'jobs:read', 'receipts:read', 'account:read',
    'keys:manage', 'keys:admin', 'webhooks:manage'];
