/* Accounts, workspaces and API keys in Redis.
 *
 * The tenancy directory lives under one hash tag, {t}: it is small, cold data (requests read it
 * through the auth cache in auth.c), and creating or revoking a key must update the key record,
 * the hash index and the workspace's key set atomically, which one slot makes possible on Redis
 * Cluster too. Every write is one Lua script. Keys (see docs/keyspace.md):
 *
 *   eg:{t}:account:<id>        hash  id, name, created
 *   eg:{t}:ws_by_name          hash  workspace name -> id
 *   eg:{t}:ws:<id>             hash  id, name, account_id, created
 *   eg:{t}:ws:<id>:keys        set   key ids of the workspace
 *   eg:{t}:key:<id>            hash  id, workspace_id, kind, name, prefix, hash, created, last_used
 *   eg:{t}:key_by_hash         hash  sha256(secret) -> key id
 *
 * Secrets are never stored: only their SHA-256. Keys carry 40 base62 characters (238 bits), so
 * an unsalted hash is not guessable. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/platform_util.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/tenancy.h"
#include "engram/util.h"
#include "tenancy_int.h"

#define T_PREFIX      "eg:{t}:"
#define K_WS_BY_NAME  T_PREFIX "ws_by_name"
#define K_KEY_BY_HASH T_PREFIX "key_by_hash"

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* ---- scripts ----------------------------------------------------------------------------- */

/* KEYS[1] ws_by_name; ARGV prefix, name, new id, account id, now, reuse ("1": return existing) */
static eg_script_t s_ws_create = {
    .name = "ws_create",
    .source = "local id = redis.call('HGET', KEYS[1], ARGV[2])\n"
              "if id then\n"
              "  if ARGV[6] ~= '1' then return redis.error_reply('CONFLICT workspace exists') end\n"
              "else\n"
              "  id = ARGV[3]\n"
              "  local acc = ARGV[1] .. 'account:' .. ARGV[4]\n"
              "  if redis.call('EXISTS', acc) == 0 then\n"
              "    redis.call('HSET', acc, 'id', ARGV[4], 'name', ARGV[4], 'created', ARGV[5])\n"
              "  end\n"
              "  redis.call('HSET', KEYS[1], ARGV[2], id)\n"
              "  redis.call('HSET', ARGV[1] .. 'ws:' .. id, 'id', id, 'name', ARGV[2],\n"
              "             'account_id', ARGV[4], 'created', ARGV[5])\n"
              "end\n"
              "return redis.call('HMGET', ARGV[1] .. 'ws:' .. id, 'id', 'name', 'account_id',\n"
              "                  'created')\n",
};

/* KEYS[1] ws_by_name; ARGV prefix, name or id */
static eg_script_t s_ws_get = {
    .name = "ws_get",
    .source = "local id = ARGV[2]\n"
              "if redis.call('EXISTS', ARGV[1] .. 'ws:' .. id) == 0 then\n"
              "  id = redis.call('HGET', KEYS[1], ARGV[2])\n"
              "  if not id then return false end\n"
              "end\n"
              "return redis.call('HMGET', ARGV[1] .. 'ws:' .. id, 'id', 'name', 'account_id',\n"
              "                  'created')\n",
};

/* KEYS[1] ws_by_name; ARGV prefix */
static eg_script_t s_ws_list = {
    .name = "ws_list",
    .source = "local out = {}\n"
              "for _, id in ipairs(redis.call('HVALS', KEYS[1])) do\n"
              "  out[#out + 1] = redis.call('HMGET', ARGV[1] .. 'ws:' .. id, 'id', 'name',\n"
              "                             'account_id', 'created')\n"
              "end\n"
              "return out\n",
};

/* KEYS[1] key_by_hash; ARGV prefix, ws id, key id, hash, kind, name, display prefix, now */
static eg_script_t s_key_create = {
    .name = "key_create",
    .source = "if redis.call('EXISTS', ARGV[1] .. 'ws:' .. ARGV[2]) == 0 then\n"
              "  return redis.error_reply('NOTFOUND workspace')\n"
              "end\n"
              "redis.call('HSET', KEYS[1], ARGV[4], ARGV[3])\n"
              "redis.call('HSET', ARGV[1] .. 'key:' .. ARGV[3], 'id', ARGV[3], 'workspace_id',\n"
              "           ARGV[2], 'kind', ARGV[5], 'name', ARGV[6], 'prefix', ARGV[7],\n"
              "           'hash', ARGV[4], 'created', ARGV[8], 'last_used', '0')\n"
              "redis.call('SADD', ARGV[1] .. 'ws:' .. ARGV[2] .. ':keys', ARGV[3])\n"
              "return 1\n",
};

/* KEYS[1] key_by_hash; ARGV prefix, key id, ws id ('' = any). Returns the hash revoked. */
static eg_script_t s_key_revoke = {
    .name = "key_revoke",
    .source = "local k = ARGV[1] .. 'key:' .. ARGV[2]\n"
              "local f = redis.call('HMGET', k, 'workspace_id', 'hash')\n"
              "if not f[1] or (ARGV[3] ~= '' and f[1] ~= ARGV[3]) then return false end\n"
              "redis.call('HDEL', KEYS[1], f[2])\n"
              "redis.call('DEL', k)\n"
              "redis.call('SREM', ARGV[1] .. 'ws:' .. f[1] .. ':keys', ARGV[2])\n"
              "return f[2]\n",
};

/* KEYS[1] ws_by_name; ARGV prefix, ws id ('' = all) */
static eg_script_t s_key_list = {
    .name = "key_list",
    .source = "local wss\n"
              "if ARGV[2] ~= '' then wss = {ARGV[2]} else wss = redis.call('HVALS', KEYS[1]) end\n"
              "local out = {}\n"
              "for _, ws in ipairs(wss) do\n"
              "  local ids = redis.call('SMEMBERS', ARGV[1] .. 'ws:' .. ws .. ':keys')\n"
              "  table.sort(ids)\n"
              "  for _, id in ipairs(ids) do\n"
              "    out[#out + 1] = redis.call('HMGET', ARGV[1] .. 'key:' .. id, 'id',\n"
              "      'workspace_id', 'kind', 'name', 'prefix', 'created', 'last_used')\n"
              "  end\n"
              "end\n"
              "return out\n",
};

/* KEYS[1] key_by_hash; ARGV prefix, hash, now. Returns {id, ws, kind} and touches last_used at
 * most once a minute (cache misses only reach here). */
static eg_script_t s_key_auth = {
    .name = "key_auth",
    .source = "local id = redis.call('HGET', KEYS[1], ARGV[2])\n"
              "if not id then return false end\n"
              "local k = ARGV[1] .. 'key:' .. id\n"
              "local f = redis.call('HMGET', k, 'workspace_id', 'kind', 'last_used')\n"
              "if not f[1] then return false end\n"
              "if tonumber(ARGV[3]) - tonumber(f[3] or '0') > 60000 then\n"
              "  redis.call('HSET', k, 'last_used', ARGV[3])\n"
              "end\n"
              "return {id, f[1], f[2]}\n",
};

/* ---- helpers ----------------------------------------------------------------------------- */

typedef struct t_op_s {
    union {
        eg_ws_fn ws;
        eg_ws_list_fn ws_list;
        eg_key_created_fn key_created;
        eg_key_list_fn key_list;
        eg_done_fn done;
        eg_auth_fn auth;
    } cb;
    void *udata;
    eg_apikey_t key;
    char secret[64];
    char hash[65];
} t_op_t;

static t_op_t *op_new(void *udata)
{
    t_op_t *op = eg_xcalloc(1, sizeof(*op));
    op->udata = udata;
    return op;
}

static void op_free(t_op_t *op)
{
    mbedtls_platform_zeroize(op->secret, sizeof(op->secret));
    free(op);
}

static void copy_str(char *dst, size_t cap, const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(dst, cap, "%.*s", (int)r->len, r->str);
    else
        dst[0] = '\0';
}

static int64_t reply_int64(const redisReply *r)
{
    char tmp[32];
    int64_t v = 0;

    copy_str(tmp, sizeof(tmp), r);
    if (eg_parse_int64(tmp, INT64_MIN, INT64_MAX, &v) != 0)
        return 0;
    return v;
}

/* Map a Redis error reply ("CONFLICT ...", "NOTFOUND ...") onto our codes. */
static int script_error(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    if (strncmp(r->str, "CONFLICT", 8) == 0)
        return EG_ECONFLICT;
    if (strncmp(r->str, "NOTFOUND", 8) == 0)
        return EG_ENOTFOUND;
    eg_log_error("redis script error: %s", r->str);
    return EG_EREDIS;
}

static bool ws_from_reply(const redisReply *r, eg_workspace_t *ws)
{
    memset(ws, 0, sizeof(*ws));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 4 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return false;
    copy_str(ws->id, sizeof(ws->id), r->element[0]);
    copy_str(ws->name, sizeof(ws->name), r->element[1]);
    copy_str(ws->account_id, sizeof(ws->account_id), r->element[2]);
    ws->created_ms = reply_int64(r->element[3]);
    return true;
}

static bool key_from_reply(const redisReply *r, eg_apikey_t *k)
{
    char kind[16];

    memset(k, 0, sizeof(*k));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 7 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return false;
    copy_str(k->id, sizeof(k->id), r->element[0]);
    copy_str(k->workspace_id, sizeof(k->workspace_id), r->element[1]);
    copy_str(kind, sizeof(kind), r->element[2]);
    k->kind = strcmp(kind, "publishable") == 0 ? EG_KEY_PUBLISHABLE : EG_KEY_SECRET;
    copy_str(k->name, sizeof(k->name), r->element[3]);
    copy_str(k->prefix, sizeof(k->prefix), r->element[4]);
    k->created_ms = reply_int64(r->element[5]);
    k->last_used_ms = reply_int64(r->element[6]);
    return true;
}

const char *eg_apikey_kind_name(eg_key_kind_t kind)
{
    return kind == EG_KEY_PUBLISHABLE ? "publishable" : "secret";
}

/* ---- workspaces -------------------------------------------------------------------------- */

static void on_ws_reply(void *udata, int err, redisReply *r)
{
    t_op_t *op = udata;
    eg_workspace_t ws;

    if (err == 0)
        err = script_error(r);
    if (err == 0 && !ws_from_reply(r, &ws))
        err = EG_ENOTFOUND;
    op->cb.ws(op->udata, err, err ? NULL : &ws);
    op_free(op);
}

static int ws_create(const char *name, bool reuse, eg_ws_fn cb, void *udata)
{
    char id[37], now[24];
    t_op_t *op;
    int rc;

    if (name == NULL || name[0] == '\0' || strlen(name) >= sizeof(((eg_workspace_t *)0)->name))
        return EG_EINVAL;
    eg_uuid_v4(id);
    snprintf(now, sizeof(now), "%lld", (long long)eg_now_ms());
    const char *argv[] = {K_WS_BY_NAME, T_PREFIX,         name, id, EG_DEFAULT_ACCOUNT,
                          now,          reuse ? "1" : "0"};
    op = op_new(udata);
    op->cb.ws = cb;
    rc = eg_store_eval(&s_ws_create, on_ws_reply, op, 1, EG_ARRAY_SIZE(argv), argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

int eg_tenancy_bootstrap(eg_ws_fn cb, void *udata)
{
    return ws_create(EG_DEFAULT_WORKSPACE, true, cb, udata);
}

int eg_workspace_create(const char *name, eg_ws_fn cb, void *udata)
{
    return ws_create(name, false, cb, udata);
}

int eg_workspace_get(const char *name_or_id, eg_ws_fn cb, void *udata)
{
    const char *argv[] = {K_WS_BY_NAME, T_PREFIX, name_or_id};
    t_op_t *op;
    int rc;

    if (name_or_id == NULL || name_or_id[0] == '\0')
        return EG_EINVAL;
    op = op_new(udata);
    op->cb.ws = cb;
    rc = eg_store_eval(&s_ws_get, on_ws_reply, op, 1, EG_ARRAY_SIZE(argv), argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

static void on_ws_list(void *udata, int err, redisReply *r)
{
    t_op_t *op = udata;
    eg_workspace_t *list = NULL;
    size_t n = 0;

    if (err == 0)
        err = script_error(r);
    if (err == 0 && r->type == REDIS_REPLY_ARRAY) {
        list = eg_xcalloc(r->elements ? r->elements : 1, sizeof(*list));
        for (size_t i = 0; i < r->elements; i++)
            if (ws_from_reply(r->element[i], &list[n]))
                n++;
    }
    op->cb.ws_list(op->udata, err, list, n);
    free(list);
    op_free(op);
}

int eg_workspace_list(eg_ws_list_fn cb, void *udata)
{
    const char *argv[] = {K_WS_BY_NAME, T_PREFIX};
    t_op_t *op = op_new(udata);
    int rc;

    op->cb.ws_list = cb;
    rc = eg_store_eval(&s_ws_list, on_ws_list, op, 1, EG_ARRAY_SIZE(argv), argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

/* ---- keys -------------------------------------------------------------------------------- */

void eg_apikey_generate(eg_key_kind_t kind, char out[64])
{
    memcpy(out, kind == EG_KEY_PUBLISHABLE ? "pk_" : "sk_", 3);
    eg_random_base62(out + 3, 40);
}

const char *eg_auth_token_from_header(const char *h)
{
    if (h == NULL)
        return NULL;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) == 0 && (h[6] == ' ' || h[6] == '\t' || h[6] == '\0')) {
        h += 6;
        while (*h == ' ' || *h == '\t')
            h++;
    }
    if (*h == '\0')
        return NULL;
    /* Trailing whitespace is not part of the key. */
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n != strlen(h))
        return NULL; /* keys never end in blanks; callers get a precise 401 */
    return h;
}

static void on_key_created_published(void *udata, int err, redisReply *r)
{
    t_op_t *op = udata;

    /* The key exists either way; a lost invalidation only delays it by the negative TTL. */
    op->cb.key_created(op->udata, 0, &op->key, op->secret);
    op_free(op);
}

static void on_key_created(void *udata, int err, redisReply *r)
{
    t_op_t *op = udata;

    if (err == 0)
        err = script_error(r);
    if (err == 0) {
        /* Drop negative cache entries everywhere before the caller may use the key. */
        eg__auth_forget(op->hash);
        if (eg__auth_publish_invalidation(op->hash, on_key_created_published, op) == 0)
            return;
    }
    op->cb.key_created(op->udata, err, err ? NULL : &op->key, err ? NULL : op->secret);
    op_free(op);
}

int eg_apikey_create(const char *workspace_id, eg_key_kind_t kind, const char *name,
                     eg_key_created_fn cb, void *udata)
{
    char now[24];
    t_op_t *op;
    int rc;

    if (workspace_id == NULL || name == NULL || name[0] == '\0' ||
        strlen(name) >= sizeof(op->key.name) ||
        strlen(workspace_id) >= sizeof(op->key.workspace_id))
        return EG_EINVAL;
    op = op_new(udata);
    op->cb.key_created = cb;
    eg_apikey_generate(kind, op->secret);
    eg_sha256_hex(op->secret, strlen(op->secret), op->hash);
    eg_uuid_v4(op->key.id);
    snprintf(op->key.workspace_id, sizeof(op->key.workspace_id), "%s", workspace_id);
    snprintf(op->key.name, sizeof(op->key.name), "%s", name);
    snprintf(op->key.prefix, sizeof(op->key.prefix), "%.7s", op->secret);
    op->key.kind = kind;
    op->key.created_ms = eg_now_ms();
    snprintf(now, sizeof(now), "%lld", (long long)op->key.created_ms);
    const char *argv[] = {K_KEY_BY_HASH, T_PREFIX,       workspace_id,
                          op->key.id,    op->hash,       eg_apikey_kind_name(kind),
                          name,          op->key.prefix, now};
    rc = eg_store_eval(&s_key_create, on_key_created, op, 1, EG_ARRAY_SIZE(argv), argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

static void on_key_list(void *udata, int err, redisReply *r)
{
    t_op_t *op = udata;
    eg_apikey_t *keys = NULL;
    size_t n = 0;

    if (err == 0)
        err = script_error(r);
    if (err == 0 && r->type == REDIS_REPLY_ARRAY) {
        keys = eg_xcalloc(r->elements ? r->elements : 1, sizeof(*keys));
        for (size_t i = 0; i < r->elements; i++)
            if (key_from_reply(r->element[i], &keys[n]))
                n++;
    }
    op->cb.key_list(op->udata, err, keys, n);
    free(keys);
    op_free(op);
}

int eg_apikey_list(const char *workspace_id, eg_key_list_fn cb, void *udata)
{
    const char *argv[] = {K_WS_BY_NAME, T_PREFIX, workspace_id ? workspace_id : ""};
    t_op_t *op = op_new(udata);
    int rc;

    op->cb.key_list = cb;
    rc = eg_store_eval(&s_key_list, on_key_list, op, 1, EG_ARRAY_SIZE(argv), argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

static void on_key_revoke_published(void *udata, int err, redisReply *r)
{
    t_op_t *op = udata;

    op->cb.done(op->udata, 0);
    op_free(op);
}

static void on_key_revoked(void *udata, int err, redisReply *r)
{
    t_op_t *op = udata;

    if (err == 0)
        err = script_error(r);
    if (err == 0 && r->type != REDIS_REPLY_STRING)
        err = EG_ENOTFOUND;
    if (err == 0) {
        copy_str(op->hash, sizeof(op->hash), r);
        eg__auth_forget(op->hash);
        /* Answer only once every process has been told, so a revoked key is dead everywhere
         * when the caller hears it is revoked. */
        if (eg__auth_publish_invalidation(op->hash, on_key_revoke_published, op) == 0)
            return;
    }
    op->cb.done(op->udata, err);
    op_free(op);
}

int eg_apikey_revoke(const char *workspace_id, const char *key_id, eg_done_fn cb, void *udata)
{
    const char *argv[] = {K_KEY_BY_HASH, T_PREFIX, key_id, workspace_id ? workspace_id : ""};
    t_op_t *op;
    int rc;

    if (key_id == NULL || key_id[0] == '\0')
        return EG_EINVAL;
    op = op_new(udata);
    op->cb.done = cb;
    rc = eg_store_eval(&s_key_revoke, on_key_revoked, op, 1, EG_ARRAY_SIZE(argv), argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

/* ---- auth lookup (cache misses) ---------------------------------------------------------- */

static void on_key_auth(void *udata, int err, redisReply *r)
{
    t_op_t *op = udata;
    eg_auth_t auth;
    char kind[16];

    memset(&auth, 0, sizeof(auth));
    if (err == 0)
        err = script_error(r);
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 3))
        err = EG_EAUTH;
    if (err == 0) {
        copy_str(auth.key_id, sizeof(auth.key_id), r->element[0]);
        copy_str(auth.workspace_id, sizeof(auth.workspace_id), r->element[1]);
        copy_str(kind, sizeof(kind), r->element[2]);
        auth.kind = strcmp(kind, "publishable") == 0 ? EG_KEY_PUBLISHABLE : EG_KEY_SECRET;
    }
    op->cb.auth(op->udata, err, err ? NULL : &auth);
    op_free(op);
}

int eg__auth_lookup(const char *hash, eg_auth_fn cb, void *udata)
{
    char now[24];
    t_op_t *op = op_new(udata);
    int rc;

    op->cb.auth = cb;
    snprintf(now, sizeof(now), "%lld", (long long)eg_now_ms());
    const char *argv[] = {K_KEY_BY_HASH, T_PREFIX, hash, now};
    rc = eg_store_eval(&s_key_auth, on_key_auth, op, 1, EG_ARRAY_SIZE(argv), argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

bool eg__apikey_plausible(const char *token)
{
    size_t n = strlen(token);

    if (n != 43 || (strncmp(token, "sk_", 3) != 0 && strncmp(token, "pk_", 3) != 0))
        return false;
    for (size_t i = 3; i < n; i++)
        if (!memchr(base62, token[i], sizeof(base62) - 1))
            return false;
    return true;
}
