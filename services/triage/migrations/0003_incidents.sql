-- The triage view of every incident: the report as received, the current decision, and
-- where it stands. Free text and exact location are here because triage staff work with
-- them (operational data); reporter contact stays sealed inside `report`.
CREATE TABLE incidents (
    incident_id        uuid PRIMARY KEY,
    report             jsonb       NOT NULL,   -- the IncidentReported event as received
    occurred_at        timestamptz NOT NULL,
    received_at        timestamptz NOT NULL,
    partner            text        NOT NULL,
    lat                double precision,
    lon                double precision,
    buurt_code         text,
    wijk_code          text,
    category           text        NOT NULL,
    priority           text,                   -- NULL: no priority yet (triage queue)
    effective_priority text        NOT NULL,   -- what the deadlines are set by
    confidence         double precision NOT NULL,
    needs_review       boolean     NOT NULL,
    reasons            jsonb       NOT NULL,
    top_categories     jsonb       NOT NULL,
    recipients         jsonb       NOT NULL,
    acknowledge_by     timestamptz NOT NULL,
    handle_by          timestamptz NOT NULL,
    status             text        NOT NULL,
    report_count       integer     NOT NULL DEFAULT 1,
    merged_into        uuid REFERENCES incidents (incident_id),
    acknowledged_at    timestamptz,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX incidents_duplicates ON incidents (category, occurred_at) WHERE merged_into IS NULL;
CREATE INDEX incidents_queue ON incidents (status, needs_review, effective_priority);

-- Every change of an incident, appended, never edited: who, when, what and why.
CREATE TABLE history (
    id          bigserial PRIMARY KEY,
    incident_id uuid        NOT NULL REFERENCES incidents (incident_id),
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text        NOT NULL,
    actor       text,                          -- NULL: the platform itself
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX history_incident ON history (incident_id, id);
