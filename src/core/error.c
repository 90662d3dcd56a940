/* Error table lookups, all generated from EG_ERRNO_MAP so the enum, names, messages, API codes
 * and HTTP statuses cannot drift apart. */
#include "engram/error.h"

#include <stddef.h>

typedef struct {
    const char *name;
    const char *code;
    const char *msg;
    int status;
} eg_err_entry_t;

/* Indexed by err - EG__ERR_FIRST - 1, which is the enum order of the X-macro. */
static const eg_err_entry_t eg_err_table[] = {
#define XX(name, status, code, msg) {#name, code, msg, status},
    EG_ERRNO_MAP(XX)
#undef XX
};

static const eg_err_entry_t *eg_err_lookup(int err)
{
    if (err <= EG__ERR_FIRST || err >= EG__ERR_LAST)
        return NULL;
    return &eg_err_table[err - EG__ERR_FIRST - 1];
}

const char *eg_strerror(int err)
{
    const eg_err_entry_t *e;

    if (err == EG_OK)
        return "success";
    e = eg_err_lookup(err);
    return e != NULL ? e->msg : "unknown error";
}

const char *eg_err_name(int err)
{
    const eg_err_entry_t *e;

    if (err == EG_OK)
        return "OK";
    e = eg_err_lookup(err);
    return e != NULL ? e->name : "EUNKNOWN";
}

const char *eg_err_code(int err)
{
    const eg_err_entry_t *e = eg_err_lookup(err);

    return e != NULL ? e->code : "internal_error";
}

int eg_err_http_status(int err)
{
    const eg_err_entry_t *e;

    if (err == EG_OK)
        return 200;
    e = eg_err_lookup(err);
    return e != NULL ? e->status : 500;
}

/* Reason phrases (RFC 9110 and friends); a linear scan is fine for ~50 entries. */
static const struct {
    int status;
    const char *reason;
} eg_http_reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Payload Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {418, "I'm a teapot"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Entity"},
    {423, "Locked"},
    {424, "Failed Dependency"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *eg_http_reason(int status)
{
    for (size_t i = 0; i < sizeof(eg_http_reasons) / sizeof(eg_http_reasons[0]); i++) {
        if (eg_http_reasons[i].status == status)
            return eg_http_reasons[i].reason;
    }
    return "Unknown";
}
