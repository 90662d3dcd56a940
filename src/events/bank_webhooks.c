/* Bank endpoints (one memory bank's webhooks) and bank events.
 *
 * Keys (docs/keyspace.md, "Webhooks"), all in the workspace's slot {w:<ws_id>}:
 *
 *   eg:{w:<ws>}:bwh:<bank_id>        zset  endpoint id (UUID) -> created ms, at most 100
 *   eg:{w:<ws>}:wh:<id>              hash  bank_id, url, secret ('' = none), types (space-
 *                                          separated), enabled (1|0), signing ("hindsight"),
 *                                          method, timeout (s), headers, params (JSON objects),
 *                                          created_at, updated_at
 *   eg:{w:<ws>}:wh:<id>:deliveries   as for workspace endpoints (webhooks.c)
 *
 * A bank endpoint shares the endpoint hash, delivery records and queue with the workspace's own
 * endpoints, so the one engine (webhooks_engine.c) delivers both; what tells them apart is the
 * id (a UUID, never "wh_...") and the bank_id field. The fan-out (webhooks.c) finds a bank's
 * endpoints through the bank's index, named by the event's entity.bank_id.
 *
 * The index lives in the workspace's slot rather than the bank's ({b:<ws>/<bank>}) because the
 * fan-out reads it in the same script as the workspace's endpoints. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "engram/bank.h"
#include "engram/bank_webhooks.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/text.h"
#include "engram/util.h"
#include "events_int.h"
#include "webhooks_int.h"

#define BWH_DEFAULT_TYPE "consolidation.completed"

char *eg__bwh_key_index(eg_arena_t *a, const char *ws, const char *bank)
{
    return eg_key(a, "w", ws, "bwh:%s", bank);
}

/* ---- scripts ----------------------------------------------------------------------------- */

/* KEYS index, endpoint; ARGV id, created ms, max endpoints, field, value, ... Returns the
 * endpoint's fields, or 0 when the bank is full. */
static eg_script_t s_create = {
    .name = "bank_webhooks_create",
    .source = "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end\n"
              "redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])\n"
              "redis.call('HSET', KEYS[2], unpack(ARGV, 4))\n"
              "return redis.call('HGETALL', KEYS[2])\n",
};

/* KEYS endpoint; ARGV bank, field, value, ... Returns the endpoint's fields, or {} when it is
 * gone or belongs to another bank. */
static eg_script_t s_update = {
    .name = "bank_webhooks_update",
    .source = "if redis.call('HGET', KEYS[1], 'bank_id') ~= ARGV[1] then return {} end\n"
              "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
              "return redis.call('HGETALL', KEYS[1])\n",
};

/* KEYS index; ARGV key prefix "eg:{w:<ws>}:", bank. Returns {id, fields} per endpoint, oldest
 * first. */
static eg_script_t s_list = {
    .name = "bank_webhooks_list",
    .source = "local out = {}\n"
              "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
              "  local f = redis.call('HGETALL', ARGV[1] .. 'wh:' .. id)\n"
              "  if #f > 0 then out[#out + 1] = id; out[#out + 1] = f end\n"
              "end\n"
              "return out\n",
};

/* KEYS index, endpoint, deliveries; ARGV id, bank. Returns 1 when it existed in that bank. */
static eg_script_t s_delete = {
    .name = "bank_webhooks_delete",
    .source = "if redis.call('HGET', KEYS[2], 'bank_id') ~= ARGV[2] then return 0 end\n"
              "redis.call('ZREM', KEYS[1], ARGV[1])\n"
              "redis.call('DEL', KEYS[2], KEYS[3])\n"
              "return 1\n",
};

/* KEYS index; ARGV prefix, bank. Deletes every endpoint of the bank and the index; returns how
 * many there were. At most EG_BANK_WEBHOOKS_MAX, so one call stays short. */
static eg_script_t s_drop = {
    .name = "bank_webhooks_drop",
    .source = "local ids = redis.call('ZRANGE', KEYS[1], 0, -1)\n"
              "for _, id in ipairs(ids) do\n"
              "  local k = ARGV[1] .. 'wh:' .. id\n"
              "  if redis.call('HGET', k, 'bank_id') == ARGV[2] then\n"
              "    redis.call('DEL', k, k .. ':deliveries')\n"
              "  end\n"
              "end\n"
              "redis.call('DEL', KEYS[1])\n"
              "return #ids\n",
};

/* ---- operations -------------------------------------------------------------------------- */

typedef struct bwh_op_s {
    eg_arena_t arena;
    union {
        eg_bank_webhook_fn one;
        eg_bank_webhook_list_fn list;
        eg_webhook_done_fn done;
    } cb;
    void *udata;
    char ws[EG__EVENTS_WS_MAX + 1];
    const char *bank, *id;
    char *secret; /* the copy of a secret being written, wiped with the op */
    bool creating;
    /* create: the script call made once the bank exists */
    const char **argv;
    int argc;
} bwh_op_t;

static bwh_op_t *op_new(const char *ws, const char *bank, const char *id, void *udata)
{
    bwh_op_t *op = eg_xcalloc(1, sizeof(*op));

    eg_arena_init(&op->arena);
    op->udata = udata;
    snprintf(op->ws, sizeof(op->ws), "%s", ws);
    op->bank = eg_arena_strdup(&op->arena, bank);
    op->id = id != NULL ? eg_arena_strdup(&op->arena, id) : NULL;
    return op;
}

static void op_free(bwh_op_t *op)
{
    if (op->secret != NULL)
        mbedtls_platform_zeroize(op->secret, strlen(op->secret));
    eg_arena_destroy(&op->arena);
    free(op);
}

static int reply_err(int err, const redisReply *r, const char *what)
{
    if (err != 0)
        return err;
    if (r == NULL)
        return EG_EUNAVAIL;
    if (r->type == REDIS_REPLY_ERROR) {
        eg_log_error("bank webhooks: %s: %s", what, r->str);
        return EG_EREDIS;
    }
    return 0;
}

static const char *rstr(eg_arena_t *a, const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return NULL;
    return eg_arena_strndup(a, r->str, r->len);
}

/* A bank endpoint from its HGETALL fields; false when it is not one (or not of bank). */
static bool from_fields(eg_arena_t *a, eg_bank_webhook_t *wh, const char *id, const char *bank,
                        const redisReply *f)
{
    const char *types = "", *timeout = NULL, *headers = NULL, *params = NULL;
    eg_kv_t *kv;
    const char **t;
    size_t n = 0;
    char *save = NULL, *copy;

    if (f == NULL || f->type != REDIS_REPLY_ARRAY || f->elements == 0)
        return false;
    memset(wh, 0, sizeof(*wh));
    wh->id = eg_arena_strdup(a, id);
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const char *k = rstr(a, f->element[i]), *v = rstr(a, f->element[i + 1]);

        if (k == NULL || v == NULL)
            continue;
        if (strcmp(k, "bank_id") == 0)
            wh->bank_id = v;
        else if (strcmp(k, "url") == 0)
            wh->url = v;
        else if (strcmp(k, "secret") == 0)
            wh->has_secret = v[0] != '\0';
        else if (strcmp(k, "types") == 0)
            types = v;
        else if (strcmp(k, "enabled") == 0)
            wh->enabled = strcmp(v, "1") == 0;
        else if (strcmp(k, "method") == 0)
            wh->method = v;
        else if (strcmp(k, "timeout") == 0)
            timeout = v;
        else if (strcmp(k, "headers") == 0)
            headers = v;
        else if (strcmp(k, "params") == 0)
            params = v;
        else if (strcmp(k, "created_at") == 0)
            wh->created_at = v;
        else if (strcmp(k, "updated_at") == 0)
            wh->updated_at = v;
    }
    if (wh->bank_id == NULL || strcmp(wh->bank_id, bank) != 0 || wh->url == NULL ||
        wh->method == NULL || timeout == NULL)
        return false;
    wh->timeout_seconds = atoi(timeout);
    if (!eg__bwh_kv_parse(a, headers, &kv, &wh->nheaders))
        return false;
    wh->headers = kv;
    if (!eg__bwh_kv_parse(a, params, &kv, &wh->nparams))
        return false;
    wh->params = kv;
    t = eg_arena_calloc(a, (EG_WEBHOOK_TYPES_MAX + 1) * sizeof(*t));
    copy = eg_arena_strdup(a, types);
    for (char *p = strtok_r(copy, " ", &save); p != NULL && n < EG_WEBHOOK_TYPES_MAX;
         p = strtok_r(NULL, " ", &save))
        t[n++] = p;
    wh->event_types = t;
    wh->ntypes = n;
    if (wh->created_at == NULL)
        wh->created_at = "";
    if (wh->updated_at == NULL)
        wh->updated_at = wh->created_at;
    return true;
}

static bool args_ok(const char *ws_id, const char *bank_id)
{
    return eg__events_ws_valid(ws_id) && bank_id != NULL &&
           eg_bank_id_valid(bank_id, strlen(bank_id));
}

/* Field/value pairs of spec (those it sets) appended to argv. */
static int spec_args(bwh_op_t *op, const eg_bank_webhook_spec_t *spec, const char **argv, int argc)
{
    eg_arena_t *a = &op->arena;

    if (spec->has_url) {
        argv[argc++] = "url";
        argv[argc++] = eg_arena_strdup(a, spec->url);
    }
    if (spec->has_secret) {
        op->secret = eg_arena_strdup(a, spec->secret != NULL ? spec->secret : "");
        argv[argc++] = "secret";
        argv[argc++] = op->secret;
    }
    if (spec->has_types) {
        eg_buf_t b = EG_BUF_INIT;

        for (size_t i = 0; i < spec->ntypes; i++) {
            /* A type given twice is delivered once. */
            bool dup = false;

            for (size_t j = 0; j < i && !dup; j++)
                dup = strcmp(spec->event_types[i], spec->event_types[j]) == 0;
            if (!dup)
                eg_buf_printf(&b, "%s%s", b.len > 0 ? " " : "", spec->event_types[i]);
        }
        argv[argc++] = "types";
        argv[argc++] = eg_arena_strndup(a, b.data != NULL ? b.data : "", b.len);
        eg_buf_free(&b);
    }
    if (spec->has_enabled) {
        argv[argc++] = "enabled";
        argv[argc++] = spec->enabled ? "1" : "0";
    }
    if (spec->has_http_config) {
        char *h = eg__bwh_kv_json(spec->headers, spec->nheaders);
        char *p = eg__bwh_kv_json(spec->params, spec->nparams);

        argv[argc++] = "method";
        argv[argc++] = spec->method != NULL && eg_strcaseeq(spec->method, "GET") ? "GET" : "POST";
        argv[argc++] = "timeout";
        argv[argc++] = eg_arena_printf(a, "%" PRId64,
                                       spec->timeout_seconds > 0 ? spec->timeout_seconds
                                                                 : EG_BANK_WEBHOOK_TIMEOUT);
        argv[argc++] = "headers";
        argv[argc++] = eg_arena_strdup(a, h);
        argv[argc++] = "params";
        argv[argc++] = eg_arena_strdup(a, p);
        free(h);
        free(p);
    }
    return argc;
}

/* ---- create, update ---------------------------------------------------------------------- */

static void on_one(void *udata, int err, redisReply *r)
{
    bwh_op_t *op = udata;
    eg_bank_webhook_t wh;

    err = reply_err(err, r, op->creating ? "create" : "update");
    if (err == 0 && r->type == REDIS_REPLY_INTEGER)
        err = EG_ECONFLICT; /* create: the bank is full */
    else if (err == 0 && r->type != REDIS_REPLY_ARRAY)
        err = EG_EREDIS;
    if (err == 0 && r->elements == 0)
        err = EG_ENOTFOUND;
    if (err == 0 && !from_fields(&op->arena, &wh, op->id, op->bank, r)) {
        eg_log_error("bank webhooks: endpoint %s of workspace %s is malformed", op->id, op->ws);
        err = EG_ENOTFOUND;
    }
    op->cb.one(op->udata, err, err ? NULL : &wh);
    op_free(op);
}

static void on_bank_ready(void *udata, int err, const eg_bank_t *bank, bool created)
{
    bwh_op_t *op = udata;

    (void)bank;
    (void)created;
    if (err == 0)
        err = eg_store_eval(&s_create, on_one, op, 2, op->argc, op->argv, NULL);
    if (err != 0) {
        op->cb.one(op->udata, err, NULL);
        op_free(op);
    }
}

int eg_bank_webhook_create(const char *ws_id, const char *bank_id,
                           const eg_bank_webhook_spec_t *spec, eg_bank_webhook_fn cb, void *udata)
{
    eg_bank_webhook_spec_t s = *spec;
    const char *field, *sub, *why, *def_types[] = {BWH_DEFAULT_TYPE};
    char id[37], now[32];
    bwh_op_t *op;
    int rc;

    if (!args_ok(ws_id, bank_id) || cb == NULL ||
        eg_bank_webhook_spec_check(spec, true, &field, &sub, &why) != 0)
        return EG_EINVAL;
    /* Every field is written on create: defaults for what the spec leaves out. */
    if (!s.has_secret) {
        s.has_secret = true;
        s.secret = NULL;
    }
    if (!s.has_types) {
        s.has_types = true;
        s.event_types = def_types;
        s.ntypes = 1;
    }
    if (!s.has_enabled) {
        s.has_enabled = true;
        s.enabled = true;
    }
    if (!s.has_http_config) {
        s.has_http_config = true;
        s.method = NULL;
        s.timeout_seconds = 0;
        s.nheaders = s.nparams = 0;
    }
    eg_uuid_v4(id);
    op = op_new(ws_id, bank_id, id, udata);
    op->cb.one = cb;
    op->creating = true;
    eg_time_iso8601(eg_now_ms(), now);
    op->argv = eg_arena_calloc(&op->arena, 40 * sizeof(*op->argv));
    op->argv[op->argc++] = eg__bwh_key_index(&op->arena, ws_id, bank_id);
    op->argv[op->argc++] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    op->argv[op->argc++] = op->id;
    op->argv[op->argc++] = eg_arena_printf(&op->arena, "%" PRId64, eg_now_ms());
    op->argv[op->argc++] = eg_arena_printf(&op->arena, "%d", EG_BANK_WEBHOOKS_MAX);
    op->argv[op->argc++] = "bank_id";
    op->argv[op->argc++] = op->bank;
    op->argv[op->argc++] = "signing";
    op->argv[op->argc++] = "hindsight";
    op->argc = spec_args(op, &s, op->argv, op->argc);
    op->argv[op->argc++] = "created_at";
    op->argv[op->argc++] = eg_arena_strdup(&op->arena, now);
    op->argv[op->argc++] = "updated_at";
    op->argv[op->argc++] = eg_arena_strdup(&op->arena, now);
    rc = eg_bank_put(ws_id, bank_id, NULL, on_bank_ready, op);
    if (rc != 0)
        op_free(op);
    return rc;
}

int eg_bank_webhook_update(const char *ws_id, const char *bank_id, const char *id,
                           const eg_bank_webhook_spec_t *spec, eg_bank_webhook_fn cb, void *udata)
{
    const char *argv[32], *field, *sub, *why;
    char now[32];
    bwh_op_t *op;
    int argc = 0, rc;

    if (!args_ok(ws_id, bank_id) || cb == NULL ||
        eg_bank_webhook_spec_check(spec, false, &field, &sub, &why) != 0)
        return EG_EINVAL;
    if (id == NULL || !eg_uuid_valid(id))
        return EG_ENOTFOUND;
    op = op_new(ws_id, bank_id, id, udata);
    op->cb.one = cb;
    eg_time_iso8601(eg_now_ms(), now);
    argv[argc++] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    argv[argc++] = op->bank;
    argc = spec_args(op, spec, argv, argc);
    argv[argc++] = "updated_at";
    argv[argc++] = now;
    rc = eg_store_eval(&s_update, on_one, op, 1, argc, argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

/* ---- list, delete, drop, deliveries ------------------------------------------------------ */

static void on_list(void *udata, int err, redisReply *r)
{
    bwh_op_t *op = udata;
    eg_bank_webhook_t *whs;
    size_t n = 0;

    err = reply_err(err, r, "list");
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0))
        err = EG_EREDIS;
    if (err != 0) {
        op->cb.list(op->udata, err, NULL, 0);
        op_free(op);
        return;
    }
    whs = eg_arena_calloc(&op->arena, (r->elements / 2 + 1) * sizeof(*whs));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *id = rstr(&op->arena, r->element[i]);

        if (id != NULL && from_fields(&op->arena, &whs[n], id, op->bank, r->element[i + 1]))
            n++;
    }
    op->cb.list(op->udata, 0, whs, n);
    op_free(op);
}

int eg_bank_webhook_list(const char *ws_id, const char *bank_id, eg_bank_webhook_list_fn cb,
                         void *udata)
{
    const char *argv[3];
    bwh_op_t *op;
    int rc;

    if (!args_ok(ws_id, bank_id) || cb == NULL)
        return EG_EINVAL;
    op = op_new(ws_id, bank_id, NULL, udata);
    op->cb.list = cb;
    argv[0] = eg__bwh_key_index(&op->arena, ws_id, bank_id);
    argv[1] = eg_key(&op->arena, "w", ws_id, "%s", "");
    argv[2] = op->bank;
    rc = eg_store_eval(&s_list, on_list, op, 1, 3, argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

static void on_done(void *udata, int err, redisReply *r)
{
    bwh_op_t *op = udata;

    err = reply_err(err, r, op->id != NULL ? "delete" : "drop");
    if (err == 0 && r->type != REDIS_REPLY_INTEGER)
        err = EG_EREDIS;
    if (err == 0 && op->id != NULL && r->integer == 0)
        err = EG_ENOTFOUND;
    op->cb.done(op->udata, err);
    op_free(op);
}

int eg_bank_webhook_delete(const char *ws_id, const char *bank_id, const char *id,
                           eg_webhook_done_fn cb, void *udata)
{
    const char *argv[5];
    bwh_op_t *op;
    int rc;

    if (!args_ok(ws_id, bank_id) || cb == NULL)
        return EG_EINVAL;
    if (id == NULL || !eg_uuid_valid(id))
        return EG_ENOTFOUND;
    op = op_new(ws_id, bank_id, id, udata);
    op->cb.done = cb;
    argv[0] = eg__bwh_key_index(&op->arena, ws_id, bank_id);
    argv[1] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    argv[2] = eg__wh_key_deliveries(&op->arena, ws_id, id);
    argv[3] = op->id;
    argv[4] = op->bank;
    rc = eg_store_eval(&s_delete, on_done, op, 3, 5, argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

int eg_bank_webhooks_drop(const char *ws_id, const char *bank_id, eg_webhook_done_fn cb,
                          void *udata)
{
    const char *argv[3];
    bwh_op_t *op;
    int rc;

    if (!args_ok(ws_id, bank_id) || cb == NULL)
        return EG_EINVAL;
    op = op_new(ws_id, bank_id, NULL, udata);
    op->cb.done = cb;
    argv[0] = eg__bwh_key_index(&op->arena, ws_id, bank_id);
    argv[1] = eg_key(&op->arena, "w", ws_id, "%s", "");
    argv[2] = op->bank;
    rc = eg_store_eval(&s_drop, on_done, op, 1, 3, argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

int eg_bank_webhook_deliveries(const char *ws_id, const char *bank_id, const char *id,
                               const char *cursor, int limit, eg_webhook_deliveries_fn cb,
                               void *udata)
{
    if (!args_ok(ws_id, bank_id))
        return EG_EINVAL;
    /* Only a bank endpoint's id (a UUID) can name one of the bank's endpoints. */
    return eg__wh_deliveries(ws_id, id != NULL && eg_uuid_valid(id) ? id : "", bank_id, cursor,
                             limit, EG_BANK_WEBHOOK_LIMIT_MAX, cb, udata);
}

/* ---- bank events ------------------------------------------------------------------------- */

int eg_bank_event_emit(const char *ws_id, const char *bank_id, const char *type,
                       const char *operation_id, const char *status, const cJSON *data,
                       eg_event_done_fn done, void *udata)
{
    char ts[EG_TEXT_ISO_MAX];
    cJSON *entity;
    int rc;

    if (!args_ok(ws_id, bank_id) || !eg_bank_event_type_valid(type) || operation_id == NULL ||
        operation_id[0] == '\0' || strlen(operation_id) > 256 || status == NULL ||
        (strcmp(status, "completed") != 0 && strcmp(status, "failed") != 0) ||
        (data != NULL && !cJSON_IsObject(data)))
        return EG_EINVAL;
    eg_text_format_iso(eg_now_ms() * 1000, ts);
    entity = cJSON_CreateObject();
    /* "id" is what entity filters of watchers and readers match: the operation. */
    cJSON_AddStringToObject(entity, "id", operation_id);
    cJSON_AddStringToObject(entity, "bank_id", bank_id);
    cJSON_AddStringToObject(entity, "operation_id", operation_id);
    cJSON_AddStringToObject(entity, "status", status);
    cJSON_AddStringToObject(entity, "timestamp", ts);
    cJSON_AddItemToObject(entity, "data",
                          data != NULL ? cJSON_Duplicate(data, true) : cJSON_CreateObject());
    rc = eg_event_emit(ws_id, type, entity, done, udata);
    cJSON_Delete(entity);
    return rc;
}
