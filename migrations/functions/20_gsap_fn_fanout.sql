-- The outbox fan-out: one pending run per subscribed function, in the event's transaction.
CREATE OR REPLACE FUNCTION gsap_fn_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fn_runs (tenant_id, event_id, function)
        SELECT NEW.tenant_id, NEW.event_id, s.function FROM fn_subscriptions s
        WHERE s.event_type = NEW.type
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER events_fn_fanout AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION gsap_fn_fanout();
