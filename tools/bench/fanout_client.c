/*
 * fanout_client: the client half of tools/bench/fanout, in C.
 *
 * Opens WATCHERS WebSocket watchers on engramd's /engram/v1/events/ws, emits EVENTS events one
 * after the other over HTTP (one keep-alive connection), and for each event measures the time
 * from the start of the emit request to the moment the last watcher has read it. The baseline,
 * in the same invocation, is the same measurement with one watcher.
 *
 *   fanout_client PORT KEY WATCHERS EVENTS [ENGRAMD_PID]
 *
 * Why not only the node client (fanout.mjs): with 10,000 sockets the `ws` package spends about
 * 15 µs of CPU per message, more than engramd spends per delivery, so on a small machine it
 * measured node. This client does the least a correct WebSocket client must: the handshake
 * (checking the accept key), unmasked server frames of any length split across reads, an answer
 * to pings, and a match of each text message's entity id against the event in flight; no JSON
 * parse, no per-message allocation. One libuv loop, one thread.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#define READ_BUF_SIZE    65536
#define CONNECT_WINDOW   500   /* connects (and handshakes) in flight at once */
#define SETTLE_MS        500   /* after the last watcher opened, before the first emit */
#define GAP_MS           20    /* between events */
#define EVENT_TIMEOUT_MS 10000 /* an event not delivered to everyone by then counts as lost */

/* RFC 6455's sample key: its accept value is in the RFC. */
#define WS_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

typedef struct run_s run_t;

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    run_t *run;
    char *buf; /* bytes of an unfinished handshake or frame */
    size_t len, cap;
    bool open;
} watcher_t;

typedef struct {
    uv_write_t req;
    unsigned char frame[2 + 4 + 125];
} pong_t;

struct run_s {
    int watchers;
    watcher_t *w;
    int next_connect, opened, closed;
    uint64_t connect_start, connect_ns;
    int event;           /* index of the event in flight */
    char cur_id[32];     /* its entity id */
    int remaining;       /* watchers that have not received it */
    uint64_t emit_start; /* uv_hrtime() at the emit request */
    bool delivered, answered;
    double *lat, *first; /* ms per event; INFINITY = lost */
    double server_cpu_ms, client_cpu_ms;
};

static uv_loop_t *loop;
static const char *g_port, *g_key;
static int g_events, g_server_pid;
static char read_buf[READ_BUF_SIZE];
static char g_handshake[1024];
static uv_timer_t timer, timeout_timer;
static run_t runs[2];
static int cur_run;
static struct sockaddr_in addr;

/* The emitting connection: one keep-alive HTTP/1.1 connection. */
static struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    char req[1024];
    char *buf;
    size_t len, cap;
} emitter;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("fanout_client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 512;
        while (c < *len + n)
            c *= 2;
        *buf = realloc(*buf, c);
        if (*buf == NULL)
            die("out of memory");
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = read_buf;
    b->len = sizeof(read_buf);
}

/* engramd's CPU time (user + system) in ms, from /proc: the server's share of the work. */
static double server_cpu_ms(void)
{
    char path[64], line[1024];
    unsigned long utime, stime;
    FILE *f;
    char *p;

    if (g_server_pid <= 0)
        return NAN;
    snprintf(path, sizeof(path), "/proc/%d/stat", g_server_pid);
    f = fopen(path, "r");
    if (f == NULL)
        return NAN;
    p = fgets(line, sizeof(line), f);
    fclose(f);
    if (p == NULL || (p = strrchr(line, ')')) == NULL)
        return NAN;
    /* After "pid (comm)": state is field 3, utime 14, stime 15. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return NAN;
    return (double)(utime + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static double client_cpu_ms(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

static void emit_next(uv_timer_t *t);
static void run_start(run_t *r);

/* ---- watchers ------------------------------------------------------------------------------ */

static void on_pong_written(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
}

static void send_pong(watcher_t *w, const unsigned char *data, size_t len)
{
    pong_t *p = malloc(sizeof(*p));
    uv_buf_t b;

    if (p == NULL)
        die("out of memory");
    /* Client frames are masked; a zero mask leaves the payload as it is. */
    p->frame[0] = 0x8a;
    p->frame[1] = (unsigned char)(0x80 | len);
    memset(p->frame + 2, 0, 4);
    memcpy(p->frame + 6, data, len);
    p->req.data = p;
    b = uv_buf_init((char *)p->frame, (unsigned)(6 + len));
    if (uv_write(&p->req, (uv_stream_t *)&w->tcp, &b, 1, on_pong_written) != 0)
        free(p);
}

/* A text message: the event's JSON. The entity id of the event in flight, "id":"e<n>" inside
 * "entity", marks a delivery; anything else is an event of an earlier round or of another
 * workspace user and is ignored. */
static void on_text(watcher_t *w, const char *data, size_t len)
{
    run_t *r = w->run;
    const char *end = data + len, *p;
    size_t idlen = strlen(r->cur_id);

    p = memmem(data, len, "\"entity\":", 9);
    if (p == NULL || r->remaining == 0)
        return;
    p = memmem(p, (size_t)(end - p), "\"id\":\"", 6);
    if (p == NULL)
        return;
    p += 6;
    if ((size_t)(end - p) <= idlen || memcmp(p, r->cur_id, idlen) != 0 || p[idlen] != '"')
        return;
    if (r->remaining == r->watchers)
        r->first[r->event] = (double)(uv_hrtime() - r->emit_start) / 1e6;
    if (--r->remaining == 0) {
        r->lat[r->event] = (double)(uv_hrtime() - r->emit_start) / 1e6;
        r->delivered = true;
        if (r->answered) {
            uv_timer_stop(&timeout_timer);
            uv_timer_start(&timer, emit_next, GAP_MS, 0);
        }
    }
}

/* Parse whole frames from data; returns the bytes consumed. */
static size_t parse_frames(watcher_t *w, const unsigned char *data, size_t len)
{
    size_t off = 0;

    while (len - off >= 2) {
        const unsigned char *f = data + off;
        int op = f[0] & 0x0f;
        uint64_t plen = f[1] & 0x7f;
        size_t hdr = 2;

        if (f[1] & 0x80)
            die("the server sent a masked frame");
        if (plen == 126) {
            if (len - off < 4)
                break;
            plen = ((uint64_t)f[2] << 8) | f[3];
            hdr = 4;
        } else if (plen == 127) {
            if (len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | f[2 + i];
            hdr = 10;
        }
        if (len - off - hdr < plen)
            break;
        if (!(f[0] & 0x80) || op == 0)
            die("the server sent a fragmented message");
        if (op == 1)
            on_text(w, (const char *)f + hdr, (size_t)plen);
        else if (op == 9 && plen <= 125)
            send_pong(w, f + hdr, (size_t)plen);
        else if (op == 8)
            die("the server closed a watcher (close code %d)",
                plen >= 2 ? (f[hdr] << 8) | f[hdr + 1] : 1005);
        off += hdr + (size_t)plen;
    }
    return off;
}

static void watcher_opened(watcher_t *w)
{
    run_t *r = w->run;

    w->open = true;
    if (++r->opened == r->watchers) {
        r->connect_ns = uv_hrtime() - r->connect_start;
        uv_timer_start(&timer, emit_next, SETTLE_MS, 0);
    }
}

static void watcher_connect_next(run_t *r);

static void on_watcher_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    watcher_t *w = s->data;
    size_t used;

    if (n < 0)
        die("watcher connection: %s", uv_strerror((int)n));
    if (n == 0)
        return;
    if (!w->open) {
        char *end;

        buf_append(&w->buf, &w->len, &w->cap, b->base, (size_t)n);
        end = memmem(w->buf, w->len, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        *end = '\0';
        if (strncmp(w->buf, "HTTP/1.1 101", 12) != 0)
            die("WebSocket handshake refused: %.200s", w->buf);
        if (strcasestr(w->buf, "\r\nSec-WebSocket-Accept: " WS_ACCEPT) == NULL)
            die("WebSocket handshake: wrong or missing Sec-WebSocket-Accept");
        end += 4;
        w->len -= (size_t)(end - w->buf);
        memmove(w->buf, end, w->len);
        watcher_opened(w);
        watcher_connect_next(w->run);
        if (w->len == 0)
            return;
        used = parse_frames(w, (unsigned char *)w->buf, w->len);
        w->len -= used;
        memmove(w->buf, w->buf + used, w->len);
        return;
    }
    if (w->len == 0) {
        /* The usual case: whole frames straight from the read buffer. */
        used = parse_frames(w, (unsigned char *)b->base, (size_t)n);
        if (used < (size_t)n)
            buf_append(&w->buf, &w->len, &w->cap, b->base + used, (size_t)n - used);
        return;
    }
    buf_append(&w->buf, &w->len, &w->cap, b->base, (size_t)n);
    used = parse_frames(w, (unsigned char *)w->buf, w->len);
    w->len -= used;
    memmove(w->buf, w->buf + used, w->len);
}

static void on_handshake_written(uv_write_t *req, int status)
{
    if (status < 0)
        die("watcher handshake: %s", uv_strerror(status));
    (void)req;
}

static void on_watcher_connect(uv_connect_t *req, int status)
{
    watcher_t *w = req->data;
    uv_buf_t b = uv_buf_init(g_handshake, (unsigned)strlen(g_handshake));

    if (status < 0)
        die("watcher connect: %s", uv_strerror(status));
    /* Every watcher sends the same request: one buffer, never modified, serves them all. */
    if (uv_write(&w->wreq, (uv_stream_t *)&w->tcp, &b, 1, on_handshake_written) != 0 ||
        uv_read_start((uv_stream_t *)&w->tcp, on_alloc, on_watcher_read) != 0)
        die("watcher handshake failed");
}

static void watcher_connect_next(run_t *r)
{
    watcher_t *w;

    if (r->next_connect >= r->watchers)
        return;
    w = &r->w[r->next_connect++];
    w->run = r;
    uv_tcp_init(loop, &w->tcp);
    uv_tcp_nodelay(&w->tcp, 1);
    w->tcp.data = w;
    w->creq.data = w;
    if (uv_tcp_connect(&w->creq, &w->tcp, (const struct sockaddr *)&addr, on_watcher_connect) != 0)
        die("uv_tcp_connect failed");
}

/* ---- the emitter ----------------------------------------------------------------------------- */

static void on_emit_written(uv_write_t *req, int status)
{
    (void)req;
    if (status < 0)
        die("emit: %s", uv_strerror(status));
}

static void on_emit_timeout(uv_timer_t *t)
{
    run_t *r = &runs[cur_run];

    (void)t;
    r->lat[r->event] = INFINITY;
    if (r->remaining == r->watchers)
        r->first[r->event] = INFINITY;
    r->remaining = 0;
    r->delivered = true;
    if (r->answered)
        uv_timer_start(&timer, emit_next, GAP_MS, 0);
}

static void on_emitter_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    run_t *r = &runs[cur_run];
    char *end, *cl;
    size_t head, body;

    (void)s;
    if (n < 0)
        die("emit connection: %s", uv_strerror((int)n));
    buf_append(&emitter.buf, &emitter.len, &emitter.cap, b->base, (size_t)n);
    end = memmem(emitter.buf, emitter.len, "\r\n\r\n", 4);
    if (end == NULL)
        return;
    head = (size_t)(end + 4 - emitter.buf);
    *end = '\0';
    cl = strcasestr(emitter.buf, "\r\ncontent-length:");
    body = cl ? strtoul(cl + 17, NULL, 10) : 0;
    *end = '\r';
    if (emitter.len < head + body)
        return;
    if (strncmp(emitter.buf, "HTTP/1.1 201", 12) != 0)
        die("emit answered: %.*s", (int)emitter.len, emitter.buf);
    emitter.len = 0;
    r->answered = true;
    if (r->delivered) {
        uv_timer_stop(&timeout_timer);
        uv_timer_start(&timer, emit_next, GAP_MS, 0);
    }
}

static void on_emitter_connect(uv_connect_t *req, int status)
{
    (void)req;
    if (status < 0)
        die("emit connect: %s", uv_strerror(status));
    if (uv_read_start((uv_stream_t *)&emitter.tcp, on_alloc, on_emitter_read) != 0)
        die("emit read failed");
    run_start(&runs[0]);
}

static void emit(int n)
{
    run_t *r = &runs[cur_run];
    char body[128];
    uv_buf_t b;
    int blen, len;

    snprintf(r->cur_id, sizeof(r->cur_id), "e%d", n);
    blen = snprintf(body, sizeof(body), "{\"type\":\"bench.fanout\",\"entity\":{\"id\":\"%s\"}}",
                    r->cur_id);
    len = snprintf(emitter.req, sizeof(emitter.req),
                   "POST /engram/v1/events HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n"
                   "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n%s",
                   g_port, g_key, blen, body);
    r->event = n;
    r->remaining = r->watchers;
    r->delivered = r->answered = false;
    r->emit_start = uv_hrtime();
    b = uv_buf_init(emitter.req, (unsigned)len);
    if (uv_write(&emitter.wreq, (uv_stream_t *)&emitter.tcp, &b, 1, on_emit_written) != 0)
        die("emit write failed");
    uv_timer_start(&timeout_timer, on_emit_timeout, EVENT_TIMEOUT_MS, 0);
}

/* ---- runs --------------------------------------------------------------------------------------
 */

static void on_watcher_closed(uv_handle_t *h)
{
    watcher_t *w = h->data;
    run_t *r = w->run;

    free(w->buf);
    if (++r->closed < r->watchers)
        return;
    if (cur_run == 0) {
        cur_run = 1;
        run_start(&runs[1]);
    } else {
        uv_close((uv_handle_t *)&emitter.tcp, NULL);
    }
}

static void emit_next(uv_timer_t *t)
{
    run_t *r = &runs[cur_run];
    int next = r->event + 1;

    (void)t;
    if (r->emit_start == 0) {
        /* The first event of the run. */
        r->server_cpu_ms = server_cpu_ms();
        r->client_cpu_ms = client_cpu_ms();
        next = 0;
    }
    if (next < g_events) {
        emit(next);
        return;
    }
    r->server_cpu_ms = (server_cpu_ms() - r->server_cpu_ms) / g_events;
    r->client_cpu_ms = (client_cpu_ms() - r->client_cpu_ms) / g_events;
    /* Reset rather than close: 10,000 sockets in TIME_WAIT would hold a third of the ephemeral
     * ports for a minute, and a second run soon after could not connect. */
    for (int i = 0; i < r->watchers; i++)
        if (uv_tcp_close_reset(&r->w[i].tcp, on_watcher_closed) != 0)
            uv_close((uv_handle_t *)&r->w[i].tcp, on_watcher_closed);
}

static void run_start(run_t *r)
{
    r->w = calloc((size_t)r->watchers, sizeof(*r->w));
    r->lat = calloc((size_t)g_events, sizeof(double));
    r->first = calloc((size_t)g_events, sizeof(double));
    if (r->w == NULL || r->lat == NULL || r->first == NULL)
        die("out of memory");
    r->connect_start = uv_hrtime();
    for (int i = 0; i < CONNECT_WINDOW; i++)
        watcher_connect_next(r);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double pct(const double *sorted, int n, double p)
{
    int i = (int)(p / 100.0 * n);

    return sorted[i < n ? i : n - 1];
}

static void fmt(char *out, size_t size, double ms)
{
    if (isinf(ms))
        snprintf(out, size, "lost");
    else
        snprintf(out, size, "%.1f", ms);
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    int watchers, lost;

    if (argc < 5) {
        fprintf(stderr, "usage: fanout_client PORT KEY WATCHERS EVENTS [ENGRAMD_PID]\n");
        return 2;
    }
    g_port = argv[1];
    g_key = argv[2];
    watchers = atoi(argv[3]);
    g_events = atoi(argv[4]);
    g_server_pid = argc > 5 ? atoi(argv[5]) : 0;
    if (watchers < 1 || g_events < 1)
        die("WATCHERS and EVENTS must be positive");
    /* One descriptor per watcher. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)watchers + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)watchers + 64 ? rl.rlim_max : (rlim_t)watchers + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    runs[0].watchers = 1;
    runs[1].watchers = watchers;

    snprintf(g_handshake, sizeof(g_handshake),
             "GET /engram/v1/events/ws?token=%s&type=bench.fanout HTTP/1.1\r\n"
             "Host: 127.0.0.1:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
             g_key, g_port);
    loop = uv_default_loop();
    uv_ip4_addr("127.0.0.1", atoi(g_port), &addr);
    uv_timer_init(loop, &timer);
    uv_timer_init(loop, &timeout_timer);
    uv_tcp_init(loop, &emitter.tcp);
    uv_tcp_nodelay(&emitter.tcp, 1);
    if (uv_tcp_connect(&emitter.creq, &emitter.tcp, (const struct sockaddr *)&addr,
                       on_emitter_connect) != 0)
        die("uv_tcp_connect failed");
    uv_run(loop, UV_RUN_DEFAULT); /* returns once the last socket closed */

    printf("\n%d events; latency = emit request start → last watcher received (C client)\n\n",
           g_events);
    printf("| watchers | connect all (ms) | first p50 ms | p50 ms | p99 ms | max ms | lost | "
           "engramd CPU ms/event | client CPU ms/event |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < 2; i++) {
        run_t *r = &runs[i];
        char p50[16], p99[16], mx[16], f50[16];

        lost = 0;
        for (int e = 0; e < g_events; e++)
            lost += isinf(r->lat[e]);
        qsort(r->lat, (size_t)g_events, sizeof(double), cmp_double);
        qsort(r->first, (size_t)g_events, sizeof(double), cmp_double);
        fmt(p50, sizeof(p50), pct(r->lat, g_events, 50));
        fmt(p99, sizeof(p99), pct(r->lat, g_events, 99));
        fmt(mx, sizeof(mx), r->lat[g_events - 1]);
        fmt(f50, sizeof(f50), pct(r->first, g_events, 50));
        printf("| %d | %.0f | %s | %s | %s | %s | %d | %.1f | %.1f |\n", r->watchers,
               (double)r->connect_ns / 1e6, f50, p50, p99, mx, lost, r->server_cpu_ms,
               r->client_cpu_ms);
    }
    {
        double p99 = pct(runs[1].lat, g_events, 99);
        char s[16];

        fmt(s, sizeof(s), p99);
        printf("\np99 with %d watchers: %s ms (goal ≤ 100 ms): %s\n", watchers, s,
               p99 <= 100 ? "met" : "NOT met");
    }
    return 0;
}
