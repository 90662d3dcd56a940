/* The Fency face: mount, error shape, and the helpers every Fency route uses — page tokens, JSON
 * bodies and publishable-key authentication. The routes live
 * in one file per group (fency_int.h); the wire contract is ../shared/faces/fency.md. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>

#include "engram/error.h"
#include "engram/faces.h"
#include "engram/tenancy.h"
#include "engram/text.h"
#include "engram/util.h"
#include "fency_int.h"

static void render_error(eg_req_t *req, int status, int err, const char *message);

eg_face_t eg__fy_face = {
    .name = "fency",
    .prefix = "/fency",
    .render_error = render_error,
};

/* Every Fency error is {"error":{"message"}}; the SDK reads body.error.message. */
static void render_error(eg_req_t *req, int status, int err, const char *message)
{
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");

    if (err == EG_EUNAVAIL || err == EG_EBUSY || err == EG_ESTORETIMEOUT || err == EG_EREDIS)
        eg_res_header(req, "Retry-After", "30");
    cJSON_AddStringToObject(e, "message", message);
    eg_res_json(req, status, j);
}

void eg__fy_error(eg_req_t *req, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    render_error(req, status, 0, msg);
}

void eg__fy_fail(eg_req_t *req, int err, const char *what)
{
    switch (err) {
    case EG_ENOTFOUND:
        eg__fy_error(req, 404, "%s not found", what);
        return;
    case EG_EAUTH:
        eg__fy_error(req, 401, "unauthorized");
        return;
    case EG_EFORBIDDEN:
        eg__fy_error(req, 403, "%s is not accessible with this key", what);
        return;
    case EG_ECONFLICT:
        eg__fy_error(req, 409, "%s conflicts with its current state", what);
        return;
    default:
        render_error(req, eg_err_http_status(err), err,
                     eg_arena_printf(&req->arena, "%s: %s", what, eg_strerror(err)));
    }
}

int eg__fy_add_routes(eg_router_t *r, const eg__fy_route_t *routes, size_t n, unsigned flags)
{
    for (size_t i = 0; i < n; i++) {
        int rc =
            eg_router_add(r, &eg__fy_face, routes[i].method, routes[i].tmpl, routes[i].fn, flags);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- ids and times ------------------------------------------------------------------------ */

/* ---- bodies ------------------------------------------------------------------------------- */

cJSON *eg__fy_body(eg_req_t *req)
{
    cJSON *j;

    if (req->body.len == 0) {
        eg__fy_error(req, 400, "request body must be a JSON object");
        return NULL;
    }
    j = eg_req_json(req); /* answers 400 itself on malformed JSON */
    if (j == NULL)
        return NULL;
    if (!cJSON_IsObject(j)) {
        eg__fy_error(req, 400, "request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- page tokens: base64url (no padding) of a zpage cursor -------------------------------- */

static char *token_encode(eg_arena_t *a, const char *cursor)
{
    size_t n = strlen(cursor), olen = 0;
    char *out = eg_arena_alloc(a, 4 * ((n + 2) / 3) + 1);

    mbedtls_base64_encode((unsigned char *)out, 4 * ((n + 2) / 3) + 1, &olen,
                          (const unsigned char *)cursor, n);
    while (olen > 0 && out[olen - 1] == '=')
        olen--;
    out[olen] = '\0';
    for (char *s = out; *s; s++)
        *s = *s == '+' ? '-' : *s == '/' ? '_' : *s;
    return out;
}

static const char *token_decode(eg_arena_t *a, const char *token)
{
    size_t n = strlen(token), olen = 0;
    char *b64, *out;

    if (n == 0 || n > 4 * EG_ZPAGE_MEMBER_MAX / 3 + 4)
        return NULL;
    b64 = eg_arena_alloc(a, n + 4);
    for (size_t i = 0; i < n; i++) {
        char c = token[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return NULL;
        b64[i] = c;
    }
    while (n % 4)
        b64[n++] = '=';
    b64[n] = '\0';
    out = eg_arena_alloc(a, n);
    if (mbedtls_base64_decode((unsigned char *)out, n, &olen, (const unsigned char *)b64, n) != 0)
        return NULL;
    out[olen] = '\0';
    return eg_zpage_member_valid(out) ? out : NULL;
}

static bool parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
        *out = false;
    else
        return false;
    return true;
}

bool eg__fy_page_query(eg_req_t *req, eg_zpage_req_t *q)
{
    const char *next = eg_req_query(req, "nextPageToken");
    const char *prev = eg_req_query(req, "previousPageToken");
    const char *limit = eg_req_query(req, "limit"), *asc = eg_req_query(req, "asc");

    if (next && next[0] == '\0')
        next = NULL;
    if (prev && prev[0] == '\0')
        prev = NULL;
    if (next && prev) {
        eg__fy_error(req, 400,
                     "nextPageToken and previousPageToken are mutually exclusive: send one");
        return false;
    }
    q->cursor = NULL;
    q->backwards = prev != NULL;
    if (next || prev) {
        q->cursor = token_decode(&req->arena, next ? next : prev);
        if (q->cursor == NULL) {
            eg__fy_error(req, 400, "%s is not a valid page token",
                         next ? "nextPageToken" : "previousPageToken");
            return false;
        }
    }
    q->limit = EG_FY_LIMIT_DEF;
    if (limit) {
        char *end;
        long v = strtol(limit, &end, 10);
        if (limit[0] == '\0' || *end != '\0' || v < 1 || v > EG_FY_LIMIT_MAX) {
            eg__fy_error(req, 400, "limit must be an integer from 1 to %d", EG_FY_LIMIT_MAX);
            return false;
        }
        q->limit = (size_t)v;
    }
    q->asc = false;
    if (asc && !parse_bool(asc, &q->asc)) {
        eg__fy_error(req, 400, "asc must be true or false");
        return false;
    }
    return true;
}

cJSON *eg__fy_page_json(cJSON *items, const eg_zpage_t *page)
{
    cJSON *j = cJSON_CreateObject(), *p;
    eg_arena_t a;

    eg_arena_init(&a);
    cJSON_AddItemToObject(j, "items", items);
    p = cJSON_AddObjectToObject(j, "pagination");
    if (page != NULL && page->prev != NULL)
        cJSON_AddStringToObject(p, "previousPageToken", token_encode(&a, page->prev));
    else
        cJSON_AddNullToObject(p, "previousPageToken");
    if (page != NULL && page->next != NULL)
        cJSON_AddStringToObject(p, "nextPageToken", token_encode(&a, page->next));
    else
        cJSON_AddNullToObject(p, "nextPageToken");
    eg_arena_destroy(&a);
    return j;
}

/* ---- publishable-key authentication -------------------------------------------------------- */

typedef struct pk_auth_s {
    eg_req_t *req;
    eg__fy_auth_fn cb;
} pk_auth_t;

static void pk_done(pk_auth_t *pa, int err, const eg_auth_t *auth)
{
    eg_req_t *req = pa->req;

    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0);
        return;
    }
    if (err == EG_EAUTH || (err == 0 && auth->kind != EG_KEY_PUBLISHABLE)) {
        eg__fy_error(req, 401, "Invalid publishable key");
        return;
    }
    if (err != 0) {
        eg__fy_fail(req, err, "publishable key check");
        return;
    }
    pa->cb(req, auth);
}

static void on_pk_auth(void *udata, int err, const eg_auth_t *auth)
{
    pk_done(udata, err, auth);
}

void eg__fy_pk_auth(eg_req_t *req, eg__fy_auth_fn cb)
{
    const char *pk = eg_req_header(req, "X-Fency-Publishable-Key");
    pk_auth_t *pa;

    if (pk == NULL || strncmp(pk, "pk_", 3) != 0) {
        eg__fy_error(req, 401, "missing or invalid X-Fency-Publishable-Key header (pk_...)");
        return;
    }
    pa = eg_arena_alloc(&req->arena, sizeof(*pa));
    pa->req = req;
    pa->cb = cb;
    eg_auth_check(pk, on_pk_auth, pa);
}

/* ---- mount ------------------------------------------------------------------------------- */

int eg_face_fency_mount(eg_router_t *r, const eg_config_t *cfg)
{
    int (*const groups[])(eg_router_t *) = {
        eg__fy_library_mount, eg__fy_uploads_mount, eg__fy_pub_mount,
        eg__fy_tasks_mount,   eg__fy_events_mount,
    };

    snprintf(eg__fy_face.prefix, sizeof(eg__fy_face.prefix), "%s", cfg->mount[1]);
    for (size_t i = 0; i < EG_ARRAY_SIZE(groups); i++) {
        int rc = groups[i](r);
        if (rc != 0)
            return rc;
    }
    return 0;
}
