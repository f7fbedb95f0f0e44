-- Each wijk's safety plan as the safety-plans topic last said (no personal data: the actor
-- of a change is not kept). A plan's version only goes up: a replayed older event is ignored.
CREATE TABLE safety_plans (
    wijk_code   text    PRIMARY KEY,
    categories  text[]  NOT NULL,
    starts_on   date    NOT NULL,
    ends_on     date,
    adopted_by  text    NOT NULL,
    adopted_on  date    NOT NULL,
    version     integer NOT NULL
);
