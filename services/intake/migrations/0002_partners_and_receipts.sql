-- Partner systems and their API keys. A key is shown once; only its SHA-256 is kept.
CREATE TABLE partners (
    code            text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name            text        NOT NULL,
    kind            text        NOT NULL,
    scopes          text[]      NOT NULL,
    rate_per_minute integer     NOT NULL CHECK (rate_per_minute > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    partner     text        NOT NULL REFERENCES partners (code),
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_partner ON api_keys (partner);

-- One receipt per (partner, external_id): the idempotency record. body_hash tells a retry
-- (same body) from a conflicting reuse of the id (another body).
CREATE TABLE receipts (
    incident_id  uuid PRIMARY KEY,
    partner      text        NOT NULL REFERENCES partners (code),
    external_id  text        NOT NULL,
    body_hash    text        NOT NULL,
    channel      text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner, external_id)
);

-- The public history a partner may read of its own reports (no internal notes).
CREATE TABLE public_history (
    incident_id uuid        NOT NULL REFERENCES receipts (incident_id),
    seq         bigserial,
    at          timestamptz NOT NULL,
    status      text        NOT NULL,
    note        text,
    event_id    uuid        UNIQUE,
    PRIMARY KEY (incident_id, seq)
);

-- What triage decided, in words a partner may read (category, who handles it).
CREATE TABLE public_details (
    incident_id uuid PRIMARY KEY REFERENCES receipts (incident_id),
    category    text,
    priority    text,
    agencies    text,
    updated_at  timestamptz NOT NULL
);
