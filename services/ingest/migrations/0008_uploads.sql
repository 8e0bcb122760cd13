-- formerly: 0006_uploads
-- Screened uploads: a tenant's input photos, stored in the internal bucket, referenced by jobs.
CREATE TABLE uploads (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    key         text NOT NULL,
    media_type  text NOT NULL,
    width       integer NOT NULL,
    height      integer NOT NULL,
    size_bytes  bigint NOT NULL,
    sha256      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_by_tenant ON uploads (tenant_id, created_at DESC);
