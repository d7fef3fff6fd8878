/*
 * verify: `gsap-broker verify BUNDLE.json`; see verify.h. The checks are the protocol's
 * (gov_bundle_verify); this file reads the file and prints the report.
 */
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gov_bundle.h"
#include "banned.h"

#define VERIFY_ITEM_MAX 96

typedef struct report {
    unsigned checks, failed;
    char first[VERIFY_ITEM_MAX]; /* the first item that failed */
} report_t;

static void on_check(void *arg, int ok, const char *item, const char *detail)
{
    report_t *r = arg;
    r->checks++;
    if (ok) {
        printf("PASS %s\n", item);
        return;
    }
    if (r->failed++ == 0)
        snprintf(r->first, sizeof r->first, "%s", item);
    printf("FAIL %s: %s\n", item, detail);
}

int cli_verify(int argc, char **argv)
{
    json_error_t e;
    if (argc != 2 || argv[1][0] == '\0') {
        fprintf(stderr, "usage: gsap-broker verify BUNDLE.json\n");
        return 2;
    }
    FILE *f = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
    if (f == NULL) {
        fprintf(stderr, "gsap-broker verify: cannot open \"%s\"\n", argv[1]);
        return 2;
    }
    char *buf = malloc(CLI_VERIFY_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, CLI_VERIFY_MAX_BYTES + 1, f) : 0;
    int err = buf == NULL || ferror(f);
    if (f != stdin)
        fclose(f);
    if (err) {
        free(buf);
        fprintf(stderr, "gsap-broker verify: cannot read \"%s\"\n", argv[1]);
        return 2;
    }
    if (n > CLI_VERIFY_MAX_BYTES) {
        free(buf);
        fprintf(stderr, "gsap-broker verify: \"%s\" is over %u bytes\n", argv[1],
                CLI_VERIFY_MAX_BYTES);
        return 2;
    }
    /* duplicate members would let two readers see two bundles: refused */
    json_t *b = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &e);
    free(buf);
    if (!json_is_object(b)) {
        printf("FAIL bundle: not a JSON object (%s, line %d)\n", e.text, e.line);
        printf("FAILED: the file is no bundle\n");
        json_decref(b);
        return 1;
    }
    report_t r = {0, 0, ""};
    gov_bundle_verify(b, on_check, &r);
    json_decref(b);
    if (r.failed == 0) {
        printf("OK: %u checks hold\n", r.checks);
        return 0;
    }
    printf("FAILED: %u of %u checks; first: %s\n", r.failed, r.checks, r.first);
    return 1;
}
