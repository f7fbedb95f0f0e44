-- The notify service's state. Everything a restart must not lose lives here: what each
-- recipient was told, every pending delivery with its retry schedule, every escalation timer.

-- Channels of recipients, written by `veilig recipients set`. `code` is a concrete recipient
-- code (politie.wijkagent.WK039201) or a taxonomy kind (politie.wijkagent.{wijk}); a concrete
-- row wins over its kind's row. Webhook secrets are sealed (services/common/pii.py).
CREATE TABLE channels (
    code               text PRIMARY KEY,
    webhook_url        text,
    webhook_format     text        NOT NULL DEFAULT 'json' CHECK (webhook_format IN ('json', 'cap')),
    secrets_sealed     text,
    email              text,
    -- Set when the endpoint said it is gone (HTTP 410, unknown mailbox); `set` clears it.
    webhook_disabled_at timestamptz,
    email_disabled_at  timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (webhook_url IS NOT NULL OR email IS NOT NULL),
    CHECK (webhook_url IS NULL OR secrets_sealed IS NOT NULL)
);

-- The incident as notify knows it: the report (reporter sealed) and the current decision.
CREATE TABLE incidents (
    incident_id uuid PRIMARY KEY,
    reported    jsonb,
    triaged     jsonb,
    -- Resolved, cancelled or merged into another incident: no further messages.
    closed_at   timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Who was told about an incident, and what they were first sent (CAP updates reference it).
CREATE TABLE audience (
    incident_id      uuid        NOT NULL,
    recipient        text        NOT NULL,
    profile          text        NOT NULL CHECK (profile IN ('full', 'operational', 'coarse')),
    -- decision: triage chose it; escalation: it was paged because another did not acknowledge.
    source           text        NOT NULL CHECK (source IN ('decision', 'escalation')),
    active           boolean     NOT NULL DEFAULT true,
    first_message_id uuid        NOT NULL,
    cap_identifier   text,
    cap_sent         timestamptz,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    PRIMARY KEY (incident_id, recipient)
);

-- One row per (incident, recipient, message): the rendered message (sealed: a full-profile
-- message holds reporter contact) and its retry schedule. message_id is the webhook-id.
CREATE TABLE deliveries (
    message_id        uuid PRIMARY KEY,
    seq               bigserial   NOT NULL UNIQUE,
    incident_id       uuid        NOT NULL,
    recipient         text        NOT NULL,
    kind              text        NOT NULL CHECK (kind IN ('alert', 'update', 'cancel')),
    channel           text        NOT NULL CHECK (channel IN ('webhook', 'cap', 'email')),
    profile           text        NOT NULL,
    priority          text        NOT NULL,
    content_type      text        NOT NULL,
    body_sealed       text        NOT NULL,
    first_message_id  uuid        NOT NULL,
    cap_identifier    text,
    cap_msg_type      text,
    acknowledge_by    timestamptz,
    -- The recipient whose missing acknowledgement this page escalates (NULL: not a page).
    escalation_root   text,
    -- SHA-256 of the one-time acknowledgement token in the message's link.
    ack_token_hash    bytea UNIQUE,
    acknowledged_at   timestamptz,
    status            text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_flight', 'delivered', 'failed')),
    attempts          integer     NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    -- While in flight: until when the claiming worker owns it; a crashed worker's lease runs out.
    lease_until       timestamptz,
    last_error        text,
    last_status_code  integer,
    created_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz,
    failed_at         timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'in_flight');
CREATE INDEX deliveries_recipient ON deliveries (incident_id, recipient, seq);
CREATE INDEX deliveries_failed ON deliveries (failed_at) WHERE status = 'failed';

CREATE TABLE delivery_attempts (
    message_id  uuid        NOT NULL REFERENCES deliveries (message_id),
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    outcome     text        NOT NULL,
    status_code integer,
    error       text,
    PRIMARY KEY (message_id, attempt)
);

-- One acknowledgement timer per (incident, recipient): when escalate_at passes unacknowledged,
-- the next in the recipient's chain is paged (level + 1), until someone acknowledges.
CREATE TABLE escalations (
    incident_id  uuid        NOT NULL,
    recipient    text        NOT NULL,
    message_id   uuid        NOT NULL,
    level        integer     NOT NULL DEFAULT 0,
    escalate_at  timestamptz NOT NULL,
    deadline     timestamptz NOT NULL,
    reason       text        NOT NULL DEFAULT 'not_acknowledged'
        CHECK (reason IN ('not_acknowledged', 'delivery_failed')),
    stopped_at   timestamptz,
    stop_reason  text,
    PRIMARY KEY (incident_id, recipient)
);
CREATE INDEX escalations_due ON escalations (escalate_at) WHERE stopped_at IS NULL;
