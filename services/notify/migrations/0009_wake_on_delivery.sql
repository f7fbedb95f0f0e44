-- Queuing a delivery wakes the delivery worker (LISTEN notify_deliveries): a statement trigger,
-- so that a batch of deliveries costs no extra round trip per message; notifications within a
-- transaction are folded into one, sent at commit.
CREATE FUNCTION wake_delivery_worker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notify_deliveries', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER deliveries_wake AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION wake_delivery_worker();
