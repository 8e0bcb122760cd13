-- formerly: 0010_wrapped_data_keys
-- Data keys are stored wrapped under a key-encryption key (services/ingest/key_encryption.py),
-- which this column names; NULL: a key stored before wrapping, in clear, until
-- `genline data-keys rewrap` wraps it.
ALTER TABLE data_keys ADD COLUMN kek_id text;
