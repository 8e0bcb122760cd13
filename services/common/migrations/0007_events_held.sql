-- Events of a type this release does not know (one a later release writes), kept as they
-- were received rather than dead-lettered, until a release that knows the type applies them
-- (services/common/bus/held.py). Added in 0.2.0: expand only, nothing older reads it.
CREATE TABLE events_held (
    event_id text PRIMARY KEY,
    event_type text NOT NULL,
    topic text NOT NULL,
    record_key bytea,
    headers jsonb NOT NULL,
    body bytea NOT NULL,
    producer_version text,
    held_at timestamptz NOT NULL DEFAULT now()
);
