/* gov_passport: APS agent passports and agent signatures on receipts; see gov_passport.h. */
#include "gov_passport.h"

#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_time.h"
#include "gov_field.h"
#include "banned.h"

#define SIG_HEX_LEN (2 * BRK_ED25519_SIG_LEN)
#define MULTICODEC_ED25519_0 0xed /* the multicodec prefix of an Ed25519 public key */
#define MULTICODEC_ED25519_1 0x01
#define DID_RAW_LEN (2 + BRK_ED25519_PUB_LEN)

static const char B58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

void gov_agent_did_of(const uint8_t pub[BRK_ED25519_PUB_LEN], char out[GOV_AGENT_DID_MAX + 1])
{
    uint8_t in[DID_RAW_LEN], digits[2 * DID_RAW_LEN] = {0};
    size_t nd = 0, zeros = 0, i, j, o = 0;
    in[0] = MULTICODEC_ED25519_0;
    in[1] = MULTICODEC_ED25519_1;
    memcpy(in + 2, pub, BRK_ED25519_PUB_LEN);
    /* base58btc as the SDK (and Bitcoin) writes it: leading zero bytes become '1' */
    while (zeros < DID_RAW_LEN && in[zeros] == 0)
        zeros++;
    for (i = zeros; i < DID_RAW_LEN; i++) {
        unsigned carry = in[i];
        for (j = 0; j < nd; j++) {
            carry += (unsigned)digits[j] << 8;
            digits[j] = (uint8_t)(carry % 58);
            carry /= 58;
        }
        while (carry > 0) {
            digits[nd++] = (uint8_t)(carry % 58);
            carry /= 58;
        }
    }
    memcpy(out, GOV_AGENT_DID_PREFIX, strlen(GOV_AGENT_DID_PREFIX));
    o = strlen(GOV_AGENT_DID_PREFIX);
    for (i = 0; i < zeros; i++)
        out[o++] = '1';
    while (nd > 0)
        out[o++] = B58[digits[--nd]];
    out[o] = '\0';
}

int gov_agent_did_valid(const char *s)
{
    size_t n = strlen(GOV_AGENT_DID_PREFIX), len = strlen(s);
    if (len <= n || len > GOV_AGENT_DID_MAX || strncmp(s, GOV_AGENT_DID_PREFIX, n) != 0)
        return 0;
    for (size_t i = n; i < len; i++)
        if (strchr(B58, s[i]) == NULL || s[i] == '\0')
            return 0;
    return 1;
}

int gov_issuer_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > GOV_ISSUER_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}

int gov_ed25519_hex(const char *s, uint8_t pub[BRK_ED25519_PUB_LEN])
{
    if (s == NULL || strlen(s) != GOV_ED25519_HEX_LEN)
        return BRK_EINVAL;
    return brk_unhex(s, GOV_ED25519_HEX_LEN, pub, BRK_ED25519_PUB_LEN);
}

/* 1 when an object anywhere in v has a null member: the SDK's canonical form drops those
 * and RFC 8785 keeps them, so such a document has two canonical forms. Deeper than
 * BRK_JCS_MAX_DEPTH it stops looking: brk_jcs refuses such a document anyway. */
static int has_null_member(const json_t *v, int depth)
{
    const char *k;
    json_t *c;
    size_t i;
    if (depth > BRK_JCS_MAX_DEPTH)
        return 0;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, c) if (json_is_null(c) || has_null_member(c, depth + 1))
            return 1;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, c) if (has_null_member(c, depth + 1)) return 1;
    }
    return 0;
}

/* Ed25519 by pub over canon(doc) with a 128-hex signature: 1 when it verifies. */
static int verify_hex(const json_t *doc, const char *sig_hex, const uint8_t pub[BRK_ED25519_PUB_LEN])
{
    uint8_t sig[BRK_ED25519_SIG_LEN];
    char *canon = NULL;
    size_t n = 0;
    int ok = 0;
    if (sig_hex == NULL || strlen(sig_hex) != SIG_HEX_LEN ||
        brk_unhex(sig_hex, SIG_HEX_LEN, sig, sizeof sig) != 0 ||
        brk_jcs_canonicalize(doc, &canon, &n) != 0)
        goto out;
    ok = brk_ed25519_verify(pub, canon, n, sig);
out:
    free(canon);
    return ok;
}

static int check_shape(const json_t *sp, gov_passport_t *p, const char **sig, const char **signed_at,
                       const char **issuer_sig, gov_err_t *e)
{
    static const char *const top[] = {"passport", "signature", "signedAt", "issuerSignature", NULL};
    static const char *const iss[] = {"issuerId", "issuerPublicKey", "signature", "signedAt",
                                      NULL};
    json_t *pp, *is;
    const char *pub, *ipub, *exp, *nbf = NULL, *dummy;
    char *canon = NULL;
    size_t n = 0;
    int rc;

    if (!json_is_object(sp))
        return gov_fail(e, BRK_EINVAL, "invalid_json", "a signed passport is a JSON object");
    if ((rc = gov_reject_unknown(sp, top, e)) || (rc = gov_req_object(sp, "passport", &pp, e)) ||
        (rc = gov_req_string(sp, "signature", SIG_HEX_LEN, sig, e)) ||
        (rc = gov_req_string(sp, "signedAt", GOV_TIME_STR_MAX, signed_at, e)) ||
        (rc = gov_req_object(sp, "issuerSignature", &is, e)) ||
        (rc = gov_reject_unknown(is, iss, e)) ||
        (rc = gov_req_string(is, "issuerPublicKey", GOV_ED25519_HEX_LEN, &ipub, e)) ||
        (rc = gov_req_string(is, "signature", SIG_HEX_LEN, issuer_sig, e)) ||
        (rc = gov_opt_string(is, "issuerId", GOV_ISSUER_NAME_MAX * 4, &dummy, e)) ||
        (rc = gov_opt_string(is, "signedAt", GOV_TIME_STR_MAX, &dummy, e)))
        return rc;
    if (has_null_member(sp, 0))
        return gov_fail(e, BRK_EINVAL, "invalid_passport",
                        "a passport may not hold null members (their canonical form is "
                        "ambiguous)");
    if (brk_jcs_canonicalize(pp, &canon, &n) != 0)
        return gov_fail(e, BRK_EINVAL, "invalid_passport", "the passport cannot be canonicalized");
    free(canon);
    if (n > GOV_PASSPORT_MAX)
        return gov_fail(e, BRK_EINVAL, "field_too_long",
                        "the canonical \"passport\" is at most %d bytes", GOV_PASSPORT_MAX);
    if ((rc = gov_req_string(pp, "publicKey", GOV_ED25519_HEX_LEN, &pub, e)) ||
        (rc = gov_req_string(pp, "expiresAt", GOV_TIME_STR_MAX, &exp, e)) ||
        (rc = gov_opt_string(pp, "notBefore", GOV_TIME_STR_MAX, &nbf, e)))
        return rc;
    if (gov_ed25519_hex(pub, p->agent_pub) != 0 || gov_ed25519_hex(ipub, p->issuer_pub) != 0)
        return gov_fail(e, BRK_EINVAL, "invalid_passport",
                        "\"publicKey\" and \"issuerPublicKey\" are 64 hex digits");
    /* createdAt is the agent's claim about itself, not a window: like the SDK, only notBefore
     * bounds the start */
    if (brk_time_parse_us(exp, &p->expires_us) != 0 ||
        (nbf && brk_time_parse_us(nbf, &p->not_before_us) != 0))
        return gov_fail(e, BRK_EINVAL, "invalid_time",
                        "\"expiresAt\" and \"notBefore\" must be RFC 3339 times");
    p->has_not_before = nbf != NULL;
    brk_hex(p->agent_pub, BRK_ED25519_PUB_LEN, p->agent_pub_hex);
    brk_hex(p->issuer_pub, BRK_ED25519_PUB_LEN, p->issuer_pub_hex);
    gov_agent_did_of(p->agent_pub, p->agent_did);
    return 0;
}

int gov_passport_check(const json_t *sp, int flags, int64_t now_us, gov_passport_t *p,
                       gov_err_t *e)
{
    const char *sig = NULL, *signed_at = NULL, *issuer_sig = NULL;
    json_t *payload = NULL;
    int rc;

    memset(p, 0, sizeof *p);
    if ((rc = check_shape(sp, p, &sig, &signed_at, &issuer_sig, e)) != 0)
        goto fail;
    const json_t *pp = json_object_get(sp, "passport");
    if (!verify_hex(pp, sig, p->agent_pub)) {
        rc = gov_fail(e, BRK_ERANGE, "bad_passport_signature",
                      "the agent's signature over the passport does not verify");
        goto fail;
    }
    /* what countersignPassport signs: the passport, the agent's signature and its time */
    payload = json_pack("{s:O,s:s,s:s}", "passport", pp, "signature", sig, "signedAt", signed_at);
    if (payload == NULL || !verify_hex(payload, issuer_sig, p->issuer_pub)) {
        rc = gov_fail(e, BRK_ERANGE, "bad_issuer_signature",
                      "the issuer's countersignature does not verify");
        goto fail;
    }
    if ((flags & GOV_PASSPORT_CHECK_TIME) && now_us > p->expires_us) {
        rc = gov_fail(e, BRK_ERANGE, "passport_expired", "the passport expired");
        goto fail;
    }
    if ((flags & GOV_PASSPORT_CHECK_TIME) && p->has_not_before && now_us < p->not_before_us) {
        rc = gov_fail(e, BRK_ERANGE, "passport_not_yet_valid", "the passport is not valid yet");
        goto fail;
    }
    p->stored = json_pack("{s:O,s:s,s:s,s:{s:s,s:s}}", "passport", pp, "signature", sig,
                          "signedAt", signed_at, "issuerSignature", "issuerPublicKey",
                          json_string_value(json_object_get(json_object_get(sp, "issuerSignature"),
                                                            "issuerPublicKey")),
                          "signature", issuer_sig);
    if (p->stored == NULL || brk_jcs_cid(p->stored, p->passport_cid) != 0) {
        rc = gov_fail(e, BRK_EINVAL, "invalid_passport", "the passport cannot be canonicalized");
        goto fail;
    }
    json_decref(payload);
    return 0;
fail:
    json_decref(payload);
    gov_passport_clear(p);
    return rc;
}

void gov_passport_clear(gov_passport_t *p)
{
    json_decref(p->stored);
    p->stored = NULL;
}

int gov_agent_sig_verify(const json_t *cr, const uint8_t pub[BRK_ED25519_PUB_LEN])
{
    const char *s = json_string_value(json_object_get(cr, "agent_signature"));
    size_t pl = strlen(GOV_AGENT_SIG_PREFIX);
    uint8_t sig[BRK_ED25519_SIG_LEN + 2];
    json_t *body = NULL;
    char *canon = NULL;
    size_t n = 0;
    int ok = 0;
    if (s == NULL || strlen(s) > GOV_AGENT_SIG_MAX || strncmp(s, GOV_AGENT_SIG_PREFIX, pl) != 0 ||
        brk_b64url_decode(s + pl, strlen(s + pl), sig, sizeof sig) != BRK_ED25519_SIG_LEN)
        return 0;
    /* one spelling only: a decoder that ignores the last character's unused bits would take
     * several strings for one signature */
    char again[GOV_AGENT_SIG_MAX + 1];
    brk_b64url_encode(sig, BRK_ED25519_SIG_LEN, again);
    if (strcmp(again, s + pl) != 0)
        return 0;
    if ((body = json_deep_copy(cr)) == NULL)
        return 0;
    json_object_del(body, "agent_signature");
    if (brk_jcs_canonicalize(body, &canon, &n) == 0)
        ok = brk_ed25519_verify(pub, canon, n, sig);
    free(canon);
    json_decref(body);
    return ok;
}
