-- The urgent lane's delivery worker (LANE=urgent, docs/decisions/0006) is woken by P1/P2
-- deliveries only (LISTEN notify_deliveries_urgent); every delivery still wakes the main one.
CREATE OR REPLACE FUNCTION wake_delivery_worker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notify_deliveries', '');
    IF EXISTS (SELECT 1 FROM queued WHERE priority IN ('P1', 'P2')) THEN
        PERFORM pg_notify('notify_deliveries_urgent', '');
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER deliveries_wake ON deliveries;
CREATE TRIGGER deliveries_wake AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS queued
    FOR EACH STATEMENT EXECUTE FUNCTION wake_delivery_worker();
