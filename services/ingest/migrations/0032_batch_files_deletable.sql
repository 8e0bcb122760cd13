-- A tenant deletes its batch files (DELETE /v1/files/{id}), an ended batch's input among them:
-- the batch keeps naming the file, as OpenAI's batches do, so its reference is no longer a key.
ALTER TABLE batches DROP CONSTRAINT batches_input_file_id_fkey;
