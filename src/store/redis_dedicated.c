/* Redis store: dedicated connections, one owner each, for blocking commands. */
#include "store/store_int.h"

/* ---- dedicated connections -------------------------------------------------------------- */

eg_store_conn_t *eg_store_dedicated_open(uint64_t block_ms, void (*ready)(void *), void *udata)
{
    eg_store_t *s = eg__g_store;
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
    eg__rs_conn_start(c);
    return c;
}

bool eg_store_dedicated_up(const eg_store_conn_t *c)
{
    return c != NULL && c->store != NULL && !eg__rs_conn_closing(c) && eg__rs_conn_usable(c);
}

int eg_store_dedicated_command(eg_store_conn_t *c, eg_reply_fn fn, void *udata, const char *fmt,
                               ...)
{
    char *cmd = NULL;
    va_list ap;
    int len, rc;

    if (c == NULL || c->store == NULL || eg__rs_conn_closing(c) || !eg__rs_conn_usable(c))
        return EG_EUNAVAIL;
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    rc = eg__rs_cmd_send_formatted(c, fn, udata, cmd, len);
    redisFreeCommand(cmd);
    return rc;
}

void eg_store_dedicated_close(eg_store_conn_t *c)
{
    if (c == NULL || c->owner_closed)
        return;
    c->owner_closed = true;
    if (!c->closing)
        eg__rs_dconn_close_handles(c); /* may run the owner's callbacks with EG_EUNAVAIL */
    eg__rs_conn_unref(c);
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
    eg_store_t *s = eg__g_store;
    eg_cmd_t *w = NULL;
    char *cmd = NULL, *data, nk[16];
    size_t total, datalen = 0, nklen;
    int n = argc + 3, len, rc = EG_EINVAL;

    if (script == NULL || script->source == NULL || argc < 0 || nkeys < 0 || nkeys > argc ||
        (argc > 0 && argv == NULL))
        return EG_EINVAL;
    if (!eg__rs_store_any_ready(s))
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
    rc = eg__rs_cmd_submit(w, cmd, (size_t)len);
    w = NULL; /* eg__rs_cmd_submit owns it now, accepted or not */
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
