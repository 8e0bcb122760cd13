-- What each API key has spent, per UTC day and per UTC month: credits held by its open
-- reservations plus credits charged. A hold adds to both rows and writes the key's cap in
-- force there; the CHECK refuses a sum beyond it, so holds on one key that race on any
-- replica cannot pass the cap together (the loser's batch is rolled back and decided again).
-- A settlement gives back what it released; a lowered cap stops the next hold, not a release.
CREATE TABLE key_spend (
    api_key_id uuid NOT NULL,
    period     text NOT NULL CHECK (period IN ('day', 'month')),
    starts_on  date NOT NULL,
    tenant_id  text NOT NULL,
    spent      bigint NOT NULL CHECK (spent >= 0),
    cap        bigint CHECK (cap >= 0),
    PRIMARY KEY (api_key_id, period, starts_on),
    CONSTRAINT key_spend_within_cap CHECK (cap IS NULL OR spent <= cap)
);

-- The key a hold was made for and the day it counts on, so its settlement gives back there.
ALTER TABLE transfers
    ADD COLUMN api_key_id uuid,
    ADD COLUMN spent_on date;
