/* Webhook endpoints of a workspace, their deliveries, the signing conventions, and the fan-out
 * of an emitted event into deliveries.
 *
 * Keys (docs/keyspace.md, "Webhooks"), all in the workspace's slot {w:<ws_id>}:
 *
 *   eg:{w:<ws>}:webhooks                  zset  endpoint id -> created ms (listing order)
 *   eg:{w:<ws>}:wh:<id>                   hash  url, types (space-separated patterns), signing,
 *                                               secret, enabled (1|0), description,
 *                                               disabled_reason, created_at, updated_at
 *   eg:{w:<ws>}:wh:<id>:deliveries        zset  delivery id -> event order (ms * 1000 + seq)
 *   eg:{w:<ws>}:whd:<did>                 hash  endpoint, event_id, event_type, status, body,
 *                                               n (attempts this round), r (manual retries),
 *                                               next_attempt_at, created_at, updated_at
 *   eg:{w:<ws>}:whd:<did>:attempts        list  one JSON object per attempt (last 50 kept)
 *
 * Deliveries expire after EG_WEBHOOK_RETENTION_MS, like the events they carry. Bank endpoints
 * (bank_webhooks.c) share the endpoint hash and the delivery keys; the fan-out also reads the
 * index of the bank an event names, eg:{w:<ws>}:bwh:<bank_id>.
 *
 * Why the fan-out is an emit hook rather than part of the event's XADD script: the deliveries'
 * jobs live in the queue's slot {q:webhooks}, which a script running in {w:<ws>} may not touch
 * on Redis Cluster. So the hook runs one script in {w:<ws>} (match the endpoints, write the
 * delivery records) and then pushes the jobs, and only then does the emitter get its answer: an
 * event acknowledged to its emitter has its deliveries queued, whatever crashes afterwards. A
 * crash between the event's XADD and the pushes leaves the emitter unanswered (it retries); the
 * delivery ids are derived from (endpoint, event), so writing them twice is harmless. The cost
 * is one extra round trip per emit, also in workspaces without endpoints. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "engram/bank.h"
#include "engram/bank_webhooks.h"
#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "engram/webhooks.h"
#include "events_int.h"
#include "webhooks_int.h"

#define WH_ATTEMPTS_KEPT 50

/* ---- ids, keys, payloads ----------------------------------------------------------------- */

bool eg__wh_id_valid(const char *id, const char *prefix)
{
    size_t n = 0, plen = strlen(prefix);

    if (id == NULL || strncmp(id, prefix, plen) != 0)
        return false;
    for (const char *s = id; *s; s++, n++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return n > plen && n < EG__WH_ID_MAX;
}

bool eg__wh_ep_valid(const char *id)
{
    return eg__wh_id_valid(id, "wh_") || (id != NULL && eg_uuid_valid(id));
}

char *eg__wh_key_index(eg_arena_t *a, const char *ws)
{
    return eg_key(a, "w", ws, "webhooks");
}

char *eg__wh_key_endpoint(eg_arena_t *a, const char *ws, const char *id)
{
    return eg_key(a, "w", ws, "wh:%s", id);
}

char *eg__wh_key_deliveries(eg_arena_t *a, const char *ws, const char *id)
{
    return eg_key(a, "w", ws, "wh:%s:deliveries", id);
}

char *eg__wh_key_delivery(eg_arena_t *a, const char *ws, const char *did)
{
    return eg_key(a, "w", ws, "whd:%s", did);
}

char *eg__wh_key_attempts(eg_arena_t *a, const char *ws, const char *did)
{
    return eg_key(a, "w", ws, "whd:%s:attempts", did);
}

char *eg__wh_job_payload(eg_arena_t *a, const char *ws, const char *ep, const char *did)
{
    return eg_arena_printf(a, "%s\n%s\n%s", ws, ep, did);
}

bool eg__wh_job_parse(eg_arena_t *a, const char *payload, char **ws, char **ep, char **did)
{
    const char *n1 = strchr(payload, '\n'), *n2 = n1 != NULL ? strchr(n1 + 1, '\n') : NULL;

    if (n2 == NULL)
        return false;
    *ws = eg_arena_strndup(a, payload, (size_t)(n1 - payload));
    *ep = eg_arena_strndup(a, n1 + 1, (size_t)(n2 - n1 - 1));
    *did = eg_arena_strdup(a, n2 + 1);
    return eg__events_ws_valid(*ws) && eg__wh_ep_valid(*ep) && eg__wh_id_valid(*did, "msg_");
}

/* ---- scripts ----------------------------------------------------------------------------- */

/* KEYS index, endpoint; ARGV id, created ms, max endpoints, field, value, ...
 * Returns 1, or 0 when the workspace is full. */
static eg_script_t s_create = {
    .name = "webhooks_create",
    .source = "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end\n"
              "redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])\n"
              "redis.call('HSET', KEYS[2], unpack(ARGV, 4))\n"
              "return 1\n",
};

/* KEYS endpoint; ARGV field, value, ... Returns the endpoint's fields, or {} when it is gone. */
static eg_script_t s_update = {
    .name = "webhooks_update",
    .source = "if redis.call('EXISTS', KEYS[1]) == 0 then return {} end\n"
              "redis.call('HSET', KEYS[1], unpack(ARGV))\n"
              "return redis.call('HGETALL', KEYS[1])\n",
};

/* KEYS index; ARGV key prefix "eg:{w:<ws>}:". Returns {id, fields} per endpoint, oldest first.
 * Endpoint keys are built in the script from the prefix: they share the index's slot. */
static eg_script_t s_list = {
    .name = "webhooks_list",
    .source = "local out = {}\n"
              "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
              "  local f = redis.call('HGETALL', ARGV[1] .. 'wh:' .. id)\n"
              "  if #f > 0 then out[#out + 1] = id; out[#out + 1] = f end\n"
              "end\n"
              "return out\n",
};

/* KEYS index, endpoint, deliveries; ARGV id. Returns 1 when it existed. Delivery records are
 * left to expire: deleting an endpoint with a long history must not block Redis. */
static eg_script_t s_delete = {
    .name = "webhooks_delete",
    .source = "local n = redis.call('ZREM', KEYS[1], ARGV[1])\n"
              "redis.call('DEL', KEYS[2], KEYS[3])\n"
              "return n\n",
};

/* ---- operations -------------------------------------------------------------------------- */

wh_op_t *eg__wh_op_new(const char *ws, const char *id, void *udata)
{
    wh_op_t *op = eg_xcalloc(1, sizeof(*op));

    eg_arena_init(&op->arena);
    op->udata = udata;
    snprintf(op->ws, sizeof(op->ws), "%s", ws);
    if (id != NULL)
        snprintf(op->id, sizeof(op->id), "%s", id);
    return op;
}

void eg__wh_op_free(wh_op_t *op)
{
    if (op->secret != NULL)
        mbedtls_platform_zeroize((void *)op->secret, strlen(op->secret));
    eg_arena_destroy(&op->arena);
    free(op);
}

int eg__wh_reply_err(int err, const redisReply *r, const char *what)
{
    if (err != 0)
        return err;
    if (r == NULL)
        return EG_EUNAVAIL;
    if (r->type == REDIS_REPLY_ERROR) {
        eg_log_error("webhooks: %s: %s", what, r->str);
        return EG_EREDIS;
    }
    return 0;
}

const char *eg__wh_str(eg_arena_t *a, const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return NULL;
    return eg_arena_strndup(a, r->str, r->len);
}

/* An endpoint from its HGETALL fields. The secret is reduced to a prefix. */
static bool wh_from_fields(eg_arena_t *a, eg_webhook_t *wh, const char *id, const redisReply *f)
{
    const char *types = "", *secret = "", *signing = "standard";
    const char **pats;
    size_t n = 0;
    char *t, *save = NULL;

    if (f == NULL || f->type != REDIS_REPLY_ARRAY || f->elements == 0)
        return false;
    memset(wh, 0, sizeof(*wh));
    wh->id = eg_arena_strdup(a, id);
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const char *k = eg__wh_str(a, f->element[i]), *v = eg__wh_str(a, f->element[i + 1]);

        if (k == NULL || v == NULL)
            continue;
        if (strcmp(k, "url") == 0)
            wh->url = v;
        else if (strcmp(k, "types") == 0)
            types = v;
        else if (strcmp(k, "signing") == 0)
            signing = v;
        else if (strcmp(k, "secret") == 0)
            secret = v;
        else if (strcmp(k, "enabled") == 0)
            wh->enabled = strcmp(v, "1") == 0;
        else if (strcmp(k, "description") == 0 && v[0] != '\0')
            wh->description = v;
        else if (strcmp(k, "disabled_reason") == 0 && v[0] != '\0')
            wh->disabled_reason = v;
        else if (strcmp(k, "created_at") == 0)
            wh->created_at = v;
        else if (strcmp(k, "updated_at") == 0)
            wh->updated_at = v;
    }
    if (wh->url == NULL || eg_webhook_signing_parse(signing, &wh->signing) != 0)
        return false;
    pats = eg_arena_calloc(a, (EG_WEBHOOK_TYPES_MAX + 1) * sizeof(*pats));
    t = eg_arena_strdup(a, types);
    for (char *p = strtok_r(t, " ", &save); p != NULL && n < EG_WEBHOOK_TYPES_MAX;
         p = strtok_r(NULL, " ", &save))
        pats[n++] = p;
    wh->event_types = pats;
    wh->ntypes = n;
    /* Enough to tell secrets apart, far too little to sign with. */
    wh->secret_prefix =
        eg_arena_printf(a, "%.*s…", strncmp(secret, "whsec_", 6) == 0 ? 10 : 4, secret);
    if (wh->created_at == NULL)
        wh->created_at = "";
    if (wh->updated_at == NULL)
        wh->updated_at = wh->created_at;
    return true;
}

int eg_webhook_spec_check(const eg_webhook_spec_t *spec, bool create, const char **field,
                          const char **why)
{
    *field = NULL;
    *why = NULL;
    if (create && !spec->has_url) {
        *field = "url";
        *why = "is required";
        return EG_EINVAL;
    }
    if (spec->has_url) {
        const char *u = spec->url;

        *field = "url";
        if (u == NULL || strlen(u) > EG_WEBHOOK_URL_MAX ||
            (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)) {
            *why = "must be an absolute http:// or https:// URL";
            return EG_EINVAL;
        }
        if (eg_httpc_url_check(u) != 0) {
            *why = "must be an absolute http(s) URL with a host and no credentials";
            return EG_EINVAL;
        }
    }
    if (spec->has_types) {
        *field = "event_types";
        if (spec->ntypes > EG_WEBHOOK_TYPES_MAX) {
            *why = "has too many entries (at most 32)";
            return EG_EINVAL;
        }
        for (size_t i = 0; i < spec->ntypes; i++) {
            if (!eg_event_type_pattern_valid(spec->event_types[i])) {
                *why = "must hold event types like \"memory.created\", prefix wildcards like "
                       "\"memory.*\", or \"*\"";
                return EG_EINVAL;
            }
        }
    }
    if (spec->has_description && spec->description != NULL &&
        strlen(spec->description) > EG_WEBHOOK_DESC_MAX) {
        *field = "description";
        *why = "must be at most 1024 bytes";
        return EG_EINVAL;
    }
    if (create && spec->secret != NULL && !eg_webhook_secret_valid(spec->signing, spec->secret)) {
        *field = "secret";
        *why = spec->signing == EG_WEBHOOK_STANDARD
                   ? "must be \"whsec_\" followed by the base64 of 16 to 64 bytes"
                   : "must be 8 to 256 printable ASCII characters without spaces";
        return EG_EINVAL;
    }
    *field = NULL;
    return 0;
}

static char *wh_types_join(eg_arena_t *a, const eg_webhook_spec_t *spec)
{
    eg_buf_t b = EG_BUF_INIT;
    char *s;

    for (size_t i = 0; i < spec->ntypes; i++) {
        if (i > 0)
            eg_buf_puts(&b, " ");
        eg_buf_puts(&b, spec->event_types[i]);
    }
    s = eg_arena_strndup(a, b.data != NULL ? b.data : "", b.len);
    eg_buf_free(&b);
    return s;
}

/* ---- create ------------------------------------------------------------------------------ */

/* Create writes, then answers from the fields it wrote (no second round trip). */
typedef struct wh_create_s {
    wh_op_t *op;
    eg_webhook_t wh;
} wh_create_t;

static void on_created_full(void *udata, int err, redisReply *r)
{
    wh_create_t *c = udata;
    wh_op_t *op = c->op;

    err = eg__wh_reply_err(err, r, "create");
    if (err == 0 && r->type != REDIS_REPLY_INTEGER)
        err = EG_EREDIS;
    if (err == 0 && r->integer == 0)
        err = EG_ECONFLICT;
    op->cb.one(op->udata, err, err ? NULL : &c->wh);
    eg__wh_op_free(op);
}

int eg_webhook_create(const char *ws_id, const eg_webhook_spec_t *spec, eg_webhook_fn cb,
                      void *udata)
{
    const char *argv[32], *field, *why;
    char id[32], secret[64], created[32], ms[24], max[16];
    wh_create_t *c;
    wh_op_t *op;
    int argc = 0, rc;

    if (!eg__events_ws_valid(ws_id) || cb == NULL ||
        eg_webhook_spec_check(spec, true, &field, &why) != 0)
        return EG_EINVAL;
    memcpy(id, "wh_", 3);
    eg_random_base62(id + 3, 24);
    op = eg__wh_op_new(ws_id, id, udata);
    op->cb.one = cb;
    c = eg_arena_calloc(&op->arena, sizeof(*c));
    c->op = op;
    if (spec->secret != NULL)
        snprintf(secret, sizeof(secret), "%s", spec->secret);
    else
        eg_webhook_secret_new(spec->signing, secret);
    op->secret = eg_arena_strdup(&op->arena, secret);
    mbedtls_platform_zeroize(secret, sizeof(secret));
    eg_time_iso8601(eg_now_ms(), created);
    snprintf(ms, sizeof(ms), "%" PRId64, eg_now_ms());
    snprintf(max, sizeof(max), "%d", EG_WEBHOOK_ENDPOINTS);

    c->wh.id = op->id;
    c->wh.url = eg_arena_strdup(&op->arena, spec->url);
    c->wh.event_types = spec->has_types ? spec->event_types : NULL;
    c->wh.ntypes = spec->has_types ? spec->ntypes : 0;
    c->wh.signing = spec->signing;
    c->wh.secret = op->secret;
    c->wh.secret_prefix = eg_arena_printf(
        &op->arena, "%.*s…", spec->signing == EG_WEBHOOK_STANDARD ? 10 : 4, op->secret);
    c->wh.enabled = spec->has_enabled ? spec->enabled : true;
    c->wh.description =
        spec->has_description && spec->description != NULL && spec->description[0] != '\0'
            ? eg_arena_strdup(&op->arena, spec->description)
            : NULL;
    c->wh.created_at = c->wh.updated_at = eg_arena_strdup(&op->arena, created);
    /* The callback runs later: keep copies, not the caller's strings. */
    if (c->wh.ntypes > 0) {
        const char **t = eg_arena_calloc(&op->arena, c->wh.ntypes * sizeof(*t));

        for (size_t i = 0; i < c->wh.ntypes; i++)
            t[i] = eg_arena_strdup(&op->arena, spec->event_types[i]);
        c->wh.event_types = t;
    }

    argv[argc++] = eg__wh_key_index(&op->arena, ws_id);
    argv[argc++] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    argv[argc++] = id;
    argv[argc++] = ms;
    argv[argc++] = max;
    argv[argc++] = "url";
    argv[argc++] = c->wh.url;
    argv[argc++] = "types";
    argv[argc++] = wh_types_join(&op->arena, spec);
    argv[argc++] = "signing";
    argv[argc++] = eg_webhook_signing_name(spec->signing);
    argv[argc++] = "secret";
    argv[argc++] = op->secret;
    argv[argc++] = "enabled";
    argv[argc++] = c->wh.enabled ? "1" : "0";
    argv[argc++] = "description";
    argv[argc++] = c->wh.description != NULL ? c->wh.description : "";
    argv[argc++] = "disabled_reason";
    argv[argc++] = "";
    argv[argc++] = "created_at";
    argv[argc++] = created;
    argv[argc++] = "updated_at";
    argv[argc++] = created;
    rc = eg_store_eval(&s_create, on_created_full, c, 2, argc, argv, NULL);
    if (rc != 0)
        eg__wh_op_free(op);
    return rc;
}

/* ---- get, update ------------------------------------------------------------------------- */

static void on_one(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;
    eg_webhook_t wh;

    err = eg__wh_reply_err(err, r, "get");
    if (err == 0 && r->type != REDIS_REPLY_ARRAY)
        err = EG_EREDIS;
    if (err == 0 && r->elements == 0)
        err = EG_ENOTFOUND;
    if (err == 0 && !wh_from_fields(&op->arena, &wh, op->id, r)) {
        eg_log_error("webhooks: endpoint %s of workspace %s is malformed", op->id, op->ws);
        err = EG_ENOTFOUND;
    }
    op->cb.one(op->udata, err, err ? NULL : &wh);
    eg__wh_op_free(op);
}

int eg_webhook_get(const char *ws_id, const char *id, eg_webhook_fn cb, void *udata)
{
    const char *argv[2];
    wh_op_t *op;
    int rc;

    if (!eg__events_ws_valid(ws_id) || cb == NULL)
        return EG_EINVAL;
    if (!eg__wh_id_valid(id, "wh_"))
        return EG_ENOTFOUND;
    op = eg__wh_op_new(ws_id, id, udata);
    op->cb.one = cb;
    argv[0] = "HGETALL";
    argv[1] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    rc = eg_store_commandv(on_one, op, 2, argv, NULL);
    if (rc != 0)
        eg__wh_op_free(op);
    return rc;
}

int eg_webhook_update(const char *ws_id, const char *id, const eg_webhook_spec_t *spec,
                      eg_webhook_fn cb, void *udata)
{
    const char *argv[16], *field, *why;
    char now[32];
    wh_op_t *op;
    int argc = 0, rc;

    if (!eg__events_ws_valid(ws_id) || cb == NULL ||
        eg_webhook_spec_check(spec, false, &field, &why) != 0)
        return EG_EINVAL;
    if (!eg__wh_id_valid(id, "wh_"))
        return EG_ENOTFOUND;
    op = eg__wh_op_new(ws_id, id, udata);
    op->cb.one = cb;
    eg_time_iso8601(eg_now_ms(), now);
    argv[argc++] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    if (spec->has_url) {
        argv[argc++] = "url";
        argv[argc++] = spec->url;
    }
    if (spec->has_types) {
        argv[argc++] = "types";
        argv[argc++] = wh_types_join(&op->arena, spec);
    }
    if (spec->has_enabled) {
        argv[argc++] = "enabled";
        argv[argc++] = spec->enabled ? "1" : "0";
        /* Turning an endpoint back on is the operator saying the receiver is fixed. */
        if (spec->enabled) {
            argv[argc++] = "disabled_reason";
            argv[argc++] = "";
        }
    }
    if (spec->has_description) {
        argv[argc++] = "description";
        argv[argc++] = spec->description != NULL ? spec->description : "";
    }
    argv[argc++] = "updated_at";
    argv[argc++] = now;
    rc = eg_store_eval(&s_update, on_one, op, 1, argc, argv, NULL);
    if (rc != 0)
        eg__wh_op_free(op);
    return rc;
}

/* ---- list, delete ------------------------------------------------------------------------ */

static void on_list(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;
    eg_webhook_t *whs = NULL;
    size_t n = 0;

    err = eg__wh_reply_err(err, r, "list");
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0))
        err = EG_EREDIS;
    if (err != 0) {
        op->cb.list(op->udata, err, NULL, 0);
        goto done;
    }
    whs = eg_arena_calloc(&op->arena, (r->elements / 2 + 1) * sizeof(*whs));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *id = eg__wh_str(&op->arena, r->element[i]);

        if (id != NULL && wh_from_fields(&op->arena, &whs[n], id, r->element[i + 1]))
            n++;
    }
    op->cb.list(op->udata, 0, whs, n);
done:
    eg__wh_op_free(op);
}

int eg_webhook_list(const char *ws_id, eg_webhook_list_fn cb, void *udata)
{
    const char *argv[2];
    wh_op_t *op;
    int rc;

    if (!eg__events_ws_valid(ws_id) || cb == NULL)
        return EG_EINVAL;
    op = eg__wh_op_new(ws_id, NULL, udata);
    op->cb.list = cb;
    argv[0] = eg__wh_key_index(&op->arena, ws_id);
    argv[1] = eg_key(&op->arena, "w", ws_id, "%s", "");
    rc = eg_store_eval(&s_list, on_list, op, 1, 2, argv, NULL);
    if (rc != 0)
        eg__wh_op_free(op);
    return rc;
}

static void on_done_int(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;

    err = eg__wh_reply_err(err, r, "delete");
    if (err == 0 && r->type != REDIS_REPLY_INTEGER)
        err = EG_EREDIS;
    if (err == 0 && r->integer == 0)
        err = EG_ENOTFOUND;
    op->cb.done(op->udata, err);
    eg__wh_op_free(op);
}

int eg_webhook_delete(const char *ws_id, const char *id, eg_webhook_done_fn cb, void *udata)
{
    const char *argv[4];
    wh_op_t *op;
    int rc;

    if (!eg__events_ws_valid(ws_id) || cb == NULL)
        return EG_EINVAL;
    if (!eg__wh_id_valid(id, "wh_"))
        return EG_ENOTFOUND;
    op = eg__wh_op_new(ws_id, id, udata);
    op->cb.done = cb;
    argv[0] = eg__wh_key_index(&op->arena, ws_id);
    argv[1] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    argv[2] = eg__wh_key_deliveries(&op->arena, ws_id, id);
    argv[3] = id;
    rc = eg_store_eval(&s_delete, on_done_int, op, 3, 4, argv, NULL);
    if (rc != 0)
        eg__wh_op_free(op);
    return rc;
}
