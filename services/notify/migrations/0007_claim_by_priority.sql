-- Deliveries are claimed most urgent first (docs/decisions/0006): P1 before P2 … P4, then by
-- due time; P1/P2 are claimed in their own query into capacity reserved for them.
CREATE INDEX deliveries_due_by_priority ON deliveries (priority, next_attempt_at)
    WHERE status IN ('pending', 'in_flight');
