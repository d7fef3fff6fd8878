/*
 * gov_invbundle: reading a bundle from a stream in bounded memory, and the checks of an
 * invoice bundle (format and what is checked: docs/protocol.md, "GET
 * /billing/invoices/{invoice_id}/bundle"; gov_bundle.h).
 *
 * The reader walks the top-level object itself and lets jansson parse one member's value at
 * a time (JSON_DISABLE_EOF_CHECK: jansson stops at the value's closing bracket or quote and,
 * fed one byte per call, has read nothing past it). Every member but an invoice bundle's
 * "lines" is kept (all together at most head_max bytes); "lines" is read one element at a
 * time, each checked and dropped, so a million-line invoice costs one line of memory plus
 * the rate cards and two small caches.
 */
#include "gov_bundle.h"
#include "gov_bundle_int.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bill_invoice.h"
#include "bill_rate.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_note.h"
#include "brk_time.h"
#include "gov.h"
#include "banned.h"

#define LITERAL_MAX 40       /* a top-level number or literal */
#define BUNDLE_PREFIX_MAX 32 /* "lines[<index>]" */
#define AC_CACHE 64          /* ACs whose signature held, by CID and signature */
#define AC_KEY_MAX (BRK_CID_LEN + 200)
#define B64_HASH_TEXT 45 /* padded base64 of a hash and its NUL */

/* ---- the byte reader ---- */

typedef struct rd {
    FILE *f;
    size_t n, max; /* bytes counted against the current cap */
    int over, eof;
} rd_t;

static int rd_get(rd_t *r)
{
    int c = getc(r->f);
    if (c == EOF) {
        r->eof = 1;
        return EOF;
    }
    if (++r->n > r->max) {
        r->over = 1;
        return EOF;
    }
    return c;
}

static void rd_unget(rd_t *r, int c)
{
    ungetc(c, r->f);
    r->n--;
}

static int rd_skip_ws(rd_t *r)
{
    int c;
    do
        c = rd_get(r);
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    return c;
}

/* jansson's callback: one byte per call, so it never reads past the value it parses. */
static size_t rd_cb(void *buf, size_t len, void *arg)
{
    rd_t *r = arg;
    int c = len ? rd_get(r) : EOF;
    if (c == EOF)
        return r->over ? (size_t)-1 : 0;
    *(char *)buf = (char)c;
    return 1;
}

/* The next JSON value (after whitespace): a new reference, or NULL. Literals and numbers are
 * read here (jansson would read one byte past them). */
static json_t *rd_value(rd_t *r)
{
    json_error_t e;
    int c = rd_skip_ws(r);
    if (c == EOF)
        return NULL;
    if (c == '{' || c == '[' || c == '"') {
        rd_unget(r, c);
        return json_load_callback(
            rd_cb, r, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    }
    char lit[LITERAL_MAX + 1];
    size_t n = 0;
    while (c != EOF && (isalnum(c) || c == '-' || c == '+' || c == '.') && n < LITERAL_MAX) {
        lit[n++] = (char)c;
        c = rd_get(r);
    }
    if (c != EOF)
        rd_unget(r, c);
    lit[n] = '\0';
    return n ? json_loads(lit, JSON_DECODE_ANY, &e) : NULL;
}

/* ---- the invoice bundle ---- */

typedef struct card {
    int64_t version;
    bill_ratecard_t rc;
} card_t;

typedef struct ctx_slot {
    char ctx[GOV_CONTEXT_ID_MAX + 1];
    long long seq;
    char lineage[BRK_CID_LEN + 1];
} ctx_slot_t;

typedef struct inv {
    vctx_t *v;
    const json_t *invoice;
    const char *tenant, *account;
    card_t *cards;
    size_t ncards;
    int have_cp;
    unsigned long long cp_size;
    brk_mhash_t cp_root;
    /* running over the lines */
    int64_t count, total;
    int total_overflow;
    bill_merkle_t tree;
    char ac_ok[AC_CACHE][AC_KEY_MAX];
    size_t ac_next;
    ctx_slot_t *ctxs; /* GOV_INVBUNDLE_CTX_CACHE slots */
} inv_t;

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    if (s == NULL || *s == '\0' || (!isdigit((unsigned char)s[0]) && s[0] != '-'))
        return 0;
    long long x = strtoll(s, &end, 10);
    if (*end != '\0')
        return 0;
    char again[32];
    snprintf(again, sizeof again, "%lld", x);
    if (strcmp(again, s) != 0) /* one spelling only: no "+1", "01", out of range */
        return 0;
    *out = x;
    return 1;
}

static void check_cards(inv_t *iv, const json_t *cards)
{
    vctx_t *v = iv->v;
    size_t i;
    const json_t *c;
    char item[BUNDLE_ITEM_MAX];
    if (!gov_bundle_check(
            v, json_is_array(cards) && json_array_size(cards) <= GOV_INVBUNDLE_CARDS_MAX,
            "rate_cards", "not an array of at most %d versions", GOV_INVBUNDLE_CARDS_MAX))
        return;
    iv->cards = calloc(json_array_size(cards) + 1, sizeof *iv->cards);
    if (iv->cards == NULL) {
        gov_bundle_check(v, 0, "rate_cards", "out of memory");
        return;
    }
    json_array_foreach(cards, i, c)
    {
        const json_t *ver = json_object_get(c, "version"), *ex = json_object_get(c, "exponent");
        const json_t *card = json_object_get(c, "card");
        const char *code = NULL;
        char msg[BILL_MSG_MAX] = "", cid[BRK_CID_LEN + 1] = "";
        snprintf(item, sizeof item, "rate_cards[%zu]", i);
        if (!gov_bundle_check(v,
                              gov_bundle_streq(gov_bundle_str(c, "account"), iv->account) &&
                                  gov_bundle_streq(gov_bundle_str(c, "currency"),
                                                   gov_bundle_str(iv->invoice, "currency")) &&
                                  json_is_integer(ex) &&
                                  json_equal(ex, json_object_get(iv->invoice, "exponent")),
                              item, "not a card of the invoice's account and currency"))
            continue;
        if (!gov_bundle_check(v,
                              json_is_integer(ver) && json_integer_value(ver) > 0 &&
                                  (iv->ncards == 0 ||
                                   json_integer_value(ver) > iv->cards[iv->ncards - 1].version),
                              item, "versions are not positive and ascending"))
            continue;
        snprintf(item, sizeof item, "rate_cards[%zu].card_cid", i);
        if (!gov_bundle_check(v,
                              json_is_object(card) && brk_jcs_cid(card, cid) == 0 &&
                                  gov_bundle_streq(gov_bundle_str(c, "card_cid"), cid),
                              item, "not the CID of the card"))
            continue;
        snprintf(item, sizeof item, "rate_cards[%zu].card", i);
        if (!gov_bundle_check(
                v,
                bill_ratecard_parse(card, &iv->cards[iv->ncards].rc, &code, msg, sizeof msg) == 0,
                item, "not a valid rate card: %s", msg))
            continue;
        gov_bundle_check(v, json_is_boolean(json_object_get(c, "backfilled")), item,
                         "backfilled is not a boolean");
        iv->cards[iv->ncards++].version = json_integer_value(ver);
    }
}

static const bill_ratecard_t *card_of(const inv_t *iv, json_int_t version)
{
    for (size_t i = 0; i < iv->ncards; i++)
        if (iv->cards[i].version == version)
            return &iv->cards[i].rc;
    return NULL;
}

/* The invoice and its checkpoint: 1 when lines can be checked at all. */
static int check_invoice(inv_t *iv, const json_t *broker)
{
    vctx_t *v = iv->v;
    const json_t *inv = iv->invoice;
    gov_bundle_check_signed(v, inv, "invoice_cid", "invoice");
    gov_bundle_check(
        v, gov_bundle_streq(gov_bundle_str(inv, "broker_id"), gov_bundle_str(broker, "broker_id")),
        "invoice.broker_id", "not the bundle's broker");
    iv->tenant = gov_bundle_str(inv, "tenant");
    iv->account = gov_bundle_str(inv, "account");
    const json_t *log = json_object_get(inv, "log"), *lc = json_object_get(inv, "line_count");
    if (!gov_bundle_check(v, iv->tenant != NULL && iv->account != NULL && json_is_integer(lc),
                          "invoice.members", "tenant, account or line_count missing"))
        return 0;
    if (log == NULL && json_integer_value(lc) == 0)
        return 1; /* an empty invoice: nothing to prove */
    char name[BRK_NOTE_NAME_MAX + 1] = "";
    const char *bid = gov_bundle_str(broker, "broker_id");
    if (bid == NULL || brk_note_key_name(bid, name) != 0)
        name[0] = '\0';
    json_t *cp =
        json_pack("{s:O?,s:O?,s:O?,s:s,s:O?}", "origin", json_object_get(log, "origin"), "size",
                  json_object_get(log, "tree_size"), "root_hash", json_object_get(log, "root_hash"),
                  "key_name", name, "note", json_object_get(log, "checkpoint"));
    iv->have_cp =
        gov_bundle_check(v, json_is_object(log), "invoice.log",
                         "the invoice carries no checkpoint (finalized before the log?)") &&
        gov_bundle_check_checkpoint(v, cp, bid, iv->tenant, &iv->cp_size, iv->cp_root);
    json_decref(cp);
    return 1;
}

/* The AC of a line: its signature once per distinct (CID, signature) of the cache. */
static void check_ac(inv_t *iv, const json_t *ac, const char *prefix)
{
    char item[BUNDLE_ITEM_MAX], key[AC_KEY_MAX] = "", cid[BRK_CID_LEN + 1] = "";
    snprintf(item, sizeof item, "%s.ac", prefix);
    json_t *body = json_is_object(ac) ? json_deep_copy(ac) : NULL;
    if (body != NULL) {
        json_object_del(body, "ac_cid");
        json_object_del(body, "signature");
        if (brk_jcs_cid(body, cid) == 0 && gov_bundle_streq(gov_bundle_str(ac, "ac_cid"), cid))
            snprintf(key, sizeof key, "%s %s %s", cid,
                     gov_bundle_str(ac, "signature") ? gov_bundle_str(ac, "signature") : "-",
                     gov_bundle_str(ac, "key_id") ? gov_bundle_str(ac, "key_id") : "-");
        json_decref(body);
    }
    for (size_t i = 0; key[0] != '\0' && i < AC_CACHE; i++)
        if (strcmp(iv->ac_ok[i], key) == 0)
            return; /* this very AC held already */
    int before = iv->v->failed;
    gov_bundle_check_signed(iv->v, ac, "ac_cid", item);
    if (iv->v->failed == before && key[0] != '\0') {
        snprintf(iv->ac_ok[iv->ac_next], AC_KEY_MAX, "%s", key);
        iv->ac_next = (iv->ac_next + 1) % AC_CACHE;
    }
}

static size_t ctx_hash(const char *s)
{
    size_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h % GOV_INVBUNDLE_CTX_CACHE;
}

/* The billed span (gsap_time_check): start clamped into [issued, received], end to
 * <= received and >= the start. 1 when every time parses. */
static int billed_span(const json_t *cr, const json_t *ac, const char *received, bill_cr_t *b)
{
    int64_t st, co, is, rc;
    if (brk_time_parse_us(gov_bundle_str(cr, "started_at") ? gov_bundle_str(cr, "started_at") : "",
                          &st) != 0 ||
        brk_time_parse_us(gov_bundle_str(cr, "completed_at") ? gov_bundle_str(cr, "completed_at")
                                                             : "",
                          &co) != 0 ||
        brk_time_parse_us(gov_bundle_str(ac, "issued_at") ? gov_bundle_str(ac, "issued_at") : "",
                          &is) != 0 ||
        brk_time_parse_us(received ? received : "", &rc) != 0)
        return 0;
    int64_t s = st < is ? is : st;
    if (s > rc)
        s = rc;
    int64_t e = co < rc ? co : rc;
    if (e < s)
        e = s;
    b->started_us = s;
    b->completed_us = e;
    return 1;
}

/* The AC's capability set: "0x" and 8 hex digits, or an integer. */
static int caps_of(const json_t *ac, uint32_t *out)
{
    const json_t *c = json_object_get(ac, "capability_set");
    if (json_is_integer(c) && json_integer_value(c) >= 0 && json_integer_value(c) <= UINT32_MAX) {
        *out = (uint32_t)json_integer_value(c);
        return 1;
    }
    const char *s = json_string_value(c);
    char *end;
    if (s == NULL || strncmp(s, "0x", 2) != 0 || strlen(s) != 10)
        return 0;
    unsigned long x = strtoul(s + 2, &end, 16);
    if (*end != '\0')
        return 0;
    *out = (uint32_t)x;
    return 1;
}

/* The flags the broker may set on a CR (migrations/functions/20_gsap_complete.sql), and
 * whether each makes the effective outcome "violated". */
static const struct {
    const char *name;
    int violates;
} known_flags[] = {
    {"command_mismatch", 1},
    {"corpus_mismatch", 1},
    {"parameters_mismatch", 1},
    {"environment_mismatch", 1},
    {"behavior_violated", 1},
    {"time_implausible", 1},
    {"self_authorized_not_allowed", 1},
    {"self_authorized", 0},
    {"started_after_expiry", 0},
    {"overage", 0},
};

/* 1 when every flag is a known one, none twice; *violates: one of them makes the outcome
 * "violated". */
static int flags_ok(const json_t *flags, int *violates)
{
    size_t i, j;
    const json_t *f, *g;
    *violates = 0;
    if (!json_is_array(flags))
        return 0;
    json_array_foreach(flags, i, f)
    {
        size_t k, n = sizeof known_flags / sizeof known_flags[0];
        for (k = 0; k < n && !gov_bundle_streq(json_string_value(f), known_flags[k].name); k++)
            ;
        if (k == n)
            return 0;
        *violates |= known_flags[k].violates;
        json_array_foreach(flags, j, g) if (j < i && json_equal(f, g)) return 0;
    }
    return 1;
}

static void check_amount(inv_t *iv, const json_t *l, const json_t *ac, const char *prefix)
{
    vctx_t *v = iv->v;
    char item[BUNDLE_ITEM_MAX];
    const json_t *cr = json_object_get(json_object_get(l, "receipt"), "cr");
    const json_t *ver = json_object_get(l, "rate_card_version");
    const char *outcome = gov_bundle_str(l, "outcome");
    snprintf(item, sizeof item, "%s.rate_card_version", prefix);
    if (!gov_bundle_check(v, !json_is_null(ver), item,
                          "priced before rate-card history (migration 0018): its card was "
                          "never stored, the amount cannot be checked"))
        return;
    const bill_ratecard_t *rc = json_is_integer(ver) ? card_of(iv, json_integer_value(ver)) : NULL;
    if (!gov_bundle_check(v, rc != NULL, item, "names no rate card of the bundle"))
        return;
    const json_t *flags = json_object_get(l, "flags");
    int violates = 0;
    snprintf(item, sizeof item, "%s.flags", prefix);
    if (!gov_bundle_check(v, flags_ok(flags, &violates), item,
                          "not a list of distinct flags the broker sets"))
        return;
    /* the effective outcome: the CR's own, or violated when a flag says its evidence
     * disagrees with its AC (gsap_complete's rule) */
    snprintf(item, sizeof item, "%s.outcome", prefix);
    if (!gov_bundle_check(
            v, gov_bundle_streq(outcome, violates ? "violated" : gov_bundle_str(cr, "outcome")),
            item, "not the effective outcome of the CR and its flags"))
        return;
    bill_cr_t b = {0};
    b.outcome = bill_outcome_parse(outcome);
    b.flagged = json_array_size(flags) > 0;
    b.shell_class = gov_bundle_str(ac, "shell_class");
    snprintf(item, sizeof item, "%s.received_at", prefix);
    if (!gov_bundle_check(v,
                          b.outcome >= 0 && json_is_array(flags) &&
                              caps_of(ac, &b.capability_set) &&
                              billed_span(cr, ac, gov_bundle_str(l, "received_at"), &b),
                          item, "the billed span cannot be computed from the CR, the AC and it"))
        return;
    bill_rating_t rt;
    int64_t q, u, t;
    snprintf(item, sizeof item, "%s.total_minor", prefix);
    if (!gov_bundle_check(v, bill_rate(rc, &b, &rt) == 0, item, "the card cannot rate the CR"))
        return;
    snprintf(item, sizeof item, "%s.quantity", prefix);
    gov_bundle_check(v, parse_i64(gov_bundle_str(l, "quantity"), &q) && q == rt.quantity, item,
                     "not the %" PRId64 " started seconds of the billed span", rt.quantity);
    snprintf(item, sizeof item, "%s.unit_minor", prefix);
    gov_bundle_check(v, parse_i64(gov_bundle_str(l, "unit_minor"), &u) && u == rt.unit_minor, item,
                     "not the card's %" PRId64, rt.unit_minor);
    snprintf(item, sizeof item, "%s.total_minor", prefix);
    if (gov_bundle_check(v, parse_i64(gov_bundle_str(l, "total_minor"), &t) && t == rt.total_minor,
                         item, "not the %" PRId64 " the card gives", rt.total_minor)) {
        if ((t > 0 && iv->total > INT64_MAX - t) || (t < 0 && iv->total < INT64_MIN - t))
            iv->total_overflow = 1;
        else
            iv->total += t;
    }
}

static void check_line(inv_t *iv, const json_t *l, size_t i)
{
    vctx_t *v = iv->v;
    char prefix[BUNDLE_PREFIX_MAX], item[BUNDLE_ITEM_MAX];
    snprintf(prefix, sizeof prefix, "lines[%zu]", i);
    int before = v->failed;
    v->quiet = 1;
    const json_t *x = json_object_get(l, "receipt"), *ac = json_object_get(l, "ac");
    const json_t *no = json_object_get(l, "line_no"), *seq = json_object_get(x, "sequence");
    const json_t *pv = json_object_get(x, "prev_lineage_cid");
    const char *lin = gov_bundle_str(x, "lineage_cid"), *ctx = gov_bundle_str(ac, "context_id");
    snprintf(item, sizeof item, "%s.line_no", prefix);
    gov_bundle_check(v, json_is_integer(no) && json_integer_value(no) == (json_int_t)i + 1, item,
                     "lines are not numbered 1, 2, ... in order");
    check_ac(iv, ac, prefix);
    snprintf(item, sizeof item, "%s.ac.tenant", prefix);
    gov_bundle_check(v, gov_bundle_streq(gov_bundle_str(ac, "tenant"), iv->tenant), item,
                     "the AC is another tenant's");
    snprintf(item, sizeof item, "%s.ac.billing_account", prefix);
    gov_bundle_check(v,
                     gov_bundle_streq(gov_bundle_str(ac, "billing_account"), iv->account) ||
                         gov_bundle_streq(iv->account, "default"),
                     item, "the AC bills another account");
    /* the lineage step over the receipt's own link and sequence, then the link itself as far
     * as the bundle shows the receipt before */
    snprintf(item, sizeof item, "%s.receipt", prefix);
    if (gov_bundle_check(v,
                         json_is_object(x) && json_is_integer(seq) && json_integer_value(seq) > 0 &&
                             (json_is_null(pv) || json_is_string(pv)) && ctx != NULL &&
                             strlen(ctx) <= GOV_CONTEXT_ID_MAX,
                         item, "no receipt with a sequence and a link, or no context")) {
        long long sq = (long long)json_integer_value(seq);
        gov_bundle_check_receipt(v, x, item, ctx, gov_bundle_str(ac, "ac_cid"),
                                 json_string_value(pv), sq);
        ctx_slot_t *s = &iv->ctxs[ctx_hash(ctx)];
        snprintf(item, sizeof item, "%s.receipt.prev_lineage_cid", prefix);
        if (sq == 1)
            gov_bundle_check(v, json_is_null(pv), item, "the first receipt links to another");
        else if (strcmp(s->ctx, ctx) == 0 && s->seq == sq - 1)
            gov_bundle_check(v, gov_bundle_streq(json_string_value(pv), s->lineage), item,
                             "does not link to the lineage CID of the receipt before");
        else
            gov_bundle_check(v, json_is_string(pv), item, "a later receipt without a link");
        if (lin != NULL && strlen(lin) <= BRK_CID_LEN) {
            snprintf(s->ctx, sizeof s->ctx, "%s", ctx);
            s->seq = sq;
            snprintf(s->lineage, sizeof s->lineage, "%s", lin);
        }
    }
    check_amount(iv, l, ac, prefix);
    const json_t *inc = json_object_get(l, "inclusion");
    snprintf(item, sizeof item, "%s.log_index", prefix);
    gov_bundle_check(
        v,
        json_is_integer(json_object_get(l, "log_index")) &&
            json_equal(json_object_get(l, "log_index"), json_object_get(inc, "leaf_index")),
        item, "not the index its inclusion proof proves");
    snprintf(item, sizeof item, "%s.inclusion", prefix);
    gov_bundle_check_inclusion(v, inc, lin, item, iv->have_cp, iv->cp_size, iv->cp_root);
    v->quiet = 0;
    if (v->failed == before && v->report)
        v->report(v->arg, 1, prefix, "");
    iv->count++;
    bill_merkle_add(&iv->tree, lin ? lin : "", lin ? strlen(lin) : 0);
}

static void check_totals(inv_t *iv)
{
    vctx_t *v = iv->v;
    int64_t want;
    const json_t *lc = json_object_get(iv->invoice, "line_count");
    gov_bundle_check(v, json_is_integer(lc) && json_integer_value(lc) == iv->count,
                     "invoice.line_count", "the bundle has %" PRId64 " lines", iv->count);
    gov_bundle_check(v,
                     !iv->total_overflow &&
                         parse_i64(gov_bundle_str(iv->invoice, "total_minor"), &want) &&
                         want == iv->total,
                     "invoice.total_minor", "the lines' amounts add up to %" PRId64, iv->total);
    brk_mhash_t root;
    char hex[2 * BRK_MERKLE_HASH_LEN + 1], cid[BRK_CID_LEN + 1];
    bill_merkle_root(&iv->tree, root);
    for (size_t k = 0; k < BRK_MERKLE_HASH_LEN; k++)
        snprintf(hex + 2 * k, 3, "%02x", root[k]);
    snprintf(cid, sizeof cid, "sha256:%s", hex);
    gov_bundle_check(v, gov_bundle_streq(gov_bundle_str(iv->invoice, "lines_root"), cid),
                     "invoice.lines_root", "the lines' lineage CIDs give %s", cid);
}

/* The head is read (format, kind, broker, invoice, rate_cards, in this order, nothing else);
 * the reader is at the '[' of "lines". Reads and checks every line, then the totals. */
static void verify_invoice(vctx_t *v, rd_t *r, const json_t *head, const json_t *pinned)
{
    const json_t *broker = json_object_get(head, "broker");
    inv_t iv;
    memset(&iv, 0, sizeof iv);
    iv.v = v;
    iv.invoice = json_object_get(head, "invoice");
    bill_merkle_init(&iv.tree);
    v->keys = json_object_get(broker, "keys");
    if (!gov_bundle_check(v, json_is_object(broker) && json_is_array(v->keys), "broker",
                          "no broker keys") ||
        !gov_bundle_check(v, json_is_object(iv.invoice), "invoice", "not an object"))
        return;
    gov_bundle_check_keys(v, broker);
    if (pinned != NULL)
        gov_bundle_check_pinned(v, broker, pinned);
    if (!check_invoice(&iv, broker))
        return;
    check_cards(&iv, json_object_get(head, "rate_cards"));
    iv.ctxs = calloc(GOV_INVBUNDLE_CTX_CACHE, sizeof *iv.ctxs);
    int c = rd_skip_ws(r);
    if (iv.ctxs != NULL && gov_bundle_check(v, c == '[', "lines", "not an array")) {
        c = rd_skip_ws(r);
        for (size_t i = 0; c != ']';) {
            char item[BUNDLE_ITEM_MAX];
            snprintf(item, sizeof item, "lines[%zu]", i);
            if (c == EOF)
                break;
            rd_unget(r, c);
            r->n = 0, r->max = GOV_INVBUNDLE_LINE_MAX;
            json_t *l = rd_value(r);
            if (!gov_bundle_check(v, json_is_object(l), item,
                                  r->over ? "over %u bytes"
                                          : "not a JSON object (cut or malformed)",
                                  GOV_INVBUNDLE_LINE_MAX)) {
                json_decref(l);
                break;
            }
            check_line(&iv, l, i++);
            json_decref(l);
            r->n = 0; /* the separator is not the line's: whitespace is skipped, never held */
            c = rd_skip_ws(r);
            if (c == ',')
                c = rd_skip_ws(r);
            else if (c != ']')
                c = EOF;
        }
        /* only a whole array closed by "]}" and nothing after counts as read */
        int end = c == ']' && rd_skip_ws(r) == '}' && rd_skip_ws(r) == EOF && !r->over;
        if (gov_bundle_check(v, end, "lines", "the bundle is cut or has members after lines"))
            check_totals(&iv);
    } else if (iv.ctxs == NULL) {
        gov_bundle_check(v, 0, "lines", "out of memory");
    }
    free(iv.cards);
    free(iv.ctxs);
}

int gov_bundle_verify_stream(FILE *f, size_t head_max, const json_t *pinned,
                             gov_bundle_report_fn report, void *arg)
{
    static const char *const invoice_order[] = {"format", "kind", "broker", "invoice",
                                                "rate_cards"};
    vctx_t v = {report, arg, 0, NULL, 0};
    rd_t r = {f, 0, head_max, 0, 0};
    json_t *head = json_object();
    size_t nmembers = 0;
    int c = rd_skip_ws(&r), ok = 0;
    if (head == NULL)
        return BRK_ENOMEM;
    if (c != '{')
        goto out;
    c = rd_skip_ws(&r);
    if (c == '}')
        ok = rd_skip_ws(&r) == EOF;
    while (c == '"') {
        rd_unget(&r, c);
        json_t *k = rd_value(&r);
        const char *key = json_string_value(k);
        if (key == NULL || json_object_get(head, key) != NULL || rd_skip_ws(&r) != ':') {
            json_decref(k);
            goto out;
        }
        if (strcmp(key, "lines") == 0 &&
            gov_bundle_streq(gov_bundle_str(head, "kind"), GOV_BUNDLE_KIND_INVOICE)) {
            json_decref(k);
            /* an invoice bundle: the head in the documented order, then lines, streamed */
            int in_order = nmembers == sizeof invoice_order / sizeof invoice_order[0];
            for (size_t i = 0; in_order && i < nmembers; i++)
                in_order = json_object_get(head, invoice_order[i]) != NULL;
            if (!gov_bundle_check(
                    &v, gov_bundle_streq(gov_bundle_str(head, "format"), GOV_BUNDLE_FORMAT),
                    "format", "not \"%s\"", GOV_BUNDLE_FORMAT) ||
                !gov_bundle_check(&v, in_order, "members",
                                  "an invoice bundle is format, kind, broker, invoice, rate_cards "
                                  "and lines, in this order"))
                break;
            verify_invoice(&v, &r, head, pinned);
            json_decref(head);
            return r.over && v.failed == 0 ? BRK_ETOOBIG : v.failed;
        }
        json_t *val = rd_value(&r);
        if (val == NULL) {
            json_decref(k);
            goto out;
        }
        json_object_set_new(head, key, val);
        json_decref(k);
        nmembers++;
        c = rd_skip_ws(&r);
        if (c == '}') {
            ok = rd_skip_ws(&r) == EOF;
            break;
        }
        if (c != ',')
            goto out;
        c = rd_skip_ws(&r);
    }
    if (ok && v.failed == 0 && !r.over) {
        /* a whole document: a session bundle (or an invoice bundle without lines, which the
         * session check refuses by its kind) */
        if (gov_bundle_streq(gov_bundle_str(head, "kind"), GOV_BUNDLE_KIND_INVOICE))
            gov_bundle_check(&v, 0, "lines", "an invoice bundle without lines");
        else {
            int failed = gov_bundle_verify(head, pinned, report, arg);
            json_decref(head);
            return failed;
        }
    }
out:
    if (r.over) {
        json_decref(head);
        return BRK_ETOOBIG;
    }
    if (!ok && v.failed == 0)
        gov_bundle_check(&v, 0, "bundle",
                         "not a JSON object (malformed, cut, or a duplicate member)");
    json_decref(head);
    return v.failed;
}
