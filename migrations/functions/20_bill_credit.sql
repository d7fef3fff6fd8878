-- bill_credit: stores a signed credit note after re-checking, under the invoice's row lock,
-- what the route checked before signing it. code: 'ok', 'not_found', 'not_finalized',
-- 'line_not_found', 'exceeds' (with the amount still creditable on the line).
CREATE OR REPLACE FUNCTION bill_credit(p_tenant text, p_invoice text, p_line bigint, p_amount bigint,
                            p_reason text, p_credit text, p_doc jsonb)
RETURNS TABLE (code text, creditable bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_total bigint;
    v_credited bigint;
BEGIN
    SELECT status INTO v_status FROM invoices i
        WHERE i.tenant_id = p_tenant AND i.invoice_id = p_invoice FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::bigint;
        RETURN;
    END IF;
    IF v_status <> 'finalized' THEN
        RETURN QUERY SELECT 'not_finalized'::text, NULL::bigint;
        RETURN;
    END IF;
    SELECT l.total_minor INTO v_total FROM invoice_lines l
        WHERE l.tenant_id = p_tenant AND l.invoice_id = p_invoice AND l.line_no = p_line;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'line_not_found'::text, NULL::bigint;
        RETURN;
    END IF;
    SELECT coalesce(sum(c.amount_minor), 0) INTO v_credited FROM credit_notes c
        WHERE c.tenant_id = p_tenant AND c.invoice_id = p_invoice AND c.line_no = p_line;
    IF p_amount > v_total - v_credited THEN
        RETURN QUERY SELECT 'exceeds'::text, v_total - v_credited;
        RETURN;
    END IF;
    INSERT INTO credit_notes (tenant_id, credit_id, invoice_id, line_no, amount_minor, reason,
                              document, credit_cid, signature, key_id, created_at)
        VALUES (p_tenant, p_credit, p_invoice, p_line, p_amount, p_reason, p_doc,
                p_doc->>'credit_cid', p_doc->>'signature', p_doc->>'key_id',
                (p_doc->>'created_at')::timestamptz);
    RETURN QUERY SELECT 'ok'::text, v_total - v_credited - p_amount;
END $$;
