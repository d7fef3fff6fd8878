-- 0008_approvals: an AC that was never approved is never usable; separation of duties and
-- N-of-M approvals for elevations; invoices that can never overflow.
--
-- 1. gsap_complete refuses a CR on an AC whose elevation was never approved (pending, or
--    pending until the expiry job moved it to expired) or that was revoked, whatever its
--    status is now, and records the attempt as a GSAP_CR_REFUSED event in the same
--    transaction. It returns a code instead of raising, so the event commits while no CR
--    row, no lineage link and no GSAP_CR_RECEIVED (hence no invoice line) is written.
--    Only the lines marked "0008" below differ from the definition in 0007.
-- 2. ac_approvals records every approver's decision; gsap_approve (replacing gsap_elevate)
--    refuses self-approval and duplicate decisions under the AC's row lock and authorizes
--    the AC only when approvals_required distinct approvers approved. One refusal refuses.
-- 3. bill_add_line rolls an invoice whose total would pass BILL_INVOICE_TOTAL_MAX over to
--    a continuation invoice of the same period, so an invoice total cannot overflow bigint
--    and billing never fails on arithmetic (billing/bill_rate.h bounds every line).

-- ---- 1. CRs on ACs that were never approved ----

-- gsap_cr_refusal: why a CR on AC a must be refused although it is neither unknown nor
-- consumed, or NULL when it may be accepted. 'revoked': the AC was revoked (an elevation
-- refusal). 'not_approved': the AC needed an elevation and it was never approved; the
-- elevation record, not the status, decides, so the answer is the same before and after the
-- expiry job moves a pending AC to expired. An AC issued authorized has no elevation record.
CREATE FUNCTION gsap_cr_refusal(a acs) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN a.status = 'revoked' THEN 'revoked'
        WHEN a.status = 'pending'
             OR (a.elevation IS NOT NULL
                 AND a.elevation->>'status' IS DISTINCT FROM 'approved') THEN 'not_approved'
    END
$$;

CREATE OR REPLACE FUNCTION gsap_complete(p_tenant text, p_context text, p_cr_id text, p_cr jsonb,
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
    v_refusal text; -- 0008
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

-- ---- 2. approvals ----

-- One row per approver decision on an elevation. The key is what the broker authenticated;
-- approver_did is that key's principal. Both are unique per context: nobody decides twice.
CREATE TABLE ac_approvals (
    tenant_id text NOT NULL,
    context_id text NOT NULL,
    approver_key_id text NOT NULL,
    approver_did text NOT NULL CHECK (length(approver_did) <= 256),
    decision text NOT NULL CHECK (decision IN ('approve', 'refuse')),
    reason text CHECK (length(reason) <= 256),
    decided_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, context_id, approver_key_id),
    UNIQUE (tenant_id, context_id, approver_did),
    FOREIGN KEY (tenant_id, context_id) REFERENCES acs
);

DROP FUNCTION gsap_elevate(text, text, boolean, jsonb, jsonb, gsap_cid, timestamptz, timestamptz);

-- gsap_approve: records one approver's decision on a pending elevation, under the AC's row
-- lock. The caller read the AC with p_seen decisions recorded, built the elevation record
-- as it will be after this decision (p_elevation) and, when this approval completes the
-- count, the AC re-signed as authorized (p_ac, p_ac_cid, issued p_decided, expiring
-- p_expires; NULL otherwise).
-- code: 'ok'; 'not_found'; 'decided' (not pending any more, or expired); 'self' (the approver's key or
-- DID requested the AC: separation of duties); 'duplicate' (this key or DID has decided
-- already); 'stale' (another decision was recorded since the caller read the AC: read
-- again and retry). Nothing is written unless the code is 'ok'.
CREATE FUNCTION gsap_approve(p_tenant text, p_context text, p_key text, p_did text,
                             p_approve boolean, p_reason text, p_decided timestamptz,
                             p_seen integer, p_elevation jsonb, p_ac jsonb, p_ac_cid gsap_cid,
                             p_expires timestamptz)
RETURNS TABLE (code text, ac jsonb, status text, elevation jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    a acs%ROWTYPE;
    n integer;
    v_required integer;
    v_final boolean;
BEGIN
    SELECT * INTO a FROM acs WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context
        FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb, NULL::text, NULL::jsonb;
        RETURN;
    END IF;
    -- Past its expires_at a pending AC is expired, whether or not the expiry job has marked
    -- it yet: an approval cannot revive it.
    IF a.status <> 'pending' OR a.expires_at < now() THEN
        RETURN QUERY SELECT 'decided'::text, a.ac, a.status, a.elevation;
        RETURN;
    END IF;
    IF p_key = a.issuer_key_id OR p_did = a.ac->'principal'->>'did'
       OR p_did = a.ac->'identity_proof'->>'delegated_by' THEN
        RETURN QUERY SELECT 'self'::text, a.ac, a.status, a.elevation;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM ac_approvals x WHERE x.tenant_id = p_tenant
               AND x.context_id = p_context
               AND (x.approver_key_id = p_key OR x.approver_did = p_did)) THEN
        RETURN QUERY SELECT 'duplicate'::text, a.ac, a.status, a.elevation;
        RETURN;
    END IF;
    SELECT count(*) INTO n FROM ac_approvals x
        WHERE x.tenant_id = p_tenant AND x.context_id = p_context;
    -- ACs pending before this migration have no approvals_required: one approval, as then.
    v_required := coalesce((a.elevation->>'approvals_required')::integer, 1);
    v_final := NOT p_approve OR n + 1 >= v_required;
    IF n <> p_seen OR (p_approve AND v_final) <> (p_ac IS NOT NULL) THEN
        RETURN QUERY SELECT 'stale'::text, a.ac, a.status, a.elevation;
        RETURN;
    END IF;
    INSERT INTO ac_approvals (tenant_id, context_id, approver_key_id, approver_did, decision,
                              reason, decided_at)
        VALUES (p_tenant, p_context, p_key, p_did,
                CASE WHEN p_approve THEN 'approve' ELSE 'refuse' END, p_reason, p_decided);
    IF NOT p_approve THEN
        UPDATE acs SET status = 'revoked', elevation = p_elevation
            WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context;
    ELSIF v_final THEN
        UPDATE acs SET status = 'authorized', ac = p_ac, ac_cid = p_ac_cid,
                       issued_at = p_decided, expires_at = p_expires, elevation = p_elevation
            WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context;
    ELSE
        UPDATE acs SET elevation = p_elevation
            WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context;
    END IF;
    PERFORM gsap_emit(p_tenant,
        CASE WHEN NOT p_approve THEN 'GSAP_ELEVATION_REFUSED'
             WHEN v_final THEN 'GSAP_ELEVATION_APPROVED'
             ELSE 'GSAP_ELEVATION_APPROVAL_RECORDED' END,
        p_context, jsonb_build_object('context_id', p_context, 'elevation', p_elevation,
                                      'approver_key_id', p_key, 'approver_did', p_did,
                                      'ac_cid', coalesce(p_ac_cid, a.ac_cid)));
    RETURN QUERY SELECT 'ok'::text, x.ac, x.status, x.elevation FROM acs x
        WHERE x.tenant_id = p_tenant AND x.context_id = p_context;
END $$;

-- ---- 3. invoices that cannot overflow ----

-- A full invoice (its total would pass BILL_INVOICE_TOTAL_MAX) is frozen for finalizing
-- and marked rolled_over; its period continues on a new open invoice. rolled_over keeps
-- lines of that period from being marked late: the period was not closed, only split.
ALTER TABLE invoices ADD COLUMN rolled_over boolean NOT NULL DEFAULT false;

-- bill_add_line as in 0004, but a line that does not fit the target invoice's total cap
-- (8 * 10^18 minor units: billing/bill_rate.h, BILL_INVOICE_TOTAL_MAX) freezes that
-- invoice and goes on a continuation of the same period. Every line is at most
-- BILL_LINE_MAX (10^18), so an empty invoice always takes it and total + line never passes
-- 9 * 10^18 < 2^63. The month-close job finalizes the frozen invoice once it is
-- BILL_STALE_FINALIZING old (finance may finalize it at once). Only the lines marked "0008"
-- differ from 0004.
CREATE OR REPLACE FUNCTION bill_add_line(p_tenant text, p_account text, p_currency text,
                              p_exponent smallint, p_cr_id text, p_context text,
                              p_lineage gsap_cid, p_chronicle gsap_cid, p_merkle gsap_cid,
                              p_outcome text, p_flags text[], p_quantity bigint,
                              p_unit bigint, p_total bigint, p_rating jsonb,
                              p_occurred timestamptz)
RETURNS TABLE (invoice_id text, line_no bigint, late boolean, inserted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    inv invoices%ROWTYPE;
    v_found boolean;
    v_late boolean;
    v_period date := date_trunc('month', p_occurred AT TIME ZONE 'UTC')::date;
    v_target date;
    v_line bigint;
    v_total_max constant bigint := 8000000000000000000; -- 0008: BILL_INVOICE_TOTAL_MAX
BEGIN
    RETURN QUERY SELECT l.invoice_id, l.line_no, l.late, false FROM invoice_lines l
        WHERE l.tenant_id = p_tenant AND l.cr_id = p_cr_id;
    IF FOUND THEN
        RETURN;
    END IF;
    FOR attempt IN 1..5 LOOP
        SELECT * INTO inv FROM invoices i
            WHERE i.tenant_id = p_tenant AND i.account_id = p_account AND i.period = v_period
              AND i.status = 'open' FOR UPDATE;
        v_found := FOUND;
        v_late := EXISTS (SELECT 1 FROM invoices i WHERE i.tenant_id = p_tenant
                          AND i.account_id = p_account AND i.period = v_period
                          AND i.status <> 'open' AND NOT i.rolled_over); -- 0008
        v_target := v_period;
        IF NOT v_found AND v_late THEN
            SELECT * INTO inv FROM invoices i
                WHERE i.tenant_id = p_tenant AND i.account_id = p_account
                  AND i.period > v_period AND i.status = 'open'
                ORDER BY i.period LIMIT 1 FOR UPDATE;
            v_found := FOUND;
            v_target := greatest(v_period, date_trunc('month', now() AT TIME ZONE 'UTC')::date);
        END IF;
        -- 0008: a full invoice takes no more lines; its period continues on a new invoice.
        IF v_found AND p_total > 0 AND inv.total_minor > v_total_max - p_total THEN
            UPDATE invoices i SET status = 'finalizing', finalizing_at = now(),
                                  rolled_over = true
                WHERE i.tenant_id = p_tenant AND i.invoice_id = inv.invoice_id;
            v_target := inv.period;
            v_found := false;
        END IF;
        EXIT WHEN v_found;
        -- No open invoice yet: create it (or find the one a concurrent run created) and look
        -- again, so the row we write under is always one we hold locked.
        INSERT INTO invoices (tenant_id, invoice_id, account_id, period, currency, exponent)
            VALUES (p_tenant, 'inv_' || replace(gen_random_uuid()::text, '-', ''), p_account,
                    v_target, p_currency, p_exponent)
            ON CONFLICT (tenant_id, account_id, period) WHERE status = 'open' DO NOTHING;
    END LOOP;
    IF NOT v_found THEN
        RAISE EXCEPTION 'no open invoice for account % of tenant % after 5 attempts',
            p_account, p_tenant;
    END IF;
    IF inv.currency <> p_currency THEN
        IF inv.line_count > 0 THEN
            RAISE EXCEPTION 'invoice % is in %, but the line was rated in %', inv.invoice_id,
                inv.currency, p_currency;
        END IF;
        UPDATE invoices i SET currency = p_currency, exponent = p_exponent
            WHERE i.tenant_id = p_tenant AND i.invoice_id = inv.invoice_id;
    END IF;
    v_line := inv.line_count + 1;
    INSERT INTO invoice_lines (tenant_id, invoice_id, line_no, cr_id, context_id, lineage_cid,
                               chronicle_cid, merkle_root, outcome, flags, quantity,
                               unit_minor, total_minor, rating, occurred_at, late)
        VALUES (p_tenant, inv.invoice_id, v_line, p_cr_id, p_context, p_lineage, p_chronicle,
                p_merkle, p_outcome, p_flags, p_quantity, p_unit, p_total, p_rating,
                p_occurred, v_late);
    UPDATE invoices i SET total_minor = i.total_minor + p_total, line_count = v_line
        WHERE i.tenant_id = p_tenant AND i.invoice_id = inv.invoice_id;
    RETURN QUERY SELECT inv.invoice_id, v_line, v_late, true;
END $$;

ALTER FUNCTION bill_add_line(text, text, text, smallint, text, text, gsap_cid, gsap_cid, gsap_cid,
                             text, text[], bigint, bigint, bigint, jsonb, timestamptz)
    SET plan_cache_mode = force_custom_plan;

-- The session page lists the refused CR attempts of its context (handlers/hnd_session.c).
CREATE INDEX events_cr_refused ON events (tenant_id, context_id, event_id)
    WHERE type = 'GSAP_CR_REFUSED';
