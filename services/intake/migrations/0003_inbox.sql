-- Consumed events, recorded in the same transaction as their effects (exactly-once effect).
CREATE TABLE inbox (
    event_id      uuid        PRIMARY KEY,
    processed_at  timestamptz NOT NULL DEFAULT now()
);
