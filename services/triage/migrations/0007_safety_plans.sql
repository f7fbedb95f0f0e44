-- Wijkveiligheidsplannen: each wijk's current plan (an ended one stays, with its end date).
-- Every change is also a row of `audit` and an event on the safety-plans topic; NOTIFY on
-- channel triage_safety_plans makes every triage replica load the plans again at once.
CREATE TABLE safety_plans (
    wijk_code   text        PRIMARY KEY,
    categories  text[]      NOT NULL,
    starts_on   date        NOT NULL,
    ends_on     date,
    adopted_by  text        NOT NULL,
    adopted_on  date        NOT NULL,
    version     integer     NOT NULL,
    updated_at  timestamptz NOT NULL,
    updated_by  text        NOT NULL
);
