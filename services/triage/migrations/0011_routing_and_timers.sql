-- The incident page's routing section: every routing rule checked for the current decision
-- (which matched, why, whom each added), kept with the decision it explains, so the page
-- shows what decided even after routes.yaml changed. NULL: decided before it was kept.
ALTER TABLE incidents ADD COLUMN routing jsonb;

-- The workflow's timers (services/triage/timers.py): a hold resumes at its resume time, and
-- a missed handle-by deadline is raised once. handle_by_missed is the deadline it was raised
-- for: a new deadline (a priority change) can be missed, and raised, again.
ALTER TABLE incidents ADD COLUMN handle_by_missed timestamptz;
CREATE INDEX incidents_resume_due ON incidents (resume_at) WHERE status = 'on_hold';
CREATE INDEX incidents_handle_by_due ON incidents (handle_by)
    WHERE status IN ('triaged', 'acknowledged', 'in_progress', 'on_hold', 'reopened')
    AND handle_by_missed IS DISTINCT FROM handle_by;
