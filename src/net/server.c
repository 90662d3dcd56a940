/* HTTP/1.1 server connections: accept, parse with llhttp, queue requests in pipeline order,
 * write responses once per loop turn, enforce limits and timeouts, drain on shutdown.
 *
 * Lifetimes (STYLE.md §6): a connection owns two handles (tcp, timer) and is freed in the last
 * close callback, but only once no request handler still holds one of its requests; a handler
 * that finishes after its client left finds req->gone set and its request is simply released.
 *
 * Writes (STYLE.md §7): handlers never write to the socket. A finished response is serialized
 * into the connection's output buffer (or into its request, when an earlier pipelined response is
 * still pending) and the connection is put on the dirty list; a prepare hook flushes every dirty
 * connection with one non-blocking send per loop turn, falling back to uv_write for the
 * remainder. A WebSocket fan-out frame shared by many connections is queued by reference ahead of
 * the buffer (eg_ws_send_frame) and sent from the one copy. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/metrics.h"
#include "engram/util.h"
#include "net_int.h"

#define EG_READ_BUF  65536
#define EG_LINGER_MS 2000

static char read_buf[EG_READ_BUF]; /* one loop, one thread: reads are consumed synchronously */

static void conn_close(eg_conn_t *c);
static void conn_mark_dirty(eg_conn_t *c);
static void conn_pop_done(eg_conn_t *c);
static void conn_start_reading(eg_conn_t *c);
static void check_drain_done(eg_server_t *s);

/* ---- requests ---------------------------------------------------------------------------- */

static eg_req_t *req_new(eg_conn_t *c)
{
    eg_server_t *s = c->srv;
    eg_req_t *req = s->free_reqs;

    if (req) {
        s->free_reqs = req->next;
        s->nfree_reqs--;
    } else {
        req = eg_xcalloc(1, sizeof(*req));
        eg_arena_init(&req->arena);
    }
    req->conn = c;
    req->server = s;
    req->next = NULL;
    req->start_ns = eg_mono_ns();
    req->keep_alive = 1;
    return req;
}

/* Keep small buffers for the next request on this process; big ones go back to malloc. */
static void buf_recycle(eg_buf_t *b)
{
    if (b->cap > 16384)
        eg_buf_free(b);
    else
        eg_buf_clear(b);
}

static void req_free(eg_req_t *req)
{
    eg_server_t *s = req->server;

    eg_arena_reset(&req->arena);
    buf_recycle(&req->body);
    buf_recycle(&req->res_headers);
    buf_recycle(&req->res_out);
    eg_buf_t body = req->body, hdrs = req->res_headers, out = req->res_out;
    eg_arena_t arena = req->arena;
    memset(req, 0, sizeof(*req));
    req->body = body;
    req->res_headers = hdrs;
    req->res_out = out;
    req->arena = arena;

    if (s->nfree_reqs < 1024) {
        req->next = s->free_reqs;
        s->free_reqs = req;
        s->nfree_reqs++;
    } else {
        eg_buf_free(&req->body);
        eg_buf_free(&req->res_headers);
        eg_buf_free(&req->res_out);
        eg_arena_destroy(&req->arena);
        free(req);
    }
}

void eg__request_id(eg_server_t *s, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t seq = ++s->reqid_seq;
    char tmp[17];
    size_t i = sizeof(tmp), plen = strlen(s->reqid_prefix);

    do {
        tmp[--i] = hex[seq & 15];
        seq >>= 4;
    } while (seq);
    memcpy(out, s->reqid_prefix, plen);
    out[plen] = '-';
    memcpy(out + plen + 1, tmp + i, sizeof(tmp) - i);
    out[plen + 1 + sizeof(tmp) - i] = '\0';
}

/* A new request at the tail of the connection's pipeline. */
eg_req_t *eg__conn_enqueue_new(eg_conn_t *c)
{
    eg_req_t *req = req_new(c);

    if (c->tail)
        c->tail->next = req;
    else
        c->head = req;
    c->tail = req;
    c->nqueued++;
    return req;
}

/* A request that ends its connection with an error before (or instead of) dispatch: give it
 * what the access log and the error renderer need. */
void eg__req_prepare_fatal(eg_conn_t *c, eg_req_t *req)
{
    req->keep_alive = 0;
    if (req->method == NULL)
        req->method = "-";
    if (req->request_id[0] == '\0')
        eg__request_id(c->srv, req->request_id);
    req->face = &eg_face_engram;
    /* Once the target is known (a 413 arrives after the headers), the face the request was
     * for renders the error, so a Hindsight client gets {"detail": ...}. */
    if (req->target != NULL && req->target[0] == '/') {
        char *path = eg_arena_strndup(&req->arena, req->target, strcspn(req->target, "?#"));

        req->face = eg_router_face_for(c->srv->router, path);
    }
}

/* ---- connection teardown ----------------------------------------------------------------- */

static void conn_maybe_free(eg_conn_t *c)
{
    eg_server_t *s = c->srv;

    if (c->handles_open > 0 || c->npending_gone > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    eg_metrics_conn_open(-1);
    if (c->ws)
        eg__ws_free(c->ws);
    eg_buf_free(&c->in);
    eg_ws_frame_unref(c->shared);
    eg_buf_free(&c->out);
    eg_buf_free(&c->inflight);
    eg_buf_free(&c->url);
    eg_buf_free(&c->hname);
    eg_buf_free(&c->hval);
    free(c->hdrs);
    free(c);
    check_drain_done(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    eg_conn_t *c = h->data;
    c->handles_open--;
    conn_maybe_free(c);
}

/* Close now: requests whose handlers still run are marked gone and released when they finish. */
static void conn_close(eg_conn_t *c)
{
    eg_req_t *req, *next, *streams = NULL;

    if (c->closing)
        return;
    c->closing = 1;
    for (req = c->head; req; req = next) {
        next = req->next;
        if (req == c->cur || req->done) {
            req_free(req);
        } else {
            req->gone = 1;
            req->next = NULL;
            c->npending_gone++;
            if (req->streaming && req->on_stream_stop) {
                req->next = streams;
                streams = req;
            }
        }
    }
    c->head = c->tail = c->cur = NULL;
    c->nqueued = 0;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    if (c->ws)
        eg__ws_closed(c->ws);
    /* Tell stream owners last: they end their stream, which may release the request. */
    for (req = streams; req; req = next) {
        next = req->next;
        req->next = NULL;
        void (*stop)(eg_req_t *) = req->on_stream_stop;
        req->on_stream_stop = NULL;
        stop(req);
    }
}

static void on_shutdown(uv_shutdown_t *sreq, int status)
{
    free(sreq);
}

/* After a final response we half-close and keep reading (and discarding) for a moment: closing
 * a socket with unread input makes the kernel send RST, which can destroy the response before
 * the client reads it (the 413 to a client still uploading, for instance). As nginx's
 * lingering_close. */
static void conn_linger(eg_conn_t *c)
{
    uv_shutdown_t *sreq;

    if (c->closing || c->lingering)
        return;
    c->lingering = 1;
    sreq = eg_xmalloc(sizeof(*sreq));
    if (uv_shutdown(sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(sreq);
        conn_close(c);
        return;
    }
    if (c->read_eof) {
        conn_close(c);
        return;
    }
    conn_start_reading(c);
    uv_timer_stop(&c->timer);
    eg__conn_arm_timer(c);
}

/* ---- output ------------------------------------------------------------------------------ */

static void conn_mark_dirty(eg_conn_t *c)
{
    if (c->dirty_flag || c->closing)
        return;
    c->dirty_flag = 1;
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
}

static void conn_pop_done(eg_conn_t *c)
{
    /* Move every finished response at the head of the queue into the output buffer; a stream
     * that reached the head passes what it buffered and keeps its place. */
    if (c->head && !c->head->done && c->head->streaming && c->head->res_out.len) {
        eg_buf_append(&c->out, c->head->res_out.data, c->head->res_out.len);
        eg_buf_clear(&c->head->res_out);
    }
    while (c->head && c->head->done) {
        eg_req_t *req = c->head;
        c->head = req->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->nqueued--;
        if (req->res_out.len)
            eg_buf_append(&c->out, req->res_out.data, req->res_out.len);
        req_free(req);
        if (c->head && !c->head->done && c->head->streaming && c->head->res_out.len) {
            eg_buf_append(&c->out, c->head->res_out.data, c->head->res_out.len);
            eg_buf_clear(&c->head->res_out);
        }
    }
}

/* Where a request's output goes now: straight to the connection when it is the head of the
 * pipeline, else into the request until the responses before it are out. */
static eg_buf_t *req_sink(eg_req_t *req)
{
    return req == req->conn->head ? &req->conn->out : &req->res_out;
}

/* A request whose client left is only waited for by its handler: release it (and the
 * connection, when it was the last) once the handler finishes. */
static bool req_release_if_gone(eg_req_t *req)
{
    eg_conn_t *c = req->conn;

    if (!req->gone)
        return false;
    c->npending_gone--;
    req_free(req);
    conn_maybe_free(c);
    return true;
}

void eg__conn_stream_begin(eg_req_t *req, const char *ctype)
{
    eg_conn_t *c = req->conn;

    if (req->gone)
        return;
    if (c->srv->draining)
        req->keep_alive = 0;
    if (!req->keep_alive)
        c->close_after_flush = 1;
    eg__res_serialize(req, req_sink(req), ctype, NULL, 0);
    conn_mark_dirty(c);
}

int eg__conn_stream_write(eg_req_t *req, const void *data, size_t len)
{
    eg_conn_t *c = req->conn;
    char head[24];
    eg_buf_t *sink;

    if (req->gone || c->closing)
        return EG_ENOTFOUND;
    if (eg__conn_buffered(c) + req->res_out.len > c->srv->cfg->max_output_bytes)
        return EG_EBUSY;
    if (len == 0 || req->is_head)
        return 0;
    sink = req_sink(req);
    snprintf(head, sizeof(head), "%zx\r\n", len);
    eg_buf_puts(sink, head);
    eg_buf_append(sink, data, len);
    eg_buf_puts(sink, "\r\n");
    conn_mark_dirty(c);
    return 0;
}

void eg__conn_stream_end(eg_req_t *req)
{
    eg_conn_t *c = req->conn;

    if (req_release_if_gone(req))
        return;
    if (!req->is_head)
        eg_buf_puts(req_sink(req), "0\r\n\r\n");
    req->done = 1;
    conn_pop_done(c);
    conn_mark_dirty(c);
}

void eg__conn_respond(eg_req_t *req, const char *ctype, const void *body, size_t len)
{
    eg_conn_t *c = req->conn;

    if (req_release_if_gone(req))
        return;
    if (!req->keep_alive || c->srv->draining || c->upgrade_wait) {
        /* An upgrade answered with a plain response: what follows it is not HTTP. */
        req->keep_alive = 0;
        c->close_after_flush = 1;
    }
    if (req == c->head) {
        eg__res_serialize(req, &c->out, ctype, body, len);
        req->done = 1;
        conn_pop_done(c);
    } else {
        eg__res_serialize(req, &req->res_out, ctype, body, len);
        req->done = 1;
    }
    /* req may be recycled by now: do not touch it below. */
    conn_mark_dirty(c);
}

static void on_write(uv_write_t *w, int status)
{
    eg_conn_t *c = w->data;

    c->writing = 0;
    eg_buf_clear(&c->inflight);
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_mark_dirty(c);
}

static void conn_maybe_resume(eg_conn_t *c)
{
    eg_server_t *s = c->srv;
    size_t buffered = eg__conn_buffered(c);

    if (c->closing || c->lingering || c->close_after_flush || c->read_eof)
        return;
    if (buffered > s->cfg->max_output_bytes / 2 || c->upgrade_wait)
        return;
    if (c->parse_paused && !c->ws) {
        if (c->nqueued >= (size_t)s->cfg->max_pipeline)
            return;
        c->parse_paused = 0;
        llhttp_resume(&c->parser);
        /* Execute what was left over; it may pause again and keep a new remainder. */
        eg_buf_t pending = c->in;
        c->in = (eg_buf_t)EG_BUF_INIT;
        eg__conn_execute(c, pending.data, pending.len);
        eg_buf_free(&pending);
        if (c->parse_paused || c->closing)
            return;
    }
    conn_start_reading(c);
}

size_t eg__conn_buffered(const eg_conn_t *c)
{
    return (c->shared ? c->shared->len : 0) + c->out.len + c->inflight.len;
}

/* send(2) what the kernel takes now, as uv_try_write would but without write(2)'s VFS layer: a
 * fan-out to thousands of WebSocket clients is one of these per client, and that layer was ~8%
 * of its CPU. Called only with no uv_write in flight, so libuv's own write queue is empty.
 * Returns the bytes sent, UV_EAGAIN, or another negative libuv error. */
static ssize_t conn_try_send(eg_conn_t *c, struct iovec *iov, int niov)
{
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
    uv_os_fd_t fd;
    ssize_t n;

    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
        return UV_EBADF;
    do {
        n = niov == 1 ? send(fd, iov[0].iov_base, iov[0].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL)
                      : sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : uv_translate_sys_error(errno);
}

/* The kernel took sent bytes of [shared frame][out]: release the shared frame, copying its unsent
 * tail (a client whose socket buffer is full) ahead of out. Returns the bytes sent from out. */
static size_t conn_release_shared(eg_conn_t *c, size_t sent)
{
    eg_ws_frame_t *f = c->shared;
    size_t len = f->len;
    eg_buf_t rest = EG_BUF_INIT;

    c->shared = NULL;
    if (sent >= len) {
        eg_ws_frame_unref(f);
        return sent - len;
    }
    eg_buf_reserve(&rest, len - sent + c->out.len);
    eg_buf_append(&rest, f->data + sent, len - sent);
    if (c->out.len)
        eg_buf_append(&rest, c->out.data, c->out.len);
    eg_buf_free(&c->out);
    c->out = rest;
    eg_ws_frame_unref(f);
    return 0;
}

static void conn_flush(eg_conn_t *c)
{
    eg_server_t *s = c->srv;

    if (c->closing)
        return;
    conn_pop_done(c);
    if ((c->shared || c->out.len) && !c->writing) {
        struct iovec iov[2];
        int niov = 0;
        ssize_t n;

        if (c->shared)
            iov[niov++] = (struct iovec){.iov_base = c->shared->data, .iov_len = c->shared->len};
        if (c->out.len)
            iov[niov++] = (struct iovec){.iov_base = c->out.data, .iov_len = c->out.len};
        n = conn_try_send(c, iov, niov);
        if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        if (n < 0)
            n = 0;
        if (c->shared)
            n = (ssize_t)conn_release_shared(c, (size_t)n);
        if (n > 0)
            eg_buf_consume(&c->out, (size_t)n);
        if (c->out.len) {
            /* The kernel buffer is full: hand the rest to uv_write and keep it stable. */
            eg_buf_t tmp = c->inflight;
            uv_buf_t b;

            c->inflight = c->out;
            c->out = tmp;
            eg_buf_clear(&c->out);
            b = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
            c->wreq.data = c;
            if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
                conn_close(c);
                return;
            }
            c->writing = 1;
        }
    }
    if (eg__conn_buffered(c) > s->cfg->max_output_bytes && c->reading) {
        /* A slow reader: stop reading (and so producing) until its output drains. */
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    /* Not writing: the shared frame, if any, was sent or copied into out above. */
    if (!c->writing && c->out.len == 0 && c->nqueued == 0 && c->close_after_flush) {
        conn_linger(c);
        return;
    }
    if (!c->writing && c->out.len == 0 && c->nqueued == 0 && c->read_eof) {
        conn_close(c);
        return;
    }
    conn_maybe_resume(c);
    eg__conn_arm_timer(c);
}

static void refresh_date(eg_server_t *s)
{
    int64_t now = eg_now_ms() / 1000;
    if (now == s->date_sec)
        return;
    s->date_sec = now;
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(s->date, sizeof(s->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

const char *eg__server_date(eg_server_t *s);
const char *eg__server_date(eg_server_t *s)
{
    refresh_date(s);
    return s->date;
}

static void on_prepare(uv_prepare_t *p)
{
    eg_server_t *s = p->data;

    /* Flushing can dispatch more requests (resumed pipelines) that dirty more connections. */
    for (int rounds = 0; s->dirty && rounds < 8; rounds++) {
        eg_conn_t *list = s->dirty;
        s->dirty = NULL;
        while (list) {
            eg_conn_t *c = list;
            list = c->dirty_next;
            c->dirty_flag = 0;
            c->dirty_next = NULL;
            conn_flush(c);
        }
    }
}

/* ---- timers ------------------------------------------------------------------------------ */

static void on_conn_timer(uv_timer_t *t)
{
    eg_conn_t *c = t->data;

    if (c->closing)
        return;
    if (c->ws && !c->lingering) {
        eg__ws_on_timer(c->ws);
        return;
    }
    if (c->lingering || c->writing) {
        conn_close(c);
        return;
    }
    if (c->in_message && c->cur) {
        /* Headers or body did not arrive in time: answer 408 and close. */
        eg_req_t *req = c->cur;
        c->cur = NULL;
        c->in_message = 0;
        eg__req_prepare_fatal(c, req);
        c->close_after_flush = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
        eg_res_error(req, EG_ETIMEDOUT, "request not received within %llu ms",
                     (unsigned long long)c->srv->cfg->read_timeout_ms);
        return;
    }
    if (c->nqueued == 0)
        conn_close(c); /* idle keep-alive connection */
}

void eg__conn_arm_timer(eg_conn_t *c)
{
    const eg_config_t *cfg = c->srv->cfg;

    if (c->closing)
        return;
    if (c->lingering) {
        if (!uv_is_active((uv_handle_t *)&c->timer))
            uv_timer_start(&c->timer, on_conn_timer, EG_LINGER_MS, 0);
        return;
    }
    if (c->in_message || c->ws)
        return; /* the read timer started at message begin (or the ping timer) keeps running */
    if (c->writing) {
        uv_timer_start(&c->timer, on_conn_timer, cfg->idle_timeout_ms, 0);
    } else if (c->nqueued == 0) {
        uv_timer_start(&c->timer, on_conn_timer, cfg->idle_timeout_ms, 0);
    } else {
        uv_timer_stop(&c->timer); /* handlers are working; the store has its own timeouts */
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = read_buf;
    buf->len = sizeof(read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    eg_conn_t *c = stream->data;

    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF) {
            conn_close(c);
            return;
        }
        c->read_eof = 1;
        uv_read_stop(stream);
        c->reading = 0;
        if (c->lingering || c->nqueued == 0 || c->in_message || c->ws) {
            /* Nothing left to answer, or a request cut off mid-way. */
            conn_close(c);
            return;
        }
        if (c->head != NULL && c->head->streaming && !c->head->done) {
            /* A stream (SSE) has no end of its own: a client that closed its side has left, and
             * its owner should stop now rather than when a later write fails. */
            conn_close(c);
            return;
        }
        /* Half-closed by the client: finish the responses still owed, then close. */
        c->close_after_flush = 1;
        conn_mark_dirty(c);
        return;
    }
    if (c->lingering)
        return; /* discard what arrives after the final response */
    if (c->ws) {
        eg__ws_on_data(c->ws, buf->base, (size_t)nread);
        return;
    }
    if (c->parse_paused || c->upgrade_wait) {
        eg_buf_append(&c->in, buf->base, (size_t)nread);
        return;
    }
    eg__conn_execute(c, buf->base, (size_t)nread);
}

static void conn_start_reading(eg_conn_t *c)
{
    if (c->reading || c->closing || c->read_eof)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
}

/* ---- accept ------------------------------------------------------------------------------ */

static void on_rejected_closed(uv_handle_t *h)
{
    free(h);
}

static void reject_connection(eg_server_t *s)
{
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nContent-Length: 71\r\n\r\n"
        "{\"error\":{\"code\":\"server_busy\",\"message\":\"too many connections\"}}\n";
    uv_tcp_t *t = eg_xmalloc(sizeof(*t));

    uv_tcp_init(s->loop, t);
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t) == 0) {
        uv_buf_t b = uv_buf_init((char *)busy, sizeof(busy) - 1);
        (void)uv_try_write((uv_stream_t *)t, &b, 1);
    }
    eg_metrics_conn_rejected();
    uv_close((uv_handle_t *)t, on_rejected_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    eg_server_t *s = server->data;
    eg_conn_t *c;

    if (status < 0) {
        eg_log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    if (s->nconns >= (size_t)s->cfg->max_connections) {
        reject_connection(s);
        return;
    }
    c = eg_xcalloc(1, sizeof(*c));
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    eg_metrics_conn_open(1);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    conn_start_reading(c);
    eg__conn_arm_timer(c);
}

/* ---- server lifecycle -------------------------------------------------------------------- */

static void parse_cors(eg_server_t *s)
{
    const char *list = s->cfg->cors_origins;
    char *copy, *tok, *save = NULL;

    if (strcmp(list, "*") == 0) {
        s->cors.any = true;
        return;
    }
    copy = eg_xstrdup(list);
    for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (strcmp(tok, "*") == 0) {
            s->cors.any = true;
            continue;
        }
        s->cors.origins = eg_xrealloc(s->cors.origins, (s->cors.norigins + 1) * sizeof(char *));
        s->cors.origins[s->cors.norigins++] = eg_xstrdup(tok);
    }
    free(copy);
}

const char *eg__cors_allow(const eg_server_t *s, const char *origin)
{
    if (origin == NULL || origin[0] == '\0')
        return NULL;
    if (s->cors.any)
        return "*";
    for (size_t i = 0; i < s->cors.norigins; i++)
        if (strcmp(s->cors.origins[i], origin) == 0)
            return s->cors.origins[i];
    return NULL;
}

eg_server_t *eg_server_new(uv_loop_t *loop, const eg_config_t *cfg, eg_router_t *router)
{
    eg_server_t *s = eg_xcalloc(1, sizeof(*s));
    unsigned char rnd[4];

    s->loop = loop;
    s->cfg = cfg;
    s->router = router;
    eg__http_settings_init(&s->settings);
    parse_cors(s);
    eg_random_bytes(rnd, sizeof(rnd));
    eg_hex_encode(rnd, sizeof(rnd), s->reqid_prefix);

    uv_tcp_init(loop, &s->listener);
    uv_prepare_init(loop, &s->flusher);
    uv_timer_init(loop, &s->drain_timer);
    s->listener.data = s;
    s->flusher.data = s;
    s->drain_timer.data = s;
    s->open_handles = 3;
    uv_prepare_start(&s->flusher, on_prepare);
    uv_unref((uv_handle_t *)&s->flusher);
    return s;
}

int eg_server_listen(eg_server_t *s)
{
    struct sockaddr_storage ss;
    int rc;

    rc = uv_ip4_addr(s->cfg->listen_host, s->cfg->listen_port, (struct sockaddr_in *)&ss);
    if (rc != 0)
        rc = uv_ip6_addr(s->cfg->listen_host, s->cfg->listen_port, (struct sockaddr_in6 *)&ss);
    if (rc != 0)
        return rc;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rc != 0)
        return rc;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len) == 0) {
        if (bound.ss_family == AF_INET)
            s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        else
            s->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    s->listening = 1;
    return 0;
}

static void on_server_handle_closed(uv_handle_t *h)
{
    eg_server_t *s = h->data;
    s->open_handles--;
    check_drain_done(s);
}

static void check_drain_done(eg_server_t *s)
{
    if (!s->draining || s->drain_done_called || s->nconns > 0)
        return;
    if (!uv_is_closing((uv_handle_t *)&s->drain_timer)) {
        uv_close((uv_handle_t *)&s->drain_timer, on_server_handle_closed);
        uv_close((uv_handle_t *)&s->flusher, on_server_handle_closed);
    }
    if (s->open_handles > 0)
        return;
    s->drain_done_called = 1;
    if (s->drain_done)
        s->drain_done(s->drain_udata);
}

static void on_drain_timeout(uv_timer_t *t)
{
    eg_server_t *s = t->data;
    eg_conn_t *c, *next;

    eg_log_warn("drain timeout: closing %zu connection(s) with requests in flight", s->nconns);
    for (c = s->conns; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

void eg_server_drain(eg_server_t *s, void (*done)(void *), void *udata)
{
    eg_conn_t *c, *next;

    if (s->draining)
        return;
    s->draining = 1;
    s->drain_done = done;
    s->drain_udata = udata;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    s->listening = 0;
    for (c = s->conns; c; c = next) {
        next = c->next;
        if (c->ws) {
            eg__ws_going_away(c->ws);
        } else if (c->nqueued == 0 && !c->in_message) {
            conn_close(c);
        } else {
            c->close_after_flush = 1;
            if (!c->in_message && c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = 0;
            }
            /* Streams never finish by themselves: ask their owners to end them. */
            for (eg_req_t *req = c->head; req; req = req->next) {
                if (req->streaming && !req->done && req->on_stream_stop) {
                    void (*stop)(eg_req_t *) = req->on_stream_stop;
                    req->on_stream_stop = NULL;
                    stop(req);
                    break; /* the queue may have changed under us */
                }
            }
        }
    }
    uv_timer_start(&s->drain_timer, on_drain_timeout, s->cfg->drain_timeout_ms, 0);
    uv_unref((uv_handle_t *)&s->drain_timer);
    check_drain_done(s);
}

void eg_server_free(eg_server_t *s)
{
    if (s == NULL)
        return;
    while (s->free_reqs) {
        eg_req_t *req = s->free_reqs;
        s->free_reqs = req->next;
        eg_buf_free(&req->body);
        eg_buf_free(&req->res_headers);
        eg_buf_free(&req->res_out);
        eg_arena_destroy(&req->arena);
        free(req);
    }
    for (size_t i = 0; i < s->cors.norigins; i++)
        free(s->cors.origins[i]);
    free(s->cors.origins);
    free(s);
}

size_t eg_server_conn_count(const eg_server_t *s)
{
    return s->nconns;
}

int eg_server_port(const eg_server_t *s)
{
    return s->port;
}

const eg_config_t *eg_server_config(const eg_server_t *s)
{
    return s->cfg;
}

bool eg_server_draining(const eg_server_t *s)
{
    return s->draining;
}

void eg__conn_mark_dirty(eg_conn_t *c)
{
    conn_mark_dirty(c);
}

void eg__conn_close(eg_conn_t *c)
{
    conn_close(c);
}

void eg__conn_start_reading(eg_conn_t *c)
{
    conn_start_reading(c);
}

void eg__conn_upgraded(eg_req_t *req, eg_wsconn_t *ws)
{
    eg_conn_t *c = req->conn;

    req->done = 1;
    conn_pop_done(c);
    c->ws = ws;
    c->close_after_flush = 0;
    uv_timer_stop(&c->timer);
    if (c->upgrade_wait) {
        /* Accepted after an asynchronous step (auth): frames that came with the request wait
         * in c->in. In the synchronous case conn_execute feeds them itself. */
        eg_buf_t pending = c->in;
        c->in = (eg_buf_t)EG_BUF_INIT;
        c->upgrade_wait = 0;
        if (pending.len)
            eg__ws_on_data(ws, pending.data, pending.len);
        eg_buf_free(&pending);
        conn_start_reading(c);
    }
    eg__ws_on_timer(ws); /* arms the ping timer */
    conn_mark_dirty(c);
}

void eg__conn_timer_start(eg_conn_t *c, uint64_t ms)
{
    if (!c->closing)
        uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

uv_loop_t *eg_server_loop(const eg_server_t *s)
{
    return s->loop;
}
