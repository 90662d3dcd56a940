/* Memory store: documents — read one (record + unit list), delete one with everything made from
 * it, and set the tags of a document and its units.
 *
 * Setting tags rewrites unit records, which a script must not re-encode (mstore_int.h), so it is
 * optimistic: read the document and its units, rebuild their JSON here, then write with a script
 * that first checks that none of them changed since the read; on a conflict, read again. */
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/util.h"
#include "memory/mstore_int.h"

#define EG_MEM_TAGS_ATTEMPTS 8

/* KEYS d, du, u; ARGV doc id, with_units ('1'). Returns nil, or {record, unit list[, unit
 * records in list order]}. */
static eg_script_t s_mem_doc_read = {
    .name = "mem_doc_read",
    .source = "local rec = redis.call('HGET', KEYS[1], ARGV[1])\n"
              "if not rec then return false end\n"
              "local m = redis.call('HGET', KEYS[2], ARGV[1]) or ''\n"
              "if ARGV[2] ~= '1' then return {rec, m} end\n"
              "local ids, recs = {}, {}\n"
              "for id in string.gmatch(m, '([^,]+),') do ids[#ids + 1] = id end\n"
              "for i = 1, #ids, 500 do\n"
              "  local j = math.min(i + 499, #ids)\n"
              "  local part = redis.call('HMGET', KEYS[3], unpack(ids, i, j))\n"
              "  for k = 1, j - i + 1 do recs[#recs + 1] = part[k] end\n"
              "end\n"
              "return {rec, m, recs}\n",
};

/* ARGV now, bank id, doc id. Returns the units deleted. */
static eg_script_t s_mem_doc_delete = {
    .name = "mem_doc_delete",
    .source = EG__MEM_LUA_LIB "local n = doc_drop(ARGV[2], ARGV[3])\n"
                              "if n < 0 then return redis.error_reply('EG_NOTFOUND document') end\n"
                              "finish(ARGV[1], '0')\n"
                              "return n\n",
};

/* ARGV now, doc id, doc record as read, unit list as read, new doc record, then (unit id,
 * record as read, new record) triples. Writes only when nothing changed since the read. Returns
 * the units written. */
static eg_script_t s_mem_doc_tags = {
    .name = "mem_doc_tags",
    .source = EG__MEM_LUA_LIB "local doc = ARGV[2]\n"
                              "if redis.call('HGET', K.d, doc) ~= ARGV[3] or\n"
                              "   (redis.call('HGET', K.du, doc) or '') ~= ARGV[4] then\n"
                              "  return redis.error_reply('EG_CONFLICT document changed')\n"
                              "end\n"
                              "for i = 6, #ARGV, 3 do\n"
                              "  if redis.call('HGET', K.u, ARGV[i]) ~= ARGV[i + 1] then\n"
                              "    return redis.error_reply('EG_CONFLICT unit changed')\n"
                              "  end\n"
                              "end\n"
                              "redis.call('HSET', K.d, doc, ARGV[5])\n"
                              "local n = 0\n"
                              "for i = 6, #ARGV, 3 do\n"
                              "  redis.call('HSET', K.u, ARGV[i], ARGV[i + 2])\n"
                              "  mark(cu, cul, ARGV[i])\n"
                              "  n = n + 1\n"
                              "end\n"
                              "mark(cd, cdl, doc)\n"
                              "finish(ARGV[1], '0')\n"
                              "return n\n",
};

typedef struct doc_op_s {
    eg_arena_t arena;   /* the call's copies: ids, tags, keys */
    eg_arena_t attempt; /* one read-and-write attempt */
    eg_mem_doc_fn get_cb;
    eg_mem_count_fn count_cb;
    void *udata;
    const char *ws_id, *bank_id, *doc_id;
    const char *keys[3]; /* d, du, u */
    const char *const *tags;
    size_t ntags;
    int attempts;
} doc_op_t;

static doc_op_t *op_new(const char *ws_id, const char *bank_id, const char *doc_id, void *udata)
{
    doc_op_t *op = eg_xcalloc(1, sizeof(*op));
    const char *keys[EG__MEM_KEYS];

    eg_arena_init(&op->arena);
    eg_arena_init(&op->attempt);
    op->udata = udata;
    op->ws_id = eg_arena_strdup(&op->arena, ws_id);
    op->bank_id = eg_arena_strdup(&op->arena, bank_id);
    op->doc_id = eg_arena_strdup(&op->arena, doc_id);
    eg__mem_keys(&op->arena, ws_id, bank_id, keys);
    op->keys[0] = keys[EG__MK_D];
    op->keys[1] = keys[EG__MK_DU];
    op->keys[2] = keys[EG__MK_U];
    return op;
}

static void op_free(doc_op_t *op)
{
    eg_arena_destroy(&op->attempt);
    eg_arena_destroy(&op->arena);
    free(op);
}

static bool args_valid(const char *ws_id, const char *bank_id, const char *doc_id)
{
    return ws_id != NULL && ws_id[0] != '\0' && bank_id != NULL &&
           eg_bank_id_valid(bank_id, strlen(bank_id)) && eg__mem_doc_id_valid(doc_id);
}

static int read_doc(doc_op_t *op, bool with_units, eg_reply_fn fn)
{
    const char *argv[5] = {op->keys[0], op->keys[1], op->keys[2], op->doc_id,
                           with_units ? "1" : "0"};

    return eg_store_eval(&s_mem_doc_read, fn, op, 3, 5, argv, NULL);
}

/* Check a doc_read reply: 0 with the parsed document (unit ids from the list), or an error. */
static int doc_from_reply(eg_arena_t *a, int err, const redisReply *r, size_t parts,
                          eg_mem_doc_t *doc)
{
    const redisReply *m;
    const char **ids;
    size_t n = 0;

    if (err != 0)
        return err;
    if (r->type == REDIS_REPLY_ERROR)
        return eg__mem_reply_error(r);
    if (r->type == REDIS_REPLY_NIL)
        return EG_ENOTFOUND;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != parts ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return EG_EREDIS;
    if (eg_mem_doc_parse(a, r->element[0]->str, r->element[0]->len, doc) != 0)
        return EG_EREDIS;
    m = r->element[1];
    for (size_t i = 0; i < m->len; i++)
        n += m->str[i] == ',';
    ids = eg_arena_alloc(a, (n + 1) * sizeof(*ids));
    n = 0;
    for (size_t i = 0, s = 0; i < m->len; i++) {
        if (m->str[i] != ',')
            continue;
        ids[n++] = eg_arena_strndup(a, m->str + s, i - s);
        s = i + 1;
    }
    doc->unit_ids = ids;
    doc->nunits = n;
    return 0;
}

/* ---- get ----------------------------------------------------------------------------------- */

static void on_get(void *udata, int err, redisReply *r)
{
    doc_op_t *op = udata;
    eg_mem_doc_t doc;

    err = doc_from_reply(&op->attempt, err, r, 2, &doc);
    op->get_cb(op->udata, err, err == 0 ? &doc : NULL);
    op_free(op);
}

int eg_mem_doc_get(const char *ws_id, const char *bank_id, const char *doc_id, eg_mem_doc_fn cb,
                   void *udata)
{
    doc_op_t *op;
    int rc;

    if (cb == NULL || !args_valid(ws_id, bank_id, doc_id))
        return EG_EINVAL;
    op = op_new(ws_id, bank_id, doc_id, udata);
    op->get_cb = cb;
    rc = read_doc(op, false, on_get);
    if (rc != 0)
        op_free(op);
    return rc;
}

/* ---- delete -------------------------------------------------------------------------------- */

int eg_mem_doc_delete(const char *ws_id, const char *bank_id, const char *doc_id,
                      eg_mem_count_fn cb, void *udata)
{
    char now[24];
    const char *args[3] = {now, bank_id, doc_id};

    if (cb == NULL || !args_valid(ws_id, bank_id, doc_id))
        return EG_EINVAL;
    snprintf(now, sizeof(now), "%lld", (long long)eg_now_ms());
    return eg__mem_count_eval(&s_mem_doc_delete, ws_id, bank_id, args, NULL, 3, cb, udata);
}

/* ---- tags ---------------------------------------------------------------------------------- */

static void on_tags_read(void *udata, int err, redisReply *r);

static void tags_done(doc_op_t *op, int err, int64_t n)
{
    op->count_cb(op->udata, err, n);
    op_free(op);
}

static void on_tags_written(void *udata, int err, int64_t n)
{
    doc_op_t *op = udata;

    if (err == EG_ECONFLICT && op->attempts < EG_MEM_TAGS_ATTEMPTS) {
        /* Something changed between the read and the write: read again. */
        eg_arena_reset(&op->attempt);
        err = read_doc(op, true, on_tags_read);
        if (err == 0)
            return;
    }
    tags_done(op, err, n);
}

static void on_tags_read(void *udata, int err, redisReply *r)
{
    doc_op_t *op = udata;
    eg_arena_t *a = &op->attempt;
    const redisReply *recs;
    eg_mem_doc_t doc;
    const char **args;
    size_t n = 0;
    int64_t now_us = eg_now_ms() * 1000;

    op->attempts++;
    err = doc_from_reply(a, err, r, 3, &doc);
    if (err == 0 &&
        (r->element[2]->type != REDIS_REPLY_ARRAY || r->element[2]->elements != doc.nunits))
        err = EG_EREDIS;
    if (err != 0) {
        tags_done(op, err, 0);
        return;
    }
    recs = r->element[2];
    args = eg_arena_alloc(a, (5 + 3 * doc.nunits) * sizeof(*args));
    args[n++] = eg_arena_printf(a, "%lld", (long long)(now_us / 1000));
    args[n++] = op->doc_id;
    args[n++] = eg_arena_strndup(a, r->element[0]->str, r->element[0]->len);
    args[n++] = eg_arena_strndup(a, r->element[1]->str, r->element[1]->len);
    doc.tags = op->tags;
    doc.ntags = op->ntags;
    doc.updated_at = now_us;
    args[n++] = eg__mem_print(a, eg_mem_doc_json(&doc));
    for (size_t i = 0; i < doc.nunits; i++) {
        const redisReply *u = recs->element[i];
        eg_mem_unit_t unit;

        /* A listed unit without a record, or one that does not parse, is left alone. */
        if (u->type != REDIS_REPLY_STRING || eg_mem_unit_parse(a, u->str, u->len, &unit) != 0)
            continue;
        unit.tags = op->tags;
        unit.ntags = op->ntags;
        unit.updated_at = now_us;
        args[n++] = doc.unit_ids[i];
        args[n++] = eg_arena_strndup(a, u->str, u->len);
        args[n++] = eg__mem_print(a, eg_mem_unit_json(&unit));
    }
    err = eg__mem_count_eval(&s_mem_doc_tags, op->ws_id, op->bank_id, args, NULL, n,
                             on_tags_written, op);
    if (err != 0)
        tags_done(op, err, 0);
}

int eg_mem_doc_set_tags(const char *ws_id, const char *bank_id, const char *doc_id,
                        const char *const *tags, size_t ntags, eg_mem_count_fn cb, void *udata)
{
    doc_op_t *op;
    const char **copy;
    int rc;

    if (cb == NULL || !args_valid(ws_id, bank_id, doc_id) || ntags > EG_MEM_TAGS_MAX ||
        (ntags > 0 && tags == NULL))
        return EG_EINVAL;
    for (size_t i = 0; i < ntags; i++)
        if (tags[i] == NULL || strlen(tags[i]) > EG_MEM_TAG_MAX)
            return EG_EINVAL;
    op = op_new(ws_id, bank_id, doc_id, udata);
    op->count_cb = cb;
    copy = eg_arena_alloc(&op->arena, (ntags + 1) * sizeof(*copy));
    for (size_t i = 0; i < ntags; i++)
        copy[i] = eg_arena_strdup(&op->arena, tags[i]);
    op->tags = copy;
    op->ntags = ntags;
    rc = read_doc(op, true, on_tags_read);
    if (rc != 0)
        op_free(op);
    return rc;
}
