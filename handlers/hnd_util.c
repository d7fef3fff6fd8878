/* hnd_util: gov_field's checks answering a request; see hnd_util.h. */
#include "hnd_util.h"

#include "gov_field.h"
#include "gov_result.h"
#include "banned.h"

int hnd_reply_gov(brk_req_t *r, const gov_err_t *e)
{
    brk_reply_error(r, e->rc, e->code, "%s", e->msg);
    return -1;
}

int hnd_reply_result(brk_req_t *r, const char *sql_code)
{
    const gov_result_t *x = gov_result_find(sql_code);
    if (x == NULL)
        return 0;
    brk_reply_error(r, x->rc, x->code, "%s", x->message);
    return -1;
}

/* Every wrapper: run the check, answer its refusal. */
#define HND_CHECK(call)                                                                        \
    do {                                                                                       \
        gov_err_t e_;                                                                          \
        return (call) == 0 ? 0 : hnd_reply_gov(r, &e_);                                        \
    } while (0)

int hnd_reject_unknown(brk_req_t *r, json_t *obj, const char *const *fields)
{
    HND_CHECK(gov_reject_unknown(obj, fields, &e_));
}

json_t *hnd_collect_unknown(brk_req_t *r, json_t *obj, const char *const *fields)
{
    json_t *names;
    gov_err_t e;
    if (gov_collect_unknown(obj, fields, &names, &e) != 0) {
        hnd_reply_gov(r, &e);
        return NULL;
    }
    return names;
}

int hnd_opt_string(brk_req_t *r, json_t *obj, const char *key, size_t max, const char **out)
{
    HND_CHECK(gov_opt_string(obj, key, max, out, &e_));
}

int hnd_req_string(brk_req_t *r, json_t *obj, const char *key, size_t max, const char **out)
{
    HND_CHECK(gov_req_string(obj, key, max, out, &e_));
}

int hnd_opt_bool(brk_req_t *r, json_t *obj, const char *key, int *out)
{
    HND_CHECK(gov_opt_bool(obj, key, out, &e_));
}

int hnd_opt_int(brk_req_t *r, json_t *obj, const char *key, long long lo, long long hi,
                long long *out)
{
    HND_CHECK(gov_opt_int(obj, key, lo, hi, out, &e_));
}

int hnd_req_cid(brk_req_t *r, json_t *obj, const char *key, const char **out)
{
    HND_CHECK(gov_req_cid(obj, key, out, &e_));
}

int hnd_opt_cid(brk_req_t *r, json_t *obj, const char *key, const char **out)
{
    HND_CHECK(gov_opt_cid(obj, key, out, &e_));
}

int hnd_req_enum(brk_req_t *r, json_t *obj, const char *key, const char *const *values, int *idx)
{
    HND_CHECK(gov_req_enum(obj, key, values, idx, &e_));
}

brk_db_stmt_t hnd_q_wake = {"hnd_wake", "SELECT pg_notify('gsap_events', '')", 0, NULL};
static brk_db_stmt_t q_session = {"hnd_session", "SET gsap.notify = 'deferred'", 0, NULL};

int hnd_wake_register(void)
{
    int rc = brk_db_register(&hnd_q_wake);
    if (rc == 0 && (rc = brk_db_register(&q_session)) == 0)
        brk_db_set_session(&q_session);
    return rc;
}
