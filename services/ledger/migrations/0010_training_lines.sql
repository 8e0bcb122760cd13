-- A job's training line: credits held with the job, apart from its images, to train its
-- subject's identity (CreditsReserved.training_credits). One per job; posted when the job
-- trained the identity (IdentityTrained), voided when it reused one, trained nothing or its
-- training failed through no fault of the tenant. Its journal lines name the job in `reason`.
CREATE TABLE training_holds (
    job_id           uuid PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES accounts,
    subject_id       uuid NOT NULL,
    photo_set_sha256 text NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    state            text NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    charged          bigint CHECK (charged >= 0 AND charged <= amount),
    identity_id      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    settled_at       timestamptz,
    CHECK ((state = 'pending') = (settled_at IS NULL))
);
-- An identity is charged once per tenant and subject, whichever jobs report it.
CREATE UNIQUE INDEX one_charge_per_identity ON training_holds (tenant_id, subject_id, identity_id)
    WHERE state = 'posted';

-- The identities the ledger saw trained, by tenant, subject and photo set: a later order of the
-- same photo set is quoted and held no training line.
CREATE TABLE identities_trained (
    tenant_id        text NOT NULL,
    subject_id       uuid NOT NULL,
    photo_set_sha256 text NOT NULL,
    identity_id      uuid NOT NULL,
    trained_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, subject_id, photo_set_sha256)
);
