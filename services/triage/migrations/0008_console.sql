-- What notify did about each incident, from notification-events (dispatched, delivered,
-- failed, escalated, acknowledged), appended as it arrives: the console shows every
-- message with its delivery state, attempts and acknowledgement without asking notify.
CREATE TABLE notification_log (
    id          bigserial   PRIMARY KEY,
    incident_id uuid        NOT NULL,
    message_id  uuid        NOT NULL,
    recipient   text        NOT NULL,
    kind        text        NOT NULL,
    at          timestamptz NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX notification_log_incident ON notification_log (incident_id, id);

-- Reporter contact details revealed to staff: every reveal is an audit row with its reason
-- (in `audit.detail`); this index finds an incident's reveals quickly.
CREATE INDEX audit_action ON audit (incident_id, action);

-- The console's workflow: who owns an incident (claim/assign), and when one on hold is
-- due to be taken up again.
ALTER TABLE incidents ADD COLUMN owner text, ADD COLUMN resume_at timestamptz;

-- The queue's "suspected duplicates" view: open incidents of a category in a buurt, by time.
CREATE INDEX incidents_nearby ON incidents (category, buurt_code, occurred_at)
    WHERE merged_into IS NULL;
