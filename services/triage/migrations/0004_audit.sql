-- Every staff request that reads or changes an incident: who, when, what.
CREATE TABLE audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    role        text        NOT NULL,
    action      text        NOT NULL,
    incident_id uuid,
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_incident ON audit (incident_id, id);
