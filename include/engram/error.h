/* engram error codes: one X-macro table gives the enum, names, messages and HTTP statuses. */
#ifndef ENGRAM_ERROR_H
#define ENGRAM_ERROR_H

/* XX(name, http_status, api_code, message) — codes are negative, 0 is success; api_code is the
 * stable snake_case code engram's own error shape carries. */
#define EG_ERRNO_MAP(XX)                                                                           \
    XX(EINVAL, 400, "invalid_request", "invalid request")                                          \
    XX(EBADJSON, 400, "invalid_json", "malformed JSON")                                            \
    XX(EBADHTTP, 400, "bad_request", "malformed HTTP request")                                     \
    XX(EAUTH, 401, "unauthorized", "missing or invalid API key")                                   \
    XX(EFORBIDDEN, 403, "forbidden", "forbidden")                                                  \
    XX(ENOTFOUND, 404, "not_found", "not found")                                                   \
    XX(EMETHOD, 405, "method_not_allowed", "method not allowed")                                   \
    XX(ETIMEDOUT, 408, "request_timeout", "request timeout")                                       \
    XX(ECONFLICT, 409, "conflict", "conflict")                                                     \
    XX(ETOOBIG, 413, "payload_too_large", "request body too large")                                \
    XX(EURITOOLONG, 414, "uri_too_long", "request URL too long")                                   \
    XX(EUNSUPPORTED, 415, "unsupported_media_type", "unsupported media type")                      \
    XX(EUNPROCESSABLE, 422, "unprocessable_entity", "unprocessable request")                       \
    XX(ERATELIMIT, 429, "rate_limited", "too many requests")                                       \
    XX(EHDRTOOBIG, 431, "headers_too_large", "request header fields too large")                    \
    XX(EINTERNAL, 500, "internal_error", "internal error")                                         \
    XX(ENOTIMPL, 501, "not_implemented", "not implemented")                                        \
    XX(EUNAVAIL, 503, "storage_unavailable", "storage unavailable")                                \
    XX(EBUSY, 503, "server_busy", "server busy")                                                   \
    XX(EREDIS, 503, "storage_error", "storage error")                                              \
    XX(ESTORETIMEOUT, 503, "storage_timeout", "storage timed out")                                \
    XX(ESSRF, 400, "destination_not_allowed", "destination not allowed")                           \
    XX(EDNS, 502, "upstream_dns_error", "upstream host name could not be resolved")                \
    XX(ECONNECT, 502, "upstream_connect_failed", "could not connect to upstream")                  \
    XX(ETLS, 502, "upstream_tls_error", "upstream TLS error")                                      \
    XX(EUPSTREAM, 502, "bad_gateway", "invalid upstream response")                                 \
    XX(ERESPTOOBIG, 502, "upstream_response_too_large", "upstream response too large")             \
    XX(EREDIRECTS, 502, "too_many_redirects", "too many upstream redirects")                       \
    XX(EUPTIMEOUT, 504, "upstream_timeout", "upstream timed out")                                  \
    XX(ECANCELED, 500, "canceled", "operation canceled")

typedef enum {
    EG_OK = 0,
    EG__ERR_FIRST = -1000,
#define XX(name, status, code, msg) EG_##name,
    EG_ERRNO_MAP(XX)
#undef XX
        EG__ERR_LAST
} eg_errno_t;

/* Human-readable message for an error code ("unknown error" for anything else). */
const char *eg_strerror(int err);

/* Symbolic name of an error code, e.g. "ENOTFOUND". */
const char *eg_err_name(int err);

/* Stable snake_case API code, e.g. "not_found" ("internal_error" for unknown codes). */
const char *eg_err_code(int err);

/* HTTP status an error code maps to (500 for unknown codes). */
int eg_err_http_status(int err);

/* Standard reason phrase for an HTTP status code ("Unknown" if not known). */
const char *eg_http_reason(int status);

#endif
