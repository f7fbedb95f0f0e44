-- Counting the partners behind an incident (a priority raise needs independent reporters,
-- services/triage/store.py reporting_partners) reads what was merged into it.
CREATE INDEX incidents_merged_into ON incidents (merged_into) WHERE merged_into IS NOT NULL;
