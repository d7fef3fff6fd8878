-- 0007_receipt_evidence: time claims are checked, unknown members are kept, and gsh's
-- self-authorized receipts are accepted (docs/protocol.md, POST /governance/complete/).
--
-- 1. Time is evidence. A CR's started_at/completed_at are the executor's claims. gsap_complete
--    checks them against the AC's stored issued_at and the database's clock (the received
--    time, now()), with a skew allowance the broker passes in (GSAP_TIME_SKEW_S): a CR that
--    starts before issued_at - skew, completes after received + skew, or completes before it
--    starts is stored as claimed, flagged time_implausible, and its effective outcome is
--    violated. Whatever the verdict, billing uses the span clamped to what the broker saw
--    (gsap_time_check): crs.billed_started_at/billed_completed_at and the same two members
--    of the GSAP_CR_RECEIVED payload. The claimed times stay in crs.started_at/completed_at
--    and in the stored CR (covered by cr_cid).
-- 2. exit_code is optional for outcomes without one (violated, timed_out, session_end): it is
--    stored as NULL then, never as a made-up 0. The handler refuses completed/failed without it.
-- 3. Self-authorized receipts: gsh runs a command without a broker when the broker cannot be
--    reached, under a client-made context id "self-<...>", and posts the receipt later. The
--    first such CR creates the context server-side (acs.self_authorized, no signature),
--    in the same transaction as the CR. Self-authorized context ids are unique across
--    tenants, so one tenant can never create (or learn more than "not found" about) another's.
-- 4. acs.unrecognized keeps the members of an authorize request the broker does not know.
--
-- gsap_complete gains parameters, so the 18-argument version is dropped and replaced; the
-- body below is 0006's with the changes marked "0007".

ALTER TABLE crs ADD COLUMN billed_started_at timestamptz;
ALTER TABLE crs ADD COLUMN billed_completed_at timestamptz;
ALTER TABLE crs ALTER COLUMN exit_code DROP NOT NULL;

ALTER TABLE acs ADD COLUMN self_authorized boolean NOT NULL DEFAULT false;
ALTER TABLE acs ADD COLUMN unrecognized jsonb;
-- Broker-issued ids are "ctx_" + 32 hex; self-authorized ones "self-" + 1..59 characters.
ALTER TABLE acs DROP CONSTRAINT acs_context_id_check;
ALTER TABLE acs ADD CONSTRAINT acs_context_id_check
    CHECK (context_id ~ '^ctx_[0-9a-f]{32}$'
           OR (self_authorized AND context_id ~ '^self-[A-Za-z0-9][A-Za-z0-9._-]{0,58}$'));
CREATE UNIQUE INDEX acs_self_context ON acs (context_id) WHERE self_authorized;

-- gsap_time_check: the verdict on a CR's claimed times and the span billing uses.
--   implausible: started before issued - skew, completed after received + skew, or completed
--                before started;
--   billed span: start clamped into [issued, received], end clamped to <= received and
--                >= the billed start. For a CR whose claims lie inside what the broker saw
--                it is the claimed span.
-- STABLE, not IMMUTABLE: timestamptz +/- interval is.
CREATE FUNCTION gsap_time_check(p_issued timestamptz, p_received timestamptz,
                                p_started timestamptz, p_completed timestamptz, p_skew_s integer)
RETURNS TABLE (implausible boolean, billed_started timestamptz, billed_completed timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT p_started < p_issued - make_interval(secs => p_skew_s)
               OR p_completed > p_received + make_interval(secs => p_skew_s)
               OR p_completed < p_started,
           s.b,
           greatest(s.b, least(p_completed, p_received))
    FROM (SELECT least(greatest(p_started, p_issued), p_received) AS b) s
$$;

DROP FUNCTION gsap_complete(text, text, text, jsonb, gsap_cid, gsap_cid, gsap_cid, text, text,
                            text, text, text, text, boolean, integer, timestamptz, timestamptz,
                            text);

-- gsap_complete: as in 0006, plus (0007):
--   p_skew_s        the allowed clock skew in seconds (GSAP_TIME_SKEW_S);
--   p_self_ac       for a self-authorized CR on a "self-" context: the context document the
--                   broker stores when the context does not exist yet (NULL otherwise);
--   p_self_ac_cid   its CID (of the document without ac_cid and signature);
--   p_self_accord   the accord it falls under ("default" unless the CR names one);
--   p_self_window_s how far back the broker accepts a self-authorized command's start
--                   without flagging it (the context's issued_at is at most this old).
-- Codes as before, plus 'accord_not_found' (a self-authorized CR naming an unknown accord).
CREATE FUNCTION gsap_complete(p_tenant text, p_context text, p_cr_id text, p_cr jsonb,
                              p_cr_cid gsap_cid, p_chronicle_cid gsap_cid, p_merkle_root gsap_cid,
                              p_outcome text, p_behavior text, p_command text, p_corpus text,
                              p_params text, p_env text, p_self_authorized boolean,
                              p_exit_code integer, p_started timestamptz,
                              p_completed timestamptz, p_executor text, p_skew_s integer,
                              p_self_ac jsonb, p_self_ac_cid gsap_cid, p_self_accord text,
                              p_self_window_s integer)
RETURNS TABLE (code text, cr_id text, sequence integer, lineage_cid text,
               prev_lineage_cid text, ac_status text, flags text[], effective_outcome text,
               cr_cid text, chronicle_cid text, ac_cid text, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    a acs%ROWTYPE;
    c crs%ROWTYPE;
    v_flags text[] := '{}';
    v_effective text := p_outcome;
    v_seq integer;
    v_lineage text;
    v_status text;
    v_now timestamptz := now();
    v_issued timestamptz;
    v_allowed boolean;
    v_shell text;
    t record;
BEGIN
    -- 0007: a self-authorized receipt creates its context, once. Only the "self-" form can be
    -- created (a "ctx_" id is the broker's to issue), and the partial unique index keeps the
    -- id unique across tenants: another tenant's id conflicts, nothing is inserted, and the
    -- lookup below answers not_found as for any context of another tenant. Concurrent first
    -- receipts meet at the same index; the loser then sees the winner's row (a new snapshot
    -- per statement) and is a retry or a conflict like any consumed AC.
    IF p_self_ac IS NOT NULL
       AND p_context ~ '^self-[A-Za-z0-9][A-Za-z0-9._-]{0,58}$'
       AND NOT EXISTS (SELECT 1 FROM acs WHERE acs.tenant_id = p_tenant
                                           AND acs.context_id = p_context) THEN
        IF NOT EXISTS (SELECT 1 FROM accords WHERE accords.tenant_id = p_tenant
                                               AND accords.name = p_self_accord) THEN
            RETURN QUERY SELECT 'accord_not_found'::text, NULL::text, NULL::integer, NULL::text,
                NULL::text, NULL::text, NULL::text[], NULL::text, NULL::text, NULL::text,
                NULL::text, NULL::text;
            RETURN;
        END IF;
        -- The broker saw nothing before now: the context counts as issued at the claimed
        -- start, but no earlier than the window allows and no later than now.
        v_issued := least(greatest(p_started, v_now - make_interval(secs => p_self_window_s)),
                          v_now);
        INSERT INTO acs (tenant_id, context_id, status, accord_name, session_mode,
                         capability_set, command_hash, corpus_entry_cid, parameters_cid,
                         environment_commitment, description, ttl_seconds, issued_at,
                         expires_at, issuer_key_id, billing_account, ac, ac_cid,
                         self_authorized)
            VALUES (p_tenant, p_context, 'authorized', p_self_accord, false, 0, p_command,
                    p_corpus, p_params, NULL, NULL,
                    greatest(1, ceil(extract(epoch FROM v_now - v_issued)))::integer,
                    v_issued, v_now, p_executor, 'default', p_self_ac, p_self_ac_cid, true)
            ON CONFLICT DO NOTHING;
    END IF;

    SELECT * INTO a FROM acs WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context
        FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text, NULL::integer, NULL::text, NULL::text,
            NULL::text, NULL::text[], NULL::text, NULL::text, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    -- An identical retry (the client retries up to 3 times) gets the first receipt. An AC
    -- with no receipt yet cannot have one: skip the lookup on the hot path.
    IF a.cr_count > 0 THEN
        SELECT * INTO c FROM crs WHERE crs.tenant_id = p_tenant AND crs.context_id = p_context
            AND crs.cr_cid = p_cr_cid ORDER BY crs.sequence LIMIT 1;
    END IF;
    IF a.cr_count > 0 AND FOUND THEN
        RETURN QUERY SELECT 'retry'::text, c.cr_id, c.sequence, c.lineage_cid::text,
            c.prev_lineage_cid::text, a.status, c.flags, c.effective_outcome, c.cr_cid::text,
            c.chronicle_cid::text, c.ac_cid::text, c.outcome;
        RETURN;
    END IF;
    IF a.status IN ('consumed', 'pending', 'revoked') THEN
        RETURN QUERY SELECT a.status, NULL::text, NULL::integer, NULL::text, NULL::text,
            a.status, NULL::text[], NULL::text, NULL::text, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    -- Evidence is never dropped: a CR that disagrees with its AC is stored, flagged, and its
    -- effective outcome is "violated".
    IF p_command IS DISTINCT FROM a.command_hash THEN
        v_flags := v_flags || 'command_mismatch'::text;
    END IF;
    IF p_corpus IS DISTINCT FROM a.corpus_entry_cid THEN
        v_flags := v_flags || 'corpus_mismatch'::text;
    END IF;
    IF p_params IS DISTINCT FROM a.parameters_cid THEN
        v_flags := v_flags || 'parameters_mismatch'::text;
    END IF;
    IF a.environment_commitment IS NOT NULL AND p_env IS DISTINCT FROM a.environment_commitment THEN
        v_flags := v_flags || 'environment_mismatch'::text;
    END IF;
    IF p_behavior = 'violated' THEN
        v_flags := v_flags || 'behavior_violated'::text;
    END IF;
    -- 0007: the claimed times against the AC's stored issued_at and this transaction's clock.
    SELECT * INTO t FROM gsap_time_check(a.issued_at, v_now, p_started, p_completed,
                                         coalesce(p_skew_s, 0));
    IF t.implausible THEN
        v_flags := v_flags || 'time_implausible'::text;
    END IF;
    IF cardinality(v_flags) > 0 THEN
        v_effective := 'violated';
    END IF;
    IF p_self_authorized THEN
        v_flags := v_flags || 'self_authorized'::text;
    END IF;
    -- 0007: a context the broker never issued counts only where its accord allows that.
    IF a.self_authorized THEN
        SELECT coalesce((body->>'self_authorized_allowed')::boolean, false),
               body->>'shell_class' INTO v_allowed, v_shell
            FROM accords WHERE accords.tenant_id = p_tenant AND accords.name = a.accord_name;
        IF NOT coalesce(v_allowed, false) THEN
            v_flags := v_flags || 'self_authorized_not_allowed'::text;
            v_effective := 'violated';
        END IF;
    END IF;
    -- Late receipts are accepted and flagged too.
    IF p_started > a.expires_at THEN
        v_flags := v_flags || 'started_after_expiry'::text;
    ELSIF v_now > a.expires_at THEN
        v_flags := v_flags || 'overage'::text;
    END IF;
    v_seq := a.cr_count + 1;
    v_lineage := gsap_lineage_cid(a.ac_cid, p_chronicle_cid, p_cr_cid, a.last_lineage_cid, v_seq);
    v_status := CASE
        WHEN NOT a.session_mode OR p_outcome = 'session_end' THEN 'consumed'
        ELSE 'active' END;
    INSERT INTO crs (tenant_id, context_id, sequence, cr_id, outcome, effective_outcome, flags,
                     exit_code, started_at, completed_at, cr, cr_cid, chronicle_cid,
                     merkle_root, ac_cid, prev_lineage_cid, lineage_cid, executor_key_id,
                     received_at, billed_started_at, billed_completed_at)
        VALUES (p_tenant, p_context, v_seq, p_cr_id, p_outcome, v_effective, v_flags,
                p_exit_code, p_started, p_completed, p_cr, p_cr_cid, p_chronicle_cid,
                p_merkle_root, a.ac_cid, a.last_lineage_cid, v_lineage, p_executor, v_now,
                t.billed_started, t.billed_completed);
    UPDATE acs SET status = v_status, cr_count = v_seq, last_lineage_cid = v_lineage
        WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context;
    -- 0007: billing reads billed_started_at/billed_completed_at, never the claims.
    PERFORM gsap_emit(p_tenant, 'GSAP_CR_RECEIVED', p_context, jsonb_build_object(
        'cr_id', p_cr_id, 'context_id', p_context, 'sequence', v_seq,
        'outcome', p_outcome, 'effective_outcome', v_effective, 'flags', to_jsonb(v_flags),
        'exit_code', p_exit_code, 'started_at', p_started, 'completed_at', p_completed,
        'billed_started_at', t.billed_started, 'billed_completed_at', t.billed_completed,
        'received_at', v_now, 'cr_cid', p_cr_cid, 'chronicle_cid', p_chronicle_cid,
        'merkle_root', p_merkle_root, 'ac_cid', a.ac_cid, 'lineage_cid', v_lineage,
        'prev_lineage_cid', a.last_lineage_cid, 'billing_account', a.billing_account,
        -- 0007: a self-authorized context's shell class is its accord's (its document has none)
        'shell_class', coalesce(a.ac->>'shell_class', v_shell),
        'capability_set', a.capability_set,
        'session_mode', a.session_mode, 'self_authorized', a.self_authorized));
    RETURN QUERY SELECT 'ok'::text, p_cr_id, v_seq, v_lineage, a.last_lineage_cid::text,
        v_status, v_flags, v_effective, p_cr_cid::text, p_chronicle_cid::text, a.ac_cid::text,
        p_outcome;
END $$;

ALTER FUNCTION gsap_complete(text, text, text, jsonb, gsap_cid, gsap_cid, gsap_cid, text, text,
                             text, text, text, text, boolean, integer, timestamptz, timestamptz,
                             text, integer, jsonb, gsap_cid, text, integer)
    SET plan_cache_mode = force_custom_plan;
