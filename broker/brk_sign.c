/* brk_sign: see brk_sign.h. */
#include "brk_sign.h"

#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
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

int brk_doc_verify(const uint8_t pub[BRK_ED25519_PUB_LEN], const json_t *doc, const char *cid_field,
                   char cid[BRK_CID_LEN + 1])
{
    static const char prefix[] = "ed25519:";
    const char *sig = json_string_value(json_object_get(doc, "signature"));
    const char *claimed = json_string_value(json_object_get(doc, cid_field));
    uint8_t raw[BRK_ED25519_SIG_LEN];
    char *canon = NULL, mine[BRK_CID_LEN + 1];
    size_t len, plen = sizeof prefix - 1;
    json_t *body = NULL;
    int rc = BRK_EAUTH;

    if (cid)
        cid[0] = '\0';
    if (sig == NULL || strncmp(sig, prefix, plen) != 0 ||
        brk_b64url_decode(sig + plen, strlen(sig + plen), raw, sizeof raw) != BRK_ED25519_SIG_LEN)
        goto out;
    /* a shallow copy: the members are shared, only the two left out are not looked at */
    body = json_copy((json_t *)doc);
    json_object_del(body, "signature");
    json_object_del(body, cid_field);
    if ((rc = brk_jcs_canonicalize(body, &canon, &len)) != 0)
        goto out;
    brk_cid_of_bytes(canon, len, mine);
    if (cid)
        memcpy(cid, mine, sizeof mine);
    rc = BRK_ECRYPTO;
    if (!brk_ed25519_verify(pub, canon, len, raw))
        goto out;
    rc = claimed && strcmp(claimed, mine) == 0 ? 0 : BRK_ECONFLICT;
out:
    free(canon);
    json_decref(body);
    return rc;
}
