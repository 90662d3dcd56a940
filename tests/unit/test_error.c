/* Error table: every code maps to its name, message, API code and HTTP status. */
#include <criterion/criterion.h>
#include <string.h>

#include "engram/error.h"

typedef struct {
    int err;
    const char *name;
    int status;
    const char *code;
    const char *msg;
} expect_t;

static const expect_t table[] = {
#define XX(name, status, code, msg) {EG_##name, #name, status, code, msg},
    EG_ERRNO_MAP(XX)
#undef XX
};

Test(error, table_roundtrip)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        cr_assert_lt(table[i].err, 0, "%s must be negative", table[i].name);
        cr_assert_str_eq(eg_err_name(table[i].err), table[i].name);
        cr_assert_str_eq(eg_strerror(table[i].err), table[i].msg);
        cr_assert_str_eq(eg_err_code(table[i].err), table[i].code);
        cr_assert_eq(eg_err_http_status(table[i].err), table[i].status, "%s", table[i].name);
        for (size_t j = i + 1; j < sizeof(table) / sizeof(table[0]); j++)
            cr_assert_neq(table[i].err, table[j].err);
    }
}

Test(error, known_values)
{
    cr_assert_str_eq(eg_err_name(EG_ENOTFOUND), "ENOTFOUND");
    cr_assert_str_eq(eg_err_code(EG_ENOTFOUND), "not_found");
    cr_assert_str_eq(eg_strerror(EG_ENOTFOUND), "not found");
    cr_assert_eq(eg_err_http_status(EG_ENOTFOUND), 404);
    cr_assert_eq(eg_err_http_status(EG_EINVAL), 400);
    cr_assert_eq(eg_err_http_status(EG_EAUTH), 401);
    cr_assert_eq(eg_err_http_status(EG_ETOOBIG), 413);
    cr_assert_eq(eg_err_http_status(EG_EHDRTOOBIG), 431);
    cr_assert_eq(eg_err_http_status(EG_ERATELIMIT), 429);
    cr_assert_eq(eg_err_http_status(EG_EUNAVAIL), 503);
    cr_assert_str_eq(eg_err_code(EG_ESTORETIMEOUT), "storage_timeout");
    cr_assert_str_eq(eg_err_code(EG_EINTERNAL), "internal_error");
}

Test(error, unknown_codes)
{
    const int unknown[] = {-1, 1, 12345, -123456, EG__ERR_FIRST, EG__ERR_LAST, EG__ERR_LAST + 1};

    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        cr_assert_str_eq(eg_strerror(unknown[i]), "unknown error", "%d", unknown[i]);
        cr_assert_str_eq(eg_err_code(unknown[i]), "internal_error");
        cr_assert_eq(eg_err_http_status(unknown[i]), 500);
        cr_assert_str_eq(eg_err_name(unknown[i]), "EUNKNOWN");
    }
}

Test(error, success_code)
{
    cr_assert_str_eq(eg_strerror(EG_OK), "success");
    cr_assert_str_eq(eg_err_name(EG_OK), "OK");
}

Test(error, http_reasons)
{
    static const struct {
        int status;
        const char *reason;
    } cases[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {206, "Partial Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {413, "Payload Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Entity"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_str_eq(eg_http_reason(cases[i].status), cases[i].reason);
    /* Every status from 400 to 431 that is assigned has a phrase. */
    for (int s = 400; s <= 431; s++) {
        if (s == 419 || s == 420 || s == 427 || s == 430)
            continue;
        cr_assert_str_neq(eg_http_reason(s), "Unknown", "%d", s);
    }
    for (int s = 500; s <= 504; s++)
        cr_assert_str_neq(eg_http_reason(s), "Unknown", "%d", s);
    cr_assert_str_eq(eg_http_reason(0), "Unknown");
    cr_assert_str_eq(eg_http_reason(299), "Unknown");
    cr_assert_str_eq(eg_http_reason(999), "Unknown");
    cr_assert_str_eq(eg_http_reason(-1), "Unknown");
}

Test(error, every_error_status_has_reason)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        cr_assert_str_neq(eg_http_reason(table[i].status), "Unknown");
}
