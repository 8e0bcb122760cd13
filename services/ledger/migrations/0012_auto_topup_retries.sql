-- Auto top-up retries as the card networks allow them (payments/retries.py): a declined
-- charge is tried again when `next_try_at` comes (hours, then days later), never sooner; a
-- decline the networks forbid retrying pauses the rule and refuses its card for good.
ALTER TABLE auto_topup_rules ADD COLUMN next_try_at timestamptz;
CREATE INDEX auto_topup_rules_retrying ON auto_topup_rules (next_try_at) WHERE enabled AND next_try_at IS NOT NULL;

-- The cards a decline the networks forbid retrying refused: never charged off-session again.
CREATE TABLE refused_cards (
    tenant_id      text NOT NULL,
    payment_method text NOT NULL,
    failure_code   text NOT NULL,
    refused_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, payment_method)
);
