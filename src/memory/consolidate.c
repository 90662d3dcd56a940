/* Consolidation (engram/consolidate.h): queuing runs, the one script that applies a batch's
 * outcome, and the run key. The maintenance calls are in consolidate_maint.c, the worker and the
 * batch selection in consolidate_run.c, the builtin path in consolidate_builtin.c, the model path
 * in consolidate_llm.c.
 *
 * Facts' marks are whole new records built in C (the stored JSON is never re-encoded by Lua,
 * whose cjson would round microsecond times), written only while the stored record's updated_at
 * is still the one read: consolidation does not change updated_at, so a curated edit that lands
 * in between is kept and its fact is simply seen again by a later batch. */
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/buf.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/ops.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "memory/consolidate_int.h"
#include "memory/mstore_int.h"

/* A processing run whose record has not changed for this long (ms) is presumed dead (its job
 * gave up while Redis was away): a request then starts a new run instead of reusing it. */
#define EG__CONS_STALE_MS "900000"

/* ---- scripts --------------------------------------------------------------------------------- */

/* KEYS: the bank's memory keys. ARGV: now (ms), nfacts, (id, expected updated_at, record) * n,
 * nputs, (id, record, vector ('' keeps), entity ids (comma-separated), expected updated_at ('' =
 * a new observation)) * n, ndels, ids. Returns {facts written, observations stored, deleted}. */
static eg_script_t s_cons_apply = {
    .name = "cons_apply",
    .source = EG__MEM_LUA_LIB
    "if redis.call('EXISTS', K.bank) == 0 then return redis.error_reply('EG_NOTFOUND bank') end\n"
    "local now, i = ARGV[1], 2\n"
    "local wf, wp, wd = 0, 0, 0\n"
    "local function upd(o)\n"
    "  if type(o.updated_at) ~= 'number' then return '' end\n"
    "  return string.format('%d', o.updated_at)\n"
    "end\n"
    "local nf = tonumber(ARGV[i]); i = i + 1\n"
    "for k = 1, nf do\n"
    "  local id, exp, rec = ARGV[i], ARGV[i + 1], ARGV[i + 2]; i = i + 3\n"
    "  local old = redis.call('HGET', K.u, id)\n"
    "  if old then\n"
    "    local o = decode(old)\n"
    "    if o.fact_type ~= 'observation' and upd(o) == exp then\n"
    "      redis.call('HSET', K.u, id, rec); mark(cu, cul, id); wf = wf + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local np = tonumber(ARGV[i]); i = i + 1\n"
    "for k = 1, np do\n"
    "  local id, rec, vec, ents, exp = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + "
    "4]\n"
    "  i = i + 5\n"
    "  local old = redis.call('HGET', K.u, id)\n"
    "  local ok, prev = false, {}\n"
    "  if exp == '' then\n"
    "    ok = not old\n"
    "  elseif old then\n"
    "    local o = decode(old)\n"
    "    if o.fact_type == 'observation' and upd(o) == exp then\n"
    "      ok = true\n"
    "      if type(o.entity_ids) == 'table' then\n"
    "        for _, e in ipairs(o.entity_ids) do\n"
    "          if type(e) == 'string' then prev[#prev + 1] = e end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if ok then\n"
    "    local new, had = {}, {}\n"
    "    for _, e in ipairs(prev) do had[e] = true end\n"
    "    for eid in string.gmatch(ents, '[^,]+') do\n"
    "      new[eid] = true\n"
    "      if not had[eid] and redis.call('HEXISTS', K.e, eid) == 1 then\n"
    "        redis.call('HINCRBY', K.es, eid .. ':n', 1); mark(ce, cel, eid)\n"
    "      end\n"
    "    end\n"
    "    for _, e in ipairs(prev) do if not new[e] then entity_dec(e) end end\n"
    "    if old then so_link(id, old, false) end\n"
    "    redis.call('HSET', K.u, id, rec)\n"
    "    so_link(id, rec, true)\n"
    "    if vec ~= '' then redis.call('HSET', K.v, id, vec) end\n"
    "    if exp == '' then cnt.facts = cnt.facts + 1 end\n"
    "    mark(cu, cul, id); wp = wp + 1\n"
    "  end\n"
    "end\n"
    "local nd = tonumber(ARGV[i]); i = i + 1\n"
    "for k = 1, nd do\n"
    "  local id = ARGV[i]; i = i + 1\n"
    "  local old = redis.call('HGET', K.u, id)\n"
    "  if old and decode(old).fact_type == 'observation' and unit_drop(id) then wd = wd + 1 end\n"
    "end\n"
    "finish(now, '0')\n"
    "return {wf, wp, wd}\n",
};

/* KEYS: run key, the new op's key, the ops index. ARGV: new op id, meta, now (ms), scoped ('1'
 * when the request has scopes), the op key prefix. Returns {op id, 1 if reused}. A run is reused
 * while its record is pending, or processing and touched within EG__CONS_STALE_MS. */
static eg_script_t s_cons_enqueue = {
    .name = "cons_enqueue",
    .source = EG_OPS_LUA_CREATE
    "local cur = redis.call('HGET', KEYS[1], 'op')\n"
    "if cur then\n"
    "  local st, up = unpack(redis.call('HMGET', ARGV[5] .. cur, 'status', 'updated'))\n"
    "  local stale = st == 'processing' and\n"
    "    tonumber(ARGV[3]) - (tonumber(up) or 0) > " EG__CONS_STALE_MS "\n"
    "  if (st == 'pending' or st == 'processing') and not stale then\n"
    "    redis.call('HSET', KEYS[1], 'dirty', '1')\n"
    "    if ARGV[4] ~= '1' then redis.call('HSET', KEYS[1], 'all', '1') end\n"
    "    return {cur, 1}\n"
    "  end\n"
    "end\n"
    "if not eg_op_create(KEYS[2], KEYS[3], ARGV[1], '" EG_CONSOLIDATE_OP_KIND "', ARGV[2],\n"
    "                    ARGV[3]) then\n"
    "  return redis.error_reply('EG_CONFLICT operation exists')\n"
    "end\n"
    "local all = '1'\n"
    "if ARGV[4] == '1' then all = '0' end\n"
    "redis.call('HSET', KEYS[1], 'op', ARGV[1], 'dirty', '0', 'all', all)\n"
    "return {ARGV[1], 0}\n",
};

/* KEYS: run key, bank record. ARGV: op id, now (ms), abort ('1'). Returns 1 when dirty (look
 * again), else 0. */
static eg_script_t s_cons_finish = {
    .name = "cons_finish",
    .source = "local cur = redis.call('HGET', KEYS[1], 'op')\n"
              "if cur == ARGV[1] then\n"
              "  if ARGV[3] ~= '1' and redis.call('HGET', KEYS[1], 'dirty') == '1' then\n"
              "    redis.call('HSET', KEYS[1], 'dirty', '0')\n"
              "    return 1\n"
              "  end\n"
              "  redis.call('DEL', KEYS[1])\n"
              "end\n"
              "if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then\n"
              "  redis.call('HSET', KEYS[2], 'last_consolidated_at', ARGV[2])\n"
              "end\n"
              "return 0\n",
};

/* ---- small helpers --------------------------------------------------------------------------- */

bool eg__cons_bank_ok(const char *ws_id, const char *bank_id)
{
    return ws_id != NULL && ws_id[0] != '\0' && bank_id != NULL &&
           eg_bank_id_valid(bank_id, strlen(bank_id));
}

static const char *scope_id(eg_arena_t *a, const char *ws_id, const char *bank_id)
{
    return eg_arena_printf(a, "%s/%s", ws_id, bank_id);
}

const char *eg__cons_run_key(eg_arena_t *a, const char *ws_id, const char *bank_id)
{
    return eg_key(a, "b", scope_id(a, ws_id, bank_id), "cj");
}

int eg__cons_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

uint32_t *eg__cons_scope_ids(eg_arena_t *a, eg_mindex_t *ix, const eg_obs_scope_t *s)
{
    uint32_t *ids = eg_arena_alloc(a, (s->ntags + 1) * sizeof(*ids));

    for (size_t i = 0; i < s->ntags; i++)
        ids[i] = eg_mindex_tag(ix, s->tags[i]);
    qsort(ids, s->ntags, sizeof(*ids), cmp_u32);
    return ids;
}

bool eg__cons_tags_exact(const eg_mindex_unit_t *u, const uint32_t *ids, size_t n)
{
    if (u->ntags != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == EG_MINDEX_NONE || u->tags[i] != ids[i])
            return false;
    return true;
}

bool eg__cons_tags_superset(const eg_mindex_unit_t *u, const uint32_t *ids, size_t n)
{
    size_t j = 0;

    for (size_t i = 0; i < n; i++) {
        if (ids[i] == EG_MINDEX_NONE)
            return false;
        while (j < u->ntags && u->tags[j] < ids[i])
            j++;
        if (j == u->ntags || u->tags[j] != ids[i])
            return false;
    }
    return true;
}

bool eg__cons_same_scope(const eg_obs_scope_t *a, const eg_obs_scope_t *b)
{
    if (a->ntags != b->ntags)
        return false;
    for (size_t i = 0; i < a->ntags; i++)
        if (strcmp(a->tags[i], b->tags[i]) != 0)
            return false;
    return true;
}

bool eg__cons_has_source(const eg_mem_unit_t *o, const char *id)
{
    for (size_t i = 0; i < o->nsources; i++)
        if (strcmp(o->source_ids[i], id) == 0)
            return true;
    return false;
}

void eg__cons_absorb(eg_arena_t *a, eg_mem_unit_t *o, const eg_mem_unit_t *u)
{
    const char **src, **ents;
    size_t ne = 0;

    if (eg__cons_has_source(o, u->id))
        return;
    src = eg_arena_alloc(a, (o->nsources + 1) * sizeof(*src));
    for (size_t i = 0; i < o->nsources; i++)
        src[i] = o->source_ids[i];
    src[o->nsources++] = eg_arena_strdup(a, u->id);
    o->source_ids = src;
    o->proof_count = (int)o->nsources;
    if (u->occurred_start != EG_MEM_TIME_NONE &&
        (o->occurred_start == EG_MEM_TIME_NONE || u->occurred_start < o->occurred_start))
        o->occurred_start = u->occurred_start;
    if (u->occurred_end != EG_MEM_TIME_NONE &&
        (o->occurred_end == EG_MEM_TIME_NONE || u->occurred_end > o->occurred_end))
        o->occurred_end = u->occurred_end;
    if (u->mentioned_at != EG_MEM_TIME_NONE &&
        (o->mentioned_at == EG_MEM_TIME_NONE || u->mentioned_at > o->mentioned_at))
        o->mentioned_at = u->mentioned_at;
    ents = eg_arena_alloc(a, (o->nentities + u->nentities + 1) * sizeof(*ents));
    for (size_t i = 0; i < o->nentities; i++)
        ents[ne++] = o->entity_ids[i];
    for (size_t i = 0; i < u->nentities && ne < EG_MEM_ENTITIES_MAX; i++) {
        bool dup = false;
        for (size_t k = 0; k < ne && !dup; k++)
            dup = strcmp(ents[k], u->entity_ids[i]) == 0;
        if (!dup)
            ents[ne++] = eg_arena_strdup(a, u->entity_ids[i]);
    }
    o->entity_ids = ents;
    o->nentities = ne;
}

cJSON *eg__cons_history_add(eg_arena_t *a, const cJSON *history, const char *prev, const char *next,
                            int64_t at_us, const char *reason, const char *const *sources,
                            size_t nsources)
{
    cJSON *h = cJSON_CreateArray(), *e = cJSON_CreateObject();
    const cJSON *it;
    int n = history ? cJSON_GetArraySize(history) : 0, skip = 0;
    char buf[24];

    if (n >= EG_CONSOLIDATE_HISTORY_MAX)
        skip = n - EG_CONSOLIDATE_HISTORY_MAX + 1;
    cJSON_ArrayForEach(it, history)
    {
        if (skip-- > 0)
            continue;
        cJSON_AddItemToArray(h, cJSON_Duplicate(it, true));
    }
    cJSON_AddStringToObject(e, "previous_text", prev ? prev : "");
    cJSON_AddStringToObject(e, "new_text", next ? next : "");
    snprintf(buf, sizeof(buf), "%lld", (long long)at_us);
    cJSON_AddItemToObject(e, "changed_at", cJSON_CreateRaw(buf));
    cJSON_AddStringToObject(e, "reason", reason ? reason : "");
    if (nsources > 0) {
        cJSON *s = cJSON_AddArrayToObject(e, "source_memory_ids");
        for (size_t i = 0; i < nsources; i++)
            cJSON_AddItemToArray(s, cJSON_CreateString(sources[i]));
    }
    cJSON_AddItemToArray(h, e);
    eg_arena_defer(a, (void (*)(void *))cJSON_Delete, h);
    return h;
}

/* ---- scopes of a fact --------------------------------------------------------------------------
 */

/* Add the scope of tags[0..n) (sorted, duplicates dropped) unless out holds it already. */
static void scope_add(eg_arena_t *a, const char *const *tags, size_t n, eg_obs_scope_t *out,
                      size_t *nout)
{
    const char **t;
    size_t m = 0;

    if (*nout >= EG_CONSOLIDATE_SCOPES_MAX)
        return;
    t = eg_arena_alloc(a, (n + 1) * sizeof(*t));
    for (size_t i = 0; i < n; i++)
        t[m++] = eg_arena_strdup(a, tags[i]);
    qsort(t, m, sizeof(*t), eg__cons_cmp_str);
    n = m;
    m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || strcmp(t[m - 1], t[i]) != 0)
            t[m++] = t[i];
    for (size_t k = 0; k < *nout; k++) {
        bool same = out[k].ntags == m;
        for (size_t i = 0; same && i < m; i++)
            same = strcmp(out[k].tags[i], t[i]) == 0;
        if (same)
            return;
    }
    out[*nout] = (eg_obs_scope_t){t, m, 0};
    (*nout)++;
}

size_t eg_consolidate_fact_scopes(eg_arena_t *a, const char *const *tags, size_t ntags,
                                  const cJSON *mode, eg_obs_scope_t *out)
{
    size_t n = 0;
    const char *m = cJSON_IsString(mode) ? mode->valuestring : NULL;

    if (cJSON_IsArray(mode)) {
        const cJSON *sc;

        cJSON_ArrayForEach(sc, mode)
        {
            const char *v[EG_MEM_TAGS_MAX];
            size_t k = 0;
            const cJSON *t;

            if (!cJSON_IsArray(sc))
                continue;
            cJSON_ArrayForEach(t, sc)
            {
                if (cJSON_IsString(t) && k < EG_MEM_TAGS_MAX)
                    v[k++] = t->valuestring;
            }
            scope_add(a, v, k, out, &n);
        }
        if (n == 0)
            scope_add(a, tags, ntags, out, &n);
        return n;
    }
    if (ntags == 0 || (m && strcmp(m, "shared") == 0)) {
        scope_add(a, NULL, 0, out, &n);
        return n;
    }
    if (m && strcmp(m, "per_tag") == 0) {
        for (size_t i = 0; i < ntags; i++)
            scope_add(a, &tags[i], 1, out, &n);
        return n;
    }
    if (m && strcmp(m, "all_combinations") == 0) {
        if (ntags <= 6) {
            for (unsigned bits = 1; bits < (1u << ntags); bits++) {
                const char *v[6];
                size_t k = 0;
                for (size_t i = 0; i < ntags; i++)
                    if (bits & (1u << i))
                        v[k++] = tags[i];
                scope_add(a, v, k, out, &n);
            }
            return n;
        }
        for (size_t i = 0; i < ntags; i++)
            scope_add(a, &tags[i], 1, out, &n);
    }
    scope_add(a, tags, ntags, out, &n); /* combined, the default */
    return n;
}

bool eg_consolidate_scopes_valid(const cJSON *scopes)
{
    const cJSON *sc, *t;

    if (scopes == NULL || cJSON_IsNull(scopes))
        return true;
    if (!cJSON_IsArray(scopes) || cJSON_GetArraySize(scopes) > EG_CONSOLIDATE_SCOPES_MAX)
        return false;
    cJSON_ArrayForEach(sc, scopes)
    {
        if (!cJSON_IsArray(sc) || cJSON_GetArraySize(sc) > EG_MEM_TAGS_MAX)
            return false;
        cJSON_ArrayForEach(t, sc)
        {
            if (!cJSON_IsString(t) || strlen(t->valuestring) > EG_MEM_TAG_MAX)
                return false;
        }
    }
    return true;
}

/* ---- applying a change -------------------------------------------------------------------------
 */

typedef struct apply_op_s {
    eg__cons_applied_fn cb;
    void *udata;
} apply_op_t;

static void on_applied(void *udata, int err, redisReply *r)
{
    apply_op_t *op = udata;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = eg__mem_reply_error(r);
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 3))
        err = EG_EREDIS;
    if (err)
        op->cb(op->udata, err, 0, 0, 0);
    else
        op->cb(op->udata, 0, r->element[0]->integer, r->element[1]->integer,
               r->element[2]->integer);
    free(op);
}

int eg__cons_apply(const char *ws_id, const char *bank_id, const eg__cons_apply_t *ch,
                   eg__cons_applied_fn cb, void *udata)
{
    eg_arena_t a;
    size_t max = EG__MEM_KEYS + 4 + 3 * ch->nfacts + 5 * ch->nputs + ch->ndels, argc = 0;
    const char **argv;
    size_t *lens;
    apply_op_t *op;
    int rc;

    if (!eg__cons_bank_ok(ws_id, bank_id) || cb == NULL)
        return EG_EINVAL;
    eg_arena_init(&a);
    argv = eg_arena_calloc(&a, max * sizeof(*argv));
    lens = eg_arena_calloc(&a, max * sizeof(*lens));
    eg__mem_keys(&a, ws_id, bank_id, argv);
    argc = EG__MEM_KEYS;
    argv[argc++] = eg_arena_printf(&a, "%lld", (long long)eg_now_ms());
    argv[argc++] = eg_arena_printf(&a, "%zu", ch->nfacts);
    for (size_t i = 0; i < ch->nfacts; i++) {
        const eg_mem_unit_t *u = ch->facts[i];

        argv[argc++] = u->id;
        argv[argc++] = eg__mem_time_arg(&a, u->updated_at);
        argv[argc++] = eg__mem_print(&a, eg_mem_unit_json(u));
    }
    argv[argc++] = eg_arena_printf(&a, "%zu", ch->nputs);
    for (size_t i = 0; i < ch->nputs; i++) {
        const eg__cons_put_t *p = &ch->puts[i];
        eg_buf_t ents = EG_BUF_INIT;

        argv[argc++] = p->unit.id;
        argv[argc++] = eg__mem_print(&a, eg_mem_unit_json(&p->unit));
        if (p->vec != NULL && ch->dim > 0) {
            argv[argc] = eg__mem_vec_bytes(&a, p->vec, ch->dim);
            lens[argc++] = 4 * ch->dim;
        } else {
            argv[argc++] = "";
        }
        for (size_t k = 0; k < p->unit.nentities; k++)
            eg_buf_printf(&ents, "%s%s", k ? "," : "", p->unit.entity_ids[k]);
        argv[argc++] = eg_arena_strndup(&a, ents.data ? ents.data : "", ents.len);
        eg_buf_free(&ents);
        argv[argc++] = p->is_new ? "" : eg__mem_time_arg(&a, p->expect_updated_at);
    }
    argv[argc++] = eg_arena_printf(&a, "%zu", ch->ndels);
    for (size_t i = 0; i < ch->ndels; i++)
        argv[argc++] = ch->dels[i];
    for (size_t i = 0; i < argc; i++)
        if (lens[i] == 0)
            lens[i] = strlen(argv[i]);
    op = eg_xmalloc(sizeof(*op));
    op->cb = cb;
    op->udata = udata;
    rc = eg_store_eval(&s_cons_apply, on_applied, op, EG__MEM_KEYS, (int)argc, argv, lens);
    if (rc)
        free(op);
    eg_arena_destroy(&a);
    return rc;
}

/* ---- the run key -------------------------------------------------------------------------------
 */

typedef struct finish_op_s {
    eg__cons_finish_fn cb;
    eg__cons_flag_fn flag;
    void *udata;
    char op[EG_MEM_UUID_LEN + 1];
} finish_op_t;

static void on_finish(void *udata, int err, redisReply *r)
{
    finish_op_t *op = udata;

    if (err == 0 && r->type != REDIS_REPLY_INTEGER)
        err = EG_EREDIS;
    op->cb(op->udata, err, err == 0 && r->integer == 1);
    free(op);
}

int eg__cons_finish(const char *ws_id, const char *bank_id, const char *op_id, bool abort,
                    eg__cons_finish_fn cb, void *udata)
{
    eg_arena_t a;
    const char *argv[5];
    finish_op_t *op;
    int rc;
    const char *keys[EG__MEM_KEYS];

    eg_arena_init(&a);
    eg__mem_keys(&a, ws_id, bank_id, keys);
    argv[0] = eg__cons_run_key(&a, ws_id, bank_id);
    argv[1] = keys[EG__MK_BANK]; /* the bank record, in the same slot */
    argv[2] = op_id;
    argv[3] = eg_arena_printf(&a, "%lld", (long long)eg_now_ms());
    argv[4] = abort ? "1" : "0";
    op = eg_xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->udata = udata;
    rc = eg_store_eval(&s_cons_finish, on_finish, op, 2, 5, argv, NULL);
    if (rc)
        free(op);
    eg_arena_destroy(&a);
    return rc;
}

static void on_run_all(void *udata, int err, redisReply *r)
{
    finish_op_t *op = udata;
    bool all = false;

    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2))
        err = EG_EREDIS;
    if (err == 0 && r->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(r->element[0]->str, op->op) == 0 && r->element[1]->type == REDIS_REPLY_STRING)
        all = strcmp(r->element[1]->str, "1") == 0;
    op->flag(op->udata, err, all);
    free(op);
}

int eg__cons_run_all(const char *ws_id, const char *bank_id, const char *op_id, eg__cons_flag_fn cb,
                     void *udata)
{
    eg_arena_t a;
    const char *argv[4];
    finish_op_t *op;
    int rc;

    if (strlen(op_id) > EG_MEM_UUID_LEN)
        return EG_EINVAL;
    eg_arena_init(&a);
    argv[0] = "HMGET";
    argv[1] = eg__cons_run_key(&a, ws_id, bank_id);
    argv[2] = "op";
    argv[3] = "all";
    op = eg_xcalloc(1, sizeof(*op));
    op->flag = cb;
    op->udata = udata;
    snprintf(op->op, sizeof(op->op), "%s", op_id);
    rc = eg_store_commandv(on_run_all, op, 4, argv, NULL);
    if (rc)
        free(op);
    eg_arena_destroy(&a);
    return rc;
}

/* ---- queuing ------------------------------------------------------------------------------------
 */

typedef struct enq_s {
    eg_arena_t a;
    char *ws, *bank;
    char op[EG_MEM_UUID_LEN + 1];
    bool dedup;
    eg_consolidate_queued_fn cb;
    void *udata;
} enq_t;

static void enq_free(enq_t *e)
{
    eg_arena_destroy(&e->a);
    free(e);
}

static void on_pushed(void *udata, int err, bool queued)
{
    enq_t *e = udata;

    (void)queued;
    if (err)
        eg_log_warn("consolidation: cannot queue the job of operation %s (bank %s): %s; the next "
                    "request queues it again",
                    e->op, e->bank, eg_strerror(err));
    if (e->cb)
        e->cb(e->udata, err, err ? NULL : e->op, e->dedup);
    enq_free(e);
}

static int push_job(enq_t *e)
{
    cJSON *p = cJSON_CreateObject();
    char *s;
    int rc;

    cJSON_AddStringToObject(p, "ws", e->ws);
    cJSON_AddStringToObject(p, "bank", e->bank);
    cJSON_AddStringToObject(p, "op", e->op);
    s = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    rc = eg_queue_push(EG_CONSOLIDATE_QUEUE, e->op, s, strlen(s), 0, on_pushed, e);
    free(s);
    return rc;
}

static void on_enqueued(void *udata, int err, redisReply *r)
{
    enq_t *e = udata;
    int rc;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = eg__mem_reply_error(r);
    if (err == 0 &&
        (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
         r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len > EG_MEM_UUID_LEN))
        err = EG_EREDIS;
    if (err) {
        if (e->cb)
            e->cb(e->udata, err, NULL, false);
        enq_free(e);
        return;
    }
    memcpy(e->op, r->element[0]->str, r->element[0]->len);
    e->op[r->element[0]->len] = '\0';
    e->dedup = r->element[1]->integer == 1;
    /* Pushed every time: a run whose push was lost (a crash right after its record was made)
     * is picked up here; a job already queued or done is a duplicate the queue ignores. */
    rc = push_job(e);
    if (rc)
        on_pushed(e, rc, false);
}

int eg_consolidate_enqueue(const char *ws_id, const char *bank_id, const cJSON *scopes,
                           eg_consolidate_queued_fn cb, void *udata)
{
    enq_t *e;
    const char *argv[8];
    const char *sid;
    char id[37];
    cJSON *meta;
    char *m;
    bool scoped = cJSON_IsArray(scopes);
    int rc;

    if (!eg__cons_bank_ok(ws_id, bank_id) || !eg_consolidate_scopes_valid(scopes))
        return EG_EINVAL;
    e = eg_xcalloc(1, sizeof(*e));
    eg_arena_init(&e->a);
    e->ws = eg_arena_strdup(&e->a, ws_id);
    e->bank = eg_arena_strdup(&e->a, bank_id);
    e->cb = cb;
    e->udata = udata;
    eg_uuid_v4(id);
    sid = scope_id(&e->a, ws_id, bank_id);
    meta = cJSON_CreateObject();
    if (scoped)
        cJSON_AddItemToObject(meta, "observation_scopes", cJSON_Duplicate(scopes, true));
    m = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    argv[0] = eg__cons_run_key(&e->a, ws_id, bank_id);
    argv[1] = eg_key(&e->a, "b", sid, "op:%s", id);
    argv[2] = eg_key(&e->a, "b", sid, "ops");
    argv[3] = id;
    argv[4] = eg_arena_strdup(&e->a, m);
    argv[5] = eg_arena_printf(&e->a, "%lld", (long long)eg_now_ms());
    argv[6] = scoped ? "1" : "0";
    argv[7] = eg_key(&e->a, "b", sid, "op:");
    free(m);
    rc = eg_store_eval(&s_cons_enqueue, on_enqueued, e, 3, 8, argv, NULL);
    if (rc)
        enq_free(e);
    return rc;
}

static void on_after_retain_queued(void *udata, int err, const char *op_id, bool dedup)
{
    char *bank = udata;

    if (err)
        eg_log_warn("consolidation: cannot queue a run for bank %s after retain: %s", bank,
                    eg_strerror(err));
    else
        eg_log_debug("consolidation: bank %s after retain: operation %s%s", bank, op_id,
                     dedup ? " (reused)" : "");
    free(bank);
}

typedef struct after_s {
    char *ws, *bank;
} after_t;

static void on_after_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    after_t *ar = udata;
    bool on = true;

    (void)created;
    if (err == 0) {
        cJSON *cfg = eg_bank_config_resolved(bank);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "enable_observations");
        on = !cJSON_IsFalse(v);
        cJSON_Delete(cfg);
    }
    if (err == 0 && on) {
        char *b = eg_xstrdup(ar->bank);
        if (eg_consolidate_enqueue(ar->ws, ar->bank, NULL, on_after_retain_queued, b) != 0) {
            eg_log_warn("consolidation: cannot queue a run for bank %s", ar->bank);
            free(b);
        }
    } else if (err) {
        eg_log_warn("consolidation: bank %s unreadable after retain: %s", ar->bank,
                    eg_strerror(err));
    }
    free(ar->ws);
    free(ar->bank);
    free(ar);
}

void eg_consolidate_after_retain(const char *ws_id, const char *bank_id)
{
    after_t *ar;

    if (!eg__cons_bank_ok(ws_id, bank_id) || !eg__cons_worker_running())
        return; /* the worker is not started (tools and tests that retain without it) */
    ar = eg_xmalloc(sizeof(*ar));
    ar->ws = eg_xstrdup(ws_id);
    ar->bank = eg_xstrdup(bank_id);
    if (eg_bank_get(ws_id, bank_id, on_after_bank, ar) != 0) {
        eg_log_warn("consolidation: cannot read bank %s after retain", bank_id);
        free(ar->ws);
        free(ar->bank);
        free(ar);
    }
}

/* ---- start and stop -----------------------------------------------------------------------------
 */

int eg_consolidate_start(uv_loop_t *loop)
{
    (void)loop;
    return eg__cons_worker_start();
}

void eg_consolidate_stop(void (*done)(void *), void *udata)
{
    eg__cons_worker_stop(done, udata);
}
