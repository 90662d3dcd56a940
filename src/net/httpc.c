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
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <llhttp.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/ssrf.h"
#include "engram/util.h"
#include "tls_int.h"

#define EG_HTTPC_READ_BUF  65536
#define EG_HTTPC_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

typedef struct eg_hc_origin_s eg_hc_origin_t;
typedef struct eg_hc_conn_s eg_hc_conn_t;

typedef struct eg_url_s {
    bool tls;
    int port;
    char *host;     /* lowercase, IPv6 without brackets */
    char *hostport; /* Host header value */
    char *target;   /* path and query, at least "/" */
    char *href;     /* the whole URL, fragment dropped */
} eg_url_t;

struct eg_httpc_s {
    uv_loop_t *loop;
    eg_httpc_opts_t opts;
    char *user_agent;
    eg_ssrf_t *ssrf;
    eg_tls_ctx_t *tls;
    llhttp_settings_t settings;
    eg_hc_origin_t *origins;
    eg_hc_conn_t *conns; /* every connection not yet freed */
    eg_httpc_call_t *calls;
    size_t nopen; /* connections not closing */
    size_t refs;  /* calls and connections not yet freed */
    unsigned freeing : 1;
};

struct eg_hc_origin_s {
    eg_hc_origin_t *next;
    bool tls;
    int port;
    char *host;
    eg_hc_conn_t *idle; /* most recently used first */
    int nidle;
    int nconns;
    eg_httpc_call_t *wait_head, *wait_tail;
};

typedef enum {
    CONN_RESOLVING,
    CONN_CONNECTING,
    CONN_HANDSHAKE,
    CONN_BUSY,
    CONN_IDLE,
    CONN_CLOSING
} eg_conn_state_t;

struct eg_hc_conn_s {
    eg_httpc_t *c;
    eg_hc_origin_t *origin;
    eg_hc_conn_t *prev, *next; /* client list */
    eg_hc_conn_t *idle_next;
    eg_httpc_call_t *call;
    eg_conn_state_t state;
    uv_timer_t timer; /* idle expiry */
    uv_tcp_t *tcp;
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    struct addrinfo *ai;
    struct addrinfo *ai_next; /* next address to try */
    llhttp_t parser;
    eg_tls_t tls;
    int handles; /* open handles (timer, tcp) */
    int last_connect_err;
    char addr[64]; /* address being tried, for messages */
    unsigned gai_pending : 1;
    unsigned reused : 1; /* served a response before */
};

typedef enum { CALL_QUEUED, CALL_CONNECTING, CALL_WAIT_HEADERS, CALL_BODY } eg_call_phase_t;

struct eg_httpc_call_s {
    eg_httpc_t *c;
    eg_httpc_call_t *prev, *next; /* client list */
    eg_httpc_call_t *wait_next;
    eg_hc_origin_t *waiting; /* origin whose queue holds the call */
    eg_hc_conn_t *conn;
    uv_timer_t timer;
    eg_arena_t arena;
    eg_httpc_done_fn done;
    eg_httpc_headers_fn on_headers;
    eg_httpc_data_fn on_data;
    void *udata;

    const char *method;
    eg_kv_t *headers; /* request headers, arena */
    size_t nheaders;
    eg_buf_t body;
    eg_url_t url;

    uint64_t connect_timeout_ms, header_timeout_ms;
    uint64_t total_deadline, phase_deadline; /* uv_now() milliseconds */
    uint64_t start_ns;
    size_t max_response_bytes;
    int max_redirects;
    eg_call_phase_t phase;

    /* response being parsed */
    eg_httpc_resp_t resp;
    size_t hcap;
    eg_buf_t hname, hval;
    size_t header_bytes;
    size_t body_bytes;
    const char *location;

    int err;
    char errmsg[256];
    unsigned finished : 1;  /* outcome decided, done pending */
    unsigned complete : 1;  /* message complete seen */
    unsigned redirect : 1;  /* the response being parsed is a redirect to follow */
    unsigned interim : 1;   /* a 1xx response is being parsed */
    unsigned got_bytes : 1; /* any response byte on this hop */
    unsigned retried : 1;   /* already re-sent once after a stale keep-alive connection */
};

static char read_buf[EG_HTTPC_READ_BUF]; /* one loop, one thread: reads are consumed at once */

static void dispatch(eg_httpc_call_t *call);
static void conn_close(eg_hc_conn_t *conn);
static void conn_send(eg_hc_conn_t *conn);
static void origin_pump(eg_hc_origin_t *o);
static void call_arm(eg_httpc_call_t *call);

/* ---- options ---------------------------------------------------------------------------- */

void eg_httpc_opts_default(eg_httpc_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 10000;
    o->header_timeout_ms = 60000;
    o->total_timeout_ms = 300000;
    o->idle_timeout_ms = 30000;
    o->max_response_bytes = 10u << 20;
    o->max_header_bytes = 64u << 10;
    o->max_redirects = 5;
    o->max_idle_per_origin = 8;
    o->max_conns_per_origin = 16;
    o->system_ca_file = EG_HTTPC_SYSTEM_CA;
}

static const char *env_get(const char *(*get)(const char *), const char *name)
{
    const char *v = get ? get(name) : getenv(name);
    return v && *v ? v : NULL;
}

int eg_httpc_opts_from_env(eg_httpc_opts_t *o, const char *(*get)(const char *name), char *errbuf,
                           size_t errlen)
{
    static const struct {
        const char *name;
        size_t off;
        char kind; /* d = duration, s = size, i = int */
        int64_t min, max;
    } vars[] = {
        {"ENGRAM_OUTBOUND_CONNECT_TIMEOUT", offsetof(eg_httpc_opts_t, connect_timeout_ms), 'd', 1,
         0},
        {"ENGRAM_OUTBOUND_HEADER_TIMEOUT", offsetof(eg_httpc_opts_t, header_timeout_ms), 'd', 1, 0},
        {"ENGRAM_OUTBOUND_TIMEOUT", offsetof(eg_httpc_opts_t, total_timeout_ms), 'd', 1, 0},
        {"ENGRAM_OUTBOUND_IDLE_TIMEOUT", offsetof(eg_httpc_opts_t, idle_timeout_ms), 'd', 1, 0},
        {"ENGRAM_OUTBOUND_MAX_RESPONSE_SIZE", offsetof(eg_httpc_opts_t, max_response_bytes), 's', 1,
         0},
        {"ENGRAM_OUTBOUND_MAX_REDIRECTS", offsetof(eg_httpc_opts_t, max_redirects), 'i', 0, 20},
        {"ENGRAM_OUTBOUND_POOL_IDLE", offsetof(eg_httpc_opts_t, max_idle_per_origin), 'i', 0, 1024},
        {"ENGRAM_OUTBOUND_POOL_MAX", offsetof(eg_httpc_opts_t, max_conns_per_origin), 'i', 1, 4096},
    };
    const char *v;

    for (size_t i = 0; i < EG_ARRAY_SIZE(vars); i++) {
        char *field = (char *)o + vars[i].off;
        uint64_t ms;
        size_t sz;
        int64_t n;

        if (!(v = env_get(get, vars[i].name)))
            continue;
        if (vars[i].kind == 'd' && eg_parse_duration_ms(v, &ms) == 0 && ms > 0) {
            memcpy(field, &ms, sizeof(ms));
        } else if (vars[i].kind == 's' && eg_parse_size(v, &sz) == 0) {
            memcpy(field, &sz, sizeof(sz));
        } else if (vars[i].kind == 'i' && eg_parse_int64(v, vars[i].min, vars[i].max, &n) == 0) {
            int iv = (int)n;
            memcpy(field, &iv, sizeof(iv));
        } else {
            if (errbuf && errlen)
                snprintf(errbuf, errlen, "%s: invalid value \"%s\"", vars[i].name, v);
            return EG_EINVAL;
        }
    }
    if ((v = env_get(get, "ENGRAM_OUTBOUND_CA_FILE")))
        o->extra_ca_file = v;
    if ((v = env_get(get, "ENGRAM_OUTBOUND_ALLOW")))
        o->allow = v;
    return 0;
}

/* ---- URLs ------------------------------------------------------------------------------- */

/* Length of "scheme:" at the start of s, or 0 (RFC 3986 §3.1). */
static size_t scheme_len(const char *s)
{
    size_t i = 0;

    if (!isalpha((unsigned char)s[0]))
        return 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    return s[i] == ':' ? i + 1 : 0;
}

/* Parse an absolute http(s) URL into u (strings in a). Fragments are dropped. Anything but a
 * plain ASCII URL is refused: the request line must not carry bytes the server would read
 * differently from us. */
static int url_parse(const char *s, eg_url_t *u, eg_arena_t *a)
{
    const char *auth, *end, *host, *hend, *p;
    size_t slen = strcspn(s, "#");
    int64_t port;

    memset(u, 0, sizeof(*u));
    for (p = s; p < s + slen; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return EG_EINVAL;
    }
    if (strncasecmp(s, "http://", 7) == 0) {
        auth = s + 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        u->tls = true;
        auth = s + 8;
    } else {
        return scheme_len(s) ? EG_ESSRF : EG_EINVAL;
    }
    end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(end - auth)))
        return EG_ESSRF; /* credentials in URLs leak into logs and redirects; use headers */
    host = auth;
    if (*host == '[') {
        hend = memchr(host, ']', (size_t)(end - host));
        if (!hend)
            return EG_EINVAL;
        for (p = host + 1; p < hend; p++) {
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return EG_EINVAL;
        }
        u->host = eg_arena_strndup(a, host + 1, (size_t)(hend - host - 1));
        p = hend + 1;
    } else {
        hend = host;
        while (hend < end && *hend != ':')
            hend++;
        for (p = host; p < hend; p++) {
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
                return EG_EINVAL;
        }
        u->host = eg_arena_strndup(a, host, (size_t)(hend - host));
        p = hend;
    }
    if (u->host[0] == '\0')
        return EG_EINVAL;
    for (char *h = u->host; *h; h++)
        *h = (char)tolower((unsigned char)*h);
    u->port = u->tls ? 443 : 80;
    if (p < end) {
        char num[8];
        if (*p != ':' || end - p - 1 < 1 || end - p - 1 > 5)
            return EG_EINVAL;
        memcpy(num, p + 1, (size_t)(end - p - 1));
        num[end - p - 1] = '\0';
        if (eg_parse_int64(num, 1, 65535, &port) != 0)
            return EG_EINVAL;
        u->port = (int)port;
    }
    {
        bool v6 = strchr(u->host, ':') != NULL;
        bool dflt = u->port == (u->tls ? 443 : 80);
        u->hostport = dflt ? eg_arena_printf(a, v6 ? "[%s]" : "%s", u->host)
                           : eg_arena_printf(a, v6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
    }
    if (*end == '/')
        u->target = eg_arena_strndup(a, end, (size_t)(s + slen - end));
    else
        u->target = eg_arena_printf(a, "/%.*s", (int)(s + slen - end), end);
    u->href = eg_arena_printf(a, "%s://%s%s", u->tls ? "https" : "http", u->hostport, u->target);
    return 0;
}

int eg_httpc_url_check(const char *url)
{
    eg_arena_t a;
    eg_url_t u;
    int rc;

    eg_arena_init(&a);
    rc = url_parse(url, &u, &a);
    eg_arena_destroy(&a);
    return rc;
}

/* Resolve a Location value against the URL it came from (RFC 3986 §5.2, without dot-segment
 * removal, which the server that sent the reference can handle itself). */
static char *url_resolve(const eg_url_t *base, const char *loc, eg_arena_t *a)
{
    const char *scheme = base->tls ? "https" : "http";

    if (scheme_len(loc))
        return eg_arena_strdup(a, loc);
    if (loc[0] == '/' && loc[1] == '/')
        return eg_arena_printf(a, "%s:%s", scheme, loc);
    if (loc[0] == '/')
        return eg_arena_printf(a, "%s://%s%s", scheme, base->hostport, loc);
    if (loc[0] == '?') {
        size_t plen = strcspn(base->target, "?");
        return eg_arena_printf(a, "%s://%s%.*s%s", scheme, base->hostport, (int)plen, base->target,
                               loc);
    }
    {
        size_t plen = strcspn(base->target, "?");
        const char *slash = base->target;
        for (size_t i = 0; i < plen; i++) {
            if (base->target[i] == '/')
                slash = base->target + i;
        }
        return eg_arena_printf(a, "%s://%s%.*s%s", scheme, base->hostport,
                               (int)(slash - base->target + 1), base->target, loc);
    }
}

/* RFC 6761 §6.4: ".invalid" names never resolve, and resolvers should say so without asking
 * anyone; answering here keeps such lookups (tests use them) off the network. */
static bool host_is_invalid_tld(const char *host)
{
    size_t n = strlen(host);

    if (n && host[n - 1] == '.')
        n--;
    if (n == 7 && strncmp(host, "invalid", 7) == 0)
        return true;
    return n > 8 && strncmp(host + n - 8, ".invalid", 8) == 0;
}

/* ---- client bookkeeping ----------------------------------------------------------------- */

static void client_maybe_free(eg_httpc_t *c)
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

static eg_hc_origin_t *origin_get(eg_httpc_t *c, const eg_url_t *u)
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
static void origin_maybe_free(eg_httpc_t *c, eg_hc_origin_t *o)
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
    client_maybe_free(c);
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
    origin_maybe_free(call->c, o);
}

/* Decide the call's outcome (first decision wins) and schedule done for the next loop turn. A
 * connection still attached is mid-exchange and cannot be reused, so it is closed. */
static void call_finish(eg_httpc_call_t *call, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call_finish(eg_httpc_call_t *call, int err, const char *fmt, ...)
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
        conn_close(conn);
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
        call_finish(call, EG_EUPTIMEOUT, "total timeout");
    else if (call->phase == CALL_CONNECTING)
        call_finish(call, EG_EUPTIMEOUT, "connect timeout (%s)", call->url.host);
    else if (call->phase == CALL_WAIT_HEADERS)
        call_finish(call, EG_EUPTIMEOUT, "header timeout");
    else
        call_arm(call);
}

/* One timer per call: the earlier of the total deadline and the current phase's deadline. */
static void call_arm(eg_httpc_call_t *call)
{
    uint64_t now = uv_now(call->c->loop), deadline = call->total_deadline;

    if (call->finished)
        return;
    if ((call->phase == CALL_CONNECTING || call->phase == CALL_WAIT_HEADERS) &&
        call->phase_deadline < deadline)
        deadline = call->phase_deadline;
    uv_timer_start(&call->timer, on_call_timer, deadline > now ? deadline - now : 0, 0);
}

static void call_set_phase(eg_httpc_call_t *call, eg_call_phase_t phase)
{
    uint64_t now = uv_now(call->c->loop);

    call->phase = phase;
    if (phase == CALL_CONNECTING)
        call->phase_deadline = now + call->connect_timeout_ms;
    else if (phase == CALL_WAIT_HEADERS)
        call->phase_deadline = now + call->header_timeout_ms;
    call_arm(call);
}

/* Forget the response of a hop (redirect or retry). */
static void call_reset_response(eg_httpc_call_t *call)
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

static bool method_idempotent(const char *m)
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

/* Follow the redirect the last response asked for: resolve, vet and re-dispatch. */
static void call_redirect(eg_httpc_call_t *call)
{
    static const char *const body_headers[] = {"Content-Type", "Content-Encoding",
                                               "Content-Language", "Content-Location"};
    static const char *const secret_headers[] = {"Authorization", "Cookie", "Proxy-Authorization"};
    int status = call->resp.status, rc;
    char *href = url_resolve(&call->url, call->location, &call->arena);
    eg_url_t next;
    bool same_origin;
    size_t i, j;

    rc = url_parse(href, &next, &call->arena);
    if (rc != 0) {
        call_finish(call, rc == EG_ESSRF ? EG_ESSRF : EG_EUPSTREAM, "bad redirect to %.200s", href);
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
    call_reset_response(call);
    dispatch(call);
}

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
    client_maybe_free(c);
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
static void conn_close(eg_hc_conn_t *conn)
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
        call_finish(call, EG_EUPSTREAM, "connection closed");
    }
    c->nopen--;
    if (conn->gai_pending)
        uv_cancel((uv_req_t *)&conn->gai);
    conn_close_tcp(conn);
    uv_close((uv_handle_t *)&conn->timer, on_conn_timer_closed);
    o->nconns--;
    origin_pump(o);
    origin_maybe_free(c, o);
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
        if (conn->reused && !call->got_bytes && !call->retried && method_idempotent(call->method) &&
            !call->finished) {
            call->retried = 1;
            call_reset_response(call);
            conn_close(conn);
            dispatch(call);
            return;
        }
        call_finish(call, err, "%s", what);
    }
    conn_close(conn);
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
        conn_close(conn);
    if (call->redirect)
        call_redirect(call);
    else
        call_finish(call, 0, NULL);
}

static void conn_parse(eg_hc_conn_t *conn, const char *data, size_t len)
{
    eg_httpc_call_t *call = conn->call;
    llhttp_errno_t rc;

    if (!call) {
        /* Nothing is asked of an idle connection; bytes on it are a protocol error. */
        conn_close(conn);
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
        call_finish(call, EG_EUPSTREAM, "%s", msg);
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
                call_finish(call, EG_ETLS, "TLS handshake: %s", msg);
            conn_close(conn);
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
                call_finish(conn->call, EG_ETLS, "TLS record error");
            conn_close(conn);
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
    conn_close(t->data);
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
        conn_close(conn);
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
            call_finish(conn->call, EG_ETLS, "%s: %s", conn->origin->host, err);
        conn_close(conn);
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
            call_finish(conn->call, EG_ETLS, "TLS setup failed");
        conn_close(conn);
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
        call_finish(conn->call, EG_ECONNECT, "connect to %s (%s): %s", conn->origin->host,
                    conn->addr, uv_strerror(conn->last_connect_err));
    conn_close(conn);
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
            call_finish(conn->call, EG_EDNS, "resolve %s: %s", conn->origin->host,
                        uv_strerror(status));
        conn_close(conn);
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
            call_finish(conn->call, EG_ESSRF, "destination %s (%s) is not allowed",
                        conn->origin->host, first[0] ? first : "no address");
        conn_close(conn);
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
    call_set_phase(call, CALL_CONNECTING);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", o->port);
    conn->gai.data = conn;
    rc = uv_getaddrinfo(c->loop, &conn->gai, on_resolved, o->host, port, &hints);
    if (rc != 0) {
        call_finish(call, EG_EDNS, "resolve %s: %s", o->host, uv_strerror(rc));
        return; /* call_finish closed the connection */
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

    call_reset_response(call);
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
    call_set_phase(call, CALL_WAIT_HEADERS);
    if (conn->origin->tls) {
        rc = eg__tls_write(&conn->tls, out.data, out.len);
        eg_buf_free(&out);
        if (rc != 0) {
            call_finish(call, EG_ETLS, "TLS write failed");
            return;
        }
        conn_flush_tls(conn);
    } else {
        conn_write_owned(conn, out.data, out.len);
    }
}

/* Put a call on its way: an idle connection, a new one, or the origin's queue. */
static void dispatch(eg_httpc_call_t *call)
{
    eg_httpc_t *c = call->c;
    eg_hc_origin_t *o;

    call->phase = CALL_QUEUED;
    if (host_is_invalid_tld(call->url.host)) {
        call_finish(call, EG_EDNS, "resolve %s: name does not exist", call->url.host);
        return;
    }
    o = origin_get(c, &call->url);
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
    call_arm(call);
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
        dispatch(call);
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
        call_finish(call, EG_EUPSTREAM, "response headers larger than %zu bytes",
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
        call_finish(call, EG_ERESPTOOBIG, "response of %llu bytes exceeds the %zu byte limit",
                    (unsigned long long)p->content_length, call->max_response_bytes);
        return HPE_USER;
    }
    call_set_phase(call, CALL_BODY);
    loc = eg_httpc_resp_header(&call->resp, "Location");
    if ((status == 301 || status == 302 || status == 303 || status == 307 || status == 308) &&
        loc && *loc && call->max_redirects >= 0) {
        if (call->resp.redirects >= call->max_redirects) {
            call_finish(call, EG_EREDIRECTS, "more than %d redirects", call->max_redirects);
            return HPE_USER;
        }
        call->redirect = 1;
        call->location = loc;
    } else {
        if (call->on_headers && call->on_headers(call->udata, &call->resp) != 0) {
            call_finish(call, EG_ECANCELED, "aborted by the headers callback");
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
        call_finish(call, EG_ERESPTOOBIG, "response exceeds the %zu byte limit",
                    call->max_response_bytes);
        return HPE_USER;
    }
    if (call->on_data) {
        if (call->on_data(call->udata, at, len) != 0 && !call->finished)
            call_finish(call, EG_ECANCELED, "aborted by the data callback");
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
    c->settings.on_status = on_status;
    c->settings.on_header_field = on_header_field;
    c->settings.on_header_value = on_header_value;
    c->settings.on_header_value_complete = on_header_value_complete;
    c->settings.on_headers_complete = on_headers_complete;
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
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
    if ((rc = url_parse(req->url, &call->url, &call->arena)) != 0)
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
    dispatch(call);
    return 0;

fail:
    eg_arena_destroy(&call->arena);
    free(call);
    return rc;
}

void eg_httpc_cancel(eg_httpc_call_t *call)
{
    if (call)
        call_finish(call, EG_ECANCELED, "canceled");
}

void eg_httpc_free(eg_httpc_t *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = 1;
    for (eg_httpc_call_t *call = c->calls; call; call = call->next)
        call_finish(call, EG_ECANCELED, "client closed");
    for (eg_hc_conn_t *conn = c->conns; conn; conn = conn->next)
        conn_close(conn);
    client_maybe_free(c);
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
