/*
 * brk_err: the one error convention of the broker.
 *
 * Every function that can fail returns 0 on success or a negative enum brk_err value.
 * errno never leaks through an API: modules convert at their boundary.
 */
#ifndef BRK_ERR_H
#define BRK_ERR_H

enum brk_err {
    BRK_OK = 0,
    BRK_EINVAL = -1,     /* malformed input (400) */
    BRK_ENOMEM = -2,     /* allocation failed */
    BRK_EDB = -3,        /* database unavailable or failed (503) */
    BRK_ECONFLICT = -4,  /* state conflict (409) */
    BRK_EAGAIN = -5,     /* try later: queue full, not ready (503) */
    BRK_ENOTFOUND = -6,  /* no such object (404) */
    BRK_ETOOBIG = -7,    /* over a size limit (413) */
    BRK_ERANGE = -8,     /* value outside its enum or range (422) */
    BRK_EAUTH = -9,      /* missing or invalid credentials (401) */
    BRK_EFORBIDDEN = -10,/* role, tenant or policy refused (403) */
    BRK_EIO = -11,       /* file or process operation failed */
    BRK_ECRYPTO = -12,   /* signature, key or digest failure */
    BRK_ETIMEDOUT = -13, /* operation did not finish in time */
    BRK_EINTERNAL = -14, /* a bug or an impossible state (500) */
    BRK_EMETHOD = -15,   /* method not allowed on an existing path (405) */
    BRK_ELIMIT = -16,    /* over a rate or header limit (429, 431) */
    BRK_EMEDIA = -17,    /* unsupported media type (415) */
};

/* brk_strerror: a static, lowercase description of err. Any thread. Never NULL. */
const char *brk_strerror(int err);

#endif
