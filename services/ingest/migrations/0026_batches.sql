-- Batches (OpenAI's Batch API): a JSONL file of requests, uploaded once and kept in the object
-- store in chunks of whole lines, and a batch that submits its lines as bulk jobs a window at
-- a time, recording each line's job as it goes, so a restart at any point goes on from the
-- last line recorded and a line is never submitted twice (each carries its own idempotency key).
CREATE TABLE batch_files (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants,
    purpose     text NOT NULL,
    -- input: an uploaded file (its chunks); output and error: made from a batch's lines when read.
    kind        text NOT NULL CHECK (kind IN ('input', 'output', 'error')),
    filename    text NOT NULL,
    bytes       bigint NOT NULL,
    lines       integer NOT NULL,
    endpoint    text,
    batch_id    uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);
CREATE INDEX batch_files_by_tenant ON batch_files (tenant_id, created_at DESC);

-- An input file's chunks: `lines` whole lines from line `first_line` (0-based), in one object.
CREATE TABLE batch_file_chunks (
    file_id    uuid NOT NULL REFERENCES batch_files ON DELETE CASCADE,
    chunk      integer NOT NULL,
    first_line integer NOT NULL,
    lines      integer NOT NULL,
    bytes      integer NOT NULL,
    PRIMARY KEY (file_id, chunk)
);

CREATE TABLE batches (
    id                uuid PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants,
    endpoint          text NOT NULL,
    input_file_id     uuid NOT NULL REFERENCES batch_files,
    completion_window text NOT NULL,
    metadata          jsonb,
    status            text NOT NULL,
    total             integer NOT NULL,
    -- Lines recorded so far (submitted as jobs, or refused): the next line to submit.
    next_line         integer NOT NULL DEFAULT 0,
    api_key_id        uuid,
    key_caps          jsonb,
    output_file_id    uuid,
    error_file_id     uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    in_progress_at    timestamptz,
    finalizing_at     timestamptz,
    completed_at      timestamptz,
    failed_at         timestamptz,
    expired_at        timestamptz,
    cancelling_at     timestamptz,
    cancelled_at      timestamptz,
    expires_at        timestamptz NOT NULL,
    -- The runner that works on the batch until then (one at a time, on any replica), and the
    -- earliest time it is looked at again (a plan's limit said to wait).
    lease_until       timestamptz,
    not_before        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_by_tenant ON batches (tenant_id, created_at DESC, id DESC);
CREATE INDEX batches_to_run ON batches (not_before) WHERE status IN ('in_progress', 'cancelling');

-- Each recorded line: its job and how its answer is asked for (links or base64, the quality
-- named), or why it was refused (status and OpenAI-shaped error).
CREATE TABLE batch_lines (
    batch_id    uuid NOT NULL REFERENCES batches ON DELETE CASCADE,
    line        integer NOT NULL,
    custom_id   text NOT NULL,
    job_id      uuid,
    asked       jsonb,
    status_code integer,
    error       jsonb,
    PRIMARY KEY (batch_id, line)
);
CREATE INDEX batch_lines_by_job ON batch_lines (job_id) WHERE job_id IS NOT NULL;
