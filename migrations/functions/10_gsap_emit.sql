-- gsap_emit: appends an event to the outbox and wakes the function runtimes.
-- The notification's payload is empty, not the tenant: PostgreSQL delivers identical
-- notifications of one transaction once, so a group-committed transaction of many receipts
-- (brk_db group commit, whatever their tenants) wakes each listener once; the runtime reads
-- the events table, never the payload, and no listener learns which tenants were active.
CREATE OR REPLACE FUNCTION gsap_emit(p_tenant text, p_type text, p_context text, p_payload jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (tenant_id, type, context_id, payload)
        VALUES (p_tenant, p_type, p_context, p_payload);
    PERFORM pg_notify('gsap_events', '');
END $$;
