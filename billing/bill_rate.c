/*
 * bill_rate: rate cards, accounts and rating; see bill_rate.h for the format and formula.
 * Validation answers the first problem it finds, naming the member, so an operator can fix a
 * card one message at a time.
 */
#include "bill_rate.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "brk_err.h"
#include "brk_time.h"
#include "banned.h"

/* The bounds of bill_rate.h, proved once here: the worst line of a valid card fits
 * BILL_LINE_MAX (the second term bounds what the roundings add: at most 1/2 per multiplier,
 * magnified by at most the largest factor), and an invoice at its cap still takes a line
 * without leaving int64_t. */
_Static_assert((BILL_PRICE_MAX + BILL_PER_SECOND_MAX * BILL_LINE_SECONDS_MAX) *
                       (BILL_MULT_PRODUCT_MAX / BILL_PPM) +
                   (1 + BILL_CAP_BITS) * (BILL_MULT_PRODUCT_MAX / BILL_PPM) + BILL_PRICE_MAX <=
               BILL_LINE_MAX,
               "the worst line of a valid rate card must fit BILL_LINE_MAX");
_Static_assert(BILL_LINE_MAX <= BILL_INVOICE_TOTAL_MAX, "an empty invoice must take any line");
_Static_assert(BILL_INVOICE_TOTAL_MAX <= INT64_MAX - BILL_LINE_MAX,
               "an invoice total plus one line must fit int64_t");
_Static_assert(BILL_MULT_PRODUCT_MAX <= INT64_MAX / BILL_MULT_MAX,
               "the factor check must not overflow");

/* NULL-terminated, so it doubles as the list of per_cr's members. */
static const char *const outcome_names[BILL_OUTCOMES + 1] = {"completed", "failed",      "violated",
                                                             "timed_out", "session_end", NULL};

const char *bill_outcome_name(int o)
{
    return o >= 0 && o < BILL_OUTCOMES ? outcome_names[o] : NULL;
}

int bill_outcome_parse(const char *s)
{
    for (int i = 0; s != NULL && i < BILL_OUTCOMES; i++)
        if (strcmp(s, outcome_names[i]) == 0)
            return i;
    return -1;
}

static int fail(const char **code, char *msg, size_t mlen, const char *c, int rc, const char *fmt,
                const char *what)
{
    *code = c;
    snprintf(msg, mlen, fmt, what);
    return rc;
}

static int only_members(const json_t *obj, const char *const *names, const char **code, char *msg,
                        size_t mlen)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        size_t i;
        for (i = 0; names[i] != NULL && strcmp(names[i], k) != 0; i++)
            ;
        if (names[i] == NULL)
            return fail(code, msg, mlen, "unknown_field", BRK_EINVAL, "unknown field \"%.64s\"", k);
    }
    return 0;
}

/* A price: an integer 0..max (BILL_PRICE_MAX or BILL_PER_SECOND_MAX). */
static int price(const json_t *v, const char *what, int64_t max, int64_t *out, const char **code,
                 char *msg, size_t mlen)
{
    if (!json_is_integer(v))
        return fail(code, msg, mlen, "invalid_field", BRK_EINVAL,
                    "\"%s\" must be an integer count of minor units", what);
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > max) {
        *code = "out_of_range";
        snprintf(msg, mlen, "\"%s\" must be between 0 and %lld minor units", what,
                 (long long)max);
        return BRK_ERANGE;
    }
    *out = (int64_t)x;
    return 0;
}

/* The largest factor one line can get (see bill_rate.h), in ppm, rounded up at each step so
 * that it never understates; stops early once past BILL_MULT_PRODUCT_MAX, so every product
 * stays below BILL_MULT_PRODUCT_MAX * BILL_MULT_MAX. */
static int64_t worst_factor(const bill_ratecard_t *rc)
{
    int64_t f = BILL_PPM;
    for (size_t i = 0; i < rc->nshell; i++)
        if (rc->shell[i].ppm > f)
            f = rc->shell[i].ppm;
    for (int b = 0; b < BILL_CAP_BITS && f <= BILL_MULT_PRODUCT_MAX; b++)
        if ((rc->cap_has & ((uint32_t)1 << b)) && rc->cap_ppm[b] > BILL_PPM)
            f = (f * rc->cap_ppm[b] + BILL_PPM - 1) / BILL_PPM;
    return f;
}

/* A multiplier: a decimal string, exact to 6 places, 0..BILL_MULT_MAX. Numbers are refused
 * because a JSON number reaches us as a binary double, which cannot hold 1.1 exactly. */
static int multiplier(const json_t *v, const char *what, int64_t *out, const char **code, char *msg,
                      size_t mlen)
{
    int rc;
    if (!json_is_string(v))
        return fail(code, msg, mlen, "invalid_field", BRK_EINVAL,
                    "multiplier \"%s\" must be a decimal string such as \"1.25\"", what);
    rc = bill_parse_decimal(json_string_value(v), BILL_PPM_DIGITS, 1, out);
    if (rc == BRK_EINVAL)
        return fail(code, msg, mlen, "invalid_field", BRK_EINVAL,
                    "multiplier \"%s\" must be a decimal string with at most 6 fractional digits",
                    what);
    if (rc != 0 || *out < 0 || *out > BILL_MULT_MAX)
        return fail(code, msg, mlen, "out_of_range", BRK_ERANGE,
                    "multiplier \"%s\" must be between 0 and 1000", what);
    return 0;
}

static int shell_class_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > BILL_SHELL_CLASS_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return 0;
    return 1;
}

/* A capability key: "0".."31", no sign, no leading zero. */
static int cap_bit(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 2 || (n == 2 && k[0] == '0') || k[0] < '0' || k[0] > '9' ||
        (n == 2 && (k[1] < '0' || k[1] > '9')))
        return -1;
    int b = n == 1 ? k[0] - '0' : (k[0] - '0') * 10 + (k[1] - '0');
    return b < BILL_CAP_BITS ? b : -1;
}

int bill_ratecard_parse(const json_t *in, bill_ratecard_t *rc, const char **code, char *msg,
                        size_t mlen)
{
    static const char *const members[] = {"per_cr",
                                          "per_second",
                                          "shell_class_multipliers",
                                          "capability_multipliers",
                                          "flagged_surcharge",
                                          NULL};
    const json_t *per_cr, *v;
    const char *k;
    json_t *m;
    int r;

    memset(rc, 0, sizeof *rc);
    for (int b = 0; b < BILL_CAP_BITS; b++)
        rc->cap_ppm[b] = BILL_PPM;
    if (!json_is_object(in))
        return fail(code, msg, mlen, "invalid_rate_card", BRK_EINVAL,
                    "a rate card is a JSON object%s", "");
    if ((r = only_members(in, members, code, msg, mlen)) != 0)
        return r;
    per_cr = json_object_get(in, "per_cr");
    if (!json_is_object(per_cr))
        return fail(code, msg, mlen, per_cr ? "invalid_field" : "missing_field", BRK_EINVAL,
                    "\"%s\" must be an object with a price for each outcome", "per_cr");
    if ((r = only_members(per_cr, outcome_names, code, msg, mlen)) != 0)
        return r;
    for (int o = 0; o < BILL_OUTCOMES; o++) {
        if ((v = json_object_get(per_cr, outcome_names[o])) == NULL)
            return fail(code, msg, mlen, "missing_field", BRK_EINVAL,
                        "\"per_cr\" needs a price for \"%s\"", outcome_names[o]);
        if ((r = price(v, outcome_names[o], BILL_PRICE_MAX, &rc->per_cr[o], code, msg, mlen)) !=
            0)
            return r;
    }
    if ((v = json_object_get(in, "per_second")) == NULL)
        return fail(code, msg, mlen, "missing_field", BRK_EINVAL, "\"%s\" is required",
                    "per_second");
    if ((r = price(v, "per_second", BILL_PER_SECOND_MAX, &rc->per_second, code, msg, mlen)) != 0)
        return r;
    if ((v = json_object_get(in, "flagged_surcharge")) != NULL &&
        (r = price(v, "flagged_surcharge", BILL_PRICE_MAX, &rc->flagged_surcharge, code, msg,
                   mlen)) != 0)
        return r;

    v = json_object_get(in, "shell_class_multipliers");
    if (v != NULL && !json_is_object(v))
        return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be an object",
                    "shell_class_multipliers");
    if (json_object_size(v) > BILL_SHELL_CLASSES_MAX)
        return fail(code, msg, mlen, "out_of_range", BRK_ERANGE,
                    "\"%s\" holds at most 32 shell classes", "shell_class_multipliers");
    json_object_foreach((json_t *)v, k, m)
    {
        if (!shell_class_valid(k))
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL,
                        "shell class \"%.64s\" must be 1 to 32 of letters, digits, '-' and '_'", k);
        if ((r = multiplier(m, k, &rc->shell[rc->nshell].ppm, code, msg, mlen)) != 0)
            return r;
        memcpy(rc->shell[rc->nshell].name, k, strlen(k) + 1);
        rc->nshell++;
    }

    v = json_object_get(in, "capability_multipliers");
    if (v != NULL && !json_is_object(v))
        return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be an object",
                    "capability_multipliers");
    json_object_foreach((json_t *)v, k, m)
    {
        int b = cap_bit(k);
        if (b < 0)
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL,
                        "capability key \"%.64s\" must be a bit number from \"0\" to \"31\"", k);
        if ((r = multiplier(m, k, &rc->cap_ppm[b], code, msg, mlen)) != 0)
            return r;
        rc->cap_has |= (uint32_t)1 << b;
    }
    /* Each multiplier within its range can still multiply to an overflow together. */
    int64_t f = worst_factor(rc);
    if (f > BILL_MULT_PRODUCT_MAX) {
        char num[BILL_AMOUNT_STR_MAX];
        bill_format_ppm(f, num);
        *code = "rate_card_too_large";
        snprintf(msg, mlen,
                 "one line could be multiplied by at least %s: the largest shell class "
                 "multiplier times every capability multiplier above 1 must be at most 1000",
                 num);
        return BRK_ERANGE;
    }
    return 0;
}

json_t *bill_ratecard_json(const bill_ratecard_t *rc)
{
    json_t *per_cr = json_object(), *shell = json_object(), *caps = json_object();
    char num[BILL_AMOUNT_STR_MAX], key[4];
    for (int o = 0; o < BILL_OUTCOMES; o++)
        json_object_set_new(per_cr, outcome_names[o], json_integer(rc->per_cr[o]));
    for (size_t i = 0; i < rc->nshell; i++) {
        bill_format_ppm(rc->shell[i].ppm, num);
        json_object_set_new(shell, rc->shell[i].name, json_string(num));
    }
    for (int b = 0; b < BILL_CAP_BITS; b++) {
        if (!(rc->cap_has & ((uint32_t)1 << b)))
            continue;
        snprintf(key, sizeof key, "%d", b);
        bill_format_ppm(rc->cap_ppm[b], num);
        json_object_set_new(caps, key, json_string(num));
    }
    return json_pack("{s:o,s:I,s:o,s:o,s:I}", "per_cr", per_cr, "per_second",
                     (json_int_t)rc->per_second, "shell_class_multipliers", shell,
                     "capability_multipliers", caps, "flagged_surcharge",
                     (json_int_t)rc->flagged_surcharge);
}

int bill_account_parse(const json_t *in, bill_account_t *a, const char **code, char *msg,
                       size_t mlen)
{
    static const char *const members[] = {"currency", "rate_card", NULL};
    const json_t *cur, *card;
    int r;

    memset(a, 0, sizeof *a);
    if (!json_is_object(in))
        return fail(code, msg, mlen, "invalid_account", BRK_EINVAL, "an account is a JSON object%s",
                    "");
    if ((r = only_members(in, members, code, msg, mlen)) != 0)
        return r;
    cur = json_object_get(in, "currency");
    card = json_object_get(in, "rate_card");
    if (cur == NULL || card == NULL)
        return fail(code, msg, mlen, "missing_field", BRK_EINVAL, "\"%s\" is required",
                    cur == NULL ? "currency" : "rate_card");
    if (!json_is_string(cur))
        return fail(code, msg, mlen, "invalid_field", BRK_EINVAL,
                    "\"%s\" must be an ISO 4217 code such as \"USD\"", "currency");
    if ((a->currency = bill_currency_find(json_string_value(cur))) == NULL)
        return fail(code, msg, mlen, "unknown_currency", BRK_ERANGE,
                    "\"%.16s\" is not an ISO 4217 currency with minor units",
                    json_string_value(cur));
    return bill_ratecard_parse(card, &a->card, code, msg, mlen);
}

int bill_account_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > BILL_ACCOUNT_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '.' || c == '_' || c == '-'))))
            return 0;
    }
    return 1;
}


int bill_cr_from_payload(const json_t *payload, bill_cr_t *cr, char *msg, size_t mlen)
{
    brk_cr_received_t p;
    brk_cr_received_read(payload, &p);
    return bill_cr_from_event(&p, cr, msg, mlen);
}

int bill_cr_from_event(const brk_cr_received_t *p, bill_cr_t *cr, char *msg, size_t mlen)
{
    memset(cr, 0, sizeof *cr);
    cr->outcome = bill_outcome_parse(json_string_value(p->effective_outcome));
    if (cr->outcome < 0) {
        snprintf(msg, mlen, "the payload's \"effective_outcome\" is not an outcome");
        return BRK_EINVAL;
    }
    if (!json_is_array(p->flags)) {
        snprintf(msg, mlen, "the payload's \"flags\" is not an array");
        return BRK_EINVAL;
    }
    cr->flagged = json_array_size(p->flags) > 0;
    /* The run time billed is the span the broker saw (migrations/0007: the claims clamped to
     * the AC's issued_at and the received time), never the executor's claims. Only events
     * written before 0007 lack it; their claims were all the broker had then. */
    const json_t *vs = p->billed_started_at, *vc = p->billed_completed_at;
    const char *ks = "billed_started_at", *kc = "billed_completed_at";
    if (vs == NULL && vc == NULL) {
        vs = p->started_at;
        vc = p->completed_at;
        ks = "started_at";
        kc = "completed_at";
    }
    if (brk_time_parse_us(json_string_value(vs), &cr->started_us) != 0 ||
        brk_time_parse_us(json_string_value(vc), &cr->completed_us) != 0) {
        snprintf(msg, mlen, "the payload's \"%s\" or \"%s\" is not a time", ks, kc);
        return BRK_EINVAL;
    }
    if (!json_is_integer(p->capability_set) || json_integer_value(p->capability_set) < 0 ||
        json_integer_value(p->capability_set) > 0xffffffffLL) {
        snprintf(msg, mlen, "the payload's \"capability_set\" is not a 32-bit integer");
        return BRK_EINVAL;
    }
    cr->capability_set = (uint32_t)json_integer_value(p->capability_set);
    if (p->shell_class != NULL && !json_is_null(p->shell_class) &&
        !json_is_string(p->shell_class)) {
        snprintf(msg, mlen, "the payload's \"shell_class\" is not a string");
        return BRK_EINVAL;
    }
    cr->shell_class = json_string_value(p->shell_class);
    return 0;
}

int bill_rate(const bill_ratecard_t *rc, const bill_cr_t *cr, bill_rating_t *out)
{
    int64_t amount, run, d = cr->completed_us - cr->started_us;
    int r;

    memset(out, 0, sizeof *out);
    if (cr->outcome < 0 || cr->outcome >= BILL_OUTCOMES)
        return BRK_EINVAL;
    /* started seconds: a run of 0.2 s is one started second, 0 s is none */
    out->quantity = d <= 0 ? 0 : d / 1000000 + (d % 1000000 != 0);
    /* No run is billed beyond BILL_LINE_SECONDS_MAX, whatever span it claims: the bound
     * that keeps every line of a valid card within BILL_LINE_MAX. */
    if (out->quantity > BILL_LINE_SECONDS_MAX) {
        out->quantity = BILL_LINE_SECONDS_MAX;
        out->quantity_capped = 1;
    }
    out->unit_minor = rc->per_second;
    out->base_minor = rc->per_cr[cr->outcome];
    if ((r = bill_mul(out->quantity, out->unit_minor, &run)) != 0 ||
        (r = bill_add(out->base_minor, run, &amount)) != 0)
        return r;
    for (size_t i = 0; cr->shell_class != NULL && i < rc->nshell; i++) {
        if (strcmp(rc->shell[i].name, cr->shell_class) != 0)
            continue;
        if ((r = bill_mul_ppm(amount, rc->shell[i].ppm, &amount)) != 0)
            return r;
        out->mult[out->nmult].bit = -1;
        out->mult[out->nmult++].ppm = rc->shell[i].ppm;
    }
    for (int b = 0; b < BILL_CAP_BITS; b++) {
        uint32_t bit = (uint32_t)1 << b;
        if (!(cr->capability_set & bit) || !(rc->cap_has & bit))
            continue;
        if ((r = bill_mul_ppm(amount, rc->cap_ppm[b], &amount)) != 0)
            return r;
        out->mult[out->nmult].bit = b;
        out->mult[out->nmult++].ppm = rc->cap_ppm[b];
    }
    out->surcharge_minor = cr->flagged ? rc->flagged_surcharge : 0;
    return bill_add(amount, out->surcharge_minor, &out->total_minor);
}

json_t *bill_rating_json(const bill_rating_t *r, const char *shell_class)
{
    json_t *mults = json_array();
    char num[BILL_AMOUNT_STR_MAX];
    for (size_t i = 0; i < r->nmult; i++) {
        bill_format_ppm(r->mult[i].ppm, num);
        json_array_append_new(
            mults,
            r->mult[i].bit < 0
                ? json_pack("{s:s,s:s}", "shell_class", shell_class, "multiplier", num)
                : json_pack("{s:i,s:s}", "capability_bit", r->mult[i].bit, "multiplier", num));
    }
    json_t *j = json_pack("{s:I,s:I,s:I,s:o,s:I,s:I}", "base_minor", (json_int_t)r->base_minor,
                          "quantity", (json_int_t)r->quantity, "unit_minor",
                          (json_int_t)r->unit_minor, "multipliers", mults, "surcharge_minor",
                          (json_int_t)r->surcharge_minor, "total_minor",
                          (json_int_t)r->total_minor);
    if (j != NULL && r->quantity_capped)
        json_object_set_new(j, "quantity_capped", json_true());
    return j;
}
