-- An order across styles keeps each style's share and never selects two near-duplicates,
-- over every chunk and attempt of the job: each score keeps the candidate's style and its
-- perceptual fingerprint beside its verdict, so what earlier chunks selected is read back
-- without opening every published score.
ALTER TABLE scores ADD COLUMN style text;
ALTER TABLE scores ADD COLUMN fingerprint text;
