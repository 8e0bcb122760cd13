-- formerly: 0004_job_erasure
-- A job whose data its tenant deleted: the row stays (its id answers 410), its prompt is
-- gone. The reference photo is stored by content, so two jobs may share it: it is deleted
-- with the last job that uses it.
ALTER TABLE jobs ADD COLUMN erased_at timestamptz, ADD COLUMN reference_key text;
CREATE INDEX jobs_by_reference ON jobs (tenant_id, reference_key) WHERE reference_key IS NOT NULL;
