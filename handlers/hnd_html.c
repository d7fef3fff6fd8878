/* hnd_html: see hnd_html.h. */
#include "hnd_html.h"

#include <string.h>

#include "banned.h"

void hnd_html_init(hnd_html_t *h, brk_req_t *r, size_t cap)
{
    h->p = brk_req_alloc(r, cap);
    h->len = 0;
    h->cap = cap;
}

void hnd_html_put(hnd_html_t *h, const char *s)
{
    size_t n = strlen(s);
    if (h->len + n >= h->cap)
        return; /* capped: the page is cut, never the process */
    memcpy(h->p + h->len, s, n + 1);
    h->len += n;
}

void hnd_html_esc(hnd_html_t *h, const char *s)
{
    char one[2] = {0, 0};
    for (; s && *s; s++) {
        switch (*s) {
        case '<': hnd_html_put(h, "&lt;"); break;
        case '>': hnd_html_put(h, "&gt;"); break;
        case '&': hnd_html_put(h, "&amp;"); break;
        case '"': hnd_html_put(h, "&quot;"); break;
        default:
            one[0] = *s;
            hnd_html_put(h, one);
        }
    }
}
