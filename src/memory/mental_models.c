/* Mental models (engram/mental_models.h): one hash per model, an index zset and a history list
 * per model in the bank's slot; every write one script. Reads return the bank's last_write_at
 * with the records so staleness is computed from one consistent snapshot.
 *
 * Keys: eg:{b:<ws>/<bank>}:mms (zset id -> created_at µs), :mm:<id> (hash), :mmh:<id> (list).
 * Search lives in mental_models_search.c. */
#include <stdlib.h>
#include <string.h>

#include "dirmm_int.h"
#include "engram/bank.h"
#include "engram/error.h"
#include "engram/mental_models.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/util.h"
#include "mental_models_int.h"

/* Lua: push the model's current content (if any) to its history, newest first, capped. The entry
 * is built as text: cjson.encode of a string is exact, and the times are copied as they are
 * stored (Lua's number printing would round µs). */
#define LUA_PUSH_HISTORY                                                                           \
    "local function push_history(k, hk, now, cap)\n"                                               \
    "  local old = redis.call('HMGET', k, 'content', 'last_refreshed_at')\n"                       \
    "  if not old[1] or old[1] == '' then return end\n"                                            \
    "  local lr = (old[2] and old[2] ~= '') and old[2] or 'null'\n"                                \
    "  redis.call('LPUSH', hk, '{\"previous_content\":' .. cjson.encode(old[1]) ..\n"              \
    "    ',\"previous_refreshed_at\":' .. lr .. ',\"changed_at\":' .. now .. '}')\n"               \
    "  redis.call('LTRIM', hk, 0, cap - 1)\n"                                                      \
    "end\n" LUA_LAST_WRITE

/* Lua: the bank's last_write_at (ms, "0" when never), from which reads compute is_stale. */
#define LUA_LAST_WRITE                                                                             \
    "local function last_write(bank)\n"                                                            \
    "  return redis.call('HGET', bank, 'last_write_at') or '0'\n"                                  \
    "end\n"

/* KEYS[1] bank, KEYS[2] index; ARGV prefix, id (absent: every model, newest first). Returns
 * {last_write_at, {records}}; index entries without a record are skipped. */
static eg_script_t s_read = {
    .name = "mm_read",
    .source = LUA_LAST_WRITE
    "local ids = ARGV[2] and {ARGV[2]} or redis.call('ZREVRANGE', KEYS[2], 0, -1)\n"
    "local out = {}\n"
    "for i = 1, #ids do\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. ids[i])\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return {last_write(KEYS[1]), out}\n",
};

/* KEYS[1] bank, KEYS[2] index; ARGV prefix, history prefix, id, now, then field / value pairs.
 * Returns {last_write_at, record}. */
static eg_script_t s_patch = {
    .name = "mm_patch",
    .source =
        LUA_LAST_WRITE "local k = ARGV[1] .. ARGV[3]\n"
                       "if redis.call('EXISTS', k) == 0 then return "
                       "redis.error_reply('EG_NOTFOUND mental model') end\n"
                       "for i = 5, #ARGV, 2 do redis.call('HSET', k, ARGV[i], ARGV[i + 1]) end\n"
                       "redis.call('HSET', k, 'updated_at', ARGV[4])\n"
                       "return {last_write(KEYS[1]), redis.call('HGETALL', k)}\n",
};

/* KEYS[1] bank, KEYS[2] index; ARGV prefix, history prefix, id. Returns {last_write_at, record
 * as it was}. */
static eg_script_t s_delete = {
    .name = "mm_delete",
    .source =
        LUA_LAST_WRITE "local k = ARGV[1] .. ARGV[3]\n"
                       "local r = redis.call('HGETALL', k)\n"
                       "if #r == 0 then return redis.error_reply('EG_NOTFOUND mental model') end\n"
                       "redis.call('DEL', k, ARGV[2] .. ARGV[3])\n"
                       "redis.call('ZREM', KEYS[2], ARGV[3])\n"
                       "return {last_write(KEYS[1]), r}\n",
};

/* KEYS[1] bank, KEYS[2] index; ARGV prefix, history prefix, id, now (µs), history cap, content,
 * reflect_response, refreshed ('1': a refresh, which stamps last_refreshed_at and
 * last_memory_seen_at; '0': a clear). Returns {last_write_at, record}. */
static eg_script_t s_save = {
    .name = "mm_save",
    .source = LUA_PUSH_HISTORY
    "local k = ARGV[1] .. ARGV[3]\n"
    "if redis.call('EXISTS', k) == 0 then return redis.error_reply('EG_NOTFOUND mental model') "
    "end\n"
    "push_history(k, ARGV[2] .. ARGV[3], ARGV[4], tonumber(ARGV[5]))\n"
    "redis.call('HSET', k, 'content', ARGV[6], 'reflect_response', ARGV[7], 'updated_at', "
    "ARGV[4])\n"
    "local lw = last_write(KEYS[1])\n"
    "if ARGV[8] == '1' then\n"
    "  local seen = ''\n"
    "  if lw ~= '0' and lw ~= '' then seen = lw .. '000' end\n"
    "  redis.call('HSET', k, 'last_refreshed_at', ARGV[4], 'last_memory_seen_at', seen)\n"
    "end\n"
    "return {lw, redis.call('HGETALL', k)}\n",
};

/* KEYS[1] index; ARGV prefix, history prefix, id. Returns the history, newest first. */
static eg_script_t s_history = {
    .name = "mm_history",
    .source = "if redis.call('EXISTS', ARGV[1] .. ARGV[3]) == 0 then\n"
              "  return redis.error_reply('EG_NOTFOUND mental model')\n"
              "end\n"
              "return redis.call('LRANGE', ARGV[2] .. ARGV[3], 0, -1)\n",
};

bool eg_mm_id_valid(const char *id, size_t len)
{
    if (id == NULL || len == 0 || len > EG_MM_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
            return false;
    return true;
}

bool eg_mm_tags_pass(const char *const *mt, size_t nmt, const char *const *want, size_t nwant,
                     eg_tags_match_t m)
{
    return eg__dirmm_tags_pass(mt, nmt, want, nwant, m, false);
}

static bool args_ok(const char *ws_id, const char *bank_id, const char *id)
{
    return ws_id && bank_id && eg_bank_id_valid(bank_id, strlen(bank_id)) &&
           (id == NULL || eg_mm_id_valid(id, strlen(id)));
}

/* ---- records --------------------------------------------------------------------------------- */

static int64_t time_field(const redisReply *r, const char *f)
{
    const char *s = eg__dirmm_hget(r, f);
    int64_t v;

    if (s == NULL || s[0] == 0 || eg_parse_int64(s, INT64_MIN + 1, INT64_MAX, &v) != 0)
        return EG_MEM_TIME_NONE;
    return v;
}

static const cJSON *json_field(eg_arena_t *a, const redisReply *r, const char *f)
{
    const char *s = eg__dirmm_hget(r, f);
    cJSON *j;

    if (s == NULL || s[0] == 0 || (j = cJSON_Parse(s)) == NULL)
        return NULL;
    eg_arena_defer(a, (void (*)(void *))cJSON_Delete, j);
    return j;
}

void eg__mm_parse(eg_arena_t *a, const redisReply *r, int64_t last_write_ms, eg_mm_t *m)
{
    const char *s;

    memset(m, 0, sizeof(*m));
    m->id = (s = eg__dirmm_hget(r, "id")) ? s : "";
    m->name = (s = eg__dirmm_hget(r, "name")) ? s : "";
    m->source_query = (s = eg__dirmm_hget(r, "source_query")) ? s : "";
    m->content = (s = eg__dirmm_hget(r, "content")) ? s : "";
    m->ntags = eg__dirmm_tags_parse(a, eg__dirmm_hget(r, "tags"), &m->tags);
    m->max_tokens = eg__dirmm_hget_int(r, "max_tokens", EG_MM_MAX_TOKENS_DEF);
    m->trigger = json_field(a, r, "trigger");
    if (!cJSON_IsObject(m->trigger)) {
        cJSON *t = cJSON_CreateObject();
        eg_arena_defer(a, (void (*)(void *))cJSON_Delete, t);
        m->trigger = t;
    }
    m->reflect_response = json_field(a, r, "reflect_response");
    m->last_refreshed_at = time_field(r, "last_refreshed_at");
    m->last_memory_seen_at = time_field(r, "last_memory_seen_at");
    m->created_at = time_field(r, "created_at");
    m->updated_at = time_field(r, "updated_at");
    m->is_stale = last_write_ms > 0 && (m->last_memory_seen_at == EG_MEM_TIME_NONE ||
                                        last_write_ms * 1000 > m->last_memory_seen_at);
}

static int64_t reply_last_write(const redisReply *r)
{
    int64_t v = 0;

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        eg_parse_int64(r->element[0]->str, 0, INT64_MAX, &v);
    return v;
}

/* ---- operations ------------------------------------------------------------------------------ */

typedef enum { MOP_ONE, MOP_LIST, MOP_HISTORY } mop_kind_t;

typedef struct mm_op_s {
    eg_arena_t arena;
    mop_kind_t kind;
    eg_mm_fn one;
    eg_mms_fn many;
    eg_mm_history_fn history;
    void *udata;
    eg_mm_query_t q;
} mm_op_t;

static mm_op_t *op_new(mop_kind_t kind, void *udata)
{
    mm_op_t *op = eg_xcalloc(1, sizeof(*op));

    eg_arena_init(&op->arena);
    op->kind = kind;
    op->udata = udata;
    return op;
}

static void op_free(mm_op_t *op)
{
    eg_arena_destroy(&op->arena);
    free(op);
}

static void fail(mm_op_t *op, int err)
{
    switch (op->kind) {
    case MOP_ONE:
        op->one(op->udata, err, NULL);
        break;
    case MOP_LIST:
        op->many(op->udata, err, NULL, 0, 0);
        break;
    case MOP_HISTORY:
        op->history(op->udata, err, NULL, 0);
        break;
    }
    op_free(op);
}

static void on_list(mm_op_t *op, const redisReply *r)
{
    const redisReply *recs = r->element[1];
    int64_t lw = reply_last_write(r);
    eg_mm_t *ms = NULL;
    size_t total = 0, n = 0;

    if (recs->type == REDIS_REPLY_ARRAY && recs->elements > 0) {
        ms = eg_arena_alloc(&op->arena, recs->elements * sizeof(*ms));
        for (size_t i = 0; i < recs->elements; i++) {
            eg__mm_parse(&op->arena, recs->element[i], lw, &ms[total]);
            if (op->q.ntags == 0 || eg_mm_tags_pass(ms[total].tags, ms[total].ntags, op->q.tags,
                                                    op->q.ntags, op->q.tags_match))
                total++;
        }
    }
    /* The index orders by created_at; equal times fall back to the id. */
    if (op->q.offset < total) {
        n = total - op->q.offset;
        if (n > op->q.limit)
            n = op->q.limit;
    }
    op->many(op->udata, 0, n ? ms + op->q.offset : NULL, n, total);
}

static void on_history(mm_op_t *op, const redisReply *r)
{
    eg_mm_version_t *vs = NULL;
    size_t n = 0;

    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        vs = eg_arena_alloc(&op->arena, r->elements * sizeof(*vs));
        for (size_t i = 0; i < r->elements; i++) {
            cJSON *j = cJSON_Parse(r->element[i]->str);
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "previous_content");
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "previous_refreshed_at");
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "changed_at");

            if (cJSON_IsString(c)) {
                vs[n].previous_content = eg_arena_strdup(&op->arena, c->valuestring);
                vs[n].previous_refreshed_at =
                    cJSON_IsNumber(p) ? (int64_t)p->valuedouble : EG_MEM_TIME_NONE;
                vs[n].changed_at = cJSON_IsNumber(t) ? (int64_t)t->valuedouble : 0;
                n++;
            }
            cJSON_Delete(j);
        }
    }
    op->history(op->udata, 0, vs, n);
}

static void on_reply(void *udata, int err, redisReply *r)
{
    mm_op_t *op = udata;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = eg__dirmm_reply_error(r);
    if (err == 0 && op->kind != MOP_HISTORY && (r->type != REDIS_REPLY_ARRAY || r->elements != 2))
        err = EG_EREDIS;
    if (err) {
        fail(op, err);
        return;
    }
    switch (op->kind) {
    case MOP_ONE: {
        const redisReply *rec = r->element[1];
        eg_mm_t m;

        /* mm_read answers a list: one record, or none. */
        if (rec->type == REDIS_REPLY_ARRAY && rec->elements == 1 &&
            rec->element[0]->type == REDIS_REPLY_ARRAY)
            rec = rec->element[0];
        if (rec->type != REDIS_REPLY_ARRAY || rec->elements == 0 ||
            rec->element[0]->type != REDIS_REPLY_STRING) {
            fail(op, EG_ENOTFOUND);
            return;
        }
        eg__mm_parse(&op->arena, rec, reply_last_write(r), &m);
        op->one(op->udata, 0, &m);
        break;
    }
    case MOP_LIST:
        on_list(op, r);
        break;
    case MOP_HISTORY:
        on_history(op, r);
        break;
    }
    op_free(op);
}

/* argv[0..1] are the bank and index keys; the caller fills the rest. */
static const char **keys_argv(mm_op_t *op, const char *ws_id, const char *bank_id, int argc)
{
    const char **argv = eg_arena_alloc(&op->arena, (size_t)argc * sizeof(*argv));

    argv[0] = eg__dirmm_key(&op->arena, ws_id, bank_id, "bank");
    argv[1] = eg__dirmm_key(&op->arena, ws_id, bank_id, "mms");
    return argv;
}

static int eval(mm_op_t *op, eg_script_t *s, int nkeys, int argc, const char **argv)
{
    int rc = eg_store_eval(s, on_reply, op, nkeys, argc, argv, NULL);

    if (rc)
        op_free(op);
    return rc;
}

int eg_mm_get(const char *ws_id, const char *bank_id, const char *id, eg_mm_fn cb, void *udata)
{
    mm_op_t *op;
    const char **argv;

    if (!args_ok(ws_id, bank_id, id))
        return EG_EINVAL;
    op = op_new(MOP_ONE, udata);
    op->one = cb;
    argv = keys_argv(op, ws_id, bank_id, 4);
    argv[2] = eg__dirmm_key(&op->arena, ws_id, bank_id, "mm:");
    argv[3] = eg_arena_strdup(&op->arena, id);
    return eval(op, &s_read, 2, 4, argv);
}

/* Read every model of the bank (list and search). */
int eg__mm_read_all(const char *ws_id, const char *bank_id, eg_reply_fn fn, void *udata,
                    eg_arena_t *a)
{
    const char *argv[3];

    argv[0] = eg__dirmm_key(a, ws_id, bank_id, "bank");
    argv[1] = eg__dirmm_key(a, ws_id, bank_id, "mms");
    argv[2] = eg__dirmm_key(a, ws_id, bank_id, "mm:");
    return eg_store_eval(&s_read, fn, udata, 2, 3, argv, NULL);
}

int eg_mm_list(const char *ws_id, const char *bank_id, const eg_mm_query_t *q, eg_mms_fn cb,
               void *udata)
{
    mm_op_t *op;
    int rc;

    if (!args_ok(ws_id, bank_id, NULL) || q == NULL || q->limit == 0 || q->limit > 1000)
        return EG_EINVAL;
    op = op_new(MOP_LIST, udata);
    op->many = cb;
    op->q = *q;
    if (q->ntags) {
        const char **tags = eg_arena_alloc(&op->arena, q->ntags * sizeof(*tags));
        for (size_t i = 0; i < q->ntags; i++)
            tags[i] = eg_arena_strdup(&op->arena, q->tags[i]);
        op->q.tags = tags;
    }
    rc = eg__mm_read_all(ws_id, bank_id, on_reply, op, &op->arena);
    if (rc)
        op_free(op);
    return rc;
}

static char *json_text(eg_arena_t *a, const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j), *out;

    out = eg_arena_strdup(a, s ? s : "{}");
    free(s);
    return out;
}

int eg_mm_patch(const char *ws_id, const char *bank_id, const char *id, const eg_mm_patch_t *p,
                eg_mm_fn cb, void *udata)
{
    mm_op_t *op;
    const char **argv;
    eg_arena_t *a;
    int argc = 6;

    if (!args_ok(ws_id, bank_id, id) || p == NULL ||
        (p->name && strlen(p->name) > EG_MM_NAME_MAX) ||
        (p->source_query && strlen(p->source_query) > EG_MM_QUERY_MAX) ||
        (p->max_tokens &&
         (p->max_tokens < EG_MM_MAX_TOKENS_MIN || p->max_tokens > EG_MM_MAX_TOKENS_MAX)) ||
        (p->set_tags && !eg__dirmm_tags_valid(p->tags, p->ntags)) ||
        (p->trigger && !cJSON_IsObject(p->trigger)))
        return EG_EINVAL;
    op = op_new(MOP_ONE, udata);
    op->one = cb;
    a = &op->arena;
    argv = keys_argv(op, ws_id, bank_id, 16);
    argv[2] = eg__dirmm_key(a, ws_id, bank_id, "mm:");
    argv[3] = eg__dirmm_key(a, ws_id, bank_id, "mmh:");
    argv[4] = eg_arena_strdup(a, id);
    argv[5] = eg_arena_printf(a, "%lld", (long long)eg__dirmm_now_us());
    if (p->name) {
        argv[argc++] = "name";
        argv[argc++] = eg_arena_strdup(a, p->name);
    }
    if (p->source_query) {
        argv[argc++] = "source_query";
        argv[argc++] = eg_arena_strdup(a, p->source_query);
    }
    if (p->max_tokens) {
        argv[argc++] = "max_tokens";
        argv[argc++] = eg_arena_printf(a, "%lld", (long long)p->max_tokens);
    }
    if (p->set_tags) {
        argv[argc++] = "tags";
        argv[argc++] = eg__dirmm_tags_json(a, p->tags, p->ntags);
    }
    if (p->trigger) {
        argv[argc++] = "trigger";
        argv[argc++] = json_text(a, p->trigger);
    }
    return eval(op, &s_patch, 2, argc, argv);
}

int eg_mm_delete(const char *ws_id, const char *bank_id, const char *id, eg_mm_fn cb, void *udata)
{
    mm_op_t *op;
    const char **argv;

    if (!args_ok(ws_id, bank_id, id))
        return EG_EINVAL;
    op = op_new(MOP_ONE, udata);
    op->one = cb;
    argv = keys_argv(op, ws_id, bank_id, 5);
    argv[2] = eg__dirmm_key(&op->arena, ws_id, bank_id, "mm:");
    argv[3] = eg__dirmm_key(&op->arena, ws_id, bank_id, "mmh:");
    argv[4] = eg_arena_strdup(&op->arena, id);
    return eval(op, &s_delete, 2, 5, argv);
}

static int save(const char *ws_id, const char *bank_id, const char *id, const char *content,
                const char *rr, bool refreshed, eg_mm_fn cb, void *udata)
{
    mm_op_t *op;
    const char **argv;
    eg_arena_t *a;

    if (!args_ok(ws_id, bank_id, id) || content == NULL || strlen(content) > EG_MM_CONTENT_MAX)
        return EG_EINVAL;
    if (rr && rr[0]) {
        cJSON *j = cJSON_Parse(rr);
        bool ok = cJSON_IsObject(j);

        cJSON_Delete(j);
        if (!ok)
            return EG_EINVAL;
    }
    op = op_new(MOP_ONE, udata);
    op->one = cb;
    a = &op->arena;
    argv = keys_argv(op, ws_id, bank_id, 10);
    argv[2] = eg__dirmm_key(a, ws_id, bank_id, "mm:");
    argv[3] = eg__dirmm_key(a, ws_id, bank_id, "mmh:");
    argv[4] = eg_arena_strdup(a, id);
    argv[5] = eg_arena_printf(a, "%lld", (long long)eg__dirmm_now_us());
    argv[6] = eg_arena_printf(a, "%d", EG_MM_HISTORY_MAX);
    argv[7] = eg_arena_strdup(a, content);
    argv[8] = eg_arena_strdup(a, rr ? rr : "");
    argv[9] = refreshed ? "1" : "0";
    return eval(op, &s_save, 2, 10, argv);
}

int eg_mm_save_refresh(const char *ws_id, const char *bank_id, const char *id, const char *content,
                       const char *reflect_response_json, eg_mm_fn cb, void *udata)
{
    return save(ws_id, bank_id, id, content, reflect_response_json, true, cb, udata);
}

int eg_mm_clear(const char *ws_id, const char *bank_id, const char *id, eg_mm_fn cb, void *udata)
{
    return save(ws_id, bank_id, id, "", NULL, false, cb, udata);
}

int eg_mm_history(const char *ws_id, const char *bank_id, const char *id, eg_mm_history_fn cb,
                  void *udata)
{
    mm_op_t *op;
    const char **argv;

    if (!args_ok(ws_id, bank_id, id))
        return EG_EINVAL;
    op = op_new(MOP_HISTORY, udata);
    op->history = cb;
    argv = eg_arena_alloc(&op->arena, 4 * sizeof(*argv));
    argv[0] = eg__dirmm_key(&op->arena, ws_id, bank_id, "mms");
    argv[1] = eg__dirmm_key(&op->arena, ws_id, bank_id, "mm:");
    argv[2] = eg__dirmm_key(&op->arena, ws_id, bank_id, "mmh:");
    argv[3] = eg_arena_strdup(&op->arena, id);
    return eval(op, &s_history, 1, 4, argv);
}

void eg_mm_bank_keys(eg_arena_t *a, const char *ws_id, const char *bank_id, const char **index,
                     const char *prefixes[2])
{
    *index = eg__dirmm_key(a, ws_id, bank_id, "mms");
    prefixes[0] = eg__dirmm_key(a, ws_id, bank_id, "mm:");
    prefixes[1] = eg__dirmm_key(a, ws_id, bank_id, "mmh:");
}
