/*
 * fuzz_cr: libFuzzer target for the two request bodies the protocol validates before the
 * database sees them: a Completion Receipt (gov_cr_check) and a request for an AC
 * (gov_ac_request_parse), both gov/.
 *
 * Properties: each returns 0 or a negative enum brk_err with a code and a message; a receipt
 * that passes has a valid cr_cid and chronicle_cid, the cr_cid of its stored form, no
 * secret-looking metadata value left unmasked, and its outcome among the names; a request that
 * passes has a TTL within 1..GOV_TTL_MAX and an account. Any violation abort()s.
 */
#include "gov_acreq.h"
#include "gov_cr.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brk_jcs.h"
#include "gov_field.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_cr(const json_t *in)
{
    gov_cr_t cr;
    gov_err_t e = {0};
    char cid[BRK_CID_LEN + 1];
    const char *k;
    json_t *v;
    if (gov_cr_check(in, &cr, &e) != 0) {
        if (e.rc >= 0 || e.msg[0] == '\0' || cr.stored != NULL)
            abort();
        return;
    }
    if (!brk_cid_valid(cr.cr_cid) || !brk_cid_valid(cr.chronicle_cid) ||
        brk_jcs_cid(cr.stored, cid) != 0 || strcmp(cid, cr.cr_cid) != 0 ||
        (int)cr.outcome < 0 || cr.outcome > GOV_OUTCOME_SESSION_END)
        abort();
    json_object_foreach(json_object_get(cr.stored, "metadata"), k, v)
    {
        if (gov_looks_secret(k) && strcmp(json_string_value(v) ? json_string_value(v) : "",
                                          GOV_REDACTED) != 0)
            abort();
    }
    gov_cr_clear(&cr);
}

static void check_request(const json_t *in)
{
    gov_ac_request_t q;
    gov_err_t e = {0};
    if (gov_ac_request_parse(in, &q, &e) != 0) {
        if (e.rc >= 0 || e.msg[0] == '\0' || q.unknown != NULL)
            abort();
        return;
    }
    if (q.ttl < 1 || q.ttl > GOV_TTL_MAX || q.account == NULL || q.accord == NULL)
        abort();
    gov_ac_request_clear(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    check_cr(in);
    check_request(in);
    json_decref(in);
    return 0;
}
