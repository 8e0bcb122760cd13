-- Wake the outbox relay of this service, in every process, when a transaction that added
-- outbox rows commits: NOTIFY is delivered at commit, once per transaction and channel.
CREATE FUNCTION outbox_committed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_committed AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_committed();
