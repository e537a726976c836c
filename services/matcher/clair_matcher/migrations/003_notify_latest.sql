-- Matchers hold each updater's newest operation refs (what a report's ETag and candidates are
-- read against) instead of asking for them on every report, and drop what they hold when this
-- notification arrives: every writer of latest_update_operation (updates, imports, deletes,
-- GC) is covered by the trigger, and NOTIFY is delivered at commit, to every matcher process.
CREATE FUNCTION notify_latest_update_operation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('clair_matcher_latest', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER latest_update_operation_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON latest_update_operation
    FOR EACH STATEMENT EXECUTE FUNCTION notify_latest_update_operation();
