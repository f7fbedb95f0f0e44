-- The audit of `veilig keys secrets reseal` and `veilig keys pii rotate|reseal`
-- (docs/decisions/0010): one row per invocation, written before anything is re-sealed and
-- completed afterwards, so a run that died half-way still shows who started it. Never a key
-- or a sealed value: the key's fingerprint and counts per table.
CREATE TABLE key_operations (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    who         text        NOT NULL CHECK (who <> ''),
    operation   text        NOT NULL
                            CHECK (operation IN ('secrets-reseal', 'pii-rotate', 'pii-reseal')),
    key_id      text        NOT NULL, -- fingerprint of the key sealed with (services/common/pii.py)
    -- {"<schema>.<table>": {"resealed": n, "unreadable": n}}; unreadable: no key opens it
    resealed    jsonb       NOT NULL DEFAULT '{}',
    outcome     text        NOT NULL DEFAULT 'started'
                            CHECK (outcome IN ('started', 'done', 'failed')),
    error       text,
    finished_at timestamptz
);
