/* Redis store: command wrappers (submission, EVALSHA with the NOSCRIPT fallback, replies) and
 * the per-command timeout sweep. */
#include "store/store_int.h"

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
int eg__rs_cmd_send_on(eg_store_t *s, eg_conn_t *c, eg_cmd_t *w, const char *cmd, size_t len)
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
    if (!eg__rs_store_any_ready(s))
        return NULL;
    for (int i = 0; i < s->pool; i++) {
        int idx = (s->rr + i) % s->pool;

        if (eg__rs_conn_usable(&s->conns[idx])) {
            s->rr = (idx + 1) % s->pool;
            return &s->conns[idx];
        }
    }
    return NULL;
}

/* Send on any ready connection; frees w when it is not accepted. */
int eg__rs_cmd_submit(eg_cmd_t *w, const char *cmd, size_t len)
{
    eg_store_t *s = eg__g_store;
    eg_conn_t *c = eg_store_pick(s);
    int rc = EG_EUNAVAIL;

    if (c == NULL)
        goto fail;
    rc = eg__rs_cmd_send_on(s, c, w, cmd, len);
    if (rc != 0)
        goto fail;
    return 0;

fail:
    free(w);
    return rc;
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

void eg__rs_store_sweep_cb(uv_timer_t *t)
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
            eg__rs_conn_fail(c, "redis %s: command timed out after %llu ms", s->addr,
                             (unsigned long long)c->timeout_ms);
        }
    }
    for (int i = 0; i < s->pool && !s->closing; i++) {
        eg_conn_t *c = &s->conns[i];

        if (!c->stuck)
            continue;
        c->stuck = false;
        eg__rs_conn_fail(c, "redis %s: command timed out after %llu ms", s->addr,
                         (unsigned long long)s->cmd_timeout_ms);
    }
}
