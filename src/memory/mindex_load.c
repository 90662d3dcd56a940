/* Memory index: loading a bank from Redis and keeping it current with the bank's change stream.
 *
 * A round is what one acquire waits for. The first round of a bank is a full load:
 *   1. INIT (one script): the bank's created stamp, the change stream's position, the number of
 *      units and the vector dimension. The stream position is read before anything else, so every
 *      write that the scan below misses or sees half-done comes after it in the stream.
 *   2. HSCAN of :e, :es, :d, :u, :v, :l in that order (entities before the units naming them,
 *      units before their vectors and links), 250 to 1000 fields a call (phase_count). Replies
 *      are copied into slices and applied by the registry's idle handler under a time budget of
 *      about 1 ms per loop turn, so a 10^5-unit bank never blocks the loop; at most two slices
 *      wait, which bounds the memory a load holds beyond the index and keeps the next HSCAN in
 *      flight while one is applied. A large bank's time orders are then sorted on the thread pool
 *      (sort_work), while the new index is still private to the load.
 *   3. Catch-up: the SYNC rounds below from the remembered position; the new index replaces the
 *      old one (a reload keeps serving nobody meanwhile: its waiters wait).
 * Every later round is one SYNC script: it checks that the bank still exists with the same created
 * stamp and that no entry after our position was trimmed away (see sync_script), then returns the
 * entries after our position (up to ~EG_MX_SYNC_IDS changed ids per call) with the current
 * records of every id they name, read in the same atomic step. A missing record is a deletion. A
 * reset entry, a re-created bank, a gap, or a vector of another dimension make the round a full
 * load instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/embed.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/util.h"
#include "memory/mindex_int.h"

#define EG_MX_SYNC_IDS  "256"  /* changed ids re-read per SYNC call (whole entries) ... */
#define EG_MX_SYNC_MAX  "4096" /* ... unless one entry names more: then reload instead */
#define EG_MX_QUEUE_MAX 2
#define EG_MX_WORK_MIN  2048 /* units from which the time orders are sorted off the loop */

enum { PH_E, PH_ES, PH_D, PH_U, PH_V, PH_L, PH_N };
static const int phase_key[PH_N] = {EG__MXK_E, EG__MXK_ES, EG__MXK_D,
                                    EG__MXK_U, EG__MXK_V,  EG__MXK_L};
/* HSCAN COUNT per phase: about 0.4 MB a reply (a unit record is ~0.5 kB, a 384-dim vector 1.5 kB),
 * since a reply is parsed and copied in one go on the loop. */
static const char *const phase_count[PH_N] = {"1000", "1000", "500", "500", "250", "1000"};

/* One HSCAN reply, copied: n field/value pairs. */
typedef struct slice_s {
    struct slice_s *next;
    int phase;
    size_t n, pos;
    const char **f, **v;
    size_t *vlen;
} slice_t;

struct eg__mx_load_s {
    eg__mx_bank_t *b;
    eg_mindex_t *ix; /* being built */
    char created[32], last_id[48];
    int64_t last_ord;
    int phase;
    char cursor[32];
    bool scanned; /* every key scanned */
    bool held;    /* the next HSCAN waits for the queue to shrink */
    slice_t *head, *tail;
    size_t nq;
    bool active; /* on the list of loads with slices to apply */
    eg__mx_load_t *anext, *aprev;
    eg_arena_t arena;
    uv_work_t work; /* sorting the time orders on the thread pool */
    bool working;   /* ... in progress */
    bool orphan;    /* dropped meanwhile: freed when the work returns */
};

static eg__mx_load_t *active_loads;

/* KEYS: bank, x, u, v. Returns {0} when the bank does not exist, else {1, created, the stream's
 * last generated id (even when trimmed away), its ordinal (entries ever added), units, dim}. */
static eg_script_t init_script = {
    .name = "mindex_init",
    .source = "local created = redis.call('HGET', KEYS[1], 'created')\n"
              "if not created then return {0} end\n"
              "local last, added = '0-0', 0\n"
              "local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[2])\n"
              "if ok then\n"
              "  for i = 1, #info, 2 do\n"
              "    if info[i] == 'last-generated-id' then last = info[i + 1]\n"
              "    elseif info[i] == 'entries-added' then added = info[i + 1] end\n"
              "  end\n"
              "end\n"
              "local dim = tonumber(redis.call('HGET', KEYS[1], 'embed_dim') or '0') or 0\n"
              "if dim == 0 then\n"
              "  local f = redis.call('HRANDFIELD', KEYS[4])\n"
              "  if f then dim = math.floor(redis.call('HSTRLEN', KEYS[4], f) / 4) end\n"
              "end\n"
              "return {1, created, last, added, redis.call('HLEN', KEYS[3]), dim}\n",
};

/* KEYS: bank, x, u, v, l, e, es, d. ARGV: last id, its ordinal, created stamp, ids per call
 * (entries are taken whole until this many ids are named), ids at most (more in one call:
 * reload). Returns {'gone'}, {'reload'} or {'ok', last id, more, its ordinal, unit ids, units,
 * vectors, links, entity ids, entities, entity stats (n, f, l per id), document ids, documents}.
 *
 * Gaps: trimming drops the oldest entries without moving max-deleted-entry-id (only XDEL does),
 * but the stream then holds exactly the last `length` of the `entries-added` entries, so entries
 * after ours were trimmed iff entries-added - length > our ordinal. An XDEL trips one check or
 * the other; both only cost a reload. */
static eg_script_t sync_script = {
    .name = "mindex_sync",
    .source =
        "local created = redis.call('HGET', KEYS[1], 'created')\n"
        "if not created then return {'gone'} end\n"
        "if created ~= ARGV[3] then return {'reload'} end\n"
        "local last, ord, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])\n"
        "local function idn(s)\n"
        "  local a, b = string.match(s, '^(%d+)-(%d+)$')\n"
        "  return tonumber(a) or 0, tonumber(b) or 0\n"
        "end\n"
        "local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[2])\n"
        "if not ok then\n"
        "  if last ~= '0-0' then return {'reload'} end\n"
        "  return {'ok', last, 0, ord, {}, {}, {}, {}, {}, {}, {}, {}, {}}\n"
        "end\n"
        "local length, added = 0, 0\n"
        "for i = 1, #info, 2 do\n"
        "  local k = info[i]\n"
        "  if k == 'length' then length = info[i + 1]\n"
        "  elseif k == 'entries-added' then added = info[i + 1]\n"
        "  elseif k == 'max-deleted-entry-id' then\n"
        "    local dm, ds = idn(info[i + 1])\n"
        "    local lm, ls = idn(last)\n"
        "    if dm > lm or (dm == lm and ds > ls) then return {'reload'} end\n"
        "  end\n"
        "end\n"
        "if added - length > ord then return {'reload'} end\n"
        "local batch = 64\n"
        "local ents = redis.call('XRANGE', KEYS[2], '(' .. last, '+', 'COUNT', batch)\n"
        "local us, ul, es, el, ds, dl, n, more = {}, {}, {}, {}, {}, {}, 0, 0\n"
        "local function add(set, list, id)\n"
        "  if id ~= '' and not set[id] then set[id] = true; list[#list + 1] = id; n = n + 1 end\n"
        "end\n"
        "for i, ent in ipairs(ents) do\n"
        "  local f = ent[2]\n"
        "  for j = 1, #f, 2 do\n"
        "    local k, v = f[j], f[j + 1]\n"
        "    if k == 'reset' then return {'reload'}\n"
        "    elseif k == 'u' then for id in string.gmatch(v, '[^,]+') do add(us, ul, id) end\n"
        "    elseif k == 'e' then for id in string.gmatch(v, '[^,]+') do add(es, el, id) end\n"
        "    elseif k == 'd' then for id in string.gmatch(v, '[^\\n]+') do add(ds, dl, id) end\n"
        "    end\n"
        "  end\n"
        "  last = ent[1]\n"
        "  ord = ord + 1\n"
        "  if n >= max and i < #ents then more = 1; break end\n"
        "end\n"
        "if #ents == batch then more = 1 end\n"
        "if n > tonumber(ARGV[5]) then return {'reload'} end\n"
        "local function hmget(key, ids)\n"
        "  local out = {}\n"
        "  for i = 1, #ids, 1000 do\n"
        "    local part = redis.call('HMGET', key, unpack(ids, i, math.min(i + 999, #ids)))\n"
        "    for j = 1, #part do out[#out + 1] = part[j] end\n"
        "  end\n"
        "  return out\n"
        "end\n"
        "local sf = {}\n"
        "for _, id in ipairs(el) do\n"
        "  sf[#sf + 1] = id .. ':n'; sf[#sf + 1] = id .. ':f'; sf[#sf + 1] = id .. ':l'\n"
        "end\n"
        "local uv, vv, lv = hmget(KEYS[3], ul), hmget(KEYS[4], ul), hmget(KEYS[5], ul)\n"
        "local ev, sv, dv = hmget(KEYS[6], el), hmget(KEYS[7], sf), hmget(KEYS[8], dl)\n"
        "return {'ok', last, more, ord, ul, uv, vv, lv, el, ev, sv, dl, dv}\n",
};

static int load_start(eg__mx_bank_t *b);
static int sync_send(eg__mx_bank_t *b);

/* ---- helpers ----------------------------------------------------------------------------------
 */

static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* A stored vector (dim float32 little-endian) as floats in the arena; NULL when its size is not
 * dim floats. */
static const float *vec_decode(eg_arena_t *a, const char *s, size_t len, size_t dim)
{
    float *v;

    if (!s || len != dim * 4)
        return NULL;
    v = eg_arena_alloc(a, dim * sizeof(float));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(v, s, len);
#else
    for (size_t i = 0; i < dim; i++) {
        const unsigned char *p = (const unsigned char *)s + 4 * i;
        uint32_t u = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&v[i], &u, 4);
    }
#endif
    return v;
}

static int64_t int_or(const char *s, int64_t def)
{
    int64_t v;
    return s && eg_parse_int64(s, INT64_MIN, INT64_MAX, &v) == 0 ? v : def;
}

/* The round failed: drop any load, tell the registry. */
static void fail(eg__mx_bank_t *b, int err)
{
    eg__mx_load_drop(b);
    eg__mx_settled(b, err, 0);
}

/* A reply arrived: false (and the round failed) when it is unusable or the bank is cancelled. */
static bool reply_ok(eg__mx_bank_t *b, int err, const redisReply *r, const char *what)
{
    b->inflight = false;
    if (b->cancel)
        err = EG_ECANCELED;
    else if (!err && r->type == REDIS_REPLY_ERROR) {
        eg_log_error("mindex %s of %s: %s", what, b->tag, r->str);
        err = EG_EREDIS;
    }
    if (err)
        fail(b, err);
    return err == 0;
}

/* ---- applying records --------------------------------------------------------------------- */

static void put_entity(eg_mindex_t *ix, eg_arena_t *a, const char *json, size_t len,
                       const char *const *stats)
{
    eg_mem_entity_t e;

    if (eg_mem_entity_parse(a, json, len, &e) != 0) {
        eg_log_warn("mindex: skipping a malformed entity record");
        return;
    }
    e.mention_count = stats ? int_or(stats[0], 0) : 0;
    e.first_seen = stats ? int_or(stats[1], EG_MEM_TIME_NONE) : EG_MEM_TIME_NONE;
    e.last_seen = stats ? int_or(stats[2], EG_MEM_TIME_NONE) : EG_MEM_TIME_NONE;
    eg_mindex_put_entity(ix, &e);
}

static void put_doc(eg_mindex_t *ix, eg_arena_t *a, const char *json, size_t len)
{
    eg_mem_doc_t d;

    if (eg_mem_doc_parse(a, json, len, &d) != 0)
        eg_log_warn("mindex: skipping a malformed document record");
    else
        eg_mindex_put_doc(ix, &d);
}

/* Put a unit with its vector (NULL keeps / zeros) and links (NULL: none). */
static void put_unit(eg_mindex_t *ix, eg_arena_t *a, const char *json, size_t len, const float *vec,
                     const char *links, size_t links_len)
{
    eg_mem_unit_t u;
    eg_mem_link_t *l = NULL;
    size_t nl = 0;

    if (eg_mem_unit_parse(a, json, len, &u) != 0) {
        eg_log_warn("mindex: skipping a malformed unit record");
        return;
    }
    if (links && eg_mem_links_parse(a, links, links_len, &l, &nl) != 0) {
        eg_log_warn("mindex: unit %s has malformed links", u.id);
        l = NULL;
        nl = 0;
    }
    eg_mindex_put_unit(ix, &u, vec, l, nl);
}

/* One entry of a scan slice. */
static void apply_entry(eg__mx_load_t *L, int phase, const char *f, const char *v, size_t vlen)
{
    eg_mindex_t *ix = L->ix;
    eg_mem_link_t *links;
    size_t nl;
    uint32_t slot;
    const char *colon;

    switch (phase) {
    case PH_E:
        put_entity(ix, &L->arena, v, vlen, NULL);
        break;
    case PH_ES:
        /* "<entity id>:n|f|l" -> integer */
        if ((colon = strrchr(f, ':')) != NULL && colon[1] && !colon[2]) {
            char *id = eg_arena_strndup(&L->arena, f, (size_t)(colon - f));
            int64_t x = int_or(v, colon[1] == 'n' ? 0 : EG_MEM_TIME_NONE);
            eg__mx_entity_stat(ix, id, colon[1], x);
        }
        break;
    case PH_D:
        put_doc(ix, &L->arena, v, vlen);
        break;
    case PH_U:
        put_unit(ix, &L->arena, v, vlen, NULL, NULL, 0);
        break;
    case PH_V:
        if (eg_mindex_find(ix, f, &slot) == 0)
            eg__mx_set_vector(ix, slot, vec_decode(&L->arena, v, vlen, ix->dim));
        break;
    case PH_L:
        if (eg_mindex_find(ix, f, &slot) == 0 &&
            eg_mem_links_parse(&L->arena, v, vlen, &links, &nl) == 0)
            eg__mx_links_set(ix, slot, links, nl);
        break;
    }
    eg_arena_reset(&L->arena);
}

/* Apply a SYNC reply's records; false when a vector has another dimension (reload). */
static bool apply_sync(eg__mx_bank_t *b, const redisReply *r)
{
    const redisReply *ul = r->element[4], *uv = r->element[5], *vv = r->element[6],
                     *lv = r->element[7], *el = r->element[8], *ev = r->element[9],
                     *sv = r->element[10], *dl = r->element[11], *dv = r->element[12];
    eg_mindex_t *ix = b->ix;
    eg_arena_t a;

    if (ul->elements != uv->elements || ul->elements != vv->elements ||
        ul->elements != lv->elements || el->elements != ev->elements ||
        el->elements * 3 != sv->elements || dl->elements != dv->elements)
        return true; /* not our script's shape: nothing to apply */
    for (size_t i = 0; i < ul->elements; i++)
        if (is_str(uv->element[i]) && is_str(vv->element[i]) && vv->element[i]->len != ix->dim * 4)
            return false;
    eg_arena_init(&a);
    for (size_t i = 0; i < el->elements; i++) {
        const char *stats[3];
        if (!is_str(el->element[i]))
            continue;
        if (!is_str(ev->element[i])) {
            eg_mindex_remove_entity(ix, el->element[i]->str);
            continue;
        }
        for (int k = 0; k < 3; k++)
            stats[k] = is_str(sv->element[3 * i + k]) ? sv->element[3 * i + k]->str : NULL;
        put_entity(ix, &a, ev->element[i]->str, ev->element[i]->len, stats);
        eg_arena_reset(&a);
    }
    for (size_t i = 0; i < dl->elements; i++) {
        if (is_str(dv->element[i]))
            put_doc(ix, &a, dv->element[i]->str, dv->element[i]->len);
        eg_arena_reset(&a);
    }
    for (size_t i = 0; i < ul->elements; i++) {
        const redisReply *u = uv->element[i], *v = vv->element[i], *l = lv->element[i];
        if (!is_str(ul->element[i]))
            continue;
        if (!is_str(u)) {
            eg_mindex_remove_unit(ix, ul->element[i]->str);
            continue;
        }
        put_unit(ix, &a, u->str, u->len, is_str(v) ? vec_decode(&a, v->str, v->len, ix->dim) : NULL,
                 is_str(l) ? l->str : NULL, is_str(l) ? l->len : 0);
        eg_arena_reset(&a);
    }
    for (size_t i = 0; i < dl->elements; i++)
        if (is_str(dl->element[i]) && !is_str(dv->element[i]))
            eg_mindex_remove_doc(ix, dl->element[i]->str);
    eg_arena_destroy(&a);
    return true;
}

/* ---- sync rounds ---------------------------------------------------------------------------- */

static void on_sync(void *udata, int err, redisReply *r)
{
    eg__mx_bank_t *b = udata;
    const char *st;

    if (!reply_ok(b, err, r, "sync"))
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !is_str(r->element[0])) {
        fail(b, EG_EREDIS);
        return;
    }
    st = r->element[0]->str;
    if (strcmp(st, "gone") == 0) {
        /* The bank was deleted: serve an empty index until it exists again. */
        if (b->created[0] || eg_mindex_count(b->ix) || eg_mindex_entities(b->ix) ||
            eg_mindex_docs(b->ix)) {
            size_t dim = b->ix->dim;
            eg_mindex_free(b->ix);
            b->ix = eg_mindex_new(dim);
            b->dirty = true;
        }
        b->created[0] = '\0';
        b->last_ord = 0;
        snprintf(b->last_id, sizeof(b->last_id), "0-0");
        eg__mx_settled(b, 0, b->round_seq);
        return;
    }
    if (strcmp(st, "ok") == 0) {
        bool more;
        if (r->elements != 13 || !is_str(r->element[1]) ||
            r->element[2]->type != REDIS_REPLY_INTEGER ||
            r->element[3]->type != REDIS_REPLY_INTEGER) {
            fail(b, EG_EREDIS);
            return;
        }
        if (apply_sync(b, r)) {
            /* Re-measured at the end of the round only when something changed: counting the
             * bytes walks every BM25 document. */
            if (r->element[4]->elements || r->element[8]->elements || r->element[11]->elements)
                b->dirty = true;
            snprintf(b->last_id, sizeof(b->last_id), "%s", r->element[1]->str);
            b->last_ord = r->element[3]->integer;
            more = r->element[2]->integer != 0;
            if (!more)
                eg__mx_settled(b, 0, b->round_seq);
            else if ((err = sync_send(b)) != 0)
                fail(b, err);
            return;
        }
        /* A vector of another dimension: the bank was cleared and re-embedded. */
    } else if (strcmp(st, "reload") != 0) {
        fail(b, EG_EREDIS);
        return;
    }
    if ((err = load_start(b)) != 0)
        fail(b, err);
}

static int sync_send(eg__mx_bank_t *b)
{
    const char *argv[EG__MXK_N + 5];
    char ord[24];
    int rc;

    snprintf(ord, sizeof(ord), "%lld", (long long)b->last_ord);
    memcpy(argv, b->keys, sizeof(b->keys));
    argv[EG__MXK_N] = b->last_id;
    argv[EG__MXK_N + 1] = ord;
    argv[EG__MXK_N + 2] = b->created;
    argv[EG__MXK_N + 3] = EG_MX_SYNC_IDS;
    argv[EG__MXK_N + 4] = EG_MX_SYNC_MAX;
    rc = eg_store_eval(&sync_script, on_sync, b, EG__MXK_N, EG__MXK_N + 5, argv, NULL);
    if (rc == 0) {
        b->inflight = true;
        b->round_seq = ++b->sent_seq;
    }
    return rc;
}

/* ---- full loads -------------------------------------------------------------------------------
 */

static void active_add(eg__mx_load_t *L)
{
    if (L->active)
        return;
    L->active = true;
    L->aprev = NULL;
    L->anext = active_loads;
    if (active_loads)
        active_loads->aprev = L;
    active_loads = L;
    eg__mx_wake();
}

static void active_del(eg__mx_load_t *L)
{
    if (!L->active)
        return;
    L->active = false;
    if (L->aprev)
        L->aprev->anext = L->anext;
    else
        active_loads = L->anext;
    if (L->anext)
        L->anext->aprev = L->aprev;
}

void eg__mx_load_drop(eg__mx_bank_t *b)
{
    eg__mx_load_t *L = b->load;

    if (!L)
        return;
    b->load = NULL;
    if (L->working) {
        /* The worker thread holds L->ix: after_sort frees it. */
        L->orphan = true;
        return;
    }
    active_del(L);
    while (L->head) {
        slice_t *s = L->head;
        L->head = s->next;
        free(s);
    }
    eg_mindex_free(L->ix);
    eg_arena_destroy(&L->arena);
    free(L);
}

static void on_scan(void *udata, int err, redisReply *r);

static int scan_next(eg__mx_load_t *L)
{
    eg__mx_bank_t *b = L->b;
    int rc = eg_store_command(on_scan, b, "HSCAN %s %s COUNT %s", b->keys[phase_key[L->phase]],
                              L->cursor, phase_count[L->phase]);
    if (rc == 0)
        b->inflight = true;
    return rc;
}

/* The scan is complete and applied: the new index replaces the old one; catch up. */
static void load_finish(eg__mx_load_t *L)
{
    eg__mx_bank_t *b = L->b;
    int rc;

    eg_mindex_free(b->ix);
    b->ix = L->ix;
    L->ix = NULL;
    b->dirty = true;
    snprintf(b->created, sizeof(b->created), "%s", L->created);
    snprintf(b->last_id, sizeof(b->last_id), "%s", L->last_id);
    b->last_ord = L->last_ord;
    eg__mx_load_drop(b);
    if ((rc = sync_send(b)) != 0)
        fail(b, rc);
}

/* Sorting a large bank's time orders takes tens of milliseconds (its first query would otherwise
 * block the loop that long), and the new index is still private to the load: sort it on the
 * thread pool. While it runs the bank counts as having a command in flight. */
static void sort_work(uv_work_t *w)
{
    eg__mx_load_t *L = EG_CONTAINER_OF(w, eg__mx_load_t, work);

    eg__mx_time_build(L->ix);
}

static void sort_done(uv_work_t *w, int status)
{
    eg__mx_load_t *L = EG_CONTAINER_OF(w, eg__mx_load_t, work);
    eg__mx_bank_t *b = L->b;

    (void)status;
    L->working = false;
    b->inflight = false;
    if (L->orphan) {
        eg_mindex_free(L->ix);
        eg_arena_destroy(&L->arena);
        free(L);
        fail(b, EG_ECANCELED);
        return;
    }
    if (b->cancel) {
        fail(b, EG_ECANCELED);
        return;
    }
    load_finish(L);
}

/* Every slice is applied. */
static void load_scanned(eg__mx_load_t *L)
{
    uv_loop_t *loop = eg_store_loop();

    if (eg_mindex_count(L->ix) >= EG_MX_WORK_MIN && loop &&
        uv_queue_work(loop, &L->work, sort_work, sort_done) == 0) {
        L->working = true;
        L->b->inflight = true;
        return;
    }
    load_finish(L);
}

/* Copy an HSCAN reply's pairs into one allocation. */
static slice_t *slice_new(int phase, const redisReply *arr)
{
    size_t n = arr->elements / 2,
           bytes = sizeof(slice_t) + n * (2 * sizeof(char *) + sizeof(size_t));
    slice_t *s;
    char *p;

    for (size_t i = 0; i < 2 * n; i++)
        bytes += (is_str(arr->element[i]) ? arr->element[i]->len : 0) + 1;
    s = eg_xmalloc(bytes);
    s->next = NULL;
    s->phase = phase;
    s->n = n;
    s->pos = 0;
    s->f = (const char **)(s + 1);
    s->v = s->f + n;
    s->vlen = (size_t *)(s->v + n);
    p = (char *)(s->vlen + n);
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            const redisReply *e = arr->element[2 * i + k];
            size_t len = is_str(e) ? e->len : 0;
            if (len)
                memcpy(p, e->str, len);
            p[len] = '\0';
            if (k == 0) {
                s->f[i] = p;
            } else {
                s->v[i] = p;
                s->vlen[i] = len;
            }
            p += len + 1;
        }
    }
    return s;
}

static void on_scan(void *udata, int err, redisReply *r)
{
    eg__mx_bank_t *b = udata;
    eg__mx_load_t *L = b->load;
    const redisReply *arr;

    if (!reply_ok(b, err, r, "scan"))
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_str(r->element[0]) ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        fail(b, EG_EREDIS);
        return;
    }
    arr = r->element[1];
    if (arr->elements >= 2) {
        slice_t *s = slice_new(L->phase, arr);
        if (L->tail)
            L->tail->next = s;
        else
            L->head = s;
        L->tail = s;
        L->nq++;
        active_add(L);
    }
    snprintf(L->cursor, sizeof(L->cursor), "%s", r->element[0]->str);
    if (strcmp(L->cursor, "0") == 0 && ++L->phase == PH_N)
        L->scanned = true;
    if (L->scanned) {
        if (L->nq == 0)
            load_scanned(L);
        return;
    }
    if (L->nq >= EG_MX_QUEUE_MAX) {
        L->held = true;
        return;
    }
    if ((err = scan_next(L)) != 0)
        fail(b, err);
}

static void on_init(void *udata, int err, redisReply *r)
{
    eg__mx_bank_t *b = udata;
    eg__mx_load_t *L = b->load;
    int64_t n, dim;

    if (!reply_ok(b, err, r, "load"))
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        fail(b, EG_EREDIS);
        return;
    }
    if (r->element[0]->integer == 0) {
        /* No such bank: an empty index. */
        L->ix = eg_mindex_new(b->ix ? b->ix->dim : EG_EMBED_DEFAULT_DIM);
        L->created[0] = '\0';
        L->last_ord = 0;
        snprintf(L->last_id, sizeof(L->last_id), "0-0");
        load_finish(L);
        return;
    }
    if (r->elements != 6 || !is_str(r->element[1]) || !is_str(r->element[2]) ||
        r->element[3]->type != REDIS_REPLY_INTEGER || r->element[4]->type != REDIS_REPLY_INTEGER ||
        r->element[5]->type != REDIS_REPLY_INTEGER) {
        fail(b, EG_EREDIS);
        return;
    }
    L->last_ord = r->element[3]->integer;
    n = r->element[4]->integer;
    dim = r->element[5]->integer;
    snprintf(L->created, sizeof(L->created), "%s", r->element[1]->str);
    snprintf(L->last_id, sizeof(L->last_id), "%s", r->element[2]->str);
    L->ix = eg_mindex_new(dim > 0 && dim <= 65536 ? (size_t)dim : EG_EMBED_DEFAULT_DIM);
    if (n > 0)
        /* With a little room: the first writes after a load would otherwise each time grow
         * (copy) the vectors and unit records; pages not yet used are not resident. */
        eg_mindex_reserve(L->ix, (size_t)n + (size_t)n / 16 + 64);
    L->phase = PH_E;
    snprintf(L->cursor, sizeof(L->cursor), "0");
    if ((err = scan_next(L)) != 0)
        fail(b, err);
}

static int load_start(eg__mx_bank_t *b)
{
    eg__mx_load_t *L = eg_xcalloc(1, sizeof(*L));
    int rc;

    L->b = b;
    eg_arena_init(&L->arena);
    b->load = L;
    rc = eg_store_eval(&init_script, on_init, b, 4, 4, b->keys, NULL);
    if (rc != 0) {
        eg__mx_load_drop(b);
        return rc;
    }
    b->inflight = true;
    b->round_seq = ++b->sent_seq;
    return 0;
}

int eg__mx_round(eg__mx_bank_t *b)
{
    int rc;

    b->busy = true;
    rc = b->ix ? sync_send(b) : load_start(b);
    if (rc != 0)
        b->busy = false;
    return rc;
}

/* ---- applying slices ---------------------------------------------------------------------- */

bool eg__mx_load_tick(uint64_t deadline_ns)
{
    eg__mx_load_t *L;

    /* Loads are taken from the list head each time: finishing or failing one runs callbacks,
     * which may start, forget or drop any other. */
    while ((L = active_loads) != NULL) {
        slice_t *s;
        int rc = 0;

        while ((s = L->head) != NULL) {
            for (unsigned k = 0; s->pos < s->n; k++) {
                if ((k & 15) == 15 && eg_mono_ns() > deadline_ns)
                    return true;
                apply_entry(L, s->phase, s->f[s->pos], s->v[s->pos], s->vlen[s->pos]);
                s->pos++;
            }
            L->head = s->next;
            if (!L->head)
                L->tail = NULL;
            L->nq--;
            free(s);
            if (L->held && L->nq < EG_MX_QUEUE_MAX) {
                L->held = false;
                if ((rc = scan_next(L)) != 0)
                    break;
            }
        }
        active_del(L);
        if (rc != 0)
            fail(L->b, rc);
        else if (L->scanned && !L->b->inflight)
            load_scanned(L);
        if (eg_mono_ns() > deadline_ns)
            return active_loads != NULL;
    }
    return false;
}
