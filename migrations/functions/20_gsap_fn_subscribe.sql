-- gsap_fn_subscribe: subscribes p_function to p_types, as a fallback for p_fallback_for when
-- that is not NULL (fn.h, 0021), and backfills runs for the events already stored that the
-- subscription now covers, so enabling a function later still processes history: every
-- event of the newly subscribed types, or, for a fallback, those whose run of p_fallback_for
-- has recorded an error. Returns the number of backfilled runs.
--
-- Nothing is locked when every subscription already exists as asked (the usual start). For a
-- new or changed one, the SHARE lock on events waits for every transaction that is inserting
-- events and holds new ones off until this transaction commits: an event whose trigger ran
-- before the subscription was visible is therefore committed, and seen by the backfill
-- below, and an event inserted afterwards sees the subscription. Without the lock, an event
-- committed in between could get no run at all.
DROP FUNCTION IF EXISTS gsap_fn_subscribe(text, text[]);
CREATE OR REPLACE FUNCTION gsap_fn_subscribe(p_function text, p_types text[],
                                             p_fallback_for text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_new text[];
    n bigint := 0;
BEGIN
    SELECT coalesce(array_agg(t), '{}') INTO v_new FROM unnest(p_types) t
        WHERE NOT EXISTS (SELECT 1 FROM fn_subscriptions s
                          WHERE s.function = p_function AND s.event_type = t
                            AND s.fallback_for IS NOT DISTINCT FROM p_fallback_for);
    IF cardinality(v_new) = 0 THEN
        RETURN 0;
    END IF;
    LOCK TABLE events IN SHARE MODE;
    INSERT INTO fn_subscriptions (function, event_type, fallback_for)
        SELECT p_function, t, p_fallback_for FROM unnest(v_new) t
    ON CONFLICT (function, event_type) DO UPDATE SET fallback_for = EXCLUDED.fallback_for;
    IF p_fallback_for IS NULL THEN
        INSERT INTO fn_runs (tenant_id, event_id, function)
            SELECT e.tenant_id, e.event_id, p_function FROM events e WHERE e.type = ANY (v_new)
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO fn_runs (tenant_id, event_id, function)
            SELECT r.tenant_id, r.event_id, p_function
            FROM fn_runs r JOIN events e USING (tenant_id, event_id)
            WHERE r.function = p_fallback_for AND r.last_error IS NOT NULL
              AND e.type = ANY (v_new)
        ON CONFLICT DO NOTHING;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
