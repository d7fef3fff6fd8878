CREATE OR REPLACE FUNCTION bill_credit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'credit note % cannot be %: credit notes are never changed',
            OLD.credit_id, CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'updated' END
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT status INTO v_status FROM invoices
        WHERE tenant_id = NEW.tenant_id AND invoice_id = NEW.invoice_id;
    IF v_status IS DISTINCT FROM 'finalized' THEN
        RAISE EXCEPTION 'invoice % is %: credit notes apply to finalized invoices only',
            NEW.invoice_id, coalesce(v_status, 'missing')
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER credit_notes_insert_only BEFORE INSERT OR UPDATE OR DELETE ON credit_notes
    FOR EACH ROW EXECUTE FUNCTION bill_credit_guard();
