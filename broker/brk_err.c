#include "brk_err.h"

const char *brk_strerror(int err)
{
    switch (err) {
    case BRK_OK: return "success";
    case BRK_EINVAL: return "invalid argument";
    case BRK_ENOMEM: return "out of memory";
    case BRK_EDB: return "database unavailable";
    case BRK_ECONFLICT: return "conflict";
    case BRK_EAGAIN: return "resource temporarily unavailable";
    case BRK_ENOTFOUND: return "not found";
    case BRK_ETOOBIG: return "too large";
    case BRK_ERANGE: return "value out of range";
    case BRK_EAUTH: return "authentication required";
    case BRK_EFORBIDDEN: return "forbidden";
    case BRK_EIO: return "i/o error";
    case BRK_ECRYPTO: return "cryptographic failure";
    case BRK_ETIMEDOUT: return "timed out";
    case BRK_EINTERNAL: return "internal error";
    case BRK_EMETHOD: return "method not allowed";
    case BRK_ELIMIT: return "limit exceeded";
    case BRK_EMEDIA: return "unsupported media type";
    }
    return "unknown error";
}
