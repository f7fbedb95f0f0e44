-- The queue's "suspected duplicates" view reads the open incidents in (category, buurt, time)
-- order (services/triage/queue.py). This index holds exactly those, in that order, with their
-- id: the view is one ordered index-only pass instead of a sort (or a self-join) of every
-- open incident. Its condition lists workflow.OPEN_STATUSES as the queue's queries do; the
-- planner uses it only while the two lists are the same.
CREATE INDEX incidents_open_nearby ON incidents (category, buurt_code, occurred_at)
    INCLUDE (incident_id)
    WHERE merged_into IS NULL
      AND status IN ('triaged', 'acknowledged', 'in_progress', 'on_hold', 'reopened');
DROP INDEX incidents_nearby;
