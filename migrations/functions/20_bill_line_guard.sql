CREATE OR REPLACE FUNCTION bill_line_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    -- FOR SHARE: a concurrent finalize (which updates the row) waits for us, or we for it.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT status INTO v_status FROM invoices
            WHERE tenant_id = OLD.tenant_id AND invoice_id = OLD.invoice_id FOR SHARE;
        IF v_status <> 'open' THEN
            RAISE EXCEPTION 'invoice % is %: its lines cannot be %', OLD.invoice_id, v_status,
                CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'updated' END
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        SELECT status INTO v_status FROM invoices
            WHERE tenant_id = NEW.tenant_id AND invoice_id = NEW.invoice_id FOR SHARE;
        IF v_status <> 'open' THEN
            RAISE EXCEPTION 'invoice % is %: no line can be added to it', NEW.invoice_id,
                v_status USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END $$;

CREATE OR REPLACE TRIGGER invoice_lines_frozen BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION bill_line_guard();
