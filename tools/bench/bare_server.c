/*
 * bare_server: the baseline for tools/bench/http.
 *
 * A minimal libuv + llhttp HTTP/1.1 server that answers every request with
 * 200 {"status":"ok"}. It does the least work a correct server can do (parse, answer, keep the
 * connection alive), so the ratio engramd/bare_server measures what engramd's own layers cost.
 *
 * Usage: bare_server PORT [HOST]   (HOST defaults to 127.0.0.1)
 *
 * Responses for all requests parsed out of one read are appended to one buffer and written with
 * one uv_write, so pipelined requests cost one syscall per read, not one per request. While a
 * write is in flight new responses go to a second buffer; if that grows past a limit the
 * connection stops reading until the peer catches up.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llhttp.h>
#include <uv.h>

#define BODY             "{\"status\":\"ok\"}"
#define BAD_BODY         "{\"error\":\"bad request\"}"
#define READ_BUF_SIZE    65536
#define MAX_PENDING_OUT  (1024 * 1024)

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} outbuf_t;

typedef struct {
    uv_tcp_t tcp;
    llhttp_t parser;
    uv_write_t wreq;
    outbuf_t bufs[2];
    outbuf_t *pending;  /* responses not yet handed to uv_write */
    outbuf_t *inflight; /* responses of the uv_write in progress */
    bool writing;
    bool read_paused;
    bool close_after_write; /* a response said (or implied) Connection: close */
} conn_t;

static uv_loop_t *loop;
static uv_tcp_t server;
static uv_signal_t sigint_h, sigterm_h;
static llhttp_settings_t settings;
static char read_buf[READ_BUF_SIZE]; /* one loop thread; every read is parsed before the next */
static char date_hdr[64];            /* "Date: ...\r\n", refreshed at most once per second */
static uint64_t date_sec = UINT64_MAX;

static void conn_flush(conn_t *c);

static const char *date_header(void)
{
    uint64_t now = uv_now(loop) / 1000;
    if (now != date_sec) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(date_hdr, sizeof(date_hdr), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        date_sec = now;
    }
    return date_hdr;
}

static int outbuf_append(outbuf_t *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static void on_close(uv_handle_t *h)
{
    conn_t *c = h->data;
    free(c->bufs[0].data);
    free(c->bufs[1].data);
    free(c);
}

static void conn_close(conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void append_response(conn_t *c, const char *status, const char *body, bool keep_alive,
                            bool http10)
{
    char head[256];
    const char *conn_hdr = "";
    if (!keep_alive)
        conn_hdr = "Connection: close\r\n";
    else if (http10)
        conn_hdr = "Connection: keep-alive\r\n";
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\n"
                     "%s"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "\r\n",
                     status, date_header(), strlen(body), conn_hdr);
    if (outbuf_append(c->pending, head, (size_t)n) != 0 ||
        outbuf_append(c->pending, body, strlen(body)) != 0)
        c->close_after_write = true;
}

static int on_message_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    bool keep_alive = llhttp_should_keep_alive(p);
    append_response(c, "200 OK", BODY, keep_alive, p->http_major == 1 && p->http_minor == 0);
    if (!keep_alive) {
        /* Anything after a closing request is ignored; stop the parser here. */
        c->close_after_write = true;
        return HPE_PAUSED;
    }
    return HPE_OK;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = read_buf;
    buf->len = sizeof(read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    c->writing = false;
    c->inflight->len = 0;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->read_paused && !c->close_after_write &&
        !uv_is_closing((uv_handle_t *)&c->tcp)) {
        c->read_paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    conn_flush(c);
}

static void conn_flush(conn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->writing) {
        if (c->pending->len > MAX_PENDING_OUT && !c->read_paused) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->read_paused = true;
        }
        return;
    }
    if (c->pending->len == 0) {
        if (c->close_after_write)
            conn_close(c);
        return;
    }
    outbuf_t *t = c->inflight;
    c->inflight = c->pending;
    c->pending = t;
    uv_buf_t b = uv_buf_init(c->inflight->data, (unsigned int)c->inflight->len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        conn_close(c);
        return;
    }
    c->writing = true;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->close_after_write)
        return;
    llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (err != HPE_OK && !c->close_after_write) {
        /* Malformed input (or an upgrade we do not speak): answer 400 and close. */
        append_response(c, "400 Bad Request", BAD_BODY, false, false);
        c->close_after_write = true;
    }
    if (c->close_after_write) {
        uv_read_stop(s);
        c->read_paused = true;
    }
    conn_flush(c);
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status < 0)
        return;
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->pending = &c->bufs[0];
    c->inflight = &c->bufs[1];
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_TCP && h != (uv_handle_t *)&server ? on_close : NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    uv_walk(loop, close_walk, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PORT [HOST]\n", argv[0]);
        return 2;
    }
    char *end = NULL;
    errno = 0;
    long port = strtol(argv[1], &end, 10);
    if (errno != 0 || end == argv[1] || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "bare_server: bad port '%s'\n", argv[1]);
        return 2;
    }
    const char *host = argc == 3 ? argv[2] : "127.0.0.1";

    loop = uv_default_loop();
    llhttp_settings_init(&settings);
    settings.on_message_complete = on_message_complete;

    struct sockaddr_storage addr;
    int r = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&addr);
    if (r != 0)
        r = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&addr);
    if (r != 0) {
        fprintf(stderr, "bare_server: bad host '%s'\n", host);
        return 2;
    }
    uv_tcp_init(loop, &server);
    r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&server, 1024, on_connection);
    if (r != 0) {
        fprintf(stderr, "bare_server: listen %s:%ld: %s\n", host, port, uv_strerror(r));
        return 1;
    }
    uv_signal_init(loop, &sigint_h);
    uv_signal_init(loop, &sigterm_h);
    uv_signal_start(&sigint_h, on_signal, SIGINT);
    uv_signal_start(&sigterm_h, on_signal, SIGTERM);
    fprintf(stderr, "bare_server: listening on %s:%ld\n", host, port);

    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
