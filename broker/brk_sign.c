/* brk_sign: see brk_sign.h. */
#include "brk_sign.h"

#include <stdlib.h>

#include "brk_jcs.h"
#include "banned.h"

int brk_doc_sign(const brk_keyring_t *kr, json_t *doc, const char *cid_field)
{
    char *canon = NULL, cid[BRK_CID_LEN + 1], sig[BRK_SIG_STR_MAX];
    size_t len;
    int rc;
    json_object_del(doc, "signature");
    json_object_del(doc, cid_field);
    json_object_set_new(doc, "key_id", json_string(brk_keyring_current_id(kr)));
    if ((rc = brk_jcs_canonicalize(doc, &canon, &len)) != 0)
        goto out;
    brk_cid_of_bytes(canon, len, cid);
    if ((rc = brk_keyring_sign_str(kr, canon, len, sig, sizeof sig)) != 0)
        goto out;
    json_object_set_new(doc, cid_field, json_string(cid));
    json_object_set_new(doc, "signature", json_string(sig));
out:
    free(canon);
    return rc;
}
