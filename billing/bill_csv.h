/*
 * bill_csv: CSV rows as RFC 4180 writes them: fields separated by ',', records ended by
 * CRLF, a field quoted with '"' when it holds '"', ',', CR or LF, and a '"' inside a quoted
 * field doubled. Empty fields stay empty (no quotes). Pure functions: any thread.
 */
#ifndef BILL_CSV_H
#define BILL_CSV_H

#include <stddef.h>

/*
 * bill_csv_row: writes the n fields (NULL is an empty field) as one record, CRLF included,
 * into out (capacity cap, NUL-terminated when cap > 0). Returns the record's length without
 * the NUL, as snprintf does: when it is >= cap the record was cut, and cap = result + 1 fits.
 */
size_t bill_csv_row(char *out, size_t cap, const char *const *fields, size_t n);

#endif
