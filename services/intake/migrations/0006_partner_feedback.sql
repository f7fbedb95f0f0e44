-- Feedback to the reporting partner (issue #17): listing its own reports, withdrawing one.

-- One withdrawal per report (POST /v1/incidents/{id}:withdraw), written in the same
-- transaction as its withdrawal-requested event in the outbox; a repeat reads it back.
CREATE TABLE withdrawals (
    incident_id  uuid PRIMARY KEY REFERENCES receipts (incident_id),
    reason       text        NOT NULL,
    requested_at timestamptz NOT NULL,
    event_id     uuid        NOT NULL
);

-- The latest public status of every report, so that GET /v1/incidents pages through a
-- partner's reports by index instead of reading every history. A trigger keeps it, so every
-- writer of public_history (accepting a report, the public-history consumer) keeps it right.
-- changed_at is when intake recorded the change: the order of the partner's feed.
CREATE TABLE public_state (
    incident_id uuid PRIMARY KEY REFERENCES receipts (incident_id),
    partner     text        NOT NULL,
    status      text        NOT NULL,
    note        text,
    at          timestamptz NOT NULL,  -- when the status took effect (the history entry's at)
    seq         bigint      NOT NULL,
    changed_at  timestamptz NOT NULL
);
CREATE INDEX public_state_feed ON public_state (partner, changed_at, incident_id);
CREATE INDEX public_state_by_status ON public_state (partner, status, changed_at, incident_id);

CREATE FUNCTION public_state_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public_state (incident_id, partner, status, note, at, seq, changed_at)
    SELECT NEW.incident_id, r.partner, NEW.status, NEW.note, NEW.at, NEW.seq, clock_timestamp()
    FROM receipts r WHERE r.incident_id = NEW.incident_id
    ON CONFLICT (incident_id) DO UPDATE
        SET status = EXCLUDED.status, note = EXCLUDED.note, at = EXCLUDED.at,
            seq = EXCLUDED.seq, changed_at = EXCLUDED.changed_at
        -- the latest entry by (at, seq) is the status, as in the history a partner reads;
        -- an event that arrives late but happened earlier changes nothing here
        WHERE (EXCLUDED.at, EXCLUDED.seq) > (public_state.at, public_state.seq);
    RETURN NULL;
END;
$$;
CREATE TRIGGER public_history_state AFTER INSERT ON public_history
    FOR EACH ROW EXECUTE FUNCTION public_state_follow();

INSERT INTO public_state (incident_id, partner, status, note, at, seq, changed_at)
SELECT DISTINCT ON (h.incident_id) h.incident_id, r.partner, h.status, h.note, h.at, h.seq, h.at
FROM public_history h JOIN receipts r USING (incident_id)
ORDER BY h.incident_id, h.at DESC, h.seq DESC;

-- Open311 lists a partner's requests by when they were received (GET /open311/v2/requests.json).
CREATE INDEX receipts_by_partner ON receipts (partner, received_at);
