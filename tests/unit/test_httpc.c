/* Outbound HTTP client against real local servers on the same loop: a plain uv TCP server with
 * scripted responses, and the same server behind TLS with a CA and certificates made here with
 * mbedTLS's x509write API. Every test runs the loop to completion and checks that no handle is
 * left (uv_loop_close succeeds). Nothing here reaches a non-loopback address: forbidden
 * destinations are refused before any connect, and ".invalid" names never reach a resolver. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <uv.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/util.h"
#include "net/tls_int.h"

/* ---- test server ------------------------------------------------------------------------ */

typedef struct tsrv_s tsrv_t;
typedef struct tconn_s tconn_t;

typedef void (*thandler_fn)(tconn_t *tc, const char *method, const char *target, const char *head,
                            const char *body, size_t blen);

struct tconn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    tsrv_t *s;
    tconn_t *next;
    eg_buf_t in;
    eg_tls_t tls;
    int handles;
    int step;
    bool closed;
};

struct tsrv_s {
    uv_tcp_t listener;
    int port;
    int accepts, requests, closes;
    thandler_fn handler;
    eg_tls_ctx_t *tls;
    tconn_t *conns;
    char last_method[16];
    char last_target[256];
    eg_buf_t last_head;
    eg_buf_t last_body;
    bool stopped;
};

static uv_loop_t loop;
static tsrv_t srv;
static eg_httpc_t *client;
static uv_timer_t watchdog;
static int pending; /* calls whose done has not run */

static void tconn_closed(uv_handle_t *h)
{
    tconn_t *tc = h->data;

    if (--tc->handles > 0)
        return;
    eg_buf_free(&tc->in);
    eg__tls_free(&tc->tls);
    free(tc);
}

static void tclose(tconn_t *tc)
{
    tconn_t **pp;

    if (tc->closed)
        return;
    tc->closed = true;
    tc->s->closes++;
    for (pp = &tc->s->conns; *pp; pp = &(*pp)->next) {
        if (*pp == tc) {
            *pp = tc->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&tc->tcp, tconn_closed);
    uv_close((uv_handle_t *)&tc->timer, tconn_closed);
}

static void on_twrite(uv_write_t *w, int status)
{
    free(w->data);
    free(w);
}

static void traw(tconn_t *tc, const void *data, size_t len)
{
    uv_write_t *w;
    uv_buf_t b;

    if (tc->closed || len == 0)
        return;
    w = eg_xmalloc(sizeof(*w));
    w->data = eg_xmalloc(len);
    memcpy(w->data, data, len);
    b = uv_buf_init(w->data, (unsigned)len);
    cr_assert_eq(uv_write(w, (uv_stream_t *)&tc->tcp, &b, 1, on_twrite), 0);
}

static void tflush_tls(tconn_t *tc)
{
    traw(tc, tc->tls.out.data, tc->tls.out.len);
    eg_buf_clear(&tc->tls.out);
}

static void tsend(tconn_t *tc, const char *s)
{
    if (tc->s->tls) {
        cr_assert_eq(eg__tls_write(&tc->tls, s, strlen(s)), 0);
        tflush_tls(tc);
    } else {
        traw(tc, s, strlen(s));
    }
}

static void on_tshutdown(uv_shutdown_t *r, int status)
{
    tconn_t *tc = r->data;
    free(r);
    tclose(tc);
}

/* Close after everything written so far has gone out (uv_close would cancel pending writes). */
static void tfinish(tconn_t *tc)
{
    uv_shutdown_t *r = eg_xmalloc(sizeof(*r));

    r->data = tc;
    if (uv_shutdown(r, (uv_stream_t *)&tc->tcp, on_tshutdown) != 0) {
        free(r);
        tclose(tc);
    }
}

static void tprocess(tconn_t *tc)
{
    tsrv_t *s = tc->s;

    while (!tc->closed && tc->in.len > 0) {
        char *end = strstr(tc->in.data, "\r\n\r\n");
        char method[16], target[256], *cl;
        size_t head_len, blen = 0;

        if (!end)
            return;
        head_len = (size_t)(end - tc->in.data) + 4;
        cl = strcasestr(tc->in.data, "\r\nContent-Length:");
        if (cl && cl < end)
            blen = strtoul(cl + 17, NULL, 10);
        if (tc->in.len < head_len + blen)
            return;
        cr_assert_eq(sscanf(tc->in.data, "%15s %255s", method, target), 2);
        snprintf(s->last_method, sizeof(s->last_method), "%s", method);
        snprintf(s->last_target, sizeof(s->last_target), "%s", target);
        eg_buf_clear(&s->last_head);
        eg_buf_append(&s->last_head, tc->in.data, head_len);
        eg_buf_clear(&s->last_body);
        eg_buf_append(&s->last_body, tc->in.data + head_len, blen);
        s->requests++;
        eg_buf_consume(&tc->in, head_len + blen);
        s->handler(tc, method, target, s->last_head.data,
                   s->last_body.data ? s->last_body.data : "", blen);
    }
}

static void on_talloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char rbuf[65536];
    buf->base = rbuf;
    buf->len = sizeof(rbuf);
}

static void on_tread(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    tconn_t *tc = st->data;
    char plain[16384];

    if (nread < 0) {
        tclose(tc);
        return;
    }
    if (!tc->s->tls) {
        eg_buf_append(&tc->in, buf->base, (size_t)nread);
        tprocess(tc);
        return;
    }
    eg__tls_feed(&tc->tls, buf->base, (size_t)nread);
    if (!tc->tls.ready) {
        int rc = eg__tls_handshake(&tc->tls, NULL, 0);
        tflush_tls(tc);
        if (rc < 0) {
            tclose(tc);
            return;
        }
        if (rc != 0)
            return;
    }
    for (;;) {
        size_t n;
        int rc = eg__tls_read(&tc->tls, plain, sizeof(plain), &n);
        if (rc != 0) {
            tclose(tc);
            return;
        }
        if (n == 0)
            break;
        eg_buf_append(&tc->in, plain, n);
    }
    tprocess(tc);
}

static void on_taccept(uv_stream_t *l, int status)
{
    tsrv_t *s = l->data;
    tconn_t *tc = eg_xcalloc(1, sizeof(*tc));

    cr_assert_eq(status, 0);
    tc->s = s;
    uv_tcp_init(&loop, &tc->tcp);
    uv_timer_init(&loop, &tc->timer);
    tc->tcp.data = tc->timer.data = tc;
    tc->handles = 2;
    cr_assert_eq(uv_accept(l, (uv_stream_t *)&tc->tcp), 0);
    tc->next = s->conns;
    s->conns = tc;
    s->accepts++;
    if (s->tls)
        cr_assert_eq(eg__tls_init(&tc->tls, s->tls, NULL), 0);
    uv_read_start((uv_stream_t *)&tc->tcp, on_talloc, on_tread);
}

static void tsrv_start(thandler_fn handler, eg_tls_ctx_t *tls)
{
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(&srv, 0, sizeof(srv));
    srv.handler = handler;
    srv.tls = tls;
    uv_tcp_init(&loop, &srv.listener);
    srv.listener.data = &srv;
    uv_ip4_addr("127.0.0.1", 0, &a);
    cr_assert_eq(uv_tcp_bind(&srv.listener, (struct sockaddr *)&a, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&srv.listener, 64, on_taccept), 0);
    uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&ss, &len);
    srv.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void tsrv_stop(void)
{
    if (srv.stopped)
        return;
    srv.stopped = true;
    uv_close((uv_handle_t *)&srv.listener, NULL);
    while (srv.conns)
        tclose(srv.conns);
}

/* ---- harness ---------------------------------------------------------------------------- */

typedef struct result_s {
    int calls;
    int err;
    int status;
    int redirects;
    eg_buf_t body;
    char error[256];
    char url[256];
    char header[128]; /* value of X-Test */
    void (*then)(struct result_s *r);
} result_t;

static void on_watchdog(uv_timer_t *t)
{
    cr_assert_fail("test timed out");
}

static void setup(void)
{
    cr_assert_eq(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 10000, 0);
    uv_unref((uv_handle_t *)&watchdog);
    pending = 0;
    client = NULL;
}

/* Stop the server and the client; the loop then runs dry. */
static void finish(void)
{
    tsrv_stop();
    if (client) {
        eg_httpc_free(client);
        client = NULL;
    }
    uv_close((uv_handle_t *)&watchdog, NULL);
}

static void run_loop(void)
{
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle leaked");
    eg_buf_free(&srv.last_head);
    eg_buf_free(&srv.last_body);
}

static void on_done(void *udata, int err, eg_httpc_resp_t *resp)
{
    result_t *r = udata;
    const char *x = eg_httpc_resp_header(resp, "x-test");

    r->calls++;
    r->err = err;
    r->status = resp->status;
    r->redirects = resp->redirects;
    eg_buf_clear(&r->body);
    eg_buf_append(&r->body, resp->body.data ? resp->body.data : "", resp->body.len);
    snprintf(r->error, sizeof(r->error), "%s", resp->error ? resp->error : "");
    snprintf(r->url, sizeof(r->url), "%s", resp->url ? resp->url : "");
    snprintf(r->header, sizeof(r->header), "%s", x ? x : "");
    if (r->then)
        r->then(r);
    if (--pending == 0)
        finish();
}

static eg_httpc_t *new_client(const char *allow, void (*tweak)(eg_httpc_opts_t *o))
{
    eg_httpc_opts_t o;

    eg_httpc_opts_default(&o);
    o.system_ca_file = "";
    o.allow = allow;
    if (tweak)
        tweak(&o);
    client = eg_httpc_new(&loop, &o);
    cr_assert_not_null(client);
    return client;
}

static char url_buf[8][256];
static int url_n;

static const char *url(const char *fmt_path)
{
    char *u = url_buf[url_n++ % 8];
    snprintf(u, 256, "%s://127.0.0.1:%d%s", srv.tls ? "https" : "http", srv.port, fmt_path);
    return u;
}

static void get(const char *u, result_t *r)
{
    eg_httpc_req_t req = {.url = u};

    pending++;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, r, NULL), 0, "%s", u);
}

/* ---- handlers --------------------------------------------------------------------------- */

static void h_echo(tconn_t *tc, const char *method, const char *target, const char *head,
                   const char *body, size_t blen)
{
    char out[8192];

    if (strcmp(method, "HEAD") == 0) {
        tsend(tc, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-Test: head\r\n\r\n");
        return;
    }
    snprintf(out, sizeof(out),
             "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Test: yes\r\n\r\n%s %s %.*s",
             strlen(method) + strlen(target) + 2 + blen, method, target, (int)blen, body);
    tsend(tc, out);
}

static void h_chunked(tconn_t *tc, const char *method, const char *target, const char *head,
                      const char *body, size_t blen)
{
    tsend(tc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    tsend(tc, "6\r\n world\r\n0\r\n\r\n");
}

static void h_close_delimited(tconn_t *tc, const char *method, const char *target, const char *head,
                              const char *body, size_t blen)
{
    tsend(tc, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the ");
    tsend(tc, "end of the connection");
    tfinish(tc);
}

static void h_redirect(tconn_t *tc, const char *method, const char *target, const char *head,
                       const char *body, size_t blen)
{
    char out[512];
    int n;

    if (strcmp(target, "/loop") == 0) {
        tsend(tc, "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 3\r\n\r\nabc");
    } else if (sscanf(target, "/r/%d", &n) == 1 && n > 0) {
        /* Alternate absolute and relative references; statuses cycle through the kinds. */
        static const int codes[] = {301, 302, 307, 308};
        if (n % 2)
            snprintf(out, sizeof(out),
                     "HTTP/1.1 %d X\r\nLocation: http://127.0.0.1:%d/r/%d\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                     codes[n % 4], tc->s->port, n - 1);
        else
            snprintf(out, sizeof(out), "HTTP/1.1 %d X\r\nLocation: %d\r\nContent-Length: 0\r\n\r\n",
                     codes[n % 4], n - 1);
        tsend(tc, out);
    } else if (strcmp(target, "/interim") == 0) {
        tsend(tc, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nX-Test: final\r\nContent-Length: 2\r\n\r\nok");
    } else if (strcmp(target, "/see") == 0) {
        tsend(tc, "HTTP/1.1 303 See Other\r\nLocation: /after?x=1\r\nContent-Length: 0\r\n\r\n");
    } else if (strcmp(target, "/keep") == 0) {
        tsend(tc, "HTTP/1.1 307 Temporary\r\nLocation: /after\r\nContent-Length: 0\r\n\r\n");
    } else if (strcmp(target, "/away") == 0) {
        snprintf(
            out, sizeof(out),
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/x\r\nContent-Length: 0\r\n\r\n",
            tc->s->port);
        tsend(tc, out);
    } else if (strcmp(target, "/meta") == 0) {
        tsend(tc, "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\n"
                  "Content-Length: 0\r\n\r\n");
    } else if (strcmp(target, "/file") == 0) {
        tsend(tc,
              "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n");
    } else {
        h_echo(tc, method, target, head, body, blen);
    }
}

/* Relative references resolve against /r/N: "N-1" stays in /r/. */

static void h_never(tconn_t *tc, const char *method, const char *target, const char *head,
                    const char *body, size_t blen)
{
}

static void h_slow_body(tconn_t *tc, const char *method, const char *target, const char *head,
                        const char *body, size_t blen)
{
    tsend(tc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part");
}

static void h_big(tconn_t *tc, const char *method, const char *target, const char *head,
                  const char *body, size_t blen)
{
    static char out[4096];

    if (strcmp(target, "/chunked") == 0) {
        tsend(tc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        memset(out, 0, sizeof(out));
        for (int i = 0; i < 5; i++)
            tsend(tc,
                  "190\r\n" /* 400 bytes */
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "\r\n");
        tsend(tc, "0\r\n\r\n");
        return;
    }
    snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n%2000s", "x");
    tsend(tc, out);
}

static void on_stream_tick(uv_timer_t *t)
{
    tconn_t *tc = t->data;
    static const char *const events[] = {"9\r\ndata: 2\n\n\r\n", "9\r\ndata: 3\n\n\r\n",
                                         "0\r\n\r\n"};

    tsend(tc, events[tc->step++]);
    if (tc->step == 3)
        uv_timer_stop(t);
}

static void h_stream(tconn_t *tc, const char *method, const char *target, const char *head,
                     const char *body, size_t blen)
{
    tsend(tc, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
              "\r\n9\r\ndata: 1\n\n\r\n");
    tc->step = 0;
    uv_timer_start(&tc->timer, on_stream_tick, 20, 20);
}

/* ---- plain HTTP ------------------------------------------------------------------------- */

TestSuite(httpc, .init = setup, .timeout = 30);

Test(httpc, get_and_post_with_content_length)
{
    static result_t a, b;
    eg_kv_t hdrs[] = {{"Content-Type", "application/json"}, {"X-Trace", "t1"}};
    eg_httpc_req_t post = {
        .method = "POST", .headers = hdrs, .nheaders = 2, .body = "{\"a\":1}", .body_len = 7};

    tsrv_start(h_echo, NULL);
    new_client("127.0.0.0/8", NULL);
    get(url("/hello?q=1"), &a);
    post.url = url("/submit");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &post, on_done, &b, NULL), 0);
    run_loop();
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_eq(a.status, 200);
    cr_assert_str_eq(a.body.data, "GET /hello?q=1 ");
    cr_assert_str_eq(a.header, "yes");
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.err, 0, "%s", b.error);
    cr_assert_str_eq(b.body.data, "POST /submit {\"a\":1}");
    eg_buf_free(&a.body);
    eg_buf_free(&b.body);
}

static void check_post_head(result_t *r)
{
    cr_assert(strstr(srv.last_head.data, "\r\nContent-Length: 7\r\n"), "%s", srv.last_head.data);
    cr_assert(strstr(srv.last_head.data, "\r\nX-Trace: t1\r\n"));
    cr_assert(strstr(srv.last_head.data, "\r\nUser-Agent: engram/"));
    cr_assert(strstr(srv.last_head.data, "\r\nHost: 127.0.0.1:"));
}

Test(httpc, request_head_carries_headers)
{
    static result_t a = {.then = check_post_head};
    eg_kv_t hdrs[] = {{"X-Trace", "t1"}};
    eg_httpc_req_t post = {
        .method = "POST", .headers = hdrs, .nheaders = 1, .body = "payload", .body_len = 7};

    tsrv_start(h_echo, NULL);
    new_client("127.0.0.0/8", NULL);
    post.url = url("/");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &post, on_done, &a, NULL), 0);
    run_loop();
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, 0, "%s", a.error);
    eg_buf_free(&a.body);
}

Test(httpc, invalid_requests_refused_synchronously)
{
    eg_kv_t inject[] = {{"X-A", "v\r\nX-Evil: 1"}};
    eg_kv_t host[] = {{"Host", "other"}};
    eg_httpc_req_t req = {.url = "http://127.0.0.1/"};
    eg_httpc_call_t *call = (eg_httpc_call_t *)1;

    new_client(NULL, NULL);
    req.headers = inject;
    req.nheaders = 1;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, NULL, &call), EG_EINVAL);
    cr_assert_null(call);
    req.headers = host;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, NULL, NULL), EG_EINVAL);
    req.nheaders = 0;
    req.method = "GE T";
    cr_assert_eq(eg_httpc_request(client, &req, on_done, NULL, NULL), EG_EINVAL);
    req.method = NULL;
    req.url = "127.0.0.1/";
    cr_assert_eq(eg_httpc_request(client, &req, on_done, NULL, NULL), EG_EINVAL);
    req.url = "http:///x";
    cr_assert_eq(eg_httpc_request(client, &req, on_done, NULL, NULL), EG_EINVAL);
    req.url = "http://a b/";
    cr_assert_eq(eg_httpc_request(client, &req, on_done, NULL, NULL), EG_EINVAL);
    req.url = "http://host:99999/";
    cr_assert_eq(eg_httpc_request(client, &req, on_done, NULL, NULL), EG_EINVAL);
    eg_httpc_free(client);
    client = NULL;
    uv_close((uv_handle_t *)&watchdog, NULL);
    run_loop();
}

Test(httpc, scheme_and_credentials_refused)
{
    eg_httpc_req_t req = {0};
    static const char *const bad[] = {
        "ftp://example.com/",  "file:///etc/passwd",        "gopher://127.0.0.1:6379/_INFO",
        "javascript:alert(1)", "http://user:pw@127.0.0.1/", "https://token@example.com/"};

    new_client("127.0.0.0/8", NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req.url = bad[i];
        cr_assert_eq(eg_httpc_request(client, &req, on_done, NULL, NULL), EG_ESSRF, "%s", bad[i]);
        cr_assert_eq(eg_httpc_url_check(bad[i]), EG_ESSRF, "%s", bad[i]);
    }
    cr_assert_eq(eg_httpc_url_check("HTTPS://Example.com:8443/a?b#frag"), 0);
    cr_assert_eq(eg_httpc_url_check("http://[::1]:80"), 0);
    eg_httpc_free(client);
    client = NULL;
    uv_close((uv_handle_t *)&watchdog, NULL);
    run_loop();
}

Test(httpc, chunked_response)
{
    static result_t a;

    tsrv_start(h_chunked, NULL);
    new_client("127.0.0.0/8", NULL);
    get(url("/"), &a);
    run_loop();
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_str_eq(a.body.data, "hello world");
    eg_buf_free(&a.body);
}

Test(httpc, close_delimited_body)
{
    static result_t a;

    tsrv_start(h_close_delimited, NULL);
    new_client("127.0.0.0/8", NULL);
    get(url("/"), &a);
    run_loop();
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_str_eq(a.body.data, "until the end of the connection");
    eg_buf_free(&a.body);
}

static result_t ka_second;
static int ka_open_after_first;

static void ka_then(result_t *r)
{
    ka_open_after_first = (int)eg_httpc_open_connections(client);
    get(url("/second"), &ka_second);
}

Test(httpc, keep_alive_reuses_connection)
{
    static result_t a = {.then = ka_then};

    tsrv_start(h_echo, NULL);
    new_client("127.0.0.0/8", NULL);
    get(url("/first"), &a);
    run_loop();
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_eq(ka_second.calls, 1);
    cr_assert_eq(ka_second.err, 0, "%s", ka_second.error);
    cr_assert_str_eq(ka_second.body.data, "GET /second ");
    cr_assert_eq(ka_open_after_first, 1);
    cr_assert_eq(srv.accepts, 1, "the second request must reuse the connection");
    cr_assert_eq(srv.requests, 2);
    eg_buf_free(&a.body);
    eg_buf_free(&ka_second.body);
}

static result_t head_get;

static void head_then(result_t *r)
{
    get(url("/after-head"), &head_get);
}

Test(httpc, head_has_no_body_and_keeps_connection)
{
    static result_t a = {.then = head_then};
    eg_httpc_req_t req = {.method = "HEAD"};

    tsrv_start(h_echo, NULL);
    new_client("127.0.0.0/8", NULL);
    req.url = url("/");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, &a, NULL), 0);
    run_loop();
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_eq(a.status, 200);
    cr_assert_eq(a.body.len, 0);
    cr_assert_str_eq(a.header, "head");
    cr_assert_eq(head_get.err, 0, "%s", head_get.error);
    cr_assert_str_eq(head_get.body.data, "GET /after-head ");
    cr_assert_eq(srv.accepts, 1);
    eg_buf_free(&a.body);
    eg_buf_free(&head_get.body);
}

static void one_conn(eg_httpc_opts_t *o)
{
    o->max_conns_per_origin = 1;
}

Test(httpc, per_origin_cap_queues_requests)
{
    static result_t r[4];

    tsrv_start(h_echo, NULL);
    new_client("127.0.0.0/8", one_conn);
    for (int i = 0; i < 4; i++)
        get(url("/q"), &r[i]);
    run_loop();
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].err, 0, "%d: %s", i, r[i].error);
        eg_buf_free(&r[i].body);
    }
    cr_assert_eq(srv.accepts, 1, "one connection serves the queue");
    cr_assert_eq(srv.requests, 4);
}

static void short_idle(eg_httpc_opts_t *o)
{
    o->idle_timeout_ms = 30;
}

static result_t idle_second;
static int idle_open_before;

static void on_idle_check(uv_timer_t *t)
{
    idle_open_before = (int)eg_httpc_open_connections(client);
    uv_close((uv_handle_t *)t, NULL);
    get(url("/again"), &idle_second);
    pending--; /* the first call's done already counted down */
}

static uv_timer_t idle_timer;

static void idle_then(result_t *r)
{
    uv_timer_init(&loop, &idle_timer);
    uv_timer_start(&idle_timer, on_idle_check, 150, 0);
    pending++; /* keep the harness from finishing until the timer has run */
}

Test(httpc, idle_connections_expire)
{
    static result_t a = {.then = idle_then};

    tsrv_start(h_echo, NULL);
    new_client("127.0.0.0/8", short_idle);
    get(url("/"), &a);
    run_loop();
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_eq(idle_open_before, 0, "the idle connection must have expired");
    cr_assert_eq(idle_second.err, 0, "%s", idle_second.error);
    cr_assert_eq(srv.accepts, 2);
    eg_buf_free(&a.body);
    eg_buf_free(&idle_second.body);
}

Test(httpc, redirect_chain_followed)
{
    static result_t a;

    tsrv_start(h_redirect, NULL);
    new_client("127.0.0.0/8", NULL);
    get(url("/r/4"), &a);
    run_loop();
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_eq(a.status, 200);
    cr_assert_eq(a.redirects, 4);
    cr_assert_str_eq(a.body.data, "GET /r/0 ");
    cr_assert(strstr(a.url, "/r/0"), "%s", a.url);
    cr_assert_eq(srv.accepts, 1, "redirects within an origin reuse the connection");
    eg_buf_free(&a.body);
}

Test(httpc, redirect_cap)
{
    static result_t a, b;
    eg_httpc_req_t req = {.max_redirects = 2};
    eg_httpc_req_t raw = {.max_redirects = EG_HTTPC_NO_REDIRECTS};

    tsrv_start(h_redirect, NULL);
    new_client("127.0.0.0/8", NULL);
    get(url("/loop"), &a);
    req.url = url("/r/3");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, &b, NULL), 0);
    run_loop();
    cr_assert_eq(a.err, EG_EREDIRECTS, "%d %s", a.err, a.error);
    cr_assert_eq(srv.requests, 6 + 3, "default cap 5: six requests for /loop, three for /r/3");
    cr_assert_eq(b.err, EG_EREDIRECTS);
    eg_buf_free(&a.body);
    eg_buf_free(&b.body);

    /* With redirects off, the 3xx itself is the result. */
    setup();
    memset(&a, 0, sizeof(a));
    tsrv_start(h_redirect, NULL);
    new_client("127.0.0.0/8", NULL);
    raw.url = url("/loop");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &raw, on_done, &a, NULL), 0);
    run_loop();
    cr_assert_eq(a.err, 0);
    cr_assert_eq(a.status, 302);
    cr_assert_str_eq(a.body.data, "abc");
    eg_buf_free(&a.body);
}

Test(httpc, see_other_turns_post_into_get)
{
    static result_t a, b;
    eg_kv_t hdrs[] = {{"Content-Type", "text/plain"}, {"Authorization", "Bearer s"}};
    eg_httpc_req_t req = {
        .method = "POST", .body = "data", .body_len = 4, .headers = hdrs, .nheaders = 2};
    eg_httpc_req_t keep = {.method = "POST", .body = "kept", .body_len = 4};

    tsrv_start(h_redirect, NULL);
    new_client("127.0.0.0/8", one_conn);
    req.url = url("/see");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, &a, NULL), 0);
    keep.url = url("/keep");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &keep, on_done, &b, NULL), 0);
    run_loop();
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_str_eq(a.body.data, "GET /after?x=1 ");
    cr_assert_eq(a.redirects, 1);
    /* 307 keeps the method and the body. */
    cr_assert_eq(b.err, 0, "%s", b.error);
    cr_assert_str_eq(b.body.data, "POST /after kept");
    eg_buf_free(&a.body);
    eg_buf_free(&b.body);
}

Test(httpc, interim_responses_skipped)
{
    static result_t a;

    tsrv_start(h_redirect, NULL);
    new_client("127.0.0.0/8", NULL);
    get(url("/interim"), &a);
    run_loop();
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_eq(a.status, 200);
    cr_assert_str_eq(a.header, "final");
    cr_assert_str_eq(a.body.data, "ok");
    eg_buf_free(&a.body);
}

/* Keep-alive on the wire, but the server closes right after each response, as servers with a
 * short keep-alive timeout do: the client must notice, or retry on a fresh connection. */
static void h_close_after(tconn_t *tc, const char *method, const char *target, const char *head,
                          const char *body, size_t blen)
{
    tsend(tc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    tfinish(tc);
}

static result_t stale[3];
static int stale_n;

static void stale_then(result_t *r)
{
    if (++stale_n < 3) {
        stale[stale_n].then = stale_then;
        get(url("/"), &stale[stale_n]);
    }
}

Test(httpc, server_closing_keep_alive_connections)
{
    tsrv_start(h_close_after, NULL);
    new_client("127.0.0.0/8", NULL);
    stale[0].then = stale_then;
    get(url("/"), &stale[0]);
    run_loop();
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(stale[i].calls, 1, "%d", i);
        cr_assert_eq(stale[i].err, 0, "%d: %s", i, stale[i].error);
        cr_assert_str_eq(stale[i].body.data, "ok");
        eg_buf_free(&stale[i].body);
    }
    cr_assert_eq(srv.accepts, 3);
}

Test(httpc, header_timeout)
{
    static result_t a;
    eg_httpc_req_t req = {.header_timeout_ms = 100};

    tsrv_start(h_never, NULL);
    new_client("127.0.0.0/8", NULL);
    req.url = url("/");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, &a, NULL), 0);
    run_loop();
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, EG_EUPTIMEOUT, "%d %s", a.err, a.error);
    cr_assert(strstr(a.error, "header timeout"), "%s", a.error);
    cr_assert_eq(srv.accepts, 1);
}

Test(httpc, total_timeout_on_slow_body)
{
    static result_t a;
    eg_httpc_req_t req = {.header_timeout_ms = 5000, .total_timeout_ms = 200};

    tsrv_start(h_slow_body, NULL);
    new_client("127.0.0.0/8", NULL);
    req.url = url("/");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, &a, NULL), 0);
    run_loop();
    cr_assert_eq(a.err, EG_EUPTIMEOUT, "%d %s", a.err, a.error);
    cr_assert(strstr(a.error, "total timeout"), "%s", a.error);
    cr_assert_eq(a.status, 200, "headers had arrived");
}

Test(httpc, response_too_large)
{
    static result_t a, b;
    eg_httpc_req_t req = {.max_response_bytes = 1000};
    eg_httpc_req_t chunked = {.max_response_bytes = 1000};

    tsrv_start(h_big, NULL);
    new_client("127.0.0.0/8", NULL);
    req.url = url("/");
    chunked.url = url("/chunked");
    pending += 2;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, &a, NULL), 0);
    cr_assert_eq(eg_httpc_request(client, &chunked, on_done, &b, NULL), 0);
    run_loop();
    cr_assert_eq(a.err, EG_ERESPTOOBIG, "%d %s", a.err, a.error);
    cr_assert_eq(b.err, EG_ERESPTOOBIG, "%d %s", b.err, b.error);
    cr_assert_eq(a.body.len, 0);
    eg_buf_free(&a.body);
    eg_buf_free(&b.body);
}

typedef struct {
    int headers_calls;
    int status_at_headers;
    int chunks;
    eg_buf_t all;
    int abort_after;
} stream_t;

static stream_t st;

static int st_headers(void *udata, const eg_httpc_resp_t *resp)
{
    st.headers_calls++;
    st.status_at_headers = resp->status;
    cr_assert_str_eq(eg_httpc_resp_header(resp, "content-type"), "text/event-stream");
    return 0;
}

static int st_data(void *udata, const char *data, size_t len)
{
    st.chunks++;
    eg_buf_append(&st.all, data, len);
    return st.abort_after && st.chunks >= st.abort_after;
}

Test(httpc, streaming_callback_gets_chunks_in_order)
{
    static result_t a;
    eg_httpc_req_t req = {.on_headers = st_headers, .on_data = st_data};

    tsrv_start(h_stream, NULL);
    new_client("127.0.0.0/8", NULL);
    req.url = url("/events");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, &a, NULL), 0);
    run_loop();
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_eq(st.headers_calls, 1);
    cr_assert_eq(st.status_at_headers, 200);
    cr_assert_eq(st.chunks, 3, "one callback per chunk as it arrives");
    cr_assert_str_eq(st.all.data, "data: 1\n\ndata: 2\n\ndata: 3\n\n");
    cr_assert_eq(a.body.len, 0, "a streamed body is not buffered");
    eg_buf_free(&st.all);
    eg_buf_free(&a.body);
}

Test(httpc, streaming_callback_can_abort)
{
    static result_t a;
    eg_httpc_req_t req = {.on_data = st_data};

    st.abort_after = 1;
    tsrv_start(h_stream, NULL);
    new_client("127.0.0.0/8", NULL);
    req.url = url("/events");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, &a, NULL), 0);
    run_loop();
    cr_assert_eq(a.err, EG_ECANCELED, "%d %s", a.err, a.error);
    cr_assert_eq(st.chunks, 1);
    eg_buf_free(&st.all);
}

static eg_httpc_call_t *to_cancel;

static void on_cancel_timer(uv_timer_t *t)
{
    eg_httpc_cancel(to_cancel);
    uv_close((uv_handle_t *)t, NULL);
}

Test(httpc, cancel_and_free_with_pending_calls)
{
    static result_t a, b;
    static uv_timer_t t;
    eg_httpc_req_t req = {0};

    tsrv_start(h_never, NULL);
    new_client("127.0.0.0/8", NULL);
    req.url = url("/");
    pending++;
    cr_assert_eq(eg_httpc_request(client, &req, on_done, &a, &to_cancel), 0);
    cr_assert_not_null(to_cancel);
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_cancel_timer, 50, 0);
    run_loop();
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, EG_ECANCELED);

    /* Freeing the client fails what is in flight, once, and leaves no handle behind. */
    setup();
    tsrv_start(h_never, NULL);
    new_client("127.0.0.0/8", NULL);
    get(url("/"), &b);
    get(url("/"), &b);
    pending -= 2; /* finish() runs from here, not from done */
    finish();
    run_loop();
    cr_assert_eq(b.calls, 2);
    cr_assert_eq(b.err, EG_ECANCELED);
}

Test(httpc, connection_refused)
{
    static result_t a;
    uv_tcp_t tmp;
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof(ss), port;
    char u[64];

    /* A port that was just free: bind, read it, close. */
    uv_tcp_init(&loop, &tmp);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    cr_assert_eq(uv_tcp_bind(&tmp, (struct sockaddr *)&sa, 0), 0);
    uv_tcp_getsockname(&tmp, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&tmp, NULL);
    srv.stopped = true;
    new_client("127.0.0.0/8", NULL);
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/", port);
    get(u, &a);
    run_loop();
    cr_assert_eq(a.err, EG_ECONNECT, "%d %s", a.err, a.error);
    cr_assert(strstr(a.error, "127.0.0.1"), "%s", a.error);
}

Test(httpc, dns_failure)
{
    static result_t a;

    srv.stopped = true;
    new_client(NULL, NULL);
    get("http://no-such-host.invalid/", &a);
    run_loop();
    cr_assert_eq(a.err, EG_EDNS, "%d %s", a.err, a.error);
}

/* ---- SSRF ------------------------------------------------------------------------------- */

Test(httpc, ssrf_forbidden_destinations)
{
    static result_t r[10];
    char u[10][96];
    const char *fmt[] = {"http://127.0.0.1:%d/",          "http://[::1]:%d/",
                         "http://[::ffff:127.0.0.1]:%d/", "http://[::ffff:7f00:1]:%d/",
                         "http://10.1.2.3:%d/",           "http://169.254.169.254:%d/",
                         "http://[fd00:ec2::254]:%d/",    "http://0.0.0.0:%d/",
                         "http://100.64.0.1:%d/",         "http://[fe80::1]:%d/"};

    tsrv_start(h_echo, NULL);
    new_client(NULL, NULL); /* no allow-list */
    for (int i = 0; i < 10; i++) {
        snprintf(u[i], sizeof(u[i]), fmt[i], srv.port);
        get(u[i], &r[i]);
    }
    run_loop();
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].err, EG_ESSRF, "%s: %d %s", u[i], r[i].err, r[i].error);
    }
    cr_assert_eq(srv.accepts, 0, "no connection to a forbidden address");
}

Test(httpc, ssrf_allow_list_by_host_name)
{
    static result_t a, b;
    char u[96];

    tsrv_start(h_redirect, NULL);
    new_client("LocalHost", NULL);
    snprintf(u, sizeof(u), "http://localhost:%d/plain", srv.port);
    get(u, &a);
    run_loop();
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_str_eq(a.body.data, "GET /plain ");
    eg_buf_free(&a.body);

    /* The name is allowed, its address is not: a redirect to the address is refused. */
    setup();
    tsrv_start(h_redirect, NULL);
    new_client("localhost", NULL);
    snprintf(u, sizeof(u), "http://localhost:%d/away", srv.port);
    get(u, &b);
    run_loop();
    cr_assert_eq(b.err, EG_ESSRF, "%d %s", b.err, b.error);
    cr_assert_eq(srv.requests, 1);
}

Test(httpc, ssrf_redirect_to_forbidden_address)
{
    static result_t a, b;

    tsrv_start(h_redirect, NULL);
    new_client("127.0.0.0/8", NULL);
    get(url("/meta"), &a);
    get(url("/file"), &b);
    run_loop();
    cr_assert_eq(a.err, EG_ESSRF, "%d %s", a.err, a.error);
    cr_assert_eq(b.err, EG_ESSRF, "%d %s", b.err, b.error);
}

static const char *const env_vals[][2] = {
    {"ENGRAM_OUTBOUND_ALLOW", "10.0.0.0/8,svc.local"},
    {"ENGRAM_OUTBOUND_CA_FILE", "/tmp/ca.pem"},
    {"ENGRAM_OUTBOUND_TIMEOUT", "90s"},
    {"ENGRAM_OUTBOUND_CONNECT_TIMEOUT", "500ms"},
    {"ENGRAM_OUTBOUND_MAX_RESPONSE_SIZE", "2m"},
    {"ENGRAM_OUTBOUND_MAX_REDIRECTS", "3"},
    {"ENGRAM_OUTBOUND_POOL_MAX", "4"},
    {"ENGRAM_OUTBOUND_POOL_IDLE", ""},
};
static const char *env_bad;

static const char *env_lookup(const char *name)
{
    if (env_bad && strcmp(name, "ENGRAM_OUTBOUND_IDLE_TIMEOUT") == 0)
        return env_bad;
    for (size_t i = 0; i < sizeof(env_vals) / sizeof(env_vals[0]); i++) {
        if (strcmp(env_vals[i][0], name) == 0)
            return env_vals[i][1];
    }
    return NULL;
}

Test(httpc, opts_from_env)
{
    eg_httpc_opts_t o;
    char err[128];

    eg_httpc_opts_default(&o);
    cr_assert_eq(eg_httpc_opts_from_env(&o, env_lookup, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(o.allow, "10.0.0.0/8,svc.local");
    cr_assert_str_eq(o.extra_ca_file, "/tmp/ca.pem");
    cr_assert_eq(o.total_timeout_ms, 90000);
    cr_assert_eq(o.connect_timeout_ms, 500);
    cr_assert_eq(o.max_response_bytes, 2u << 20);
    cr_assert_eq(o.max_redirects, 3);
    cr_assert_eq(o.max_conns_per_origin, 4);
    cr_assert_eq(o.max_idle_per_origin, 8, "empty means unset");
    env_bad = "soon";
    cr_assert_eq(eg_httpc_opts_from_env(&o, env_lookup, err, sizeof(err)), EG_EINVAL);
    cr_assert(strstr(err, "ENGRAM_OUTBOUND_IDLE_TIMEOUT"), "%s", err);
    uv_close((uv_handle_t *)&watchdog, NULL);
    run_loop();
}

/* ---- TLS -------------------------------------------------------------------------------- */

static int test_rng(void *p, unsigned char *out, size_t n)
{
    eg_random_bytes(out, n);
    return 0;
}

static void gen_key(mbedtls_pk_context *k)
{
    mbedtls_pk_init(k);
    cr_assert_eq(mbedtls_pk_setup(k, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
    cr_assert_eq(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*k), test_rng, NULL),
                 0);
}

static char *key_pem(mbedtls_pk_context *k)
{
    unsigned char buf[2048];

    cr_assert_eq(mbedtls_pk_write_key_pem(k, buf, sizeof(buf)), 0);
    return eg_xstrdup((char *)buf);
}

/* A certificate for subject, signed by issuer_key; dns adds a subjectAltName with that name and
 * 127.0.0.1. */
static char *make_cert(const char *subject, const char *issuer, mbedtls_pk_context *key,
                       mbedtls_pk_context *issuer_key, bool ca, const char *dns)
{
    static int serial_no = 1;
    mbedtls_x509write_cert w;
    mbedtls_mpi serial;
    unsigned char buf[4096], san[300];

    mbedtls_x509write_crt_init(&w);
    mbedtls_mpi_init(&serial);
    cr_assert_eq(mbedtls_mpi_lset(&serial, serial_no++), 0);
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    cr_assert_eq(mbedtls_x509write_crt_set_serial(&w, &serial), 0);
    cr_assert_eq(mbedtls_x509write_crt_set_validity(&w, "20200101000000", "20991231235959"), 0);
    cr_assert_eq(mbedtls_x509write_crt_set_subject_name(&w, subject), 0);
    cr_assert_eq(mbedtls_x509write_crt_set_issuer_name(&w, issuer), 0);
    mbedtls_x509write_crt_set_subject_key(&w, key);
    mbedtls_x509write_crt_set_issuer_key(&w, issuer_key);
    cr_assert_eq(mbedtls_x509write_crt_set_basic_constraints(&w, ca, ca ? 0 : -1), 0);
    if (ca)
        cr_assert_eq(mbedtls_x509write_crt_set_key_usage(&w, MBEDTLS_X509_KU_KEY_CERT_SIGN |
                                                                 MBEDTLS_X509_KU_CRL_SIGN),
                     0);
    if (dns) {
        /* SEQUENCE { [2] dNSName, [7] iPAddress 127.0.0.1 } */
        size_t n = strlen(dns), len = 2 + n + 6;
        cr_assert_lt(len, 128);
        san[0] = 0x30;
        san[1] = (unsigned char)len;
        san[2] = 0x82;
        san[3] = (unsigned char)n;
        memcpy(san + 4, dns, n);
        memcpy(san + 4 + n, "\x87\x04\x7f\x00\x00\x01", 6);
        cr_assert_eq(mbedtls_x509write_crt_set_extension(
                         &w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                         MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, san, len + 2),
                     0);
    }
    cr_assert_eq(mbedtls_x509write_crt_pem(&w, buf, sizeof(buf), test_rng, NULL), 0);
    mbedtls_x509write_crt_free(&w);
    mbedtls_mpi_free(&serial);
    return eg_xstrdup((char *)buf);
}

typedef struct {
    mbedtls_pk_context ca_key, other_ca_key, key;
    char *ca_pem;
    char ca_file[64];
} pki_t;

static pki_t pki;

static void pki_init(void)
{
    FILE *f;
    int fd;

    gen_key(&pki.ca_key);
    gen_key(&pki.other_ca_key);
    gen_key(&pki.key);
    pki.ca_pem =
        make_cert("CN=engram test CA", "CN=engram test CA", &pki.ca_key, &pki.ca_key, true, NULL);
    snprintf(pki.ca_file, sizeof(pki.ca_file), "/tmp/engram-httpc-ca.XXXXXX");
    fd = mkstemp(pki.ca_file);
    cr_assert_geq(fd, 0);
    f = fdopen(fd, "w");
    fputs(pki.ca_pem, f);
    fclose(f);
}

static void pki_free(void)
{
    unlink(pki.ca_file);
    free(pki.ca_pem);
    mbedtls_pk_free(&pki.ca_key);
    mbedtls_pk_free(&pki.other_ca_key);
    mbedtls_pk_free(&pki.key);
}

/* A TLS server context with a certificate for dns, signed by the test CA or another one. */
static eg_tls_ctx_t *server_ctx(const char *dns, bool trusted_issuer)
{
    eg_tls_ctx_t *ctx = NULL;
    char subject[128], err[256] = "";
    char *cert, *key;

    snprintf(subject, sizeof(subject), "CN=%s", dns);
    cert = make_cert(subject, trusted_issuer ? "CN=engram test CA" : "CN=some other CA", &pki.key,
                     trusted_issuer ? &pki.ca_key : &pki.other_ca_key, false, dns);
    key = key_pem(&pki.key);
    cr_assert_eq(eg__tls_ctx_server(&ctx, cert, key, err, sizeof(err)), 0, "%s", err);
    free(cert);
    free(key);
    return ctx;
}

static void tls_opts(eg_httpc_opts_t *o)
{
    o->extra_ca_file = pki.ca_file;
}

static void tls_opts_system(eg_httpc_opts_t *o)
{
    o->extra_ca_file = pki.ca_file;
    o->system_ca_file = "/etc/ssl/certs/ca-certificates.crt";
}

static result_t tls_second;

static void tls_then(result_t *r)
{
    char u[96];
    snprintf(u, sizeof(u), "https://localhost:%d/again", srv.port);
    get(u, &tls_second);
}

Test(httpc, tls_success_and_reuse, .fini = pki_free)
{
    static result_t a = {.then = tls_then};
    eg_tls_ctx_t *ctx;
    char u[96];

    pki_init();
    ctx = server_ctx("localhost", true);
    tsrv_start(h_echo, ctx);
    new_client("127.0.0.0/8", tls_opts_system);
    snprintf(u, sizeof(u), "https://localhost:%d/secure", srv.port);
    get(u, &a);
    run_loop();
    eg__tls_ctx_free(ctx);
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_str_eq(a.body.data, "GET /secure ");
    cr_assert_eq(tls_second.err, 0, "%s", tls_second.error);
    cr_assert_str_eq(tls_second.body.data, "GET /again ");
    cr_assert_eq(srv.accepts, 1, "the TLS connection is kept alive");
    eg_buf_free(&a.body);
    eg_buf_free(&tls_second.body);
}

Test(httpc, tls_chunked_and_close_delimited, .fini = pki_free)
{
    static result_t a, b;
    eg_tls_ctx_t *ctx;
    char u[96];

    pki_init();
    ctx = server_ctx("localhost", true);
    tsrv_start(h_chunked, ctx);
    new_client("127.0.0.0/8", tls_opts);
    snprintf(u, sizeof(u), "https://localhost:%d/", srv.port);
    get(u, &a);
    run_loop();
    cr_assert_eq(a.err, 0, "%s", a.error);
    cr_assert_str_eq(a.body.data, "hello world");

    setup();
    tsrv_start(h_close_delimited, ctx);
    new_client("127.0.0.0/8", tls_opts);
    snprintf(u, sizeof(u), "https://localhost:%d/", srv.port);
    get(u, &b);
    run_loop();
    eg__tls_ctx_free(ctx);
    cr_assert_eq(b.err, 0, "%s", b.error);
    cr_assert_str_eq(b.body.data, "until the end of the connection");
    eg_buf_free(&a.body);
    eg_buf_free(&b.body);
}

Test(httpc, tls_untrusted_certificate, .fini = pki_free)
{
    static result_t a;
    eg_tls_ctx_t *ctx;
    char u[96];

    pki_init();
    ctx = server_ctx("localhost", false);
    tsrv_start(h_echo, ctx);
    new_client("127.0.0.0/8", tls_opts);
    snprintf(u, sizeof(u), "https://localhost:%d/", srv.port);
    get(u, &a);
    run_loop();
    eg__tls_ctx_free(ctx);
    cr_assert_eq(a.err, EG_ETLS, "%d %s", a.err, a.error);
    cr_assert(strstr(a.error, "verification failed"), "%s", a.error);
    cr_assert_eq(srv.requests, 0);
}

Test(httpc, tls_hostname_mismatch, .fini = pki_free)
{
    static result_t a;
    eg_tls_ctx_t *ctx;
    char u[96];

    pki_init();
    ctx = server_ctx("wrong.test", true);
    tsrv_start(h_echo, ctx);
    new_client("127.0.0.0/8", tls_opts);
    snprintf(u, sizeof(u), "https://localhost:%d/", srv.port);
    get(u, &a);
    run_loop();
    eg__tls_ctx_free(ctx);
    cr_assert_eq(a.err, EG_ETLS, "%d %s", a.err, a.error);
    cr_assert(strstr(a.error, "CN"), "%s", a.error);
    cr_assert_eq(srv.requests, 0);
}

Test(httpc, bad_extra_ca_file)
{
    eg_httpc_opts_t o;

    eg_httpc_opts_default(&o);
    o.system_ca_file = "";
    o.extra_ca_file = "/nonexistent/ca.pem";
    cr_assert_null(eg_httpc_new(&loop, &o));
    o.extra_ca_file = NULL;
    o.allow = "300.0.0.0/8";
    cr_assert_null(eg_httpc_new(&loop, &o));
    uv_close((uv_handle_t *)&watchdog, NULL);
    run_loop();
}
