/* Consolidation maintenance (engram/consolidate.h): recover (failed facts back to pending),
 * the retry of a failed operation, clearing every observation or one memory's, and the bank's
 * observation scopes. Facts are made
 * pending again by rewriting their records in chunks through eg__cons_apply (compare-and-set on
 * updated_at, like every consolidation write); observations go with the first chunk. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/ops.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "memory/consolidate_int.h"

#define MAINT_CHUNK 256 /* fact records rewritten per script */

/* ---- maintenance: recover, clear, one memory's observations ------------------------------------
 */

typedef enum { M_RECOVER, M_RESET_FAILED, M_CLEAR, M_CLEAR_ONE } maint_kind_t;

typedef struct maint_s {
    eg_arena_t a;
    char *ws, *bank, *unit;
    maint_kind_t kind;
    const char **ids; /* facts to make pending again */
    size_t nids, pos;
    const char **dels; /* observations to delete (with the first chunk) */
    size_t ndels;
    int64_t facts, deleted;
    eg_consolidate_count_fn cb;
    void *udata;
} maint_t;

static void maint_end(maint_t *m, int err)
{
    m->cb(m->udata, err,
          err                                                   ? 0
          : (m->kind == M_RECOVER || m->kind == M_RESET_FAILED) ? m->facts
                                                                : m->deleted);
    eg_arena_destroy(&m->a);
    free(m);
}

static void maint_step(maint_t *m);

static void on_maint_queued(void *udata, int err, const char *op_id, bool dedup)
{
    maint_t *m = udata;

    (void)op_id;
    (void)dedup;
    if (err)
        eg_log_warn("consolidation: recovered facts of bank %s wait for the next run: %s", m->bank,
                    eg_strerror(err));
    maint_end(m, 0);
}

static void on_maint_applied(void *udata, int err, int64_t facts, int64_t puts, int64_t dels)
{
    maint_t *m = udata;

    (void)puts;
    if (err) {
        maint_end(m, err);
        return;
    }
    m->facts += facts;
    m->deleted += dels;
    m->ndels = 0;
    maint_step(m);
}

static void on_maint_units(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    maint_t *m = udata;
    const eg_mem_unit_t **facts;
    size_t nf = 0;
    eg__cons_apply_t ch = {0};
    int rc;

    if (err) {
        maint_end(m, err);
        return;
    }
    facts = eg_arena_alloc(&m->a, (n + 1) * sizeof(*facts));
    for (size_t i = 0; i < n; i++) {
        eg_mem_unit_t *c;

        if (units[i] == NULL || units[i]->type == EG_FACT_OBSERVATION)
            continue;
        if ((m->kind == M_RECOVER || m->kind == M_RESET_FAILED) &&
            units[i]->consolidation_failed_at <= 0)
            continue;
        c = eg_arena_alloc(&m->a, sizeof(*c));
        *c = *units[i]; /* the records live until the callback returns; the apply copies them */
        c->consolidated_at = EG_MEM_TIME_NONE;
        c->consolidation_failed_at = EG_MEM_TIME_NONE;
        c->consolidation_error = NULL;
        facts[nf++] = c;
    }
    ch.facts = facts;
    ch.nfacts = nf;
    ch.dels = m->dels;
    ch.ndels = m->ndels;
    rc = eg__cons_apply(m->ws, m->bank, &ch, on_maint_applied, m);
    if (rc)
        maint_end(m, rc);
}

static void maint_step(maint_t *m)
{
    size_t n = EG_MIN(m->nids - m->pos, (size_t)MAINT_CHUNK);
    int rc;

    if (n == 0 && m->ndels == 0) {
        if (m->kind == M_RECOVER && m->facts > 0) {
            rc = eg_consolidate_enqueue(m->ws, m->bank, NULL, on_maint_queued, m);
            if (rc == 0)
                return;
        }
        maint_end(m, 0);
        return;
    }
    rc = eg_mem_units_get(m->ws, m->bank, m->ids + m->pos, n, on_maint_units, m);
    m->pos += n;
    if (rc)
        maint_end(m, rc);
}

/* Sort and deduplicate ids[0..*n). */
static void ids_unique(const char **ids, size_t *n)
{
    size_t m = 0;

    qsort(ids, *n, sizeof(*ids), eg__cons_cmp_str);
    for (size_t i = 0; i < *n; i++)
        if (m == 0 || strcmp(ids[m - 1], ids[i]) != 0)
            ids[m++] = ids[i];
    *n = m;
}

/* The observations' records are in: keep the ones to delete and their sources. */
static void on_maint_obs(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    maint_t *m = udata;
    size_t cap = 1, nd = 0;

    if (err) {
        maint_end(m, err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (units[i])
            cap += units[i]->nsources;
    m->ids = eg_arena_alloc(&m->a, (cap + 1) * sizeof(*m->ids));
    m->nids = 0;
    for (size_t i = 0; i < n; i++) {
        const eg_mem_unit_t *u = units[i];
        bool hit = m->kind == M_CLEAR;

        if (u == NULL || u->type != EG_FACT_OBSERVATION)
            continue;
        for (size_t k = 0; !hit && k < u->nsources; k++)
            hit = strcmp(u->source_ids[k], m->unit) == 0;
        if (!hit)
            continue;
        m->dels[nd++] = m->dels[i] ? m->dels[i] : eg_arena_strdup(&m->a, u->id);
        for (size_t k = 0; k < u->nsources; k++)
            m->ids[m->nids++] = eg_arena_strdup(&m->a, u->source_ids[k]);
    }
    if (m->kind == M_CLEAR_ONE)
        m->ids[m->nids++] = m->unit;
    m->ndels = nd;
    ids_unique(m->ids, &m->nids);
    maint_step(m);
}

static void on_maint_index(void *udata, int err, eg_mindex_t *ix)
{
    maint_t *m = udata;
    size_t nslots, n = 0;
    uint32_t slot;
    int rc;

    if (err) {
        maint_end(m, err);
        return;
    }
    nslots = eg_mindex_slots(ix);
    if (m->kind == M_CLEAR_ONE && (eg_mindex_find(ix, m->unit, &slot) != 0)) {
        maint_end(m, EG_ENOTFOUND);
        return;
    }
    m->ids = eg_arena_alloc(&m->a, (eg_mindex_count(ix) + 1) * sizeof(*m->ids));
    for (uint32_t s = 0; s < nslots; s++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);

        if (u == NULL)
            continue;
        if (m->kind == M_RECOVER || m->kind == M_RESET_FAILED
                ? (u->type != EG_FACT_OBSERVATION && !u->invalidated &&
                   u->cstate == EG_MINDEX_CONS_FAILED)
                : u->type == EG_FACT_OBSERVATION)
            m->ids[n++] = eg_arena_strdup(&m->a, u->id);
    }
    m->nids = n;
    if (m->kind == M_RECOVER || m->kind == M_RESET_FAILED || n == 0) {
        if (m->kind == M_CLEAR_ONE) {
            m->ids[0] = m->unit; /* no observations: the memory itself becomes pending */
            m->nids = 1;
        }
        maint_step(m);
        return;
    }
    /* m->ids holds the observations: read them for their sources. */
    m->dels = eg_arena_calloc(&m->a, (n + 1) * sizeof(*m->dels));
    for (size_t i = 0; i < n; i++)
        m->dels[i] = m->ids[i];
    rc = eg_mem_units_get(m->ws, m->bank, m->dels, n, on_maint_obs, m);
    if (rc)
        maint_end(m, rc);
}

static int maint_start(const char *ws_id, const char *bank_id, const char *unit, maint_kind_t kind,
                       eg_consolidate_count_fn cb, void *udata)
{
    maint_t *m;
    int rc;

    if (!eg__cons_bank_ok(ws_id, bank_id) || cb == NULL || (unit != NULL && !eg_uuid_valid(unit)))
        return EG_EINVAL;
    m = eg_xcalloc(1, sizeof(*m));
    eg_arena_init(&m->a);
    m->ws = eg_arena_strdup(&m->a, ws_id);
    m->bank = eg_arena_strdup(&m->a, bank_id);
    m->unit = unit ? eg_arena_strdup(&m->a, unit) : NULL;
    m->kind = kind;
    m->cb = cb;
    m->udata = udata;
    rc = eg_mindex_acquire(ws_id, bank_id, on_maint_index, m);
    if (rc) {
        eg_arena_destroy(&m->a);
        free(m);
    }
    return rc;
}

int eg_consolidate_recover(const char *ws_id, const char *bank_id, eg_consolidate_count_fn cb,
                           void *udata)
{
    return maint_start(ws_id, bank_id, NULL, M_RECOVER, cb, udata);
}

int eg__cons_reset_failed(const char *ws_id, const char *bank_id, eg_consolidate_count_fn cb,
                          void *udata)
{
    return maint_start(ws_id, bank_id, NULL, M_RESET_FAILED, cb, udata);
}

int eg_consolidate_clear(const char *ws_id, const char *bank_id, eg_consolidate_count_fn cb,
                         void *udata)
{
    return maint_start(ws_id, bank_id, NULL, M_CLEAR, cb, udata);
}

int eg_consolidate_clear_memory(const char *ws_id, const char *bank_id, const char *unit_id,
                                eg_consolidate_count_fn cb, void *udata)
{
    if (unit_id == NULL || !eg_uuid_valid(unit_id))
        return EG_ENOTFOUND;
    return maint_start(ws_id, bank_id, unit_id, M_CLEAR_ONE, cb, udata);
}

/* ---- scopes -------------------------------------------------------------------------------------
 */

typedef struct scopes_req_s {
    eg_arena_t a;
    eg_obs_scopes_fn cb;
    void *udata;
} scopes_req_t;

static int cmp_scope(const void *pa, const void *pb)
{
    const eg_obs_scope_t *a = pa, *b = pb;

    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    for (size_t i = 0; i < a->ntags && i < b->ntags; i++) {
        int c = strcmp(a->tags[i], b->tags[i]);
        if (c)
            return c;
    }
    return a->ntags < b->ntags ? -1 : a->ntags > b->ntags;
}

static void on_scopes_index(void *udata, int err, eg_mindex_t *ix)
{
    scopes_req_t *sr = udata;
    eg_obs_scope_t *v = NULL;
    const uint32_t **keys = NULL;
    size_t n = 0, cap = 0, nslots;

    if (err) {
        sr->cb(sr->udata, err, NULL, 0);
        goto done;
    }
    nslots = eg_mindex_slots(ix);
    for (uint32_t s = 0; s < nslots; s++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);
        size_t k;

        if (u == NULL || u->invalidated || u->type != EG_FACT_OBSERVATION)
            continue;
        for (k = 0; k < n; k++)
            if (v[k].ntags == u->ntags &&
                (u->ntags == 0 || memcmp(keys[k], u->tags, u->ntags * sizeof(uint32_t)) == 0))
                break;
        if (k == n) {
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 16;
                eg_obs_scope_t *nv = eg_arena_alloc(&sr->a, nc * sizeof(*nv));
                const uint32_t **nk = eg_arena_alloc(&sr->a, nc * sizeof(*nk));
                if (n) {
                    memcpy(nv, v, n * sizeof(*v));
                    memcpy(nk, keys, n * sizeof(*keys));
                }
                v = nv;
                keys = nk;
                cap = nc;
            }
            const char **tags = eg_arena_alloc(&sr->a, (u->ntags + 1) * sizeof(*tags));
            for (size_t t = 0; t < u->ntags; t++)
                tags[t] = eg_arena_strdup(&sr->a, eg_mindex_tag_name(ix, u->tags[t]));
            qsort(tags, u->ntags, sizeof(*tags), eg__cons_cmp_str);
            v[n] = (eg_obs_scope_t){tags, u->ntags, 0};
            keys[n] = u->tags;
            n++;
        }
        v[k].count++;
    }
    if (n)
        qsort(v, n, sizeof(*v), cmp_scope);
    sr->cb(sr->udata, 0, v, n);
done:
    eg_arena_destroy(&sr->a);
    free(sr);
}

int eg_consolidate_scopes(const char *ws_id, const char *bank_id, eg_obs_scopes_fn cb, void *udata)
{
    scopes_req_t *sr;
    int rc;

    if (!eg__cons_bank_ok(ws_id, bank_id) || cb == NULL)
        return EG_EINVAL;
    sr = eg_xcalloc(1, sizeof(*sr));
    eg_arena_init(&sr->a);
    sr->cb = cb;
    sr->udata = udata;
    rc = eg_mindex_acquire(ws_id, bank_id, on_scopes_index, sr);
    if (rc) {
        eg_arena_destroy(&sr->a);
        free(sr);
    }
    return rc;
}

/* ---- retrying an operation ------------------------------------------------------------------ */

/* KEYS: run key. ARGV: op id. The operation becomes the bank's run; a run that was going on
 * finishes on its own (its finish no longer names it) and this one picks up what is pending. */
static eg_script_t s_cons_adopt = {
    .name = "cons_adopt",
    .source = "redis.call('HSET', KEYS[1], 'op', ARGV[1], 'dirty', '1', 'all', '1')\n"
              "return 1\n",
};

typedef struct retry_s {
    eg_arena_t a;
    char *ws, *bank, *op, *job;
    void (*done)(void *, int);
    void *udata;
} retry_t;

static void retry_end(retry_t *rt, int err)
{
    if (err)
        eg_log_warn("consolidation: the retry of operation %s (bank %s) failed: %s", rt->op,
                    rt->bank, eg_strerror(err));
    rt->done(rt->udata, err);
    eg_arena_destroy(&rt->a);
    free(rt);
}

static void on_retry_pushed(void *udata, int err, bool queued)
{
    (void)queued;
    retry_end(udata, err);
}

static void on_adopted(void *udata, int err, redisReply *r)
{
    retry_t *rt = udata;
    cJSON *p;
    char *s;
    int rc;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = EG_EREDIS;
    if (err) {
        retry_end(rt, err);
        return;
    }
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "ws", rt->ws);
    cJSON_AddStringToObject(p, "bank", rt->bank);
    cJSON_AddStringToObject(p, "op", rt->op);
    s = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    rc = eg_queue_push(EG_CONSOLIDATE_QUEUE, rt->job, s, strlen(s), 0, on_retry_pushed, rt);
    free(s);
    if (rc)
        retry_end(rt, rc);
}

static void on_failed_reset(void *udata, int err, int64_t n)
{
    retry_t *rt = udata;
    const char *argv[2];
    int rc;

    (void)n;
    if (err) {
        retry_end(rt, err);
        return;
    }
    argv[0] = eg__cons_run_key(&rt->a, rt->ws, rt->bank);
    argv[1] = rt->op;
    rc = eg_store_eval(&s_cons_adopt, on_adopted, rt, 1, 2, argv, NULL);
    if (rc)
        retry_end(rt, rc);
}

int eg__cons_retry(const char *ws_id, const char *bank_id, const eg_op_t *op,
                   void (*done)(void *done_udata, int err), void *done_udata)
{
    retry_t *rt;
    int rc;

    if (!eg__cons_bank_ok(ws_id, bank_id) || op == NULL || strlen(op->id) > EG_MEM_UUID_LEN)
        return EG_EINVAL;
    rt = eg_xcalloc(1, sizeof(*rt));
    eg_arena_init(&rt->a);
    rt->ws = eg_arena_strdup(&rt->a, ws_id);
    rt->bank = eg_arena_strdup(&rt->a, bank_id);
    rt->op = eg_arena_strdup(&rt->a, op->id);
    rt->job = eg_arena_printf(&rt->a, "%s:r%lld", op->id, (long long)op->retries);
    rt->done = done;
    rt->udata = done_udata;
    rc = eg__cons_reset_failed(ws_id, bank_id, on_failed_reset, rt);
    if (rc) {
        eg_arena_destroy(&rt->a);
        free(rt);
    }
    return rc;
}
