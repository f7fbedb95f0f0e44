-- Priority lanes (docs/decisions/0006): the relay publishes urgent rows (copies for the
-- incident-events-urgent lane) before the rest, so a P1 never waits behind a backlog here.
ALTER TABLE outbox ADD COLUMN urgent boolean NOT NULL DEFAULT false;
CREATE INDEX outbox_urgent ON outbox (id) WHERE urgent;
