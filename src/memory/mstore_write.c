/* Memory store: retain's write of one document's batch (eg_mem_write), one Lua script.
 *
 * C validates the batch and builds every record's JSON, the vectors' bytes and each unit's link
 * list (deduplicated: a link between two units of the batch is sent once, held by the unit with
 * the smaller id); the script checks the bank, the write key and the embedding, drops what the
 * write replaces, resolves entities (a new entity whose folded name exists by now is merged into
 * the existing one, and the units' references are rewritten by plain string replacement of the
 * fresh UUID, which appears nowhere else), stores everything, keeps the counters and appends the
 * change entry. All checks come before the first change: Redis does not roll a script back.
 *
 * A temporal link is written to its holder only (the new unit), with a count for the other end in
 * K.lr. Writing the reverse entry too meant reading and rewriting the link list of each of about
 * twenty older units per new unit (lists of 2 KB at 10^5 facts): four fifths of the script's time,
 * and a list grew without bound on units sharing a timestamp with many later ones. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/util.h"
#include "memory/mstore_int.h"

#define EG_MEM_WRITE_KEY_MAX    256
#define EG_MEM_WRITE_KEY_TTL_MS "604800000" /* write keys are remembered for 7 days */

/* ARGV: now, write_key, dim, model, bank_id, doc_id, doc json, replace, then nchunks and
 * (id, json) pairs, nentities and (id, folded, json, mentions, seen_at) tuples, nunits and
 * (id, json, vector, links) tuples. Returns {1} when the write key was done already, else
 * {0, units written, units replaced, links written, entities created, {new id, existing id, ...}}.
 */
static eg_script_t s_mem_write = {
    .name = "mem_write",
    .source = EG__MEM_LUA_LIB
    "local now, wkey, dim, model, bank, doc = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],\n"
    "  ARGV[6]\n"
    "if redis.call('EXISTS', K.bank) == 0 then return redis.error_reply('EG_NOTFOUND bank') end\n"
    "if wkey ~= '' and redis.call('ZSCORE', K.wk, wkey) then return {1} end\n"
    "local nc = tonumber(ARGV[9])\n"
    "local ci = 10\n"
    "local ne = tonumber(ARGV[ci + 2 * nc])\n"
    "local ei = ci + 2 * nc + 1\n"
    "local nu = tonumber(ARGV[ei + 5 * ne])\n"
    "local ui = ei + 5 * ne + 1\n"
    "if nu > 0 then\n"
    "  local b = redis.call('HMGET', K.bank, 'embed_dim', 'embed_model', 'fact_count')\n"
    "  if b[1] and (tonumber(b[3]) or 0) > 0 and (b[1] ~= dim or (b[2] or '') ~= model) then\n"
    "    return redis.error_reply('EG_CONFLICT the bank holds ' .. b[1] .. '-dim vectors of ' ..\n"
    "      (b[2] or '?') .. ', not ' .. dim .. '-dim of ' .. model)\n"
    "  end\n"
    "end\n"
    "local exists = redis.call('HEXISTS', K.d, doc) == 1\n"
    "if exists and ARGV[8] ~= '1' then\n"
    "  return redis.error_reply('EG_CONFLICT document exists')\n"
    "end\n"
    /* Replace: the old document first, then any unit of the batch that exists elsewhere. */
    "local replaced = 0\n"
    "if exists then replaced = doc_drop(bank, doc) end\n"
    "for k = 0, nu - 1 do\n"
    "  if unit_drop(ARGV[ui + 4 * k]) then replaced = replaced + 1 end\n"
    "end\n"
    "local map, pairs_out, created = {}, {}, 0\n"
    "for k = 0, ne - 1 do\n"
    "  local o = ei + 5 * k\n"
    "  local id, folded, seen = ARGV[o], ARGV[o + 1], ARGV[o + 4]\n"
    "  local t = id\n"
    "  if redis.call('HEXISTS', K.e, id) == 0 then\n"
    "    local other = redis.call('HGET', K.en, folded)\n"
    "    if other and other ~= id and redis.call('HEXISTS', K.e, other) == 1 then\n"
    "      t = other\n"
    "      map[#map + 1] = {id, other}\n"
    "      pairs_out[#pairs_out + 1] = id\n"
    "      pairs_out[#pairs_out + 1] = other\n"
    "    else\n"
    "      redis.call('HSET', K.e, id, ARGV[o + 2])\n"
    "      redis.call('HSET', K.en, folded, id)\n"
    "      created = created + 1\n"
    "    end\n"
    "  end\n"
    "  redis.call('HINCRBY', K.es, t .. ':n', ARGV[o + 3])\n"
    "  if seen ~= '' then\n"
    "    local sv = tonumber(seen)\n"
    "    local f = redis.call('HGET', K.es, t .. ':f')\n"
    "    if not f or sv < tonumber(f) then redis.call('HSET', K.es, t .. ':f', seen) end\n"
    "    local l = redis.call('HGET', K.es, t .. ':l')\n"
    "    if not l or sv > tonumber(l) then redis.call('HSET', K.es, t .. ':l', seen) end\n"
    "  end\n"
    "  mark(ce, cel, t)\n"
    "end\n"
    "local members = {}\n"
    "for k = 0, nu - 1 do\n"
    "  local o = ui + 4 * k\n"
    "  local id, rec = ARGV[o], ARGV[o + 1]\n"
    "  for _, p in ipairs(map) do rec = replace_plain(rec, p[1], p[2]) end\n"
    "  redis.call('HSET', K.u, id, rec)\n"
    "  if string.find(rec, '\"fact_type\":\"observation\"', 1, true) then so_link(id, rec, true) end\n"
    "  redis.call('HSET', K.v, id, ARGV[o + 2])\n"
    "  members[#members + 1] = id .. ','\n"
    "  cnt.facts = cnt.facts + 1\n"
    /* Temporal links other units still hold to this id (it was stored before) count again. */
    "  cnt.links = cnt.links + (tonumber(redis.call('HGET', K.lr, id)) or 0)\n"
    "  mark(cu, cul, id)\n"
    "end\n"
    /* Links, now that every unit of the batch is stored: a link whose other end does not
     * exist is skipped; a semantic or causal one is kept on both units, a temporal one only on
     * its holder (K.lr counts it for the other end). */
    "local REV = {causes = 'caused_by', caused_by = 'causes'}\n"
    "local add, order, nl = {}, {}, 0\n"
    "local function put(h, ent)\n"
    "  if not add[h] then add[h] = {}; order[#order + 1] = h end\n"
    "  local t = add[h]\n"
    "  t[#t + 1] = ent\n"
    "end\n"
    /* A unit's own list goes as sent unless a link was dropped; the batch's units have no list
     * yet (a replaced one's went with it), so only other units' lists are read. */
    "local fresh = {}\n"
    "for k = 0, nu - 1 do\n"
    "  local o = ui + 4 * k\n"
    "  local id, ls = ARGV[o], ARGV[o + 3]\n"
    "  local keep, dropped = {}, false\n"
    "  fresh[id] = true\n"
    "  for ent, other, typ, w in string.gmatch(ls, '(([^ ;]+) ([^ ;]+) ([^ ;]+);)') do\n"
    "    if redis.call('HEXISTS', K.u, other) == 1 then\n"
    "      keep[#keep + 1] = ent\n"
    "      if typ == 'temporal' then redis.call('HINCRBY', K.lr, other, 1)\n"
    "      else put(other, id .. ' ' .. (REV[typ] or typ) .. ' ' .. w .. ';') end\n"
    "      nl = nl + 1\n"
    "    else\n"
    "      dropped = true\n"
    "    end\n"
    "  end\n"
    "  if #keep > 0 then put(id, dropped and table.concat(keep) or ls) end\n"
    "end\n"
    "for _, h in ipairs(order) do\n"
    "  local cur = ''\n"
    "  if not fresh[h] then cur = redis.call('HGET', K.l, h) or '' end\n"
    "  redis.call('HSET', K.l, h, cur .. table.concat(add[h]))\n"
    "end\n"
    "cnt.links = cnt.links + nl\n"
    "for k = 0, nc - 1 do\n"
    "  redis.call('HSET', K.c, ARGV[ci + 2 * k], ARGV[ci + 2 * k + 1])\n"
    "end\n"
    "cnt.chunks = cnt.chunks + nc\n"
    "redis.call('HSET', K.d, doc, ARGV[7])\n"
    "redis.call('HSET', K.du, doc, table.concat(members))\n"
    "cnt.docs = cnt.docs + 1\n"
    "mark(cd, cdl, doc)\n"
    "if nu > 0 then redis.call('HSET', K.bank, 'embed_dim', dim, 'embed_model', model) end\n"
    "redis.call('HSET', K.bank, 'last_document_at', now)\n"
    "if wkey ~= '' then\n"
    "  redis.call('ZADD', K.wk, now, wkey)\n"
    "  redis.call('ZREMRANGEBYSCORE', K.wk, '-inf',\n"
    "    '(' .. string.format('%d', tonumber(now) - " EG_MEM_WRITE_KEY_TTL_MS "))\n"
    "end\n"
    "finish(now, '0')\n"
    "return {0, nu, replaced, nl, created, pairs_out}\n",
};

typedef struct write_op_s {
    eg_arena_t arena;
    eg_mem_write_fn cb;
    void *udata;
} write_op_t;

/* One link as sent: held by units[holder]. */
typedef struct send_link_s {
    size_t holder;
    const char *other;
    eg_link_type_t type;
    float weight;
} send_link_t;

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_link(const void *pa, const void *pb)
{
    const send_link_t *a = pa, *b = pb;
    int c;

    if (a->holder != b->holder)
        return a->holder < b->holder ? -1 : 1;
    c = strcmp(a->other, b->other);
    if (c != 0)
        return c;
    return (int)a->type - (int)b->type;
}

/* Index of id in the sorted (id pointer, index) table, or -1. */
typedef struct id_ix_s {
    const char *id;
    size_t i;
} id_ix_t;

static long find_id(const id_ix_t *tab, size_t n, const char *id)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(tab[mid].id, id);

        if (c == 0)
            return (long)tab[mid].i;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static id_ix_t *sorted_ids(eg_arena_t *a, size_t n, const char *(*get)(const void *, size_t),
                           const void *arr)
{
    id_ix_t *t = eg_arena_alloc(a, (n ? n : 1) * sizeof(*t));

    for (size_t i = 0; i < n; i++) {
        t[i].id = get(arr, i);
        t[i].i = i;
    }
    qsort(t, n, sizeof(*t), cmp_str_ptr);
    return t;
}

static const char *unit_id_at(const void *arr, size_t i)
{
    return ((const eg_mem_new_unit_t *)arr)[i].unit.id;
}

static const char *ref_id_at(const void *arr, size_t i)
{
    return ((const eg_mem_entity_ref_t *)arr)[i].id;
}

static bool has_dup(const id_ix_t *t, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (strcmp(t[i - 1].id, t[i].id) == 0)
            return true;
    return false;
}

static bool write_valid(const char *ws_id, const char *bank_id, const eg_mem_write_t *w)
{
    if (ws_id == NULL || ws_id[0] == '\0' || bank_id == NULL ||
        !eg_bank_id_valid(bank_id, strlen(bank_id)) || !eg__mem_doc_id_valid(w->doc.id))
        return false;
    if ((w->nchunks > 0 && w->chunks == NULL) || (w->nunits > 0 && w->units == NULL) ||
        (w->nentities > 0 && w->entities == NULL))
        return false;
    if (w->nunits > 0 && (w->dim == 0 || w->dim > 65536))
        return false;
    if (w->write_key != NULL && strlen(w->write_key) > EG_MEM_WRITE_KEY_MAX)
        return false;
    if (w->doc.ntags > EG_MEM_TAGS_MAX || (w->doc.ntags > 0 && w->doc.tags == NULL))
        return false;
    for (size_t i = 0; i < w->doc.ntags; i++)
        if (w->doc.tags[i] == NULL || strlen(w->doc.tags[i]) > EG_MEM_TAG_MAX)
            return false;
    for (size_t i = 0; i < w->nchunks; i++)
        if (w->chunks[i] == NULL)
            return false;
    for (size_t i = 0; i < w->nunits; i++) {
        const eg_mem_new_unit_t *nu = &w->units[i];

        if (!eg__mem_unit_valid(&nu->unit) || nu->vec == NULL ||
            (nu->nlinks > 0 && nu->links == NULL))
            return false;
        if (nu->unit.document_id != NULL && strcmp(nu->unit.document_id, w->doc.id) != 0)
            return false;
        for (size_t k = 0; k < nu->nlinks; k++) {
            const eg_mem_link_t *l = &nu->links[k];

            if (!eg_uuid_valid(l->other_id) || (unsigned)l->type >= EG_LINK_NTYPES ||
                !(l->weight >= 0.0f && l->weight <= 1.0f))
                return false;
        }
    }
    for (size_t i = 0; i < w->nentities; i++)
        if (!eg_uuid_valid(w->entities[i].id) || w->entities[i].name == NULL)
            return false;
    return true;
}

/* The batch's links, deduplicated, sorted by holder. */
static send_link_t *collect_links(eg_arena_t *a, const eg_mem_write_t *w, const id_ix_t *units,
                                  size_t *n)
{
    size_t total = 0, k = 0, out = 0;
    send_link_t *v;

    for (size_t i = 0; i < w->nunits; i++)
        total += w->units[i].nlinks;
    v = eg_arena_alloc(a, (total ? total : 1) * sizeof(*v));
    for (size_t i = 0; i < w->nunits; i++) {
        const char *self = w->units[i].unit.id;

        for (size_t j = 0; j < w->units[i].nlinks; j++) {
            const eg_mem_link_t *l = &w->units[i].links[j];
            long o = find_id(units, w->nunits, l->other_id);

            if (strcmp(l->other_id, self) == 0)
                continue; /* a unit does not link to itself */
            v[k] = (send_link_t){i, l->other_id, l->type, l->weight};
            if (o >= 0 && strcmp(self, l->other_id) > 0)
                v[k] = (send_link_t){(size_t)o, self, eg_link_type_reverse(l->type), l->weight};
            k++;
        }
    }
    qsort(v, k, sizeof(*v), cmp_link);
    for (size_t i = 0; i < k; i++) {
        if (out > 0 && cmp_link(&v[out - 1], &v[i]) == 0) {
            v[out - 1].weight = EG_MAX(v[out - 1].weight, v[i].weight);
            continue;
        }
        v[out++] = v[i];
    }
    *n = out;
    return v;
}

static void on_write(void *udata, int err, redisReply *r)
{
    write_op_t *op = udata;
    eg_mem_write_result_t res = {0};

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = eg__mem_reply_error(r);
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
                     r->element[0]->type != REDIS_REPLY_INTEGER))
        err = EG_EREDIS;
    if (err == 0 && r->element[0]->integer == 1) {
        res.replayed = true;
    } else if (err == 0) {
        const redisReply *m;

        if (r->elements != 6 || r->element[5]->type != REDIS_REPLY_ARRAY) {
            err = EG_EREDIS;
            goto done;
        }
        res.units_written = (size_t)r->element[1]->integer;
        res.units_replaced = (size_t)r->element[2]->integer;
        res.links_written = (size_t)r->element[3]->integer;
        res.entities_created = (size_t)r->element[4]->integer;
        m = r->element[5];
        res.n_map = m->elements / 2;
        if (res.n_map > 0) {
            const char *(*map)[2] = eg_arena_alloc(&op->arena, res.n_map * sizeof(*map));

            for (size_t i = 0; i < res.n_map; i++) {
                map[i][0] =
                    eg_arena_strndup(&op->arena, m->element[2 * i]->str, m->element[2 * i]->len);
                map[i][1] = eg_arena_strndup(&op->arena, m->element[2 * i + 1]->str,
                                             m->element[2 * i + 1]->len);
            }
            res.id_map = (const char *const(*)[2])map;
        }
    }
done:
    op->cb(op->udata, err, err ? NULL : &res);
    eg_arena_destroy(&op->arena);
    free(op);
}

int eg_mem_write(const char *ws_id, const char *bank_id, const eg_mem_write_t *w,
                 eg_mem_write_fn cb, void *udata)
{
    write_op_t *op;
    eg_arena_t *a;
    id_ix_t *uix, *rix;
    int64_t *mentions;
    const char **argv, **folded;
    size_t *lens, argc = 0, max, nlinks, li = 0, nsent = 0;
    send_link_t *links;
    eg_mem_doc_t doc;
    int64_t chunk_at;
    int rc = EG_EINVAL;

    if (w == NULL || cb == NULL || !write_valid(ws_id, bank_id, w))
        return EG_EINVAL;
    op = eg_xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->udata = udata;
    a = &op->arena;
    eg_arena_init(a);

    /* Unit ids unique; every entity a unit names is one of the refs; refs unique by id and by
     * folded name; mentions counted here so the counters cannot drift from the records. */
    uix = sorted_ids(a, w->nunits, unit_id_at, w->units);
    rix = sorted_ids(a, w->nentities, ref_id_at, w->entities);
    if (has_dup(uix, w->nunits) || has_dup(rix, w->nentities))
        goto fail;
    mentions = eg_arena_calloc(a, (w->nentities + 1) * sizeof(*mentions));
    for (size_t i = 0; i < w->nunits; i++) {
        for (size_t k = 0; k < w->units[i].unit.nentities; k++) {
            long r = find_id(rix, w->nentities, w->units[i].unit.entity_ids[k]);
            if (r < 0)
                goto fail;
            mentions[r]++;
        }
    }
    folded = eg_arena_calloc(a, (w->nentities + 1) * sizeof(*folded));
    for (size_t i = 0; i < w->nentities; i++) {
        folded[i] = eg_mem_entity_fold(a, w->entities[i].name);
        if (folded[i][0] == '\0')
            goto fail;
        for (size_t k = 0; k < i; k++)
            if (mentions[k] > 0 && mentions[i] > 0 && strcmp(folded[k], folded[i]) == 0)
                goto fail;
    }
    links = collect_links(a, w, uix, &nlinks);

    max = EG__MEM_KEYS + 11 + 2 * w->nchunks + 5 * w->nentities + 4 * w->nunits;
    argv = eg_arena_calloc(a, max * sizeof(*argv));
    lens = eg_arena_calloc(a, max * sizeof(*lens));
    eg__mem_keys(a, ws_id, bank_id, argv);
    argc = EG__MEM_KEYS;
    argv[argc++] = eg_arena_printf(a, "%lld", (long long)eg_now_ms());
    argv[argc++] = w->write_key != NULL ? w->write_key : "";
    argv[argc++] = eg_arena_printf(a, "%zu", w->dim);
    argv[argc++] = w->embed_model != NULL ? w->embed_model : "";
    argv[argc++] = bank_id;
    argv[argc++] = w->doc.id;
    doc = w->doc;
    doc.nchunks = w->nchunks;
    argv[argc++] = eg__mem_print(a, eg_mem_doc_json(&doc));
    argv[argc++] = w->replace ? "1" : "0";

    chunk_at = doc.updated_at != EG_MEM_TIME_NONE   ? doc.updated_at
               : doc.created_at != EG_MEM_TIME_NONE ? doc.created_at
                                                    : eg_now_ms() * 1000;
    argv[argc++] = eg_arena_printf(a, "%zu", w->nchunks);
    for (size_t i = 0; i < w->nchunks; i++) {
        eg_mem_chunk_t c = {eg_mem_chunk_id(a, bank_id, w->doc.id, i), w->doc.id, i, w->chunks[i],
                            chunk_at};

        argv[argc++] = c.id;
        argv[argc++] = eg__mem_print(a, eg_mem_chunk_json(&c));
    }

    for (size_t i = 0; i < w->nentities; i++)
        nsent += mentions[i] > 0;
    argv[argc++] = eg_arena_printf(a, "%zu", nsent);
    for (size_t i = 0; i < w->nentities; i++) {
        const eg_mem_entity_ref_t *r = &w->entities[i];
        eg_mem_entity_t e = {r->id, r->name, 0, EG_MEM_TIME_NONE, EG_MEM_TIME_NONE, NULL};

        if (mentions[i] == 0)
            continue; /* nothing of the batch names it */
        argv[argc++] = r->id;
        argv[argc++] = folded[i];
        argv[argc++] = eg__mem_print(a, eg_mem_entity_json(&e));
        argv[argc++] = eg_arena_printf(a, "%lld", (long long)mentions[i]);
        argv[argc++] = eg__mem_time_arg(a, r->seen_at);
    }

    argv[argc++] = eg_arena_printf(a, "%zu", w->nunits);
    for (size_t i = 0; i < w->nunits; i++) {
        eg_mem_unit_t u = w->units[i].unit;
        char *ls, *p;
        size_t need = 1;

        u.document_id = w->doc.id;
        argv[argc++] = u.id;
        argv[argc++] = eg__mem_print(a, eg_mem_unit_json(&u));
        argv[argc] = eg__mem_vec_bytes(a, w->units[i].vec, w->dim);
        lens[argc++] = 4 * w->dim;
        for (size_t k = li; k < nlinks && links[k].holder == i; k++)
            need += strlen(links[k].other) + 32;
        ls = p = eg_arena_alloc(a, need);
        *p = '\0';
        for (; li < nlinks && links[li].holder == i; li++)
            p += snprintf(p, need - (size_t)(p - ls), "%s %s %.6g;", links[li].other,
                          eg_link_type_name(links[li].type), (double)links[li].weight);
        argv[argc++] = ls;
    }

    for (size_t i = 0; i < argc; i++)
        if (lens[i] == 0)
            lens[i] = strlen(argv[i]);
    rc = eg_store_eval(&s_mem_write, on_write, op, EG__MEM_KEYS, (int)argc, argv, lens);
    if (rc == 0)
        return 0;
fail:
    eg_arena_destroy(&op->arena);
    free(op);
    return rc;
}
