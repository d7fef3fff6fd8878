-- tlog_append: appends the lineage CID of CR p_cr_id to the tenant's transparency log and
-- returns its index; a CR already in the log returns its index and changes nothing, so the
-- log sequencer (functions/fn_tlog.c) and billing (which records a line's index) may both
-- call it in either order. The tenant's tlog_heads row is locked FOR UPDATE first: two
-- brokers on one database append one after the other, each at the size the other left, so
-- indexes are gap-free and never reused. The frontier holds one subtree root per set bit of
-- size (as bill_invoice.c's bill_merkle_t), so an append costs O(log size) hashes and stores
-- the new root with the entry. 0018: each subtree root completed by the append is stored in
-- tlog_nodes (level >= 1), so proofs need not read every leaf (20_tlog_proof.sql).
CREATE OR REPLACE FUNCTION tlog_append(p_tenant text, p_cr_id text, p_lineage_cid text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_idx bigint;
    v_size bigint;
    v_front bytea[];
    v_h bytea;
    v_leaf bytea;
    v_root bytea;
    v_n int;
    v_c bigint;
    v_level int := 0; -- 0018
BEGIN
    SELECT e.idx INTO v_idx FROM tlog_entries e
        WHERE e.tenant_id = p_tenant AND e.cr_id = p_cr_id;
    IF FOUND THEN
        RETURN v_idx;
    END IF;
    INSERT INTO tlog_heads (tenant_id) VALUES (p_tenant) ON CONFLICT DO NOTHING;
    SELECT h.size, h.frontier INTO v_size, v_front FROM tlog_heads h
        WHERE h.tenant_id = p_tenant FOR UPDATE;
    -- Another transaction may have appended this CR while we waited for the lock.
    SELECT e.idx INTO v_idx FROM tlog_entries e
        WHERE e.tenant_id = p_tenant AND e.cr_id = p_cr_id;
    IF FOUND THEN
        RETURN v_idx;
    END IF;
    -- Leaf: SHA-256(0x00 || the ASCII CID); node: SHA-256(0x01 || left || right).
    v_h := sha256('\x00'::bytea || convert_to(p_lineage_cid::text, 'UTF8'));
    v_leaf := v_h;
    v_c := v_size;
    WHILE v_c & 1 = 1 LOOP
        v_n := cardinality(v_front);
        v_h := sha256('\x01'::bytea || v_front[v_n] || v_h);
        v_front := v_front[1:v_n - 1];
        v_c := v_c >> 1;
        v_level := v_level + 1; -- 0018: v_h is the node (v_level, v_size >> v_level)
        INSERT INTO tlog_nodes (tenant_id, level, idx, hash)
            VALUES (p_tenant, v_level, v_size >> v_level, v_h);
    END LOOP;
    v_front := v_front || v_h;
    v_n := cardinality(v_front);
    v_root := v_front[v_n];
    FOR i IN REVERSE v_n - 1 .. 1 LOOP
        v_root := sha256('\x01'::bytea || v_front[i] || v_root);
    END LOOP;
    INSERT INTO tlog_entries (tenant_id, idx, lineage_cid, cr_id, leaf_hash, root_hash)
        VALUES (p_tenant, v_size, p_lineage_cid, p_cr_id, v_leaf, v_root);
    UPDATE tlog_heads h SET size = v_size + 1, frontier = v_front WHERE h.tenant_id = p_tenant;
    RETURN v_size;
END $$;
