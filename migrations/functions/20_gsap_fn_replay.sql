-- gsap_fn_replay: makes a dead pair of p_tenant pending again and wakes the runtimes.
-- Returns false when there is no such dead pair (unknown, another tenant's, or not dead).
CREATE OR REPLACE FUNCTION gsap_fn_replay(p_tenant text, p_event bigint, p_function text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE fn_runs SET attempts = 0, dead_at = NULL, next_attempt_at = now()
        WHERE tenant_id = p_tenant AND event_id = p_event AND function = p_function
          AND dead_at IS NOT NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('gsap_events', p_tenant);
    RETURN true;
END $$;
