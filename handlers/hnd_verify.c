/*
 * hnd_verify: GET /verify, the audit bundle verifier that runs in the auditor's browser
 * (handlers/verify.html: one self-contained page, inline style and script, nothing loaded
 * from anywhere). It is public: it holds no data, only code, and an auditor may open it
 * before having a key, or save it and open the file offline.
 *
 * The page is compiled into the binary (tools/embed_file.cmake, hnd_verify_gen.c in the build
 * directory). At registration its one <style> and one <script> are hashed, and the
 * Content-Security-Policy that allows exactly those two and nothing else (no other script,
 * no network, no form, no frame, no base) is written into the page's own meta tag (so a saved
 * copy keeps it) and sent as a header (which adds frame-ancestors, a header-only directive).
 * A bundle dropped into the page is shown with textContent only; even if it were not, the
 * policy would refuse any script it tried to bring.
 *
 * Invariant: the page served is built once, before the server starts, and never changes;
 * the request path only copies it. A page without exactly one style and one script, or
 * without the CSP placeholder, fails registration: the broker does not start.
 */
#include "hnd.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_http.h"
#include "brk_log.h"
#include "brk_note.h" /* brk_b64_std */
#include "banned.h"

/* Defined in the generated hnd_verify_gen.c: the page's bytes plus a NUL, and their count. */
extern const char hnd_verify_html[];
extern const unsigned long hnd_verify_html_len;

#define VERIFY_CSP_PLACEHOLDER "@GSAP_VERIFY_CSP@"
#define VERIFY_HASH_B64_LEN (4 * ((BRK_SHA256_LEN + 2) / 3)) /* 44 */
#define VERIFY_CSP_MAX 512
/* The policy: only the page's own style and script; everything else refused. The meta form
 * leaves out frame-ancestors, which browsers only honour in a header. */
#define VERIFY_CSP_FMT                                                                             \
    "default-src 'none'; script-src 'sha256-%s'; style-src 'sha256-%s'; base-uri 'none'; "         \
    "form-action 'none'"
#define VERIFY_CSP_HEADER_TAIL "; frame-ancestors 'none'"

static char *page; /* the page with its policy filled in (lives as long as the process) */
static size_t page_len;
static char csp_header[VERIFY_CSP_MAX];

/* The text between the one open tag and its close tag of src into *start, *len: 0, or
 * BRK_EINVAL when either is missing or appears more than once. */
static int element_text(const char *src, const char *open, const char *close, const char **start,
                        size_t *len)
{
    const char *o = strstr(src, open), *c = strstr(src, close);
    if (o == NULL || c == NULL || strstr(o + 1, open) != NULL || strstr(c + 1, close) != NULL ||
        c < o + strlen(open))
        return BRK_EINVAL;
    *start = o + strlen(open);
    *len = (size_t)(c - *start);
    return 0;
}

static void hash_b64(const char *p, size_t n, char out[VERIFY_HASH_B64_LEN + 1])
{
    uint8_t d[BRK_SHA256_LEN];
    brk_sha256(p, n, d);
    brk_b64_std(d, sizeof d, out);
}

static int build_page(void)
{
    const char *src = hnd_verify_html, *script, *style, *ph;
    size_t script_len, style_len;
    char script_h[VERIFY_HASH_B64_LEN + 1], style_h[VERIFY_HASH_B64_LEN + 1], csp[VERIFY_CSP_MAX];

    if (page != NULL)
        return 0;
    if (strlen(src) != hnd_verify_html_len ||
        element_text(src, "<script>", "</script>", &script, &script_len) != 0 ||
        element_text(src, "<style>", "</style>", &style, &style_len) != 0 ||
        (ph = strstr(src, VERIFY_CSP_PLACEHOLDER)) == NULL ||
        strstr(ph + 1, VERIFY_CSP_PLACEHOLDER) != NULL || ph > script) {
        brk_log_error("the verifier page is malformed", "file", "handlers/verify.html", "need",
                      "one <style>, one <script> and one CSP placeholder before it");
        return BRK_EINVAL;
    }
    hash_b64(script, script_len, script_h);
    hash_b64(style, style_len, style_h);
    int n = snprintf(csp, sizeof csp, VERIFY_CSP_FMT, script_h, style_h);
    if (n <= 0 || (size_t)n >= sizeof csp ||
        snprintf(csp_header, sizeof csp_header, "%s" VERIFY_CSP_HEADER_TAIL, csp) >=
            (int)sizeof csp_header)
        return BRK_EINVAL;
    /* the placeholder sits before the script, so filling it in leaves both hashes valid */
    size_t before = (size_t)(ph - src), ph_len = strlen(VERIFY_CSP_PLACEHOLDER);
    page_len = hnd_verify_html_len - ph_len + (size_t)n;
    page = brk_malloc(page_len + 1);
    memcpy(page, src, before);
    memcpy(page + before, csp, (size_t)n);
    memcpy(page + before + (size_t)n, ph + ph_len, hnd_verify_html_len - before - ph_len + 1);
    return 0;
}

static void verify_page(brk_req_t *r)
{
    brk_reply_add_header(r, "content-security-policy", csp_header);
    brk_reply_add_header(r, "x-content-type-options", "nosniff");
    brk_reply_add_header(r, "referrer-policy", "no-referrer");
    brk_reply_raw(r, 200, "text/html; charset=utf-8", page, page_len);
}

static const brk_route_t routes[] = {
    {"GET", "/verify", 0, 0, verify_page},
};

int hnd_verify_register(void)
{
    int rc = build_page();
    if (rc != 0)
        return rc;
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
