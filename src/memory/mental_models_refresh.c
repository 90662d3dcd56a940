/* Mental models: creating a model and queueing refreshes (engram/mental_models.h, "Refresh
 * seam"). The model (when created) and its operation record are written by one script in the
 * bank's slot, then the job is pushed: a job never runs without its record, and a crash between
 * the two leaves a pending operation that a retry can queue again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dirmm_int.h"
#include "engram/bank.h"
#include "engram/bankops.h"
#include "engram/error.h"
#include "engram/mental_models.h"
#include "engram/ops.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "mental_models_int.h"

/* KEYS[1] bank, KEYS[2] index, KEYS[3] operation index; ARGV prefix, id, name, source_query,
 * tags, max_tokens, trigger, now (µs), capacity, op key, op id, op meta, now (ms). */
static eg_script_t s_create = {
    .name = "mm_create",
    .source = EG_OPS_LUA_CREATE
    "if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('EG_NOTFOUND bank') end\n"
    "local k = ARGV[1] .. ARGV[2]\n"
    "if redis.call('EXISTS', k) == 1 then\n"
    "  return redis.error_reply('EG_CONFLICT mental model exists')\n"
    "end\n"
    "if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[9]) then\n"
    "  return redis.error_reply('EG_FULL mental models')\n"
    "end\n"
    "if redis.call('EXISTS', ARGV[10]) == 1 then\n"
    "  return redis.error_reply('EG_CONFLICT operation exists')\n"
    "end\n"
    "redis.call('HSET', k, 'id', ARGV[2], 'name', ARGV[3], 'source_query', ARGV[4], 'content', "
    "'',\n"
    "  'tags', ARGV[5], 'max_tokens', ARGV[6], 'trigger', ARGV[7], 'reflect_response', '',\n"
    "  'last_refreshed_at', '', 'last_memory_seen_at', '', 'created_at', ARGV[8],\n"
    "  'updated_at', ARGV[8])\n"
    "redis.call('ZADD', KEYS[2], ARGV[8], ARGV[2])\n"
    "eg_op_create(ARGV[10], KEYS[3], ARGV[11], '" EG_MM_OP_KIND "', ARGV[12], ARGV[13])\n"
    "return 1\n",
};

/* KEYS[1] index, KEYS[2] operation index; ARGV prefix, id, op key, op id, op meta, now (ms). */
static eg_script_t s_refresh = {
    .name = "mm_refresh",
    .source = EG_OPS_LUA_CREATE "if redis.call('EXISTS', ARGV[1] .. ARGV[2]) == 0 then\n"
                                "  return redis.error_reply('EG_NOTFOUND mental model')\n"
                                "end\n"
                                "if not eg_op_create(ARGV[3], KEYS[2], ARGV[4], '" EG_MM_OP_KIND
                                "', ARGV[5], ARGV[6]) then\n"
                                "  return redis.error_reply('EG_CONFLICT operation exists')\n"
                                "end\n"
                                "return 1\n",
};

typedef struct submit_s {
    eg_arena_t arena;
    eg_mm_op_fn cb;
    void *udata;
    const char **argv; /* the script's keys and args */
    int nkeys, argc;
    eg_script_t *script;
    const char *id, *op_id, *payload;
} submit_t;

static void submit_free(submit_t *s)
{
    eg_arena_destroy(&s->arena);
    free(s);
}

static void on_pushed(void *udata, int err, bool queued)
{
    submit_t *s = udata;

    (void)queued;
    s->cb(s->udata, err, err ? NULL : s->id, err ? NULL : s->op_id);
    submit_free(s);
}

static void on_written(void *udata, int err, redisReply *r)
{
    submit_t *s = udata;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = eg__dirmm_reply_error(r);
    if (err == 0)
        err = eg_queue_push(EG_MM_QUEUE, s->op_id, s->payload, strlen(s->payload), 0, on_pushed, s);
    if (err) {
        s->cb(s->udata, err, NULL, NULL);
        submit_free(s);
    }
}

static void on_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    submit_t *s = udata;

    (void)bank;
    (void)created;
    if (err == 0)
        err = eg_store_eval(s->script, on_written, s, s->nkeys, s->argc, s->argv, NULL);
    if (err) {
        s->cb(s->udata, err, NULL, NULL);
        submit_free(s);
    }
}

/* A new submission: ids, the job payload and the operation's meta (arena strings). */
static submit_t *submit_new(const char *ws_id, const char *bank_id, const char *id, eg_mm_op_fn cb,
                            void *udata, const char **meta)
{
    submit_t *s = eg_xcalloc(1, sizeof(*s));
    cJSON *p = cJSON_CreateObject(), *m = cJSON_CreateObject();
    char op_id[37], *txt;

    eg_arena_init(&s->arena);
    s->cb = cb;
    s->udata = udata;
    s->id = eg_arena_strdup(&s->arena, id);
    eg_uuid_v4(op_id);
    s->op_id = eg_arena_strdup(&s->arena, op_id);
    cJSON_AddStringToObject(p, "ws", ws_id);
    cJSON_AddStringToObject(p, "bank", bank_id);
    cJSON_AddStringToObject(p, "id", id);
    cJSON_AddStringToObject(p, "op", op_id);
    txt = cJSON_PrintUnformatted(p);
    s->payload = eg_arena_strdup(&s->arena, txt ? txt : "{}");
    free(txt);
    cJSON_AddStringToObject(m, "mental_model_id", id);
    cJSON_AddItemToObject(m, "payload", p);
    txt = cJSON_PrintUnformatted(m);
    *meta = eg_arena_strdup(&s->arena, txt ? txt : "{}");
    free(txt);
    cJSON_Delete(m);
    return s;
}

static const char *op_key(submit_t *s, const char *ws_id, const char *bank_id)
{
    return eg_key(&s->arena, "b", eg__dirmm_scope(&s->arena, ws_id, bank_id), "op:%s", s->op_id);
}

int eg_mm_create(const char *ws_id, const char *bank_id, const eg_mm_new_t *m, eg_mm_op_fn cb,
                 void *udata)
{
    char fresh[37], *trigger;
    const char *meta, **argv;
    int64_t max_tokens;
    eg_arena_t *a;
    submit_t *s;
    int rc;

    if (ws_id == NULL || bank_id == NULL || !eg_bank_id_valid(bank_id, strlen(bank_id)) ||
        m == NULL || (m->id && !eg_mm_id_valid(m->id, strlen(m->id))) || m->name == NULL ||
        strlen(m->name) > EG_MM_NAME_MAX || m->source_query == NULL ||
        strlen(m->source_query) > EG_MM_QUERY_MAX || !eg__dirmm_tags_valid(m->tags, m->ntags) ||
        (m->trigger && !cJSON_IsObject(m->trigger)))
        return EG_EINVAL;
    max_tokens = m->max_tokens ? m->max_tokens : EG_MM_MAX_TOKENS_DEF;
    if (max_tokens < EG_MM_MAX_TOKENS_MIN || max_tokens > EG_MM_MAX_TOKENS_MAX)
        return EG_EINVAL;
    if (m->id == NULL)
        eg_uuid_v4(fresh);
    s = submit_new(ws_id, bank_id, m->id ? m->id : fresh, cb, udata, &meta);
    a = &s->arena;
    trigger = m->trigger ? cJSON_PrintUnformatted(m->trigger) : NULL;
    s->script = &s_create;
    s->nkeys = 3;
    s->argc = 16;
    s->argv = argv = eg_arena_alloc(a, 16 * sizeof(*argv));
    argv[0] = eg__dirmm_key(a, ws_id, bank_id, "bank");
    argv[1] = eg__dirmm_key(a, ws_id, bank_id, "mms");
    argv[2] = eg__dirmm_key(a, ws_id, bank_id, "ops");
    argv[3] = eg__dirmm_key(a, ws_id, bank_id, "mm:");
    argv[4] = s->id;
    argv[5] = eg_arena_strdup(a, m->name);
    argv[6] = eg_arena_strdup(a, m->source_query);
    argv[7] = eg__dirmm_tags_json(a, m->tags, m->ntags);
    argv[8] = eg_arena_printf(a, "%lld", (long long)max_tokens);
    argv[9] = eg_arena_strdup(a, trigger ? trigger : "{}");
    argv[10] = eg_arena_printf(a, "%lld", (long long)eg__dirmm_now_us());
    argv[11] = eg_arena_printf(a, "%d", EG_MM_MAX);
    argv[12] = op_key(s, ws_id, bank_id);
    argv[13] = s->op_id;
    argv[14] = meta;
    argv[15] = eg_arena_printf(a, "%lld", (long long)eg_now_ms());
    free(trigger);
    /* Banks are created on write: make sure it exists, then write in its slot. */
    rc = eg_bank_put(ws_id, bank_id, NULL, on_bank, s);
    if (rc)
        submit_free(s);
    return rc;
}

int eg_mm_refresh_enqueue(const char *ws_id, const char *bank_id, const char *id, eg_mm_op_fn cb,
                          void *udata)
{
    const char *meta, **argv;
    eg_arena_t *a;
    submit_t *s;
    int rc;

    if (ws_id == NULL || bank_id == NULL || !eg_bank_id_valid(bank_id, strlen(bank_id)) ||
        id == NULL || !eg_mm_id_valid(id, strlen(id)))
        return EG_EINVAL;
    s = submit_new(ws_id, bank_id, id, cb, udata, &meta);
    a = &s->arena;
    argv = eg_arena_alloc(a, 8 * sizeof(*argv));
    argv[0] = eg__dirmm_key(a, ws_id, bank_id, "mms");
    argv[1] = eg__dirmm_key(a, ws_id, bank_id, "ops");
    argv[2] = eg__dirmm_key(a, ws_id, bank_id, "mm:");
    argv[3] = s->id;
    argv[4] = op_key(s, ws_id, bank_id);
    argv[5] = s->op_id;
    argv[6] = meta;
    argv[7] = eg_arena_printf(a, "%lld", (long long)eg_now_ms());
    rc = eg_store_eval(&s_refresh, on_written, s, 2, 8, argv, NULL);
    if (rc)
        submit_free(s);
    return rc;
}

/* ---- retry of a failed refresh (engram/bankops.h) -------------------------------------------- */

typedef struct retry_s {
    eg_bankops_retry_done_fn done;
    void *done_udata;
} retry_t;

static void on_retry_pushed(void *udata, int err, bool queued)
{
    retry_t *r = udata;

    (void)queued;
    r->done(r->done_udata, err);
    free(r);
}

static int retry_fn(const char *ws_id, const char *bank_id, const eg_op_t *op,
                    eg_bankops_retry_done_fn done, void *done_udata)
{
    cJSON *meta = cJSON_Parse(op->meta);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(meta, "payload");
    char job[128], *txt = NULL;
    retry_t *r;
    int rc = EG_EINVAL;

    (void)ws_id;
    (void)bank_id;
    if (cJSON_IsObject(p) && (txt = cJSON_PrintUnformatted(p)) != NULL) {
        r = eg_xcalloc(1, sizeof(*r));
        r->done = done;
        r->done_udata = done_udata;
        /* A fresh job id: the first one is still in the queue's push dedupe window. */
        snprintf(job, sizeof(job), "%s:r%lld", op->id, (long long)op->retries);
        rc = eg_queue_push(EG_MM_QUEUE, job, txt, strlen(txt), 0, on_retry_pushed, r);
        if (rc)
            free(r);
    }
    free(txt);
    cJSON_Delete(meta);
    return rc;
}

int eg_mm_init(void)
{
    return eg_bankops_set_retry(EG_MM_OP_KIND, retry_fn);
}
