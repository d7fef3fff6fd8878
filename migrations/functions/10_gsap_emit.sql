-- gsap_emit: appends an event to the outbox and wakes the function runtimes.
-- The notification's payload is empty, not the tenant: PostgreSQL delivers identical
-- notifications of one transaction once, so a group-committed transaction of many receipts
-- (brk_db group commit, whatever their tenants) wakes each listener once; the runtime reads
-- the events table, never the payload, and no listener learns which tenants were active.
--
-- A session with gsap.notify = 'deferred' (the broker's HTTP connections, handlers/hnd_util.h)
-- sends the NOTIFY itself, right after the transaction, as a transaction of its own: a NOTIFY
-- inside it would hold PostgreSQL's notification lock through the commit's WAL flush and make
-- every notifying commit wait for the previous one's. Every other caller (the CLI, SQL) gets
-- the NOTIFY here, as before.
CREATE OR REPLACE FUNCTION gsap_emit(p_tenant text, p_type text, p_context text, p_payload jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (tenant_id, type, context_id, payload)
        VALUES (p_tenant, p_type, p_context, p_payload);
    IF current_setting('gsap.notify', true) IS DISTINCT FROM 'deferred' THEN
        PERFORM pg_notify('gsap_events', '');
    END IF;
END $$;
