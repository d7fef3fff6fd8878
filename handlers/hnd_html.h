/*
 * hnd_html: a capped HTML buffer for the printable pages (session, invoice). Appends past
 * the cap are dropped, so a huge page is cut short, never the process. Request loop only.
 */
#ifndef HND_HTML_H
#define HND_HTML_H

#include <stddef.h>

#include "brk_http.h"

typedef struct hnd_html {
    char *p;
    size_t len, cap;
} hnd_html_t;

/* hnd_html_init: a buffer of cap bytes from the request's memory. */
void hnd_html_init(hnd_html_t *h, brk_req_t *r, size_t cap);

/* hnd_html_put: appends s as it is (markup). */
void hnd_html_put(hnd_html_t *h, const char *s);

/* hnd_html_esc: appends s as text, escaping <, >, & and "; NULL appends nothing. */
void hnd_html_esc(hnd_html_t *h, const char *s);

#endif
