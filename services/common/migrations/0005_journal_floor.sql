-- The journal's floor (services/common/journal.py): no row created before it is ever
-- published again, by a recovery or by `genline bus rebuild --all`. The relay stamps it on
-- every record it sends, so that a reader may forget, in its inbox, the events below it.
CREATE TABLE journal_floor (
    one           boolean PRIMARY KEY DEFAULT true CHECK (one),
    floor         timestamptz,
    -- A checkpoint under way: every row created before this time was published at or below
    -- the offsets in outbox_partitions.checkpoint. Once every reader group has read past
    -- them, the floor may rise to it (no higher than the republish window allows).
    checkpoint_at timestamptz
);
INSERT INTO journal_floor DEFAULT VALUES;
ALTER TABLE outbox_partitions ADD COLUMN checkpoint bigint;

-- Where an applied event came from, as its producer's journal stamped it: the topic and the
-- time its row was written. A row whose producer's floor has passed it can never arrive
-- again, and is pruned.
ALTER TABLE inbox ADD COLUMN topic text, ADD COLUMN journaled_at timestamptz;
CREATE INDEX inbox_by_journal_time ON inbox (topic, journaled_at) WHERE journaled_at IS NOT NULL;
