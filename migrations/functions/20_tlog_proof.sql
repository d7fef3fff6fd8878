-- tlog_mth: MTH(D[p_start:p_end]) of the tenant's log (RFC 9162 2.1.1) for a range the
-- inclusion path uses: p_start is a multiple of the smallest power of two >= its length, so
-- the range splits into stored perfect subtrees (tlog_nodes, level 0: tlog_entries).
-- O(log n) reads. Raises when a node is missing (the range is past the log).
CREATE OR REPLACE FUNCTION tlog_mth(p_tenant text, p_start bigint, p_end bigint)
RETURNS bytea LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_n bigint := p_end - p_start;
    v_k bigint := 1;
    v_level int := 0;
    v_h bytea;
BEGIN
    IF v_n <= 0 THEN
        RAISE EXCEPTION 'tlog_mth: empty range [%, %)', p_start, p_end;
    END IF;
    WHILE v_k < v_n LOOP
        v_k := v_k * 2;
        v_level := v_level + 1;
    END LOOP;
    IF v_k = v_n AND p_start % v_k = 0 THEN
        IF v_level = 0 THEN
            SELECT e.leaf_hash INTO v_h FROM tlog_entries e
                WHERE e.tenant_id = p_tenant AND e.idx = p_start;
        ELSE
            SELECT n.hash INTO v_h FROM tlog_nodes n
                WHERE n.tenant_id = p_tenant AND n.level = v_level AND n.idx = p_start / v_k;
        END IF;
        IF v_h IS NULL THEN
            RAISE EXCEPTION 'tlog_mth: node % of level % of tenant % is not stored',
                p_start / v_k, v_level, p_tenant;
        END IF;
        RETURN v_h;
    END IF;
    v_k := v_k / 2; -- the largest power of two below the length
    RETURN sha256('\x01'::bytea || tlog_mth(p_tenant, p_start, p_start + v_k) ||
                  tlog_mth(p_tenant, p_start + v_k, p_end));
END $$;

-- tlog_inclusion_path: RFC 9162 2.1.3.1 PATH(p_index, D[p_size]), leaf first, from stored
-- nodes: O(log^2 n) reads and no leaf list, whatever the size of the log.
CREATE OR REPLACE FUNCTION tlog_inclusion_path(p_tenant text, p_index bigint, p_size bigint)
RETURNS bytea[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_a bigint := 0;
    v_n bigint := p_size;
    v_m bigint := p_index;
    v_k bigint;
    v_path bytea[] := '{}';
BEGIN
    IF p_index < 0 OR p_index >= p_size THEN
        RAISE EXCEPTION 'tlog_inclusion_path: index % outside a tree of size %', p_index, p_size;
    END IF;
    WHILE v_n > 1 LOOP
        v_k := 1;
        WHILE v_k * 2 < v_n LOOP
            v_k := v_k * 2;
        END LOOP;
        -- walking down from the root: each sibling found is lower, so it goes first
        IF v_m < v_k THEN
            v_path := array_prepend(tlog_mth(p_tenant, v_a + v_k, v_a + v_n), v_path);
            v_n := v_k;
        ELSE
            v_path := array_prepend(tlog_mth(p_tenant, v_a, v_a + v_k), v_path);
            v_a := v_a + v_k;
            v_m := v_m - v_k;
            v_n := v_n - v_k;
        END IF;
    END LOOP;
    RETURN v_path;
END $$;
