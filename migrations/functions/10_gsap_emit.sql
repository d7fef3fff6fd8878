CREATE OR REPLACE FUNCTION gsap_emit(p_tenant text, p_type text, p_context text, p_payload jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (tenant_id, type, context_id, payload)
        VALUES (p_tenant, p_type, p_context, p_payload);
    PERFORM pg_notify('gsap_events', p_tenant);
END $$;
