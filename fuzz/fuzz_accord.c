/*
 * fuzz_accord: libFuzzer target for gov_accord_parse (the accord JSON an admin PUTs or the
 * CLI reads) followed by gov_policy_decide.
 *
 * Properties: a parse returns 0, BRK_EINVAL or BRK_ERANGE with a stable code; on success the
 * normalized body parses again to the same accord (same accord_hash: normalization is
 * idempotent), the TTL cap is within 1..GOV_TTL_MAX, and a decision never grants a TTL above
 * the cap. Any violation abort()s.
 */
#include "gov_accord.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    gov_accord_t a, b;
    gov_decision_t d;
    const char *code = NULL;
    char msg[256];
    if (in == NULL)
        return 0;
    int rc = gov_accord_parse(in, NULL, &a, &code, msg, sizeof msg);
    if (rc != 0) {
        if ((rc != BRK_EINVAL && rc != BRK_ERANGE) || code == NULL || msg[0] == '\0')
            abort();
        json_decref(in);
        return 0;
    }
    if (a.ttl_max < 1 || a.ttl_max > GOV_TTL_MAX || a.posture < 1 || a.posture > 5)
        abort();
    if (gov_accord_parse(a.body, a.name, &b, &code, msg, sizeof msg) != 0 ||
        strcmp(a.accord_hash, b.accord_hash) != 0) {
        fprintf(stderr, "fuzz_accord: normalization is not idempotent (%s)\n", msg);
        abort();
    }
    gov_policy_decide(&a, (int)(size & 1), (uint32_t)size * 2654435761u, NULL, NULL,
                      (long)size * 97, &d);
    if (d.ttl > a.ttl_max)
        abort();
    gov_accord_clear(&b);
    gov_accord_clear(&a);
    json_decref(in);
    return 0;
}
