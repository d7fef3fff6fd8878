/*
 * gov_bundle_int: the pieces of the bundle check that the session bundle (gov_bundle.c) and
 * the invoice bundle (gov_invbundle.c) share. Private to gov/. Pure functions; any thread.
 */
#ifndef GOV_BUNDLE_INT_H
#define GOV_BUNDLE_INT_H

#include <jansson.h>
#include <stdint.h>

#include "brk_crypto.h"
#include "brk_merkle.h"
#include "gov_bundle.h"

#define BUNDLE_ITEM_MAX 96    /* a check's name, e.g. "receipts[12].inclusion" */
#define BUNDLE_DETAIL_MAX 256 /* why it failed */

/* The state of one check run. */
typedef struct vctx {
    gov_bundle_report_fn report;
    void *arg;
    int failed;
    const json_t *keys; /* broker.keys */
    int quiet;          /* passing checks are not reported (a line reports once for all) */
} vctx_t;

/* gov_bundle_check: counts and reports one check (detail printf-formatted when !ok);
 * returns ok. */
int gov_bundle_check(vctx_t *v, int ok, const char *item, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *gov_bundle_str(const json_t *o, const char *k); /* a string member or NULL */
int gov_bundle_streq(const char *a, const char *b);         /* both non-NULL and equal */
/* The raw public key of the bundle key key_id: 1 when found and well-formed. */
int gov_bundle_key_by_id(const vctx_t *v, const char *key_id, uint8_t pub[BRK_ED25519_PUB_LEN]);
/* A hash in standard padded base64, exactly as the broker writes it: 1 when s is one. */
int gov_bundle_hash_b64(const char *s, brk_mhash_t out);
void gov_bundle_check_keys(vctx_t *v, const json_t *broker);
void gov_bundle_check_pinned(vctx_t *v, const json_t *broker, const json_t *pinned);
/* One signed document (cid_field "ac_cid", "denial_cid", "invoice_cid"), named item. */
void gov_bundle_check_signed(vctx_t *v, const json_t *doc, const char *cid_field, const char *item);
/* The checkpoint cp ({"origin", "size", "root_hash", "key_name", "note"}) of tenant's log;
 * fills size and root; 1 when it holds. */
int gov_bundle_check_checkpoint(vctx_t *v, const json_t *cp, const char *broker_id,
                                const char *tenant, unsigned long long *size, brk_mhash_t root);
void gov_bundle_check_receipt(vctx_t *v, const json_t *x, const char *prefix, const char *ctx,
                              const char *ac_cid, const char *prev, long long seq);
void gov_bundle_check_inclusion(vctx_t *v, const json_t *inc, const char *lin, const char *item,
                                int have_cp, unsigned long long cp_size, const brk_mhash_t root);

#endif
