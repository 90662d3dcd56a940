/*
 * recall_client: the HTTP client of tools/bench/recall, in C (recall.mjs runs it by default).
 *
 *   recall_client get  PORT KEY PATH N CLIENTS        N GETs of PATH
 *   recall_client post PORT KEY PATH REQFILE CLIENTS  one POST of PATH per line of REQFILE
 *   recall_client serve RESPONSE_FILE                 the floor's trivial server (prints its port)
 *
 * REQFILE lines are "EXPECTED<TAB>JSON BODY": the body is sent as is and EXPECTED, a fact's text,
 * is looked for among the first five "text" members of the response (the top-5 sanity check).
 * The client keeps CLIENTS keep-alive connections, each with one request in flight, and prints
 * one line: "n N p50 MS p99 MS max MS bytes B hits H errors E" (latency from the request's
 * write to the last byte of its response; bytes: average response body).
 *
 * Why: the node client spends 1-3 ms of CPU reading and JSON.parse-ing each ~140 KiB recall
 * response, which with 8 requests in flight put a floor of 8-27 ms under the measured p50. This
 * one only reads: the status line, Content-Length (or chunk sizes), and a scan for the first
 * five texts; no allocation per response. serve answers every request on a connection with the
 * same recorded bytes, after reading its headers and body, so "client against serve" is what
 * the client and the kernel's loopback cost without any server work.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define HEAD_MAX    16384
#define KEEP_BODY   16384 /* body bytes kept for the top-5 check */
#define READ_CHUNK  262144

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- client ------------------------------------------------------------------------------- */

typedef struct {
    char *req; /* the whole request: head and body */
    size_t len;
    const char *expected; /* fact text for the top-5 check, or NULL */
} request_t;

typedef enum { ST_HEAD, ST_BODY, ST_CHUNK_SIZE, ST_CHUNK_DATA, ST_CHUNK_CRLF, ST_TRAILER } st_t;

typedef struct {
    int fd;
    size_t req; /* index of the request in flight, SIZE_MAX: idle */
    size_t sent;
    uint64_t t0;
    st_t st;
    char head[HEAD_MAX];
    size_t hlen;
    int status;
    size_t remaining; /* body (or chunk) bytes still to read */
    size_t body_len;
    char body[KEEP_BODY];
    size_t keep;
    char line[32]; /* a chunk-size line */
    size_t llen;
} conn_t;

static request_t *reqs;
static size_t nreqs, next_req, done_reqs, errors, hits;
static double *lat;
static uint64_t total_bytes;

static void keep_body(conn_t *c, const char *p, size_t n)
{
    size_t room = KEEP_BODY - c->keep;

    if (n > room)
        n = room;
    memcpy(c->body + c->keep, p, n);
    c->keep += n;
}

/* Is expected the value of one of the first five "text" members? (Fact texts need no JSON
 * escapes, so a byte comparison is enough.) */
static bool top5_has(const conn_t *c, const char *expected)
{
    const char *p = c->body, *end = c->body + c->keep;
    size_t elen = strlen(expected);

    for (int i = 0; i < 5; i++) {
        p = memmem(p, (size_t)(end - p), "\"text\":\"", 8);
        if (!p)
            return false;
        p += 8;
        if ((size_t)(end - p) > elen && !memcmp(p, expected, elen) && p[elen] == '"')
            return true;
    }
    return false;
}

static void finish(conn_t *c)
{
    const request_t *r = &reqs[c->req];

    lat[c->req] = (double)(now_ns() - c->t0) / 1e6;
    if (c->status != 200)
        errors++;
    else if (r->expected && top5_has(c, r->expected))
        hits++;
    total_bytes += c->body_len;
    done_reqs++;
    c->req = SIZE_MAX;
}

static bool start(conn_t *c)
{
    if (next_req >= nreqs)
        return false;
    c->req = next_req++;
    c->sent = 0;
    c->t0 = now_ns();
    c->st = ST_HEAD;
    c->hlen = c->keep = c->body_len = c->llen = 0;
    c->status = 0;
    return true;
}

static void send_some(conn_t *c)
{
    const request_t *r = &reqs[c->req];

    while (c->sent < r->len) {
        ssize_t n = send(c->fd, r->req + c->sent, r->len - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN)
                return;
            die("send");
        }
        c->sent += (size_t)n;
    }
}

/* The response head is complete in c->head[0..end): status, and how the body is framed. */
static void parse_head(conn_t *c, size_t end)
{
    char *h = c->head, *p;
    bool chunked = false;
    size_t clen = 0;

    h[end - 1] = 0;
    c->status = (int)strtol(h + 9, NULL, 10);
    for (p = strstr(h, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (!strncasecmp(l, "content-length:", 15))
            clen = strtoul(l + 15, NULL, 10);
        else if (!strncasecmp(l, "transfer-encoding:", 18) && strstr(l, "chunked"))
            chunked = true;
    }
    c->st = chunked ? ST_CHUNK_SIZE : ST_BODY;
    c->remaining = chunked ? 0 : clen;
}

/* Feed n bytes of the response; returns how many were used (the rest belongs to nothing: one
 * request in flight per connection). */
static void feed(conn_t *c, const char *p, size_t n)
{
    while (n && c->req != SIZE_MAX) {
        switch (c->st) {
        case ST_HEAD: {
            size_t take = n < HEAD_MAX - 1 - c->hlen ? n : HEAD_MAX - 1 - c->hlen;
            char *e;
            if (!take) {
                fprintf(stderr, "response head too long\n");
                exit(1);
            }
            memcpy(c->head + c->hlen, p, take);
            c->head[c->hlen + take] = 0;
            e = strstr(c->head + (c->hlen > 3 ? c->hlen - 3 : 0), "\r\n\r\n");
            if (!e) {
                c->hlen += take;
                p += take;
                n -= take;
                break;
            }
            size_t end = (size_t)(e - c->head) + 4, used = end - c->hlen;
            parse_head(c, end);
            p += used;
            n -= used;
            if (c->st == ST_BODY && c->remaining == 0)
                finish(c);
            break;
        }
        case ST_BODY:
        case ST_CHUNK_DATA: {
            size_t take = n < c->remaining ? n : c->remaining;
            keep_body(c, p, take);
            c->body_len += take;
            c->remaining -= take;
            p += take;
            n -= take;
            if (c->remaining == 0) {
                if (c->st == ST_BODY)
                    finish(c);
                else
                    c->st = ST_CHUNK_CRLF, c->llen = 0;
            }
            break;
        }
        case ST_CHUNK_SIZE:
        case ST_CHUNK_CRLF:
        case ST_TRAILER:
            /* A line: the chunk size, the CRLF after a chunk's data, or the end. */
            if (c->llen < sizeof(c->line) - 1)
                c->line[c->llen++] = *p;
            p++;
            n--;
            if (c->llen >= 2 && c->line[c->llen - 2] == '\r' && c->line[c->llen - 1] == '\n') {
                c->line[c->llen] = 0;
                if (c->st == ST_CHUNK_CRLF) {
                    c->st = ST_CHUNK_SIZE;
                } else if (c->st == ST_TRAILER) {
                    finish(c);
                } else {
                    c->remaining = strtoul(c->line, NULL, 16);
                    c->st = c->remaining ? ST_CHUNK_DATA : ST_TRAILER;
                }
                c->llen = 0;
            }
            break;
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_client(int port, int clients)
{
    static char buf[READ_CHUNK];
    conn_t *conns = calloc((size_t)clients, sizeof(conn_t));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int ep = epoll_create1(0);

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    lat = calloc(nreqs ? nreqs : 1, sizeof(double));
    if (!conns || !lat || ep < 0)
        die("setup");
    for (int i = 0; i < clients; i++) {
        conn_t *c = &conns[i];
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            die("connect");
        set_nodelay(c->fd);
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        c->req = SIZE_MAX;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            die("epoll_ctl");
        if (start(c))
            send_some(c);
    }
    while (done_reqs < nreqs) {
        struct epoll_event evs[MAX_CLIENTS];
        int n = epoll_wait(ep, evs, MAX_CLIENTS, 30000);
        if (n == 0) {
            fprintf(stderr, "no progress for 30 s (%zu of %zu done)\n", done_reqs, nreqs);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->req != SIZE_MAX && evs[i].events & EPOLLOUT)
                send_some(c);
            for (;;) {
                ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0) {
                    fprintf(stderr, "connection closed by the server\n");
                    return 1;
                }
                feed(c, buf, (size_t)r);
                /* The response is done: the next request goes out on the same connection. */
                if (c->req == SIZE_MAX && start(c))
                    send_some(c);
            }
        }
    }
    qsort(lat, nreqs, sizeof(double), cmp_double);
    printf("n %zu p50 %.3f p99 %.3f max %.3f bytes %.0f hits %zu errors %zu\n", nreqs,
           lat[nreqs / 2], lat[nreqs * 99 / 100 < nreqs ? nreqs * 99 / 100 : nreqs - 1],
           lat[nreqs - 1], nreqs ? (double)total_bytes / (double)nreqs : 0.0, hits, errors);
    for (int i = 0; i < clients; i++)
        close(conns[i].fd);
    free(conns);
    free(lat);
    close(ep);
    return errors ? 2 : 0;
}

static char *format_request(const char *method, const char *path, const char *key, int port,
                            const char *body, size_t blen, size_t *len)
{
    size_t cap = strlen(path) + strlen(key) + blen + 256;
    char *r = malloc(cap);
    int n;

    if (!r)
        die("malloc");
    n = snprintf(r, cap,
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n%s"
                 "Content-Length: %zu\r\n\r\n",
                 method, path, port, key, body ? "Content-Type: application/json\r\n" : "", blen);
    memcpy(r + n, body, blen);
    *len = (size_t)n + blen;
    return r;
}

/* ---- the floor's trivial server ---------------------------------------------------------- */

typedef struct {
    int fd;
    char in[HEAD_MAX];
    size_t ilen;
    size_t body_left; /* request body bytes still to skip */
    bool in_body;
    size_t out_off; /* bytes of the response sent; SIZE_MAX: none pending */
} sconn_t;

static char *canned;
static size_t canned_len;

static void serve_flush(sconn_t *c)
{
    while (c->out_off < canned_len) {
        ssize_t n = send(c->fd, canned + c->out_off, canned_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN)
                c->out_off = canned_len;
            return;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = SIZE_MAX;
}

/* Requests on a connection come one at a time (the client waits for each response). */
static void serve_feed(sconn_t *c, const char *p, size_t n)
{
    while (n) {
        if (c->in_body) {
            size_t take = n < c->body_left ? n : c->body_left;
            c->body_left -= take;
            p += take;
            n -= take;
        } else {
            size_t take = n < HEAD_MAX - 1 - c->ilen ? n : HEAD_MAX - 1 - c->ilen;
            char *e;
            memcpy(c->in + c->ilen, p, take);
            c->in[c->ilen + take] = 0;
            e = strstr(c->in, "\r\n\r\n");
            if (!e) {
                c->ilen += take;
                p += take;
                n -= take;
                if (c->ilen >= HEAD_MAX - 1)
                    c->ilen = 0; /* garbage: drop it */
                continue;
            }
            size_t end = (size_t)(e - c->in) + 4, used = end - c->ilen;
            char *cl = strcasestr(c->in, "\r\ncontent-length:");
            c->body_left = cl && cl < e ? strtoul(cl + 17, NULL, 10) : 0;
            c->in_body = true;
            c->ilen = 0;
            p += used;
            n -= used;
        }
        if (c->in_body && c->body_left == 0) {
            c->in_body = false;
            c->out_off = 0;
            serve_flush(c);
        }
    }
}

static int run_serve(const char *file)
{
    static char buf[65536];
    FILE *f = fopen(file, "rb");
    char head[128];
    long size;
    int lfd, ep, one = 1, hl;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t slen = sizeof(sa);

    if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0)
        die(file);
    rewind(f);
    hl = snprintf(
        head, sizeof(head),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %ld\r\n\r\n", size);
    canned_len = (size_t)hl + (size_t)size;
    canned = malloc(canned_len);
    if (!canned || fread(canned + hl, 1, (size_t)size, f) != (size_t)size)
        die("read");
    memcpy(canned, head, (size_t)hl);
    fclose(f);

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 128) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &slen) != 0)
        die("listen");
    printf("%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    for (;;) {
        struct epoll_event evs[MAX_CLIENTS];
        int n = epoll_wait(ep, evs, MAX_CLIENTS, -1);
        for (int i = 0; i < n; i++) {
            sconn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (fd < 0)
                    continue;
                set_nodelay(fd);
                c = calloc(1, sizeof(*c));
                c->fd = fd;
                c->out_off = SIZE_MAX;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                continue;
            }
            if (c->out_off != SIZE_MAX && evs[i].events & EPOLLOUT)
                serve_flush(c);
            for (;;) {
                ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0) {
                    close(c->fd);
                    free(c);
                    break;
                }
                serve_feed(c, buf, (size_t)r);
            }
        }
    }
    return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: recall_client get PORT KEY PATH N CLIENTS\n"
                    "       recall_client post PORT KEY PATH REQFILE CLIENTS\n"
                    "       recall_client serve RESPONSE_FILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port, clients;

    if (argc == 3 && !strcmp(argv[1], "serve"))
        return run_serve(argv[2]);
    if (argc != 7 || (strcmp(argv[1], "get") && strcmp(argv[1], "post")))
        usage();
    port = atoi(argv[2]);
    clients = atoi(argv[6]);
    if (port <= 0 || clients <= 0 || clients > MAX_CLIENTS)
        usage();
    if (!strcmp(argv[1], "get")) {
        size_t len;
        char *r = format_request("GET", argv[4], argv[3], port, "", 0, &len);
        nreqs = strtoul(argv[5], NULL, 10);
        reqs = calloc(nreqs ? nreqs : 1, sizeof(*reqs));
        for (size_t i = 0; i < nreqs; i++)
            reqs[i] = (request_t){r, len, NULL};
    } else {
        FILE *f = fopen(argv[5], "r");
        char *line = NULL;
        size_t cap = 0, rcap = 0;
        ssize_t n;
        if (!f)
            die(argv[5]);
        while ((n = getline(&line, &cap, f)) > 0) {
            char *tab = memchr(line, '\t', (size_t)n);
            size_t blen;
            if (!tab)
                continue;
            *tab = 0;
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = 0;
            blen = (size_t)(line + n - (tab + 1));
            if (nreqs == rcap) {
                rcap = rcap ? 2 * rcap : 1024;
                reqs = realloc(reqs, rcap * sizeof(*reqs));
                if (!reqs)
                    die("realloc");
            }
            reqs[nreqs].req =
                format_request("POST", argv[4], argv[3], port, tab + 1, blen, &reqs[nreqs].len);
            reqs[nreqs].expected = *line ? strdup(line) : NULL;
            nreqs++;
        }
        free(line);
        fclose(f);
    }
    return run_client(port, clients);
}
