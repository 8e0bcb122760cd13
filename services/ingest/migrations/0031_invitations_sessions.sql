-- Invitations: a signed link mailed to an address, naming the role its holder joins as;
-- it works once, until it expires or is revoked. Only the link's hash is kept.
CREATE TABLE invitations (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants,
    email       text NOT NULL CHECK (email = lower(email)),
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'billing', 'viewer')),
    token_hash  text NOT NULL UNIQUE,
    invited_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid REFERENCES members,
    revoked_at  timestamptz,
    mailed_at   timestamptz,
    mail_error  text
);
CREATE INDEX invitations_by_tenant ON invitations (tenant_id, created_at DESC);

-- Sign-in links mailed to members of tenants without an identity provider: single use, short-lived.
CREATE TABLE sign_in_links (
    token_hash text PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants,
    member_id  uuid NOT NULL REFERENCES members,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- Console sessions, one per sign-in, held on the server: the browser keeps a random token in
-- an HttpOnly cookie (only its hash is here) and a CSRF token it must echo on every change.
-- A session ends when idle too long, at its absolute expiry, on sign-out, or when its member
-- is removed or changes role.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash   text NOT NULL UNIQUE,
    csrf_hash    text NOT NULL,
    tenant_id    text NOT NULL REFERENCES tenants,
    member_id    uuid NOT NULL REFERENCES members,
    method       text NOT NULL,
    origin       text,
    user_agent   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    ended_reason text
);
CREATE INDEX sessions_by_member ON sessions (member_id) WHERE ended_at IS NULL;

-- A tenant's OpenID Connect provider for the console's single sign-on. The client secret is
-- stored wrapped under the key-encryption key, as data keys are.
CREATE TABLE sso_providers (
    tenant_id        text PRIMARY KEY REFERENCES tenants,
    issuer           text NOT NULL,
    client_id        text NOT NULL,
    secret_kek       text,
    client_secret    bytea NOT NULL,
    allowed_domains  text[] NOT NULL DEFAULT '{}',
    groups_claim     text NOT NULL DEFAULT 'groups',
    group_roles      jsonb NOT NULL DEFAULT '{}',
    just_in_time     boolean NOT NULL DEFAULT false,
    default_role     text CHECK (default_role IN ('admin', 'developer', 'billing', 'viewer')),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A sign-in through the provider under way: its state, nonce and PKCE verifier, bound to the
-- browser that started it; taken once, when the provider sends the browser back.
CREATE TABLE sso_attempts (
    state         text PRIMARY KEY,
    browser_hash  text NOT NULL,
    tenant_id     text NOT NULL REFERENCES tenants,
    nonce         text NOT NULL,
    code_verifier text NOT NULL,
    invitation    text,
    return_to     text NOT NULL,
    expires_at    timestamptz NOT NULL
);

-- Every id_token a sign-in was made with, until it expires: the same token twice is a replay.
CREATE TABLE sso_seen_tokens (
    token_hash text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
