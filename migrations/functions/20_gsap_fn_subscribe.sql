-- gsap_fn_subscribe: subscribes p_function to p_types and backfills runs for the events of
-- the newly subscribed types already stored, so enabling a function later still processes
-- history. Returns the number of backfilled runs.
--
-- Nothing is locked when every subscription already exists (the usual start). For a new one,
-- the SHARE lock on events waits for every transaction that is inserting events and holds
-- new ones off until this transaction commits: an event whose trigger ran before the
-- subscription was visible is therefore committed, and seen by the backfill below, and an
-- event inserted afterwards sees the subscription. Without the lock, an event committed in
-- between could get no run at all.
CREATE OR REPLACE FUNCTION gsap_fn_subscribe(p_function text, p_types text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_new text[];
    n bigint := 0;
BEGIN
    SELECT coalesce(array_agg(t), '{}') INTO v_new FROM unnest(p_types) t
        WHERE NOT EXISTS (SELECT 1 FROM fn_subscriptions s
                          WHERE s.function = p_function AND s.event_type = t);
    IF cardinality(v_new) = 0 THEN
        RETURN 0;
    END IF;
    LOCK TABLE events IN SHARE MODE;
    INSERT INTO fn_subscriptions (function, event_type)
        SELECT p_function, t FROM unnest(v_new) t ON CONFLICT DO NOTHING;
    INSERT INTO fn_runs (tenant_id, event_id, function)
        SELECT e.tenant_id, e.event_id, p_function FROM events e WHERE e.type = ANY (v_new)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
