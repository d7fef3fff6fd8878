/*
 * brk_event: the outbox events' types and the payload of GSAP_CR_RECEIVED, defined once for
 * its producer and its consumers. The producer is gsap_complete (migrations/0008_approvals.sql:
 * jsonb_build_object with exactly these member names; tests/it_receipts.c checks that an
 * event it writes has exactly these members); the consumers are the billing function
 * (functions/fn_billing.c, billing/bill_rate.c) and whoever reads events.
 *
 * It lives in broker/ rather than gov/ because the function runtime and billing, which sit
 * beside gov/ and may not depend on it, read it too.
 * Pure; any thread.
 */
#ifndef BRK_EVENT_H
#define BRK_EVENT_H

#include <jansson.h>

#define BRK_EV_CR_RECEIVED "GSAP_CR_RECEIVED"
#define BRK_EV_CR_REFUSED "GSAP_CR_REFUSED"
/* Delegations (migrations/functions/20_gsap_deleg_*.sql; docs/protocol.md "Events"). */
#define BRK_EV_DELEGATION_CREATED "GSAP_DELEGATION_CREATED"
#define BRK_EV_DELEGATION_REVOKED "GSAP_DELEGATION_REVOKED"

/* The members of a GSAP_CR_RECEIVED payload, X(name): the name is the JSON member. */
#define BRK_CR_RECEIVED_MEMBERS(X)                                                             \
    X(cr_id)                                                                                   \
    X(context_id)                                                                              \
    X(sequence)                                                                                \
    X(outcome)                                                                                 \
    X(effective_outcome)                                                                       \
    X(flags)                                                                                   \
    X(exit_code)                                                                               \
    X(started_at)                                                                              \
    X(completed_at)                                                                            \
    X(billed_started_at)   /* 0007: the span billed; older events lack it */                  \
    X(billed_completed_at)                                                                     \
    X(received_at)                                                                             \
    X(cr_cid)                                                                                  \
    X(chronicle_cid)                                                                           \
    X(merkle_root)                                                                             \
    X(ac_cid)                                                                                  \
    X(lineage_cid)                                                                             \
    X(prev_lineage_cid)                                                                        \
    X(billing_account)                                                                         \
    X(shell_class)                                                                             \
    X(capability_set)                                                                          \
    X(session_mode)                                                                            \
    X(self_authorized)                                                                         \
    X(agent_did)           /* 0013: the agent that signed the CR, null when none */

/* One GSAP_CR_RECEIVED payload, member by member: each is borrowed from the payload, NULL
 * when absent. Which members must be present, and of what type, is each consumer's rule. */
typedef struct brk_cr_received {
#define BRK_EVENT_MEMBER_(m) const json_t *m;
    BRK_CR_RECEIVED_MEMBERS(BRK_EVENT_MEMBER_)
#undef BRK_EVENT_MEMBER_
} brk_cr_received_t;

/* The member names, in the order above, NULL-terminated. */
extern const char *const brk_cr_received_names[];

/* brk_cr_received_read: every member of payload (borrowed; payload must outlive out). */
void brk_cr_received_read(const json_t *payload, brk_cr_received_t *out);

#endif
