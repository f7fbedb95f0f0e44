-- signal: told of a prevention signal (zorgsignaal) the incident raised; like one paged by
-- escalation it stays involved until the incident closes, and it is never "dropped".
ALTER TABLE audience DROP CONSTRAINT audience_source_check;
ALTER TABLE audience ADD CONSTRAINT audience_source_check
    CHECK (source IN ('decision', 'escalation', 'signal'));
