-- Which worker holds a delivery's lease: a worker that starts a new term after a database
-- blink hands back the leases it holds but is not sending (a claim whose reply was lost, an
-- attempt the blink interrupted before anything was sent), instead of leaving them to wait
-- out the lease (docs/runbooks/postgresql-failover.md).
ALTER TABLE deliveries ADD COLUMN leased_by uuid;
