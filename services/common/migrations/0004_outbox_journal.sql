-- The outbox is this service's journal: a published row stays, with the partition and offset
-- the broker acknowledged, for its topic's retention window (the ledger's for ever).
ALTER TABLE outbox ADD COLUMN partition integer, ADD COLUMN "offset" bigint;

-- What this service knows of each partition it publishes to (services/common/journal.py).
CREATE TABLE outbox_partitions (
    topic            text NOT NULL,
    partition        integer NOT NULL,
    -- The broker (its cluster id) the offsets below were given by.
    broker           text,
    -- Where the partition's records begin: 0, or the end of the gap that opened its log
    -- after a rotation or after the broker lost its log.
    log_start        bigint NOT NULL DEFAULT 0,
    -- The highest offset the broker acknowledged to this service.
    acked_through    bigint,
    -- The partition's end as last seen, whoever wrote there.
    log_end          bigint,
    -- Every group that reads the topic has committed at least this offset: rows below it
    -- need not be published again when the broker loses its log.
    consumed_through bigint,
    -- A rotation under way: the offset its new log is to begin at.
    rotate_to        bigint,
    rotations        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)
);

-- Rows older than this were pruned (the topic's retention window): a replay of the journal
-- does not hold the history of what came before.
CREATE TABLE outbox_horizon (
    topic         text PRIMARY KEY,
    pruned_before timestamptz NOT NULL
);

