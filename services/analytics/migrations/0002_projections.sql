-- The projections. No personal data: ids, times and codes only (no text, no coordinates,
-- no names of reporters or staff).

-- What analytics keeps of every consumed event: the facts the projections are made from.
-- One row per event id, so the set of rows is the set of events seen, in whatever order.
CREATE TABLE events (
    event_id          uuid        PRIMARY KEY,
    incident_id       uuid        NOT NULL,
    type              text        NOT NULL,  -- incident.reported, notification.delivered, ...
    occurred_at       timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL,
    category          text,                  -- hint (reported), triaged, reclassified
    priority          text,                  -- triaged, priority-changed
    status            text,                  -- the incident status the event implies
    wijk              text,                  -- CBS codes of Haarlem only
    buurt             text,
    partner           text,                  -- reporting partner system (reported)
    recipient         text,                  -- recipient code (notifications, acknowledged)
    outcome           text,                  -- resolution outcome, or delivery outcome
    acknowledge_by    timestamptz,
    handle_by         timestamptz,
    related_incident  uuid,                  -- merged: the duplicate merged into incident_id
    report_count      integer
);
CREATE INDEX events_incident ON events (incident_id);
CREATE INDEX events_related ON events (related_incident) WHERE related_incident IS NOT NULL;
CREATE INDEX events_notifications ON events (occurred_at) WHERE type LIKE 'notification.%';

-- One row per incident, recomputed from all its events whenever one arrives: a pure function
-- of the set of events, so any arrival order (and a rebuild) converges to the same row.
CREATE TABLE incident_facts (
    incident_id         uuid        PRIMARY KEY,
    occurred_at         timestamptz,  -- when it happened, as reported: counts are bucketed by it
    received_at         timestamptz,  -- when intake recorded it: response times start here
    partner             text,
    category            text,
    priority            text,
    wijk                text,
    buurt               text,
    status              text,
    triaged_at          timestamptz,
    first_delivered_at  timestamptz,
    acknowledged_at     timestamptz,
    resolved_at         timestamptz,  -- only while resolved (a reopened incident is open)
    acknowledge_by      timestamptz,
    handle_by           timestamptz,
    report_count        integer     NOT NULL,
    merged_into         uuid,         -- set on a duplicate: it is not counted as an incident
    duplicates          integer     NOT NULL,
    escalations         integer     NOT NULL
);
CREATE INDEX incident_facts_occurred ON incident_facts (occurred_at);
CREATE INDEX incident_facts_received ON incident_facts (received_at);
CREATE INDEX incident_facts_open ON incident_facts (priority, status)
    WHERE status NOT IN ('resolved', 'cancelled', 'merged');
