/* Request parsing: llhttp callbacks that collect a request into the connection's pipeline,
 * enforce the URL, header and body limits as bytes arrive, pause parsing when the pipeline is
 * full or the connection is ending, and hand complete requests to dispatch. */
#include <string.h>

#include "engram/error.h"
#include "engram/util.h"
#include "net_int.h"

/* ---- parser callbacks -------------------------------------------------------------------- */

static int limit_error(eg_conn_t *c, int err)
{
    c->parse_error = err;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    eg_conn_t *c = p->data;
    eg_req_t *req = eg__conn_enqueue_new(c);

    c->cur = req;
    c->in_message = 1;
    c->header_bytes = 0;
    c->body_max = c->srv->cfg->max_body_bytes;
    c->nhdrs = 0;
    c->hval_open = 0;
    eg_buf_clear(&c->url);
    eg_buf_clear(&c->hname);
    eg_buf_clear(&c->hval);
    eg__conn_timer_start(c, c->srv->cfg->read_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    eg_conn_t *c = p->data;

    eg_buf_append(&c->url, at, len);
    c->header_bytes += len;
    if (c->url.len > c->srv->cfg->max_url_bytes)
        return limit_error(c, EG_EURITOOLONG);
    return 0;
}

static void push_header(eg_conn_t *c)
{
    eg_req_t *req = c->cur;

    if (c->nhdrs == c->caphdrs) {
        c->caphdrs = c->caphdrs ? c->caphdrs * 2 : 16;
        c->hdrs = eg_xrealloc(c->hdrs, c->caphdrs * sizeof(*c->hdrs));
    }
    c->hdrs[c->nhdrs].name =
        eg_arena_strndup(&req->arena, c->hname.data ? c->hname.data : "", c->hname.len);
    c->hdrs[c->nhdrs].value =
        eg_arena_strndup(&req->arena, c->hval.data ? c->hval.data : "", c->hval.len);
    c->nhdrs++;
    eg_buf_clear(&c->hname);
    eg_buf_clear(&c->hval);
    c->hval_open = 0;
}

static int check_header_limit(eg_conn_t *c, size_t len)
{
    c->header_bytes += len;
    if (c->header_bytes > c->srv->cfg->max_header_bytes)
        return limit_error(c, EG_EHDRTOOBIG);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    eg_conn_t *c = p->data;

    if (c->hval_open)
        push_header(c);
    eg_buf_append(&c->hname, at, len);
    return check_header_limit(c, len + 4); /* ": " and CRLF count too */
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    eg_conn_t *c = p->data;

    c->hval_open = 1;
    eg_buf_append(&c->hval, at, len);
    return check_header_limit(c, len);
}

static int on_headers_complete(llhttp_t *p)
{
    eg_conn_t *c = p->data;
    eg_req_t *req = c->cur;
    const eg_config_t *cfg = c->srv->cfg;

    if (c->hval_open || c->hname.len)
        push_header(c);
    req->headers = eg_arena_alloc(&req->arena, (c->nhdrs ? c->nhdrs : 1) * sizeof(eg_kv_t));
    if (c->nhdrs)
        memcpy(req->headers, c->hdrs, c->nhdrs * sizeof(eg_kv_t));
    req->nheaders = c->nhdrs;
    req->method = llhttp_method_name((llhttp_method_t)p->method);
    req->target = eg_arena_strndup(&req->arena, c->url.data ? c->url.data : "", c->url.len);
    req->http10 = p->http_major == 1 && p->http_minor == 0;
    req->keep_alive = llhttp_should_keep_alive(p) ? 1 : 0;
    req->upgrade = p->upgrade ? 1 : 0;

    /* A route may take larger (or only smaller) bodies than the server's limit; a request
     * without a body (most of them) needs no route lookup for that. */
    if ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0))
        c->body_max =
            eg_router_body_limit(c->srv->router, req->method, req->target, cfg->max_body_bytes);
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->body_max)
        return limit_error(c, EG_ETOOBIG);

    const char *expect = eg_req_header(req, "Expect");
    if (expect && eg_strcaseeq(expect, "100-continue") && !req->http10) {
        req->expect_100 = 1;
        /* Only the head of the pipeline may get an interim response, or it would overtake
         * earlier responses; clients send the body anyway after a short wait. */
        if (req == c->head) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            eg_buf_append(&c->out, cont, sizeof(cont) - 1);
            eg__conn_mark_dirty(c);
        }
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    eg_conn_t *c = p->data;
    eg_req_t *req = c->cur;

    if (req->body.len + len > c->body_max)
        return limit_error(c, EG_ETOOBIG);
    eg_buf_append(&req->body, at, len);
    return 0;
}

/* A chunk announces its size before its data: refuse an oversized body right away instead of
 * waiting for bytes that would only be discarded. */
static int on_chunk_header(llhttp_t *p)
{
    eg_conn_t *c = p->data;
    eg_req_t *req = c->cur;

    if (p->content_length > c->body_max - EG_MIN(req->body.len, c->body_max))
        return limit_error(c, EG_ETOOBIG);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    eg_conn_t *c = p->data;
    eg_req_t *req = c->cur;

    c->cur = NULL;
    c->in_message = 0;
    uv_timer_stop(&c->timer);
    if (c->srv->draining)
        req->keep_alive = 0;
    if (!req->keep_alive)
        c->close_after_flush = 1;
    eg__dispatch(req);
    if (c->closing)
        return HPE_PAUSED;
    eg__conn_arm_timer(c);
    /* Stop parsing after a last request, or when too many are in flight. */
    if (c->close_after_flush || c->nqueued >= (size_t)c->srv->cfg->max_pipeline)
        return HPE_PAUSED;
    return 0;
}

/* ---- input ------------------------------------------------------------------------------- */

static void conn_parse_failed(eg_conn_t *c, llhttp_errno_t err)
{
    eg_req_t *req = c->cur;
    int code = c->parse_error ? c->parse_error : EG_EBADHTTP;

    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    c->close_after_flush = 1;
    c->in_message = 0;
    if (req == NULL)
        req = eg__conn_enqueue_new(c);
    c->cur = NULL;
    eg__req_prepare_fatal(c, req);
    if (code == EG_EBADHTTP)
        eg_res_error(req, code, "malformed HTTP request: %s", llhttp_get_error_reason(&c->parser));
    else if (code == EG_ETOOBIG)
        eg_res_error(req, code, "request body exceeds the limit of %zu bytes", c->body_max);
    else if (code == EG_EHDRTOOBIG)
        eg_res_error(req, code, "request header block exceeds the limit of %zu bytes",
                     c->srv->cfg->max_header_bytes);
    else if (code == EG_EURITOOLONG)
        eg_res_error(req, code, "request URL exceeds the limit of %zu bytes",
                     c->srv->cfg->max_url_bytes);
    else
        eg_res_error(req, code, "%s", eg_strerror(code));
    (void)err;
}

void eg__conn_execute(eg_conn_t *c, const char *data, size_t len)
{
    llhttp_errno_t err;

    if (len == 0)
        return;
    err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK || c->closing)
        return;
    if (err == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        size_t used = pos ? (size_t)(pos - data) : len;
        if (used < len)
            eg_buf_append(&c->in, data + used, len - used);
        c->parse_paused = 1;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        return;
    }
    if (err == HPE_PAUSED_UPGRADE) {
        /* Nothing after an upgrade request is HTTP. Its handler has either accepted it already
         * (feed the rest to the WebSocket), answered it plainly (close after the answer), or not
         * decided yet (keep the rest until it does). */
        const char *pos = llhttp_get_error_pos(&c->parser);
        size_t used = pos ? (size_t)(pos - data) : len;
        if (c->ws) {
            if (used < len)
                eg__ws_on_data(c->ws, data + used, len - used);
            eg__conn_start_reading(c);
            return;
        }
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
        if (c->nqueued == 0) {
            c->close_after_flush = 1;
            return;
        }
        c->upgrade_wait = 1;
        if (used < len)
            eg_buf_append(&c->in, data + used, len - used);
        return;
    }
    conn_parse_failed(c, err);
}

void eg__http_settings_init(llhttp_settings_t *st)
{
    llhttp_settings_init(st);
    st->on_message_begin = on_message_begin;
    st->on_url = on_url;
    st->on_header_field = on_header_field;
    st->on_header_value = on_header_value;
    st->on_headers_complete = on_headers_complete;
    st->on_body = on_body;
    st->on_chunk_header = on_chunk_header;
    st->on_message_complete = on_message_complete;
}
