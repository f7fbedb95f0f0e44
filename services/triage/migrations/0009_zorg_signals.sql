-- Prevention signals (zorgsignaal): one row per spot and window, raised by the incident
-- whose report made the count. The spot is kept as the incidents have it (point, address
-- key) so the next report there finds the signal; the same operational data as `incidents`.
CREATE TABLE zorg_signals (
    signal_id         uuid        PRIMARY KEY,
    incident_id       uuid        NOT NULL REFERENCES incidents (incident_id),
    raised_at         timestamptz NOT NULL,
    incidents         uuid[]      NOT NULL,
    categories        text[]      NOT NULL,
    matched_on        text        NOT NULL,
    lat               double precision,
    lon               double precision,
    address_key       text,
    buurt_code        text,
    wijk_code         text,
    last_occurred_at  timestamptz NOT NULL
);
CREATE INDEX zorg_signals_recent ON zorg_signals (last_occurred_at);
