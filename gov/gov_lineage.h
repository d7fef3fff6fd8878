/*
 * gov_lineage: the lineage rule. Each receipt of a context is linked to the one before it by
 * lineage_cid = CID of the canonical (RFC 8785) JSON object
 *   {"ac_cid", "chronicle_cid", "cr_cid", "prev_lineage_cid" (null for the first), "sequence"}
 * so the receipts of a context form a hash chain rooted in its AC. gsap_complete computes
 * the same in SQL (gsap_lineage_cid, migrations/0002_protocol.sql) under the context's row
 * lock; this is the rule for whoever checks a chain outside the database (auditors, tests,
 * the CLI). Pure functions; any thread.
 */
#ifndef GOV_LINEAGE_H
#define GOV_LINEAGE_H

#include <jansson.h>

#include "brk_jcs.h"

/* gov_lineage_doc: the lineage object of one link (prev NULL for the first receipt). New
 * reference or NULL. */
json_t *gov_lineage_doc(const char *ac_cid, const char *chronicle_cid, const char *cr_cid,
                        const char *prev, long long sequence);

/* gov_lineage_cid: the CID of gov_lineage_doc into out. Returns 0 or a negative enum
 * brk_err (BRK_EINVAL when an argument is not a CID or sequence is below 1). */
int gov_lineage_cid(const char *ac_cid, const char *chronicle_cid, const char *cr_cid,
                    const char *prev, long long sequence, char out[BRK_CID_LEN + 1]);

#endif
