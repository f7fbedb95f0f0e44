-- Status callbacks (issue #17): a partner's webhook for what happens to its own reports.
-- Secrets are sealed (services/common/pii.py), as notify's are.
CREATE TABLE partner_callbacks (
    partner        text        PRIMARY KEY REFERENCES partners (code),
    url            text        NOT NULL,
    secrets_sealed text        NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- One message per public status change a partner asked to hear of, written by the trigger
-- below in the transaction that changed the status; the callback loop sends it (Standard
-- Webhooks, retried with backoff). Only what the partner may read: its own report's id, its
-- own external id, the public status and the public note.
CREATE TABLE callback_deliveries (
    id           bigserial   PRIMARY KEY,
    webhook_id   uuid        NOT NULL UNIQUE,
    partner      text        NOT NULL,
    incident_id  uuid        NOT NULL REFERENCES receipts (incident_id),
    external_id  text        NOT NULL,
    status       text        NOT NULL,
    note         text,
    at           timestamptz NOT NULL,
    state        text        NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    due_at       timestamptz NOT NULL DEFAULT now(),
    last_error   text,
    delivered_at timestamptz
);
CREATE INDEX callback_deliveries_due ON callback_deliveries (due_at) WHERE state = 'pending';

CREATE FUNCTION callback_on_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('triaged', 'needs_review', 'acknowledged', 'resolved', 'merged')
       AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status) THEN
        INSERT INTO callback_deliveries
            (webhook_id, partner, incident_id, external_id, status, note, at)
        SELECT gen_random_uuid(), NEW.partner, NEW.incident_id, r.external_id, NEW.status,
               NEW.note, NEW.at
        FROM partner_callbacks c JOIN receipts r ON r.incident_id = NEW.incident_id
        WHERE c.partner = NEW.partner;
        IF FOUND THEN
            PERFORM pg_notify(current_schema() || '_callbacks', '');
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER public_state_callback AFTER INSERT OR UPDATE ON public_state
    FOR EACH ROW EXECUTE FUNCTION callback_on_status();
