/* Webhook deliveries: the emit hook's fan-out of an event into delivery records and jobs, the
 * delivery log pages and the manual retry. */
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
#include "engram/events_fency.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "engram/webhooks.h"
#include "events_int.h"
#include "webhooks_int.h"

/* KEYS index, bank index (the index again when the event names no bank); ARGV prefix, event id,
 * type, body, order score, created_at, retention ms, now ms, bank id ('' = none), bank body,
 * Fency body ('' = none). For each enabled workspace endpoint whose patterns match the type, and
 * each enabled endpoint of the event's bank whose types include it: a delivery record (kept if it
 * already exists: the id is a function of endpoint and event), indexed in the endpoint's
 * deliveries. A workspace endpoint signed "fency" gets the event in Fency's envelope; a bank
 * endpoint's delivery carries the Hindsight body and the URL it is for. Returns {delivery id,
 * endpoint id, ...}. */
static eg_script_t s_fanout = {
    .name = "webhooks_fanout",
    .source = "local p, evid, t = ARGV[1], ARGV[2], ARGV[3]\n"
              "local ttl, now = tonumber(ARGV[7]), tonumber(ARGV[8])\n"
              "local bank = ARGV[9]\n"
              "local function match(types)\n"
              "  if types == '' then return true end\n"
              "  for pat in string.gmatch(types, '%S+') do\n"
              "    if pat == '*' or pat == t then return true end\n"
              "    if string.sub(pat, -2) == '.*' and #t > #pat - 1 and\n"
              "       string.sub(t, 1, #pat - 1) == string.sub(pat, 1, -2) then return true end\n"
              "  end\n"
              "  return false\n"
              "end\n"
              "local out = {}\n"
              "local function add(id, body, url)\n"
              "  local did = 'msg_' .. string.sub(redis.sha1hex(id .. '|' .. evid), 1, 28)\n"
              "  local dk = p .. 'whd:' .. did\n"
              "  if redis.call('EXISTS', dk) == 0 then\n"
              "    redis.call('HSET', dk, 'endpoint', id, 'event_id', evid, 'event_type', t,\n"
              "      'status', 'pending', 'body', body, 'n', '0', 'r', '0',\n"
              "      'next_attempt_at', ARGV[6], 'created_at', ARGV[6], 'updated_at', ARGV[6])\n"
              "    if url then redis.call('HSET', dk, 'url', url) end\n"
              "    redis.call('PEXPIRE', dk, ttl)\n"
              "    local ix = p .. 'wh:' .. id .. ':deliveries'\n"
              "    redis.call('ZADD', ix, ARGV[5], did)\n"
              "    redis.call('ZREMRANGEBYSCORE', ix, '-inf', (now - ttl) * 1000)\n"
              "    redis.call('PEXPIRE', ix, ttl)\n"
              "  end\n"
              "  out[#out + 1] = did\n"
              "  out[#out + 1] = id\n"
              "end\n"
              "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
              "  local e = redis.call('HMGET', p .. 'wh:' .. id, 'enabled', 'types', 'signing')\n"
              "  if e[1] == '1' and match(e[2] or '') then\n"
              "    if e[3] == 'fency' and ARGV[11] ~= '' then add(id, ARGV[11], nil)\n"
              "    else add(id, ARGV[4], nil) end\n"
              "  end\n"
              "end\n"
              "if bank ~= '' then\n"
              "  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
              "    local e = redis.call('HMGET', p .. 'wh:' .. id, 'enabled', 'types', 'bank_id',\n"
              "                         'url')\n"
              "    if e[1] == '1' and e[3] == bank then\n"
              "      for ty in string.gmatch(e[2] or '', '%S+') do\n"
              "        if ty == t then add(id, ARGV[10], e[4]); break end\n"
              "      end\n"
              "    end\n"
              "  end\n"
              "end\n"
              "return out\n",
};

/* KEYS endpoint, deliveries; ARGV prefix, max score ('+inf' or '(<score>'), limit, bank ('' for
 * a workspace endpoint). Returns -1 for an unknown endpoint (or one of another bank), else {next
 * cursor or '', then per delivery: id, fields, attempts}. Index entries whose record expired are
 * dropped on the way. */
static eg_script_t s_deliveries = {
    .name = "webhooks_deliveries",
    .source = "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
              "if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'bank_id') ~= ARGV[4] then\n"
              "  return -1\n"
              "end\n"
              "local limit = tonumber(ARGV[3])\n"
              "local out = {''}\n"
              "local n = 0\n"
              "local max = ARGV[2]\n"
              "while true do\n"
              "  local es = redis.call('ZREVRANGEBYSCORE', KEYS[2], max, '-inf', 'WITHSCORES',\n"
              "                        'LIMIT', 0, limit + 1)\n"
              "  if #es == 0 then return out end\n"
              "  for i = 1, #es, 2 do\n"
              "    local dk = ARGV[1] .. 'whd:' .. es[i]\n"
              "    local f = redis.call('HMGET', dk, 'event_id', 'event_type', 'status',\n"
              "                         'next_attempt_at', 'created_at', 'updated_at', 'url')\n"
              "    if f[1] then\n"
              "      if n == limit then return out end\n"
              "      n = n + 1\n"
              "      out[1] = es[i + 1]\n"
              "      out[#out + 1] = es[i]\n"
              "      out[#out + 1] = f\n"
              "      out[#out + 1] = redis.call('LRANGE', dk .. ':attempts', 0, -1)\n"
              "    else\n"
              "      redis.call('ZREM', KEYS[2], es[i])\n"
              "    end\n"
              "    max = '(' .. es[i + 1]\n"
              "  end\n"
              "  if #es < 2 * (limit + 1) then out[1] = ''; return out end\n"
              "end\n",
};

/* KEYS delivery; ARGV endpoint id, now (ISO). -1 unknown (or another endpoint's), -2 not
 * failed, else the number of manual retries so far (which names the new job). */
static eg_script_t s_retry = {
    .name = "webhooks_retry",
    .source = "local f = redis.call('HMGET', KEYS[1], 'endpoint', 'status')\n"
              "if f[1] ~= ARGV[1] then return -1 end\n"
              "if f[2] ~= 'failed' then return -2 end\n"
              "redis.call('HSET', KEYS[1], 'status', 'pending', 'n', '0',\n"
              "           'next_attempt_at', ARGV[2], 'updated_at', ARGV[2])\n"
              "return redis.call('HINCRBY', KEYS[1], 'r', 1)\n",
};

/* ---- deliveries -------------------------------------------------------------------------- */

static void on_deliveries(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;
    eg_webhook_delivery_t *ds;
    const char *next;
    size_t n = 0;

    err = eg__wh_reply_err(err, r, "deliveries");
    if (err == 0 && r->type == REDIS_REPLY_INTEGER)
        err = EG_ENOTFOUND;
    else if (err == 0 &&
             (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || (r->elements - 1) % 3 != 0))
        err = EG_EREDIS;
    if (err != 0) {
        op->cb.page(op->udata, err, NULL, 0, NULL);
        goto done;
    }
    next = eg__wh_str(&op->arena, r->element[0]);
    if (next != NULL && next[0] == '\0')
        next = NULL;
    ds = eg_arena_calloc(&op->arena, ((r->elements - 1) / 3 + 1) * sizeof(*ds));
    for (size_t i = 1; i + 2 < r->elements; i += 3) {
        const redisReply *f = r->element[i + 1], *at = r->element[i + 2];
        eg_webhook_delivery_t *d = &ds[n];
        const char **atts;

        if (f->type != REDIS_REPLY_ARRAY || f->elements != 7 || at->type != REDIS_REPLY_ARRAY)
            continue;
        d->id = eg__wh_str(&op->arena, r->element[i]);
        d->event_id = eg__wh_str(&op->arena, f->element[0]);
        d->event_type = eg__wh_str(&op->arena, f->element[1]);
        d->status = eg__wh_str(&op->arena, f->element[2]);
        d->next_attempt_at = eg__wh_str(&op->arena, f->element[3]);
        if (d->next_attempt_at != NULL && d->next_attempt_at[0] == '\0')
            d->next_attempt_at = NULL;
        d->created_at = eg__wh_str(&op->arena, f->element[4]);
        d->updated_at = eg__wh_str(&op->arena, f->element[5]);
        d->url = eg__wh_str(&op->arena, f->element[6]);
        atts = eg_arena_calloc(&op->arena, (at->elements + 1) * sizeof(*atts));
        for (size_t j = 0; j < at->elements; j++) {
            const char *s = eg__wh_str(&op->arena, at->element[j]);

            if (s != NULL && s[0] == '{')
                atts[d->nattempts++] = s;
        }
        d->attempts = atts;
        if (d->id == NULL || d->status == NULL)
            continue;
        n++;
    }
    /* The cursor is the last delivery's order score: opaque to clients, exclusive here. */
    op->cb.page(op->udata, 0, ds, n, next);
done:
    eg__wh_op_free(op);
}

int eg_webhook_deliveries(const char *ws_id, const char *id, const char *cursor, int limit,
                          eg_webhook_deliveries_fn cb, void *udata)
{
    /* A bank endpoint's id (a UUID) names none of the workspace's endpoints. */
    const char *wid = eg__wh_id_valid(id, "wh_") ? id : "";

    return eg__wh_deliveries(ws_id, wid, NULL, cursor, limit, EG_WEBHOOK_LIMIT_MAX, cb, udata);
}

int eg__wh_deliveries(const char *ws_id, const char *id, const char *bank, const char *cursor,
                      int limit, int max_limit, eg_webhook_deliveries_fn cb, void *udata)
{
    const char *argv[6];
    char max[40], lim[16];
    wh_op_t *op;
    int64_t c;
    int rc;

    if (!eg__events_ws_valid(ws_id) || cb == NULL || limit < 1 || limit > max_limit)
        return EG_EINVAL;
    if (cursor != NULL && eg_parse_int64(cursor, 0, INT64_MAX, &c) != 0)
        return EG_EINVAL;
    if (!eg__wh_ep_valid(id))
        return EG_ENOTFOUND;
    if (cursor != NULL)
        snprintf(max, sizeof(max), "(%" PRId64, c);
    else
        snprintf(max, sizeof(max), "+inf");
    snprintf(lim, sizeof(lim), "%d", limit);
    op = eg__wh_op_new(ws_id, id, udata);
    op->cb.page = cb;
    argv[0] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    argv[1] = eg__wh_key_deliveries(&op->arena, ws_id, id);
    argv[2] = eg_key(&op->arena, "w", ws_id, "%s", "");
    argv[3] = max;
    argv[4] = lim;
    argv[5] = bank != NULL ? bank : "";
    rc = eg_store_eval(&s_deliveries, on_deliveries, op, 2, 6, argv, NULL);
    if (rc != 0)
        eg__wh_op_free(op);
    return rc;
}

/* ---- manual retry ------------------------------------------------------------------------ */

static void on_retry_pushed(void *udata, int err, bool queued)
{
    wh_op_t *op = udata;

    (void)queued;
    op->cb.done(op->udata, err);
    eg__wh_op_free(op);
}

static void on_retry_marked(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;
    const char *payload;
    char *job;

    err = eg__wh_reply_err(err, r, "retry");
    if (err == 0 && r->type != REDIS_REPLY_INTEGER)
        err = EG_EREDIS;
    if (err == 0 && r->integer == -1)
        err = EG_ENOTFOUND;
    if (err == 0 && r->integer == -2)
        err = EG_ECONFLICT;
    if (err != 0)
        goto fail;
    /* A new job id per manual retry: the first push's id is still in the dedupe window. The
     * delivery id (what the receiver sees) does not change. */
    job = eg_arena_printf(&op->arena, "%s:r%lld", op->did, r->integer);
    payload = eg__wh_job_payload(&op->arena, op->ws, op->id, op->did);
    err = eg_queue_push(EG_WEBHOOK_QUEUE, job, payload, strlen(payload), 0, on_retry_pushed, op);
    if (err != 0)
        goto fail;
    return;
fail:
    op->cb.done(op->udata, err);
    eg__wh_op_free(op);
}

int eg_webhook_retry(const char *ws_id, const char *id, const char *delivery_id,
                     eg_webhook_done_fn cb, void *udata)
{
    const char *argv[3];
    char now[32];
    wh_op_t *op;
    int rc;

    if (!eg__events_ws_valid(ws_id) || cb == NULL)
        return EG_EINVAL;
    if (!eg__wh_id_valid(id, "wh_") || !eg__wh_id_valid(delivery_id, "msg_"))
        return EG_ENOTFOUND;
    op = eg__wh_op_new(ws_id, id, udata);
    op->cb.done = cb;
    snprintf(op->did, sizeof(op->did), "%s", delivery_id);
    eg_time_iso8601(eg_now_ms(), now);
    argv[0] = eg__wh_key_delivery(&op->arena, ws_id, delivery_id);
    argv[1] = id;
    argv[2] = now;
    rc = eg_store_eval(&s_retry, on_retry_marked, op, 1, 3, argv, NULL);
    if (rc != 0)
        eg__wh_op_free(op);
    return rc;
}

/* ---- fan-out (the emit hook) ------------------------------------------------------------- */

static void wh_fanout_finish(wh_op_t *op)
{
    op->hook_done(op->hook_ctx, op->push_err);
    eg__wh_op_free(op);
}

static void on_fanout_pushed(void *udata, int err, bool queued)
{
    wh_op_t *op = udata;

    (void)queued; /* a duplicate (a re-run fan-out) is as good as a new job */
    if (err != 0 && op->push_err == 0)
        op->push_err = err;
    if (--op->pushing == 0)
        wh_fanout_finish(op);
}

static void on_fanout(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;

    err = eg__wh_reply_err(err, r, "fanout");
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0))
        err = EG_EREDIS;
    if (err != 0 || r->elements == 0) {
        op->push_err = err;
        wh_fanout_finish(op);
        return;
    }
    /* Count every push first: a push callback never runs inside eg_queue_push, but an
     * immediate failure must not finish the op while later pushes are still to be made. */
    op->pushing = 1;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *did = eg__wh_str(&op->arena, r->element[i]);
        const char *ep = eg__wh_str(&op->arena, r->element[i + 1]);
        const char *payload;
        int rc;

        if (did == NULL || ep == NULL)
            continue;
        payload = eg__wh_job_payload(&op->arena, op->ws, ep, did);
        op->pushing++;
        rc =
            eg_queue_push(EG_WEBHOOK_QUEUE, did, payload, strlen(payload), 0, on_fanout_pushed, op);
        if (rc != 0) {
            op->pushing--;
            if (op->push_err == 0)
                op->push_err = rc;
        }
    }
    if (--op->pushing == 0)
        wh_fanout_finish(op);
}

/* The bank an event of a bank event type is about, and the Hindsight body its bank endpoints get.
 * Other events (and bank events without a valid "bank_id") concern no bank endpoint. */
static void wh_bank_of(wh_op_t *op, const eg_event_t *ev, const char **bank, const char **body)
{
    const cJSON *entity, *b;
    cJSON *j;
    char *s;

    *bank = "";
    *body = "";
    if (!eg_bank_event_type_valid(ev->type))
        return;
    j = cJSON_ParseWithLength(ev->json, ev->len);
    entity = cJSON_GetObjectItemCaseSensitive(j, "entity");
    b = cJSON_GetObjectItemCaseSensitive(entity, "bank_id");
    if (cJSON_IsString(b) && eg_bank_id_valid(b->valuestring, strlen(b->valuestring)) &&
        (s = eg_bank_webhook_body(ev->type, entity)) != NULL) {
        *bank = eg_arena_strdup(&op->arena, b->valuestring);
        *body = eg_arena_strdup(&op->arena, s);
        free(s);
    }
    cJSON_Delete(j);
}

void eg__wh_fanout(const char *ws_id, const eg_event_t *ev, eg_events_hook_done_fn done, void *ctx)
{
    const char *argv[13], *bank, *bank_body;
    char *fency;
    char score[32], created[32], ttl[24], now[24];
    uint64_t ms = 0, seq = 0;
    wh_op_t *op;
    int rc;

    if (!eg__events_ws_valid(ws_id) || eg_event_id_parse(ev->id, &ms, &seq) != 0) {
        done(ctx, 0); /* nothing we could deliver to */
        return;
    }
    op = eg__wh_op_new(ws_id, NULL, NULL);
    op->hook_done = done;
    op->hook_ctx = ctx;
    wh_bank_of(op, ev, &bank, &bank_body);
    /* Deliveries of one endpoint list in event order: ms * 1000 + seq stays exact in a double
     * (Redis zset scores) for the next few centuries; seq beyond 999 in one ms only ties. */
    snprintf(score, sizeof(score), "%" PRIu64, ms * 1000 + (seq > 999 ? 999 : seq));
    eg_time_iso8601(eg_now_ms(), created);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)EG_WEBHOOK_RETENTION_MS);
    snprintf(now, sizeof(now), "%" PRId64, eg_now_ms());
    argv[0] = eg__wh_key_index(&op->arena, ws_id);
    argv[1] = bank[0] != '\0' ? eg__bwh_key_index(&op->arena, ws_id, bank) : argv[0];
    argv[2] = eg_key(&op->arena, "w", ws_id, "%s", "");
    argv[3] = ev->id;
    argv[4] = ev->type;
    argv[5] = ev->json;
    argv[6] = score;
    argv[7] = created;
    argv[8] = ttl;
    argv[9] = now;
    argv[10] = bank;
    argv[11] = bank_body;
    /* Computed once per event whether or not a Fency endpoint is there to take it: finding out
     * first would cost a round trip, and the envelope costs one JSON parse. */
    fency = eg_event_fency_json(ws_id, ev);
    argv[12] = fency != NULL ? eg_arena_strdup(&op->arena, fency) : "";
    free(fency);
    rc = eg_store_eval(&s_fanout, on_fanout, op, 2, 13, argv, NULL);
    if (rc != 0) {
        op->push_err = rc;
        wh_fanout_finish(op);
    }
}
