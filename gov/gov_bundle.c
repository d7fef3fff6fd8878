/*
 * gov_bundle: the offline check of an audit bundle; see gov_bundle.h for the format and what
 * is covered. Each check reports once; a missing or mistyped member fails the check that
 * needed it, so a broken bundle reads as a list of named failures, never as a crash.
 */
#include "gov_bundle.h"
#include "gov_bundle_int.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_merkle.h"
#include "brk_note.h"
#include "brk_sign.h"
#include "gov_lineage.h"
#include "gov_passport.h"
#include "banned.h"

#define B64_HASH_LEN (4 * ((BRK_MERKLE_HASH_LEN + 2) / 3)) /* 44: padded base64 of a hash */
#define NOTE_DASH "\xe2\x80\x94 "              /* "— ": the start of a note signature line */
#define NOTE_SIG_LEN (4 + BRK_ED25519_SIG_LEN) /* key hash and signature */

int gov_bundle_check(vctx_t *v, int ok, const char *item, const char *fmt, ...)
{
    char detail[BUNDLE_DETAIL_MAX] = "";
    if (!ok) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        v->failed++;
    }
    if (v->report && (!ok || !v->quiet))
        v->report(v->arg, ok, item, detail);
    return ok;
}

const char *gov_bundle_str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

int gov_bundle_streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* The raw public key of the bundle key key_id into pub: 1 when found and well-formed. */
int gov_bundle_key_by_id(const vctx_t *v, const char *key_id, uint8_t pub[BRK_ED25519_PUB_LEN])
{
    size_t i;
    const json_t *k;
    json_array_foreach(v->keys, i, k)
    {
        const char *p = gov_bundle_str(k, "public_key");
        if (gov_bundle_streq(gov_bundle_str(k, "key_id"), key_id) && p != NULL &&
            brk_b64url_decode(p, strlen(p), pub, BRK_ED25519_PUB_LEN) == BRK_ED25519_PUB_LEN)
            return 1;
    }
    return 0;
}

/* A hash in standard padded base64, exactly as the broker writes it: 1 when s is one. */
int gov_bundle_hash_b64(const char *s, brk_mhash_t out)
{
    char again[B64_HASH_LEN + 1];
    uint8_t buf[BRK_MERKLE_HASH_LEN + 4];
    if (s == NULL || strlen(s) != B64_HASH_LEN ||
        brk_b64_decode_lenient(s, B64_HASH_LEN, buf, sizeof buf) != BRK_MERKLE_HASH_LEN)
        return 0;
    brk_b64_std(buf, BRK_MERKLE_HASH_LEN, again);
    if (strcmp(again, s) != 0)
        return 0;
    memcpy(out, buf, BRK_MERKLE_HASH_LEN);
    return 1;
}

/* 1 when (s, n) is exactly the standard padded base64 of (p, len): a decoder that ignores
 * the unused bits of the last character would otherwise accept several spellings of one
 * signature, and a changed character must not pass. */
static int canonical_b64(const uint8_t *p, size_t len, const char *s, size_t n)
{
    char again[4 * ((NOTE_SIG_LEN + 2) / 3) + 1];
    if (len > NOTE_SIG_LEN)
        return 0;
    brk_b64_std(p, len, again);
    return strlen(again) == n && memcmp(again, s, n) == 0;
}

void gov_bundle_check_keys(vctx_t *v, const json_t *broker)
{
    size_t i;
    const json_t *k;
    char item[BUNDLE_ITEM_MAX];
    if (!gov_bundle_check(v, json_array_size(v->keys) > 0, "broker.keys",
                          "no public key in the bundle"))
        return;
    json_array_foreach(v->keys, i, k)
    {
        uint8_t pub[BRK_ED25519_PUB_LEN];
        char id[BRK_KEY_ID_LEN + 1] = "", again[2 * BRK_ED25519_PUB_LEN];
        const char *p = gov_bundle_str(k, "public_key");
        int ok = gov_bundle_streq(gov_bundle_str(k, "alg"), "Ed25519") && p != NULL &&
                 brk_b64url_decode(p, strlen(p), pub, sizeof pub) == BRK_ED25519_PUB_LEN;
        if (ok) {
            brk_b64url_encode(pub, sizeof pub, again);
            brk_key_id_of(pub, id);
            ok = strcmp(again, p) == 0;
        }
        snprintf(item, sizeof item, "broker.keys[%zu]", i);
        gov_bundle_check(v, ok && gov_bundle_streq(gov_bundle_str(k, "key_id"), id), item,
                         "not an Ed25519 public key whose key id is its key_id");
    }
    uint8_t pub[BRK_ED25519_PUB_LEN];
    gov_bundle_check(v, gov_bundle_key_by_id(v, gov_bundle_str(broker, "current_key_id"), pub),
                     "broker.current_key_id", "names no key of the bundle");
}

/* One signed document (an AC: cid_field "ac_cid"; a denial: "denial_cid"). */
void gov_bundle_check_signed(vctx_t *v, const json_t *doc, const char *cid_field, const char *item)
{
    uint8_t pub[BRK_ED25519_PUB_LEN];
    if (!json_is_object(doc)) {
        gov_bundle_check(v, 0, item, "not a JSON object");
        return;
    }
    /* a self-authorized AC (no accord decision, gov_self_context_doc) carries no signature:
     * its ac_cid still binds every member */
    if (json_is_true(json_object_get(doc, "self_authorized")) &&
        json_is_null(json_object_get(doc, "signature"))) {
        char cid[BRK_CID_LEN + 1] = "";
        json_t *body = json_deep_copy(doc);
        json_object_del(body, cid_field);
        json_object_del(body, "signature");
        int ok = body != NULL && brk_jcs_cid(body, cid) == 0 &&
                 gov_bundle_streq(gov_bundle_str(doc, cid_field), cid);
        json_decref(body);
        gov_bundle_check(v, ok, item, "%s is not the CID of the unsigned document", cid_field);
        return;
    }
    if (!gov_bundle_check(v, gov_bundle_key_by_id(v, gov_bundle_str(doc, "key_id"), pub), item,
                          "signed by key \"%s\", which is not in the bundle",
                          gov_bundle_str(doc, "key_id") ? gov_bundle_str(doc, "key_id") : "(none)"))
        return;
    int rc = brk_doc_verify(pub, doc, cid_field, NULL);
    gov_bundle_check(v, rc == 0, item, "%s",
                     rc == BRK_ECONFLICT ? "its CID is not the one recomputed"
                     : rc == BRK_ECRYPTO ? "the signature does not verify"
                                         : "no valid signature or canonical form");
}

/* The checkpoint: its note's body is (origin, size, root_hash), signed by a bundle key under
 * the key name of broker_id. Fills size and root; 1 when it holds. */
int gov_bundle_check_checkpoint(vctx_t *v, const json_t *cp, const char *broker_id,
                                const char *tenant, unsigned long long *size, brk_mhash_t root)
{
    char name[BRK_NOTE_NAME_MAX + 1] = "", origin[BRK_NOTE_ORIGIN_MAX + 1] = "", body[BRK_NOTE_MAX];
    const char *note = gov_bundle_str(cp, "note");
    json_t *sz = json_object_get(cp, "size");
    if (!gov_bundle_check(v, json_is_object(cp), "checkpoint", "missing"))
        return 0;
    int ok = broker_id != NULL && brk_note_key_name(broker_id, name) == 0 && tenant != NULL &&
             snprintf(origin, sizeof origin, "%s/%s", name, tenant) < (int)sizeof origin;
    if (!gov_bundle_check(v,
                          ok && gov_bundle_streq(gov_bundle_str(cp, "key_name"), name) &&
                              gov_bundle_streq(gov_bundle_str(cp, "origin"), origin),
                          "checkpoint.origin", "not \"<key name of broker_id>/<the AC's tenant>\""))
        return 0;
    ok = json_is_integer(sz) && json_integer_value(sz) > 0 &&
         gov_bundle_hash_b64(gov_bundle_str(cp, "root_hash"), root);
    if (!gov_bundle_check(v, ok, "checkpoint.size", "size or root_hash malformed"))
        return 0;
    *size = (unsigned long long)json_integer_value(sz);
    int n = snprintf(body, sizeof body, "%s\n%llu\n%s\n\n", origin, *size,
                     gov_bundle_str(cp, "root_hash"));
    if (!gov_bundle_check(
            v, note != NULL && n < (int)sizeof body && strncmp(note, body, (size_t)n) == 0,
            "checkpoint.note", "its body is not origin, size and root_hash"))
        return 0;
    /* signature lines: "— <name> <base64(key hash || signature)>\n"; one by a bundle key */
    int signed_ok = 0;
    for (const char *l = note + n; *l != '\0' && !signed_ok;) {
        const char *e = strchr(l, '\n');
        if (e == NULL)
            break;
        size_t dl = strlen(NOTE_DASH), nl = strlen(name);
        uint8_t sig[NOTE_SIG_LEN + 4];
        if ((size_t)(e - l) > dl + nl + 1 && memcmp(l, NOTE_DASH, dl) == 0 &&
            memcmp(l + dl, name, nl) == 0 && l[dl + nl] == ' ' &&
            brk_b64_decode_lenient(l + dl + nl + 1, (size_t)(e - l) - dl - nl - 1, sig,
                                   sizeof sig) == NOTE_SIG_LEN &&
            canonical_b64(sig, NOTE_SIG_LEN, l + dl + nl + 1, (size_t)(e - l) - dl - nl - 1)) {
            uint32_t kh =
                (uint32_t)sig[0] << 24 | (uint32_t)sig[1] << 16 | (uint32_t)sig[2] << 8 | sig[3];
            size_t i;
            const json_t *k;
            json_array_foreach(v->keys, i, k)
            {
                uint8_t pub[BRK_ED25519_PUB_LEN];
                if (gov_bundle_key_by_id(v, gov_bundle_str(k, "key_id"), pub) &&
                    brk_note_key_hash(name, pub) == kh &&
                    brk_ed25519_verify(pub, note, (size_t)n - 1, sig + 4))
                    signed_ok = 1;
            }
        }
        l = e + 1;
    }
    return gov_bundle_check(v, signed_ok, "checkpoint.signature",
                            "no note signature by a bundle key under key name \"%s\"", name);
}

/* One receipt x, named prefix ("receipts[3]"): cr_cid, chronicle_cid, its context, and its
 * lineage step recomputed with ac_cid, prev and seq (the caller's view of the chain: the
 * session bundle passes the receipt before and the position, the invoice bundle the
 * receipt's own link and sequence after checking them as it can). */
void gov_bundle_check_receipt(vctx_t *v, const json_t *x, const char *prefix, const char *ctx,
                              const char *ac_cid, const char *prev, long long seq)
{
    char cid[BRK_CID_LEN + 1] = "", item[BUNDLE_ITEM_MAX];
    const json_t *cr = json_object_get(x, "cr");
    const char *lin = gov_bundle_str(x, "lineage_cid");
    snprintf(item, sizeof item, "%s.cr_cid", prefix);
    gov_bundle_check(v,
                     json_is_object(cr) && brk_jcs_cid(cr, cid) == 0 &&
                         gov_bundle_streq(gov_bundle_str(x, "cr_cid"), cid),
                     item, "not the CID of the stored CR");
    snprintf(item, sizeof item, "%s.chronicle_cid", prefix);
    cid[0] = '\0';
    gov_bundle_check(v,
                     json_is_object(json_object_get(cr, "chronicle")) &&
                         brk_jcs_cid(json_object_get(cr, "chronicle"), cid) == 0 &&
                         gov_bundle_streq(gov_bundle_str(x, "chronicle_cid"), cid),
                     item, "not the CID of the stored CR's chronicle");
    snprintf(item, sizeof item, "%s.context_id", prefix);
    gov_bundle_check(v, gov_bundle_streq(gov_bundle_str(cr, "context_id"), ctx), item,
                     "the CR names another context");
    snprintf(item, sizeof item, "%s.lineage_cid", prefix);
    cid[0] = '\0';
    gov_bundle_check(v,
                     gov_lineage_cid(ac_cid, gov_bundle_str(x, "chronicle_cid"),
                                     gov_bundle_str(x, "cr_cid"), prev, seq, cid) == 0 &&
                         gov_bundle_streq(lin, cid),
                     item,
                     "not the lineage CID recomputed from the AC, the CR and the link before");
}

/* The inclusion proof inc of lineage CID lin against the checkpoint (have_cp: there is one
 * that held; cp_size, root), named item. */
void gov_bundle_check_inclusion(vctx_t *v, const json_t *inc, const char *lin, const char *item,
                                int have_cp, unsigned long long cp_size, const brk_mhash_t root)
{
    const json_t *hs = json_object_get(inc, "hashes");
    const json_t *li = json_object_get(inc, "leaf_index"), *ts = json_object_get(inc, "tree_size");
    if (!gov_bundle_check(v, have_cp && json_is_object(inc), item,
                          "no inclusion proof against the bundle's checkpoint (not yet in a "
                          "checkpoint: export again later)"))
        return;
    brk_mhash_t proof[BRK_MERKLE_MAX_PROOF], leaf;
    size_t plen = json_array_size(hs), k;
    int ok = json_is_array(hs) && plen <= BRK_MERKLE_MAX_PROOF && json_is_integer(li) &&
             json_is_integer(ts) && json_integer_value(li) >= 0 &&
             (unsigned long long)json_integer_value(ts) == cp_size && lin != NULL;
    for (k = 0; ok && k < plen; k++)
        ok = gov_bundle_hash_b64(json_string_value(json_array_get(hs, k)), proof[k]);
    if (ok) {
        brk_merkle_leaf_hash(lin, strlen(lin), leaf);
        ok = brk_merkle_verify_inclusion(leaf, (size_t)json_integer_value(li), cp_size,
                                         (const brk_mhash_t *)proof, plen, root);
    }
    gov_bundle_check(v, ok, item, "the lineage CID is not proven in the checkpoint's tree");
}

/* Each passport: both of its signatures, and exactly its signed members (a member nobody
 * signed would be a value the check does not cover). */
static void check_passports(vctx_t *v, const json_t *pps)
{
    size_t i;
    const json_t *p;
    char item[BUNDLE_ITEM_MAX];
    json_array_foreach(pps, i, p)
    {
        gov_passport_t pp;
        gov_err_t e;
        snprintf(item, sizeof item, "passports[%zu]", i);
        int rc = gov_passport_check(p, 0, 0, &pp, &e);
        gov_bundle_check(v, rc == 0 && json_equal((json_t *)p, pp.stored), item, "%s",
              rc != 0 ? e.msg : "members nobody signed");
        if (rc == 0)
            gov_passport_clear(&pp);
    }
}

/* The bundle passport whose CID is cid: 1 with pp filled (caller clears), else 0. */
static int passport_by_cid(const json_t *pps, const char *cid, gov_passport_t *pp)
{
    size_t i;
    const json_t *p;
    gov_err_t e;
    json_array_foreach(pps, i, p)
    {
        if (gov_passport_check(p, 0, 0, pp, &e) != 0)
            continue;
        if (gov_bundle_streq(pp->passport_cid, cid))
            return 1;
        gov_passport_clear(pp);
    }
    return 0;
}

/* A receipt's agent: the passport it names is in the bundle, is the CR's agent, and the CR's
 * agent_signature verifies with its key. */
static void check_agent(vctx_t *v, const json_t *x, const json_t *pps, size_t i)
{
    const json_t *cr = json_object_get(x, "cr"), *pc = json_object_get(x, "agent_passport_cid");
    char item[BUNDLE_ITEM_MAX];
    gov_passport_t pp;
    if (pc == NULL || json_is_null(pc))
        return;
    snprintf(item, sizeof item, "receipts[%zu].agent_signature", i);
    if (!gov_bundle_check(v, json_is_string(pc) && passport_by_cid(pps, json_string_value(pc), &pp), item,
               "names a passport that is not in the bundle"))
        return;
    if (gov_bundle_check(v, gov_bundle_streq(gov_bundle_str(cr, "agent_did"), pp.agent_did), item,
              "the passport is not the CR's agent_did"))
        gov_bundle_check(v, gov_agent_sig_verify(cr, pp.agent_pub), item,
              "does not verify with the agent's passport key");
    gov_passport_clear(&pp);
}

static void check_receipts(vctx_t *v, const json_t *recs, const json_t *pps, const char *ctx,
                           const char *ac_cid, int have_cp, unsigned long long cp_size,
                           const brk_mhash_t root)
{
    size_t i;
    const json_t *x;
    const char *prev = NULL;
    char item[BUNDLE_ITEM_MAX], prefix[BUNDLE_ITEM_MAX];
    json_array_foreach(recs, i, x)
    {
        const json_t *seq = json_object_get(x, "sequence");
        const char *lin = gov_bundle_str(x, "lineage_cid");
        snprintf(prefix, sizeof prefix, "receipts[%zu]", i);
        gov_bundle_check_receipt(v, x, prefix, ctx, ac_cid, prev, (long long)i + 1);
        snprintf(item, sizeof item, "receipts[%zu].sequence", i);
        gov_bundle_check(v, json_is_integer(seq) && json_integer_value(seq) == (json_int_t)i + 1,
                         item, "receipts are not numbered 1, 2, ... in order");
        snprintf(item, sizeof item, "receipts[%zu].prev_lineage_cid", i);
        const json_t *pv = json_object_get(x, "prev_lineage_cid");
        gov_bundle_check(
            v, prev == NULL ? json_is_null(pv) : gov_bundle_streq(json_string_value(pv), prev),
            item, "does not link to the lineage CID of the receipt before");
        prev = lin;
        check_agent(v, x, pps, i);
        snprintf(item, sizeof item, "receipts[%zu].inclusion", i);
        gov_bundle_check_inclusion(v, json_object_get(x, "inclusion"), lin, item, have_cp, cp_size,
                                   root);
    }
}

/* Every bundle key is a key of the pinned document, under the same broker id. */
void gov_bundle_check_pinned(vctx_t *v, const json_t *broker, const json_t *pinned)
{
    size_t i, j;
    const json_t *k, *p;
    int ok =
        gov_bundle_streq(gov_bundle_str(broker, "broker_id"), gov_bundle_str(pinned, "broker_id"));
    json_array_foreach(v->keys, i, k)
    {
        int found = 0;
        json_array_foreach(json_object_get(pinned, "keys"), j, p) found |=
            gov_bundle_streq(gov_bundle_str(k, "key_id"), gov_bundle_str(p, "key_id")) &&
            gov_bundle_streq(gov_bundle_str(k, "public_key"), gov_bundle_str(p, "public_key"));
        ok = ok && found;
    }
    gov_bundle_check(v, ok, "broker.keys pinned",
                     "the bundle's broker id or keys are not the pinned key document's");
}

int gov_bundle_verify(const json_t *b, const json_t *pinned, gov_bundle_report_fn report, void *arg)
{
    vctx_t v = {report, arg, 0, NULL, 0};
    const json_t *broker = json_object_get(b, "broker"), *acs = json_object_get(b, "acs");
    const json_t *recs = json_object_get(b, "receipts"), *dens = json_object_get(b, "denials");
    const char *ctx = gov_bundle_str(b, "context_id");
    char item[BUNDLE_ITEM_MAX];
    size_t i;
    const json_t *d;
    if (!gov_bundle_check(&v, gov_bundle_streq(gov_bundle_str(b, "format"), GOV_BUNDLE_FORMAT),
                          "format", "not \"%s\"", GOV_BUNDLE_FORMAT) ||
        !gov_bundle_check(&v, gov_bundle_streq(gov_bundle_str(b, "kind"), GOV_BUNDLE_KIND_SESSION),
                          "kind", "not \"%s\"", GOV_BUNDLE_KIND_SESSION) ||
        !gov_bundle_check(&v,
                          json_is_object(broker) && json_is_array(json_object_get(broker, "keys")),
                          "broker", "no broker keys") ||
        !gov_bundle_check(&v,
                          json_is_array(acs) && json_array_size(acs) == 1 && json_is_array(recs) &&
                              json_is_array(dens),
                          "members", "acs (one AC), receipts and denials must be arrays"))
        return v.failed;
    v.keys = json_object_get(broker, "keys");
    gov_bundle_check_keys(&v, broker);
    if (pinned != NULL)
        gov_bundle_check_pinned(&v, broker, pinned);
    const json_t *ac = json_object_get(json_array_get(acs, 0), "ac");
    gov_bundle_check_signed(&v, ac, "ac_cid", "acs[0].ac");
    gov_bundle_check(&v, gov_bundle_streq(gov_bundle_str(ac, "context_id"), ctx),
                     "acs[0].context_id", "the AC is not the bundle's context");
    json_array_foreach(dens, i, d)
    {
        snprintf(item, sizeof item, "denials[%zu]", i);
        gov_bundle_check_signed(&v, d, "denial_cid", item);
    }
    unsigned long long size = 0;
    brk_mhash_t root;
    int have_cp = 0;
    const json_t *cp = json_object_get(b, "checkpoint");
    if (json_array_size(recs) > 0 || !json_is_null(cp))
        have_cp = gov_bundle_check_checkpoint(&v, cp, gov_bundle_str(broker, "broker_id"),
                                              gov_bundle_str(ac, "tenant"), &size, root);
    const json_t *pps = json_object_get(b, "passports");
    if (pps != NULL && gov_bundle_check(&v, json_is_array(pps), "passports", "not an array"))
        check_passports(&v, pps);
    check_receipts(&v, recs, json_is_array(pps) ? pps : NULL, ctx, gov_bundle_str(ac, "ac_cid"),
                   have_cp, size, root);
    return v.failed;
}
