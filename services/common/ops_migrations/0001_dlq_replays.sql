-- The audit of `veilig dlq replay`: one row per invocation, dry runs included.
-- A row is written before anything is sent (outcome 'started') and completed afterwards, so
-- a replay that died half-way still shows who started it and what it meant to send.
CREATE TABLE dlq_replays (
    id           bigserial   PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    who          text        NOT NULL CHECK (who <> ''),
    dlq_topic    text        NOT NULL,              -- with the deployment's topic prefix
    target_topic text        NOT NULL,              -- where the records went (their source)
    partition    integer,                           -- --partition; NULL: every partition
    from_offset  bigint,                            -- --from; NULL: from the beginning
    ranges       jsonb       NOT NULL DEFAULT '[]', -- [{"partition", "first", "last", "records"}]
    records      integer     NOT NULL CHECK (records >= 0), -- replayed, or would be (dry run)
    sent         integer     NOT NULL DEFAULT 0 CHECK (sent >= 0),
    reason       text,
    dry_run      boolean     NOT NULL,
    outcome      text        NOT NULL DEFAULT 'started'
                             CHECK (outcome IN ('started', 'replayed', 'dry-run', 'failed')),
    error        text,
    finished_at  timestamptz,
    CHECK (dry_run OR coalesce(btrim(reason), '') <> '')
);
CREATE INDEX dlq_replays_topic_at ON dlq_replays (dlq_topic, at);
