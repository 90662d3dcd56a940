/* Retain's index step: entity resolution and links of a batch against the bank index, run
 * synchronously inside eg_mindex_acquire's callback (the index may change once control returns
 * to the loop, so everything kept is copied into the run's arena).
 *
 * Units the batch replaces (the old units of a caller's document) and units with the batch's own
 * ids (a re-run of an asynchronous job whose earlier attempt got some documents written) are left
 * out as link candidates: the first go with the write, the second are the batch itself. */
#include <stdlib.h>
#include <string.h>

#include "engram/links.h"
#include "engram/resolve.h"
#include "engram/util.h"
#include "engram/vindex.h"
#include "memory/retain_int.h"

#define COOC_SLOTS_MAX 200 /* a candidate's most recent units looked at for co-occurrence */
#define COOC_NAMES_MAX 500 /* co-occurring names kept per candidate */

typedef struct {
    int64_t t;
    uint32_t slot;
} tslot_t;

typedef struct {
    eg__run_t *r;
    eg_mindex_t *ix;
    uint64_t *excluded; /* slot bitmap */
    size_t nbits;
    tslot_t *times; /* candidate units with an occurred_start, by it */
    size_t ntimes;
    const uint32_t *order; /* the index's mentioned_at order */
    size_t norder, order_first;
    eg_resolve_dict_t *dict;
    uint32_t *stamp; /* per entity index: last lookup that saw it (co-occurrence dedupe) */
    uint32_t stamp_now;
} ictx_t;

static bool excluded(const ictx_t *c, uint32_t s)
{
    return s < c->nbits && (c->excluded[s / 64] >> (s % 64)) & 1;
}

static void exclude(ictx_t *c, uint32_t s)
{
    if (s < c->nbits)
        c->excluded[s / 64] |= 1ULL << (s % 64);
}

static bool keep_slot(uint32_t slot, void *udata)
{
    const ictx_t *c = udata;
    const eg_mindex_unit_t *u = eg_mindex_unit(c->ix, slot);

    return u && !u->invalidated && !excluded(c, slot);
}

static int cmp_tslot(const void *a, const void *b)
{
    const tslot_t *p = a, *q = b;
    if (p->t != q->t)
        return p->t < q->t ? -1 : 1;
    return p->slot < q->slot ? -1 : p->slot > q->slot;
}

static void build_exclusions(ictx_t *c)
{
    eg__run_t *r = c->r;
    uint32_t didx, slot;

    c->nbits = eg_mindex_slots(c->ix);
    c->excluded = eg_arena_calloc(&r->arena, (c->nbits / 64 + 1) * sizeof(uint64_t));
    for (size_t d = 0; d < r->ndocs; d++) {
        if (!r->docs[d].caller_id || eg_mindex_doc_by_id(c->ix, r->docs[d].id, &didx) != 0)
            continue;
        size_t n = eg_mindex_doc_units(c->ix, didx, NULL, 0);
        uint32_t *v = eg_arena_alloc(&r->arena, (n + 1) * sizeof(*v));
        n = eg_mindex_doc_units(c->ix, didx, v, n);
        for (size_t k = 0; k < n; k++)
            exclude(c, v[k]);
    }
    for (size_t g = 0; g < r->nfacts; g++)
        if (eg_mindex_find(c->ix, r->facts[g].id, &slot) == 0)
            exclude(c, slot);
}

/* Temporal candidates come from two orders: the index's mentioned_at order (eg_mindex_by_time,
 * kept current by the index) for units whose event time is their mention time, and a sorted list
 * of the units with an occurred_start, which are usually few. */
static void build_times(ictx_t *c)
{
    eg__run_t *r = c->r;

    c->times = eg_arena_alloc(&r->arena, 64 * sizeof(*c->times));
    size_t cap = 64;
    for (uint32_t s = 0; s < c->nbits; s++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(c->ix, s);
        if (!u || u->invalidated || excluded(c, s) || u->occurred_start == EG_MEM_TIME_NONE)
            continue;
        if (c->ntimes == cap) {
            tslot_t *v = eg_arena_alloc(&r->arena, cap * 2 * sizeof(*v));
            memcpy(v, c->times, c->ntimes * sizeof(*v));
            c->times = v;
            cap *= 2;
        }
        c->times[c->ntimes++] = (tslot_t){u->occurred_start, s};
    }
    qsort(c->times, c->ntimes, sizeof(*c->times), cmp_tslot);
    c->order = eg_mindex_by_time(c->ix, &c->norder);
    /* Units without a mention time come first in that order; skip them. */
    size_t lo = 0, hi = c->norder;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (eg_mindex_unit(c->ix, c->order[mid])->mentioned_at == EG_MEM_TIME_NONE)
            lo = mid + 1;
        else
            hi = mid;
    }
    c->order_first = lo;
}

/* A unit of the mention order that the occurred list does not cover and that may be linked. */
static bool order_ok(const ictx_t *c, uint32_t s)
{
    const eg_mindex_unit_t *u = eg_mindex_unit(c->ix, s);
    return !u->invalidated && !excluded(c, s) && u->occurred_start == EG_MEM_TIME_NONE;
}

static int64_t order_t(const ictx_t *c, size_t i)
{
    return eg_mindex_unit(c->ix, c->order[i])->mentioned_at;
}

/* The stored units nearest to t within the window: up to max from each order, walking outwards
 * from t's position (the link helper keeps the best of them). */
static size_t near_cb(void *ctx, eg_arena_t *a, int64_t t, int64_t window, size_t max,
                      eg_links_stored_t **out)
{
    ictx_t *c = ctx;
    size_t n = 0, lo, hi;

    *out = eg_arena_alloc(a, (2 * max + 1) * sizeof(**out));

    for (lo = 0, hi = c->ntimes; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->times[mid].t < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    ptrdiff_t l = (ptrdiff_t)lo - 1;
    size_t rr = lo, got = 0;
    while (got < max) {
        int64_t dl = l >= 0 ? t - c->times[l].t : INT64_MAX;
        int64_t dr = rr < c->ntimes ? c->times[rr].t - t : INT64_MAX;
        if (dl > window && dr > window)
            break;
        const tslot_t *ts = dl <= dr ? &c->times[l--] : &c->times[rr++];
        (*out)[n++] = (eg_links_stored_t){eg_mindex_unit(c->ix, ts->slot)->id, ts->t, 0};
        got++;
    }

    for (lo = c->order_first, hi = c->norder; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        if (order_t(c, mid) < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    l = (ptrdiff_t)lo - 1;
    rr = lo;
    got = 0;
    while (got < max) {
        int64_t dl = l >= (ptrdiff_t)c->order_first ? t - order_t(c, (size_t)l) : INT64_MAX;
        int64_t dr = rr < c->norder ? order_t(c, rr) - t : INT64_MAX;
        if (dl > window && dr > window)
            break;
        size_t i = dl <= dr ? (size_t)l-- : rr++;
        uint32_t s = c->order[i];
        if (!order_ok(c, s))
            continue;
        (*out)[n++] = (eg_links_stored_t){eg_mindex_unit(c->ix, s)->id, order_t(c, i), 0};
        got++;
    }
    return n;
}

static size_t search_cb(void *ctx, eg_arena_t *a, const float *vec, size_t k, float min,
                        eg_links_stored_t **out)
{
    ictx_t *c = ctx;
    eg_vsearch_t opts = {.k = k, .min_score = min, .filter = keep_slot, .udata = c};
    eg_vhit_t *hits = eg_arena_alloc(a, (k + 1) * sizeof(*hits));
    size_t n = eg_vindex_search(eg_mindex_vectors(c->ix), vec, &opts, hits);

    *out = eg_arena_alloc(a, (n + 1) * sizeof(**out));
    for (size_t i = 0; i < n; i++)
        (*out)[i] = (eg_links_stored_t){eg_mindex_unit(c->ix, hits[i].slot)->id, EG_MEM_TIME_NONE,
                                        hits[i].score};
    return n;
}

/* ---- entity candidates ---------------------------------------------------------------------- */

/* The names of the entities a candidate appeared with: the other entities of its most recent
 * units (Hindsight keeps a co-occurrence table; the index has unit -> entities). */
static void cooc_names(ictx_t *c, eg_arena_t *a, uint32_t idx, eg_resolve_cand_t *cand)
{
    const eg_mindex_entity_t *e = eg_mindex_entity(c->ix, idx);
    const char **names = eg_arena_alloc(a, COOC_NAMES_MAX * sizeof(*names));
    size_t n = 0;
    uint32_t from = e->nslots > COOC_SLOTS_MAX ? e->nslots - COOC_SLOTS_MAX : 0;

    c->stamp_now++;
    c->stamp[idx] = c->stamp_now;
    for (uint32_t k = from; k < e->nslots && n < COOC_NAMES_MAX; k++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(c->ix, e->slots[k]);
        if (!u)
            continue;
        for (uint16_t q = 0; q < u->nents && n < COOC_NAMES_MAX; q++) {
            uint32_t o = u->ents[q];
            const eg_mindex_entity_t *oe = eg_mindex_entity(c->ix, o);
            if (!oe || c->stamp[o] == c->stamp_now)
                continue;
            c->stamp[o] = c->stamp_now;
            names[n++] = oe->name;
        }
    }
    cand->cooc = names;
    cand->ncooc = n;
}

static size_t lookup(void *ctx, eg_arena_t *a, const char *name, eg_resolve_cand_t **out)
{
    ictx_t *c = ctx;
    eg_resolve_hit_t hits[EG_RESOLVE_CAND_MAX];
    size_t n =
        eg_resolve_dict_search(c->dict, name, EG_RESOLVE_CAND_MIN_SIM, hits, EG_RESOLVE_CAND_MAX);

    *out = eg_arena_alloc(a, (n + 1) * sizeof(**out));
    for (size_t i = 0; i < n; i++) {
        const eg_mindex_entity_t *e = eg_mindex_entity(c->ix, hits[i].id);
        eg_resolve_cand_t *cand = &(*out)[i];
        cand->id = eg_arena_strdup(a, e->id);
        cand->name = eg_arena_strdup(a, e->name);
        cand->last_seen = e->last_seen;
        cooc_names(c, a, hits[i].id, cand);
    }
    return n;
}

/* ---- entities ------------------------------------------------------------------------------- */

static eg__rent_t *ent_find(eg__run_t *r, const char *id)
{
    for (size_t e = 0; e < r->nents; e++)
        if (strcmp(r->ents[e].id, id) == 0)
            return &r->ents[e];
    return NULL;
}

static eg__rent_t *ent_add(eg__run_t *r, const char *id, const char *name, bool is_new)
{
    eg__rent_t *e = ent_find(r, id);
    if (e)
        return e;
    e = &r->ents[r->nents++];
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->name = eg_arena_strdup(&r->arena, name);
    e->is_new = is_new;
    e->created = false;
    return e;
}

static void resolve_entities(ictx_t *c)
{
    eg__run_t *r = c->r;
    size_t nm = 0, nents = eg_mindex_entities(c->ix);

    for (size_t g = 0; g < r->nfacts; g++)
        nm += r->facts[g].nnames;
    if (nm == 0)
        return;
    c->dict = eg_resolve_dict_new();
    for (uint32_t i = 0; i < nents; i++) {
        const eg_mindex_entity_t *e = eg_mindex_entity(c->ix, i);
        if (e)
            eg_resolve_dict_add(c->dict, i, e->name);
    }
    c->stamp = eg_xcalloc(nents + 1, sizeof(*c->stamp));

    eg_resolve_mention_t *m = eg_arena_alloc(&r->arena, nm * sizeof(*m));
    eg_resolve_out_t *out = eg_arena_alloc(&r->arena, nm * sizeof(*out));
    size_t k = 0;
    for (size_t g = 0; g < r->nfacts; g++) {
        eg__rfact_t *f = &r->facts[g];
        int64_t ev =
            f->x.occurred_start != EG_MEM_TIME_NONE ? f->x.occurred_start : f->mentioned_at;
        for (size_t q = 0; q < f->nnames; q++)
            m[k++] = (eg_resolve_mention_t){f->names[q], g, ev == EG_MEM_TIME_NONE ? INT64_MIN : ev,
                                            f->resolve[q]};
    }
    eg_resolve_new_t *news;
    size_t nnew;
    eg_resolve_batch(&r->arena, m, nm, lookup, c, out, &news, &nnew);

    /* Ids of the new entities; a name the bank has under the same folded spelling (a resolution
     * that scored low but is the same name) is that entity. */
    const char **new_ids = eg_arena_alloc(&r->arena, (nnew + 1) * sizeof(*new_ids));
    bool *new_existing = eg_arena_calloc(&r->arena, nnew + 1);
    for (size_t j = 0; j < nnew; j++) {
        uint32_t idx;
        char *folded = eg_mem_entity_fold(&r->arena, news[j].name);
        if (folded && folded[0] && eg_mindex_entity_by_folded(c->ix, folded, &idx) == 0) {
            new_ids[j] = eg_arena_strdup(&r->arena, eg_mindex_entity(c->ix, idx)->id);
            new_existing[j] = true;
            continue;
        }
        char *id = eg_arena_alloc(&r->arena, EG_MEM_UUID_LEN + 1);
        if (r->op_id)
            eg_retain_derived_id(r->op_id, "e", folded ? folded : news[j].name, id);
        else
            eg_uuid_v4(id);
        new_ids[j] = id;
    }

    r->ents = eg_arena_alloc(&r->arena, (nm + 1) * sizeof(*r->ents));
    k = 0;
    for (size_t g = 0; g < r->nfacts; g++) {
        eg__rfact_t *f = &r->facts[g];
        f->entity_ids = eg_arena_alloc(&r->arena, (f->nnames + 1) * sizeof(*f->entity_ids));
        for (size_t q = 0; q < f->nnames; q++, k++) {
            eg__rent_t *e;
            if (out[k].entity_id) {
                uint32_t idx;
                const char *name = f->names[q];
                if (eg_mindex_entity_by_id(c->ix, out[k].entity_id, &idx) == 0)
                    name = eg_mindex_entity(c->ix, idx)->name;
                e = ent_add(r, out[k].entity_id, name, false);
            } else {
                size_t j = out[k].new_index;
                const char *name = news[j].name;
                if (new_existing[j]) {
                    uint32_t idx;
                    if (eg_mindex_entity_by_id(c->ix, new_ids[j], &idx) == 0)
                        name = eg_mindex_entity(c->ix, idx)->name;
                }
                e = ent_add(r, new_ids[j], name, !new_existing[j]);
            }
            bool dup = false;
            for (size_t p = 0; p < f->nentity_ids && !dup; p++)
                dup = strcmp(f->entity_ids[p], e->id) == 0;
            if (!dup)
                f->entity_ids[f->nentity_ids++] = e->id;
        }
    }
    free(c->stamp);
    eg_resolve_dict_free(c->dict);
}

/* ---- the step ------------------------------------------------------------------------------- */

bool eg__retain_index_slice(eg__run_t *r, eg_mindex_t *ix)
{
    ictx_t c = {.r = r, .ix = ix};
    uint64_t t0 = eg_mono_ns();

    build_exclusions(&c);
    build_times(&c);
    if (!r->resolved) {
        resolve_entities(&c);
        eg_links_unit_t *batch = eg_arena_alloc(&r->arena, (r->nfacts + 1) * sizeof(*batch));
        for (size_t g = 0; g < r->nfacts; g++) {
            eg__rfact_t *f = &r->facts[g];
            batch[g].id = f->id;
            batch[g].t =
                f->x.occurred_start != EG_MEM_TIME_NONE ? f->x.occurred_start : f->mentioned_at;
            batch[g].vec = f->vec;
        }
        r->lbatch = batch;
        r->resolved = true;
    }
    /* A vector index of another dimension (the bank was written with another embedder) offers no
     * semantic candidates; the store refuses the write anyway. */
    bool same_dim = eg_mindex_dim(ix) == r->dim;
    while (r->lnext < r->nfacts) {
        eg__rfact_t *f = &r->facts[r->lnext];
        f->nlinks =
            eg_links_for_unit(&r->arena, r->lbatch, r->lnext, r->dim, near_cb,
                              same_dim ? search_cb : NULL, &c, f->causes, f->ncauses, &f->links);
        r->lnext++;
        if (eg_mono_ns() - t0 > EG__RETAIN_SLICE_NS)
            break;
    }
    return r->lnext >= r->nfacts;
}
