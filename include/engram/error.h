/* engram error codes: one X-macro table gives the enum, names, messages and HTTP statuses. */
#ifndef ENGRAM_ERROR_H
#define ENGRAM_ERROR_H

/* XX(name, http_status, message) — codes are negative, 0 is success. */
#define EG_ERRNO_MAP(XX)                                                                           \
    XX(EINVAL, 400, "invalid request")                                                             \
    XX(EBADJSON, 400, "malformed JSON")                                                            \
    XX(EBADHTTP, 400, "malformed HTTP request")                                                    \
    XX(EAUTH, 401, "missing or invalid API key")                                                   \
    XX(EFORBIDDEN, 403, "forbidden")                                                               \
    XX(ENOTFOUND, 404, "not found")                                                                \
    XX(EMETHOD, 405, "method not allowed")                                                         \
    XX(ETIMEDOUT, 408, "request timeout")                                                          \
    XX(ECONFLICT, 409, "conflict")                                                                 \
    XX(ETOOBIG, 413, "request body too large")                                                     \
    XX(EURITOOLONG, 414, "request URL too long")                                                   \
    XX(EUNSUPPORTED, 415, "unsupported media type")                                                \
    XX(EUNPROCESSABLE, 422, "unprocessable request")                                               \
    XX(ERATELIMIT, 429, "too many requests")                                                       \
    XX(EHDRTOOBIG, 431, "request header fields too large")                                         \
    XX(EINTERNAL, 500, "internal error")                                                           \
    XX(ENOTIMPL, 501, "not implemented")                                                           \
    XX(EUNAVAIL, 503, "storage unavailable")                                                       \
    XX(EBUSY, 503, "server busy")                                                                  \
    XX(EREDIS, 503, "storage error")                                                               \
    XX(ESTORETIMEOUT, 503, "storage timed out")

typedef enum {
    EG_OK = 0,
    EG__ERR_FIRST = -1000,
#define XX(name, status, msg) EG_##name,
    EG_ERRNO_MAP(XX)
#undef XX
        EG__ERR_LAST
} eg_errno_t;

/* Human-readable message for an error code ("unknown error" for anything else). */
const char *eg_strerror(int err);

/* Symbolic name of an error code, e.g. "ENOTFOUND". */
const char *eg_err_name(int err);

/* HTTP status an error code maps to (500 for unknown codes). */
int eg_err_http_status(int err);

/* Standard reason phrase for an HTTP status code ("Unknown" if not known). */
const char *eg_http_reason(int status);

#endif
