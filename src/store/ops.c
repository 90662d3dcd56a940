/* Operation records (include/engram/ops.h). Each call is one Lua script in the owner's slot; the
 * scripts answer with the record's HGETALL, so every callback gets the record as stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/ops.h"
#include "engram/store.h"

#define EG_OP_ID_MAX   200
#define EG_OP_LIST_MAX 1000
#define EG_OP_PAGE_MAX 64 /* records parsed per list page on the stack */

#define EG_OPS_LUA_NOW                                                                             \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* KEYS op, idx; ARGV id, kind, meta. */
static eg_script_t eg_script_op_create = {
    "op_create",
    EG_OPS_LUA_CREATE EG_OPS_LUA_NOW
    "if not eg_op_create(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], now) then\n"
    "  return redis.error_reply('EG_CONFLICT')\n"
    "end\n"
    "return redis.call('HGETALL', KEYS[1])\n",
    ""};

/* KEYS op; ARGV status ('' keep), progress ('' keep), error, set_error ('1'). */
static eg_script_t eg_script_op_update = {
    "op_update",
    "local cur = redis.call('HGET', KEYS[1], 'status')\n"
    "if not cur then return redis.error_reply('EG_NOTFOUND') end\n"
    "if cur == 'completed' or cur == 'failed' or cur == 'cancelled' then\n"
    "  return redis.error_reply('EG_CONFLICT')\n"
    "end\n" EG_OPS_LUA_NOW "local st = ARGV[1]\n"
    "if st ~= '' then\n"
    "  redis.call('HSET', KEYS[1], 'status', st)\n"
    "  if st == 'processing' and redis.call('HEXISTS', KEYS[1], 'started') == 0 then\n"
    "    redis.call('HSET', KEYS[1], 'started', now)\n"
    "  end\n"
    "  if st == 'completed' or st == 'failed' or st == 'cancelled' then\n"
    "    redis.call('HSET', KEYS[1], 'finished', now)\n"
    "  end\n"
    "  if st == 'completed' then redis.call('HSET', KEYS[1], 'progress', '1') end\n"
    "end\n"
    "if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'progress', ARGV[2]) end\n"
    "if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end\n"
    "redis.call('HSET', KEYS[1], 'updated', now)\n"
    "return redis.call('HGETALL', KEYS[1])\n",
    ""};

/* KEYS idx; ARGV op key prefix, status ('' any), cursor ('' start), limit. Records are read
 * through a key built from the prefix: they share the index's hash tag, so the script stays in
 * one slot. The scan is bounded so a rare status cannot make one call walk a huge index. */
static eg_script_t eg_script_op_list = {
    "op_list",
    "local pos = 0\n"
    "if ARGV[3] ~= '' then\n"
    "  local r = redis.call('ZREVRANK', KEYS[1], ARGV[3])\n"
    "  if not r then return redis.error_reply('EG_BADCURSOR') end\n"
    "  pos = r + 1\n"
    "end\n"
    "local limit = tonumber(ARGV[4])\n"
    "local budget = limit * 20 + 100\n"
    "local out, last, scanned = {}, '', 0\n"
    "while #out < limit and scanned < budget do\n"
    "  local ids = redis.call('ZREVRANGE', KEYS[1], pos, pos + 99)\n"
    "  if #ids == 0 then break end\n"
    "  for _, id in ipairs(ids) do\n"
    "    pos = pos + 1\n"
    "    scanned = scanned + 1\n"
    "    last = id\n"
    "    local h = redis.call('HGETALL', ARGV[1] .. id)\n"
    "    if #h > 0 then\n"
    "      local st = ''\n"
    "      for i = 1, #h, 2 do if h[i] == 'status' then st = h[i + 1] end end\n"
    "      if ARGV[2] == '' or st == ARGV[2] then out[#out + 1] = h end\n"
    "    end\n"
    "    if #out >= limit or scanned >= budget then break end\n"
    "  end\n"
    "end\n"
    "local nextc = ''\n"
    "if pos < redis.call('ZCARD', KEYS[1]) then nextc = last end\n"
    "return {nextc, out}\n",
    ""};

/* The conditional moves: KEYS op, idx; ARGV action. Return {outcome, record}: outcome 'ok',
 * 'conflict' (wrong state, record unchanged) or 'missing'. */
static eg_script_t eg_script_op_cond = {
    "op_cond",
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if not st then return {'missing', {}} end\n"
    "local final = st == 'completed' or st == 'failed' or st == 'cancelled'\n"
    "local act = ARGV[1]\n" EG_OPS_LUA_NOW "if act == 'cancel' then\n"
    "  if st ~= 'pending' then return {'conflict', redis.call('HGETALL', KEYS[1])} end\n"
    "  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished', now, 'updated', now)\n"
    "elseif act == 'requeue' then\n"
    "  if st ~= 'failed' then return {'conflict', redis.call('HGETALL', KEYS[1])} end\n"
    "  redis.call('HDEL', KEYS[1], 'started', 'finished')\n"
    "  redis.call('HSET', KEYS[1], 'status', 'pending', 'error', '', 'progress', '0',\n"
    "             'updated', now)\n"
    "  redis.call('HINCRBY', KEYS[1], 'retries', 1)\n"
    "elseif act == 'delete' then\n"
    "  local h = redis.call('HGETALL', KEYS[1])\n"
    "  if not final then return {'conflict', h} end\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('ZREM', KEYS[2], ARGV[2])\n"
    "  return {'ok', h}\n"
    "end\n"
    "return {'ok', redis.call('HGETALL', KEYS[1])}\n",
    ""};

/* KEYS idx; ARGV op key prefix, status ('' any), kind ('' any), exclude meta key ('' none),
 * offset, limit, counts ('1'), scan max. Returns {total, {counts by status}, {records}}. */
static eg_script_t eg_script_op_page = {
    "op_page",
    "local offset, limit = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local want_counts = ARGV[7] == '1'\n"
    "local names = {pending = 1, processing = 2, completed = 3, failed = 4, cancelled = 5}\n"
    "local counts = {0, 0, 0, 0, 0}\n"
    "local out = {}\n"
    "if ARGV[2] == '' and ARGV[3] == '' and ARGV[4] == '' and not want_counts then\n"
    "  local total = redis.call('ZCARD', KEYS[1])\n"
    "  if limit > 0 then\n"
    "    for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], offset, offset + limit - 1)) do\n"
    "      local h = redis.call('HGETALL', ARGV[1] .. id)\n"
    "      if #h > 0 then out[#out + 1] = h end\n"
    "    end\n"
    "  end\n"
    "  return {total, counts, out}\n"
    "end\n"
    "local total = 0\n"
    "for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[8]) - 1)) do\n"
    "  local f = redis.call('HMGET', ARGV[1] .. id, 'status', 'kind', 'meta')\n"
    "  if f[1] then\n"
    "    local i = names[f[1]]\n"
    "    if i then counts[i] = counts[i] + 1 end\n"
    "    local ok = (ARGV[2] == '' or f[1] == ARGV[2]) and (ARGV[3] == '' or f[2] == ARGV[3])\n"
    "    if ok and ARGV[4] ~= '' and f[3] and f[3] ~= '' then\n"
    "      local good, m = pcall(cjson.decode, f[3])\n"
    "      if good and type(m) == 'table' and type(m[ARGV[4]]) == 'table' and\n"
    "         next(m[ARGV[4]]) ~= nil then ok = false end\n"
    "    end\n"
    "    if ok then\n"
    "      total = total + 1\n"
    "      if total > offset and #out < limit then\n"
    "        out[#out + 1] = redis.call('HGETALL', ARGV[1] .. id)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return {total, counts, out}\n",
    ""};

static const char *const eg_op_status_names[] = {"pending", "processing", "completed", "failed",
                                                 "cancelled"};

const char *eg_op_status_name(eg_op_status_t st)
{
    if ((unsigned)st >= sizeof(eg_op_status_names) / sizeof(eg_op_status_names[0]))
        return "unknown";
    return eg_op_status_names[st];
}

int eg_op_status_parse(const char *s, eg_op_status_t *out)
{
    for (unsigned i = 0; s != NULL && i < sizeof(eg_op_status_names) / sizeof(*eg_op_status_names);
         i++) {
        if (strcmp(s, eg_op_status_names[i]) == 0) {
            *out = (eg_op_status_t)i;
            return 0;
        }
    }
    return EG_EINVAL;
}

static bool eg_op_id_valid(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;

    if (n == 0 || n > EG_OP_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] >= 127)
            return false;
    return true;
}

/* Fill op from an HGETALL-shaped array; false when it is not one. */
static bool eg_op_parse(const redisReply *h, eg_op_t *op)
{
    memset(op, 0, sizeof(*op));
    op->id = op->kind = op->error = op->meta = "";
    if (h->type != REDIS_REPLY_ARRAY || h->elements == 0 || h->elements % 2 != 0)
        return false;
    for (size_t i = 0; i < h->elements; i += 2) {
        const redisReply *k = h->element[i], *v = h->element[i + 1];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return false;
        if (strcmp(k->str, "id") == 0)
            op->id = v->str;
        else if (strcmp(k->str, "kind") == 0)
            op->kind = v->str;
        else if (strcmp(k->str, "error") == 0)
            op->error = v->str;
        else if (strcmp(k->str, "meta") == 0)
            op->meta = v->str;
        else if (strcmp(k->str, "status") == 0)
            eg_op_status_parse(v->str, &op->status);
        else if (strcmp(k->str, "progress") == 0)
            op->progress = strtod(v->str, NULL);
        else if (strcmp(k->str, "created") == 0)
            op->created_ms = strtoll(v->str, NULL, 10);
        else if (strcmp(k->str, "updated") == 0)
            op->updated_ms = strtoll(v->str, NULL, 10);
        else if (strcmp(k->str, "started") == 0)
            op->started_ms = strtoll(v->str, NULL, 10);
        else if (strcmp(k->str, "finished") == 0)
            op->finished_ms = strtoll(v->str, NULL, 10);
        else if (strcmp(k->str, "retries") == 0)
            op->retries = strtoll(v->str, NULL, 10);
    }
    return op->id[0] != '\0';
}

/* Map our scripts' error replies (and anything else unexpected) to error codes. Redis 7 prefixes
 * a code-less error_reply with "ERR ", so the marker is searched, not matched at the start. */
static int eg_op_reply_err(int err, const redisReply *r)
{
    if (err != 0)
        return err;
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    if (strstr(r->str, "EG_NOTFOUND") != NULL)
        return EG_ENOTFOUND;
    if (strstr(r->str, "EG_CONFLICT") != NULL)
        return EG_ECONFLICT;
    if (strstr(r->str, "EG_BADCURSOR") != NULL)
        return EG_EINVAL;
    return EG_EREDIS;
}

typedef struct eg_op_req_s {
    eg_op_fn cb;
    eg_op_list_fn list_cb;
    eg_op_page_fn page_cb;
    void *udata;
} eg_op_req_t;

static void eg_op_one_cb(void *udata, int err, redisReply *r)
{
    eg_op_req_t *req = udata;
    eg_op_t op;

    err = eg_op_reply_err(err, r);
    if (err == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 0)
        err = EG_ENOTFOUND; /* HGETALL of a missing key */
    if (err == 0 && !eg_op_parse(r, &op))
        err = EG_EREDIS;
    if (req->cb != NULL)
        req->cb(req->udata, err, err == 0 ? &op : NULL);
    free(req);
}

static void eg_op_list_cb(void *udata, int err, redisReply *r)
{
    eg_op_req_t *req = udata;
    eg_op_t ops[EG_OP_PAGE_MAX], *many = NULL, *v = ops;
    const redisReply *list = NULL;
    size_t n = 0;

    err = eg_op_reply_err(err, r);
    if (err == 0 &&
        (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
         r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY))
        err = EG_EREDIS;
    if (err == 0) {
        list = r->element[1];
        if (list->elements > EG_OP_PAGE_MAX) {
            many = calloc(list->elements, sizeof(*many));
            if (many == NULL)
                err = EG_EUNAVAIL;
            v = many;
        }
    }
    for (size_t i = 0; err == 0 && i < list->elements; i++)
        if (eg_op_parse(list->element[i], &v[n]))
            n++;
    req->list_cb(req->udata, err, err == 0 ? v : NULL, n, err == 0 ? r->element[0]->str : "");
    free(many);
    free(req);
}

static eg_op_req_t *eg_op_req(eg_op_fn cb, eg_op_list_fn list_cb, void *udata)
{
    eg_op_req_t *req = calloc(1, sizeof(*req));

    if (req != NULL) {
        req->cb = cb;
        req->list_cb = list_cb;
        req->udata = udata;
    }
    return req;
}

int eg_op_create(const char *scope, const char *scope_id, const char *op_id, const char *kind,
                 const char *meta, eg_op_fn cb, void *udata)
{
    eg_arena_t a;
    eg_op_req_t *req = NULL;
    const char *argv[5];
    int rc = EG_EINVAL;

    eg_arena_init(&a);
    if (scope == NULL || scope_id == NULL || !eg_op_id_valid(op_id) || kind == NULL)
        goto fail;
    req = eg_op_req(cb, NULL, udata);
    rc = EG_EUNAVAIL;
    if (req == NULL)
        goto fail;
    argv[0] = eg_key(&a, scope, scope_id, "op:%s", op_id);
    argv[1] = eg_key(&a, scope, scope_id, "ops");
    argv[2] = op_id;
    argv[3] = kind;
    argv[4] = meta != NULL ? meta : "";
    rc = eg_store_eval(&eg_script_op_create, eg_op_one_cb, req, 2, 5, argv, NULL);
fail:
    if (rc != 0)
        free(req); /* once sent, the reply callback frees it */
    eg_arena_destroy(&a);
    return rc;
}

int eg_op_update(const char *scope, const char *scope_id, const char *op_id, int status,
                 double progress, const char *error, eg_op_fn cb, void *udata)
{
    eg_arena_t a;
    eg_op_req_t *req = NULL;
    char prog[32] = "";
    const char *argv[5];
    int rc = EG_EINVAL;

    eg_arena_init(&a);
    if (scope == NULL || scope_id == NULL || !eg_op_id_valid(op_id) || progress > 1.0 ||
        (status != EG_OP_KEEP && (status < EG_OP_PENDING || status > EG_OP_CANCELLED)))
        goto fail;
    if (progress >= 0)
        snprintf(prog, sizeof(prog), "%.4f", progress);
    req = eg_op_req(cb, NULL, udata);
    rc = EG_EUNAVAIL;
    if (req == NULL)
        goto fail;
    argv[0] = eg_key(&a, scope, scope_id, "op:%s", op_id);
    argv[1] = status == EG_OP_KEEP ? "" : eg_op_status_name((eg_op_status_t)status);
    argv[2] = prog;
    argv[3] = error != NULL ? error : "";
    argv[4] = error != NULL ? "1" : "0";
    rc = eg_store_eval(&eg_script_op_update, eg_op_one_cb, req, 1, 5, argv, NULL);
fail:
    if (rc != 0)
        free(req); /* once sent, the reply callback frees it */
    eg_arena_destroy(&a);
    return rc;
}

int eg_op_get(const char *scope, const char *scope_id, const char *op_id, eg_op_fn cb, void *udata)
{
    eg_arena_t a;
    eg_op_req_t *req = NULL;
    const char *key;
    int rc = EG_EINVAL;

    eg_arena_init(&a);
    if (scope == NULL || scope_id == NULL || !eg_op_id_valid(op_id) || cb == NULL)
        goto fail;
    req = eg_op_req(cb, NULL, udata);
    rc = EG_EUNAVAIL;
    if (req == NULL)
        goto fail;
    key = eg_key(&a, scope, scope_id, "op:%s", op_id);
    rc = eg_store_command(eg_op_one_cb, req, "HGETALL %s", key);
fail:
    if (rc != 0)
        free(req); /* once sent, the reply callback frees it */
    eg_arena_destroy(&a);
    return rc;
}

int eg_op_list(const char *scope, const char *scope_id, int status, const char *cursor,
               unsigned limit, eg_op_list_fn cb, void *udata)
{
    eg_arena_t a;
    eg_op_req_t *req = NULL;
    char lim[16];
    const char *argv[5];
    int rc = EG_EINVAL;

    eg_arena_init(&a);
    if (scope == NULL || scope_id == NULL || cb == NULL || limit == 0 || limit > EG_OP_LIST_MAX ||
        (status != EG_OP_KEEP && (status < EG_OP_PENDING || status > EG_OP_CANCELLED)) ||
        (cursor != NULL && cursor[0] != '\0' && !eg_op_id_valid(cursor)))
        goto fail;
    req = eg_op_req(NULL, cb, udata);
    rc = EG_EUNAVAIL;
    if (req == NULL)
        goto fail;
    snprintf(lim, sizeof(lim), "%u", limit);
    argv[0] = eg_key(&a, scope, scope_id, "ops");
    argv[1] = eg_key(&a, scope, scope_id, "op:");
    argv[2] = status == EG_OP_KEEP ? "" : eg_op_status_name((eg_op_status_t)status);
    argv[3] = cursor != NULL ? cursor : "";
    argv[4] = lim;
    rc = eg_store_eval(&eg_script_op_list, eg_op_list_cb, req, 1, 5, argv, NULL);
fail:
    if (rc != 0)
        free(req); /* once sent, the reply callback frees it */
    eg_arena_destroy(&a);
    return rc;
}

/* Reply of eg_script_op_cond: {outcome, record}. */
static void eg_op_cond_cb(void *udata, int err, redisReply *r)
{
    eg_op_req_t *req = udata;
    const redisReply *outcome;
    eg_op_t op;
    bool have = false;

    err = eg_op_reply_err(err, r);
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                     r->element[0]->type != REDIS_REPLY_STRING))
        err = EG_EREDIS;
    if (err == 0) {
        outcome = r->element[0];
        if (strcmp(outcome->str, "missing") == 0)
            err = EG_ENOTFOUND;
        else if (!eg_op_parse(r->element[1], &op))
            err = EG_EREDIS;
        else if ((have = true) && strcmp(outcome->str, "conflict") == 0)
            err = EG_ECONFLICT;
    }
    if (req->cb != NULL)
        req->cb(req->udata, err, have ? &op : NULL);
    free(req);
}

static int eg_op_cond(const char *scope, const char *scope_id, const char *op_id,
                      const char *action, eg_op_fn cb, void *udata)
{
    eg_arena_t a;
    eg_op_req_t *req = NULL;
    const char *argv[4];
    int rc = EG_EINVAL;

    eg_arena_init(&a);
    if (scope == NULL || scope_id == NULL || !eg_op_id_valid(op_id))
        goto fail;
    req = eg_op_req(cb, NULL, udata);
    rc = EG_EUNAVAIL;
    if (req == NULL)
        goto fail;
    argv[0] = eg_key(&a, scope, scope_id, "op:%s", op_id);
    argv[1] = eg_key(&a, scope, scope_id, "ops");
    argv[2] = action;
    argv[3] = op_id;
    rc = eg_store_eval(&eg_script_op_cond, eg_op_cond_cb, req, 2, 4, argv, NULL);
fail:
    if (rc != 0)
        free(req); /* once sent, the reply callback frees it */
    eg_arena_destroy(&a);
    return rc;
}

int eg_op_cancel(const char *scope, const char *scope_id, const char *op_id, eg_op_fn cb,
                 void *udata)
{
    return eg_op_cond(scope, scope_id, op_id, "cancel", cb, udata);
}

int eg_op_requeue(const char *scope, const char *scope_id, const char *op_id, eg_op_fn cb,
                  void *udata)
{
    return eg_op_cond(scope, scope_id, op_id, "requeue", cb, udata);
}

int eg_op_delete(const char *scope, const char *scope_id, const char *op_id, eg_op_fn cb,
                 void *udata)
{
    return eg_op_cond(scope, scope_id, op_id, "delete", cb, udata);
}

/* Reply of eg_script_op_page: {total, {5 counts}, {records}}. */
static void eg_op_page_cb(void *udata, int err, redisReply *r)
{
    eg_op_req_t *req = udata;
    eg_op_t ops[EG_OP_PAGE_MAX], *many = NULL, *v = ops;
    size_t counts[5] = {0, 0, 0, 0, 0}, n = 0, total = 0;
    const redisReply *list = NULL, *c;

    err = eg_op_reply_err(err, r);
    if (err == 0 &&
        (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
         r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_ARRAY ||
         r->element[1]->elements != 5 || r->element[2]->type != REDIS_REPLY_ARRAY))
        err = EG_EREDIS;
    if (err == 0) {
        total = r->element[0]->integer > 0 ? (size_t)r->element[0]->integer : 0;
        for (size_t i = 0; i < 5; i++) {
            c = r->element[1]->element[i];
            counts[i] = c->type == REDIS_REPLY_INTEGER && c->integer > 0 ? (size_t)c->integer : 0;
        }
        list = r->element[2];
        if (list->elements > EG_OP_PAGE_MAX) {
            many = calloc(list->elements, sizeof(*many));
            if (many == NULL)
                err = EG_EUNAVAIL;
            v = many;
        }
    }
    for (size_t i = 0; err == 0 && i < list->elements; i++)
        if (eg_op_parse(list->element[i], &v[n]))
            n++;
    req->page_cb(req->udata, err, err == 0 ? v : NULL, n, total, counts);
    free(many);
    free(req);
}

int eg_op_page(const char *scope, const char *scope_id, const eg_op_filter_t *f, size_t offset,
               unsigned limit, eg_op_page_fn cb, void *udata)
{
    eg_arena_t a;
    eg_op_req_t *req = NULL;
    char off[24], lim[16], scan[16];
    const char *argv[9];
    int rc = EG_EINVAL;

    eg_arena_init(&a);
    if (scope == NULL || scope_id == NULL || f == NULL || cb == NULL || limit > EG_OP_LIST_MAX ||
        (f->status != EG_OP_KEEP && (f->status < EG_OP_PENDING || f->status > EG_OP_CANCELLED)))
        goto fail;
    req = eg_op_req(NULL, NULL, udata);
    rc = EG_EUNAVAIL;
    if (req == NULL)
        goto fail;
    req->page_cb = cb;
    snprintf(off, sizeof(off), "%zu", offset);
    snprintf(lim, sizeof(lim), "%u", limit);
    snprintf(scan, sizeof(scan), "%d", EG_OP_SCAN_MAX);
    argv[0] = eg_key(&a, scope, scope_id, "ops");
    argv[1] = eg_key(&a, scope, scope_id, "op:");
    argv[2] = f->status == EG_OP_KEEP ? "" : eg_op_status_name((eg_op_status_t)f->status);
    argv[3] = f->kind != NULL ? f->kind : "";
    argv[4] = f->exclude_meta_key != NULL ? f->exclude_meta_key : "";
    argv[5] = off;
    argv[6] = lim;
    argv[7] = f->counts ? "1" : "0";
    argv[8] = scan;
    rc = eg_store_eval(&eg_script_op_page, eg_op_page_cb, req, 1, 9, argv, NULL);
fail:
    if (rc != 0)
        free(req); /* once sent, the reply callback frees it */
    eg_arena_destroy(&a);
    return rc;
}
