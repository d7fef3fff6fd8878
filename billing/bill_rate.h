/*
 * bill_rate: billing accounts, rate cards, and rating one Completion Receipt.
 *
 * A rate card (JSON, every price an integer count of the account currency's minor units,
 * every multiplier a decimal string with at most 6 fractional digits):
 *
 *   { "per_cr": {"completed": 10, "failed": 10, "violated": 10, "timed_out": 10,
 *                "session_end": 0},
 *     "per_second": 1,
 *     "shell_class_multipliers": {"Privileged": "1.5"},
 *     "capability_multipliers": {"7": "1.25"},
 *     "flagged_surcharge": 0 }
 *
 * per_cr (all five outcomes) and per_second are required; the multiplier maps and the
 * surcharge default to {} and 0. per_cr prices and the surcharge are 0..BILL_PRICE_MAX,
 * per_second 0..BILL_PER_SECOND_MAX, multipliers 0..BILL_MULT_MAX ("1" is neutral),
 * capability keys are bit numbers "0".."31". Unknown members are refused. The largest factor
 * one line can get -- the largest shell class multiplier (at least 1) times every capability
 * multiplier above 1, since a CR has one shell class but may set every bit -- must be at most
 * BILL_MULT_PRODUCT_MAX ("rate_card_too_large" otherwise).
 *
 * Rating (bill_rate), for a CR with effective outcome o, run time d = billed_completed_at -
 * billed_started_at (the span the broker saw, not the executor's claims), shell class c and
 * capability set caps:
 *
 *   quantity = min(ceil(d / 1 s), BILL_LINE_SECONDS_MAX), the started seconds of run time
 *              (0 when d <= 0); a capped quantity is marked in the breakdown
 *   unit     = per_second
 *   base     = per_cr[o]
 *   amount   = base + quantity * unit                         exact
 *   amount   = round_half_even(amount * shell_class_multipliers[c])   when c has one
 *   amount   = round_half_even(amount * capability_multipliers[b])    for each bit b set in
 *                                                       caps that has one, lowest bit first
 *   total    = amount + (flags not empty ? flagged_surcharge : 0)
 *
 * Each multiplication by a multiplier is rounded on its own (bill_money's one rule), in the
 * fixed order above, so a line's total is reproducible from its rating breakdown.
 *
 * Bounds: with every value of a card that bill_ratecard_parse accepted, the worst line is
 *   (BILL_PRICE_MAX + BILL_PER_SECOND_MAX * BILL_LINE_SECONDS_MAX) * 1000
 *     + 33 * 1000 (each of at most 33 roundings adds at most 1/2, later magnified)
 *     + BILL_PRICE_MAX  =  268,841,000,000,033,000 + 10^12  <  BILL_LINE_MAX = 10^18,
 * checked at compile time in bill_rate.c, so bill_rate never fails on a valid card, and an
 * invoice holds lines only up to BILL_INVOICE_TOTAL_MAX (bill_add_line rolls a full invoice
 * over to a continuation invoice of the same period, migrations/functions/20_bill_add_line.sql), so
 * total + line <= 9 * 10^18 < 2^63 - 1: billing never fails on arithmetic. The BRK_ERANGE
 * checks stay as a second line of defence.
 *
 * Pure functions: any thread.
 */
#ifndef BILL_RATE_H
#define BILL_RATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "bill_money.h"
#include "brk_event.h"
#include "brk_limits.h"

#define BILL_PRICE_MAX 1000000000000LL    /* 10^12 minor units: a per_cr price, the surcharge */
#define BILL_PER_SECOND_MAX 100000000LL   /* 10^8 minor units per started second */
#define BILL_MULT_MAX (1000LL * BILL_PPM) /* a multiplier of at most 1000 */
#define BILL_MULT_PRODUCT_MAX (1000LL * BILL_PPM) /* the largest factor of one line */
#define BILL_LINE_SECONDS_MAX (31LL * 86400) /* billable seconds of one line: a month */
#define BILL_LINE_MAX 1000000000000000000LL  /* 10^18: no line is larger (see above) */
/* An invoice's total stays at most this: the next line goes on a continuation invoice.
 * Mirrored as a literal in bill_add_line (migrations/functions/20_bill_add_line.sql). */
#define BILL_INVOICE_TOTAL_MAX 8000000000000000000LL
#define BILL_SHELL_CLASSES_MAX 32         /* entries of shell_class_multipliers */
#define BILL_SHELL_CLASS_MAX BRK_SHELL_CLASS_MAX
#define BILL_CAP_BITS 32                  /* capability bits (capability_set is 32-bit) */
#define BILL_ACCOUNT_ID_MAX BRK_ACCOUNT_ID_MAX
#define BILL_MSG_MAX 256                  /* validation messages */

enum bill_outcome {
    BILL_COMPLETED,
    BILL_FAILED,
    BILL_VIOLATED,
    BILL_TIMED_OUT,
    BILL_SESSION_END,
    BILL_OUTCOMES
};

/* bill_outcome_name: "completed", ... (static), NULL out of range.
 * bill_outcome_parse: the enum value of a name, or -1. */
const char *bill_outcome_name(int o);
int bill_outcome_parse(const char *s);

/* A validated rate card: a plain value, filled only by bill_ratecard_parse. */
typedef struct bill_ratecard {
    int64_t per_cr[BILL_OUTCOMES];
    int64_t per_second;
    int64_t flagged_surcharge;
    size_t nshell;
    struct {
        char name[BILL_SHELL_CLASS_MAX + 1];
        int64_t ppm;
    } shell[BILL_SHELL_CLASSES_MAX];
    uint32_t cap_has; /* bits that have a multiplier */
    int64_t cap_ppm[BILL_CAP_BITS];
} bill_ratecard_t;

/*
 * bill_ratecard_parse: validates a rate card's JSON form into *rc. On failure returns
 * BRK_EINVAL (wrong type or shape, unknown member) or BRK_ERANGE (a value out of range),
 * with a stable code (static string) in *code and a lowercase message naming the member in
 * msg. The caller keeps in.
 */
int bill_ratecard_parse(const json_t *in, bill_ratecard_t *rc, const char **code, char *msg,
                        size_t mlen);

/* bill_ratecard_json: the normalized JSON form (every member present, multipliers in their
 * shortest decimal form). New reference owned by the caller. */
json_t *bill_ratecard_json(const bill_ratecard_t *rc);

/* A billing account's body: {"currency": "JPY", "rate_card": {...}}. */
typedef struct bill_account {
    const bill_currency_t *currency; /* static table entry */
    bill_ratecard_t card;
} bill_account_t;

/* bill_account_parse: validates an account body (both members required, nothing else).
 * Errors as bill_ratecard_parse; an unknown currency is BRK_ERANGE "unknown_currency". */
int bill_account_parse(const json_t *in, bill_account_t *a, const char **code, char *msg,
                       size_t mlen);

/* bill_account_id_valid: 1 when s is 1..64 of [A-Za-z0-9._-] starting with a letter or
 * digit (the same form as accord names). */
int bill_account_id_valid(const char *s);

/* What rating needs from a GSAP_CR_RECEIVED payload (broker/brk_event.h). Strings are borrowed from it. */
typedef struct bill_cr {
    int outcome;                      /* enum bill_outcome: the effective outcome */
    int flagged;                      /* flags not empty */
    int64_t started_us, completed_us; /* microseconds since the epoch, UTC */
    const char *shell_class;          /* NULL when the AC had none */
    uint32_t capability_set;
} bill_cr_t;

/* bill_cr_from_payload: reads effective_outcome, flags, billed_started_at,
 * billed_completed_at (the clamped span, migrations/0007; started_at and completed_at only
 * for a payload that has neither, written before 0007), shell_class and capability_set of a
 * GSAP_CR_RECEIVED payload. Returns 0 or BRK_EINVAL with a message. */
int bill_cr_from_payload(const json_t *payload, bill_cr_t *cr, char *msg, size_t mlen);

/* bill_cr_from_event: the same over a payload read with brk_cr_received_read. */
int bill_cr_from_event(const brk_cr_received_t *p, bill_cr_t *cr, char *msg, size_t mlen);


/* The result of rating, with the breakdown that reproduces total. */
typedef struct bill_rating {
    int64_t quantity;   /* started seconds, at most BILL_LINE_SECONDS_MAX */
    int quantity_capped; /* the run was longer than BILL_LINE_SECONDS_MAX */
    int64_t unit_minor; /* per_second */
    int64_t base_minor; /* per_cr[outcome] */
    int64_t surcharge_minor;
    int64_t total_minor;
    size_t nmult; /* multipliers applied, in order */
    struct {
        int bit; /* -1 for the shell class multiplier */
        int64_t ppm;
    } mult[1 + BILL_CAP_BITS];
} bill_rating_t;

/* bill_rate: rates cr with rc (the formula above). Returns 0 or BRK_ERANGE (overflow). */
int bill_rate(const bill_ratecard_t *rc, const bill_cr_t *cr, bill_rating_t *out);

/* bill_rating_json: the breakdown as stored with the line: {"base_minor", "quantity",
 * "unit_minor", "multipliers": [{"shell_class"|"capability_bit", "multiplier"}],
 * "surcharge_minor", "total_minor"}, plus "quantity_capped": true when the quantity was
 * capped. shell_class is the CR's (borrowed). New reference. */
json_t *bill_rating_json(const bill_rating_t *r, const char *shell_class);

#endif
