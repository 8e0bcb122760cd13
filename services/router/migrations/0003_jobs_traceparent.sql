-- The trace of the event that admitted the job: attempts run outside the consumer (in the
-- scheduler, maybe in another router process) and continue this trace.
ALTER TABLE jobs ADD COLUMN traceparent text;
