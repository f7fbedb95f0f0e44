-- Staff accounts of the staff-facing APIs (triage console, analytics) and their tokens.
-- A token is `vs_<token_id>_<secret>`; only the SHA-256 of the secret is kept.
CREATE TABLE staff (
    username    text        PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    role        text        NOT NULL CHECK (role IN ('triage', 'ops', 'admin')),
    token_id    text        NOT NULL UNIQUE,
    token_hash  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);
