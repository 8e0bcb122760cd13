-- The read model keeps a job's prompt sealed only (`view.sealed_prompt`, as its events carry
-- it), so that whoever reads the table without the jobs' key-encryption key (the auditor's
-- role, a backup) sees no prompt; ingest opens it for the job's tenant. The views written
-- before kept the prompt in clear beside its sealed copy: it goes. An erased job keeps no
-- sealed copy either (its key is gone): its prompt reads as erased.
UPDATE jobs SET view = jsonb_set(view, '{prompt}', '""')
WHERE view->'sealed_prompt'->>'ciphertext' IS NOT NULL AND view->>'prompt' <> '[erased]';

UPDATE jobs SET view = jsonb_set(view, '{sealed_prompt}', 'null')
WHERE erased_at IS NOT NULL AND view->'sealed_prompt' IS NOT NULL AND view->'sealed_prompt' <> 'null'::jsonb;
