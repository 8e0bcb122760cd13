-- An attempt's candidates are one object: a delivered image names its candidate's place in
-- it (NULL for a candidate stored alone), and the retention sweeper notes each such object
-- whose delivered candidates it blanked (when the object was first written: its audit
-- period still counts from then, though blanking wrote it anew).
ALTER TABLE delivered_images ADD COLUMN source_offset bigint CHECK (source_offset >= 0),
                             ADD COLUMN source_size bigint CHECK (source_size >= 0);
CREATE TABLE blanked_sources (
    source_key text PRIMARY KEY,
    tenant_id  text NOT NULL,
    written_at timestamptz NOT NULL,
    blanked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX blanked_sources_by_tenant ON blanked_sources (tenant_id);
