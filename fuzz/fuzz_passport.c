/*
 * fuzz_passport: libFuzzer target for agent passports and agent signatures (gov/gov_passport.h):
 * the input is one JSON document, checked as an Agent Passport System signed passport
 * (gov_passport_check, with and without the validity window) and as a receipt carrying an
 * agent_signature (gov_agent_sig_verify).
 *
 * Properties: a refusal is a negative enum brk_err with a code and a message and keeps
 * nothing; a passport that passes has a valid did:aps DID that is the one of its key, a
 * passport_cid that is the CID of what is kept, and what is kept passes again with the same
 * CID and the same keys (so the broker re-verifies what it stored, byte for byte); the window
 * check passes nothing that fails without it. Any violation abort()s.
 */
#include "gov_passport.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brk_jcs.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* now: inside the window of any passport made this century */
#define FUZZ_NOW_US 1796083200000000LL /* 2026-12-01T00:00:00Z */

static void check_passport(const json_t *in)
{
    gov_passport_t p, again;
    gov_err_t e = {0}, e2 = {0};
    char did[GOV_AGENT_DID_MAX + 1], cid[BRK_CID_LEN + 1];
    int timed = gov_passport_check(in, GOV_PASSPORT_CHECK_TIME, FUZZ_NOW_US, &p, &e);
    if (timed == 0)
        gov_passport_clear(&p);
    else if (e.rc >= 0 || e.msg[0] == '\0' || e.code == NULL || p.stored != NULL)
        abort();
    if (gov_passport_check(in, 0, 0, &p, &e) != 0) {
        if (timed == 0 || e.rc >= 0 || e.msg[0] == '\0' || p.stored != NULL)
            abort();
        return;
    }
    gov_agent_did_of(p.agent_pub, did);
    if (!gov_agent_did_valid(p.agent_did) || strcmp(did, p.agent_did) != 0 ||
        brk_jcs_cid(p.stored, cid) != 0 || strcmp(cid, p.passport_cid) != 0)
        abort();
    if (gov_passport_check(p.stored, 0, 0, &again, &e2) != 0 ||
        strcmp(again.passport_cid, p.passport_cid) != 0 ||
        memcmp(again.agent_pub, p.agent_pub, sizeof p.agent_pub) != 0 ||
        memcmp(again.issuer_pub, p.issuer_pub, sizeof p.issuer_pub) != 0 ||
        !json_equal(again.stored, p.stored))
        abort();
    gov_passport_clear(&again);
    gov_passport_clear(&p);
}

static void check_signature(const json_t *in)
{
    static const uint8_t zero[BRK_ED25519_PUB_LEN];
    uint8_t pub[BRK_ED25519_PUB_LEN];
    const char *k = json_string_value(json_object_get(in, "public_key"));
    /* a key the document names (so a seed can carry a valid pair), else one that is no key */
    (void)gov_agent_sig_verify(in, k && gov_ed25519_hex(k, pub) == 0 ? pub : zero);
    const char *did = json_string_value(json_object_get(in, "agent_did"));
    if (did != NULL)
        (void)gov_agent_did_valid(did);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    check_passport(in);
    check_signature(in);
    json_decref(in);
    return 0;
}
