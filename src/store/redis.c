/* The process-wide Redis store: a pool of shared command connections plus one pub/sub
 * connection, all hiredis async contexts on the server's uv loop.
 *
 * Lifecycle of a connection: WAIT (backoff timer) -> RESOLVING (uv_getaddrinfo, so DNS never
 * blocks the loop) -> CONNECTING (non-blocking connect) -> HANDSHAKE (AUTH, SELECT, PING) ->
 * READY. One timer per connection bounds everything before READY (connect_timeout_ms), so a
 * peer that accepts and never answers is caught by the handshake's PING, and it drives the
 * backoff between attempts (100 ms doubling to 5 s, with jitter, forever).
 *
 * hiredis 0.14 has no async command timeout. Each command is wrapped in an eg_cmd_t with a
 * deadline, kept on a list in submission order; a periodic sweep fails the expired ones with
 * EG_ESTORETIMEOUT and drops their connection, which is presumably stuck. hiredis still owns
 * the wrapper and calls us once more (with a reply or NULL); the wrapper is only freed then.
 *
 * Dedicated connections (eg_store_dedicated_open) run the same lifecycle for one owner that
 * needs a connection to itself, typically for blocking commands (XREADGROUP BLOCK) that would
 * stall everything pipelined behind them on a shared connection. Their commands keep their own
 * deadline list, since their timeout (the store's plus the owner's block time) differs from the
 * pool's and each list must stay sorted by deadline. Such a connection is freed once its owner
 * has closed it and its last handle is closed, so eg_store_shutdown can close it under the
 * owner's feet without leaving the owner a dangling pointer.
 *
 * Re-entrancy rule: hiredis frees a context synchronously unless we are inside one of its reply
 * callbacks, and running pending callbacks calls user code, which may submit commands or even
 * shut the store down. So a connection is always marked not-ready and detached (c->ac = NULL)
 * before its context is freed, and the store is only freed from the last close callback, which
 * libuv never runs inside another callback. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <mbedtls/sha1.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/metrics.h"
#include "engram/store.h"
#include "store/store_int.h"

#define EG_BACKOFF_MIN_MS 100
#define EG_BACKOFF_MAX_MS 5000
#define EG_SWEEP_MAX_MS   100
#define EG_SWEEP_MIN_MS   10
#define EG_POOL_MAX       256

typedef enum {
    EG_CONN_IDLE = 0,
    EG_CONN_WAIT,
    EG_CONN_RESOLVING,
    EG_CONN_CONNECTING,
    EG_CONN_HANDSHAKE,
    EG_CONN_READY,
} eg_conn_state_t;

typedef struct eg_store_s eg_store_t;
typedef struct eg_cmd_s eg_cmd_t;

/* Commands waiting for a reply, in deadline order. */
typedef struct eg_cmd_list_s {
    eg_cmd_t *head, *tail;
} eg_cmd_list_t;

typedef struct eg_conn_s {
    eg_store_t *store;
    bool pubsub;
    /* Dedicated connections only: */
    bool dedicated;
    bool closing;             /* closed by its owner or by eg_store_shutdown */
    bool owner_closed;        /* eg_store_dedicated_close was called */
    int refs;                 /* open handles + the owner's reference */
    uint64_t timeout_ms;      /* per-command timeout on this connection; 0 = none */
    eg_cmd_list_t cmds;       /* its commands with a deadline */
    void (*on_ready)(void *); /* called each time it becomes ready */
    void *ready_udata;
    struct eg_conn_s *dnext, *dprev; /* the store's list of dedicated connections */
    eg_conn_state_t state;
    redisAsyncContext *ac; /* NULL when detached, even while hiredis is still freeing it */
    uint64_t gen;          /* bumped per context, so stale wrappers cannot drop a new one */
    uv_timer_t timer;      /* connect/handshake timeout, then backoff */
    uv_getaddrinfo_t gai;
    bool resolving;     /* gai callback still to come */
    bool gai_abandoned; /* attempt already failed; the gai callback schedules the retry */
    bool stuck;         /* a command timed out: drop after the sweep */
    bool was_ready;     /* has been READY before: the next READY is a reconnect */
    unsigned attempts;  /* consecutive failed attempts, for backoff */
    int hs_left;        /* handshake replies still expected */
    int hs_step;
    const char *hs_names[3];
} eg_conn_t;

/* One accepted command. */
struct eg_cmd_s {
    struct eg_cmd_s *prev, *next; /* deadline list (only when a timeout is configured) */
    eg_cmd_list_t *list;          /* the list it is linked on */
    eg_reply_fn fn;               /* NULL for fire-and-forget */
    void *udata;
    eg_conn_t *conn;
    uint64_t gen;
    uint64_t start_ns, deadline_ns;
    bool linked, timed_out, retried;
    /* eg_store_eval keeps its arguments to re-send EVAL after a NOSCRIPT reply. */
    eg_script_t *script;
    int argc;
    const char **argv;
    size_t *lens;
};

typedef struct eg_sub_s {
    char *channel;
    eg_message_fn fn;
    eg_resync_fn resync;
    void *udata;
    bool resync_armed; /* call resync when the channel's re-subscription is confirmed */
} eg_sub_t;

struct eg_store_s {
    uv_loop_t *loop;
    eg_redis_url_t url;
    char addr[300]; /* "host:port" or the socket path, for messages */
    int pool;
    uint64_t cmd_timeout_ms, connect_timeout_ms;
    eg_conn_t *conns; /* pool command connections, then the pub/sub connection */
    int ready;        /* READY command connections */
    int rr;
    uv_timer_t sweep;
    eg_cmd_list_t cmds;   /* pool commands with a deadline */
    eg_conn_t *dedicated; /* dedicated connections, open or still closing */
    eg_sub_t *subs;
    int nsubs, subs_cap;
    eg_script_t **scripts;
    int nscripts, scripts_cap;
    uint64_t rng;
    int live; /* open handles and in-flight requests that reference this struct */
    bool closing;
    void (*done)(void *);
    void *done_udata;
};

static eg_store_t *g_store;
static char g_last_error[512];

static void eg_conn_start(eg_conn_t *c);

/* ---- small helpers ---------------------------------------------------------------------- */

static void eg_store_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void eg_store_set_error(const char *fmt, ...)
{
    char msg[sizeof(g_last_error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Retries repeat the same failure every few seconds; log it when it changes. */
    if (strcmp(msg, g_last_error) != 0)
        eg_log_warn("redis: %s", msg);
    memcpy(g_last_error, msg, sizeof(msg));
}

static void eg_store_ready_changed(eg_store_t *s, int delta)
{
    s->ready += delta;
    eg_metrics_gauge_set("engram_redis_connected", "Ready Redis command connections.",
                         (double)s->ready);
}

static uint64_t eg_store_rand(eg_store_t *s)
{
    /* xorshift64: jitter only needs to de-synchronise reconnect storms. */
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static bool eg_store_any_ready(const eg_store_t *s)
{
    return s != NULL && !s->closing && s->ready > 0;
}

/* Is this connection past retrying (its store or, for a dedicated one, its owner closed it)? */
static bool eg_conn_closing(const eg_conn_t *c)
{
    return c->closing || c->store->closing;
}

static bool eg_conn_usable(const eg_conn_t *c)
{
    return c->state == EG_CONN_READY && c->ac != NULL &&
           !(c->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
}

static void eg_store_maybe_finish(eg_store_t *s)
{
    void (*done)(void *);
    void *udata;

    if (!s->closing || s->live > 0)
        return;
    done = s->done;
    udata = s->done_udata;
    /* Dedicated connections whose owner has not closed them yet outlive the store. */
    for (eg_conn_t *c = s->dedicated; c != NULL; c = c->dnext)
        c->store = NULL;
    for (int i = 0; i < s->nsubs; i++)
        free(s->subs[i].channel);
    free(s->subs);
    free(s->scripts);
    free(s->conns);
    memset(&s->url, 0, sizeof(s->url)); /* the password */
    free(s);
    g_store = NULL;
    if (done != NULL)
        done(udata);
}

static void eg_store_sweep_closed(uv_handle_t *h)
{
    eg_store_t *s = h->data;

    s->live--;
    eg_store_maybe_finish(s);
}

/* Free a dedicated connection once its owner let go and its last handle is closed. */
static void eg_conn_unref(eg_conn_t *c)
{
    eg_store_t *s = c->store;

    if (!c->dedicated || --c->refs > 0)
        return;
    /* The owner may close after the store is gone: it was unlinked when the store finished. */
    if (s != NULL) {
        if (c->dprev != NULL)
            c->dprev->dnext = c->dnext;
        else
            s->dedicated = c->dnext;
        if (c->dnext != NULL)
            c->dnext->dprev = c->dprev;
    }
    free(c);
}

/* One of the connection's handles (timer, poll, getaddrinfo) is done. */
static void eg_conn_release(eg_conn_t *c)
{
    eg_store_t *s = c->store;

    eg_conn_unref(c);
    s->live--;
    eg_store_maybe_finish(s);
}

static void eg_conn_timer_closed(uv_handle_t *h)
{
    eg_conn_release(h->data);
}

static void eg_conn_poll_closed(void *arg)
{
    eg_conn_release(arg);
}

/* ---- command wrappers ------------------------------------------------------------------- */

static void eg_cmd_unlink(eg_cmd_t *w)
{
    eg_cmd_list_t *l = w->list;

    if (!w->linked)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->prev = w->next = NULL;
    w->linked = false;
}

static void eg_cmd_finish(eg_cmd_t *w, int err, redisReply *reply)
{
    double secs = (double)(uv_hrtime() - w->start_ns) / 1e9;
    bool failed = err != 0 || (reply != NULL && reply->type == REDIS_REPLY_ERROR);

    eg_metrics_redis(secs, failed);
    if (w->fn != NULL)
        w->fn(w->udata, err, reply);
}

static bool eg_reply_is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->str != NULL && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static void eg_cmd_reply_cb(redisAsyncContext *ac, void *r, void *privdata);

/* The script is not in this server's cache (restart, SCRIPT FLUSH, failover): send the source
 * with EVAL on the same connection. EVAL also caches it, so later EVALSHAs hit again. */
static int eg_cmd_resend_eval(eg_cmd_t *w, redisAsyncContext *ac)
{
    char *cmd = NULL;
    int len, rc;

    w->argv[0] = "EVAL";
    w->lens[0] = 4;
    w->argv[1] = w->script->source;
    w->lens[1] = strlen(w->script->source);
    len = redisFormatCommandArgv(&cmd, w->argc, w->argv, w->lens);
    if (len < 0)
        return -1;
    rc = redisAsyncFormattedCommand(ac, eg_cmd_reply_cb, w, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc == REDIS_OK ? 0 : -1;
}

static void eg_cmd_reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    eg_cmd_t *w = privdata;
    redisReply *reply = r;

    if (w->timed_out) {
        /* The caller already got EG_ESTORETIMEOUT; this is hiredis handing the wrapper back. */
        free(w);
        return;
    }
    if (reply != NULL && w->script != NULL && !w->retried && eg_reply_is_noscript(reply)) {
        w->retried = true;
        if (eg_cmd_resend_eval(w, ac) == 0)
            return;
        reply = NULL;
    }
    eg_cmd_unlink(w);
    eg_cmd_finish(w, reply != NULL ? 0 : EG_EUNAVAIL, reply);
    free(w);
}

/* Send a formatted command on connection c. On failure the caller still owns w. */
static int eg_cmd_send_on(eg_store_t *s, eg_conn_t *c, eg_cmd_t *w, const char *cmd, size_t len)
{
    uint64_t timeout_ms = c->dedicated ? c->timeout_ms : s->cmd_timeout_ms;
    eg_cmd_list_t *l = c->dedicated ? &c->cmds : &s->cmds;

    w->conn = c;
    w->gen = c->gen;
    w->start_ns = uv_hrtime();
    if (redisAsyncFormattedCommand(c->ac, eg_cmd_reply_cb, w, cmd, len) != REDIS_OK)
        return EG_EUNAVAIL;
    if (timeout_ms > 0) {
        w->deadline_ns = w->start_ns + timeout_ms * 1000000u;
        w->list = l;
        w->prev = l->tail;
        if (l->tail != NULL)
            l->tail->next = w;
        else
            l->head = w;
        l->tail = w;
        w->linked = true;
    }
    return 0;
}

/* Round-robin over the ready connections, so concurrent requests pipeline on each of them. */
static eg_conn_t *eg_store_pick(eg_store_t *s)
{
    if (!eg_store_any_ready(s))
        return NULL;
    for (int i = 0; i < s->pool; i++) {
        int idx = (s->rr + i) % s->pool;

        if (eg_conn_usable(&s->conns[idx])) {
            s->rr = (idx + 1) % s->pool;
            return &s->conns[idx];
        }
    }
    return NULL;
}

/* Send on any ready connection; frees w when it is not accepted. */
static int eg_cmd_submit(eg_cmd_t *w, const char *cmd, size_t len)
{
    eg_store_t *s = g_store;
    eg_conn_t *c = eg_store_pick(s);
    int rc = EG_EUNAVAIL;

    if (c == NULL)
        goto fail;
    rc = eg_cmd_send_on(s, c, w, cmd, len);
    if (rc != 0)
        goto fail;
    return 0;

fail:
    free(w);
    return rc;
}

/* ---- connection lifecycle --------------------------------------------------------------- */

/* Detach and free the hiredis context (pending commands get EG_EUNAVAIL from its callbacks). */
static void eg_conn_drop(eg_conn_t *c)
{
    eg_store_t *s = c->store;
    redisAsyncContext *ac = c->ac;

    if (c->state == EG_CONN_READY && !c->pubsub && !c->dedicated)
        eg_store_ready_changed(s, -1);
    c->state = EG_CONN_IDLE;
    c->ac = NULL;
    if (!eg_conn_closing(c))
        uv_timer_stop(&c->timer);
    if (ac != NULL)
        redisAsyncFree(ac);
}

static void eg_conn_retry_cb(uv_timer_t *t)
{
    eg_conn_start(t->data);
}

static void eg_conn_schedule_retry(eg_conn_t *c)
{
    eg_store_t *s = c->store;
    uint64_t base = EG_BACKOFF_MIN_MS, delay;

    if (eg_conn_closing(c))
        return;
    for (unsigned i = 0; i < c->attempts && base < EG_BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > EG_BACKOFF_MAX_MS)
        base = EG_BACKOFF_MAX_MS;
    /* +-25% so a pool (or a fleet) that lost Redis together does not reconnect in lockstep. */
    delay = base * 3 / 4 + eg_store_rand(s) % (base / 2 + 1);
    c->attempts++;
    c->state = EG_CONN_WAIT;
    uv_timer_start(&c->timer, eg_conn_retry_cb, delay, 0);
}

static void eg_conn_fail(eg_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The current attempt or connection failed: record why, drop it and retry with backoff. */
static void eg_conn_fail(eg_conn_t *c, const char *fmt, ...)
{
    char msg[sizeof(g_last_error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    eg_store_set_error("%s", msg);

    eg_conn_drop(c); /* may run user callbacks, which may shut the store down */
    if (eg_conn_closing(c))
        return;
    if (c->resolving) {
        /* The gai callback is still to come and owns the next step. */
        c->gai_abandoned = true;
        uv_cancel((uv_req_t *)&c->gai);
        return;
    }
    eg_conn_schedule_retry(c);
}

static void eg_conn_timeout_cb(uv_timer_t *t)
{
    eg_conn_t *c = t->data;
    const char *what = c->state == EG_CONN_HANDSHAKE ? "handshake" : "connect";

    eg_conn_fail(c, "%s %s: timed out after %llu ms", what, c->store->addr,
                 (unsigned long long)c->store->connect_timeout_ms);
}

static void eg_conn_ready(eg_conn_t *c);

static void eg_conn_handshake_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    eg_conn_t *c = privdata;
    redisReply *reply = r;

    /* NULL: the context is going away; its disconnect path reports why. */
    if (reply == NULL || c->ac != ac || c->state != EG_CONN_HANDSHAKE)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        eg_conn_fail(c, "%s %s: %s", c->hs_names[c->hs_step], c->store->addr, reply->str);
        return;
    }
    c->hs_step++;
    if (--c->hs_left == 0)
        eg_conn_ready(c);
}

/* Connected: authenticate, select the db, and PING. Readiness waits for the PING's reply so a
 * peer that accepts connections but never answers is caught by the connect timeout instead of
 * swallowing commands. */
static void eg_conn_handshake(eg_conn_t *c)
{
    eg_store_t *s = c->store;
    const eg_redis_url_t *u = &s->url;

    c->state = EG_CONN_HANDSHAKE;
    c->hs_left = 0;
    c->hs_step = 0;
    if (u->password[0] != '\0') {
        if (u->user[0] != '\0')
            redisAsyncCommand(c->ac, eg_conn_handshake_cb, c, "AUTH %s %s", u->user, u->password);
        else
            redisAsyncCommand(c->ac, eg_conn_handshake_cb, c, "AUTH %s", u->password);
        c->hs_names[c->hs_left++] = "auth";
    }
    if (u->db != 0) {
        redisAsyncCommand(c->ac, eg_conn_handshake_cb, c, "SELECT %d", u->db);
        c->hs_names[c->hs_left++] = "select";
    }
    redisAsyncCommand(c->ac, eg_conn_handshake_cb, c, "PING");
    c->hs_names[c->hs_left++] = "ping";
    /* A failed send here would only mean the context is already going away; the disconnect
     * callback or the connect timeout takes it from there. */
}

static void eg_conn_connect_cb(const redisAsyncContext *ac, int status)
{
    eg_conn_t *c = ac->data;

    if (c == NULL || c->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees this context when we return: detach it first. */
        c->ac = NULL;
        eg_conn_fail(c, "connect %s: %s", c->store->addr, ac->errstr);
        return;
    }
    eg_conn_handshake(c);
}

static void eg_conn_disconnect_cb(const redisAsyncContext *ac, int status)
{
    eg_conn_t *c = ac->data;

    /* c->ac != ac: we detached it ourselves and already know. */
    if (c == NULL || c->ac != ac)
        return;
    c->ac = NULL;
    eg_conn_fail(c, "redis %s: %s", c->store->addr,
                 ac->errstr[0] != '\0' ? ac->errstr : "connection closed");
}

static void eg_pubsub_message_cb(redisAsyncContext *ac, void *r, void *privdata);

static void eg_pubsub_send_subscribe(eg_conn_t *c, const char *channel)
{
    redisAsyncCommand(c->ac, eg_pubsub_message_cb, NULL, "SUBSCRIBE %b", channel, strlen(channel));
}

/* First subscription for its channel? (A channel is subscribed once, whatever the count.) */
static bool eg_sub_first(const eg_store_t *s, int i)
{
    for (int j = 0; j < i; j++)
        if (strcmp(s->subs[j].channel, s->subs[i].channel) == 0)
            return false;
    return true;
}

static void eg_script_load_on(eg_store_t *s, eg_conn_t *c, eg_script_t *script)
{
    char *cmd = NULL;
    int len;
    eg_cmd_t *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return;
    len = redisFormatCommand(&cmd, "SCRIPT LOAD %s", script->source);
    if (len < 0 || eg_cmd_send_on(s, c, w, cmd, (size_t)len) != 0)
        free(w);
    if (len >= 0)
        redisFreeCommand(cmd);
}

static void eg_conn_ready(eg_conn_t *c)
{
    eg_store_t *s = c->store;
    bool reconnect = c->was_ready;

    uv_timer_stop(&c->timer);
    c->state = EG_CONN_READY;
    c->attempts = 0;
    c->was_ready = true;
    g_last_error[0] = '\0';
    eg_log_info("redis: %s connection to %s ready",
                c->pubsub      ? "pub/sub"
                : c->dedicated ? "dedicated"
                               : "command",
                s->addr);

    if (c->dedicated) {
        if (c->on_ready != NULL)
            c->on_ready(c->ready_udata);
        return;
    }
    if (c->pubsub) {
        /* Messages published while we were away are lost: once each channel is subscribed
         * again, its subscribers get resync to reload what they cache. */
        for (int i = 0; i < s->nsubs; i++) {
            s->subs[i].resync_armed = reconnect;
            if (eg_sub_first(s, i))
                eg_pubsub_send_subscribe(c, s->subs[i].channel);
        }
        return;
    }
    eg_store_ready_changed(s, +1);
    for (int i = 0; i < s->nscripts; i++)
        eg_script_load_on(s, c, s->scripts[i]);
}

static void eg_conn_connect(eg_conn_t *c, const char *ip)
{
    eg_store_t *s = c->store;
    redisAsyncContext *ac;

    c->state = EG_CONN_CONNECTING;
    if (s->url.unix_path[0] != '\0')
        ac = redisAsyncConnectUnix(s->url.unix_path);
    else
        ac = redisAsyncConnect(ip, s->url.port);
    if (ac == NULL) {
        eg_conn_fail(c, "connect %s: out of memory", s->addr);
        return;
    }
    if (ac->err != 0) {
        char msg[256];

        snprintf(msg, sizeof(msg), "%s", ac->errstr);
        redisAsyncFree(ac);
        eg_conn_fail(c, "connect %s: %s", s->addr, msg);
        return;
    }
    if (eg__redis_uv_attach(ac, s->loop, eg_conn_poll_closed, c) != 0) {
        redisAsyncFree(ac);
        eg_conn_fail(c, "connect %s: cannot watch the socket", s->addr);
        return;
    }
    s->live++; /* the poll handle */
    c->refs++;
    ac->data = c;
    c->ac = ac;
    c->gen++;
    c->stuck = false;
    if (s->url.unix_path[0] == '\0')
        redisEnableKeepAlive(&ac->c);
    redisAsyncSetConnectCallback(ac, eg_conn_connect_cb);
    redisAsyncSetDisconnectCallback(ac, eg_conn_disconnect_cb);
}

static void eg_conn_resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    eg_conn_t *c = req->data;
    eg_store_t *s = c->store;
    char ip[INET6_ADDRSTRLEN] = "";

    c->resolving = false;
    if (eg_conn_closing(c)) {
        uv_freeaddrinfo(res);
        eg_conn_release(c);
        return;
    }
    eg_conn_release(c); /* cannot free c or s: its timer is still open */
    if (c->gai_abandoned) {
        /* The attempt timed out meanwhile; the failure is already recorded. */
        c->gai_abandoned = false;
        uv_freeaddrinfo(res);
        eg_conn_schedule_retry(c);
        return;
    }
    /* Prefer IPv4 like hiredis and redis-cli do: "localhost" often lists ::1 first while many
     * Redis configs bind 127.0.0.1 only. */
    for (const struct addrinfo *ai = status == 0 ? res : NULL; ai != NULL && ip[0] == '\0';
         ai = ai->ai_next)
        if (ai->ai_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip, sizeof(ip));
    for (const struct addrinfo *ai = status == 0 ? res : NULL; ai != NULL && ip[0] == '\0';
         ai = ai->ai_next)
        if (ai->ai_family == AF_INET6)
            uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip, sizeof(ip));
    uv_freeaddrinfo(res);
    if (ip[0] == '\0') {
        eg_conn_fail(c, "resolve %s: %s", s->url.host,
                     status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    /* hiredis resolves again, but a numeric address never leaves the process. */
    eg_conn_connect(c, ip);
}

static void eg_conn_start(eg_conn_t *c)
{
    eg_store_t *s = c->store;
    struct addrinfo hints;
    unsigned char tmp[sizeof(struct in6_addr)];
    int rc;

    if (eg_conn_closing(c))
        return;
    c->state = EG_CONN_RESOLVING;
    if (s->connect_timeout_ms > 0)
        uv_timer_start(&c->timer, eg_conn_timeout_cb, s->connect_timeout_ms, 0);
    if (s->url.unix_path[0] != '\0' || inet_pton(AF_INET, s->url.host, tmp) == 1 ||
        inet_pton(AF_INET6, s->url.host, tmp) == 1) {
        eg_conn_connect(c, s->url.host);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    rc = uv_getaddrinfo(s->loop, &c->gai, eg_conn_resolved_cb, s->url.host, NULL, &hints);
    if (rc != 0) {
        eg_conn_fail(c, "resolve %s: %s", s->url.host, uv_strerror(rc));
        return;
    }
    c->resolving = true;
    s->live++;
    c->refs++;
}

/* ---- command timeouts ------------------------------------------------------------------- */

/* Fail the expired commands of one list. */
static void eg_store_sweep_list(eg_store_t *s, eg_cmd_list_t *l, uint64_t now)
{
    eg_cmd_t *w;

    /* Deadlines grow in submission order, so the expired commands are a prefix of the list.
     * The head is re-read every turn because the callback may submit or shut down. */
    while (!s->closing && (w = l->head) != NULL && w->deadline_ns <= now) {
        eg_reply_fn fn = w->fn;
        void *udata = w->udata;

        eg_cmd_unlink(w);
        w->timed_out = true;
        if (w->conn->gen == w->gen && w->conn->ac != NULL)
            w->conn->stuck = true;
        eg_metrics_redis((double)(now - w->start_ns) / 1e9, true);
        if (fn != NULL)
            fn(udata, EG_ESTORETIMEOUT, NULL);
    }
}

static void eg_store_sweep_cb(uv_timer_t *t)
{
    eg_store_t *s = t->data;
    uint64_t now = uv_hrtime();

    eg_store_sweep_list(s, &s->cmds, now);
    /* A dedicated connection is only freed from a close callback, never from inside this loop,
     * so following dnext after user callbacks ran is safe. */
    for (eg_conn_t *c = s->dedicated; c != NULL && !s->closing; c = c->dnext) {
        if (c->closing)
            continue;
        eg_store_sweep_list(s, &c->cmds, now);
        if (c->stuck && !c->closing && !s->closing) {
            c->stuck = false;
            eg_conn_fail(c, "redis %s: command timed out after %llu ms", s->addr,
                         (unsigned long long)c->timeout_ms);
        }
    }
    for (int i = 0; i < s->pool && !s->closing; i++) {
        eg_conn_t *c = &s->conns[i];

        if (!c->stuck)
            continue;
        c->stuck = false;
        eg_conn_fail(c, "redis %s: command timed out after %llu ms", s->addr,
                     (unsigned long long)s->cmd_timeout_ms);
    }
}

/* ---- public API ------------------------------------------------------------------------- */

int eg_store_init(uv_loop_t *loop, const eg_store_opts_t *opts)
{
    eg_store_t *s = NULL;
    int n;

    if (loop == NULL || opts == NULL || opts->url == NULL || g_store != NULL)
        goto fail;
    if (opts->pool < 1 || opts->pool > EG_POOL_MAX)
        goto fail;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto fail;
    if (eg_redis_url_parse(opts->url, &s->url) != 0)
        goto fail;
    s->conns = calloc((size_t)opts->pool + 1, sizeof(*s->conns));
    if (s->conns == NULL)
        goto fail;
    s->loop = loop;
    s->pool = opts->pool;
    s->cmd_timeout_ms = opts->cmd_timeout_ms;
    s->connect_timeout_ms = opts->connect_timeout_ms;
    s->rng = uv_hrtime() | 1;
    if (s->url.unix_path[0] != '\0')
        snprintf(s->addr, sizeof(s->addr), "%s", s->url.unix_path);
    else if (strchr(s->url.host, ':') != NULL)
        snprintf(s->addr, sizeof(s->addr), "[%s]:%d", s->url.host, s->url.port);
    else
        snprintf(s->addr, sizeof(s->addr), "%s:%d", s->url.host, s->url.port);

    n = s->pool + 1;
    for (int i = 0; i < n; i++) {
        eg_conn_t *c = &s->conns[i];

        c->store = s;
        c->pubsub = i == s->pool;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
        s->live++;
    }
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    s->live++;
    if (s->cmd_timeout_ms > 0) {
        uint64_t every = s->cmd_timeout_ms / 4;

        if (every > EG_SWEEP_MAX_MS)
            every = EG_SWEEP_MAX_MS;
        if (every < EG_SWEEP_MIN_MS)
            every = EG_SWEEP_MIN_MS;
        uv_timer_start(&s->sweep, eg_store_sweep_cb, every, every);
    }

    g_store = s;
    g_last_error[0] = '\0';
    eg_store_ready_changed(s, 0);
    for (int i = 0; i < n && !s->closing; i++)
        eg_conn_start(&s->conns[i]);
    return 0;

fail:
    if (s != NULL) {
        free(s->conns);
        memset(&s->url, 0, sizeof(s->url));
        free(s);
    }
    return EG_EINVAL;
}

/* Close a dedicated connection's handles; its pending commands get EG_EUNAVAIL. */
static void eg_dconn_close_handles(eg_conn_t *c)
{
    c->closing = true;
    uv_close((uv_handle_t *)&c->timer, eg_conn_timer_closed);
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai);
    eg_conn_drop(c);
}

void eg_store_shutdown(void (*done)(void *), void *udata)
{
    eg_store_t *s = g_store;

    if (s == NULL || s->closing) {
        if (s == NULL && done != NULL)
            done(udata);
        return;
    }
    s->closing = true;
    s->done = done;
    s->done_udata = udata;
    for (int i = 0; i <= s->pool; i++) {
        eg_conn_t *c = &s->conns[i];

        uv_close((uv_handle_t *)&c->timer, eg_conn_timer_closed);
        if (c->resolving)
            uv_cancel((uv_req_t *)&c->gai);
    }
    uv_close((uv_handle_t *)&s->sweep, eg_store_sweep_closed);
    for (eg_conn_t *c = s->dedicated; c != NULL; c = c->dnext)
        if (!c->closing)
            eg_dconn_close_handles(c);
    /* Freeing a context runs its pending callbacks with NULL (EG_EUNAVAIL to the callers). */
    for (int i = 0; i <= s->pool; i++)
        eg_conn_drop(&s->conns[i]);
    eg_store_maybe_finish(s);
}

uv_loop_t *eg_store_loop(void)
{
    return g_store != NULL ? g_store->loop : NULL;
}

const char *eg_store_error_text(int err)
{
    const char *why = eg_store_last_error();

    return why != NULL && why[0] != '\0' ? why : eg_strerror(err);
}

bool eg_store_up(void)
{
    return eg_store_any_ready(g_store);
}

const char *eg_store_last_error(void)
{
    return g_last_error;
}

/* Wrap a command formatted by hiredis (len < 0: formatting failed) for fn and send it on the
 * dedicated connection c, or on any ready pooled connection when c is NULL. cmd stays the
 * caller's. */
static int eg_cmd_send_formatted(eg_conn_t *c, eg_reply_fn fn, void *udata, const char *cmd,
                                 int len)
{
    eg_cmd_t *w;
    int rc;

    if (len < 0)
        return EG_EINVAL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return EG_EUNAVAIL;
    w->fn = fn;
    w->udata = udata;
    if (c == NULL)
        return eg_cmd_submit(w, cmd, (size_t)len); /* frees w when it is not accepted */
    rc = eg_cmd_send_on(c->store, c, w, cmd, (size_t)len);
    if (rc != 0)
        free(w);
    return rc;
}

int eg_store_command(eg_reply_fn fn, void *udata, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int len, rc;

    if (!eg_store_any_ready(g_store))
        return EG_EUNAVAIL;
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    rc = eg_cmd_send_formatted(NULL, fn, udata, cmd, len);
    redisFreeCommand(cmd);
    return rc;
}

int eg_store_commandv(eg_reply_fn fn, void *udata, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int len, rc;

    if (argc < 1 || argv == NULL)
        return EG_EINVAL;
    if (!eg_store_any_ready(g_store))
        return EG_EUNAVAIL;
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    rc = eg_cmd_send_formatted(NULL, fn, udata, cmd, len);
    redisFreeCommand(cmd);
    return rc;
}

/* ---- dedicated connections -------------------------------------------------------------- */

eg_store_conn_t *eg_store_dedicated_open(uint64_t block_ms, void (*ready)(void *), void *udata)
{
    eg_store_t *s = g_store;
    eg_conn_t *c;

    if (s == NULL || s->closing)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->store = s;
    c->dedicated = true;
    c->refs = 2; /* the timer and the owner */
    /* A blocking command legitimately takes its block time before Redis even starts on it. */
    c->timeout_ms = s->cmd_timeout_ms > 0 ? s->cmd_timeout_ms + block_ms : 0;
    c->on_ready = ready;
    c->ready_udata = udata;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    s->live++;
    c->dnext = s->dedicated;
    if (s->dedicated != NULL)
        s->dedicated->dprev = c;
    s->dedicated = c;
    eg_conn_start(c);
    return c;
}

bool eg_store_dedicated_up(const eg_store_conn_t *c)
{
    return c != NULL && c->store != NULL && !eg_conn_closing(c) && eg_conn_usable(c);
}

int eg_store_dedicated_command(eg_store_conn_t *c, eg_reply_fn fn, void *udata, const char *fmt,
                               ...)
{
    char *cmd = NULL;
    va_list ap;
    int len, rc;

    if (c == NULL || c->store == NULL || eg_conn_closing(c) || !eg_conn_usable(c))
        return EG_EUNAVAIL;
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    rc = eg_cmd_send_formatted(c, fn, udata, cmd, len);
    redisFreeCommand(cmd);
    return rc;
}

void eg_store_dedicated_close(eg_store_conn_t *c)
{
    if (c == NULL || c->owner_closed)
        return;
    c->owner_closed = true;
    if (!c->closing)
        eg_dconn_close_handles(c); /* may run the owner's callbacks with EG_EUNAVAIL */
    eg_conn_unref(c);
}

static void eg_script_register(eg_store_t *s, eg_script_t *script)
{
    eg_script_t **grown;

    if (script->sha[0] == '\0') {
        unsigned char digest[20];
        static const char hex[] = "0123456789abcdef";

        mbedtls_sha1_ret((const unsigned char *)script->source, strlen(script->source), digest);
        for (int i = 0; i < 20; i++) {
            script->sha[2 * i] = hex[digest[i] >> 4];
            script->sha[2 * i + 1] = hex[digest[i] & 15];
        }
        script->sha[40] = '\0';
    }
    for (int i = 0; i < s->nscripts; i++)
        if (s->scripts[i] == script)
            return;
    if (s->nscripts == s->scripts_cap) {
        int cap = s->scripts_cap ? s->scripts_cap * 2 : 16;

        grown = realloc(s->scripts, (size_t)cap * sizeof(*grown));
        if (grown == NULL)
            return; /* not loaded ahead of time; NOSCRIPT handling still covers it */
        s->scripts = grown;
        s->scripts_cap = cap;
    }
    s->scripts[s->nscripts++] = script;
}

int eg_store_eval(eg_script_t *script, eg_reply_fn fn, void *udata, int nkeys, int argc,
                  const char **argv, const size_t *lens)
{
    eg_store_t *s = g_store;
    eg_cmd_t *w = NULL;
    char *cmd = NULL, *data, nk[16];
    size_t total, datalen = 0, nklen;
    int n = argc + 3, len, rc = EG_EINVAL;

    if (script == NULL || script->source == NULL || argc < 0 || nkeys < 0 || nkeys > argc ||
        (argc > 0 && argv == NULL))
        return EG_EINVAL;
    if (!eg_store_any_ready(s))
        return EG_EUNAVAIL;
    eg_script_register(s, script);

    /* One block: wrapper, argv, lens, then copies of the caller's arguments (kept for a possible
     * EVAL re-send after NOSCRIPT, when the caller's buffers may be gone). */
    nklen = (size_t)snprintf(nk, sizeof(nk), "%d", nkeys);
    for (int i = 0; i < argc; i++)
        datalen += lens != NULL ? lens[i] : strlen(argv[i]);
    total = sizeof(*w) + (size_t)n * (sizeof(char *) + sizeof(size_t)) + datalen + nklen;
    w = calloc(1, total);
    if (w == NULL) {
        rc = EG_EUNAVAIL;
        goto fail;
    }
    w->fn = fn;
    w->udata = udata;
    w->script = script;
    w->argc = n;
    w->argv = (const char **)(w + 1);
    w->lens = (size_t *)(w->argv + n);
    data = (char *)(w->lens + n);
    w->argv[0] = "EVALSHA";
    w->lens[0] = 7;
    w->argv[1] = script->sha;
    w->lens[1] = 40;
    memcpy(data, nk, nklen);
    w->argv[2] = data;
    w->lens[2] = nklen;
    data += nklen;
    for (int i = 0; i < argc; i++) {
        size_t l = lens != NULL ? lens[i] : strlen(argv[i]);

        memcpy(data, argv[i], l);
        w->argv[3 + i] = data;
        w->lens[3 + i] = l;
        data += l;
    }
    len = redisFormatCommandArgv(&cmd, n, w->argv, w->lens);
    if (len < 0) {
        rc = EG_EUNAVAIL;
        goto fail;
    }
    rc = eg_cmd_submit(w, cmd, (size_t)len);
    w = NULL; /* eg_cmd_submit owns it now, accepted or not */
    if (rc != 0)
        goto fail;
    redisFreeCommand(cmd);
    return 0;

fail:
    if (cmd != NULL)
        redisFreeCommand(cmd);
    free(w);
    return rc;
}

static void eg_pubsub_message_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    eg_store_t *s = g_store;
    redisReply *reply = r;
    const char *kind, *channel;

    if (reply == NULL || s == NULL || s->closing || s->conns[s->pool].ac != ac)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    kind = reply->element[0]->str;
    channel = reply->element[1]->str;
    /* Index loop re-reading s->subs: a callback may subscribe (and grow the array). */
    for (int i = 0; i < s->nsubs && !s->closing; i++) {
        eg_sub_t sub = s->subs[i];

        if (strcmp(sub.channel, channel) != 0)
            continue;
        if (strcmp(kind, "message") == 0) {
            const redisReply *p = reply->element[2];

            if (p->type == REDIS_REPLY_STRING)
                sub.fn(sub.udata, channel, p->str, p->len);
        } else if (strcmp(kind, "subscribe") == 0 && sub.resync_armed) {
            s->subs[i].resync_armed = false;
            if (sub.resync != NULL)
                sub.resync(sub.udata);
        }
    }
}

int eg_store_subscribe(const char *channel, eg_message_fn fn, eg_resync_fn resync, void *udata)
{
    eg_store_t *s = g_store;
    eg_conn_t *c;
    eg_sub_t *sub;
    char *copy = NULL;

    if (channel == NULL || channel[0] == '\0' || fn == NULL)
        return EG_EINVAL;
    if (s == NULL || s->closing)
        return EG_EUNAVAIL;
    copy = strdup(channel);
    if (copy == NULL)
        goto fail;
    if (s->nsubs == s->subs_cap) {
        int cap = s->subs_cap ? s->subs_cap * 2 : 8;
        eg_sub_t *grown = realloc(s->subs, (size_t)cap * sizeof(*grown));

        if (grown == NULL)
            goto fail;
        s->subs = grown;
        s->subs_cap = cap;
    }
    sub = &s->subs[s->nsubs++];
    memset(sub, 0, sizeof(*sub));
    sub->channel = copy;
    sub->fn = fn;
    sub->resync = resync;
    sub->udata = udata;

    /* Otherwise the next READY of the pub/sub connection subscribes it. */
    c = &s->conns[s->pool];
    if (eg_conn_usable(c) && eg_sub_first(s, s->nsubs - 1))
        eg_pubsub_send_subscribe(c, copy);
    return 0;

fail:
    free(copy);
    return EG_EUNAVAIL;
}

int eg_store_unsubscribe(const char *channel, eg_message_fn fn, void *udata)
{
    eg_store_t *s = g_store;
    eg_conn_t *c;
    int found = -1;

    if (channel == NULL || fn == NULL)
        return EG_EINVAL;
    if (s == NULL)
        return EG_ENOTFOUND;
    for (int i = 0; i < s->nsubs; i++) {
        if (s->subs[i].fn == fn && s->subs[i].udata == udata &&
            strcmp(s->subs[i].channel, channel) == 0) {
            found = i;
            break;
        }
    }
    if (found < 0)
        return EG_ENOTFOUND;
    free(s->subs[found].channel);
    memmove(&s->subs[found], &s->subs[found + 1],
            (size_t)(s->nsubs - found - 1) * sizeof(*s->subs));
    s->nsubs--;
    for (int i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i].channel, channel) == 0)
            return 0; /* another subscriber still needs the channel */
    c = &s->conns[s->pool];
    if (!s->closing && eg_conn_usable(c))
        redisAsyncCommand(c->ac, eg_pubsub_message_cb, NULL, "UNSUBSCRIBE %b", channel,
                          strlen(channel));
    return 0;
}

int eg_store_publish(const char *channel, const char *payload, size_t len)
{
    if (channel == NULL || (payload == NULL && len > 0))
        return EG_EINVAL;
    return eg_store_command(NULL, NULL, "PUBLISH %s %b", channel, payload != NULL ? payload : "",
                            len);
}

int eg_store_ping(eg_reply_fn fn, void *udata)
{
    return eg_store_command(fn, udata, "PING");
}

void eg_store_stats(int *ready, int *total)
{
    eg_store_t *s = g_store;
    bool on = s != NULL && !s->closing;

    if (ready != NULL)
        *ready = on ? s->ready : 0;
    if (total != NULL)
        *total = on ? s->pool : 0;
}
