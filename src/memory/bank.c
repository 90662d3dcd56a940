/* Memory banks in Redis.
 *
 * A bank belongs to one workspace and is named by the caller's string, so two workspaces can each
 * have a bank "x". Everything of one bank lives under the hash tag {b:<workspace_id>/<bank_id>}
 * so that retain, delete and every later multi-key bank update is one Lua script, valid on Redis
 * Cluster too. The workspace's index of banks lives in the workspace's slot. Keys (see
 * docs/keyspace.md):
 *
 *   eg:{b:<ws>/<bank>}:bank     hash  id, name, created, updated (ms), and the counters the memory
 *                                     engine maintains: fact_count, document_count, chunk_count,
 *                                     link_count, last_document_at, last_write_at (ms, 0 = never)
 *   eg:{b:<ws>/<bank>}:config   hash  config key -> JSON value: the bank's overrides, including
 *                                     reflect_mission (the mission) and disposition_*
 *   eg:{w:<ws>}:banks           zset  bank id -> created (ms)
 *
 * The bank record and the index are in two slots, so they cannot change atomically: the record is
 * written first and the index after it (a PUT re-adds a missing entry), and listing skips entries
 * whose record is gone, so a crash between the two steps leaves nothing visible behind. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/directives.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/mental_models.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/util.h"

/* ---- configuration keys ------------------------------------------------------------------ */

static const char *const extraction_modes[] = {"concise",  "verbose", "custom",
                                               "verbatim", "chunks",  NULL};

/* The per-bank ("hierarchical") settings and their defaults. reflect_mission and disposition_*
 * are the profile's mission and disposition. */
static const eg_bank_cfg_key_t cfg_keys[] = {
    {"reflect_mission", EG_BANK_CFG_STR, NULL, 0, 0, NULL},
    {"disposition_skepticism", EG_BANK_CFG_INT, "3", EG_BANK_TRAIT_MIN, EG_BANK_TRAIT_MAX, NULL},
    {"disposition_literalism", EG_BANK_CFG_INT, "3", EG_BANK_TRAIT_MIN, EG_BANK_TRAIT_MAX, NULL},
    {"disposition_empathy", EG_BANK_CFG_INT, "3", EG_BANK_TRAIT_MIN, EG_BANK_TRAIT_MAX, NULL},
    {"retain_mission", EG_BANK_CFG_STR, NULL, 0, 0, NULL},
    {"retain_extraction_mode", EG_BANK_CFG_ENUM, "\"concise\"", 0, 0, extraction_modes},
    {"retain_custom_instructions", EG_BANK_CFG_STR, NULL, 0, 0, NULL},
    {"retain_chunk_size", EG_BANK_CFG_INT, "3000", 1, 1000000, NULL},
    {"retain_structured_chunk_size", EG_BANK_CFG_INT, NULL, 1, 1000000, NULL},
    {"retain_extract_causal_links", EG_BANK_CFG_BOOL, "true", 0, 0, NULL},
    {"entities_allow_free_form", EG_BANK_CFG_BOOL, "true", 0, 0, NULL},
    {"llm_output_language", EG_BANK_CFG_STR, NULL, 0, 0, NULL},
    {"enable_observations", EG_BANK_CFG_BOOL, "true", 0, 0, NULL},
    {"observations_mission", EG_BANK_CFG_STR, NULL, 0, 0, NULL},
    {"enable_temporal_retrieval", EG_BANK_CFG_BOOL, "true", 0, 0, NULL},
    {"enable_graph_retrieval", EG_BANK_CFG_BOOL, "true", 0, 0, NULL},
    {"enable_reranking", EG_BANK_CFG_BOOL, "true", 0, 0, NULL},
};

#define ENV_PREFIX "HINDSIGHT_API_"

const eg_bank_cfg_key_t *eg_bank_cfg_keys(size_t *n)
{
    *n = EG_ARRAY_SIZE(cfg_keys);
    return cfg_keys;
}

const eg_bank_cfg_key_t *eg_bank_cfg_find(const char *name)
{
    size_t plen = strlen(ENV_PREFIX);
    bool env = strncmp(name, ENV_PREFIX, plen) == 0;

    for (size_t i = 0; i < EG_ARRAY_SIZE(cfg_keys); i++) {
        if (env ? eg_strcaseeq(name + plen, cfg_keys[i].name) : strcmp(name, cfg_keys[i].name) == 0)
            return &cfg_keys[i];
    }
    return NULL;
}

static bool str_in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (eg_strcaseeq(s, *set))
            return true;
    return false;
}

eg_bank_cfg_why_t eg_bank_cfg_coerce(const eg_bank_cfg_key_t *k, const cJSON *in, cJSON **out)
{
    static const char *const truthy[] = {"true", "1", "yes", "on", "t", "y", NULL};
    static const char *const falsy[] = {"false", "0", "no", "off", "f", "n", NULL};
    int64_t v;

    *out = NULL;
    if (cJSON_IsNull(in))
        return EG_BANK_CFG_OK;
    switch (k->type) {
    case EG_BANK_CFG_STR:
        if (!cJSON_IsString(in))
            return EG_BANK_CFG_BAD_TYPE;
        *out = cJSON_CreateString(in->valuestring);
        return EG_BANK_CFG_OK;
    case EG_BANK_CFG_ENUM:
        if (!cJSON_IsString(in))
            return EG_BANK_CFG_BAD_TYPE;
        for (const char *const *p = k->values; *p; p++) {
            if (strcmp(*p, in->valuestring) == 0) {
                *out = cJSON_CreateString(*p);
                return EG_BANK_CFG_OK;
            }
        }
        return EG_BANK_CFG_BAD_CHOICE;
    case EG_BANK_CFG_INT:
        if (cJSON_IsBool(in)) {
            v = cJSON_IsTrue(in) ? 1 : 0;
        } else if (cJSON_IsNumber(in)) {
            if (!isfinite(in->valuedouble) || floor(in->valuedouble) != in->valuedouble)
                return EG_BANK_CFG_FRACTION;
            if (in->valuedouble < -9e15 || in->valuedouble > 9e15)
                return in->valuedouble < 0 ? EG_BANK_CFG_TOO_SMALL : EG_BANK_CFG_TOO_LARGE;
            v = (int64_t)in->valuedouble;
        } else if (cJSON_IsString(in)) {
            if (eg_parse_int64(in->valuestring, INT64_MIN, INT64_MAX, &v) != 0)
                return EG_BANK_CFG_BAD_PARSE;
        } else {
            return EG_BANK_CFG_BAD_TYPE;
        }
        if (v < k->min)
            return EG_BANK_CFG_TOO_SMALL;
        if (v > k->max)
            return EG_BANK_CFG_TOO_LARGE;
        *out = cJSON_CreateNumber((double)v);
        return EG_BANK_CFG_OK;
    case EG_BANK_CFG_BOOL:
        if (cJSON_IsBool(in)) {
            *out = cJSON_CreateBool(cJSON_IsTrue(in));
            return EG_BANK_CFG_OK;
        }
        if (cJSON_IsNumber(in)) {
            if (in->valuedouble != 0 && in->valuedouble != 1)
                return EG_BANK_CFG_BAD_PARSE;
            *out = cJSON_CreateBool(in->valuedouble == 1);
            return EG_BANK_CFG_OK;
        }
        if (cJSON_IsString(in)) {
            if (str_in(in->valuestring, truthy))
                *out = cJSON_CreateTrue();
            else if (str_in(in->valuestring, falsy))
                *out = cJSON_CreateFalse();
            else
                return EG_BANK_CFG_BAD_PARSE;
            return EG_BANK_CFG_OK;
        }
        return EG_BANK_CFG_BAD_TYPE;
    }
    return EG_BANK_CFG_BAD_TYPE;
}

cJSON *eg_bank_config_resolved(const eg_bank_t *bank)
{
    cJSON *cfg = cJSON_CreateObject();

    for (size_t i = 0; i < EG_ARRAY_SIZE(cfg_keys); i++) {
        const cJSON *o =
            bank ? cJSON_GetObjectItemCaseSensitive(bank->overrides, cfg_keys[i].name) : NULL;
        if (o)
            cJSON_AddItemToObject(cfg, cfg_keys[i].name, cJSON_Duplicate(o, true));
        else if (cfg_keys[i].def)
            cJSON_AddItemToObject(cfg, cfg_keys[i].name, cJSON_Parse(cfg_keys[i].def));
        else
            cJSON_AddNullToObject(cfg, cfg_keys[i].name);
    }
    return cfg;
}

/* ---- ids --------------------------------------------------------------------------------- */

bool eg_bank_id_valid(const char *id, size_t len)
{
    const unsigned char *s = (const unsigned char *)id;
    size_t i = 0;

    if (len == 0 || len > EG_BANK_ID_MAX)
        return false;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= len)
            return false;
        for (size_t j = 1; j <= n; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        /* Overlong forms, surrogates, C1 controls and values past U+10FFFF are refused. */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || (cp >= 0x80 && cp < 0xa0))
            return false;
        i += n + 1;
    }
    return true;
}

/* ---- scripts ----------------------------------------------------------------------------- */

/* KEYS[1] bank, KEYS[2] config; ARGV mode (put|patch), bank id, now, has name, name, reset,
 * then config key/value pairs ('' removes). Returns {created, bank fields, config fields}. */
static eg_script_t s_bank_upsert = {
    .name = "bank_upsert",
    .source = "local created = 0\n"
              "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
              "  if ARGV[1] == 'patch' then return redis.error_reply('NOTFOUND bank') end\n"
              "  redis.call('DEL', KEYS[2])\n"
              "  redis.call('HSET', KEYS[1], 'id', ARGV[2], 'name', ARGV[2], 'created', ARGV[3],\n"
              "    'fact_count', 0, 'document_count', 0, 'chunk_count', 0, 'link_count', 0,\n"
              "    'last_document_at', 0, 'last_write_at', 0)\n"
              "  created = 1\n"
              "end\n"
              "if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'name', ARGV[5]) end\n"
              "if ARGV[6] == '1' then redis.call('DEL', KEYS[2]) end\n"
              "for i = 7, #ARGV, 2 do\n"
              "  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[2], ARGV[i])\n"
              "  else redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end\n"
              "end\n"
              "redis.call('HSET', KEYS[1], 'updated', ARGV[3])\n"
              "return {created, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}\n",
};

/* KEYS[1] bank, KEYS[2] config. */
static eg_script_t s_bank_get = {
    .name = "bank_get",
    .source = "if redis.call('EXISTS', KEYS[1]) == 0 then return false end\n"
              "return {0, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}\n",
};

/* KEYS[1] bank, KEYS[2] config, KEYS[3] the bank's operation index, KEYS[4..] the memory keys
 * (eg_mem_bank_keys) and the directive and mental model indexes; ARGV[1] the operation record
 * key prefix, then pairs (index key, record key prefix): the per-directive and per-model keys
 * (engram/directives.h, engram/mental_models.h). Returns the fact count, or -1 when
 * there was no bank. The memory keys and operation records go too, also when the record is
 * already gone (nothing of a bank may outlive it). Operation records are named from the prefix:
 * they share the index's hash tag, so the script stays in one slot.
 * Seam: a bank too large for one script call goes to a queued job that deletes it in batches
 * after the record is gone. */
static eg_script_t s_bank_delete = {
    .name = "bank_delete",
    .source = "local function drop_data()\n"
              "  local ops = redis.call('ZRANGE', KEYS[3], 0, -1)\n"
              "  for i = 1, #ops do redis.call('UNLINK', ARGV[1] .. ops[i]) end\n"
              "  for j = 2, #ARGV, 2 do\n"
              "    local ids = redis.call('ZRANGE', ARGV[j], 0, -1)\n"
              "    for i = 1, #ids do redis.call('UNLINK', ARGV[j + 1] .. ids[i]) end\n"
              "  end\n"
              "  for i = 3, #KEYS do redis.call('UNLINK', KEYS[i]) end\n"
              "end\n"
              "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
              "  redis.call('DEL', KEYS[2])\n"
              "  drop_data()\n"
              "  return -1\n"
              "end\n"
              "local n = tonumber(redis.call('HGET', KEYS[1], 'fact_count') or '0') or 0\n"
              "redis.call('DEL', KEYS[1], KEYS[2])\n"
              "drop_data()\n"
              "return n\n",
};

/* ---- operations -------------------------------------------------------------------------- */

typedef enum { OP_PUT, OP_PATCH, OP_GET, OP_RESET, OP_LIST, OP_DELETE } op_kind_t;

typedef struct bank_op_s {
    op_kind_t kind;
    eg_arena_t arena;
    union {
        eg_bank_fn bank;
        eg_bank_list_fn list;
        eg_bank_deleted_fn deleted;
    } cb;
    void *udata;
    const char *index_key;
    const char *bank_id;
    /* put: the bank read back, answered once the index write is done */
    eg_bank_t bank;
    bool created;
    /* list */
    eg_bank_query_t q;
    eg_bank_t *banks;
    size_t nbanks, pending;
    int err;
    /* delete */
    int64_t deleted;
} bank_op_t;

static bank_op_t *op_new(op_kind_t kind, const char *ws_id, const char *bank_id, void *udata)
{
    bank_op_t *op = eg_xcalloc(1, sizeof(*op));

    op->kind = kind;
    op->udata = udata;
    eg_arena_init(&op->arena);
    op->index_key = eg_key(&op->arena, "w", ws_id, "banks");
    op->bank_id = bank_id ? eg_arena_strdup(&op->arena, bank_id) : NULL;
    return op;
}

static void op_free(bank_op_t *op)
{
    eg_arena_destroy(&op->arena);
    free(op);
}

static void bank_keys(eg_arena_t *a, const char *ws_id, const char *bank_id, const char **bank,
                      const char **config)
{
    const char *tag = eg_arena_printf(a, "%s/%s", ws_id, bank_id);

    *bank = eg_key(a, "b", tag, "bank");
    *config = eg_key(a, "b", tag, "config");
}

static int reply_error(const redisReply *r)
{
    if (strncmp(r->str, "NOTFOUND", 8) == 0)
        return EG_ENOTFOUND;
    eg_log_error("redis bank script error: %s", r->str);
    return EG_EREDIS;
}

static int64_t str_int64(const char *s)
{
    int64_t v = 0;
    return s && eg_parse_int64(s, INT64_MIN, INT64_MAX, &v) == 0 ? v : 0;
}

static int trait(const cJSON *overrides, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(overrides, key);
    if (cJSON_IsNumber(v) && v->valuedouble >= EG_BANK_TRAIT_MIN &&
        v->valuedouble <= EG_BANK_TRAIT_MAX)
        return (int)v->valuedouble;
    return EG_BANK_DISPOSITION;
}

/* Fill b from a script's {created, bank fields, config fields} reply; strings in the arena. */
static int parse_bank(eg_arena_t *a, const redisReply *r, eg_bank_t *b, bool *created)
{
    const redisReply *f, *c;
    cJSON *ov;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return EG_EREDIS;
    f = r->element[1];
    c = r->element[2];
    if (f->type != REDIS_REPLY_ARRAY || c->type != REDIS_REPLY_ARRAY)
        return EG_EREDIS;
    memset(b, 0, sizeof(*b));
    if (created)
        *created = r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 1;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const char *k = f->element[i]->str;
        char *v = eg_arena_strndup(a, f->element[i + 1]->str, f->element[i + 1]->len);

        if (strcmp(k, "id") == 0)
            b->id = v;
        else if (strcmp(k, "name") == 0)
            b->name = v;
        else if (strcmp(k, "created") == 0)
            b->created_ms = str_int64(v);
        else if (strcmp(k, "updated") == 0)
            b->updated_ms = str_int64(v);
        else if (strcmp(k, "fact_count") == 0)
            b->fact_count = str_int64(v);
        else if (strcmp(k, "document_count") == 0)
            b->document_count = str_int64(v);
        else if (strcmp(k, "chunk_count") == 0)
            b->chunk_count = str_int64(v);
        else if (strcmp(k, "link_count") == 0)
            b->link_count = str_int64(v);
        else if (strcmp(k, "last_document_at") == 0)
            b->last_document_ms = str_int64(v);
        else if (strcmp(k, "last_write_at") == 0)
            b->last_write_ms = str_int64(v);
        else if (strcmp(k, "last_consolidated_at") == 0)
            b->last_consolidated_ms = str_int64(v);
    }
    ov = cJSON_CreateObject();
    eg_arena_defer(a, (void (*)(void *))cJSON_Delete, ov);
    for (size_t i = 0; i + 1 < c->elements; i += 2) {
        cJSON *v = cJSON_ParseWithLength(c->element[i + 1]->str, c->element[i + 1]->len);
        if (v)
            cJSON_AddItemToObject(ov, c->element[i]->str, v);
    }
    b->overrides = ov;
    if (b->id == NULL)
        b->id = "";
    if (b->name == NULL)
        b->name = b->id;
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(ov, "reflect_mission");
        b->mission = cJSON_IsString(m) ? m->valuestring : "";
    }
    b->skepticism = trait(ov, "disposition_skepticism");
    b->literalism = trait(ov, "disposition_literalism");
    b->empathy = trait(ov, "disposition_empathy");
    return 0;
}

static void on_index_added(void *udata, int err, redisReply *reply)
{
    bank_op_t *op = udata;

    if (err == 0 && reply->type == REDIS_REPLY_ERROR)
        err = reply_error(reply);
    op->cb.bank(op->udata, err, err ? NULL : &op->bank, op->created);
    op_free(op);
}

static void on_bank_reply(void *udata, int err, redisReply *reply)
{
    bank_op_t *op = udata;

    if (err == 0 && reply->type == REDIS_REPLY_ERROR)
        err = reply_error(reply);
    if (err == 0 && reply->type == REDIS_REPLY_NIL)
        err = EG_ENOTFOUND;
    if (err == 0)
        err = parse_bank(&op->arena, reply, &op->bank, &op->created);
    if (err == 0 && op->kind == OP_PUT) {
        /* The record is durable; now make sure the workspace index lists it. */
        char score[24];
        snprintf(score, sizeof(score), "%lld", (long long)op->bank.created_ms);
        err = eg_store_command(on_index_added, op, "ZADD %s NX %s %s", op->index_key, score,
                               op->bank.id);
        if (err == 0)
            return;
    }
    op->cb.bank(op->udata, err, err ? NULL : &op->bank, op->created);
    op_free(op);
}

static int upsert(op_kind_t kind, const char *ws_id, const char *bank_id, const eg_bank_update_t *u,
                  eg_bank_fn cb, void *udata)
{
    static const eg_bank_update_t none = {0};
    bank_op_t *op;
    const char *keys[2], **argv;
    char now[24];
    size_t argc = 0, max;
    int rc;

    if (!eg_bank_id_valid(bank_id, strlen(bank_id)))
        return EG_EINVAL;
    if (u == NULL)
        u = &none;
    op = op_new(kind, ws_id, bank_id, udata);
    op->cb.bank = cb;
    bank_keys(&op->arena, ws_id, bank_id, &keys[0], &keys[1]);
    max = 2 + 6 + 2 * (u->ncfg + 4);
    argv = eg_arena_calloc(&op->arena, max * sizeof(*argv));
    argv[argc++] = keys[0];
    argv[argc++] = keys[1];
    snprintf(now, sizeof(now), "%lld", (long long)eg_now_ms());
    argv[argc++] = kind == OP_PUT ? "put" : "patch";
    argv[argc++] = bank_id;
    argv[argc++] = now;
    argv[argc++] = u->name ? "1" : "0";
    argv[argc++] = u->name ? u->name : "";
    argv[argc++] = u->cfg_reset ? "1" : "0";
    for (size_t i = 0; i < u->ncfg; i++) {
        char *text = u->cfg_values[i] ? cJSON_PrintUnformatted(u->cfg_values[i]) : NULL;

        argv[argc++] = u->cfg_keys[i];
        if (text) {
            argv[argc++] = eg_arena_strdup(&op->arena, text);
            free(text);
        } else {
            argv[argc++] = "";
        }
    }
    /* The profile fields win over config keys given in the same update. */
    if (u->mission) {
        cJSON *s = cJSON_CreateString(u->mission);
        char *text = cJSON_PrintUnformatted(s);

        argv[argc++] = "reflect_mission";
        argv[argc++] = eg_arena_strdup(&op->arena, text);
        free(text);
        cJSON_Delete(s);
    }
    const struct {
        const char *key;
        int v;
    } traits[] = {{"disposition_skepticism", u->skepticism},
                  {"disposition_literalism", u->literalism},
                  {"disposition_empathy", u->empathy}};
    for (size_t i = 0; i < EG_ARRAY_SIZE(traits); i++) {
        if (traits[i].v == 0)
            continue;
        if (traits[i].v < EG_BANK_TRAIT_MIN || traits[i].v > EG_BANK_TRAIT_MAX) {
            op_free(op);
            return EG_EINVAL;
        }
        argv[argc++] = traits[i].key;
        argv[argc++] = eg_arena_printf(&op->arena, "%d", traits[i].v);
    }
    rc = eg_store_eval(&s_bank_upsert, on_bank_reply, op, 2, (int)argc, argv, NULL);
    if (rc)
        op_free(op);
    return rc;
}

int eg_bank_put(const char *ws_id, const char *bank_id, const eg_bank_update_t *u, eg_bank_fn cb,
                void *udata)
{
    return upsert(OP_PUT, ws_id, bank_id, u, cb, udata);
}

int eg_bank_patch(const char *ws_id, const char *bank_id, const eg_bank_update_t *u, eg_bank_fn cb,
                  void *udata)
{
    return upsert(OP_PATCH, ws_id, bank_id, u, cb, udata);
}

int eg_bank_config_reset(const char *ws_id, const char *bank_id, eg_bank_fn cb, void *udata)
{
    eg_bank_update_t u = {.cfg_reset = true};
    return upsert(OP_RESET, ws_id, bank_id, &u, cb, udata);
}

int eg_bank_get(const char *ws_id, const char *bank_id, eg_bank_fn cb, void *udata)
{
    bank_op_t *op;
    const char *argv[2];
    int rc;

    if (!eg_bank_id_valid(bank_id, strlen(bank_id)))
        return EG_EINVAL;
    op = op_new(OP_GET, ws_id, bank_id, udata);
    op->cb.bank = cb;
    bank_keys(&op->arena, ws_id, bank_id, &argv[0], &argv[1]);
    rc = eg_store_eval(&s_bank_get, on_bank_reply, op, 2, 2, argv, NULL);
    if (rc)
        op_free(op);
    return rc;
}

/* ---- list -------------------------------------------------------------------------------- */

static int cmp_bank(const void *pa, const void *pb)
{
    const eg_bank_t *a = pa, *b = pb;

    if (a->last_write_ms != b->last_write_ms)
        return a->last_write_ms > b->last_write_ms ? -1 : 1;
    if (a->created_ms != b->created_ms)
        return a->created_ms > b->created_ms ? -1 : 1;
    return strcmp(a->id, b->id);
}

static void list_finish(bank_op_t *op)
{
    size_t n = 0, total, off, cnt;

    if (op->err) {
        op->cb.list(op->udata, op->err, NULL, 0, 0);
        op_free(op);
        return;
    }
    /* Keep the matches (records deleted since the index read have no id). */
    for (size_t i = 0; i < op->nbanks; i++) {
        eg_bank_t *b = &op->banks[i];
        if (b->id == NULL)
            continue;
        if (op->q.q && op->q.q[0] && strcasestr(b->id, op->q.q) == NULL &&
            strcasestr(b->name, op->q.q) == NULL)
            continue;
        op->banks[n++] = *b;
    }
    qsort(op->banks, n, sizeof(*op->banks), cmp_bank);
    total = n;
    off = EG_MIN(op->q.offset, total);
    cnt = EG_MIN(op->q.limit, total - off);
    op->cb.list(op->udata, 0, op->banks + off, cnt, total);
    op_free(op);
}

typedef struct list_item_s {
    bank_op_t *op;
    size_t i;
} list_item_t;

static void on_list_bank(void *udata, int err, redisReply *reply)
{
    list_item_t *it = udata;
    bank_op_t *op = it->op;

    if (err == 0 && reply->type == REDIS_REPLY_ERROR)
        err = reply_error(reply);
    if (err == 0 && reply->type != REDIS_REPLY_NIL &&
        parse_bank(&op->arena, reply, &op->banks[it->i], NULL) != 0)
        err = EG_EREDIS;
    if (err && !op->err)
        op->err = err;
    if (--op->pending == 0)
        list_finish(op);
}

static void on_index(void *udata, int err, redisReply *reply)
{
    bank_op_t *op = udata;
    const char *ws_tag;

    if (err == 0 && reply->type != REDIS_REPLY_ARRAY)
        err = reply->type == REDIS_REPLY_ERROR ? reply_error(reply) : EG_EREDIS;
    if (err) {
        op->err = err;
        list_finish(op);
        return;
    }
    op->nbanks = reply->elements;
    op->banks = eg_arena_calloc(&op->arena, (op->nbanks + 1) * sizeof(*op->banks));
    if (op->nbanks == 0) {
        list_finish(op);
        return;
    }
    ws_tag = op->bank_id;         /* list ops keep the workspace id there */
    op->pending = op->nbanks + 1; /* +1 while queuing, so no reply finishes the op early */
    for (size_t i = 0; i < op->nbanks; i++) {
        list_item_t *it = eg_arena_alloc(&op->arena, sizeof(*it));
        char *id = eg_arena_strndup(&op->arena, reply->element[i]->str, reply->element[i]->len);
        const char *argv[2];

        it->op = op;
        it->i = i;
        bank_keys(&op->arena, ws_tag, id, &argv[0], &argv[1]);
        if (eg_store_eval(&s_bank_get, on_list_bank, it, 2, 2, argv, NULL) != 0) {
            if (!op->err)
                op->err = EG_EUNAVAIL;
            op->pending--;
        }
    }
    if (--op->pending == 0)
        list_finish(op);
}

int eg_bank_list(const char *ws_id, const eg_bank_query_t *q, eg_bank_list_fn cb, void *udata)
{
    bank_op_t *op = op_new(OP_LIST, ws_id, ws_id, udata);
    int rc;

    op->cb.list = cb;
    op->q = *q;
    op->q.q = q->q ? eg_arena_strdup(&op->arena, q->q) : NULL;
    rc = eg_store_command(on_index, op, "ZRANGE %s 0 %d", op->index_key, EG_BANK_LIST_SCAN_MAX - 1);
    if (rc)
        op_free(op);
    return rc;
}

/* ---- delete ------------------------------------------------------------------------------ */

static void on_index_removed(void *udata, int err, redisReply *reply)
{
    bank_op_t *op = udata;

    if (err == 0 && reply->type == REDIS_REPLY_ERROR)
        err = reply_error(reply);
    op->cb.deleted(op->udata, err, op->deleted >= 0, op->deleted >= 0 ? op->deleted : 0);
    op_free(op);
}

static void on_deleted(void *udata, int err, redisReply *reply)
{
    bank_op_t *op = udata;

    if (err == 0 && reply->type == REDIS_REPLY_ERROR)
        err = reply_error(reply);
    if (err == 0) {
        op->deleted = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
        /* Always drop the index entry: it may outlive a record deleted by a crashed request. */
        err = eg_store_command(on_index_removed, op, "ZREM %s %s", op->index_key, op->bank_id);
        if (err == 0)
            return;
    }
    op->cb.deleted(op->udata, err, false, 0);
    op_free(op);
}

int eg_bank_delete(const char *ws_id, const char *bank_id, eg_bank_deleted_fn cb, void *udata)
{
    bank_op_t *op;
    const char **argv, **mem, *tag, *dir_index, *dir_prefix, *mm_index, *mm_prefixes[2];
    size_t nmem, argc = 0, nkeys;
    int rc;

    if (!eg_bank_id_valid(bank_id, strlen(bank_id)))
        return EG_EINVAL;
    op = op_new(OP_DELETE, ws_id, bank_id, udata);
    op->cb.deleted = cb;
    mem = eg_mem_bank_keys(&op->arena, ws_id, bank_id, &nmem);
    argv = eg_arena_alloc(&op->arena, (nmem + 4 + 8) * sizeof(*argv));
    bank_keys(&op->arena, ws_id, bank_id, &argv[0], &argv[1]);
    /* Operation records of scope "b", id "<ws>/<bank>" (engram/ops.h). */
    tag = eg_arena_printf(&op->arena, "%s/%s", ws_id, bank_id);
    argv[2] = eg_key(&op->arena, "b", tag, "ops");
    argc = 3;
    for (size_t i = 0; i < nmem; i++)
        argv[argc++] = mem[i];
    eg_directives_bank_keys(&op->arena, ws_id, bank_id, &dir_index, &dir_prefix);
    eg_mm_bank_keys(&op->arena, ws_id, bank_id, &mm_index, mm_prefixes);
    argv[argc++] = dir_index;
    argv[argc++] = mm_index;
    nkeys = argc;
    argv[argc++] = eg_key(&op->arena, "b", tag, "op:");
    argv[argc++] = dir_index;
    argv[argc++] = dir_prefix;
    argv[argc++] = mm_index;
    argv[argc++] = mm_prefixes[0];
    argv[argc++] = mm_index;
    argv[argc++] = mm_prefixes[1];
    rc = eg_store_eval(&s_bank_delete, on_deleted, op, (int)nkeys, (int)argc, argv, NULL);
    if (rc)
        op_free(op);
    return rc;
}
