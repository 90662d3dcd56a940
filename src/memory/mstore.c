/* Memory store: reads of units, chunks and entities (one round trip each), curated unit edits,
 * unit deletes and clears. Documents are in mstore_doc.c, retain's write in mstore_write.c, the
 * codecs in mstore_codec.c; the keys and the shared Lua are described in mstore.h and
 * mstore_int.h. */
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/util.h"
#include "memory/mstore_int.h"

/* ---- scripts ------------------------------------------------------------------------------- */

/* KEYS u, l; ARGV unit ids. Returns {unit records, link lists}. A temporal link to a unit that is
 * gone stays with its holder (the other end keeps no entry to find it by) and is left out here. */
static eg_script_t s_mem_units_links = {
    .name = "mem_units_links",
    .source =
        "local recs, links = {}, {}\n"
        "local function live(s)\n"
        "  if not s or not string.find(s, ' temporal ', 1, true) then return s end\n"
        "  local out = {}\n"
        "  for ent, other, typ in string.gmatch(s, '(([^ ;]+) ([^ ;]+) [^;]*;)') do\n"
        "    if typ ~= 'temporal' or redis.call('HEXISTS', KEYS[1], other) == 1 then\n"
        "      out[#out + 1] = ent\n"
        "    end\n"
        "  end\n"
        "  return table.concat(out)\n"
        "end\n"
        "for i = 1, #ARGV, 500 do\n"
        "  local j = math.min(i + 499, #ARGV)\n"
        "  local a = redis.call('HMGET', KEYS[1], unpack(ARGV, i, j))\n"
        "  local b = redis.call('HMGET', KEYS[2], unpack(ARGV, i, j))\n"
        "  for k = 1, j - i + 1 do recs[#recs + 1] = a[k]; links[#links + 1] = live(b[k]) end\n"
        "end\n"
        "return {recs, links}\n",
};

/* KEYS e, es; ARGV entity ids. Returns {entity records, {n, f, l per id}}. */
static eg_script_t s_mem_entities = {
    .name = "mem_entities",
    .source = "local recs, st = {}, {}\n"
              "for i = 1, #ARGV, 300 do\n"
              "  local j = math.min(i + 299, #ARGV)\n"
              "  local a = redis.call('HMGET', KEYS[1], unpack(ARGV, i, j))\n"
              "  local f = {}\n"
              "  for k = i, j do\n"
              "    f[#f + 1] = ARGV[k] .. ':n'; f[#f + 1] = ARGV[k] .. ':f'; f[#f + 1] = ARGV[k] "
              ".. ':l'\n"
              "  end\n"
              "  local b = redis.call('HMGET', KEYS[2], unpack(f))\n"
              "  for k = 1, j - i + 1 do recs[#recs + 1] = a[k] end\n"
              "  for k = 1, 3 * (j - i + 1) do st[#st + 1] = b[k] end\n"
              "end\n"
              "return {recs, st}\n",
};

/* ARGV now, unit id, expected updated_at ('' none), record, vector ('' keeps), entity ids
 * (comma-separated), document id ('' none), dim, detach ('1': drop the unit's links and remove
 * it from the observations made from it, see EG__MEM_LUA_LIB), then four per new entity: id,
 * folded name, record, seen ('' none). A new entity whose folded name exists by now is that
 * entity (its id is replaced in the record and the id list, as a retain write merges). Nothing is
 * written unless every check passes. Returns 1. */
static eg_script_t s_mem_unit_replace = {
    .name = "mem_unit_replace",
    .source = EG__MEM_LUA_LIB
    "local id = ARGV[2]\n"
    "if redis.call('EXISTS', K.bank) == 0 then return redis.error_reply('EG_NOTFOUND bank') end\n"
    "local rec = redis.call('HGET', K.u, id)\n"
    "if not rec then return redis.error_reply('EG_NOTFOUND unit') end\n"
    "local o = decode(rec)\n"
    "local cur = o.updated_at\n"
    "if type(cur) ~= 'number' then cur = '' else cur = string.format('%d', cur) end\n"
    "if cur ~= ARGV[3] then return redis.error_reply('EG_CONFLICT unit changed') end\n"
    "local od = o.document_id\n"
    "if type(od) ~= 'string' then od = '' end\n"
    "if od ~= ARGV[7] then return redis.error_reply('EG_INVALID document_id changed') end\n"
    "local urec, ids, make, made = ARGV[4], ARGV[6], {}, {}\n"
    "for k = 10, #ARGV - 3, 4 do\n"
    "  local nid, folded = ARGV[k], ARGV[k + 1]\n"
    "  if redis.call('HEXISTS', K.e, nid) == 0 then\n"
    "    local other = redis.call('HGET', K.en, folded)\n"
    "    if other and other ~= nid and redis.call('HEXISTS', K.e, other) == 1 then\n"
    "      urec = replace_plain(urec, '\"' .. nid .. '\"', '\"' .. other .. '\"')\n"
    "      ids = replace_plain(ids, nid, other)\n"
    "    else\n"
    "      make[#make + 1] = k\n"
    "      made[nid] = true\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local new, list = {}, {}\n"
    "for eid in string.gmatch(ids, '[^,]+') do\n"
    "  if not made[eid] and redis.call('HEXISTS', K.e, eid) == 0 then\n"
    "    return redis.error_reply('EG_INVALID unknown entity ' .. eid)\n"
    "  end\n"
    "  if not new[eid] then new[eid] = true; list[#list + 1] = eid end\n"
    "end\n"
    "if ARGV[5] ~= '' then\n"
    "  local bd = redis.call('HGET', K.bank, 'embed_dim')\n"
    "  if bd and bd ~= ARGV[8] then\n"
    "    return redis.error_reply('EG_CONFLICT the bank holds ' .. bd .. '-dim vectors')\n"
    "  end\n"
    "end\n"
    "local old = {}\n"
    "if type(o.entity_ids) == 'table' then\n"
    "  for _, eid in ipairs(o.entity_ids) do\n"
    "    if type(eid) == 'string' then\n"
    "      old[eid] = true\n"
    "      if not new[eid] then entity_dec(eid) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for _, k in ipairs(make) do\n"
    "  if made[ARGV[k]] and new[ARGV[k]] then\n"
    "    redis.call('HSET', K.e, ARGV[k], ARGV[k + 2])\n"
    "    redis.call('HSET', K.en, ARGV[k + 1], ARGV[k])\n"
    "    if ARGV[k + 3] ~= '' then\n"
    "      redis.call('HSET', K.es, ARGV[k] .. ':f', ARGV[k + 3], ARGV[k] .. ':l', ARGV[k + 3])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for _, eid in ipairs(list) do\n"
    "  if not old[eid] then\n"
    "    redis.call('HINCRBY', K.es, eid .. ':n', 1)\n"
    "    mark(ce, cel, eid)\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', K.u, id, urec)\n"
    "if ARGV[5] ~= '' then redis.call('HSET', K.v, id, ARGV[5]) end\n"
    "if ARGV[9] == '1' then\n"
    "  links_drop(id)\n"
    "  mark(gone, gonel, id)\n"
    "end\n"
    "mark(cu, cul, id)\n"
    "finish(ARGV[1], '0')\n"
    "return 1\n",
};

/* ARGV now, unit ids. Returns the number that existed. */
static eg_script_t s_mem_units_delete = {
    .name = "mem_units_delete",
    .source = EG__MEM_LUA_LIB "local n = 0\n"
                              "for i = 2, #ARGV do\n"
                              "  if unit_drop(ARGV[i]) then n = n + 1 end\n"
                              "end\n"
                              "finish(ARGV[1], '0')\n"
                              "return n\n",
};

/* ARGV now, all ('1' drops every unit, document, chunk and entity), then the type names to
 * delete. A unit's type is read as the first "fact_type" key of its record, which the encoder
 * writes before any caller-controlled object. Returns the number of units deleted. */
static eg_script_t s_mem_clear = {
    .name = "mem_clear",
    .source = EG__MEM_LUA_LIB
    "if redis.call('EXISTS', K.bank) == 0 then return redis.error_reply('EG_NOTFOUND bank') end\n"
    "local now = ARGV[1]\n"
    "if ARGV[2] == '1' then\n"
    "  local n = redis.call('HLEN', K.u)\n"
    "  redis.call('UNLINK', K.u, K.v, K.l, K.d, K.c, K.e, K.es, K.en, K.du, K.lr, K.so)\n"
    "  redis.call('HSET', K.bank, 'fact_count', 0, 'document_count', 0, 'chunk_count', 0,\n"
    "    'link_count', 0)\n"
    "  finish(now, '1')\n"
    "  return n\n"
    "end\n"
    "local want = {}\n"
    "for i = 3, #ARGV do want[ARGV[i]] = true end\n"
    "local ids, cursor = {}, '0'\n"
    "repeat\n"
    "  local r = redis.call('HSCAN', K.u, cursor, 'COUNT', 1000)\n"
    "  cursor = r[1]\n"
    "  local kv = r[2]\n"
    "  for i = 1, #kv, 2 do\n"
    "    local rec = kv[i + 1]\n"
    "    local _, e = string.find(rec, '\"fact_type\":\"', 1, true)\n"
    "    local t\n"
    "    if e then t = string.match(rec, '^([^\"]*)\"', e + 1) else t = decode(rec).fact_type end\n"
    "    if t and want[t] then ids[#ids + 1] = kv[i] end\n"
    "  end\n"
    "until cursor == '0'\n"
    "local n = 0\n"
    "for _, id in ipairs(ids) do\n"
    "  if unit_drop(id) then n = n + 1 end\n"
    "end\n"
    "if n > 0 then finish(now, '1') end\n"
    "return n\n",
};

/* ---- shared op ----------------------------------------------------------------------------- */

typedef struct mem_op_s {
    eg_arena_t arena;
    union {
        eg_mem_units_fn units;
        eg_mem_units_links_fn units_links;
        eg_mem_chunks_fn chunks;
        eg_mem_entities_fn entities;
        eg_mem_count_fn count;
    } cb;
    void *udata;
    size_t n;
} mem_op_t;

static mem_op_t *op_new(void *udata)
{
    mem_op_t *op = eg_xcalloc(1, sizeof(*op));

    eg_arena_init(&op->arena);
    op->udata = udata;
    return op;
}

static void op_free(mem_op_t *op)
{
    eg_arena_destroy(&op->arena);
    free(op);
}

static bool ids_valid(const char *const *ids, size_t n)
{
    if (n > 0 && ids == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!eg_uuid_valid(ids[i]))
            return false;
    return true;
}

static bool bank_valid(const char *ws_id, const char *bank_id)
{
    return ws_id != NULL && ws_id[0] != '\0' && bank_id != NULL &&
           eg_bank_id_valid(bank_id, strlen(bank_id));
}

/* The key of one suffix of a bank, in the arena. */
static const char *bank_key(eg_arena_t *a, const char *ws_id, const char *bank_id, eg__mem_key_t k)
{
    return eg_key(a, "b", eg_arena_printf(a, "%s/%s", ws_id, bank_id), "%s", eg__mem_key_suffix[k]);
}

/* Check a reply that should be an array of n entries (strings or nils). */
static int reply_array(int err, const redisReply *r, size_t n)
{
    if (err != 0)
        return err;
    if (r->type == REDIS_REPLY_ERROR)
        return eg__mem_reply_error(r);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
        return EG_EREDIS;
    return 0;
}

static bool is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING;
}

/* ---- reads --------------------------------------------------------------------------------- */

static const eg_mem_unit_t **parse_units(eg_arena_t *a, const redisReply *r, size_t n)
{
    const eg_mem_unit_t **units = eg_arena_calloc(a, (n + 1) * sizeof(*units));

    for (size_t i = 0; i < n; i++) {
        eg_mem_unit_t *u;

        if (!is_str(r->element[i]))
            continue;
        u = eg_arena_alloc(a, sizeof(*u));
        if (eg_mem_unit_parse(a, r->element[i]->str, r->element[i]->len, u) == 0)
            units[i] = u;
        else
            eg_log_warn("memory: a stored unit record does not parse; treated as missing");
    }
    return units;
}

static void on_units(void *udata, int err, redisReply *r)
{
    mem_op_t *op = udata;

    if (op->n == 0 && err == 0 && r->type == REDIS_REPLY_INTEGER)
        err = 0; /* the no-op round trip of an empty request */
    else
        err = reply_array(err, r, op->n);
    if (err != 0) {
        op->cb.units(op->udata, err, NULL, 0);
    } else {
        const eg_mem_unit_t **units = parse_units(&op->arena, r, op->n);
        op->cb.units(op->udata, 0, units, op->n);
    }
    op_free(op);
}

/* HMGET key ids (or HLEN key when there are none, so the callback still comes from the loop). */
static int hmget(mem_op_t *op, const char *key, const char *const *ids, size_t n, eg_reply_fn fn)
{
    const char **argv = eg_arena_alloc(&op->arena, (n + 2) * sizeof(*argv));
    int rc;

    argv[0] = n > 0 ? "HMGET" : "HLEN";
    argv[1] = key;
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = ids[i];
    op->n = n;
    rc = eg_store_commandv(fn, op, (int)(n + 2), argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

int eg_mem_units_get(const char *ws_id, const char *bank_id, const char *const *ids, size_t n,
                     eg_mem_units_fn cb, void *udata)
{
    mem_op_t *op;

    if (cb == NULL || !bank_valid(ws_id, bank_id) || !ids_valid(ids, n))
        return EG_EINVAL;
    op = op_new(udata);
    op->cb.units = cb;
    return hmget(op, bank_key(&op->arena, ws_id, bank_id, EG__MK_U), ids, n, on_units);
}

static void on_units_links(void *udata, int err, redisReply *r)
{
    mem_op_t *op = udata;
    const eg_mem_unit_t **units;
    const eg_mem_link_t **links;
    size_t *nlinks;

    err = reply_array(err, r, 2);
    if (err == 0 &&
        (r->element[0]->type != REDIS_REPLY_ARRAY || r->element[1]->type != REDIS_REPLY_ARRAY ||
         r->element[0]->elements != op->n || r->element[1]->elements != op->n))
        err = EG_EREDIS;
    if (err != 0) {
        op->cb.units_links(op->udata, err, NULL, NULL, NULL, 0);
        op_free(op);
        return;
    }
    units = parse_units(&op->arena, r->element[0], op->n);
    links = eg_arena_calloc(&op->arena, (op->n + 1) * sizeof(*links));
    nlinks = eg_arena_calloc(&op->arena, (op->n + 1) * sizeof(*nlinks));
    for (size_t i = 0; i < op->n; i++) {
        const redisReply *l = r->element[1]->element[i];
        eg_mem_link_t *v = NULL;

        if (units[i] == NULL || !is_str(l))
            continue;
        if (eg_mem_links_parse(&op->arena, l->str, l->len, &v, &nlinks[i]) != 0) {
            eg_log_warn("memory: a stored link list does not parse; treated as empty");
            nlinks[i] = 0;
            continue;
        }
        links[i] = v;
    }
    op->cb.units_links(op->udata, 0, units, links, nlinks, op->n);
    op_free(op);
}

int eg_mem_units_get_links(const char *ws_id, const char *bank_id, const char *const *ids, size_t n,
                           eg_mem_units_links_fn cb, void *udata)
{
    mem_op_t *op;
    const char **argv;
    int rc;

    if (cb == NULL || !bank_valid(ws_id, bank_id) || !ids_valid(ids, n))
        return EG_EINVAL;
    op = op_new(udata);
    op->cb.units_links = cb;
    op->n = n;
    argv = eg_arena_alloc(&op->arena, (n + 2) * sizeof(*argv));
    argv[0] = bank_key(&op->arena, ws_id, bank_id, EG__MK_U);
    argv[1] = bank_key(&op->arena, ws_id, bank_id, EG__MK_L);
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = ids[i];
    rc = eg_store_eval(&s_mem_units_links, on_units_links, op, 2, (int)(n + 2), argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

static void on_chunks(void *udata, int err, redisReply *r)
{
    mem_op_t *op = udata;
    const eg_mem_chunk_t **chunks;

    if (op->n == 0 && err == 0 && r->type == REDIS_REPLY_INTEGER)
        err = 0; /* the no-op round trip of an empty request */
    else
        err = reply_array(err, r, op->n);
    if (err != 0) {
        op->cb.chunks(op->udata, err, NULL, 0);
        op_free(op);
        return;
    }
    chunks = eg_arena_calloc(&op->arena, (op->n + 1) * sizeof(*chunks));
    for (size_t i = 0; i < op->n; i++) {
        eg_mem_chunk_t *c;

        if (!is_str(r->element[i]))
            continue;
        c = eg_arena_alloc(&op->arena, sizeof(*c));
        if (eg_mem_chunk_parse(&op->arena, r->element[i]->str, r->element[i]->len, c) == 0)
            chunks[i] = c;
    }
    op->cb.chunks(op->udata, 0, chunks, op->n);
    op_free(op);
}

int eg_mem_chunks_get(const char *ws_id, const char *bank_id, const char *const *ids, size_t n,
                      eg_mem_chunks_fn cb, void *udata)
{
    mem_op_t *op;

    if (cb == NULL || !bank_valid(ws_id, bank_id) || (n > 0 && ids == NULL))
        return EG_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == NULL)
            return EG_EINVAL;
    op = op_new(udata);
    op->cb.chunks = cb;
    return hmget(op, bank_key(&op->arena, ws_id, bank_id, EG__MK_C), ids, n, on_chunks);
}

static int64_t reply_int(const redisReply *r, int64_t none)
{
    int64_t v;

    if (!is_str(r) || eg_parse_int64(r->str, INT64_MIN, INT64_MAX, &v) != 0)
        return none;
    return v;
}

static void on_entities(void *udata, int err, redisReply *r)
{
    mem_op_t *op = udata;
    const eg_mem_entity_t **ents;

    err = reply_array(err, r, 2);
    if (err == 0 &&
        (r->element[0]->type != REDIS_REPLY_ARRAY || r->element[1]->type != REDIS_REPLY_ARRAY ||
         r->element[0]->elements != op->n || r->element[1]->elements != 3 * op->n))
        err = EG_EREDIS;
    if (err != 0) {
        op->cb.entities(op->udata, err, NULL, 0);
        op_free(op);
        return;
    }
    ents = eg_arena_calloc(&op->arena, (op->n + 1) * sizeof(*ents));
    for (size_t i = 0; i < op->n; i++) {
        const redisReply *rec = r->element[0]->element[i];
        redisReply **st = r->element[1]->element + 3 * i;
        eg_mem_entity_t *e;

        if (!is_str(rec))
            continue;
        e = eg_arena_alloc(&op->arena, sizeof(*e));
        if (eg_mem_entity_parse(&op->arena, rec->str, rec->len, e) != 0)
            continue;
        e->mention_count = reply_int(st[0], 0);
        e->first_seen = reply_int(st[1], EG_MEM_TIME_NONE);
        e->last_seen = reply_int(st[2], EG_MEM_TIME_NONE);
        ents[i] = e;
    }
    op->cb.entities(op->udata, 0, ents, op->n);
    op_free(op);
}

int eg_mem_entities_get(const char *ws_id, const char *bank_id, const char *const *ids, size_t n,
                        eg_mem_entities_fn cb, void *udata)
{
    mem_op_t *op;
    const char **argv;
    int rc;

    if (cb == NULL || !bank_valid(ws_id, bank_id) || !ids_valid(ids, n))
        return EG_EINVAL;
    op = op_new(udata);
    op->cb.entities = cb;
    op->n = n;
    argv = eg_arena_alloc(&op->arena, (n + 2) * sizeof(*argv));
    argv[0] = bank_key(&op->arena, ws_id, bank_id, EG__MK_E);
    argv[1] = bank_key(&op->arena, ws_id, bank_id, EG__MK_ES);
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = ids[i];
    rc = eg_store_eval(&s_mem_entities, on_entities, op, 2, (int)(n + 2), argv, NULL);
    if (rc != 0)
        op_free(op);
    return rc;
}

/* ---- changes ------------------------------------------------------------------------------- */

static void on_count(void *udata, int err, redisReply *r)
{
    mem_op_t *op = udata;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = eg__mem_reply_error(r);
    if (err == 0 && r->type != REDIS_REPLY_INTEGER)
        err = EG_EREDIS;
    op->cb.count(op->udata, err, err == 0 ? r->integer : 0);
    op_free(op);
}

/* The argument vector of a mutating script: the bank's keys, then room for nargs arguments. */
static const char **script_argv(mem_op_t *op, const char *ws_id, const char *bank_id, size_t nargs,
                                size_t **lens)
{
    const char **argv = eg_arena_calloc(&op->arena, (EG__MEM_KEYS + nargs) * sizeof(*argv));

    eg__mem_keys(&op->arena, ws_id, bank_id, argv);
    if (lens != NULL)
        *lens = eg_arena_calloc(&op->arena, (EG__MEM_KEYS + nargs) * sizeof(**lens));
    return argv;
}

int eg__mem_count_eval(eg_script_t *script, const char *ws_id, const char *bank_id,
                       const char *const *args, const size_t *arg_lens, size_t nargs,
                       eg_mem_count_fn cb, void *udata)
{
    mem_op_t *op = op_new(udata);
    size_t *lens;
    const char **argv = script_argv(op, ws_id, bank_id, nargs, &lens);
    int rc;

    op->cb.count = cb;
    for (size_t i = 0; i < EG__MEM_KEYS + nargs; i++) {
        if (i >= EG__MEM_KEYS)
            argv[i] = args[i - EG__MEM_KEYS];
        lens[i] = i >= EG__MEM_KEYS && arg_lens != NULL && arg_lens[i - EG__MEM_KEYS] != 0
                      ? arg_lens[i - EG__MEM_KEYS]
                      : strlen(argv[i]);
    }
    rc = eg_store_eval(script, on_count, op, EG__MEM_KEYS, (int)(EG__MEM_KEYS + nargs), argv, lens);
    if (rc != 0)
        op_free(op);
    return rc;
}

int eg_mem_unit_replace(const char *ws_id, const char *bank_id, const eg_mem_unit_t *u,
                        const float *vec, size_t dim, int64_t expect_updated_at, eg_mem_count_fn cb,
                        void *udata)
{
    return eg_mem_unit_replace_ents(ws_id, bank_id, u, vec, dim, expect_updated_at, NULL, 0, cb,
                                    udata);
}

int eg_mem_unit_replace_ents(const char *ws_id, const char *bank_id, const eg_mem_unit_t *u,
                             const float *vec, size_t dim, int64_t expect_updated_at,
                             const eg_mem_entity_ref_t *news, size_t nnew, eg_mem_count_fn cb,
                             void *udata)
{
    return eg_mem_unit_curate(ws_id, bank_id, u, vec, dim, expect_updated_at, news, nnew, false, cb,
                              udata);
}

int eg_mem_unit_curate(const char *ws_id, const char *bank_id, const eg_mem_unit_t *u,
                       const float *vec, size_t dim, int64_t expect_updated_at,
                       const eg_mem_entity_ref_t *news, size_t nnew, bool detach,
                       eg_mem_count_fn cb, void *udata)
{
    eg_arena_t a;
    const char **args;
    size_t *lens, elen = 0, nargs = 9 + 4 * nnew;
    char *ents, *p;
    int rc;

    if (u == NULL || cb == NULL || !bank_valid(ws_id, bank_id) || !eg__mem_unit_valid(u) ||
        (vec != NULL && (dim == 0 || dim > 65536)) ||
        (u->document_id != NULL && !eg__mem_doc_id_valid(u->document_id)) ||
        (nnew > 0 && news == NULL) || nnew > EG_MEM_ENTITIES_MAX)
        return EG_EINVAL;
    for (size_t i = 0; i < nnew; i++)
        if (!eg_uuid_valid(news[i].id) || news[i].name == NULL || news[i].name[0] == '\0')
            return EG_EINVAL;
    eg_arena_init(&a);
    args = eg_arena_alloc(&a, nargs * sizeof(*args));
    lens = eg_arena_calloc(&a, nargs * sizeof(*lens));
    for (size_t i = 0; i < u->nentities; i++)
        elen += strlen(u->entity_ids[i]) + 1;
    ents = p = eg_arena_alloc(&a, elen + 1);
    for (size_t i = 0; i < u->nentities; i++)
        p += sprintf(p, "%s%s", i ? "," : "", u->entity_ids[i]);
    *p = '\0';
    args[0] = eg_arena_printf(&a, "%lld", (long long)eg_now_ms());
    args[1] = u->id;
    args[2] = eg__mem_time_arg(&a, expect_updated_at);
    args[3] = eg__mem_print(&a, eg_mem_unit_json(u));
    args[4] = vec != NULL ? eg__mem_vec_bytes(&a, vec, dim) : "";
    lens[4] = vec != NULL ? 4 * dim : 0;
    args[5] = ents;
    args[6] = u->document_id != NULL ? u->document_id : "";
    args[7] = eg_arena_printf(&a, "%zu", dim);
    args[8] = detach ? "1" : "0";
    for (size_t i = 0; i < nnew; i++) {
        eg_mem_entity_t e = {news[i].id, news[i].name, 0, EG_MEM_TIME_NONE, EG_MEM_TIME_NONE, NULL};
        const char *folded = eg_mem_entity_fold(&a, news[i].name);

        args[9 + 4 * i] = news[i].id;
        args[10 + 4 * i] = folded[0] ? folded : news[i].name;
        args[11 + 4 * i] = eg__mem_print(&a, eg_mem_entity_json(&e));
        args[12 + 4 * i] = eg__mem_time_arg(&a, news[i].seen_at);
    }
    rc = eg__mem_count_eval(&s_mem_unit_replace, ws_id, bank_id, args, lens, nargs, cb, udata);
    eg_arena_destroy(&a);
    return rc;
}

int eg_mem_units_delete(const char *ws_id, const char *bank_id, const char *const *ids, size_t n,
                        eg_mem_count_fn cb, void *udata)
{
    eg_arena_t a;
    const char **args;
    int rc;

    if (cb == NULL || !bank_valid(ws_id, bank_id) || !ids_valid(ids, n))
        return EG_EINVAL;
    eg_arena_init(&a);
    args = eg_arena_alloc(&a, (n + 1) * sizeof(*args));
    args[0] = eg_arena_printf(&a, "%lld", (long long)eg_now_ms());
    for (size_t i = 0; i < n; i++)
        args[1 + i] = ids[i];
    rc = eg__mem_count_eval(&s_mem_units_delete, ws_id, bank_id, args, NULL, n + 1, cb, udata);
    eg_arena_destroy(&a);
    return rc;
}

int eg_mem_clear(const char *ws_id, const char *bank_id, unsigned types_mask, eg_mem_count_fn cb,
                 void *udata)
{
    const unsigned all = (1u << EG_FACT_NTYPES) - 1;
    const char *args[2 + EG_FACT_NTYPES];
    char now[24];
    size_t n = 0;

    if (cb == NULL || !bank_valid(ws_id, bank_id) || (types_mask & all) == 0)
        return EG_EINVAL;
    snprintf(now, sizeof(now), "%lld", (long long)eg_now_ms());
    args[n++] = now;
    args[n++] = (types_mask & all) == all ? "1" : "0";
    for (unsigned t = 0; t < EG_FACT_NTYPES; t++)
        if (types_mask & (1u << t))
            args[n++] = eg_fact_type_name((eg_fact_type_t)t);
    return eg__mem_count_eval(&s_mem_clear, ws_id, bank_id, args, NULL, n, cb, udata);
}

const char **eg_mem_bank_keys(eg_arena_t *a, const char *ws_id, const char *bank_id, size_t *n)
{
    const char **keys = eg_arena_alloc(a, EG__MEM_KEYS * sizeof(*keys));

    eg__mem_keys(a, ws_id, bank_id, keys);
    /* Everything but the bank record itself, which bank.c owns. */
    *n = EG__MEM_KEYS - 1;
    return keys + 1;
}
