-- tlog_append_batch: appends CRs p_cr_ids (with the lineage CIDs p_lineages, in the same order)
-- to the tenant's transparency log, in that order, and returns the index of each, in the same
-- order. A CR already in the log, or named twice, keeps the one index it has, so the log
-- sequencer (functions/fn_tlog.c) and billing (which records a line's index) may both append
-- a CR, in either order. The tenant's tlog_heads row is locked FOR UPDATE first: two brokers
-- on one database append one after the other, each at the size the other left, so indexes
-- are gap-free and never reused (callers that lock several heads take them first, in
-- tenant_id order). The frontier holds one subtree root per set bit of size (as
-- bill_invoice.c's bill_merkle_t), so an append costs O(log size) hashes and stores the new
-- root with the entry; each subtree root an append completes is a tlog_nodes row (level >= 1,
-- 0018), so proofs need not read every leaf (20_tlog_proof.sql).
-- Set-based: the hashes are computed in memory, then the entries, the nodes and the head are
-- written with one statement each, so a batch of n CRs costs a fixed number of statements.
CREATE OR REPLACE FUNCTION tlog_append_batch(p_tenant text, p_cr_ids text[], p_lineages text[])
RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    v_n int := coalesce(cardinality(p_cr_ids), 0);
    v_out bigint[] := '{}';
    v_known jsonb; -- cr_id -> index, of the CRs already in the log
    v_dups boolean;
    v_size bigint;
    v_start bigint;
    v_front bytea[];
    v_h bytea;
    v_leaf bytea;
    v_root bytea;
    v_k int;
    v_c bigint;
    v_level int;
    v_at int;
    e_idx bigint[] := '{}';
    e_cid text[] := '{}';
    e_cr text[] := '{}';
    e_leaf bytea[] := '{}';
    e_root bytea[] := '{}';
    n_level int[] := '{}';
    n_idx bigint[] := '{}';
    n_hash bytea[] := '{}';
BEGIN
    IF v_n <> coalesce(cardinality(p_lineages), 0) THEN
        RAISE EXCEPTION 'tlog_append_batch: % CRs but % lineage CIDs', v_n,
            coalesce(cardinality(p_lineages), 0);
    END IF;
    IF v_n = 0 THEN
        RETURN v_out;
    END IF;
    INSERT INTO tlog_heads (tenant_id) VALUES (p_tenant) ON CONFLICT DO NOTHING;
    SELECT h.size, h.frontier INTO v_size, v_front FROM tlog_heads h
        WHERE h.tenant_id = p_tenant FOR UPDATE;
    v_start := v_size;
    -- Under the lock: what is logged now stays so.
    SELECT coalesce(jsonb_object_agg(e.cr_id, e.idx), '{}') INTO v_known FROM tlog_entries e
        WHERE e.tenant_id = p_tenant AND e.cr_id = ANY (p_cr_ids);
    v_dups := (SELECT count(DISTINCT c) FROM unnest(p_cr_ids) c) < v_n;
    FOR i IN 1 .. v_n LOOP
        IF v_known ? p_cr_ids[i] THEN
            v_out := v_out || (v_known->>p_cr_ids[i])::bigint;
            CONTINUE;
        END IF;
        IF v_dups THEN
            v_at := array_position(e_cr, p_cr_ids[i]);
            IF v_at IS NOT NULL THEN
                v_out := v_out || e_idx[v_at];
                CONTINUE;
            END IF;
        END IF;
        -- Leaf: SHA-256(0x00 || the ASCII CID); node: SHA-256(0x01 || left || right).
        v_h := sha256('\x00'::bytea || convert_to(p_lineages[i], 'UTF8'));
        v_leaf := v_h;
        v_c := v_size;
        v_level := 0;
        WHILE v_c & 1 = 1 LOOP
            v_k := cardinality(v_front);
            v_h := sha256('\x01'::bytea || v_front[v_k] || v_h);
            v_front := v_front[1:v_k - 1];
            v_c := v_c >> 1;
            v_level := v_level + 1; -- v_h is the node (v_level, v_size >> v_level)
            n_level := n_level || v_level;
            n_idx := n_idx || (v_size >> v_level);
            n_hash := n_hash || v_h;
        END LOOP;
        v_front := v_front || v_h;
        v_k := cardinality(v_front);
        v_root := v_front[v_k];
        FOR j IN REVERSE v_k - 1 .. 1 LOOP
            v_root := sha256('\x01'::bytea || v_front[j] || v_root);
        END LOOP;
        e_idx := e_idx || v_size;
        e_cid := e_cid || p_lineages[i];
        e_cr := e_cr || p_cr_ids[i];
        e_leaf := e_leaf || v_leaf;
        e_root := e_root || v_root;
        v_out := v_out || v_size;
        v_size := v_size + 1;
    END LOOP;
    IF v_size > v_start THEN
        INSERT INTO tlog_entries (tenant_id, idx, lineage_cid, cr_id, leaf_hash, root_hash)
            SELECT p_tenant, x.idx, x.cid::gsap_cid, x.cr, x.leaf, x.root
            FROM unnest(e_idx, e_cid, e_cr, e_leaf, e_root) AS x(idx, cid, cr, leaf, root);
        INSERT INTO tlog_nodes (tenant_id, level, idx, hash)
            SELECT p_tenant, x.level, x.idx, x.hash
            FROM unnest(n_level, n_idx, n_hash) AS x(level, idx, hash);
        UPDATE tlog_heads h SET size = v_size, frontier = v_front WHERE h.tenant_id = p_tenant;
    END IF;
    RETURN v_out;
END $$;

-- tlog_lock_heads: creates, if need be, and locks FOR UPDATE the log heads of every tenant
-- that an element of p_items ([{"tenant", ...}, ...]) names, in tenant_id order: the first
-- step of every batch that appends for several tenants (bill_add_lines, tlog_append_many), so
-- concurrent runtime workers take the heads in one order and never deadlock on them.
CREATE OR REPLACE FUNCTION tlog_lock_heads(p_items jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tlog_heads (tenant_id)
        SELECT DISTINCT e->>'tenant' FROM jsonb_array_elements(p_items) e ORDER BY 1
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM tlog_heads h
        WHERE h.tenant_id IN (SELECT e->>'tenant' FROM jsonb_array_elements(p_items) e)
        ORDER BY h.tenant_id FOR UPDATE;
END $$;

-- tlog_append: one CR (tlog_append_batch with one element); returns its index. A CR already
-- logged returns its index without taking the head's lock.
CREATE OR REPLACE FUNCTION tlog_append(p_tenant text, p_cr_id text, p_lineage_cid text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_idx bigint;
BEGIN
    SELECT e.idx INTO v_idx FROM tlog_entries e
        WHERE e.tenant_id = p_tenant AND e.cr_id = p_cr_id;
    IF FOUND THEN
        RETURN v_idx;
    END IF;
    RETURN (tlog_append_batch(p_tenant, ARRAY[p_cr_id], ARRAY[p_lineage_cid]))[1];
END $$;
