-- The outbox fan-out: one pending run per subscribed function, in the event's transaction;
-- a fallback subscription (fn_subscriptions.fallback_for, 0021) gets none here.
CREATE OR REPLACE FUNCTION gsap_fn_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fn_runs (tenant_id, event_id, function)
        SELECT NEW.tenant_id, NEW.event_id, s.function FROM fn_subscriptions s
        WHERE s.event_type = NEW.type AND s.fallback_for IS NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER events_fn_fanout AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION gsap_fn_fanout();

-- The fallback fan-out: when a pair records an error (a failed attempt, or a dead letter,
-- which the runtime always explains in last_error), every function subscribed to the event's
-- type as a fallback for the pair's function gets its pair, in the same transaction. Done
-- marks and leases do not set last_error, so the trigger never fires on the way that works.
-- A pair that exists already (an earlier failure) is left as it is.
CREATE OR REPLACE FUNCTION gsap_fn_fallback() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fn_runs (tenant_id, event_id, function)
        SELECT NEW.tenant_id, NEW.event_id, s.function
        FROM events e JOIN fn_subscriptions s ON s.event_type = e.type
        WHERE e.tenant_id = NEW.tenant_id AND e.event_id = NEW.event_id
          AND s.fallback_for = NEW.function
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER fn_runs_fallback AFTER UPDATE OF last_error ON fn_runs
    FOR EACH ROW WHEN (NEW.last_error IS NOT NULL) EXECUTE FUNCTION gsap_fn_fallback();
