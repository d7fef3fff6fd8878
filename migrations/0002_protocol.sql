-- 0002_protocol: accords, Authorization Contexts, denial receipts, Completion Receipts and the
-- transactional outbox.
--
-- The request path never holds a connection across round trips, so every change that must
-- read before it writes is one function here, called as one pipelined statement: the
-- function's work is one transaction with the outbox row and the NOTIFY.
--
-- Lineage: lineage_cid = CID of the RFC 8785 canonical form of
--   {"ac_cid","chronicle_cid","cr_cid","prev_lineage_cid","sequence"}.
-- Every value is a "sha256:<hex>" string, null or a small integer, and the keys are already
-- in canonical order, so the canonical bytes are exactly the format() below; the C side
-- (brk_jcs) and independent implementations recompute the same CID in the tests.

-- (not "cid": PostgreSQL already has a system type of that name)
CREATE DOMAIN gsap_cid AS text CHECK (VALUE ~ '^sha256:[0-9a-f]{64}$');

CREATE TABLE accords (
    tenant_id text NOT NULL REFERENCES tenants,
    name text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    body jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- Every tenant starts with the accord "default" (SPEC.md, Accords).
CREATE FUNCTION gsap_default_accord() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accords (tenant_id, name, body) VALUES (NEW.tenant_id, 'default',
        '{"name": "default", "ttl_max_seconds": 900, "session_mode_allowed": true,
          "capability_mask": "0x0000ffff", "elevation_required": "0x00000000",
          "corpus_allow": [], "environment_commitment": null, "posture_level": 3,
          "shell_class": "Application", "signed_receipts": false}')
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
CREATE TRIGGER tenants_default_accord AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION gsap_default_accord();
INSERT INTO accords (tenant_id, name, body)
    SELECT tenant_id, 'default', '{"name": "default", "ttl_max_seconds": 900,
        "session_mode_allowed": true, "capability_mask": "0x0000ffff",
        "elevation_required": "0x00000000", "corpus_allow": [], "environment_commitment": null,
        "posture_level": 3, "shell_class": "Application", "signed_receipts": false}'
    FROM tenants ON CONFLICT DO NOTHING;

CREATE TABLE acs (
    tenant_id text NOT NULL REFERENCES tenants,
    context_id text NOT NULL CHECK (context_id ~ '^ctx_[0-9a-f]{32}$'),
    status text NOT NULL CHECK (status IN ('pending', 'authorized', 'active', 'consumed',
                                           'expired', 'revoked')),
    accord_name text NOT NULL,
    session_mode boolean NOT NULL,
    capability_set bigint NOT NULL CHECK (capability_set BETWEEN 0 AND 4294967295),
    command_hash gsap_cid NOT NULL,
    corpus_entry_cid gsap_cid NOT NULL,
    parameters_cid gsap_cid NOT NULL,
    environment_commitment gsap_cid,
    description text CHECK (length(description) <= 256),
    ttl_seconds integer NOT NULL CHECK (ttl_seconds > 0),
    issued_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    issuer_key_id text NOT NULL,
    billing_account text NOT NULL,
    ac jsonb NOT NULL,            -- the signed AC as last signed
    ac_cid gsap_cid NOT NULL,
    elevation jsonb,
    cr_count integer NOT NULL DEFAULT 0,
    last_lineage_cid gsap_cid,
    idempotency_key text CHECK (length(idempotency_key) <= 128),
    request_hash text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, context_id)
);
CREATE UNIQUE INDEX acs_idempotency ON acs (tenant_id, issuer_key_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX acs_expiring ON acs (expires_at) WHERE status IN ('pending', 'authorized', 'active');

CREATE TABLE denials (
    tenant_id text NOT NULL REFERENCES tenants,
    denial_id text NOT NULL CHECK (denial_id ~ '^den_[0-9a-f]{32}$'),
    reason_code text NOT NULL,
    accord_name text NOT NULL,
    issuer_key_id text NOT NULL,
    receipt jsonb NOT NULL,       -- the signed denial receipt
    denial_cid gsap_cid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, denial_id)
);

CREATE TABLE crs (
    tenant_id text NOT NULL,
    context_id text NOT NULL,
    sequence integer NOT NULL CHECK (sequence > 0),
    cr_id text NOT NULL CHECK (cr_id ~ '^cr_[0-9a-f]{32}$'),
    outcome text NOT NULL CHECK (outcome IN ('completed', 'failed', 'violated', 'timed_out',
                                             'session_end')),
    effective_outcome text NOT NULL,
    flags text[] NOT NULL DEFAULT '{}',
    exit_code integer NOT NULL,
    started_at timestamptz NOT NULL,
    completed_at timestamptz NOT NULL,
    cr jsonb NOT NULL,            -- the CR as stored: hashes only, secret-like metadata masked
    cr_cid gsap_cid NOT NULL,
    chronicle_cid gsap_cid NOT NULL,
    merkle_root gsap_cid,
    ac_cid gsap_cid NOT NULL,
    prev_lineage_cid gsap_cid,
    lineage_cid gsap_cid NOT NULL,
    executor_key_id text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, context_id, sequence),
    FOREIGN KEY (tenant_id, context_id) REFERENCES acs
);
CREATE UNIQUE INDEX crs_cr_id ON crs (tenant_id, cr_id);

-- The transactional outbox: written in the same transaction as the change it reports.
CREATE TABLE events (
    tenant_id text NOT NULL,
    event_id bigserial NOT NULL,
    type text NOT NULL,
    context_id text,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX events_by_id ON events (event_id);

CREATE FUNCTION gsap_emit(p_tenant text, p_type text, p_context text, p_payload jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (tenant_id, type, context_id, payload)
        VALUES (p_tenant, p_type, p_context, p_payload);
    PERFORM pg_notify('gsap_events', p_tenant);
END $$;

-- gsap_lineage_cid: the CID of the canonical lineage object (see the header).
CREATE FUNCTION gsap_lineage_cid(p_ac_cid text, p_chronicle_cid text, p_cr_cid text,
                                 p_prev text, p_sequence integer)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'sha256:' || encode(sha256(convert_to(format(
        '{"ac_cid":"%s","chronicle_cid":"%s","cr_cid":"%s","prev_lineage_cid":%s,"sequence":%s}',
        p_ac_cid, p_chronicle_cid, p_cr_cid,
        CASE WHEN p_prev IS NULL THEN 'null' ELSE '"' || p_prev || '"' END,
        p_sequence), 'UTF8')), 'hex')
$$;

-- gsap_issue: stores a signed AC (or finds the one an idempotency key already produced).
-- Returns inserted = false with the earlier AC and its request hash on a repeated key.
CREATE FUNCTION gsap_issue(p_tenant text, p_context text, p_status text, p_accord text,
                           p_session boolean, p_caps bigint, p_command gsap_cid, p_corpus gsap_cid,
                           p_params gsap_cid, p_env gsap_cid, p_description text, p_ttl integer,
                           p_issued timestamptz, p_expires timestamptz, p_issuer text,
                           p_account text, p_ac jsonb, p_ac_cid gsap_cid, p_idem text,
                           p_request_hash text, p_elevation jsonb)
RETURNS TABLE (inserted boolean, ac jsonb, request_hash text)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO acs (tenant_id, context_id, status, accord_name, session_mode, capability_set,
                     command_hash, corpus_entry_cid, parameters_cid, environment_commitment,
                     description, ttl_seconds, issued_at, expires_at, issuer_key_id,
                     billing_account, ac, ac_cid, idempotency_key, request_hash, elevation)
    VALUES (p_tenant, p_context, p_status, p_accord, p_session, p_caps, p_command, p_corpus,
            p_params, p_env, p_description, p_ttl, p_issued, p_expires, p_issuer, p_account,
            p_ac, p_ac_cid, p_idem, p_request_hash, p_elevation)
    ON CONFLICT (tenant_id, issuer_key_id, idempotency_key) WHERE idempotency_key IS NOT NULL
    DO NOTHING;
    IF FOUND THEN
        PERFORM gsap_emit(p_tenant,
            CASE WHEN p_status = 'pending' THEN 'GSAP_AC_PENDING' ELSE 'GSAP_AC_ISSUED' END,
            p_context, jsonb_build_object('context_id', p_context, 'ac_cid', p_ac_cid,
                                          'status', p_status, 'issuer_key_id', p_issuer,
                                          'billing_account', p_account));
        RETURN QUERY SELECT true, p_ac, p_request_hash;
    ELSE
        RETURN QUERY SELECT false, a.ac, a.request_hash FROM acs a
            WHERE a.tenant_id = p_tenant AND a.issuer_key_id = p_issuer
              AND a.idempotency_key = p_idem;
    END IF;
END $$;

CREATE FUNCTION gsap_deny(p_tenant text, p_denial text, p_reason text, p_accord text,
                          p_issuer text, p_receipt jsonb, p_cid gsap_cid)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO denials (tenant_id, denial_id, reason_code, accord_name, issuer_key_id,
                         receipt, denial_cid)
        VALUES (p_tenant, p_denial, p_reason, p_accord, p_issuer, p_receipt, p_cid);
    PERFORM gsap_emit(p_tenant, 'GSAP_AC_DENIED', NULL,
        jsonb_build_object('denial_id', p_denial, 'reason_code', p_reason,
                           'denial_cid', p_cid, 'issuer_key_id', p_issuer));
END $$;

-- gsap_elevate: decides a pending elevation. code: 'ok' or 'decided' (not pending any more).
CREATE FUNCTION gsap_elevate(p_tenant text, p_context text, p_approve boolean,
                             p_elevation jsonb, p_ac jsonb, p_ac_cid gsap_cid,
                             p_issued timestamptz, p_expires timestamptz)
RETURNS TABLE (code text, ac jsonb, status text, elevation jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    IF p_approve THEN
        UPDATE acs a SET status = 'authorized', ac = p_ac, ac_cid = p_ac_cid,
                         issued_at = p_issued, expires_at = p_expires, elevation = p_elevation
            WHERE a.tenant_id = p_tenant AND a.context_id = p_context AND a.status = 'pending';
    ELSE
        UPDATE acs a SET status = 'revoked', elevation = p_elevation
            WHERE a.tenant_id = p_tenant AND a.context_id = p_context AND a.status = 'pending';
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN QUERY SELECT 'decided'::text, a.ac, a.status, a.elevation FROM acs a
            WHERE a.tenant_id = p_tenant AND a.context_id = p_context;
        RETURN;
    END IF;
    PERFORM gsap_emit(p_tenant,
        CASE WHEN p_approve THEN 'GSAP_ELEVATION_APPROVED' ELSE 'GSAP_ELEVATION_REFUSED' END,
        p_context, jsonb_build_object('context_id', p_context, 'elevation', p_elevation,
                                      'ac_cid', p_ac_cid));
    RETURN QUERY SELECT 'ok'::text, a.ac, a.status, a.elevation FROM acs a
        WHERE a.tenant_id = p_tenant AND a.context_id = p_context;
END $$;

-- gsap_complete: accepts a CR under the context's row lock, in one statement: the caller
-- computed the CR's CIDs (from the request alone); the flags, the effective outcome and the
-- lineage are decided here, where the lock makes them exact.
-- code: 'ok', 'retry' (the same CR was already accepted: its receipt is returned),
--       'not_found', 'consumed', 'pending', 'revoked'.
CREATE FUNCTION gsap_complete(p_tenant text, p_context text, p_cr_id text, p_cr jsonb,
                              p_cr_cid gsap_cid, p_chronicle_cid gsap_cid, p_merkle_root gsap_cid,
                              p_outcome text, p_behavior text, p_command text, p_corpus text,
                              p_params text, p_env text, p_self_authorized boolean,
                              p_exit_code integer, p_started timestamptz,
                              p_completed timestamptz, p_executor text)
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
BEGIN
    SELECT * INTO a FROM acs WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context
        FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text, NULL::integer, NULL::text, NULL::text,
            NULL::text, NULL::text[], NULL::text, NULL::text, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    -- An identical retry (the client retries up to 3 times) gets the first receipt.
    SELECT * INTO c FROM crs WHERE crs.tenant_id = p_tenant AND crs.context_id = p_context
        AND crs.cr_cid = p_cr_cid ORDER BY crs.sequence LIMIT 1;
    IF FOUND THEN
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
    IF cardinality(v_flags) > 0 THEN
        v_effective := 'violated';
    END IF;
    IF p_self_authorized THEN
        v_flags := v_flags || 'self_authorized'::text;
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
                     received_at)
        VALUES (p_tenant, p_context, v_seq, p_cr_id, p_outcome, v_effective, v_flags,
                p_exit_code, p_started, p_completed, p_cr, p_cr_cid, p_chronicle_cid,
                p_merkle_root, a.ac_cid, a.last_lineage_cid, v_lineage, p_executor, v_now);
    UPDATE acs SET status = v_status, cr_count = v_seq, last_lineage_cid = v_lineage
        WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context;
    PERFORM gsap_emit(p_tenant, 'GSAP_CR_RECEIVED', p_context, jsonb_build_object(
        'cr_id', p_cr_id, 'context_id', p_context, 'sequence', v_seq,
        'outcome', p_outcome, 'effective_outcome', v_effective, 'flags', to_jsonb(v_flags),
        'exit_code', p_exit_code, 'started_at', p_started, 'completed_at', p_completed,
        'received_at', v_now, 'cr_cid', p_cr_cid, 'chronicle_cid', p_chronicle_cid,
        'merkle_root', p_merkle_root, 'ac_cid', a.ac_cid, 'lineage_cid', v_lineage,
        'prev_lineage_cid', a.last_lineage_cid, 'billing_account', a.billing_account,
        'shell_class', a.ac->>'shell_class', 'capability_set', a.capability_set,
        'session_mode', a.session_mode));
    RETURN QUERY SELECT 'ok'::text, p_cr_id, v_seq, v_lineage, a.last_lineage_cid::text,
        v_status, v_flags, v_effective, p_cr_cid::text, p_chronicle_cid::text, a.ac_cid::text,
        p_outcome;
END $$;
