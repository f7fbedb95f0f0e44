-- Personal data has an end (docs/decisions/0010): when a report's personal data (contact,
-- description, exact location) was erased, by the retention purge or on request. The index
-- finds what the daily purge still owes.
ALTER TABLE incidents ADD COLUMN personal_data_erased_at timestamptz;
CREATE INDEX incidents_personal_data_due ON incidents (received_at)
    WHERE personal_data_erased_at IS NULL;
