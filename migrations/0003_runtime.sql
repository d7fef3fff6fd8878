-- 0003_runtime: the function runtime's state (functions/fn_runtime.c, functions/fn.h).
--
-- fn_subscriptions says which function wants which event type; each broker upserts the rows
-- of the functions it has enabled when its runtime (re)connects (gsap_fn_subscribe).
-- fn_runs holds one row per (event, function) pair: filled by a trigger on events, in the
-- same transaction as the event itself, so no event can be committed without its runs.
-- A pair is pending while done_at and dead_at are both NULL; the runtime claims pending
-- pairs whose next_attempt_at has come, in event_id order, with FOR UPDATE SKIP LOCKED, so
-- several brokers sharing the database never run the same pair at the same time.

CREATE TABLE fn_subscriptions (
    function text NOT NULL CHECK (function ~ '^[A-Za-z0-9_.-]{1,32}$'),
    event_type text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (function, event_type)
);
CREATE INDEX fn_subscriptions_by_type ON fn_subscriptions (event_type);

CREATE TABLE fn_runs (
    tenant_id text NOT NULL,
    event_id bigint NOT NULL,
    function text NOT NULL,
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text CHECK (length(last_error) <= 512),
    done_at timestamptz,
    dead_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id, function),
    FOREIGN KEY (tenant_id, event_id) REFERENCES events,
    CHECK (done_at IS NULL OR dead_at IS NULL)
);
-- Claiming: pending pairs in event order; the partial index stays as small as the backlog.
CREATE INDEX fn_runs_pending ON fn_runs (event_id, next_attempt_at)
    WHERE done_at IS NULL AND dead_at IS NULL;
-- The dead-letter route lists a tenant's dead pairs; the metric counts them all.
CREATE INDEX fn_runs_dead ON fn_runs (tenant_id, dead_at) WHERE dead_at IS NOT NULL;

-- The outbox fan-out: one pending run per subscribed function, in the event's transaction.
CREATE FUNCTION gsap_fn_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fn_runs (tenant_id, event_id, function)
        SELECT NEW.tenant_id, NEW.event_id, s.function FROM fn_subscriptions s
        WHERE s.event_type = NEW.type
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER events_fn_fanout AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION gsap_fn_fanout();

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
CREATE FUNCTION gsap_fn_subscribe(p_function text, p_types text[]) RETURNS bigint
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

-- gsap_fn_replay: makes a dead pair of p_tenant pending again and wakes the runtimes.
-- Returns false when there is no such dead pair (unknown, another tenant's, or not dead).
CREATE FUNCTION gsap_fn_replay(p_tenant text, p_event bigint, p_function text) RETURNS boolean
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
