/* gov_lineage: the lineage rule; see gov_lineage.h. */
#include "gov_lineage.h"

#include "brk_err.h"
#include "banned.h"

json_t *gov_lineage_doc(const char *ac_cid, const char *chronicle_cid, const char *cr_cid,
                        const char *prev, long long sequence)
{
    return json_pack("{s:s,s:s,s:s,s:o,s:I}", "ac_cid", ac_cid, "chronicle_cid", chronicle_cid,
                     "cr_cid", cr_cid, "prev_lineage_cid",
                     prev ? json_string(prev) : json_null(), "sequence", (json_int_t)sequence);
}

int gov_lineage_cid(const char *ac_cid, const char *chronicle_cid, const char *cr_cid,
                    const char *prev, long long sequence, char out[BRK_CID_LEN + 1])
{
    if (!brk_cid_valid(ac_cid) || !brk_cid_valid(chronicle_cid) || !brk_cid_valid(cr_cid) ||
        (prev != NULL && !brk_cid_valid(prev)) || sequence < 1)
        return BRK_EINVAL;
    json_t *doc = gov_lineage_doc(ac_cid, chronicle_cid, cr_cid, prev, sequence);
    int rc = doc ? brk_jcs_cid(doc, out) : BRK_ENOMEM;
    json_decref(doc);
    return rc;
}
