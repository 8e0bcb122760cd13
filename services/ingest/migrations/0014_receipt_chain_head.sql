-- The head of each tenant's receipt chain (its last receipt's sequence and hash), kept on the
-- tenant's row: the statement that locks the row before the next receipt is signed returns
-- it, as the lock's last holder left it. A trigger keeps it, so every writer of receipts does.
ALTER TABLE tenants ADD COLUMN receipt_sequence bigint NOT NULL DEFAULT 0,
                    ADD COLUMN receipt_sha256 text;

UPDATE tenants t SET receipt_sequence = head.sequence, receipt_sha256 = head.sha256
FROM (SELECT DISTINCT ON (tenant_id) tenant_id, sequence, sha256 FROM receipts
      ORDER BY tenant_id, sequence DESC) AS head
WHERE t.id = head.tenant_id;

CREATE FUNCTION receipts_chained() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tenants t SET receipt_sequence = head.sequence, receipt_sha256 = head.sha256
    FROM (SELECT DISTINCT ON (tenant_id) tenant_id, sequence, sha256 FROM chained
          ORDER BY tenant_id, sequence DESC) AS head
    WHERE t.id = head.tenant_id AND head.sequence > t.receipt_sequence;
    RETURN NULL;
END $$;

CREATE TRIGGER receipts_chained AFTER INSERT ON receipts REFERENCING NEW TABLE AS chained
    FOR EACH STATEMENT EXECUTE FUNCTION receipts_chained();
