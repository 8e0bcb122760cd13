-- formerly: 0007_data_keys
-- Each job's data key (services.common.sealing): its prompt travels in events sealed with
-- it. Erasing the job deletes the row, and with it every copy of the prompt.
CREATE TABLE data_keys (
    job_id     uuid PRIMARY KEY,
    tenant_id  text NOT NULL,
    key        bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
