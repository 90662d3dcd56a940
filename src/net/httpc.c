/* Outbound HTTP/1.1 client.
 *
 * A call (one eg_httpc_request) walks QUEUED -> CONNECTING -> WAIT_HEADERS -> BODY, once per
 * redirect hop. Connections belong to a pool per origin (scheme, host, port): a call takes an
 * idle connection, or opens one if the origin is below its connection cap, or waits in the
 * origin's queue for the next connection to come free or close.
 *
 * Lifetimes (STYLE.md §6): a call owns one timer (deadlines, then the deferred done callback) and
 * is freed in its close callback; a connection owns a timer and a TCP handle (allocated apart,
 * since a failed connect needs a fresh handle for the next address) and is freed when both are
 * closed and no getaddrinfo is outstanding. The client counts calls and connections and is freed
 * with the last of them. Nothing is freed synchronously, so a user callback may cancel its call or
 * free the client while the parser that called it is still on the stack.
 *
 * done always runs from the call's timer, never from inside a parser callback or a public
 * function, so that what a done callback does (start calls, free the client) cannot pull state
 * out from under the code that finished the call. */
#include "httpc_int.h"

/* ---- client bookkeeping ----------------------------------------------------------------- */

void eg__hc_client_maybe_free(eg_httpc_t *c)
{
    eg_hc_origin_t *o, *next;

    if (!c->freeing || c->refs > 0)
        return;
    for (o = c->origins; o; o = next) {
        next = o->next;
        free(o->host);
        free(o);
    }
    eg_ssrf_free(c->ssrf);
    eg__tls_ctx_free(c->tls);
    free(c->user_agent);
    free(c);
}

eg_hc_origin_t *eg__hc_origin_get(eg_httpc_t *c, const eg_url_t *u)
{
    eg_hc_origin_t *o;

    for (o = c->origins; o; o = o->next) {
        if (o->tls == u->tls && o->port == u->port && strcmp(o->host, u->host) == 0)
            return o;
    }
    o = eg_xcalloc(1, sizeof(*o));
    o->tls = u->tls;
    o->port = u->port;
    o->host = eg_xstrdup(u->host);
    o->next = c->origins;
    c->origins = o;
    return o;
}

/* Origins come and go with tenants' URLs; keep only those with connections or waiters. */
void eg__hc_origin_maybe_free(eg_httpc_t *c, eg_hc_origin_t *o)
{
    eg_hc_origin_t **pp;

    if (o->nconns > 0 || o->wait_head || c->freeing)
        return;
    for (pp = &c->origins; *pp; pp = &(*pp)->next) {
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    }
    free(o->host);
    free(o);
}

/* ---- calls ------------------------------------------------------------------------------ */

static void on_call_closed(uv_handle_t *h)
{
    eg_httpc_call_t *call = h->data;
    eg_httpc_t *c = call->c;

    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    eg_buf_free(&call->body);
    eg_buf_free(&call->resp.body);
    eg_buf_free(&call->hname);
    eg_buf_free(&call->hval);
    free(call->resp.headers);
    eg_arena_destroy(&call->arena);
    free(call);
    c->refs--;
    eg__hc_client_maybe_free(c);
}

static void on_call_timer(uv_timer_t *t);

static void call_deliver(eg_httpc_call_t *call)
{
    call->resp.elapsed_ms = (uv_hrtime() - call->start_ns) / 1000000u;
    call->resp.url = call->url.href;
    if (call->err) {
        call->resp.error = call->errmsg[0] ? call->errmsg : eg_strerror(call->err);
        eg_buf_clear(&call->resp.body); /* partial at best */
    }
    call->done(call->udata, call->err, &call->resp);
    uv_close((uv_handle_t *)&call->timer, on_call_closed);
}

static void call_unqueue(eg_httpc_call_t *call)
{
    eg_hc_origin_t *o = call->waiting;
    eg_httpc_call_t **pp;

    if (!o)
        return;
    for (pp = &o->wait_head; *pp; pp = &(*pp)->wait_next) {
        if (*pp == call) {
            *pp = call->wait_next;
            break;
        }
    }
    o->wait_tail = NULL;
    for (eg_httpc_call_t *w = o->wait_head; w; w = w->wait_next)
        o->wait_tail = w;
    call->waiting = NULL;
    call->wait_next = NULL;
    eg__hc_origin_maybe_free(call->c, o);
}

/* Decide the call's outcome (first decision wins) and schedule done for the next loop turn. A
 * connection still attached is mid-exchange and cannot be reused, so it is closed. */
void eg__hc_call_finish(eg_httpc_call_t *call, int err, const char *fmt, ...)
{
    eg_hc_conn_t *conn = call->conn;

    if (call->finished)
        return;
    call->finished = 1;
    call->err = err;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(call->errmsg, sizeof(call->errmsg), fmt, ap);
        va_end(ap);
    }
    call_unqueue(call);
    if (conn) {
        call->conn = NULL;
        conn->call = NULL;
        eg__hc_conn_close(conn);
    }
    uv_timer_start(&call->timer, on_call_timer, 0, 0);
}

static void on_call_timer(uv_timer_t *t)
{
    eg_httpc_call_t *call = t->data;
    uint64_t now = uv_now(call->c->loop);

    if (call->finished) {
        call_deliver(call);
        return;
    }
    if (now >= call->total_deadline)
        eg__hc_call_finish(call, EG_EUPTIMEOUT, "total timeout");
    else if (call->phase == CALL_CONNECTING)
        eg__hc_call_finish(call, EG_EUPTIMEOUT, "connect timeout (%s)", call->url.host);
    else if (call->phase == CALL_WAIT_HEADERS)
        eg__hc_call_finish(call, EG_EUPTIMEOUT, "header timeout");
    else
        eg__hc_call_arm(call);
}

/* One timer per call: the earlier of the total deadline and the current phase's deadline. */
void eg__hc_call_arm(eg_httpc_call_t *call)
{
    uint64_t now = uv_now(call->c->loop), deadline = call->total_deadline;

    if (call->finished)
        return;
    if ((call->phase == CALL_CONNECTING || call->phase == CALL_WAIT_HEADERS) &&
        call->phase_deadline < deadline)
        deadline = call->phase_deadline;
    uv_timer_start(&call->timer, on_call_timer, deadline > now ? deadline - now : 0, 0);
}

void eg__hc_call_set_phase(eg_httpc_call_t *call, eg_call_phase_t phase)
{
    uint64_t now = uv_now(call->c->loop);

    call->phase = phase;
    if (phase == CALL_CONNECTING)
        call->phase_deadline = now + call->connect_timeout_ms;
    else if (phase == CALL_WAIT_HEADERS)
        call->phase_deadline = now + call->header_timeout_ms;
    eg__hc_call_arm(call);
}

/* Forget the response of a hop (redirect or retry). */
void eg__hc_call_reset_response(eg_httpc_call_t *call)
{
    call->resp.status = 0;
    call->resp.nheaders = 0;
    eg_buf_clear(&call->resp.body);
    eg_buf_clear(&call->hname);
    eg_buf_clear(&call->hval);
    call->header_bytes = 0;
    call->body_bytes = 0;
    call->location = NULL;
    call->complete = 0;
    call->redirect = 0;
    call->interim = 0;
    call->got_bytes = 0;
}

bool eg__hc_method_idempotent(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
           strcmp(m, "DELETE") == 0 || strcmp(m, "OPTIONS") == 0;
}

static bool header_is(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (eg_strcaseeq(name, names[i]))
            return true;
    }
    return false;
}

/* Follow the redirect the last response asked for: resolve, vet and dispatch again. */
void eg__hc_call_redirect(eg_httpc_call_t *call)
{
    static const char *const body_headers[] = {"Content-Type", "Content-Encoding",
                                               "Content-Language", "Content-Location"};
    static const char *const secret_headers[] = {"Authorization", "Cookie", "Proxy-Authorization"};
    int status = call->resp.status, rc;
    char *href = eg__hc_url_resolve(&call->url, call->location, &call->arena);
    eg_url_t next;
    bool same_origin;
    size_t i, j;

    rc = eg__hc_url_parse(href, &next, &call->arena);
    if (rc != 0) {
        eg__hc_call_finish(call, rc == EG_ESSRF ? EG_ESSRF : EG_EUPSTREAM, "bad redirect to %.200s",
                           href);
        return;
    }
    same_origin = next.tls == call->url.tls && next.port == call->url.port &&
                  strcmp(next.host, call->url.host) == 0;
    /* 303 means "see other, with GET"; the body went to the old URL. */
    if (status == 303 && strcmp(call->method, "HEAD") != 0) {
        call->method = "GET";
        eg_buf_free(&call->body);
    }
    for (i = j = 0; i < call->nheaders; i++) {
        const char *n = call->headers[i].name;
        if (call->body.len == 0 && header_is(n, body_headers, EG_ARRAY_SIZE(body_headers)))
            continue;
        /* Credentials were meant for the origin the caller named, not for whoever it sends us
         * to (as browsers and curl do). */
        if (!same_origin && header_is(n, secret_headers, EG_ARRAY_SIZE(secret_headers)))
            continue;
        call->headers[j++] = call->headers[i];
    }
    call->nheaders = j;
    call->url = next;
    call->resp.redirects++;
    eg__hc_call_reset_response(call);
    eg__hc_dispatch(call);
}

/* ---- public API ------------------------------------------------------------------------- */

eg_httpc_t *eg_httpc_new(uv_loop_t *loop, const eg_httpc_opts_t *opts)
{
    eg_httpc_t *c = eg_xcalloc(1, sizeof(*c));
    char err[256] = "";

    if (opts) {
        c->opts = *opts;
    } else {
        eg_httpc_opts_default(&c->opts);
        if (eg_httpc_opts_from_env(&c->opts, NULL, err, sizeof(err)) != 0)
            goto fail;
    }
    c->loop = loop;
    c->user_agent = eg_xstrdup(c->opts.user_agent ? c->opts.user_agent : "engram/" ENGRAM_VERSION);
    c->opts.user_agent = NULL;
    if (eg_ssrf_new(c->opts.allow, &c->ssrf, err, sizeof(err)) != 0)
        goto fail;
    c->opts.allow = NULL;
    if (eg__tls_ctx_client(&c->tls, c->opts.system_ca_file, c->opts.extra_ca_file, err,
                           sizeof(err)) != 0)
        goto fail;
    c->opts.system_ca_file = c->opts.extra_ca_file = NULL;
    if (c->opts.max_conns_per_origin < 1)
        c->opts.max_conns_per_origin = 1;
    llhttp_settings_init(&c->settings);
    eg__hc_parser_settings(&c->settings);
    return c;

fail:
    eg_log_error("outbound HTTP client: %s", err[0] ? err : "invalid options");
    eg_ssrf_free(c->ssrf);
    free(c->user_agent);
    free(c);
    return NULL;
}

static bool token_valid(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    }
    return true;
}

/* Header values reach the wire verbatim: a CR or LF would let a caller-supplied value (a
 * tenant's webhook header, say) inject headers or a second request. */
static bool value_valid(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 && *s != '\t')
            return false;
        if (*s == 0x7f)
            return false;
    }
    return true;
}

int eg_httpc_request(eg_httpc_t *c, const eg_httpc_req_t *req, eg_httpc_done_fn done, void *udata,
                     eg_httpc_call_t **out)
{
    static const char *const reserved[] = {"Host", "Content-Length", "Transfer-Encoding",
                                           "Connection"};
    eg_httpc_call_t *call = NULL;
    const char *method = req->method ? req->method : "GET";
    int rc;

    if (out)
        *out = NULL;
    if (c->freeing)
        return EG_ECANCELED;
    if (!req->url || !done || !token_valid(method))
        return EG_EINVAL;
    for (size_t i = 0; i < req->nheaders; i++) {
        const eg_kv_t *h = &req->headers[i];
        if (!h->name || !h->value || !token_valid(h->name) || !value_valid(h->value) ||
            header_is(h->name, reserved, EG_ARRAY_SIZE(reserved)))
            return EG_EINVAL;
    }
    call = eg_xcalloc(1, sizeof(*call));
    eg_arena_init(&call->arena);
    if ((rc = eg__hc_url_parse(req->url, &call->url, &call->arena)) != 0)
        goto fail;
    call->c = c;
    call->done = done;
    call->udata = udata;
    call->on_headers = req->on_headers;
    call->on_data = req->on_data;
    call->method = eg_arena_strdup(&call->arena, method);
    call->headers = eg_arena_alloc(&call->arena, (req->nheaders + 1) * sizeof(*call->headers));
    for (size_t i = 0; i < req->nheaders; i++) {
        call->headers[i].name = eg_arena_strdup(&call->arena, req->headers[i].name);
        call->headers[i].value = eg_arena_strdup(&call->arena, req->headers[i].value);
    }
    call->nheaders = req->nheaders;
    if (req->body_len)
        eg_buf_append(&call->body, req->body, req->body_len);
    call->connect_timeout_ms =
        req->connect_timeout_ms ? req->connect_timeout_ms : c->opts.connect_timeout_ms;
    call->header_timeout_ms =
        req->header_timeout_ms ? req->header_timeout_ms : c->opts.header_timeout_ms;
    call->max_response_bytes =
        req->max_response_bytes ? req->max_response_bytes : c->opts.max_response_bytes;
    call->max_redirects = req->max_redirects ? req->max_redirects : c->opts.max_redirects;
    if (call->max_redirects < 0)
        call->max_redirects = -1;
    call->start_ns = uv_hrtime();
    /* uv_now() lags behind real time until the loop's next turn; start from fresh time. */
    uv_update_time(c->loop);
    call->total_deadline = uv_now(c->loop) + (req->total_timeout_ms ? req->total_timeout_ms
                                                                    : c->opts.total_timeout_ms);

    uv_timer_init(c->loop, &call->timer);
    call->timer.data = call;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    c->refs++;
    if (out)
        *out = call;
    eg__hc_dispatch(call);
    return 0;

fail:
    eg_arena_destroy(&call->arena);
    free(call);
    return rc;
}

void eg_httpc_cancel(eg_httpc_call_t *call)
{
    if (call)
        eg__hc_call_finish(call, EG_ECANCELED, "canceled");
}

void eg_httpc_free(eg_httpc_t *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = 1;
    for (eg_httpc_call_t *call = c->calls; call; call = call->next)
        eg__hc_call_finish(call, EG_ECANCELED, "client closed");
    for (eg_hc_conn_t *conn = c->conns; conn; conn = conn->next)
        eg__hc_conn_close(conn);
    eg__hc_client_maybe_free(c);
}

size_t eg_httpc_open_connections(const eg_httpc_t *c)
{
    return c->nopen;
}

const char *eg_httpc_resp_header(const eg_httpc_resp_t *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (eg_strcaseeq(resp->headers[i].name, name))
            return resp->headers[i].value;
    }
    return NULL;
}
