-- A transfer names its account, an entry its account and its transfer: checked once per
-- statement over all the rows it inserted, where the foreign keys checked each row alone.
-- A foreign key runs a query per inserted row and takes a KEY SHARE lock on the row it
-- names: every concurrent batch of one tenant share-locked its account row, which the
-- batch then updates, so each batch also paid for a multixact on the hottest row there is.
-- The lock is what keeps a referenced row from being deleted under the reference; here no
-- account or transfer is ever deleted, and its key never changes (the triggers below refuse
-- both), so a check when the reference is written holds for good.

ALTER TABLE transfers DROP CONSTRAINT transfers_tenant_id_fkey;
ALTER TABLE entries DROP CONSTRAINT entries_tenant_id_fkey, DROP CONSTRAINT entries_transfer_id_fkey;

CREATE FUNCTION transfers_name_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    SELECT n.tenant_id INTO missing FROM written n
     WHERE NOT EXISTS (SELECT FROM accounts a WHERE a.tenant_id = n.tenant_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a transfer names no account: tenant %', missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER transfers_name_accounts AFTER INSERT ON transfers REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION transfers_name_accounts();

CREATE FUNCTION entries_name_accounts_and_transfers() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    SELECT coalesce('transfer ' || n.transfer_id::text, 'tenant ' || n.tenant_id) INTO missing FROM written n
     WHERE (n.transfer_id IS NOT NULL AND NOT EXISTS (SELECT FROM transfers t WHERE t.id = n.transfer_id))
        OR NOT EXISTS (SELECT FROM accounts a WHERE a.tenant_id = n.tenant_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'an entry names no such account or transfer: %', missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER entries_name_accounts_and_transfers AFTER INSERT ON entries REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION entries_name_accounts_and_transfers();

-- What a check when the reference is written relies on: accounts and transfers stay, under
-- the same key, and a reference is not pointed elsewhere afterwards.
CREATE FUNCTION ledger_rows_stay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted, nor their keys or references changed (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

-- A delete is refused for the whole statement, as a truncation can only be.
CREATE TRIGGER accounts_stay BEFORE DELETE OR TRUNCATE ON accounts FOR EACH STATEMENT
    EXECUTE FUNCTION ledger_rows_stay();
CREATE TRIGGER accounts_keep_their_key BEFORE UPDATE OF tenant_id ON accounts FOR EACH ROW
    WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id) EXECUTE FUNCTION ledger_rows_stay();
CREATE TRIGGER transfers_stay BEFORE DELETE OR TRUNCATE ON transfers FOR EACH STATEMENT
    EXECUTE FUNCTION ledger_rows_stay();
CREATE TRIGGER transfers_keep_their_key_and_account BEFORE UPDATE OF id, tenant_id ON transfers FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION ledger_rows_stay();
CREATE TRIGGER entries_keep_their_references BEFORE UPDATE OF tenant_id, transfer_id ON entries FOR EACH ROW
    WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id OR OLD.transfer_id IS DISTINCT FROM NEW.transfer_id)
    EXECUTE FUNCTION ledger_rows_stay();
