-- tlog_guard: the log is append-only. An entry or a checkpoint is never updated nor
-- deleted, a head only grows (tlog_append_batch writes a batch's entries, then the head
-- once), nothing is truncated.
CREATE OR REPLACE FUNCTION tlog_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'tlog_heads' AND TG_OP = 'UPDATE' THEN
        IF NEW.tenant_id = OLD.tenant_id AND NEW.size > OLD.size THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% on % refused: the transparency log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE OR REPLACE TRIGGER tlog_entries_append_only BEFORE UPDATE OR DELETE ON tlog_entries
    FOR EACH ROW EXECUTE FUNCTION tlog_guard();
CREATE OR REPLACE TRIGGER tlog_heads_append_only BEFORE UPDATE OR DELETE ON tlog_heads
    FOR EACH ROW EXECUTE FUNCTION tlog_guard();
CREATE OR REPLACE TRIGGER tlog_checkpoints_append_only BEFORE UPDATE OR DELETE ON tlog_checkpoints
    FOR EACH ROW EXECUTE FUNCTION tlog_guard();
CREATE OR REPLACE TRIGGER tlog_entries_no_truncate BEFORE TRUNCATE ON tlog_entries
    FOR EACH STATEMENT EXECUTE FUNCTION tlog_guard();
CREATE OR REPLACE TRIGGER tlog_heads_no_truncate BEFORE TRUNCATE ON tlog_heads
    FOR EACH STATEMENT EXECUTE FUNCTION tlog_guard();
CREATE OR REPLACE TRIGGER tlog_checkpoints_no_truncate BEFORE TRUNCATE ON tlog_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION tlog_guard();
-- 0018: the stored interior nodes (tlog_nodes) are append-only too.
CREATE OR REPLACE TRIGGER tlog_nodes_append_only BEFORE UPDATE OR DELETE ON tlog_nodes
    FOR EACH ROW EXECUTE FUNCTION tlog_guard();
CREATE OR REPLACE TRIGGER tlog_nodes_no_truncate BEFORE TRUNCATE ON tlog_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION tlog_guard();
