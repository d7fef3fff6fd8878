/*
 * hnd_session: the session page (an AC with its receipts and lineage, as JSON or printable
 * HTML) and the identity-driver listing.
 *
 * Who may read a session (hnd_access.h): auditors of the tenant, the key that issued the AC,
 * a key that posted a receipt in it (gsh links to the page after posting), and approvers
 * while the AC awaits a decision or when they decided it. Anyone else of the tenant, and
 * anything of another tenant, is 404.
 */
#include "hnd.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_http.h"
#include "brk_limits.h"
#include "brk_server.h"
#include "brk_time.h"
#include "hnd_access.h"
#include "hnd_gov.h"
#include "gov_lineage.h"
#include "hnd_html.h"
#include "hnd_util.h"
#include "banned.h"

/* Receipts are paged by sequence (keyset: ?after=<sequence>&limit=<n>), so a context with
 * thousands of receipts costs one index range per page and every receipt stays reachable. */
#define SESSION_PAGE_DEFAULT 100 /* receipts on a page when ?limit is absent */
#define SESSION_PAGE_MAX 500     /* the largest ?limit; one more is 400 invalid_query */
#define SESSION_REFUSED_MAX "1000" /* refused attempts listed (text: it goes into SQL) */
#define SESSION_NUM_LEN 24       /* a decimal int64 and its NUL */
#define SESSION_URL_MAX 1024     /* a next-page link: path, escaped context id, query */
#define HTML_MAX (512 * 1024)
/* An HTML page shows fewer receipts than the JSON page when they would not fit in HTML_MAX
 * (stored documents may be large, and escaping grows them): it stops before the receipt that
 * would not fit and links on from the last one shown, so no receipt is cut away unseen. The
 * reserve keeps room for the next link and the end of the page. */
#define SESSION_HTML_RESERVE (16 * 1024)
#define SESSION_HTML_ROW_BASE 2048 /* markup and fixed cells of one receipt row */

/*
 * Signed view links: a read-only, expiring URL of one session page that opens in a browser
 * without a bearer token. The token is base64url(magic ‖ expiry ‖ context ‖ tenant ‖ Ed25519
 * signature by the broker's current key over what precedes it); no row is stored, so a link
 * cannot be revoked before it expires: hence a short maximum lifetime. The magic separates
 * these bytes from every other thing the broker signs (RFC 8785 JSON, which starts with "{").
 */
#define SESSION_VIEW_TTL_MAX_S (24 * 3600) /* the longest a view link lives (and the default) */
#define SESSION_VIEW_MAGIC "gsv1"
#define SESSION_VIEW_MAGIC_LEN 4
#define SESSION_VIEW_HEAD_LEN (SESSION_VIEW_MAGIC_LEN + 8) /* magic and expiry (int64, BE) */
#define SESSION_VIEW_RAW_MAX                                                                   \
    (SESSION_VIEW_HEAD_LEN + 1 + GOV_CONTEXT_ID_MAX + 1 + BRK_TENANT_MAX + BRK_ED25519_SIG_LEN)
#define SESSION_VIEW_TOKEN_MAX (((SESSION_VIEW_RAW_MAX + 2) / 3) * 4 + 1) /* base64url + NUL */

/* The AC row (hnd_access.h) and, after its columns, the head of the lineage. */
#define SESSION_COL_LINEAGE_HEAD HND_AC_COL__COUNT
static brk_db_stmt_t q_session_ac = {
    "gov_session_ac",
    HND_AC_ROW_SELECT ", last_lineage_cid FROM acs WHERE tenant_id = $1 AND context_id = $2",
    0};
/* One page of receipts with their evidence and the invoice line each produced (none yet
 * while the billing function has not run). */
static brk_db_stmt_t q_session_crs = {
    "gov_session_crs",
    "SELECT coalesce(json_agg(json_build_object('cr_id', c.cr_id, 'sequence', c.sequence, "
    "'outcome', c.outcome, 'effective_outcome', c.effective_outcome, 'flags', c.flags, "
    "'exit_code', c.exit_code, 'started_at', c.started_at, 'completed_at', c.completed_at, "
    "'executor_key_id', c.executor_key_id, 'merkle_root', c.merkle_root, "
    "'cr_cid', c.cr_cid, 'chronicle_cid', c.chronicle_cid, 'lineage_cid', c.lineage_cid, "
    "'prev_lineage_cid', c.prev_lineage_cid, 'received_at', c.received_at, 'cr', c.cr, "
    "'invoice_line', CASE WHEN l.cr_id IS NULL THEN NULL ELSE json_build_object('invoice_id', "
    "l.invoice_id, 'line_no', l.line_no, 'quantity', l.quantity, 'unit_minor', l.unit_minor, "
    "'total_minor', l.total_minor, 'late', l.late) END, "
    /* the agent the CR names and the passport its signature verified with (0013) */
    "'agent', CASE WHEN c.agent_did IS NULL THEN NULL ELSE json_build_object('agent_did', "
    "c.agent_did, 'signature_verified', c.agent_passport_cid IS NOT NULL, 'passport', "
    "CASE WHEN p.passport_cid IS NULL THEN NULL ELSE json_build_object('passport_cid', "
    "p.passport_cid, 'agent_id', p.passport->'passport'->'agentId', 'agent_name', "
    "p.passport->'passport'->'agentName', 'owner', p.passport->'passport'->'ownerAlias', "
    "'issuer', p.issuer_name, 'issuer_public_key', p.issuer_public_key, 'not_before', "
    "p.not_before, 'expires_at', p.expires_at, 'revoked_at', p.revoked_at) END) END"
    ") ORDER BY c.sequence), '[]')::text "
    "FROM (SELECT * FROM crs WHERE tenant_id = $1 AND context_id = $2 AND sequence > $3::bigint "
    "ORDER BY sequence LIMIT $4::int) c "
    "LEFT JOIN invoice_lines l ON l.tenant_id = c.tenant_id AND l.cr_id = c.cr_id "
    "LEFT JOIN agent_passports p ON p.tenant_id = c.tenant_id "
    "AND p.passport_cid = c.agent_passport_cid",
    0};
/* The lineage_cid of the receipt just before the page (the link its first receipt names). */
static brk_db_stmt_t q_session_anchor = {
    "gov_session_anchor",
    "SELECT lineage_cid FROM crs WHERE tenant_id = $1 AND context_id = $2 "
    "AND sequence = $3::bigint",
    0};
/* Refused CR attempts (an AC never approved, or revoked): evidence for the auditor too. */
static brk_db_stmt_t q_session_refused = {
    "gov_session_refused",
    "SELECT coalesce(json_agg(json_build_object('reason', payload->'reason', 'ac_status', "
    "payload->'ac_status', 'executor_key_id', payload->'executor_key_id', 'cr_cid', "
    "payload->'cr_cid', 'outcome', payload->'outcome', 'attempted_at', payload->'attempted_at') "
    "ORDER BY event_id), '[]')::text "
    "FROM (SELECT event_id, payload FROM events WHERE tenant_id = $1 AND context_id = $2 "
    "AND type = 'GSAP_CR_REFUSED' ORDER BY event_id LIMIT " SESSION_REFUSED_MAX ") s",
    0};

/* The delegation chain the AC was issued under (0012), root first, with each delegation's
 * parties and state now (a revoked link shows here though the signed AC still names it). */
static brk_db_stmt_t q_session_deleg = {
    "gov_session_deleg",
    "SELECT coalesce(json_agg(json_build_object('delegation_id', d.delegation_id, 'depth', "
    "d.depth, 'delegator_did', d.delegator_did, 'agent_did', d.agent_did, 'status', d.status, "
    "'revoked_at', d.revoked_at, 'expires_at', d.expires_at, 'delegation_cid', "
    "d.delegation_cid) ORDER BY d.depth), '[]')::text FROM acs a "
    "JOIN delegations c ON c.tenant_id = a.tenant_id AND c.delegation_id = a.delegation_id "
    "JOIN delegations d ON d.tenant_id = a.tenant_id AND d.delegation_id = ANY (c.chain) "
    "WHERE a.tenant_id = $1 AND a.context_id = $2",
    0};

/* The page asked for: the context, where to start and how many receipts. */
typedef struct session_req {
    char ctx[GOV_CONTEXT_ID_MAX + 1];
    long long after;                 /* the last sequence of the previous page; 0 first */
    long long limit;                 /* receipts on this page */
    char after_s[SESSION_NUM_LEN];   /* after, as SQL text */
    char fetch_s[SESSION_NUM_LEN];   /* limit + 1: one more tells whether a next page exists */
    const char *tenant;              /* the caller's tenant, or the view link's */
    const char *key_id;              /* the caller's key, "" for a view link */
    int by_view;                     /* read through a signed view link, not a key */
    char view[SESSION_VIEW_TOKEN_MAX]; /* that link's token, carried on to the next page */
} session_req_t;

/* The signed bytes of a view link into out (SESSION_VIEW_RAW_MAX); their length. */
static size_t view_payload(uint8_t *out, int64_t exp, const char *ctx, const char *tenant)
{
    size_t n = SESSION_VIEW_MAGIC_LEN, cl = strlen(ctx), tl = strlen(tenant);
    memcpy(out, SESSION_VIEW_MAGIC, SESSION_VIEW_MAGIC_LEN);
    for (int i = 7; i >= 0; i--)
        out[n++] = (uint8_t)((uint64_t)exp >> (8 * i));
    out[n++] = (uint8_t)cl;
    memcpy(out + n, ctx, cl);
    n += cl;
    out[n++] = (uint8_t)tl;
    memcpy(out + n, tenant, tl);
    return n + tl;
}

/* view_mint: the token of a link to ctx of tenant until exp, into out. 0 or BRK_ECRYPTO. */
static int view_mint(const brk_keyring_t *kr, int64_t exp, const char *ctx, const char *tenant,
                     char out[SESSION_VIEW_TOKEN_MAX])
{
    uint8_t raw[SESSION_VIEW_RAW_MAX];
    size_t n = view_payload(raw, exp, ctx, tenant);
    if (brk_keyring_sign(kr, raw, n, raw + n) != 0)
        return BRK_ECRYPTO;
    brk_b64url_encode(raw, n + BRK_ED25519_SIG_LEN, out);
    return 0;
}

/*
 * view_check: reads token (len bytes) signed by any key of the ring (a rotated key keeps its
 * links valid until they expire). 0 with ctx and tenant filled; BRK_EAUTH when it is not a
 * link the broker signed; BRK_ETIMEDOUT when it was, but expired at or before now.
 */
static int view_check(const brk_keyring_t *kr, const char *token, size_t len, int64_t now,
                      char ctx[GOV_CONTEXT_ID_MAX + 1], char tenant[BRK_TENANT_MAX + 1])
{
    uint8_t raw[SESSION_VIEW_RAW_MAX];
    int n = brk_b64url_decode(token, len, raw, sizeof raw);
    if (n < SESSION_VIEW_HEAD_LEN + 2 + BRK_ED25519_SIG_LEN ||
        memcmp(raw, SESSION_VIEW_MAGIC, SESSION_VIEW_MAGIC_LEN) != 0)
        return BRK_EAUTH;
    size_t body = (size_t)n - BRK_ED25519_SIG_LEN, o = SESSION_VIEW_HEAD_LEN;
    size_t cl = raw[o++];
    if (cl == 0 || cl > GOV_CONTEXT_ID_MAX || o + cl + 1 > body)
        return BRK_EAUTH;
    size_t tl = raw[o + cl];
    if (tl == 0 || tl > BRK_TENANT_MAX || o + cl + 1 + tl != body ||
        memchr(raw + o, 0, cl) != NULL || memchr(raw + o + cl + 1, 0, tl) != NULL)
        return BRK_EAUTH;
    int ok = 0;
    for (size_t i = 0; i < brk_keyring_count(kr) && !ok; i++)
        ok = brk_ed25519_verify(brk_keyring_public(kr, i), raw, body, raw + body);
    if (!ok)
        return BRK_EAUTH;
    uint64_t exp = 0;
    for (size_t i = SESSION_VIEW_MAGIC_LEN; i < SESSION_VIEW_HEAD_LEN; i++)
        exp = exp << 8 | raw[i];
    memcpy(ctx, raw + o, cl);
    ctx[cl] = '\0';
    memcpy(tenant, raw + o + cl + 1, tl);
    tenant[tl] = '\0';
    return (int64_t)exp <= now ? BRK_ETIMEDOUT : 0;
}

/* A non-negative decimal query parameter (no sign, no spaces) into *out, def when absent or
 * empty. -1 after answering 400 invalid_query when malformed or above hi. */
static int num_param(brk_req_t *r, const char *name, long long def, long long lo, long long hi,
                     long long *out)
{
    char num[SESSION_NUM_LEN], *e;
    size_t len;
    int rc = brk_req_query(r, name, num, sizeof num, &len);
    *out = def;
    if (rc == BRK_ENOTFOUND || (rc == 0 && len == 0))
        return 0;
    if (rc != 0 || num[0] < '0' || num[0] > '9')
        goto bad;
    errno = 0;
    long long v = strtoll(num, &e, 10);
    if (errno != 0 || *e != '\0' || v < lo || v > hi)
        goto bad;
    *out = v;
    return 0;
bad:
    brk_reply_error(r, BRK_EINVAL, "invalid_query", "\"%s\" must be an integer from %lld to %lld",
                    name, lo, hi);
    return -1;
}

/* The link to the page after the one that ended at sequence last (path-relative, the context
 * id percent-encoded beyond the unreserved characters). */
static char *next_url(brk_req_t *r, const session_req_t *q, long long last)
{
    char *u = brk_req_alloc(r, SESSION_URL_MAX);
    size_t n = (size_t)snprintf(u, SESSION_URL_MAX, "/governance/session/");
    for (const unsigned char *c = (const unsigned char *)q->ctx; *c && n + 4 < SESSION_URL_MAX;
         c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '_' || *c == '.' || *c == '~')
            u[n++] = (char)*c;
        else
            n += (size_t)snprintf(u + n, SESSION_URL_MAX - n, "%%%02X", *c);
    }
    snprintf(u + n, SESSION_URL_MAX - n, "/?after=%lld&limit=%lld%s%s", last, q->limit,
             q->by_view ? "&view=" : "", q->by_view ? q->view : "");
    return u;
}

/* 1 when both are NULL or both the same string. */
static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/*
 * Recomputes each lineage step of the page with gov's rule (gov_lineage_cid) from the AC's own
 * ac_cid, and sets "lineage_verified" on each receipt: true when the stored lineage_cid is the
 * recomputed one and the stored prev_lineage_cid is the lineage_cid of the receipt before it
 * (anchor: the receipt just before the page, NULL when there is none). A gap in the sequence
 * breaks the link, as a changed row does; a broken step also breaks the next one, whose
 * prev_lineage_cid no longer matches.
 */
static void verify_lineage(json_t *crs, const char *ac_cid, const char *anchor, long long after)
{
    size_t i;
    json_t *c;
    const char *prev = anchor;
    long long prev_seq = anchor ? after : -1;
    json_array_foreach(crs, i, c)
    {
        char cid[BRK_CID_LEN + 1];
        long long seq = json_integer_value(json_object_get(c, "sequence"));
        const char *want_prev = seq == 1 ? NULL : prev_seq == seq - 1 ? prev : "";
        const char *stored = json_string_value(json_object_get(c, "lineage_cid"));
        int ok = want_prev == NULL || want_prev[0] != '\0';
        ok = ok && ac_cid != NULL && stored != NULL &&
             same(json_string_value(json_object_get(c, "prev_lineage_cid")), want_prev) &&
             gov_lineage_cid(ac_cid, json_string_value(json_object_get(c, "chronicle_cid")),
                             json_string_value(json_object_get(c, "cr_cid")), want_prev, seq,
                             cid) == 0 &&
             strcmp(cid, stored) == 0;
        json_object_set_new(c, "lineage_verified", json_boolean(ok));
        prev = stored;
        prev_seq = seq;
    }
}

static void row(hnd_html_t *h, const char *k, const char *v)
{
    hnd_html_put(h, "<tr><th>");
    hnd_html_esc(h, k);
    hnd_html_put(h, "</th><td><code>");
    hnd_html_esc(h, v ? v : "null");
    hnd_html_put(h, "</code></td></tr>\n");
}

/* One table row per object of arr, one cell per member named in cols. */
static void html_rows(hnd_html_t *h, const json_t *arr, const char *const *cols)
{
    size_t i;
    json_t *o;
    hnd_html_put(h, "<table><tr>");
    for (int k = 0; cols[k]; k++) {
        hnd_html_put(h, "<th>");
        hnd_html_esc(h, cols[k]);
        hnd_html_put(h, "</th>");
    }
    hnd_html_put(h, "</tr>\n");
    json_array_foreach(arr, i, o)
    {
        hnd_html_put(h, "<tr>");
        for (int k = 0; cols[k]; k++) {
            json_t *v = json_object_get(o, cols[k]);
            char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY);
            hnd_html_put(h, "<td><code>");
            hnd_html_esc(h, json_is_string(v) ? json_string_value(v) : s ? s : "null");
            hnd_html_put(h, "</code></td>");
            free(s);
        }
        hnd_html_put(h, "</tr>\n");
    }
    hnd_html_put(h, "</table>\n");
}

/* The elevation record: who decided, how many approvals the accord required. */
static void html_elevation(hnd_html_t *h, const json_t *el)
{
    static const char *const cols[] = {"key_id", "principal", "decision", "decided_at", "reason",
                                       NULL};
    char n[24];
    if (!json_is_object(el))
        return;
    hnd_html_put(h, "<h2>Elevation</h2><table>\n");
    row(h, "status", json_string_value(json_object_get(el, "status")));
    row(h, "required", json_string_value(json_object_get(el, "required")));
    json_int_t need = json_integer_value(json_object_get(el, "approvals_required"));
    snprintf(n, sizeof n, "%lld", (long long)(need > 0 ? need : 1));
    row(h, "approvals_required", n);
    hnd_html_put(h, "</table>\n<h3>Approvals</h3>");
    html_rows(h, json_object_get(el, "approvals"), cols);
}

/* The delegation chain, root first: who delegated to whom, and whether it still holds. */
static void html_chain(hnd_html_t *h, const json_t *chain)
{
    static const char *const cols[] = {"depth", "delegation_id", "delegator_did", "agent_did",
                                       "status", "revoked_at", "expires_at", "delegation_cid",
                                       NULL};
    if (json_array_size(chain) == 0)
        return;
    hnd_html_put(h, "<h2>Delegation chain</h2>\n");
    html_rows(h, chain, cols);
}

static void html_refused(hnd_html_t *h, const json_t *refused)
{
    static const char *const cols[] = {"attempted_at", "reason", "ac_status", "executor_key_id",
                                       "cr_cid", NULL};
    if (json_array_size(refused) == 0)
        return;
    hnd_html_put(h, "<h2>Refused receipts</h2>");
    html_rows(h, refused, cols);
}

/* A JSON value as text: strings as they are, anything else serialized; into h, escaped. */
static void esc_value(hnd_html_t *h, const json_t *v)
{
    if (json_is_string(v)) {
        hnd_html_esc(h, json_string_value(v));
        return;
    }
    char *s = json_dumps(v ? v : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
    hnd_html_esc(h, s ? s : "null");
    free(s);
}

/* A table cell of member k of o, in <code> when code. */
static void cell(hnd_html_t *h, const json_t *o, const char *k, int code)
{
    hnd_html_put(h, code ? "<td><code>" : "<td>");
    esc_value(h, json_object_get(o, k));
    hnd_html_put(h, code ? "</code></td>" : "</td>");
}

/* The agent that signed a receipt: its DID, and the passport that vouched for it (the agent's
 * name and the tenant's name for the issuer), or why none did. */
static void agent_cell(hnd_html_t *h, const json_t *agent)
{
    const json_t *p = json_object_get(agent, "passport");
    hnd_html_put(h, "<td>");
    if (!json_is_object(agent)) {
        hnd_html_put(h, "none</td>");
        return;
    }
    hnd_html_put(h, "<code>");
    hnd_html_esc(h, json_string_value(json_object_get(agent, "agent_did")));
    hnd_html_put(h, "</code><br>");
    if (json_is_object(p)) {
        hnd_html_put(h, "&#10003; signed; passport of ");
        esc_value(h, json_object_get(p, "agent_name"));
        hnd_html_put(h, " issued by ");
        esc_value(h, json_object_get(p, "issuer"));
        hnd_html_put(h, ", <code>");
        esc_value(h, json_object_get(p, "passport_cid"));
        hnd_html_put(h, "</code>");
    } else {
        hnd_html_put(h, "&#10007; signature not verified by a passport of this tenant");
    }
    hnd_html_put(h, "</td>");
}

/* The invoice line a receipt produced, linked to its invoice (finance and auditors open it). */
static void invoice_cell(hnd_html_t *h, const json_t *line)
{
    char n[SESSION_NUM_LEN];
    if (!json_is_object(line)) {
        hnd_html_put(h, "<td>not billed yet</td>");
        return;
    }
    const char *inv = json_string_value(json_object_get(line, "invoice_id"));
    hnd_html_put(h, "<td><a href=\"/billing/invoices/");
    hnd_html_esc(h, inv);
    hnd_html_put(h, "/\">");
    hnd_html_esc(h, inv);
    snprintf(n, sizeof n, "%lld", (long long)json_integer_value(json_object_get(line, "line_no")));
    hnd_html_put(h, "</a> line ");
    hnd_html_put(h, n);
    snprintf(n, sizeof n, "%lld",
             (long long)json_integer_value(json_object_get(line, "total_minor")));
    hnd_html_put(h, ": total ");
    hnd_html_put(h, n);
    hnd_html_put(h, " (minor units)</td>");
}

/* Each receipt in sequence: flags, evidence, its lineage step as recomputed, its invoice line
 * and the stored document (folded, no script needed). */
/* Bytes s takes once escaped by hnd_html_esc. */
static size_t esc_len(const char *s)
{
    size_t n = 0;
    for (; s && *s; s++)
        n += *s == '<' || *s == '>' ? 4 : *s == '&' ? 5 : *s == '"' ? 6 : 1;
    return n;
}

/* How many receipts of crs fit in what is left of h (at least one), by a generous estimate. */
static size_t html_fit(const hnd_html_t *h, const json_t *crs)
{
    size_t i, used = 0, room = h->cap > h->len + SESSION_HTML_RESERVE
                                    ? h->cap - h->len - SESSION_HTML_RESERVE
                                    : 0;
    json_t *c;
    json_array_foreach(crs, i, c)
    {
        char *doc = json_dumps(json_object_get(c, "cr"), JSON_INDENT(1) | JSON_SORT_KEYS);
        char *all = json_dumps(c, JSON_COMPACT);
        used += SESSION_HTML_ROW_BASE + esc_len(doc) + esc_len(all);
        free(doc), free(all);
        if (used > room && i > 0)
            return i;
    }
    return json_array_size(crs);
}

/* Receipts shown in HTML: the first shown of crs; *last gets the sequence of the last. */
static size_t html_receipts(hnd_html_t *h, const json_t *crs, long long *last)
{
    static const char *const text[] = {"cr_id", "outcome", "effective_outcome", "flags",
                                       "exit_code", "started_at", "completed_at", "received_at",
                                       NULL};
    static const char *const hashes[] = {"cr_cid", "chronicle_cid", "merkle_root",
                                         "prev_lineage_cid", "lineage_cid", NULL};
    size_t i, ok = 0, shown = html_fit(h, crs);
    json_t *c;
    for (i = 0; i < shown; i++)
        ok += json_is_true(json_object_get(json_array_get(crs, i), "lineage_verified"));
    char n[2 * SESSION_NUM_LEN + 64];
    snprintf(n, sizeof n, "<p>Lineage steps on this page verified: %zu of %zu.</p>\n", ok,
             shown);
    hnd_html_put(h, "<h2>Completion Receipts</h2>\n");
    hnd_html_put(h, n);
    hnd_html_put(h, "<table><tr><th>#</th>");
    for (int k = 0; text[k]; k++) {
        hnd_html_put(h, "<th>");
        hnd_html_put(h, text[k]);
        hnd_html_put(h, "</th>");
    }
    for (int k = 0; hashes[k]; k++) {
        hnd_html_put(h, "<th>");
        hnd_html_put(h, hashes[k]);
        hnd_html_put(h, "</th>");
    }
    hnd_html_put(h, "<th>agent</th><th>lineage</th><th>invoice line</th><th>document</th></tr>\n");
    for (i = 0; i < shown; i++) {
        c = json_array_get(crs, i);
        *last = (long long)json_integer_value(json_object_get(c, "sequence"));
        snprintf(n, sizeof n, "<tr id=\"seq-%lld\"><td>%lld</td>", *last, *last);
        hnd_html_put(h, n);
        for (int k = 0; text[k]; k++)
            cell(h, c, text[k], 0);
        for (int k = 0; hashes[k]; k++)
            cell(h, c, hashes[k], 1);
        agent_cell(h, json_object_get(c, "agent"));
        hnd_html_put(h, json_is_true(json_object_get(c, "lineage_verified"))
                            ? "<td class=\"lineage-verified\">&#10003; verified</td>"
                            : "<td class=\"lineage-broken\">&#10007; broken</td>");
        invoice_cell(h, json_object_get(c, "invoice_line"));
        char *doc = json_dumps(json_object_get(c, "cr"), JSON_INDENT(1) | JSON_SORT_KEYS);
        hnd_html_put(h, "<td><details><summary>CR</summary><pre>");
        hnd_html_esc(h, doc ? doc : "null");
        hnd_html_put(h, "</pre></details></td></tr>\n");
        free(doc);
    }
    hnd_html_put(h, "</table>\n");
    return shown;
}

static void reply_html(brk_req_t *r, json_t *page)
{
    hnd_html_t h;
    hnd_html_init(&h, r, HTML_MAX);
    json_t *ac = json_object_get(page, "ac"), *op = json_object_get(ac, "operation");
    hnd_html_put(&h, "<!doctype html><html><head><meta charset=\"utf-8\"><title>GSAP session ");
    hnd_html_esc(&h, json_string_value(json_object_get(ac, "context_id")));
    hnd_html_put(&h, "</title><style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse;"
            "margin-bottom:1.5em}th,td{border:1px solid #999;padding:4px 8px;text-align:left}"
            "code{word-break:break-all}</style></head><body>\n<h1>Session ");
    hnd_html_esc(&h, json_string_value(json_object_get(ac, "context_id")));
    hnd_html_put(&h, "</h1>\n<h2>Authorization Context</h2><table>\n");
    const char *keys[] = {"status", "issued_at", "expires_at", "session_mode", "capability_set",
                          "shell_class", "ac_cid", "key_id", "signature", NULL};
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(ac, keys[i]);
        char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY);
        row(&h, keys[i], json_is_string(v) ? json_string_value(v) : s);
        free(s);
    }
    row(&h, "principal", json_string_value(json_object_get(json_object_get(ac, "principal"), "did")));
    row(&h, "accord", json_string_value(json_object_get(json_object_get(ac, "accord"), "template")));
    row(&h, "command_hash", json_string_value(json_object_get(op, "command_hash")));
    row(&h, "corpus_entry_cid", json_string_value(json_object_get(op, "corpus_entry_cid")));
    row(&h, "parameters_cid", json_string_value(json_object_get(op, "parameters_cid")));
    hnd_html_put(&h, "</table>\n");
    char *acdoc = json_dumps(ac, JSON_INDENT(1) | JSON_SORT_KEYS);
    hnd_html_put(&h, "<details><summary>AC document</summary><pre>");
    hnd_html_esc(&h, acdoc ? acdoc : "null");
    hnd_html_put(&h, "</pre></details>\n");
    free(acdoc);
    html_elevation(&h, json_object_get(ac, "elevation"));
    html_chain(&h, json_object_get(page, "delegation_chain"));
    json_t *crs = json_object_get(page, "receipts"), *next = json_object_get(page, "next");
    long long last = 0;
    const char *next_s = json_string_value(next);
    if (html_receipts(&h, crs, &last) < json_array_size(crs))
        next_s = next_url(r, r->ctx, last); /* the rest of this page comes next */
    if (next_s != NULL) {
        hnd_html_put(&h, "<p><a rel=\"next\" href=\"");
        hnd_html_esc(&h, next_s);
        hnd_html_put(&h, "\">Next page</a></p>\n");
    } else {
        hnd_html_put(&h, "<p>End of receipts.</p>\n");
    }
    html_refused(&h, json_object_get(page, "refused_receipts"));
    hnd_html_put(&h, "<p>Lineage head: <code>");
    hnd_html_esc(&h, json_string_value(json_object_get(page, "lineage_head")));
    hnd_html_put(&h, "</code></p></body></html>\n");
    brk_reply_raw(r, 200, "text/html; charset=utf-8", h.p, h.len);
}

static void on_session(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *a = res->res[0];
    /* A session the caller may not read is answered exactly as one that does not exist. */
    const session_req_t *q = r->ctx;
    if (PQntuples(a) != 1 || (!q->by_view && !hnd_ctx_row_readable(r, a, HND_VIEW_SESSION))) {
        hnd_reply_result(r, "not_found");
        return;
    }
    json_t *ac = hnd_ac_row_view(a);
    json_t *crs = json_loads(PQgetvalue(res->res[1], 0, 0), 0, NULL);
    json_t *next = json_null();
    /* one receipt more than the page was fetched: it only says that a next page exists */
    if (crs != NULL && (long long)json_array_size(crs) > q->limit) {
        json_array_remove(crs, json_array_size(crs) - 1);
        json_int_t last = json_integer_value(
            json_object_get(json_array_get(crs, json_array_size(crs) - 1), "sequence"));
        next = json_string(next_url(r, q, last));
    }
    json_t *refused = json_loads(PQgetvalue(res->res[2], 0, 0), 0, NULL);
    PGresult *anchor = res->res[3];
    if (crs != NULL)
        verify_lineage(crs, json_string_value(json_object_get(ac, "ac_cid")),
                       PQntuples(anchor) == 1 ? PQgetvalue(anchor, 0, 0) : NULL, q->after);
    json_t *chain = json_loads(PQgetvalue(res->res[4], 0, 0), 0, NULL);
    json_t *page = json_pack("{s:o,s:o,s:o,s:I,s:I,s:o,s:o,s:o}", "ac", ac ? ac : json_null(),
                             "delegation_chain", chain ? chain : json_array(),
                             "receipts", crs ? crs : json_array(), "after", (json_int_t)q->after,
                             "limit", (json_int_t)q->limit, "next", next, "refused_receipts",
                             refused ? refused : json_array(), "lineage_head",
                             PQgetisnull(a, 0, SESSION_COL_LINEAGE_HEAD)
                                 ? json_null()
                                 : json_string(PQgetvalue(a, 0, SESSION_COL_LINEAGE_HEAD)));
    if (brk_req_accepts_html(r) || brk_req_header(r, "accept").base == NULL)
        reply_html(r, page);
    else
        brk_reply_json(r, 200, page);
    json_decref(page);
}

/* A request without a key: it must carry a valid view link for exactly this context, whose
 * tenant then scopes the page. -1 after answering 401. */
static int session_by_view(brk_req_t *r, session_req_t *q)
{
    char ctx[GOV_CONTEXT_ID_MAX + 1];
    char *tenant = brk_req_alloc(r, BRK_TENANT_MAX + 1);
    size_t len;
    int rc = brk_req_query(r, "view", q->view, sizeof q->view, &len);
    if (rc == BRK_ENOTFOUND) {
        brk_reply_error(r, BRK_EAUTH, "missing_token",
                        "an Authorization: Bearer token or a view link is required");
        return -1;
    }
    if (rc == 0)
        rc = view_check(brk_server_keys(r->server), q->view, len, (int64_t)time(NULL), ctx,
                        tenant);
    /* a link names its context: another context's link opens nothing here */
    if (rc == 0 && strcmp(ctx, q->ctx) != 0)
        rc = BRK_EAUTH;
    if (rc != 0) {
        brk_reply_error(r, BRK_EAUTH, rc == BRK_ETIMEDOUT ? "view_link_expired" : "invalid_view_link",
                        rc == BRK_ETIMEDOUT ? "this view link has expired; ask for a new one"
                                            : "this view link is not valid for this page");
        return -1;
    }
    q->by_view = 1;
    q->tenant = tenant;
    q->key_id = "";
    /* the token is the credential: keep it out of Referer headers and caches */
    brk_reply_add_header(r, "referrer-policy", "no-referrer");
    brk_reply_add_header(r, "cache-control", "no-store");
    return 0;
}

static void session(brk_req_t *r)
{
    session_req_t *q = brk_req_alloc(r, sizeof *q);
    r->ctx = q;
    q->tenant = r->principal.tenant;
    q->key_id = r->principal.key_id;
    if (hnd_context_param(r, q->ctx) != 0 ||
        (!r->principal.authenticated && session_by_view(r, q) != 0) ||
        num_param(r, "after", 0, 0, INT64_MAX, &q->after) != 0 ||
        num_param(r, "limit", SESSION_PAGE_DEFAULT, 1, SESSION_PAGE_MAX, &q->limit) != 0)
        return;
    snprintf(q->after_s, sizeof q->after_s, "%lld", q->after);
    snprintf(q->fetch_s, sizeof q->fetch_s, "%lld", q->limit + 1);
    const char *ctx = q->ctx, *t = q->tenant;
    brk_db_op_t ops[5] = {{&q_session_ac, 3, {t, ctx, q->key_id}},
                          {&q_session_crs, 4, {t, ctx, q->after_s, q->fetch_s}},
                          {&q_session_refused, 2, {t, ctx}},
                          {&q_session_anchor, 3, {t, ctx, q->after_s}},
                          {&q_session_deleg, 2, {t, ctx}}};
    brk_req_db(r, ops, 5, on_session);
}

/* ?ttl_s: seconds a new view link lives, 1..SESSION_VIEW_TTL_MAX_S (the default). */
static void on_link(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    const session_req_t *q = r->ctx;
    /* the same rule as reading the page: who may read it may hand it on, for a while */
    if (PQntuples(res->res[0]) != 1 || !hnd_ctx_row_readable(r, res->res[0], HND_VIEW_SESSION)) {
        hnd_reply_result(r, "not_found");
        return;
    }
    char token[SESSION_VIEW_TOKEN_MAX], base[GOV_URL_MAX], exp_s[BRK_TIME_LEN + 1];
    int64_t exp = (int64_t)time(NULL) + q->limit;
    if (view_mint(brk_server_keys(r->server), exp, q->ctx, q->tenant, token) != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot sign the view link");
        return;
    }
    hnd_session_url(r, q->ctx, base);
    char *url = brk_req_alloc(r, GOV_URL_MAX + sizeof token + 8);
    snprintf(url, GOV_URL_MAX + sizeof token + 8, "%s?view=%s", base, token);
    brk_time_fmt((time_t)exp, exp_s);
    json_t *b = json_pack("{s:s,s:s,s:s}", "url", url, "expires_at", exp_s, "context_id", q->ctx);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void view_link(brk_req_t *r)
{
    session_req_t *q = brk_req_alloc(r, sizeof *q);
    r->ctx = q;
    q->tenant = r->principal.tenant;
    q->key_id = r->principal.key_id;
    /* q->limit holds the lifetime here */
    if (hnd_context_param(r, q->ctx) != 0 ||
        num_param(r, "ttl_s", SESSION_VIEW_TTL_MAX_S, 1, SESSION_VIEW_TTL_MAX_S, &q->limit) != 0)
        return;
    brk_db_op_t op = {&q_session_ac, 3, {q->tenant, q->ctx, q->key_id}};
    brk_req_db(r, &op, 1, on_link);
}

static const brk_route_t routes[] = {
    {"GET", "/governance/session/{context_id}",
     BRK_ROLE_AUDITOR | BRK_ROLE_ISSUER | BRK_ROLE_EXECUTOR | BRK_ROLE_APPROVER,
     BRK_ROUTE_VIEW_OK | BRK_ROUTE_REPLICA_OK,
     session},
    {"POST", "/governance/session/{context_id}/link",
     BRK_ROLE_AUDITOR | BRK_ROLE_ISSUER | BRK_ROLE_EXECUTOR | BRK_ROLE_APPROVER, 0, view_link},
};

int hnd_session_register(void)
{
    int rc = brk_db_register(&q_session_ac);
    if (rc == 0)
        rc = brk_db_register(&q_session_crs);
    if (rc == 0)
        rc = brk_db_register(&q_session_refused);
    if (rc == 0)
        rc = brk_db_register(&q_session_anchor);
    if (rc == 0)
        rc = brk_db_register(&q_session_deleg);
    return rc ? rc : brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
