/* bill_csv: RFC 4180 records; see bill_csv.h. */
#include "bill_csv.h"

#include <string.h>

#include "banned.h"

/* Appends one byte when it fits; always counts it. */
static void put(char *out, size_t cap, size_t *len, char c)
{
    if (*len + 1 < cap)
        out[*len] = c;
    (*len)++;
}

size_t bill_csv_row(char *out, size_t cap, const char *const *fields, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        const char *f = fields[i] ? fields[i] : "";
        int quote = strpbrk(f, "\",\r\n") != NULL;
        if (i > 0)
            put(out, cap, &len, ',');
        if (quote)
            put(out, cap, &len, '"');
        for (; *f; f++) {
            if (*f == '"')
                put(out, cap, &len, '"');
            put(out, cap, &len, *f);
        }
        if (quote)
            put(out, cap, &len, '"');
    }
    put(out, cap, &len, '\r');
    put(out, cap, &len, '\n');
    if (cap > 0)
        out[len < cap ? len : cap - 1] = '\0';
    return len;
}
