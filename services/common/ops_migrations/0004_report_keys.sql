-- A key per report (docs/decisions/0010): the personal part of a report on Kafka is sealed with
-- a key of its own, kept here wrapped with its day's period key. Erasing one report on request
-- deletes its row, which makes every copy of it on Kafka unreadable at once; the purge destroys
-- the day's key, which makes the day's rows useless (and deletes them).
CREATE TABLE report_keys (
    incident_id  uuid        PRIMARY KEY,
    key_id       uuid        NOT NULL REFERENCES period_keys (key_id),
    key_wrapped  text        NOT NULL, -- the report's Fernet key, sealed with the period key
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX report_keys_by_period_key ON report_keys (key_id);
