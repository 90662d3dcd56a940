/* libFuzzer target: arbitrary bytes as the input of one HTTP/1.1 server connection.
 *
 * The server's own request path (src/net/server.c) lives in static libuv callbacks bound to a
 * TCP handle, so it cannot be driven without a socket. This harness mirrors it instead: the same
 * llhttp callbacks with the same limits (URL, header block, Content-Length and body against
 * eg_config_t), pipelining with pause/resume, and for each complete request the pure part of
 * eg__dispatch: absolute-form targets, path/query/fragment split, face lookup, route matching
 * on engram's real routing table (with the HEAD fallback), query parsing and the API-key
 * extraction; then the WebSocket handshake check and the SSE Last-Event-ID parse. When llhttp
 * stops at an upgrade that passes the handshake check, the rest of the input goes to a WebSocket
 * frame parser, as the connection would after its 101.
 *
 * The first input byte picks tiny limits (to reach every limit error) or the defaults, and how
 * the rest is split into llhttp_execute calls. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "engram/arena.h"
#include "engram/config.h"
#include "engram/error.h"
#include "engram/faces.h"
#include "engram/http.h"
#include "engram/sse.h"
#include "engram/tenancy.h"
#include "engram/util.h"
#include "engram/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

typedef struct conn_s {
    const eg_config_t *cfg;
    eg_arena_t arena; /* per request, as req->arena */
    eg_buf_t url, hname, hval, body;
    eg_kv_t *hdrs;
    size_t nhdrs, caphdrs;
    size_t header_bytes;
    size_t nrequests;
    int parse_error;
    bool hval_open;
    bool in_message;
    bool ws_ok; /* the last request passed the WebSocket handshake check */
} conn_t;

static eg_router_t *router;
static eg_config_t cfg_default, cfg_small;

static int limit_error(conn_t *c, int err)
{
    c->parse_error = err;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    conn_t *c = p->data;
    eg_arena_reset(&c->arena);
    c->in_message = true;
    c->header_bytes = 0;
    c->nhdrs = 0;
    c->hval_open = false;
    c->ws_ok = false;
    eg_buf_clear(&c->url);
    eg_buf_clear(&c->hname);
    eg_buf_clear(&c->hval);
    eg_buf_clear(&c->body);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    eg_buf_append(&c->url, at, len);
    c->header_bytes += len;
    if (c->url.len > c->cfg->max_url_bytes)
        return limit_error(c, EG_EURITOOLONG);
    return 0;
}

static void push_header(conn_t *c)
{
    if (c->nhdrs == c->caphdrs) {
        c->caphdrs = c->caphdrs ? c->caphdrs * 2 : 16;
        c->hdrs = eg_xrealloc(c->hdrs, c->caphdrs * sizeof(*c->hdrs));
    }
    c->hdrs[c->nhdrs].name =
        eg_arena_strndup(&c->arena, c->hname.data ? c->hname.data : "", c->hname.len);
    c->hdrs[c->nhdrs].value =
        eg_arena_strndup(&c->arena, c->hval.data ? c->hval.data : "", c->hval.len);
    c->nhdrs++;
    eg_buf_clear(&c->hname);
    eg_buf_clear(&c->hval);
    c->hval_open = false;
}

static int check_header_limit(conn_t *c, size_t len)
{
    c->header_bytes += len;
    if (c->header_bytes > c->cfg->max_header_bytes)
        return limit_error(c, EG_EHDRTOOBIG);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->hval_open)
        push_header(c);
    eg_buf_append(&c->hname, at, len);
    return check_header_limit(c, len + 4);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    c->hval_open = true;
    eg_buf_append(&c->hval, at, len);
    return check_header_limit(c, len);
}

static const char *header(void *u, const char *name)
{
    conn_t *c = u;
    for (size_t i = 0; i < c->nhdrs; i++)
        if (eg_strcaseeq(c->hdrs[i].name, name))
            return c->hdrs[i].value;
    return NULL;
}

static int on_headers_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    if (c->hval_open || c->hname.len)
        push_header(c);
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->cfg->max_body_bytes)
        return limit_error(c, EG_ETOOBIG);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->body.len + len > c->cfg->max_body_bytes)
        return limit_error(c, EG_ETOOBIG);
    eg_buf_append(&c->body, at, len);
    return 0;
}

/* The pure part of eg__dispatch, then the upgrade and SSE helpers. */
static void dispatch(conn_t *c, llhttp_t *p)
{
    const char *method = llhttp_method_name((llhttp_method_t)p->method);
    const char *target = eg_arena_strndup(&c->arena, c->url.data ? c->url.data : "", c->url.len);
    const eg_route_t *route;
    eg_kv_t *params = NULL, *qs = NULL;
    size_t nparams = 0, nqs = 0;
    char allow[256], id[EG_SSE_MAX_ID + 1];
    bool bad_path = false;
    char *path, *q;

    if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
        const char *slash = strchr(strstr(target, "//") + 2, '/');
        target = slash ? slash : "/";
    }
    if (target[0] != '/')
        return;
    path = eg_arena_strdup(&c->arena, target);
    const char *query = NULL;
    if ((q = strchr(path, '?')) != NULL) {
        *q = '\0';
        query = q + 1;
    }
    if ((q = strchr(path, '#')) != NULL)
        *q = '\0';
    CHECK(eg_router_face_for(router, path) != NULL);

    route = eg_router_match(router, method, path, &c->arena, &params, &nparams, allow,
                            sizeof(allow), &bad_path);
    if (route == NULL && strcmp(method, "HEAD") == 0)
        route = eg_router_match(router, "GET", path, &c->arena, &params, &nparams, allow,
                                sizeof(allow), &bad_path);
    if (route) {
        CHECK(!bad_path);
        for (size_t i = 0; i < nparams; i++)
            CHECK(params[i].name && params[i].value);
    } else {
        CHECK(strlen(allow) < sizeof(allow));
    }
    if (eg_query_parse(&c->arena, query, &qs, &nqs) == 0) {
        for (size_t i = 0; i < nqs; i++)
            CHECK(qs[i].name && qs[i].value);
    }
    const char *token = eg_auth_token_from_header(header(c, "Authorization"));
    if (token)
        CHECK(token[0] != '\0');

    eg_ws_hs_error_t err = {0, NULL};
    if (eg_ws_handshake_check(header, c, &err) == 0) {
        eg_buf_t b = EG_BUF_INIT;
        c->ws_ok = true;
        CHECK(eg_ws_handshake_response(&b, header(c, "Sec-WebSocket-Key"), NULL) == 0);
        CHECK(strstr(b.data, "\r\n\r\n") == b.data + b.len - 4);
        eg_buf_free(&b);
    } else {
        CHECK((err.status == 400 || err.status == 426) && err.message);
    }
    if (eg_sse_last_event_id(header(c, "Last-Event-ID"), id, sizeof(id)) == 0)
        CHECK(strpbrk(id, "\r\n") == NULL);
}

static int on_message_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    c->in_message = false;
    dispatch(c, p);
    c->nrequests++;
    /* The server pauses after a request that closes the connection, and whenever its pipeline
     * is full (here: every third request, resumed at once as a drained pipeline would be). */
    if (!llhttp_should_keep_alive(p))
        return HPE_PAUSED;
    if (c->nrequests % 3 == 0)
        return HPE_PAUSED;
    return 0;
}

static void init_once(void)
{
    if (router)
        return;
    eg_config_defaults(&cfg_default);
    cfg_small = cfg_default;
    cfg_small.max_url_bytes = 64;
    cfg_small.max_header_bytes = 256;
    cfg_small.max_body_bytes = 100;
    router = eg_router_new();
    CHECK(eg_faces_mount_all(router, &cfg_default) == 0);
}

/* What the connection does with bytes after a 101: a WebSocket parser takes over. */
static void after_upgrade(const char *rest, size_t n)
{
    eg_ws_limits_t lim = {4096, 16384};
    eg_ws_parser_t ws;

    eg_ws_parser_init(&ws, &lim, NULL, NULL);
    (void)eg_ws_parser_feed(&ws, rest, n);
    eg_ws_parser_free(&ws);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llhttp_settings_t settings;
    llhttp_t parser;
    conn_t c;

    init_once();
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const char *in = (const char *)data + 1;
    size--;

    memset(&c, 0, sizeof(c));
    c.cfg = (sel & 1) ? &cfg_small : &cfg_default;
    eg_arena_init(&c.arena);
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    parser.data = &c;

    size_t chunk = (sel >> 1) == 0 ? size : (size_t)(sel >> 1);
    size_t off = 0;
    bool done = false;
    while (off < size && !done) {
        size_t n = EG_MIN(chunk, size - off);
        const char *at = in + off;
        llhttp_errno_t err = llhttp_execute(&parser, at, n);
        off += n;
        switch (err) {
        case HPE_OK:
            break;
        case HPE_PAUSED: {
            /* Resume where it stopped, as conn_maybe_resume does with the kept remainder;
             * after a last request the server reads no further. */
            const char *pos = llhttp_get_error_pos(&parser);
            CHECK(pos >= at && pos <= at + n);
            if (!llhttp_should_keep_alive(&parser)) {
                done = true;
                break;
            }
            llhttp_resume(&parser);
            off -= (size_t)(at + n - pos);
            break;
        }
        case HPE_PAUSED_UPGRADE: {
            const char *pos = llhttp_get_error_pos(&parser);
            CHECK(pos >= at && pos <= at + n);
            if (c.ws_ok)
                after_upgrade(pos, (size_t)(in + size - pos));
            done = true;
            break;
        }
        default:
            /* A parse error or one of our limits: the server answers 400/413/414/431. */
            CHECK(err != HPE_USER || c.parse_error == EG_EURITOOLONG ||
                  c.parse_error == EG_EHDRTOOBIG || c.parse_error == EG_ETOOBIG);
            /* The server prints llhttp's reason in its 400 when no limit of ours failed. */
            if (c.parse_error == 0)
                CHECK(llhttp_get_error_reason(&parser) != NULL);
            done = true;
            break;
        }
    }
    eg_arena_destroy(&c.arena);
    eg_buf_free(&c.url);
    eg_buf_free(&c.hname);
    eg_buf_free(&c.hval);
    eg_buf_free(&c.body);
    free(c.hdrs);
    return 0;
}
