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

/* ---- signing ----------------------------------------------------------------------------- */

int eg_webhook_signing_parse(const char *s, eg_webhook_signing_t *out)
{
    static const char *const names[] = {"standard", "fency", "hindsight"};

    for (size_t i = 0; s != NULL && i < EG_ARRAY_SIZE(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (eg_webhook_signing_t)i;
            return 0;
        }
    }
    return EG_EINVAL;
}

const char *eg_webhook_signing_name(eg_webhook_signing_t s)
{
    return s == EG_WEBHOOK_FENCY ? "fency" : s == EG_WEBHOOK_HINDSIGHT ? "hindsight" : "standard";
}

void eg_webhook_secret_new(eg_webhook_signing_t s, char out[64])
{
    unsigned char raw[24];

    if (s == EG_WEBHOOK_STANDARD) {
        eg_random_bytes(raw, sizeof(raw));
        memcpy(out, "whsec_", 6);
        eg_base64_encode(raw, sizeof(raw), out + 6);
        mbedtls_platform_zeroize(raw, sizeof(raw));
    } else {
        eg_random_base62(out, 32);
    }
}

/* Decode the key of a Standard Webhooks secret ("whsec_" + base64). Returns its length, or 0. */
static size_t wh_standard_key(const char *secret, unsigned char key[64])
{
    size_t n = 0;

    if (secret == NULL || strncmp(secret, "whsec_", 6) != 0)
        return 0;
    if (mbedtls_base64_decode(key, 64, &n, (const unsigned char *)secret + 6, strlen(secret + 6)) !=
        0)
        return 0;
    return n;
}

bool eg_webhook_secret_valid(eg_webhook_signing_t s, const char *secret)
{
    unsigned char key[64];
    size_t n;

    if (secret == NULL)
        return false;
    if (s == EG_WEBHOOK_STANDARD) {
        n = wh_standard_key(secret, key);
        mbedtls_platform_zeroize(key, sizeof(key));
        return n >= 16 && n <= 64;
    }
    n = strlen(secret);
    if (n < 8 || n > EG_WEBHOOK_SECRET_MAX)
        return false;
    for (const char *p = secret; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return false;
    return true;
}

void eg_webhook_sign_hex(const char *secret, const void *body, size_t len, char out[72])
{
    unsigned char mac[32];

    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const unsigned char *)secret,
                    strlen(secret), body, len, mac);
    memcpy(out, "sha256=", 7);
    eg_hex_encode(mac, sizeof(mac), out + 7);
}

int eg_webhook_sign_standard(const char *secret, const char *msg_id, int64_t timestamp,
                             const void *body, size_t len, char out[64])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    unsigned char key[64], mac[32];
    mbedtls_md_context_t ctx;
    char ts[24];
    size_t klen;
    int rc = EG_EINVAL;

    mbedtls_md_init(&ctx);
    klen = wh_standard_key(secret, key);
    if (klen == 0 || msg_id == NULL || strchr(msg_id, '.') != NULL)
        goto fail;
    snprintf(ts, sizeof(ts), ".%" PRId64 ".", timestamp);
    /* Streamed rather than concatenated: the body may be large and is signed as it is sent. */
    if (mbedtls_md_setup(&ctx, md, 1) != 0 || mbedtls_md_hmac_starts(&ctx, key, klen) != 0 ||
        mbedtls_md_hmac_update(&ctx, (const unsigned char *)msg_id, strlen(msg_id)) != 0 ||
        mbedtls_md_hmac_update(&ctx, (const unsigned char *)ts, strlen(ts)) != 0 ||
        mbedtls_md_hmac_update(&ctx, body, len) != 0 || mbedtls_md_hmac_finish(&ctx, mac) != 0) {
        rc = EG_EINTERNAL;
        goto fail;
    }
    memcpy(out, "v1,", 3);
    eg_base64_encode(mac, sizeof(mac), out + 3);
    rc = 0;
fail:
    mbedtls_md_free(&ctx);
    mbedtls_platform_zeroize(key, sizeof(key));
    return rc;
}

int64_t eg_webhook_retry_delay_ms(unsigned attempt, double scale, uint32_t rnd)
{
    /* Standard Webhooks' example schedule, cut at 8 attempts (about 32 hours in all). */
    static const int64_t sched_s[] = {5, 300, 1800, 7200, 18000, 36000, 36000};
    double d, jitter;

    if (attempt < 1 || attempt > EG_ARRAY_SIZE(sched_s))
        return -1;
    /* rnd maps to [-0.1, +0.1): retries of deliveries that failed together spread out. */
    jitter = ((double)rnd / 4294967296.0 - 0.5) * 0.2;
    d = (double)sched_s[attempt - 1] * 1000.0 * scale * (1.0 + jitter);
    return d < 0 ? 0 : (int64_t)llround(d);
}

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

/* KEYS index, bank index (the index again when the event names no bank); ARGV prefix, event id,
 * type, body, order score, created_at, retention ms, now ms, bank id ('' = none), bank body.
 * For each enabled workspace endpoint whose patterns match the type, and each enabled endpoint
 * of the event's bank whose types include it: a delivery record (kept if it already exists: the
 * id is a function of endpoint and event), indexed in the endpoint's deliveries. A bank
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
              "  local e = redis.call('HMGET', p .. 'wh:' .. id, 'enabled', 'types')\n"
              "  if e[1] == '1' and match(e[2] or '') then add(id, ARGV[4], nil) end\n"
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

/* ---- operations -------------------------------------------------------------------------- */

typedef struct wh_op_s {
    eg_arena_t arena;
    union {
        eg_webhook_fn one;
        eg_webhook_list_fn list;
        eg_webhook_done_fn done;
        eg_webhook_deliveries_fn page;
    } cb;
    void *udata;
    char ws[EG__EVENTS_WS_MAX + 1];
    char id[EG__WH_ID_MAX];
    char did[EG__WH_ID_MAX];
    const char *secret; /* create: the whole secret, shown once */
    /* fan-out: pushes still running and the first error */
    eg_events_hook_done_fn hook_done;
    void *hook_ctx;
    size_t pushing;
    int push_err;
} wh_op_t;

static wh_op_t *wh_op_new(const char *ws, const char *id, void *udata)
{
    wh_op_t *op = eg_xcalloc(1, sizeof(*op));

    eg_arena_init(&op->arena);
    op->udata = udata;
    snprintf(op->ws, sizeof(op->ws), "%s", ws);
    if (id != NULL)
        snprintf(op->id, sizeof(op->id), "%s", id);
    return op;
}

static void wh_op_free(wh_op_t *op)
{
    if (op->secret != NULL)
        mbedtls_platform_zeroize((void *)op->secret, strlen(op->secret));
    eg_arena_destroy(&op->arena);
    free(op);
}

static int wh_reply_err(int err, const redisReply *r, const char *what)
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

static const char *wh_str(eg_arena_t *a, const redisReply *r)
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
        const char *k = wh_str(a, f->element[i]), *v = wh_str(a, f->element[i + 1]);

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

    err = wh_reply_err(err, r, "create");
    if (err == 0 && r->type != REDIS_REPLY_INTEGER)
        err = EG_EREDIS;
    if (err == 0 && r->integer == 0)
        err = EG_ECONFLICT;
    op->cb.one(op->udata, err, err ? NULL : &c->wh);
    wh_op_free(op);
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
    op = wh_op_new(ws_id, id, udata);
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
        wh_op_free(op);
    return rc;
}

/* ---- get, update ------------------------------------------------------------------------- */

static void on_one(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;
    eg_webhook_t wh;

    err = wh_reply_err(err, r, "get");
    if (err == 0 && r->type != REDIS_REPLY_ARRAY)
        err = EG_EREDIS;
    if (err == 0 && r->elements == 0)
        err = EG_ENOTFOUND;
    if (err == 0 && !wh_from_fields(&op->arena, &wh, op->id, r)) {
        eg_log_error("webhooks: endpoint %s of workspace %s is malformed", op->id, op->ws);
        err = EG_ENOTFOUND;
    }
    op->cb.one(op->udata, err, err ? NULL : &wh);
    wh_op_free(op);
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
    op = wh_op_new(ws_id, id, udata);
    op->cb.one = cb;
    argv[0] = "HGETALL";
    argv[1] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    rc = eg_store_commandv(on_one, op, 2, argv, NULL);
    if (rc != 0)
        wh_op_free(op);
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
    op = wh_op_new(ws_id, id, udata);
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
        wh_op_free(op);
    return rc;
}

/* ---- list, delete ------------------------------------------------------------------------ */

static void on_list(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;
    eg_webhook_t *whs = NULL;
    size_t n = 0;

    err = wh_reply_err(err, r, "list");
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0))
        err = EG_EREDIS;
    if (err != 0) {
        op->cb.list(op->udata, err, NULL, 0);
        goto done;
    }
    whs = eg_arena_calloc(&op->arena, (r->elements / 2 + 1) * sizeof(*whs));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *id = wh_str(&op->arena, r->element[i]);

        if (id != NULL && wh_from_fields(&op->arena, &whs[n], id, r->element[i + 1]))
            n++;
    }
    op->cb.list(op->udata, 0, whs, n);
done:
    wh_op_free(op);
}

int eg_webhook_list(const char *ws_id, eg_webhook_list_fn cb, void *udata)
{
    const char *argv[2];
    wh_op_t *op;
    int rc;

    if (!eg__events_ws_valid(ws_id) || cb == NULL)
        return EG_EINVAL;
    op = wh_op_new(ws_id, NULL, udata);
    op->cb.list = cb;
    argv[0] = eg__wh_key_index(&op->arena, ws_id);
    argv[1] = eg_key(&op->arena, "w", ws_id, "%s", "");
    rc = eg_store_eval(&s_list, on_list, op, 1, 2, argv, NULL);
    if (rc != 0)
        wh_op_free(op);
    return rc;
}

static void on_done_int(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;

    err = wh_reply_err(err, r, "delete");
    if (err == 0 && r->type != REDIS_REPLY_INTEGER)
        err = EG_EREDIS;
    if (err == 0 && r->integer == 0)
        err = EG_ENOTFOUND;
    op->cb.done(op->udata, err);
    wh_op_free(op);
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
    op = wh_op_new(ws_id, id, udata);
    op->cb.done = cb;
    argv[0] = eg__wh_key_index(&op->arena, ws_id);
    argv[1] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    argv[2] = eg__wh_key_deliveries(&op->arena, ws_id, id);
    argv[3] = id;
    rc = eg_store_eval(&s_delete, on_done_int, op, 3, 4, argv, NULL);
    if (rc != 0)
        wh_op_free(op);
    return rc;
}

/* ---- deliveries -------------------------------------------------------------------------- */

static void on_deliveries(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;
    eg_webhook_delivery_t *ds;
    const char *next;
    size_t n = 0;

    err = wh_reply_err(err, r, "deliveries");
    if (err == 0 && r->type == REDIS_REPLY_INTEGER)
        err = EG_ENOTFOUND;
    else if (err == 0 &&
             (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || (r->elements - 1) % 3 != 0))
        err = EG_EREDIS;
    if (err != 0) {
        op->cb.page(op->udata, err, NULL, 0, NULL);
        goto done;
    }
    next = wh_str(&op->arena, r->element[0]);
    if (next != NULL && next[0] == '\0')
        next = NULL;
    ds = eg_arena_calloc(&op->arena, ((r->elements - 1) / 3 + 1) * sizeof(*ds));
    for (size_t i = 1; i + 2 < r->elements; i += 3) {
        const redisReply *f = r->element[i + 1], *at = r->element[i + 2];
        eg_webhook_delivery_t *d = &ds[n];
        const char **atts;

        if (f->type != REDIS_REPLY_ARRAY || f->elements != 7 || at->type != REDIS_REPLY_ARRAY)
            continue;
        d->id = wh_str(&op->arena, r->element[i]);
        d->event_id = wh_str(&op->arena, f->element[0]);
        d->event_type = wh_str(&op->arena, f->element[1]);
        d->status = wh_str(&op->arena, f->element[2]);
        d->next_attempt_at = wh_str(&op->arena, f->element[3]);
        if (d->next_attempt_at != NULL && d->next_attempt_at[0] == '\0')
            d->next_attempt_at = NULL;
        d->created_at = wh_str(&op->arena, f->element[4]);
        d->updated_at = wh_str(&op->arena, f->element[5]);
        d->url = wh_str(&op->arena, f->element[6]);
        atts = eg_arena_calloc(&op->arena, (at->elements + 1) * sizeof(*atts));
        for (size_t j = 0; j < at->elements; j++) {
            const char *s = wh_str(&op->arena, at->element[j]);

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
    wh_op_free(op);
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
    op = wh_op_new(ws_id, id, udata);
    op->cb.page = cb;
    argv[0] = eg__wh_key_endpoint(&op->arena, ws_id, id);
    argv[1] = eg__wh_key_deliveries(&op->arena, ws_id, id);
    argv[2] = eg_key(&op->arena, "w", ws_id, "%s", "");
    argv[3] = max;
    argv[4] = lim;
    argv[5] = bank != NULL ? bank : "";
    rc = eg_store_eval(&s_deliveries, on_deliveries, op, 2, 6, argv, NULL);
    if (rc != 0)
        wh_op_free(op);
    return rc;
}

/* ---- manual retry ------------------------------------------------------------------------ */

static void on_retry_pushed(void *udata, int err, bool queued)
{
    wh_op_t *op = udata;

    (void)queued;
    op->cb.done(op->udata, err);
    wh_op_free(op);
}

static void on_retry_marked(void *udata, int err, redisReply *r)
{
    wh_op_t *op = udata;
    const char *payload;
    char *job;

    err = wh_reply_err(err, r, "retry");
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
    wh_op_free(op);
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
    op = wh_op_new(ws_id, id, udata);
    op->cb.done = cb;
    snprintf(op->did, sizeof(op->did), "%s", delivery_id);
    eg_time_iso8601(eg_now_ms(), now);
    argv[0] = eg__wh_key_delivery(&op->arena, ws_id, delivery_id);
    argv[1] = id;
    argv[2] = now;
    rc = eg_store_eval(&s_retry, on_retry_marked, op, 1, 3, argv, NULL);
    if (rc != 0)
        wh_op_free(op);
    return rc;
}

/* ---- fan-out (the emit hook) ------------------------------------------------------------- */

static void wh_fanout_finish(wh_op_t *op)
{
    op->hook_done(op->hook_ctx, op->push_err);
    wh_op_free(op);
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

    err = wh_reply_err(err, r, "fanout");
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
        const char *did = wh_str(&op->arena, r->element[i]);
        const char *ep = wh_str(&op->arena, r->element[i + 1]);
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
    const char *argv[12], *bank, *bank_body;
    char score[32], created[32], ttl[24], now[24];
    uint64_t ms = 0, seq = 0;
    wh_op_t *op;
    int rc;

    if (!eg__events_ws_valid(ws_id) || eg_event_id_parse(ev->id, &ms, &seq) != 0) {
        done(ctx, 0); /* nothing we could deliver to */
        return;
    }
    op = wh_op_new(ws_id, NULL, NULL);
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
    rc = eg_store_eval(&s_fanout, on_fanout, op, 2, 12, argv, NULL);
    if (rc != 0) {
        op->push_err = rc;
        wh_fanout_finish(op);
    }
}
