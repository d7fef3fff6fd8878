/*
 * gov: the protocol's own rules, apart from HTTP and the database: the limits of the
 * protocol's fields, ids, DIDs and capability masks. The other gov_ modules hold the accord
 * (gov_accord.h), field validation (gov_field.h), Completion Receipts (gov_cr.h), agent
 * passports and agent signatures (gov_passport.h), the signed
 * documents (gov_doc.h), the elevation record (gov_elev.h), the lineage rule (gov_lineage.h)
 * and the SQL result codes (gov_result.h).
 *
 * Layering: gov/ depends on broker/ only (brk_jcs, brk_crypto, brk_sign, brk_time); the
 * handlers and the CLI use it; nothing in broker/, billing/ or functions/ includes a gov
 * header. Every gov_ function is pure over its arguments (no h2o, no libpq) and may run on any
 * thread.
 */
#ifndef GOV_H
#define GOV_H

#include <stddef.h>
#include <stdint.h>

#include "brk_limits.h"

#define GOV_ID_LEN 36 /* "ctx_" / "den_" + 32 hex; "cr_" + 32 hex is shorter */
/* A context id as clients may send it: the broker's "ctx_" + 32 hex, or a self-authorized
 * one that gsh made up offline, "self-" + 1..59 of [A-Za-z0-9._-] (a UUID fits). */
#define GOV_CONTEXT_ID_MAX 64
#define GOV_SELF_CONTEXT_PREFIX "self-"
#define GOV_TTL_MAX 86400
#define GOV_TTL_DEFAULT 300
#define GOV_DESCRIPTION_MAX 256
#define GOV_DID_MAX 256
#define GOV_ACCORD_NAME_MAX 64
#define GOV_IDEMPOTENCY_KEY_MAX 128
#define GOV_CORPUS_ALLOW_MAX 1024 /* entries of an accord's corpus_allow */
#define GOV_SHELL_CLASS_MAX BRK_SHELL_CLASS_MAX
#define GOV_CAPS_STR_MAX 10 /* "0x" + 8 hex digits */
#define GOV_TIME_STR_MAX 40 /* an RFC 3339 time with fractions and an offset */
#define GOV_POSTURE_MIN 1
#define GOV_POSTURE_MAX 5
/* Distinct approvers an accord may require before a pending AC becomes authorized (the
 * two-person rule and beyond); 1 is the default and the behaviour before the setting. */
#define GOV_APPROVALS_MIN 1
#define GOV_APPROVALS_MAX 5
#define GOV_DEFAULT_ACCOUNT "default" /* the billing account an AC names when none is asked */
#define GOV_DEFAULT_ACCORD "default"  /* the accord of a self-authorized receipt naming none */
#define GOV_REDACTED "***"            /* what a secret-looking value is stored as */
#define GOV_URL_MAX 512               /* a session URL: the public URL + a context path */

#define GOV_MSG_MAX 256 /* bytes of an error message, NUL included */

/* What a rule refused: rc a negative enum brk_err (BRK_EINVAL for a wrong type or shape, 400;
 * BRK_ERANGE for a value outside its enum or range, 422; ...), code the stable error code
 * (NULL: the status's default), msg the message. The handlers answer it as it is. */
typedef struct gov_err {
    int rc;
    const char *code;
    char msg[GOV_MSG_MAX];
} gov_err_t;

/* gov_fail: fills e (msg from fmt, printf-style) and returns rc. */
int gov_fail(gov_err_t *e, int rc, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* gov_new_id: prefix + 32 random hex digits into out (GOV_ID_LEN + 1). */
void gov_new_id(const char *prefix, char out[GOV_ID_LEN + 1]);

/* gov_principal_did: "did:web:<broker id>:tenants:<tenant>:keys:<key_id>" into out (cap
 * bytes), the broker id with every character outside [A-Za-z0-9.-] replaced by '-'. */
void gov_principal_did(const char *broker_id, const char *tenant, const char *key_id,
                       char *out, size_t cap);

/* gov_session_url: "<public_url>/governance/session/<context_id>/" into out (cap bytes). */
void gov_session_url(const char *public_url, const char *context_id, char *out, size_t cap);

/* gov_self_context_valid: 1 when s has the self-authorized context id form above (the same
 * form the acs check constraint enforces, migrations/0007). */
int gov_self_context_valid(const char *s);

/* gov_caps_parse: "0x" + 1..8 hex digits to a 32-bit mask. Returns 0 or BRK_EINVAL. */
int gov_caps_parse(const char *s, uint32_t *out);

/* gov_caps_fmt: "0x%08x". */
void gov_caps_fmt(uint32_t v, char out[GOV_CAPS_STR_MAX + 1]);

#endif
