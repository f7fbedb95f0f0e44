-- The nightly summary for horeca.khn (services/notify/nightlife.py): one per night, by the
-- evening it starts on; sent again until delivered.
CREATE TABLE nightly_summaries (
    night        date        PRIMARY KEY,
    attempts     integer     NOT NULL,
    last_error   text,
    delivered_at timestamptz
);
