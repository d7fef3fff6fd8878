CREATE OR REPLACE FUNCTION bill_invoice_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'finalized' THEN
        RAISE EXCEPTION 'invoice % is finalized and cannot be %', OLD.invoice_id,
            CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'updated' END
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'corrections to a finalized invoice are credit notes';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    -- Status only moves forward, and a finalizing invoice's lines are frozen, so its total
    -- and count are too.
    IF OLD.status = 'finalizing' AND (NEW.status = 'open' OR NEW.total_minor <> OLD.total_minor
                                      OR NEW.line_count <> OLD.line_count) THEN
        RAISE EXCEPTION 'invoice % is being finalized: its status, total and line count are frozen',
            OLD.invoice_id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION bill_invoice_guard();
