/* tst_mutate: see tst_mutate.h. */
#include "tst_mutate.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct walk {
    json_t *root;
    tst_mutate_skip_fn skip;
    tst_mutate_check_fn check;
    tst_mutate_result_t *out;
} walk_t;

/* The same string with one ASCII letter or digit near its middle changed; NULL when none. */
static char *flip(const char *s)
{
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++) {
        size_t i = (n / 2 + k) % n;
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            char *t = strdup(s);
            t[i] = c == 'z' ? 'y' : c == 'Z' ? 'Y' : c == '9' ? '8' : (char)(c + 1);
            return t;
        }
    }
    return NULL;
}

static void try_value(walk_t *w, json_t *parent, const char *key, size_t idx, json_t *nv,
                      const char *path)
{
    json_t *old = json_incref(key ? json_object_get(parent, key) : json_array_get(parent, idx));
    if (key)
        json_object_set_new(parent, key, nv);
    else
        json_array_set_new(parent, idx, nv);
    char *report = NULL;
    int st = w->check(w->root, &report);
    w->out->mutated++;
    if (st != 1) {
        fprintf(stderr, "mutating %s: verify exit %d\n%s\n", path, st, report ? report : "");
        if (w->out->survived++ == 0)
            snprintf(w->out->first, sizeof w->out->first, "%s", path);
    }
    free(report);
    if (key)
        json_object_set_new(parent, key, old);
    else
        json_array_set_new(parent, idx, old);
}

static void walk(walk_t *w, json_t *v, json_t *parent, const char *key, size_t idx,
                 const char *path)
{
    char sub[TST_MUTATE_PATH_MAX];
    if (w->skip != NULL && w->skip(path))
        return;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, c)
        {
            snprintf(sub, sizeof sub, "%s.%s", path, k);
            walk(w, c, v, k, 0, sub);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            walk(w, json_array_get(v, i), v, NULL, i, sub);
        }
    } else if (json_is_string(v)) {
        char *t = flip(json_string_value(v));
        ck_assert_msg(t != NULL, "%s has no letter or digit to change", path);
        try_value(w, parent, key, idx, json_string(t), path);
        free(t);
    } else if (json_is_integer(v)) {
        try_value(w, parent, key, idx, json_integer(json_integer_value(v) + 1), path);
    } else if (json_is_real(v)) {
        try_value(w, parent, key, idx, json_real(json_real_value(v) + 1), path);
    } else if (json_is_boolean(v)) {
        try_value(w, parent, key, idx, json_boolean(!json_is_true(v)), path);
    }
    /* null: no scalar value to change (a value there is a change of type, not of a scalar) */
}

void tst_mutate_scalars(json_t *root, tst_mutate_skip_fn skip, tst_mutate_check_fn check,
                        tst_mutate_result_t *out)
{
    walk_t w = {root, skip, check, out};
    memset(out, 0, sizeof *out);
    walk(&w, root, NULL, NULL, 0, "");
}
