-- A tenant's alerts (account.balance_low, …) are sent like a job's webhooks, but belong to
-- no job.
ALTER TABLE webhook_messages ALTER COLUMN job_id DROP NOT NULL;
