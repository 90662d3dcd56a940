/* The builtin (model-free) path of consolidation: no text of its own. A fact within cosine 0.9
 * (the index's vectors) of an observation of one of its scopes joins it (proof_count = its
 * sources); one within 0.9 of facts of the scope (tags containing the scope's) of which none is a
 * source of an observation there starts one with them, its text the earliest fact's. Every source
 * of an observation is within 0.9 of it (it joined that way, or the observation is the text of a
 * fact within 0.9), so the observations holding a fact that repeats the new one are found among
 * the observations near that fact. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "engram/embed.h"
#include "engram/error.h"
#include "engram/util.h"
#include "memory/consolidate_int.h"
#include "memory/memories_int.h"

#define NEAR_K 16 /* neighbours looked at per fact and scope */

/* ---- the builtin path
 * ----------------------------------------------------------------------------- */

/* What the index says about one (fact, scope): observations of the scope near the fact (direct)
 * or near a fact that repeats it, and the facts of the scope that repeat it. */
typedef struct near_s {
    size_t f, s;
    const char **obs;
    float *score;
    bool *direct;
    size_t nobs;
    const char **facts;
    size_t nfacts;
} near_t;

/* An observation the batch creates or changes. */
typedef struct tobs_s {
    eg_mem_unit_t *u;
    bool is_new, changed;
    int64_t expect;
    size_t f, s; /* the scope: facts[f].scopes[s] */
} tobs_t;

typedef struct builtin_s {
    near_t *near;
    size_t nnear;
    const char **fetch; /* candidate records to read */
    size_t nfetch;
    const eg_mem_unit_t **recs; /* their records (copies), NULL when gone */
    tobs_t *obs;
    size_t nobs, cap;
    float *vecs;
    size_t next; /* the next fact the near search looks at (the search runs in slices) */
} builtin_t;

/* The near search of a batch yields to the loop after this much time (a fact's search scans the
 * bank's vectors: a batch of 50 at 100k facts would hold the loop for ~0.1 s). */
#define NEAR_SLICE_NS 4000000

typedef struct filt_s {
    eg_mindex_t *ix;
    uint32_t self;
    const uint32_t *tags;
    size_t ntags;
    bool facts; /* facts of the scope too, not only its observations */
} filt_t;

static bool near_filter(uint32_t slot, void *udata)
{
    const filt_t *f = udata;
    const eg_mindex_unit_t *u = eg_mindex_unit(f->ix, slot);

    if (u == NULL || u->invalidated || slot == f->self)
        return false;
    if (u->type == EG_FACT_OBSERVATION)
        return eg__cons_tags_exact(u, f->tags, f->ntags);
    return f->facts && eg__cons_tags_superset(u, f->tags, f->ntags);
}

static void fetch_add(eg__cons_run_t *r, builtin_t *b, const char *id)
{
    for (size_t i = 0; i < b->nfetch; i++)
        if (strcmp(b->fetch[i], id) == 0)
            return;
    for (size_t i = 0; i < r->nfacts; i++)
        if (strcmp(r->facts[i].u->id, id) == 0)
            return;
    b->fetch[b->nfetch++] = eg_arena_strdup(&r->batch, id);
}

static void near_obs_add(eg_arena_t *a, near_t *nr, const char *id, float score, bool direct)
{
    for (size_t i = 0; i < nr->nobs; i++) {
        if (strcmp(nr->obs[i], id) == 0) {
            if (direct && (!nr->direct[i] || score > nr->score[i])) {
                nr->direct[i] = true;
                nr->score[i] = score;
            }
            return;
        }
    }
    nr->obs[nr->nobs] = eg_arena_strdup(a, id);
    nr->score[nr->nobs] = score;
    nr->direct[nr->nobs] = direct;
    nr->nobs++;
}

static void builtin_records(void *udata, int err, const eg_mem_unit_t *const *units, size_t n);

static void on_builtin_index(void *udata, int err, eg_mindex_t *ix)
{
    eg__cons_run_t *r = udata;
    builtin_t *b = r->path;
    size_t dim, total = 0;
    float *v, *gv;
    eg_vhit_t hits[NEAR_K], ohits[4];
    int rc;

    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    dim = eg_mindex_dim(ix);
    v = eg_arena_alloc(&r->batch, (dim + 1) * sizeof(float));
    gv = eg_arena_alloc(&r->batch, (dim + 1) * sizeof(float));
    if (b->near == NULL) {
        for (size_t i = 0; i < r->nfacts; i++)
            total += r->facts[i].nscopes;
        b->near = eg_arena_calloc(&r->batch, (total + 1) * sizeof(*b->near));
        b->fetch = eg_arena_alloc(&r->batch, (total * NEAR_K * 5 + 1) * sizeof(*b->fetch));
    }
    uint64_t t0 = eg_mono_ns();
    for (size_t i = b->next; i < r->nfacts; i++) {
        uint32_t slot;

        if (i > b->next && eg_mono_ns() - t0 > NEAR_SLICE_NS) {
            /* The rest after a loop turn, against the index as it is then. */
            b->next = i;
            if ((rc = eg_mindex_acquire(r->ws, r->bank, on_builtin_index, r)) != 0)
                eg__cons_batch_done(r, rc);
            return;
        }

        if (eg_mindex_find(ix, r->facts[i].u->id, &slot) != 0 ||
            eg_vindex_get(eg_mindex_vectors(ix), slot, v) != 0)
            continue;
        for (size_t s = 0; s < r->facts[i].nscopes; s++) {
            near_t *nr = &b->near[b->nnear++];
            filt_t flt = {ix, slot, eg__cons_scope_ids(&r->batch, ix, &r->facts[i].scopes[s]),
                          r->facts[i].scopes[s].ntags, true};
            eg_vsearch_t q = {.k = NEAR_K,
                              .min_score = EG_CONSOLIDATE_DUP_MIN,
                              .filter = near_filter,
                              .udata = &flt};
            size_t nh = eg_vindex_search(eg_mindex_vectors(ix), v, &q, hits);

            nr->f = i;
            nr->s = s;
            nr->obs = eg_arena_alloc(&r->batch, (NEAR_K * 5 + 1) * sizeof(*nr->obs));
            nr->score = eg_arena_alloc(&r->batch, (NEAR_K * 5 + 1) * sizeof(*nr->score));
            nr->direct = eg_arena_alloc(&r->batch, (NEAR_K * 5 + 1) * sizeof(*nr->direct));
            nr->facts = eg_arena_alloc(&r->batch, (NEAR_K + 1) * sizeof(*nr->facts));
            for (size_t h = 0; h < nh; h++) {
                const eg_mindex_unit_t *u = eg_mindex_unit(ix, hits[h].slot);

                if (u->type == EG_FACT_OBSERVATION) {
                    near_obs_add(&r->batch, nr, u->id, hits[h].score, true);
                    fetch_add(r, b, u->id);
                    continue;
                }
                nr->facts[nr->nfacts++] = eg_arena_strdup(&r->batch, u->id);
                fetch_add(r, b, u->id);
                /* The observations near that fact: one of them may hold it. */
                if (eg_vindex_get(eg_mindex_vectors(ix), hits[h].slot, gv) == 0) {
                    filt_t of = flt;
                    eg_vsearch_t oq = q;
                    size_t no;

                    of.self = hits[h].slot;
                    of.facts = false;
                    oq.k = 4;
                    oq.udata = &of;
                    no = eg_vindex_search(eg_mindex_vectors(ix), gv, &oq, ohits);
                    for (size_t k = 0; k < no; k++) {
                        const eg_mindex_unit_t *o = eg_mindex_unit(ix, ohits[k].slot);
                        near_obs_add(&r->batch, nr, o->id, ohits[k].score, false);
                        fetch_add(r, b, o->id);
                    }
                }
            }
        }
    }
    b->next = r->nfacts;
    rc = eg_mem_units_get(r->ws, r->bank, b->fetch, b->nfetch, builtin_records, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

/* A record by id: the batch's facts, then the fetched candidates. */
static const eg_mem_unit_t *rec_of(eg__cons_run_t *r, builtin_t *b, const char *id)
{
    for (size_t i = 0; i < r->nfacts; i++)
        if (strcmp(r->facts[i].u->id, id) == 0)
            return r->facts[i].u;
    for (size_t i = 0; i < b->nfetch; i++)
        if (b->recs[i] && strcmp(b->fetch[i], id) == 0)
            return b->recs[i];
    return NULL;
}

static const eg_obs_scope_t *tobs_scope(eg__cons_run_t *r, const tobs_t *t)
{
    return &r->facts[t->f].scopes[t->s];
}

/* The touched observation with this id (loaded on first touch), or NULL when unknown. */
static tobs_t *touch(eg__cons_run_t *r, builtin_t *b, const char *id, size_t f, size_t s)
{
    const eg_mem_unit_t *o;

    for (size_t i = 0; i < b->nobs; i++)
        if (strcmp(b->obs[i].u->id, id) == 0)
            return &b->obs[i];
    o = rec_of(r, b, id);
    if (o == NULL || o->type != EG_FACT_OBSERVATION || o->invalidated)
        return NULL;
    b->obs[b->nobs] = (tobs_t){eg__mem_unit_copy(&r->batch, o), false, false, o->updated_at, f, s};
    return &b->obs[b->nobs++];
}

static int64_t when_of(const eg_mem_unit_t *u)
{
    return u->mentioned_at != EG_MEM_TIME_NONE ? u->mentioned_at : u->created_at;
}

static tobs_t *new_obs(eg__cons_run_t *r, builtin_t *b, size_t f, size_t s, int64_t now)
{
    eg_mem_unit_t *o = eg_arena_calloc(&r->batch, sizeof(*o));
    char *id = eg_arena_alloc(&r->batch, 37);
    const eg_obs_scope_t *sc = &r->facts[f].scopes[s];

    eg_uuid_v4(id);
    o->id = id;
    o->text = "";
    o->context = "";
    o->type = EG_FACT_OBSERVATION;
    o->occurred_start = o->occurred_end = o->mentioned_at = EG_MEM_TIME_NONE;
    o->created_at = o->updated_at = now;
    o->tags = sc->tags;
    o->ntags = sc->ntags;
    o->invalidated_at = o->edited_at = EG_MEM_TIME_NONE;
    o->consolidated_at = o->consolidation_failed_at = EG_MEM_TIME_NONE;
    b->obs[b->nobs] = (tobs_t){o, true, true, EG_MEM_TIME_NONE, f, s};
    return &b->obs[b->nobs++];
}

static void builtin_decide(eg__cons_run_t *r, builtin_t *b, int64_t now)
{
    for (size_t n = 0; n < b->nnear; n++) {
        near_t *nr = &b->near[n];
        const eg_mem_unit_t *f = r->facts[nr->f].u;
        const eg_obs_scope_t *sc = &r->facts[nr->f].scopes[nr->s];
        tobs_t *target = NULL;
        float best = -FLT_MAX;
        bool already = false;

        /* Already taken in by an observation of this scope (as a repeat of an earlier fact)? */
        for (size_t i = 0; i < b->nobs && !already; i++)
            already = eg__cons_same_scope(tobs_scope(r, &b->obs[i]), sc) && eg__cons_has_source(b->obs[i].u, f->id);
        if (already)
            continue;
        /* An observation of the scope near the fact itself. */
        for (size_t i = 0; i < nr->nobs; i++) {
            tobs_t *t;
            if (!nr->direct[i] || nr->score[i] <= best)
                continue;
            if ((t = touch(r, b, nr->obs[i], nr->f, nr->s)) != NULL) {
                target = t;
                best = nr->score[i];
            }
        }
        /* One that holds a fact repeating it (fetched, or made by this batch). */
        for (size_t g = 0; !target && g < nr->nfacts; g++) {
            for (size_t i = 0; !target && i < nr->nobs; i++) {
                const eg_mem_unit_t *o = rec_of(r, b, nr->obs[i]);
                if (o && eg__cons_has_source(o, nr->facts[g]))
                    target = touch(r, b, nr->obs[i], nr->f, nr->s);
            }
            for (size_t i = 0; !target && i < b->nobs; i++)
                if (eg__cons_same_scope(tobs_scope(r, &b->obs[i]), sc) &&
                    eg__cons_has_source(b->obs[i].u, nr->facts[g]))
                    target = &b->obs[i];
        }
        if (target) {
            if (!eg__cons_has_source(target->u, f->id)) {
                const char *src[1] = {f->id};
                if (!target->is_new)
                    target->u->history = eg__cons_history_add(&r->batch, target->u->history,
                                                              target->u->text, target->u->text, now,
                                                              "repeated by another fact", src, 1);
                eg__cons_absorb(&r->batch, target->u, f);
                target->u->updated_at = now;
                target->changed = true;
            }
            continue;
        }
        if (nr->nfacts == 0)
            continue;
        /* A new observation: this fact and the repeats no observation of the scope holds. */
        {
            tobs_t *t = new_obs(r, b, nr->f, nr->s, now);
            const eg_mem_unit_t *earliest = f;

            eg__cons_absorb(&r->batch, t->u, f);
            for (size_t g = 0; g < nr->nfacts; g++) {
                const eg_mem_unit_t *gu = rec_of(r, b, nr->facts[g]);
                bool held = false;

                if (gu == NULL || gu->invalidated || gu->type == EG_FACT_OBSERVATION)
                    continue;
                for (size_t i = 0; i < nr->nobs && !held; i++) {
                    const eg_mem_unit_t *o = rec_of(r, b, nr->obs[i]);
                    held = o && o->type == EG_FACT_OBSERVATION && eg__cons_has_source(o, gu->id);
                }
                if (held)
                    continue;
                eg__cons_absorb(&r->batch, t->u, gu);
                if (when_of(gu) < when_of(earliest) ||
                    (when_of(gu) == when_of(earliest) && gu->created_at < earliest->created_at))
                    earliest = gu;
            }
            t->u->text = eg_arena_strdup(&r->batch, earliest->text);
        }
    }
}

static void on_builtin_applied(void *udata, int err, int64_t facts, int64_t puts, int64_t dels)
{
    eg__cons_run_t *r = udata;
    builtin_t *b = r->path;

    (void)facts;
    (void)puts;
    (void)dels;
    if (err == 0)
        for (size_t i = 0; i < b->nobs; i++)
            if (b->obs[i].changed) {
                if (b->obs[i].is_new)
                    r->created++;
                else
                    r->updated++;
            }
    eg__cons_batch_done(r, err);
}

static void builtin_apply(eg__cons_run_t *r)
{
    builtin_t *b = r->path;
    eg__cons_put_t *puts = eg_arena_alloc(&r->batch, (b->nobs + 1) * sizeof(*puts));
    eg__cons_apply_t ch = {0};
    eg_embedder_t *e = eg__cons_embedder();
    size_t np = 0, k = 0;
    int rc;

    for (size_t i = 0; i < b->nobs; i++) {
        if (!b->obs[i].changed)
            continue;
        puts[np] = (eg__cons_put_t){*b->obs[i].u, NULL, b->obs[i].is_new, b->obs[i].expect};
        if (b->obs[i].is_new)
            puts[np].vec = b->vecs + (k++) * e->dim;
        np++;
    }
    eg__cons_mark_facts(r, eg_now_ms() * 1000, (const eg_mem_unit_t ***)&ch.facts, &ch.nfacts);
    ch.puts = puts;
    ch.nputs = np;
    ch.dim = e->dim;
    rc = eg__cons_apply(r->ws, r->bank, &ch, on_builtin_applied, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static void on_builtin_embedded(eg_embedder_t *e, int status, void *udata)
{
    eg__cons_run_t *r = udata;

    (void)e;
    if (status) {
        eg__cons_batch_done(r, status);
        return;
    }
    builtin_apply(r);
}

static void builtin_records(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    eg__cons_run_t *r = udata;
    builtin_t *b = r->path;
    eg_embedder_t *e = eg__cons_embedder();
    const char **texts;
    size_t nt = 0;
    int rc;

    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    b->recs = eg_arena_calloc(&r->batch, (n + 1) * sizeof(*b->recs));
    for (size_t i = 0; i < n; i++)
        if (units[i])
            b->recs[i] = eg__mem_unit_copy(&r->batch, units[i]);
    b->cap = b->nnear + b->nfetch + 1;
    b->obs = eg_arena_calloc(&r->batch, b->cap * sizeof(*b->obs));
    builtin_decide(r, b, eg_now_ms() * 1000);
    texts = eg_arena_alloc(&r->batch, (b->nobs + 1) * sizeof(*texts));
    for (size_t i = 0; i < b->nobs; i++)
        if (b->obs[i].is_new)
            texts[nt++] = b->obs[i].u->text;
    if (nt == 0) {
        builtin_apply(r);
        return;
    }
    b->vecs = eg_arena_alloc(&r->batch, nt * e->dim * sizeof(float));
    rc = eg_embed_run(e, texts, nt, b->vecs, on_builtin_embedded, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

void eg__cons_builtin_batch(eg__cons_run_t *r)
{
    int rc;

    r->path = eg_arena_calloc(&r->batch, sizeof(builtin_t));
    rc = eg_mindex_acquire(r->ws, r->bank, on_builtin_index, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}
