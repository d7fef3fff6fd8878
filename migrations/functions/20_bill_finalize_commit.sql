-- Step 3: stores the signed document; only a finalizing invoice whose count and total are
-- still the ones the document states becomes finalized. The document's transparency-log
-- checkpoint is stored with the tenant's checkpoints.
CREATE OR REPLACE FUNCTION bill_finalize_commit(p_tenant text, p_invoice text, p_doc jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    UPDATE invoices i SET status = 'finalized', lines_root = p_doc->>'lines_root',
                          invoice_cid = p_doc->>'invoice_cid', signature = p_doc->>'signature',
                          key_id = p_doc->>'key_id', document = p_doc,
                          finalized_at = (p_doc->>'finalized_at')::timestamptz
        WHERE i.tenant_id = p_tenant AND i.invoice_id = p_invoice AND i.status = 'finalizing'
          AND i.total_minor = (p_doc->>'total_minor')::bigint
          AND i.line_count = (p_doc->>'line_count')::bigint;
    IF FOUND THEN
        -- The checkpoint the document carries (covering every line's log index) is one of
        -- the tenant's checkpoints from now on.
        IF p_doc ? 'log' THEN
            INSERT INTO tlog_checkpoints (tenant_id, size, root_hash, note)
                VALUES (p_tenant, (p_doc->'log'->>'tree_size')::bigint,
                        decode(p_doc->'log'->>'root_hash', 'base64'), p_doc->'log'->>'checkpoint')
                ON CONFLICT DO NOTHING;
        END IF;
        RETURN 'ok';
    END IF;
    SELECT status INTO v_status FROM invoices i
        WHERE i.tenant_id = p_tenant AND i.invoice_id = p_invoice;
    RETURN CASE WHEN v_status = 'finalized' THEN 'finalized'
                WHEN v_status = 'finalizing' THEN 'mismatch'
                ELSE 'not_finalizing' END;
END $$;
