/*
 * fuzz_unknown: libFuzzer target for gov_unknown_names, which decides which members of a CR
 * or an authorize request this broker keeps as unrecognized (gov/gov_field.h).
 *
 * Properties: the result is 0 or BRK_EINVAL with a message; on success the names are sorted,
 * distinct, members of the input, none of them a known field, at most GOV_UNKNOWN_MAX, each
 * at most GOV_UNKNOWN_KEY_MAX bytes; and every member of the input that is not a known field
 * is listed. Any violation abort()s.
 */
#include "gov_field.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fields[] = {
    "context_id", "outcome", "exit_code", "started_at", "completed_at", "command_hash",
    "corpus_entry_cid", "parameters_cid", "stdout_hash", "stderr_hash", "output_bytes",
    "chronicle", "environment_commitment", "self_authorized", "metadata", "accord_template",
    NULL};

static int known(const char *k)
{
    for (size_t i = 0; fields[i]; i++)
        if (strcmp(fields[i], k) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL), *names;
    char msg[160] = "";
    if (!json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    int rc = gov_unknown_names(in, fields, &names, msg, sizeof msg);
    if (rc != 0) {
        if (rc != BRK_EINVAL || msg[0] == '\0' || names != NULL)
            abort();
        json_decref(in);
        return 0;
    }
    size_t n = json_array_size(names), unknown = 0;
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) unknown += !known(k);
    if (n != unknown || n > GOV_UNKNOWN_MAX)
        abort();
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(names, i));
        if (s == NULL || known(s) || json_object_get(in, s) == NULL ||
            strlen(s) > GOV_UNKNOWN_KEY_MAX)
            abort();
        if (i > 0 && strcmp(json_string_value(json_array_get(names, i - 1)), s) >= 0)
            abort();
    }
    json_decref(names);
    json_decref(in);
    return 0;
}
