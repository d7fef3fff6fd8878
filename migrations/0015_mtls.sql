-- 0015_mtls: the mtls identity driver's configuration, one row per tenant (broker/brk_mtls.h,
-- PUT /admin/identity/mtls, `gsap-broker mtls set`).
--
-- A client certificate finds its tenant by the trust domain of its SAN URI (scheme and
-- authority, "spiffe://example.org"), so a trust domain belongs to at most one tenant: the
-- UNIQUE constraint is what keeps one tenant's certificates out of another. The chain is
-- then verified against this row's CA certificates only. A disabled row keeps its trust
-- domain (the runtime role cannot delete rows); PUT another configuration to release it.
-- Under Citus this table would be a reference table: the lookup is by trust domain, not by
-- tenant.

CREATE TABLE tenant_mtls (
    tenant_id text PRIMARY KEY REFERENCES tenants,
    enabled boolean NOT NULL DEFAULT true,
    -- BRK_MTLS_CA_PEM_MAX; the broker checks every block is a CA certificate before storing
    ca_pem text NOT NULL CHECK (octet_length(ca_pem) BETWEEN 1 AND 65536),
    trust_domain text NOT NULL UNIQUE CHECK (trust_domain ~ '^[a-z][a-z0-9+.-]*://[a-z0-9._-]+$'),
    -- BRK_MTLS_URI_MAX; always the trust domain, '/', then whole segments each ending in '/'
    san_uri_prefix text NOT NULL CHECK (octet_length(san_uri_prefix) <= 200
                                        AND starts_with(san_uri_prefix, trust_domain || '/')
                                        AND san_uri_prefix ~ '/$'),
    -- NULL: did:web of the SAN URI; else the prefix of the DID (BRK_MTLS_DID_PREFIX_MAX)
    did_prefix text CHECK (did_prefix ~ '^did:[a-z0-9]+:[A-Za-z0-9._:-]*$'
                           AND octet_length(did_prefix) <= 128),
    roles text[] NOT NULL CHECK (roles <@ ARRAY['issuer', 'executor', 'approver', 'finance',
                                                'auditor', 'admin']
                                 AND cardinality(roles) > 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
