/*
 * tst_gov: what the gov/ unit suites share: fixed CIDs, a strict JSON parse and a filler.
 */
#ifndef TST_GOV_H
#define TST_GOV_H

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CID_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define CID_B "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define CID_C "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define CID_D "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

static inline json_t *parse(const char *s)
{
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    ck_assert_msg(j != NULL, "bad test JSON: %s", s);
    return j;
}

static inline char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

#endif
