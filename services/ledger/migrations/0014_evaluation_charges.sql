-- Evaluations (images scored on their own) charged once each: the charge as announced.
CREATE TABLE evaluation_charges (
    evaluation_id uuid PRIMARY KEY,
    tenant_id     text NOT NULL,
    amount        bigint NOT NULL CHECK (amount >= 0),
    event         jsonb NOT NULL,
    charged_at    timestamptz NOT NULL DEFAULT now()
);
