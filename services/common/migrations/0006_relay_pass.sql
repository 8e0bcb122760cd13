-- A relay pass's opening (services/common/bus/outbox.py) in one statement: the bus fence and
-- the outbox's lock, shared, and its relay lock, then the rows to publish. The rows' query is
-- a statement of its own inside the function, so that in READ COMMITTED it takes its snapshot
-- after the locks: it sees what a recovery, a rotation or another replica's pass committed
-- while holding them. A statement that took the locks and read the rows together would read
-- with a snapshot taken before it waited.
-- A mark lost to a crash only has rows published again, which the inboxes skip: the pass
-- need not wait for the disk at its commit.
-- Tables are named as the caller's search_path finds them (the service's schema): a SET
-- clause on the function would also undo, on its return, the synchronous_commit set here.
CREATE FUNCTION relay_pass(fence bigint, outbox_lock bigint, relay_lock bigint, batch integer)
RETURNS TABLE (seq bigint, event_type text, topic text, record_key bytea, headers jsonb, body bytea,
               created_at timestamptz, floor timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock_shared(fence),
            pg_advisory_xact_lock_shared(outbox_lock), pg_advisory_xact_lock(relay_lock);
    -- Nothing while a rotation is under way. A row another transaction has locked (a prompt
    -- being erased) is waited for, not skipped: later rows first would break a job's order.
    RETURN QUERY
        SELECT o.seq, o.event_type, o.topic, o.record_key, o.headers, o.body, o.created_at,
               (SELECT f.floor FROM journal_floor f)
        FROM outbox o
        WHERE o.published_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM outbox_partitions p WHERE p.rotate_to IS NOT NULL)
        ORDER BY o.seq LIMIT batch FOR UPDATE OF o;
END $$;
