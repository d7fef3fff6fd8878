/*
 * verify: `gsap-broker verify BUNDLE.json`; see verify.h. The checks are the protocol's
 * (gov_bundle_verify); this file reads the file and prints the report.
 */
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "brk_err.h"
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

/* Reads the JSON object in path ("-": stdin), at most CLI_VERIFY_MAX_BYTES; NULL after
 * printing why (*unreadable set when the file could not be read at all). */
static json_t *load(const char *path, int *unreadable)
{
    json_error_t e;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    *unreadable = 1;
    if (f == NULL) {
        fprintf(stderr, "gsap-broker verify: cannot open \"%s\"\n", path);
        return NULL;
    }
    /* grown as it fills, so a small bundle costs little; one byte past the cap is "too big" */
    size_t n = 0, cap = 0;
    char *buf = NULL;
    int err = 0;
    while (!err && n <= CLI_VERIFY_MAX_BYTES) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > CLI_VERIFY_MAX_BYTES + 1)
                ncap = CLI_VERIFY_MAX_BYTES + 1;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                err = 1;
                break;
            }
            buf = nb, cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            err = ferror(f) != 0;
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (err || n > CLI_VERIFY_MAX_BYTES) {
        free(buf);
        fprintf(stderr, "gsap-broker verify: cannot read \"%s\"%s\n", path,
                err ? "" : ": over " CLI_VERIFY_MAX_TEXT " bytes");
        return NULL;
    }
    *unreadable = 0;
    /* duplicate members would let two readers see two documents: refused */
    json_t *j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &e);
    free(buf);
    if (!json_is_object(j)) {
        printf("FAIL %s: not a JSON object (%s, line %d)\n", path, e.text, e.line);
        json_decref(j);
        return NULL;
    }
    return j;
}

int cli_verify(int argc, char **argv)
{
    const char *keys = NULL, *path = NULL;
    int unreadable = 0;
    if (argc == 4 && strcmp(argv[1], "--keys") == 0)
        keys = argv[2], path = argv[3];
    else if (argc == 2)
        path = argv[1];
    if (path == NULL || path[0] == '\0' || (keys != NULL && keys[0] == '\0')) {
        fprintf(stderr, "usage: gsap-broker verify [--keys GSAP-BROKER.json] BUNDLE.json\n");
        return 2;
    }
    json_t *pinned = keys ? load(keys, &unreadable) : NULL;
    if (keys != NULL && pinned == NULL) {
        if (!unreadable)
            printf("FAILED: the key file is no JSON object\n");
        return unreadable ? 2 : 1;
    }
    /* the bundle is read as a stream: an invoice bundle's lines one at a time */
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        json_decref(pinned);
        fprintf(stderr, "gsap-broker verify: cannot open \"%s\"\n", path);
        return 2;
    }
    report_t r = {0, 0, ""};
    int rc = gov_bundle_verify_stream(f, CLI_VERIFY_MAX_BYTES, pinned, on_check, &r);
    int read_err = ferror(f) != 0;
    if (f != stdin)
        fclose(f);
    json_decref(pinned);
    if (rc == BRK_ETOOBIG || read_err) {
        fprintf(stderr, "gsap-broker verify: cannot read \"%s\"%s\n", path,
                read_err ? "" : ": over " CLI_VERIFY_MAX_TEXT " bytes before the lines");
        return 2;
    }
    if (r.failed == 0) {
        printf("OK: %u checks hold\n", r.checks);
        return 0;
    }
    printf("FAILED: %u of %u checks; first: %s\n", r.failed, r.checks, r.first);
    return 1;
}
