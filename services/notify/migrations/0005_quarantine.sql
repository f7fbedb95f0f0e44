-- One bad item never blocks the others: a delivery or an escalation timer whose processing
-- throws a deterministic error (a bug, corrupt data) is quarantined with its error, visible to
-- ops (GET /ops/quarantine, veilig_notify_quarantined), and skipped while the rest proceed.
-- Transient errors (database or broker away) are never a reason to quarantine.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'in_flight', 'delivered', 'failed', 'quarantined'));
ALTER TABLE deliveries ADD COLUMN quarantined_at timestamptz;

ALTER TABLE escalations ADD COLUMN quarantined_at timestamptz;
ALTER TABLE escalations ADD COLUMN quarantine_error text;
DROP INDEX escalations_due;
CREATE INDEX escalations_due ON escalations (escalate_at)
    WHERE stopped_at IS NULL AND quarantined_at IS NULL;
