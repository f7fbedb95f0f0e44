-- Browser sessions of staff (the triage console) and one-time sign-in links.
-- Only SHA-256 digests of the cookie and of the link code are kept. A session belongs to the
-- token the account had when it began: rotating the token (or disabling the account) ends
-- every open session at its next request.
CREATE TABLE sessions (
    id_hash      bytea       PRIMARY KEY,
    username     text        NOT NULL REFERENCES staff (username),
    token_id     text        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    ended_at     timestamptz
);
CREATE INDEX sessions_open ON sessions (username) WHERE ended_at IS NULL;

CREATE TABLE signin_links (
    code_hash  bytea       PRIMARY KEY,
    username   text        NOT NULL REFERENCES staff (username),
    token_id   text        NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
