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
#include "store/store_int.h"

eg_store_t *eg__g_store;
char eg__g_last_error[512];

/* ---- small helpers ---------------------------------------------------------------------- */

static void eg_store_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void eg_store_set_error(const char *fmt, ...)
{
    char msg[sizeof(eg__g_last_error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Retries repeat the same failure every few seconds; log it when it changes. */
    if (strcmp(msg, eg__g_last_error) != 0)
        eg_log_warn("redis: %s", msg);
    memcpy(eg__g_last_error, msg, sizeof(msg));
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

bool eg__rs_store_any_ready(const eg_store_t *s)
{
    return s != NULL && !s->closing && s->ready > 0;
}

/* Is this connection past retrying (its store or, for a dedicated one, its owner closed it)? */
bool eg__rs_conn_closing(const eg_conn_t *c)
{
    return c->closing || c->store->closing;
}

bool eg__rs_conn_usable(const eg_conn_t *c)
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
    eg__g_store = NULL;
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
void eg__rs_conn_unref(eg_conn_t *c)
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

    eg__rs_conn_unref(c);
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
    if (!eg__rs_conn_closing(c))
        uv_timer_stop(&c->timer);
    if (ac != NULL)
        redisAsyncFree(ac);
}

static void eg_conn_retry_cb(uv_timer_t *t)
{
    eg__rs_conn_start(t->data);
}

static void eg_conn_schedule_retry(eg_conn_t *c)
{
    eg_store_t *s = c->store;
    uint64_t base = EG_BACKOFF_MIN_MS, delay;

    if (eg__rs_conn_closing(c))
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

/* The current attempt or connection failed: record why, drop it and retry with backoff. */
void eg__rs_conn_fail(eg_conn_t *c, const char *fmt, ...)
{
    char msg[sizeof(eg__g_last_error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    eg_store_set_error("%s", msg);

    eg_conn_drop(c); /* may run user callbacks, which may shut the store down */
    if (eg__rs_conn_closing(c))
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

    eg__rs_conn_fail(c, "%s %s: timed out after %llu ms", what, c->store->addr,
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
        eg__rs_conn_fail(c, "%s %s: %s", c->hs_names[c->hs_step], c->store->addr, reply->str);
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
        eg__rs_conn_fail(c, "connect %s: %s", c->store->addr, ac->errstr);
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
    eg__rs_conn_fail(c, "redis %s: %s", c->store->addr,
                     ac->errstr[0] != '\0' ? ac->errstr : "connection closed");
}

void eg__rs_pubsub_send_subscribe(eg_conn_t *c, const char *channel)
{
    redisAsyncCommand(c->ac, eg__rs_pubsub_message_cb, NULL, "SUBSCRIBE %b", channel,
                      strlen(channel));
}

/* First subscription for its channel? (A channel is subscribed once, whatever the count.) */
bool eg__rs_sub_first(const eg_store_t *s, int i)
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
    if (len < 0 || eg__rs_cmd_send_on(s, c, w, cmd, (size_t)len) != 0)
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
    eg__g_last_error[0] = '\0';
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
            /* A subscription still waiting for its first confirmation stays armed. */
            s->subs[i].resync_armed = reconnect || s->subs[i].resync_armed;
            if (eg__rs_sub_first(s, i))
                eg__rs_pubsub_send_subscribe(c, s->subs[i].channel);
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
        eg__rs_conn_fail(c, "connect %s: out of memory", s->addr);
        return;
    }
    if (ac->err != 0) {
        char msg[256];

        snprintf(msg, sizeof(msg), "%s", ac->errstr);
        redisAsyncFree(ac);
        eg__rs_conn_fail(c, "connect %s: %s", s->addr, msg);
        return;
    }
    if (eg__redis_uv_attach(ac, s->loop, eg_conn_poll_closed, c) != 0) {
        redisAsyncFree(ac);
        eg__rs_conn_fail(c, "connect %s: cannot watch the socket", s->addr);
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
    if (eg__rs_conn_closing(c)) {
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
        eg__rs_conn_fail(c, "resolve %s: %s", s->url.host,
                         status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    /* hiredis resolves again, but a numeric address never leaves the process. */
    eg_conn_connect(c, ip);
}

void eg__rs_conn_start(eg_conn_t *c)
{
    eg_store_t *s = c->store;
    struct addrinfo hints;
    unsigned char tmp[sizeof(struct in6_addr)];
    int rc;

    if (eg__rs_conn_closing(c))
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
        eg__rs_conn_fail(c, "resolve %s: %s", s->url.host, uv_strerror(rc));
        return;
    }
    c->resolving = true;
    s->live++;
    c->refs++;
}

/* ---- public API ------------------------------------------------------------------------- */

int eg_store_init(uv_loop_t *loop, const eg_store_opts_t *opts)
{
    eg_store_t *s = NULL;
    int n;

    if (loop == NULL || opts == NULL || opts->url == NULL || eg__g_store != NULL)
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
        uv_timer_start(&s->sweep, eg__rs_store_sweep_cb, every, every);
    }

    eg__g_store = s;
    eg__g_last_error[0] = '\0';
    eg_store_ready_changed(s, 0);
    for (int i = 0; i < n && !s->closing; i++)
        eg__rs_conn_start(&s->conns[i]);
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
void eg__rs_dconn_close_handles(eg_conn_t *c)
{
    c->closing = true;
    uv_close((uv_handle_t *)&c->timer, eg_conn_timer_closed);
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai);
    eg_conn_drop(c);
}

void eg_store_shutdown(void (*done)(void *), void *udata)
{
    eg_store_t *s = eg__g_store;

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
            eg__rs_dconn_close_handles(c);
    /* Freeing a context runs its pending callbacks with NULL (EG_EUNAVAIL to the callers). */
    for (int i = 0; i <= s->pool; i++)
        eg_conn_drop(&s->conns[i]);
    eg_store_maybe_finish(s);
}

uv_loop_t *eg_store_loop(void)
{
    return eg__g_store != NULL ? eg__g_store->loop : NULL;
}

const char *eg_store_error_text(int err)
{
    const char *why = eg_store_last_error();

    return why != NULL && why[0] != '\0' ? why : eg_strerror(err);
}

bool eg_store_up(void)
{
    return eg__rs_store_any_ready(eg__g_store);
}

const char *eg_store_last_error(void)
{
    return eg__g_last_error;
}

/* Wrap a command formatted by hiredis (len < 0: formatting failed) for fn and send it on the
 * dedicated connection c, or on any ready pooled connection when c is NULL. cmd stays the
 * caller's. */
int eg__rs_cmd_send_formatted(eg_conn_t *c, eg_reply_fn fn, void *udata, const char *cmd, int len)
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
        return eg__rs_cmd_submit(w, cmd, (size_t)len); /* frees w when it is not accepted */
    rc = eg__rs_cmd_send_on(c->store, c, w, cmd, (size_t)len);
    if (rc != 0)
        free(w);
    return rc;
}

int eg_store_command(eg_reply_fn fn, void *udata, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int len, rc;

    if (!eg__rs_store_any_ready(eg__g_store))
        return EG_EUNAVAIL;
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    rc = eg__rs_cmd_send_formatted(NULL, fn, udata, cmd, len);
    redisFreeCommand(cmd);
    return rc;
}

int eg_store_commandv(eg_reply_fn fn, void *udata, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int len, rc;

    if (argc < 1 || argv == NULL)
        return EG_EINVAL;
    if (!eg__rs_store_any_ready(eg__g_store))
        return EG_EUNAVAIL;
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    rc = eg__rs_cmd_send_formatted(NULL, fn, udata, cmd, len);
    redisFreeCommand(cmd);
    return rc;
}
