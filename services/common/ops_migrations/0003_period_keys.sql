-- Keys per period (docs/decisions/0010): what the platform puts on Kafka and in dead letters
-- that is personal is sealed with the key of its day (UTC). The purge destroys every key whose
-- day ended more than the retention period ago, which makes what it sealed unreadable in every
-- topic, dead letter and copy at once (crypto-shredding). A destroyed key keeps its row (when
-- it was made and destroyed), without the key.
CREATE TABLE period_keys (
    key_id       uuid        PRIMARY KEY,
    period       date        NOT NULL,
    -- The Fernet key, sealed with the PII key (services/common/pii.py); NULL once destroyed.
    key_sealed   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CHECK ((key_sealed IS NULL) = (destroyed_at IS NOT NULL))
);

-- One live key a day; a day whose key was destroyed gets a new one if it is sealed in again
-- (only a test that moves the clock does that).
CREATE UNIQUE INDEX period_keys_live ON period_keys (period) WHERE destroyed_at IS NULL;
