/*
 * hnd_deleg: what the delegation routes (hnd_deleg.c) share with AC issuance
 * (hnd_authorize.c): the one SELECT list a stored delegation is read with, and who may see it.
 */
#ifndef HND_DELEG_H
#define HND_DELEG_H

/* A delegation row "d" as one JSON object (gov_deleg_parent_from_row reads the scope part). */
#define HND_DELEG_ROW_JSON                                                                         \
    "json_build_object('delegation_id', d.delegation_id, 'parent_id', d.parent_id, 'chain', "      \
    "d.chain, 'depth', d.depth, 'max_depth', d.max_depth, 'delegator_did', d.delegator_did, "      \
    "'creator_key_id', d.creator_key_id, 'owner_key_id', d.owner_key_id, 'agent_did', "            \
    "d.agent_did, 'capability_set', d.capability_set, 'accords', d.accords, 'corpus', "            \
    "d.corpus, 'prohibited', d.prohibited, 'expires_epoch', floor(extract(epoch FROM "             \
    "d.expires_at))::bigint, 'expires_at', d.expires_at, 'max_commands', d.max_commands, "         \
    "'acs_issued', d.acs_issued, 'spend_limit_minor', d.spend_limit_minor, 'status', "             \
    "d.status, 'revoked_at', d.revoked_at, 'revoked_by', d.revoked_by, 'created_at', "             \
    "d.created_at, 'delegation_cid', d.delegation_cid, 'aps_delegated_to', "                       \
    "d.aps->>'delegatedTo', 'expired', d.expires_at <= now())"

/* Who may see (and revoke) delegation "d": $2 the caller's key id, $3 its DID. The key that
 * owns the chain (its root's delegator) or created the row, the delegator and the agent, and
 * the agent of any delegation above it. Nobody else of the tenant, and never another tenant
 * ($1 is the caller's tenant). */
#define HND_DELEG_VISIBLE                                                                          \
    "(d.owner_key_id = $2 OR d.creator_key_id = $2 OR d.delegator_did = $3 OR "                    \
    "d.agent_did = $3 OR EXISTS (SELECT 1 FROM delegations a WHERE a.tenant_id = $1 AND "          \
    "a.delegation_id = ANY (d.chain) AND a.agent_did = $3))"

#endif
