/*
 * fuzz_bundle: libFuzzer target for the offline check of an audit bundle (gov_bundle_verify,
 * what `gsap-broker verify` runs on a file an auditor was handed: untrusted input).
 *
 * The input is checked twice: parsed whole (duplicate members refused) by gov_bundle_verify,
 * and read as `verify` reads a file, as a stream (gov_bundle_verify_stream: the path of an
 * invoice bundle, whose lines are read one at a time, and of a session bundle); the first
 * half of a "|" split, when present, is used as the pinned key document. Properties: neither
 * check crashes, each reports every check with a non-empty item name and a detail exactly
 * when it failed, and returns the number of failed reports (the stream check may instead
 * refuse a head over its cap, BRK_ETOOBIG). Any violation abort()s. The seed corpus holds a
 * real session bundle and a real invoice bundle.
 */
#include "gov_bundle.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

#define FUZZ_HEAD_MAX (1u << 20) /* the stream check's head cap here: small, so it is reached */

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
    /* the stream path, over the same bytes */
    FILE *f = size > 0 ? fmemopen((void *)data, size, "r") : NULL;
    if (f != NULL) {
        tally_t ts = {0, 0};
        int rc = gov_bundle_verify_stream(f, FUZZ_HEAD_MAX, pinned, on_report, &ts);
        fclose(f);
        if (rc != BRK_ETOOBIG && (rc < 0 || rc != ts.failed || ts.total == 0))
            abort();
    }
    json_decref(bundle);
    json_decref(pinned);
    return 0;
}
