-- Notify caches channels with their opened secrets (services/notify/registry.py
-- ChannelCache); every change to a channel, by the CLI, the API or a 410, tells every notify
-- process to drop its cache at once.
CREATE FUNCTION channels_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notify_channels', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER channels_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON channels
    FOR EACH STATEMENT EXECUTE FUNCTION channels_changed();
