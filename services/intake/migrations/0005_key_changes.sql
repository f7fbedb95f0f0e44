-- Intake caches active API keys (services/intake/partners.py KeyCache); every change to a
-- key or a partner (issue, revoke, scopes, rate) tells every intake process to drop its cache
-- at once, so a revocation takes effect immediately.
CREATE FUNCTION keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_keys', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION keys_changed();
CREATE TRIGGER partners_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON partners
    FOR EACH STATEMENT EXECUTE FUNCTION keys_changed();
