/* Outbound HTTP client: connections (resolve, connect, TLS handshake, idle pool, reads and
 * writes) and the response parser callbacks. */
#include "httpc_int.h"

static char read_buf[EG_HTTPC_READ_BUF]; /* one loop, one thread: reads are consumed at once */

static void conn_send(eg_hc_conn_t *conn);
static void origin_pump(eg_hc_origin_t *o);

/* ---- connections: teardown -------------------------------------------------------------- */

static void conn_maybe_free(eg_hc_conn_t *conn)
{
    eg_httpc_t *c = conn->c;

    if (conn->handles > 0 || conn->gai_pending)
        return;
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        c->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    if (conn->ai)
        uv_freeaddrinfo(conn->ai);
    eg__tls_free(&conn->tls);
    free(conn);
    c->refs--;
    eg__hc_client_maybe_free(c);
}

static void on_conn_timer_closed(uv_handle_t *h)
{
    eg_hc_conn_t *conn = h->data;
    conn->handles--;
    conn_maybe_free(conn);
}

static void on_tcp_closed(uv_handle_t *h)
{
    eg_hc_conn_t *conn = h->data;
    free(h);
    conn->handles--;
    conn_maybe_free(conn);
}

static void conn_close_tcp(eg_hc_conn_t *conn)
{
    if (conn->tcp) {
        uv_close((uv_handle_t *)conn->tcp, on_tcp_closed);
        conn->tcp = NULL;
    }
}

static void idle_remove(eg_hc_conn_t *conn)
{
    eg_hc_origin_t *o = conn->origin;
    eg_hc_conn_t **pp;

    for (pp = &o->idle; *pp; pp = &(*pp)->idle_next) {
        if (*pp == conn) {
            *pp = conn->idle_next;
            o->nidle--;
            break;
        }
    }
    conn->idle_next = NULL;
}

/* Close a connection; any call still on it must have been detached or finished first. Its slot
 * in the origin frees at once, so a queued call can open a new connection. */
void eg__hc_conn_close(eg_hc_conn_t *conn)
{
    eg_hc_origin_t *o = conn->origin;
    eg_httpc_t *c = conn->c;

    if (conn->state == CONN_CLOSING)
        return;
    if (conn->state == CONN_IDLE)
        idle_remove(conn);
    conn->state = CONN_CLOSING;
    if (conn->call) {
        eg_httpc_call_t *call = conn->call;
        conn->call = NULL;
        call->conn = NULL;
        eg__hc_call_finish(call, EG_EUPSTREAM, "connection closed");
    }
    c->nopen--;
    if (conn->gai_pending)
        uv_cancel((uv_req_t *)&conn->gai);
    conn_close_tcp(conn);
    uv_close((uv_handle_t *)&conn->timer, on_conn_timer_closed);
    o->nconns--;
    origin_pump(o);
    eg__hc_origin_maybe_free(c, o);
}

/* The connection broke before its call got a complete response. A reused keep-alive connection
 * the server closed while we were sending is normal; an idempotent request on one that produced
 * no response byte is sent again, once, on a fresh connection. */
static void conn_broken(eg_hc_conn_t *conn, int err, const char *what)
{
    eg_httpc_call_t *call = conn->call;

    if (call) {
        conn->call = NULL;
        call->conn = NULL;
        if (conn->reused && !call->got_bytes && !call->retried &&
            eg__hc_method_idempotent(call->method) && !call->finished) {
            call->retried = 1;
            eg__hc_call_reset_response(call);
            eg__hc_conn_close(conn);
            eg__hc_dispatch(call);
            return;
        }
        eg__hc_call_finish(call, err, "%s", what);
    }
    eg__hc_conn_close(conn);
}

/* ---- connections: I/O ------------------------------------------------------------------- */

typedef struct {
    uv_write_t req;
    eg_hc_conn_t *conn;
    uv_buf_t buf;
} eg_hc_write_t;

static void on_write(uv_write_t *w, int status)
{
    eg_hc_write_t *wr = EG_CONTAINER_OF(w, eg_hc_write_t, req);
    eg_hc_conn_t *conn = wr->conn;

    free(wr->buf.base);
    free(wr);
    if (status < 0 && status != UV_ECANCELED && conn->state != CONN_CLOSING) {
        char msg[96];
        snprintf(msg, sizeof(msg), "write to %s: %s", conn->addr, uv_strerror(status));
        conn_broken(conn, EG_EUPSTREAM, msg);
    }
}

/* Takes ownership of data (malloc'd). */
static void conn_write_owned(eg_hc_conn_t *conn, char *data, size_t len)
{
    eg_hc_write_t *wr;
    int rc;

    if (!conn->tcp || len == 0) {
        free(data);
        return;
    }
    wr = eg_xmalloc(sizeof(*wr));
    wr->conn = conn;
    wr->buf = uv_buf_init(data, (unsigned)len);
    rc = uv_write(&wr->req, (uv_stream_t *)conn->tcp, &wr->buf, 1, on_write);
    if (rc < 0) {
        free(data);
        free(wr);
        conn_broken(conn, EG_EUPSTREAM, "write failed");
    }
}

/* Send what mbedTLS produced (handshake records, encrypted request). */
static void conn_flush_tls(eg_hc_conn_t *conn)
{
    eg_buf_t *out = &conn->tls.out;

    if (out->len == 0)
        return;
    conn_write_owned(conn, out->data, out->len);
    out->data = NULL;
    out->len = out->cap = 0;
}

static void conn_idle(eg_hc_conn_t *conn);

/* A response finished on conn: hand the call its result, then reuse or close the connection. */
static void conn_message_done(eg_hc_conn_t *conn, bool reusable)
{
    eg_httpc_call_t *call = conn->call;
    bool keep = reusable && llhttp_should_keep_alive(&conn->parser);

    conn->call = NULL;
    call->conn = NULL;
    conn->reused = 1;
    if (keep)
        conn_idle(conn);
    else
        eg__hc_conn_close(conn);
    if (call->redirect)
        eg__hc_call_redirect(call);
    else
        eg__hc_call_finish(call, 0, NULL);
}

static void conn_parse(eg_hc_conn_t *conn, const char *data, size_t len)
{
    eg_httpc_call_t *call = conn->call;
    llhttp_errno_t rc;

    if (!call) {
        /* Nothing is asked of an idle connection; bytes on it are a protocol error. */
        eg__hc_conn_close(conn);
        return;
    }
    call->got_bytes = 1;
    rc = llhttp_execute(&conn->parser, data, len);
    if (conn->call != call || call->finished)
        return; /* a callback failed or canceled the call, which closed the connection */
    if (rc == HPE_PAUSED && call->complete) {
        const char *pos = llhttp_get_error_pos(&conn->parser);
        /* Bytes after the response were not asked for; the connection is out of step. */
        conn_message_done(conn, pos == data + len);
        return;
    }
    if (rc != HPE_OK) {
        char msg[160];
        snprintf(msg, sizeof(msg), "invalid response: %s", llhttp_get_error_reason(&conn->parser));
        eg__hc_call_finish(call, EG_EUPSTREAM, "%s", msg);
    }
}

static void conn_eof(eg_hc_conn_t *conn, const char *what)
{
    eg_httpc_call_t *call = conn->call;

    if (call && call->got_bytes && llhttp_get_errno(&conn->parser) == HPE_OK) {
        /* A body delimited by the end of the connection is complete now. */
        llhttp_errno_t rc = llhttp_finish(&conn->parser);
        if (conn->call != call || call->finished)
            return;
        if ((rc == HPE_OK || rc == HPE_PAUSED) && call->complete) {
            conn_message_done(conn, false);
            return;
        }
    }
    conn_broken(conn, EG_EUPSTREAM, what);
}

static void conn_handshake(eg_hc_conn_t *conn);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = read_buf;
    buf->len = sizeof(read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    eg_hc_conn_t *conn = s->data;

    if (conn->state == CONN_CLOSING || nread == 0)
        return;
    if (nread < 0) {
        char msg[96];
        if (nread == UV_EOF)
            snprintf(msg, sizeof(msg), "connection closed by %s", conn->addr);
        else
            snprintf(msg, sizeof(msg), "read from %s: %s", conn->addr, uv_strerror((int)nread));
        if (conn->state == CONN_HANDSHAKE) {
            eg_httpc_call_t *call = conn->call;
            if (call)
                eg__hc_call_finish(call, EG_ETLS, "TLS handshake: %s", msg);
            eg__hc_conn_close(conn);
            return;
        }
        conn_eof(conn, msg);
        return;
    }
    if (!conn->origin->tls) {
        conn_parse(conn, buf->base, (size_t)nread);
        return;
    }
    eg__tls_feed(&conn->tls, buf->base, (size_t)nread);
    if (conn->state == CONN_HANDSHAKE) {
        conn_handshake(conn);
        return;
    }
    for (;;) {
        size_t n;
        int rc = eg__tls_read(&conn->tls, read_buf, sizeof(read_buf), &n);
        conn_flush_tls(conn); /* reads can produce alerts or renegotiation records */
        if (conn->state == CONN_CLOSING)
            return;
        if (rc == EG_TLS_EOF) {
            conn_eof(conn, "TLS close_notify");
            return;
        }
        if (rc < 0) {
            if (conn->call)
                eg__hc_call_finish(conn->call, EG_ETLS, "TLS record error");
            eg__hc_conn_close(conn);
            return;
        }
        if (n == 0)
            return;
        conn_parse(conn, read_buf, n);
        if (conn->state == CONN_CLOSING)
            return;
    }
}

static void on_idle_timer(uv_timer_t *t)
{
    eg__hc_conn_close(t->data);
}

static void conn_idle(eg_hc_conn_t *conn)
{
    eg_hc_origin_t *o = conn->origin;
    eg_httpc_t *c = conn->c;

    if (o->wait_head) {
        /* Someone is waiting for this origin: hand the connection over directly. */
        eg_httpc_call_t *call = o->wait_head;
        o->wait_head = call->wait_next;
        if (!o->wait_head)
            o->wait_tail = NULL;
        call->waiting = NULL;
        call->wait_next = NULL;
        conn->call = call;
        call->conn = conn;
        conn->state = CONN_BUSY;
        conn_send(conn);
        return;
    }
    if (o->nidle >= c->opts.max_idle_per_origin || c->freeing) {
        eg__hc_conn_close(conn);
        return;
    }
    conn->state = CONN_IDLE;
    conn->idle_next = o->idle;
    o->idle = conn;
    o->nidle++;
    uv_timer_start(&conn->timer, on_idle_timer, c->opts.idle_timeout_ms, 0);
}

static void conn_ready(eg_hc_conn_t *conn)
{
    conn->state = CONN_BUSY;
    if (conn->call)
        conn_send(conn);
    else
        conn_idle(conn); /* cannot happen today: a failed call closes its connection */
}

static void conn_handshake(eg_hc_conn_t *conn)
{
    char err[256];
    int rc = eg__tls_handshake(&conn->tls, err, sizeof(err));

    conn_flush_tls(conn);
    if (conn->state == CONN_CLOSING || rc == EG_TLS_AGAIN)
        return;
    if (rc != 0) {
        if (conn->call)
            eg__hc_call_finish(conn->call, EG_ETLS, "%s: %s", conn->origin->host, err);
        eg__hc_conn_close(conn);
        return;
    }
    conn_ready(conn);
}

/* ---- connections: setup ----------------------------------------------------------------- */

static void conn_try_next(eg_hc_conn_t *conn);

static void on_connect(uv_connect_t *req, int status)
{
    eg_hc_conn_t *conn = req->data;
    int rc;

    if (status == UV_ECANCELED || conn->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn->last_connect_err = status;
        conn_close_tcp(conn);
        conn_try_next(conn);
        return;
    }
    uv_read_start((uv_stream_t *)conn->tcp, on_alloc, on_read);
    if (!conn->origin->tls) {
        conn_ready(conn);
        return;
    }
    conn->state = CONN_HANDSHAKE;
    rc = eg__tls_init(&conn->tls, conn->c->tls, conn->origin->host);
    if (rc != 0) {
        if (conn->call)
            eg__hc_call_finish(conn->call, EG_ETLS, "TLS setup failed");
        eg__hc_conn_close(conn);
        return;
    }
    conn_handshake(conn);
}

static void sockaddr_str(const struct sockaddr *sa, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
        snprintf(out, len, "%s:%d", ip, ntohs(((const struct sockaddr_in *)sa)->sin_port));
    } else {
        uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip));
        snprintf(out, len, "[%s]:%d", ip, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
    }
}

/* Connect to the next address that passed the SSRF check. */
static void conn_try_next(eg_hc_conn_t *conn)
{
    struct addrinfo *ai;
    int rc;

    while ((ai = conn->ai_next) != NULL) {
        conn->ai_next = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        sockaddr_str(ai->ai_addr, conn->addr, sizeof(conn->addr));
        if (eg_ssrf_check(conn->c->ssrf, conn->origin->host, ai->ai_addr) != 0)
            continue;
        conn->tcp = eg_xmalloc(sizeof(*conn->tcp));
        uv_tcp_init(conn->c->loop, conn->tcp);
        conn->tcp->data = conn;
        conn->handles++;
        uv_tcp_nodelay(conn->tcp, 1);
        conn->connect_req.data = conn;
        rc = uv_tcp_connect(&conn->connect_req, conn->tcp, ai->ai_addr, on_connect);
        if (rc == 0)
            return;
        conn->last_connect_err = rc;
        conn_close_tcp(conn);
    }
    if (conn->call)
        eg__hc_call_finish(conn->call, EG_ECONNECT, "connect to %s (%s): %s", conn->origin->host,
                           conn->addr, uv_strerror(conn->last_connect_err));
    eg__hc_conn_close(conn);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    eg_hc_conn_t *conn = req->data;
    bool any_allowed = false;
    char first[64] = "";

    conn->gai_pending = 0;
    conn->ai = res;
    if (conn->state == CONN_CLOSING) {
        conn_maybe_free(conn);
        return;
    }
    if (status < 0) {
        if (conn->call)
            eg__hc_call_finish(conn->call, EG_EDNS, "resolve %s: %s", conn->origin->host,
                               uv_strerror(status));
        eg__hc_conn_close(conn);
        return;
    }
    /* Refuse before connecting at all when no address may be reached, so the message names
     * the guard rather than a connect error. */
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        if (!first[0])
            sockaddr_str(ai->ai_addr, first, sizeof(first));
        if (eg_ssrf_check(conn->c->ssrf, conn->origin->host, ai->ai_addr) == 0)
            any_allowed = true;
    }
    if (!any_allowed) {
        if (conn->call)
            eg__hc_call_finish(conn->call, EG_ESSRF, "destination %s (%s) is not allowed",
                               conn->origin->host, first[0] ? first : "no address");
        eg__hc_conn_close(conn);
        return;
    }
    conn->state = CONN_CONNECTING;
    conn->ai_next = res;
    conn->last_connect_err = UV_ECONNREFUSED;
    conn_try_next(conn);
}

static void conn_new(eg_hc_origin_t *o, eg_httpc_call_t *call)
{
    eg_httpc_t *c = call->c;
    eg_hc_conn_t *conn = eg_xcalloc(1, sizeof(*conn));
    struct addrinfo hints;
    char port[8];
    int rc;

    conn->c = c;
    conn->origin = o;
    conn->state = CONN_RESOLVING;
    conn->next = c->conns;
    if (c->conns)
        c->conns->prev = conn;
    c->conns = conn;
    c->refs++;
    c->nopen++;
    o->nconns++;
    uv_timer_init(c->loop, &conn->timer);
    conn->timer.data = conn;
    conn->handles = 1;
    conn->call = call;
    call->conn = conn;
    snprintf(conn->addr, sizeof(conn->addr), "%s:%d", o->host, o->port);
    eg__hc_call_set_phase(call, CALL_CONNECTING);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", o->port);
    conn->gai.data = conn;
    rc = uv_getaddrinfo(c->loop, &conn->gai, on_resolved, o->host, port, &hints);
    if (rc != 0) {
        eg__hc_call_finish(call, EG_EDNS, "resolve %s: %s", o->host, uv_strerror(rc));
        return; /* eg__hc_call_finish closed the connection */
    }
    conn->gai_pending = 1;
}

/* ---- requests --------------------------------------------------------------------------- */

static void conn_send(eg_hc_conn_t *conn)
{
    eg_httpc_call_t *call = conn->call;
    eg_httpc_t *c = conn->c;
    eg_buf_t out = EG_BUF_INIT;
    bool has_ua = false;
    int rc;

    eg__hc_call_reset_response(call);
    eg_buf_printf(&out, "%s %s HTTP/1.1\r\nHost: %s\r\n", call->method, call->url.target,
                  call->url.hostport);
    for (size_t i = 0; i < call->nheaders; i++) {
        eg_buf_printf(&out, "%s: %s\r\n", call->headers[i].name, call->headers[i].value);
        has_ua = has_ua || eg_strcaseeq(call->headers[i].name, "User-Agent");
    }
    if (!has_ua)
        eg_buf_printf(&out, "User-Agent: %s\r\n", c->user_agent);
    /* Methods that define a body get a length even when empty; some servers require it. */
    if (call->body.len > 0 || strcmp(call->method, "POST") == 0 ||
        strcmp(call->method, "PUT") == 0 || strcmp(call->method, "PATCH") == 0)
        eg_buf_printf(&out, "Content-Length: %zu\r\n", call->body.len);
    eg_buf_puts(&out, "\r\n");
    if (call->body.len)
        eg_buf_append(&out, call->body.data, call->body.len);

    llhttp_init(&conn->parser, HTTP_RESPONSE, &c->settings);
    conn->parser.data = conn;
    eg__hc_call_set_phase(call, CALL_WAIT_HEADERS);
    if (conn->origin->tls) {
        rc = eg__tls_write(&conn->tls, out.data, out.len);
        eg_buf_free(&out);
        if (rc != 0) {
            eg__hc_call_finish(call, EG_ETLS, "TLS write failed");
            return;
        }
        conn_flush_tls(conn);
    } else {
        conn_write_owned(conn, out.data, out.len);
    }
}

/* Put a call on its way: an idle connection, a new one, or the origin's queue. */
void eg__hc_dispatch(eg_httpc_call_t *call)
{
    eg_httpc_t *c = call->c;
    eg_hc_origin_t *o;

    call->phase = CALL_QUEUED;
    if (eg__hc_host_is_invalid_tld(call->url.host)) {
        eg__hc_call_finish(call, EG_EDNS, "resolve %s: name does not exist", call->url.host);
        return;
    }
    o = eg__hc_origin_get(c, &call->url);
    if (o->idle) {
        eg_hc_conn_t *conn = o->idle;
        o->idle = conn->idle_next;
        o->nidle--;
        conn->idle_next = NULL;
        uv_timer_stop(&conn->timer);
        conn->state = CONN_BUSY;
        conn->call = call;
        call->conn = conn;
        conn_send(conn);
        return;
    }
    if (o->nconns < c->opts.max_conns_per_origin) {
        conn_new(o, call);
        return;
    }
    call->waiting = o;
    if (o->wait_tail)
        o->wait_tail->wait_next = call;
    else
        o->wait_head = call;
    o->wait_tail = call;
    eg__hc_call_arm(call);
}

/* A connection slot or an idle connection came free: start the calls that waited for it. */
static void origin_pump(eg_hc_origin_t *o)
{
    eg_httpc_t *c;

    while (o->wait_head) {
        eg_httpc_call_t *call = o->wait_head;
        c = call->c;
        if (!o->idle && o->nconns >= c->opts.max_conns_per_origin)
            break;
        o->wait_head = call->wait_next;
        if (!o->wait_head)
            o->wait_tail = NULL;
        call->waiting = NULL;
        call->wait_next = NULL;
        eg__hc_dispatch(call);
    }
}

/* ---- parser callbacks ------------------------------------------------------------------- */

static eg_httpc_call_t *parser_call(llhttp_t *p)
{
    eg_hc_conn_t *conn = p->data;
    return conn->call;
}

static int count_header_bytes(eg_httpc_call_t *call, size_t len)
{
    call->header_bytes += len;
    if (call->header_bytes > call->c->opts.max_header_bytes) {
        eg__hc_call_finish(call, EG_EUPSTREAM, "response headers larger than %zu bytes",
                           call->c->opts.max_header_bytes);
        return HPE_USER;
    }
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    return count_header_bytes(parser_call(p), len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    eg_httpc_call_t *call = parser_call(p);

    eg_buf_append(&call->hname, at, len);
    return count_header_bytes(call, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    eg_httpc_call_t *call = parser_call(p);

    eg_buf_append(&call->hval, at, len);
    return count_header_bytes(call, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    eg_httpc_call_t *call = parser_call(p);
    eg_httpc_resp_t *r = &call->resp;

    if (r->nheaders == call->hcap) {
        call->hcap = call->hcap ? call->hcap * 2 : 16;
        r->headers = eg_xrealloc(r->headers, call->hcap * sizeof(*r->headers));
    }
    r->headers[r->nheaders].name =
        eg_arena_strndup(&call->arena, call->hname.data ? call->hname.data : "", call->hname.len);
    r->headers[r->nheaders].value =
        eg_arena_strndup(&call->arena, call->hval.data ? call->hval.data : "", call->hval.len);
    r->nheaders++;
    eg_buf_clear(&call->hname);
    eg_buf_clear(&call->hval);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    eg_httpc_call_t *call = parser_call(p);
    int status = p->status_code;
    const char *loc;

    call->resp.status = status;
    if (status >= 100 && status < 200) {
        /* 100 Continue and 103 Early Hints precede the real response; llhttp parses that as
         * the next message. */
        call->interim = 1;
        return 0;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > call->max_response_bytes &&
        strcmp(call->method, "HEAD") != 0) {
        eg__hc_call_finish(call, EG_ERESPTOOBIG,
                           "response of %llu bytes exceeds the %zu byte limit",
                           (unsigned long long)p->content_length, call->max_response_bytes);
        return HPE_USER;
    }
    eg__hc_call_set_phase(call, CALL_BODY);
    loc = eg_httpc_resp_header(&call->resp, "Location");
    if ((status == 301 || status == 302 || status == 303 || status == 307 || status == 308) &&
        loc && *loc && call->max_redirects >= 0) {
        if (call->resp.redirects >= call->max_redirects) {
            eg__hc_call_finish(call, EG_EREDIRECTS, "more than %d redirects", call->max_redirects);
            return HPE_USER;
        }
        call->redirect = 1;
        call->location = loc;
    } else {
        if (call->on_headers && call->on_headers(call->udata, &call->resp) != 0) {
            eg__hc_call_finish(call, EG_ECANCELED, "aborted by the headers callback");
            return HPE_USER;
        }
        if (call->finished)
            return HPE_USER; /* canceled inside the callback */
    }
    /* A response to HEAD has no body whatever its headers say; only we know what we asked. */
    return strcmp(call->method, "HEAD") == 0 ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    eg_httpc_call_t *call = parser_call(p);

    if (call->redirect || call->interim)
        return 0;
    call->body_bytes += len;
    if (call->body_bytes > call->max_response_bytes) {
        eg__hc_call_finish(call, EG_ERESPTOOBIG, "response exceeds the %zu byte limit",
                           call->max_response_bytes);
        return HPE_USER;
    }
    if (call->on_data) {
        if (call->on_data(call->udata, at, len) != 0 && !call->finished)
            eg__hc_call_finish(call, EG_ECANCELED, "aborted by the data callback");
        return call->finished ? HPE_USER : 0;
    }
    eg_buf_append(&call->resp.body, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    eg_httpc_call_t *call = parser_call(p);

    if (call->interim) {
        call->interim = 0;
        call->resp.status = 0;
        call->resp.nheaders = 0;
        return 0;
    }
    call->complete = 1;
    /* Stop here: what follows, if anything, is not ours, and the caller decides about reuse. */
    return HPE_PAUSED;
}

void eg__hc_parser_settings(llhttp_settings_t *s)
{
    s->on_status = on_status;
    s->on_header_field = on_header_field;
    s->on_header_value = on_header_value;
    s->on_header_value_complete = on_header_value_complete;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}
