/*
 * fuzz_bundle: libFuzzer target for the offline check of an audit bundle (gov_bundle_verify,
 * what `gsap-broker verify` runs on a file an auditor was handed: untrusted input).
 *
 * The input is parsed as `verify` parses it (duplicate members refused); the first half of a
 * "|" split, when present, is used as the pinned key document. Properties: the check never
 * crashes, reports every check with a non-empty item name and a detail exactly when it
 * failed, and returns the number of failed reports. Any violation abort()s.
 */
#include "gov_bundle.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct tally {
    int failed;
    int total;
} tally_t;

static void on_report(void *arg, int ok, const char *item, const char *detail)
{
    tally_t *t = arg;

    if (item == NULL || item[0] == '\0' || detail == NULL || (ok && detail[0] != '\0') ||
        (!ok && detail[0] == '\0'))
        abort();
    t->total++;
    t->failed += !ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *bar = memchr(data, '|', size);
    json_t *bundle, *pinned = NULL;
    json_error_t e;
    tally_t t = {0, 0};
    int failed;

    if (bar != NULL) {
        pinned = json_loadb((const char *)data, (size_t)(bar - data), JSON_REJECT_DUPLICATES, &e);
        size -= (size_t)(bar - data) + 1;
        data = bar + 1;
    }
    bundle = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e);
    if (bundle != NULL) {
        failed = gov_bundle_verify(bundle, pinned, on_report, &t);
        if (failed != t.failed || t.total == 0)
            abort();
        /* without a report callback the verdict is the same */
        if (gov_bundle_verify(bundle, pinned, NULL, NULL) != failed)
            abort();
    }
    json_decref(bundle);
    json_decref(pinned);
    return 0;
}
