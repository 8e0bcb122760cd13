-- A tenant's subjects (POST /v1/subjects): a person or a product made known by its photos.
-- Its photos are stored sealed with the subject's own data key (a row of data_keys under the
-- subject's id), and so are its embeddings and its centroid: erasing a subject deletes the key,
-- and every copy of them is unreadable at once. `seq` counts its changes (SubjectChanged).
-- `last_ordered_at` is when a job last named it: the retention is counted from it (or from
-- its creation) unless the tenant keeps it.
CREATE TABLE subjects (
    id               uuid PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id),
    kind             text NOT NULL CHECK (kind IN ('person', 'product')),
    name             text NOT NULL,
    state            text NOT NULL CHECK (state IN ('screening', 'ready', 'training', 'trained', 'failed', 'erased')),
    keep             boolean NOT NULL DEFAULT false,
    trigger_word     text NOT NULL,
    seq              integer NOT NULL DEFAULT 0,
    photo_set_sha256 text,
    centroid         jsonb,
    reason           text NOT NULL DEFAULT '',
    identity         jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_ordered_at  timestamptz,
    erased_at        timestamptz
);
CREATE INDEX subjects_by_tenant ON subjects (tenant_id, created_at DESC, id DESC) WHERE state <> 'erased';
CREATE INDEX subjects_by_last_use ON subjects ((coalesce(last_ordered_at, created_at))) WHERE state <> 'erased' AND NOT keep;

-- Every photo offered to a subject, in the order offered, with its verdict (accepted, or
-- refused with its reasons); only an accepted photo is stored (`object_key`), with its
-- fingerprint and, for a person, its face embedding sealed with the subject's key.
CREATE TABLE subject_photos (
    subject_id  uuid NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    n           integer NOT NULL CHECK (n >= 1),
    sha256      text NOT NULL,
    accepted    boolean NOT NULL,
    verdict     jsonb NOT NULL,
    object_key  text,
    media_type  text,
    width       integer,
    height      integer,
    fingerprint text,
    embedding   bytea,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject_id, n),
    CHECK (accepted = (object_key IS NOT NULL))
);

-- How long a tenant's subjects are kept after their last order, in days (an operator sets it;
-- NULL: the platform's default).
ALTER TABLE tenants ADD COLUMN subject_retention_days integer CHECK (subject_retention_days >= 1);
