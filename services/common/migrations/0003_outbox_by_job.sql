-- A job's rows are found by its key when its data is erased (JobErased).
CREATE INDEX outbox_by_record_key ON outbox (record_key);
