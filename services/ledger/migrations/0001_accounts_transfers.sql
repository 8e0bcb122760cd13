-- Credits a tenant owns (`posted`) and credits held by open reservations (`pending`).
-- The database, not the application, keeps the available balance from going negative.
CREATE TABLE accounts (
    tenant_id  text PRIMARY KEY,
    posted     bigint NOT NULL DEFAULT 0,
    pending    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT available_never_negative CHECK (posted - pending >= 0),
    CONSTRAINT pending_never_negative CHECK (pending >= 0)
);

-- Two-phase transfers: pending (reserved) -> posted (charged, maybe less) | voided.
CREATE TABLE transfers (
    id         uuid PRIMARY KEY,
    job_id     uuid NOT NULL UNIQUE,
    tenant_id  text NOT NULL REFERENCES accounts,
    amount     bigint NOT NULL CHECK (amount > 0),
    unit_price bigint NOT NULL CHECK (unit_price > 0),
    images     int NOT NULL CHECK (images > 0),
    state      text NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    charged    bigint CHECK (charged >= 0 AND charged <= amount),
    created_at timestamptz NOT NULL DEFAULT now(),
    timeout_at timestamptz NOT NULL,
    settled_at timestamptz,
    CHECK ((state = 'pending') = (settled_at IS NULL)),
    CHECK ((state = 'pending') = (charged IS NULL))
);

-- The audit trail: every movement of credits, append-only.
CREATE TABLE entries (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES accounts,
    transfer_id uuid REFERENCES transfers,
    kind        text NOT NULL CHECK (kind IN ('grant', 'reserve', 'charge', 'release')),
    amount      bigint NOT NULL CHECK (amount >= 0),
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- At most one settlement (one charge and one release) per reservation.
CREATE UNIQUE INDEX one_settlement_per_transfer ON entries (transfer_id, kind) WHERE kind IN ('charge', 'release');
