-- Identities trained from subjects' photos (DESIGN.md §13). One live identity (training or
-- trained) per tenant, subject and photo set: two orders that race to train it find one row,
-- and one training is paid. A row is written before its training is submitted, the remote
-- job's handle before its first poll, the weights' copy in the internal bucket once trained.
-- A router claims the rows it drives (a lease, as for attempts): one that dies lets its claims
-- lapse, and another resumes the training from its handle. `cleanup` is work still owed at the
-- provider or in the bucket: `cancel` (the order was canceled while it trained), `erase` (the
-- subject was erased: the weights, the provider's copy, a training still running).
CREATE TABLE identities (
    identity_id              uuid PRIMARY KEY,
    tenant_id                text NOT NULL,
    subject_id               uuid NOT NULL,
    photo_set_sha256         text NOT NULL,
    provider                 text NOT NULL,
    model                    text NOT NULL,
    base                     text NOT NULL,
    trigger_word             text NOT NULL,
    job_id                   uuid NOT NULL,
    state                    text NOT NULL DEFAULT 'training'
                             CHECK (state IN ('training', 'trained', 'failed', 'canceled', 'erased')),
    handle                   jsonb,
    expected_cost_micro_usd  bigint NOT NULL DEFAULT 0 CHECK (expected_cost_micro_usd >= 0),
    cost_micro_usd           bigint CHECK (cost_micro_usd >= 0),
    weights_key              text,
    weights_sha256           text,
    weights_size_bytes       bigint,
    provider_version         text,
    failure_code             text,
    reason                   text,
    cleanup                  text CHECK (cleanup IN ('cancel', 'erase')),
    claimed_by               text,
    claimed_until            timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    submitted_at             timestamptz,
    ended_at                 timestamptz
);
CREATE UNIQUE INDEX identities_live ON identities (tenant_id, subject_id, photo_set_sha256)
    WHERE state IN ('training', 'trained');
CREATE INDEX identities_subject ON identities (tenant_id, subject_id);
CREATE INDEX identities_driven ON identities (claimed_until) WHERE state = 'training' OR cleanup IS NOT NULL;

-- How each order of a subject carries its identity: planned once (IdentityPlanned), and planned
-- again, by reference, if the training it waited for failed.
CREATE TABLE job_identities (
    job_id       uuid PRIMARY KEY REFERENCES jobs,
    subject_id   uuid NOT NULL,
    mode         text NOT NULL CHECK (mode IN ('lora', 'reference')),
    identity_id  uuid REFERENCES identities,
    trains       boolean NOT NULL,
    provider     text NOT NULL DEFAULT '',
    model        text NOT NULL DEFAULT '',
    planned_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_identities_identity ON job_identities (identity_id);

-- A subject order's verdicts are counted under its template and the way its identity was
-- carried (`headshots+identity:lora`), so that way's pass rate is learnt apart.
ALTER TABLE jobs ADD COLUMN rates_key text;

-- A rework of an order across styles asks only for what each style misses.
ALTER TABLE attempt_requests ADD COLUMN needed_by_style jsonb;
