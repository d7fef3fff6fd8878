-- gsap_complete: accepts a CR under the context's row lock, in one statement: the caller
-- computed the CR's CIDs (from the request alone); the flags, the effective outcome and the
-- lineage are decided here, where the lock makes them exact.
-- code: 'ok', 'retry' (the same CR was already accepted: its receipt is returned),
--       'not_found', 'consumed', 'pending', 'revoked', 'not_approved' (gsap_cr_refusal: the
--       attempt is recorded as GSAP_CR_REFUSED and nothing else is written).
-- Time claims are checked by gsap_time_check against the AC's issued_at and the received
-- time with the skew the broker passes (GSAP_TIME_SKEW_S); a self-authorized receipt creates
-- its context (0007). With p_api_key (0022) the caller's API key is checked
-- first, in this transaction. The comments "0007"/"0008" inside the body mark what each of those
-- releases changed. Its statements keep PL/pgSQL's cached plans: every lookup is by a whole
-- key or, for the identical retry, by (tenant, cr_cid) (0019), so a generic plan is the right
-- one whatever the table's size, and autovacuum's ANALYZE invalidates it anyway. (0006 made it
-- re-plan every statement on every call instead; that planning was about half of the
-- database's CPU per receipt, bench/cr_rate.sh.)
--
-- 0007 added parameters: the 18-argument signature of 0002/0006 is dropped (CREATE OR
-- REPLACE cannot change a signature). A database upgraded from before 0007 still has it.
DROP FUNCTION IF EXISTS gsap_complete(text, text, text, jsonb, gsap_cid, gsap_cid, gsap_cid,
                                      text, text, text, text, text, text, boolean, integer,
                                      timestamptz, timestamptz, text);
-- 0013 added the agent's parameters (p_agent_did, p_agent_check, p_agent_passport_cid): the
-- 23-argument signature of 0007 is dropped the same way.
DROP FUNCTION IF EXISTS gsap_complete(text, text, text, jsonb, gsap_cid, gsap_cid, gsap_cid,
                                      text, text, text, text, text, text, boolean, integer,
                                      timestamptz, timestamptz, text, integer, jsonb, gsap_cid,
                                      text, integer);

-- 0022 added p_api_key: the 26-argument signature of 0013 is dropped the same way.
DROP FUNCTION IF EXISTS gsap_complete(text, text, text, jsonb, gsap_cid, gsap_cid, gsap_cid,
                                      text, text, text, text, text, text, boolean, integer,
                                      timestamptz, timestamptz, text, integer, jsonb, gsap_cid,
                                      text, integer, text, text, gsap_cid);

CREATE OR REPLACE FUNCTION gsap_complete(p_tenant text, p_context text, p_cr_id text, p_cr jsonb,
                              p_cr_cid gsap_cid, p_chronicle_cid gsap_cid, p_merkle_root gsap_cid,
                              p_outcome text, p_behavior text, p_command text, p_corpus text,
                              p_params text, p_env text, p_self_authorized boolean,
                              p_exit_code integer, p_started timestamptz,
                              p_completed timestamptz, p_executor text, p_skew_s integer,
                              p_self_ac jsonb, p_self_ac_cid gsap_cid, p_self_accord text,
                              p_self_window_s integer, p_agent_did text,
                              p_agent_check text, p_agent_passport_cid gsap_cid,
                              p_api_key boolean)
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
    v_refusal text; -- 0008
    v_retry boolean; -- an identical retry of a stored receipt (0019)
    v_now timestamptz := now();
    v_issued timestamptz;
    v_allowed boolean;
    v_shell text;
    v_signed boolean; -- 0013
    v_agent text := p_agent_check; -- 0013
    v_self_new boolean := false; -- a self-authorized context seen for the first time
    t record;
BEGIN
    -- 0022: the caller authenticated with the API key p_executor, perhaps from the
    -- broker's short-lived memory of it (broker/brk_http_auth.c, BRK_ROUTE_KEY_RECHECK): the
    -- key must still be live, and its tenant still accept API keys, in this transaction. A revocation,
    -- an expiry or a disabled driver that committed before this statement refuses the
    -- receipt, and nothing is written (not even a refusal event: the caller is not one).
    IF p_api_key THEN
        IF NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.tenant_id = p_tenant
                                                  AND k.key_id = p_executor
                                                  AND k.revoked_at IS NULL
                                                  AND (k.expires_at IS NULL
                                                       OR k.expires_at > v_now)) THEN
            RETURN QUERY SELECT 'key_invalid'::text, NULL::text, NULL::integer, NULL::text,
                NULL::text, NULL::text, NULL::text[], NULL::text, NULL::text, NULL::text,
                NULL::text, NULL::text;
            RETURN;
        END IF;
        IF NOT coalesce((SELECT d.enabled FROM auth_drivers d WHERE d.tenant_id = p_tenant
                                                             AND d.driver = 'api-key'),
                        true) THEN
            RETURN QUERY SELECT 'driver_disabled'::text, NULL::text, NULL::integer, NULL::text,
                NULL::text, NULL::text, NULL::text[], NULL::text, NULL::text, NULL::text,
                NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;
    -- 0007: a self-authorized receipt creates its context, once. Only the "self-" form can be
    -- created (a "ctx_" id is the broker's to issue), and the partial unique index keeps the
    -- id unique across tenants: another tenant's id conflicts, nothing is inserted, and the
    -- lookup below answers not_found as for any context of another tenant. Concurrent first
    -- receipts meet at the same index; the loser then sees the winner's row (a new snapshot
    -- per statement) and is a retry or a conflict like any consumed AC.
    -- The conditions are nested, not joined with AND: a condition that holds a subquery is
    -- planned with the call's values, and one that the values make constant (no self-authorized
    -- AC, no agent: the common case) would never settle on a cached plan, so it was planned
    -- again on every call.
    IF p_self_ac IS NOT NULL
       AND p_context ~ '^self-[A-Za-z0-9][A-Za-z0-9._-]{0,58}$' THEN
        v_self_new := NOT EXISTS (SELECT 1 FROM acs WHERE acs.tenant_id = p_tenant
                                                      AND acs.context_id = p_context);
    END IF;
    IF v_self_new THEN
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
    -- By (tenant, cr_cid) only (migrations/0019): a predicate on the context would let a
    -- generic plan walk the whole session through the primary key. The cr_cid covers the
    -- context id, so a match in another context cannot happen; it is checked all the same.
    v_retry := false;
    IF a.cr_count > 0 THEN
        FOR c IN SELECT * FROM crs WHERE crs.tenant_id = p_tenant AND crs.cr_cid = p_cr_cid LOOP
            IF c.context_id = p_context THEN
                v_retry := true;
                EXIT;
            END IF;
        END LOOP;
    END IF;
    IF v_retry THEN
        RETURN QUERY SELECT 'retry'::text, c.cr_id, c.sequence, c.lineage_cid::text,
            c.prev_lineage_cid::text, a.status, c.flags, c.effective_outcome, c.cr_cid::text,
            c.chronicle_cid::text, c.ac_cid::text, c.outcome;
        RETURN;
    END IF;
    -- 0008: an AC that was never approved (or was revoked) takes no CR, expired or not. The
    -- attempt is evidence too: it is recorded, and returned as a code (not raised) so that
    -- the event commits while nothing else is written.
    v_refusal := gsap_cr_refusal(a);
    IF v_refusal IS NOT NULL THEN
        PERFORM gsap_emit(p_tenant, 'GSAP_CR_REFUSED', p_context, jsonb_build_object(
            'context_id', p_context, 'reason', v_refusal, 'ac_status', a.status,
            'ac_cid', a.ac_cid, 'executor_key_id', p_executor, 'cr_cid', p_cr_cid,
            'outcome', p_outcome, 'attempted_at', v_now));
        RETURN QUERY SELECT v_refusal, NULL::text, NULL::integer, NULL::text, NULL::text,
            a.status, NULL::text[], NULL::text, NULL::text, NULL::text, NULL::text, NULL::text;
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
    -- 0013: the agent's signature. The handler verified it against the newest passport of
    -- p_agent_did it found in this tenant (p_agent_check: NULL no agent named, 'ok',
    -- 'no_passport', 'bad_signature'); that passport must still count now, under the lock
    -- (not revoked, its issuer still trusted, inside its validity window), or the receipt is
    -- as good as unsigned. A receipt naming an agent it cannot back is flagged whatever the
    -- accord says; an accord with signed_receipts also flags a receipt that names none.
    IF v_agent = 'ok' THEN
        IF NOT EXISTS (
            SELECT 1 FROM agent_passports ap JOIN trusted_issuers ti
                ON ti.tenant_id = ap.tenant_id AND ti.name = ap.issuer_name
               AND ti.public_key = ap.issuer_public_key AND ti.revoked_at IS NULL
             WHERE ap.tenant_id = p_tenant AND ap.passport_cid = p_agent_passport_cid
               AND ap.agent_did = p_agent_did AND ap.revoked_at IS NULL
               AND (ap.not_before IS NULL OR v_now >= ap.not_before)
               AND v_now <= ap.expires_at) THEN
            v_agent := 'no_passport';
        END IF;
    END IF;
    SELECT coalesce((body->>'signed_receipts')::boolean, false) INTO v_signed
        FROM accords WHERE accords.tenant_id = p_tenant AND accords.name = a.accord_name;
    IF v_agent = 'bad_signature' THEN
        v_flags := v_flags || 'bad_agent_signature'::text;
    ELSIF v_agent = 'no_passport' OR (v_agent IS NULL AND coalesce(v_signed, false)) THEN
        v_flags := v_flags || 'unsigned_receipt'::text;
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
                     received_at, billed_started_at, billed_completed_at, agent_did,
                     agent_passport_cid)
        VALUES (p_tenant, p_context, v_seq, p_cr_id, p_outcome, v_effective, v_flags,
                p_exit_code, p_started, p_completed, p_cr, p_cr_cid, p_chronicle_cid,
                p_merkle_root, a.ac_cid, a.last_lineage_cid, v_lineage, p_executor, v_now,
                t.billed_started, t.billed_completed, p_agent_did,
                CASE WHEN v_agent = 'ok' THEN p_agent_passport_cid END);
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
        'session_mode', a.session_mode, 'self_authorized', a.self_authorized,
        'agent_did', p_agent_did)); -- 0013
    RETURN QUERY SELECT 'ok'::text, p_cr_id, v_seq, v_lineage, a.last_lineage_cid::text,
        v_status, v_flags, v_effective, p_cr_cid::text, p_chronicle_cid::text, a.ac_cid::text,
        p_outcome;
END $$;
