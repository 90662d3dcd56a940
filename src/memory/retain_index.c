/* Retain's index step: entity resolution and links of a batch against the bank index, run
 * synchronously inside eg_mindex_acquire's callback (the index may change once control returns
 * to the loop, so everything kept across slices is copied into the run's arena: ids, not slots).
 *
 * Nothing here costs the size of the bank per fact: entity candidates come from the index's name
 * dictionary (kept current with the entities, not rebuilt per batch), temporal candidates from
 * its event-time order (a binary search and a walk outwards), and semantic candidates from one
 * batch scan of the vectors for all the facts (eg_vbatch_scan, screened by sign sketches), cut
 * into pieces of the slice budget.
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
#define SCAN_PIECE                                                                                 \
    4096 /* slots of one piece of the semantic scan (the budget is checked                         \
            between pieces) */

/* A fact's best stored semantic candidates so far (ids copied: the scan spans slices). */
typedef struct {
    char id[EG_MEM_UUID_LEN + 1];
    float score;
} sem_hit_t;

typedef struct eg__rsem_s {
    sem_hit_t v[EG_LINKS_SEMANTIC_MAX];
    size_t n;
} eg__rsem_t;

typedef struct {
    eg__run_t *r;
    eg_arena_t *a; /* where resolution allocates */
    eg_mindex_t *ix;
    uint64_t *excluded; /* slot bitmap */
    size_t nbits;
    struct near_ent_s *cache; /* nearby names -> entity (overlap_cb), ncache a power of two */
    size_t ncache;
    size_t fact; /* the fact being linked */
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

/* ---- link candidates ------------------------------------------------------------------------ */

static int64_t event_time(const eg_mindex_unit_t *u)
{
    return u->occurred_start != EG_MEM_TIME_NONE ? u->occurred_start : u->mentioned_at;
}

/* The stored units nearest to t in event time (the link helper keeps the best of them). */
static size_t near_cb(void *ctx, eg_arena_t *a, int64_t t, int64_t window, size_t max,
                      eg_links_stored_t **out)
{
    ictx_t *c = ctx;
    uint32_t *slots = eg_arena_alloc(a, (1 + EG_MINDEX_NEAR_TIES) * max * sizeof(*slots));
    size_t n = eg_mindex_time_near_at(c->ix, t, window, max, keep_slot, c, slots);

    *out = eg_arena_alloc(a, (n + 1) * sizeof(**out));
    for (size_t i = 0; i < n; i++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(c->ix, slots[i]);
        (*out)[i] = (eg_links_stored_t){u->id, event_time(u), 0};
    }
    return n;
}

/* The current fact's semantic candidates, found by the scan. */
static size_t search_cb(void *ctx, eg_arena_t *a, const float *vec, size_t k, float min,
                        eg_links_stored_t **out)
{
    ictx_t *c = ctx;
    const eg__rsem_t *s = &c->r->sem[c->fact];

    (void)vec;
    (void)k;
    (void)min;
    *out = eg_arena_alloc(a, (s->n + 1) * sizeof(**out));
    for (size_t i = 0; i < s->n; i++)
        (*out)[i] = (eg_links_stored_t){s->v[i].id, EG_MEM_TIME_NONE, s->v[i].score};
    return s->n;
}

/* Keep a scan hit among the fact's best: higher score, then the smaller id (the link helper's
 * order, so what it is offered is what a full sort would give it). */
static bool sem_better(float sa, const char *ia, float sb, const char *ib)
{
    return sa > sb || (sa == sb && strcmp(ia, ib) < 0);
}

static void on_sem_hit(void *udata, size_t q, uint32_t slot, float score)
{
    ictx_t *c = udata;
    eg__rsem_t *s = &c->r->sem[q];
    const char *id = eg_mindex_unit(c->ix, slot)->id;
    size_t w = 0;

    if (s->n < EG_LINKS_SEMANTIC_MAX) {
        w = s->n++;
    } else {
        for (size_t i = 1; i < s->n; i++)
            if (sem_better(s->v[w].score, s->v[w].id, s->v[i].score, s->v[i].id))
                w = i;
        if (!sem_better(score, id, s->v[w].score, s->v[w].id))
            return;
    }
    snprintf(s->v[w].id, sizeof(s->v[w].id), "%s", id);
    s->v[w].score = score;
}

/* Scan the next pieces of the bank's vectors until the scan ends or the budget is spent. */
static void scan_slice(ictx_t *c, uint64_t t0)
{
    eg__run_t *r = c->r;
    const eg_vindex_t *vi = eg_mindex_vectors(c->ix);
    uint32_t end = (uint32_t)eg_vindex_slots(vi);

    while (!r->sem_done) {
        if (!r->vbatch || r->sem_next >= end) {
            r->sem_done = true;
            break;
        }
        uint32_t to = r->sem_next + SCAN_PIECE < end ? r->sem_next + SCAN_PIECE : end;
        r->sem_next = eg_vbatch_scan(vi, r->vbatch, r->sem_next, to, keep_slot, c, on_sem_hit, c);
        if (eg_mono_ns() - t0 > EG__RETAIN_SLICE_NS)
            break;
    }
}

static void free_vbatch(void *p)
{
    eg_vbatch_free(p);
}

/* Prepare the scan: every fact's vector in one batch (facts' vectors are r->vecs, in order). A
 * vector index of another dimension (the bank was written with another embedder) offers no
 * semantic candidates; the store refuses the write anyway. */
static void scan_start(ictx_t *c)
{
    eg__run_t *r = c->r;

    r->sem = eg_arena_calloc(&r->arena, (r->nfacts + 1) * sizeof(*r->sem));
    if (!r->vecs || eg_mindex_dim(c->ix) != r->dim || eg_mindex_count(c->ix) == 0) {
        r->sem_done = true;
        return;
    }
    eg_mindex_sketch_vectors(c->ix);
    r->vbatch = eg_vbatch_new(eg_mindex_vectors(c->ix), r->vecs, r->nfacts, EG_LINKS_SEMANTIC_MIN);
    if (r->vbatch)
        eg_arena_defer(&r->arena, free_vbatch, r->vbatch);
    r->sem_next = 0;
}

/* ---- entity candidates ---------------------------------------------------------------------- */

/* What a nearby name (lowercased) can match among co-occurring entities. For an ASCII name that
 * is at most one entity, found through the folded-name map: an entity's lowercased name equals
 * the nearby name only if their folded names are equal (folding lowercases ASCII the same way),
 * and folded names are unique in a bank. Other names are compared name by name. */
enum { NEAR_NONE, NEAR_ONE, NEAR_SLOW };

typedef struct near_ent_s {
    const char *name; /* key: resolution's lowercased string (one pointer per mention) */
    uint32_t idx;
    uint8_t kind;
} near_ent_t;

static const near_ent_t *near_ent(ictx_t *c, const char *name)
{
    size_t mask = c->ncache - 1, i = ((uintptr_t)name >> 4) * 0x9E3779B97F4A7C15ULL >> 20 & mask;
    uint32_t idx;

    for (; c->cache[i].name; i = (i + 1) & mask)
        if (c->cache[i].name == name)
            return &c->cache[i];
    near_ent_t *e = &c->cache[i];
    e->name = name;
    e->kind = NEAR_SLOW;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p >= 0x80)
            return e;
    char *folded = eg_mem_entity_fold(c->a, name);
    if (!folded[0])
        return e;
    if (eg_mindex_entity_by_folded(c->ix, folded, &idx) != 0) {
        e->kind = NEAR_NONE;
    } else if (eg_resolve_lower_eq(eg_mindex_entity(c->ix, idx)->name, name)) {
        e->kind = NEAR_ONE;
        e->idx = idx;
    }
    return e;
}

/* Whether two ascending slot lists share a slot: the shorter one's slots are looked up in the
 * longer by binary search, each search starting where the last ended. */
static bool share_slot(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    if (na > nb) {
        const uint32_t *t = a;
        size_t tn = na;
        a = b;
        na = nb;
        b = t;
        nb = tn;
    }
    size_t lo = 0;
    for (size_t i = 0; i < na && lo < nb; i++) {
        size_t hi = nb;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (b[mid] < a[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < nb && b[lo] == a[i])
            return true;
    }
    return false;
}

/* How many of the nearby names the candidate appeared with: names of entities in its most recent
 * COOC_SLOTS_MAX units (Hindsight keeps a co-occurrence table; the index has entity -> units and
 * unit -> entities). A name that is one known entity is checked by intersecting that entity's
 * units with the candidate's, without reading any unit; a name no entity bears costs nothing;
 * others are compared with the names of the candidate's units' entities. Asked only for
 * candidates whose score could decide a mention. */
static size_t overlap_cb(void *ctx, const eg_resolve_cand_t *cand, const char *const *near,
                         size_t nn)
{
    ictx_t *c = ctx;
    const eg_mindex_entity_t *e = eg_mindex_entity(c->ix, cand->ref);
    size_t hits = 0;

    if (!e)
        return 0;
    uint32_t from = e->nslots > COOC_SLOTS_MAX ? e->nslots - COOC_SLOTS_MAX : 0;
    for (size_t j = 0; j < nn; j++) {
        const near_ent_t *ne = near_ent(c, near[j]);
        if (ne->kind == NEAR_NONE)
            continue;
        if (ne->kind == NEAR_ONE) {
            const eg_mindex_entity_t *x = eg_mindex_entity(c->ix, ne->idx);
            hits += ne->idx != cand->ref && x &&
                    share_slot(e->slots + from, e->nslots - from, x->slots, x->nslots);
            continue;
        }
        bool found = false;
        for (uint32_t k = from; k < e->nslots && !found; k++) {
            const eg_mindex_unit_t *u = eg_mindex_unit(c->ix, e->slots[k]);
            for (uint16_t q = 0; u && q < u->nents && !found; q++) {
                const eg_mindex_entity_t *o = eg_mindex_entity(c->ix, u->ents[q]);
                found = o && u->ents[q] != cand->ref && eg_resolve_lower_eq(o->name, near[j]);
            }
        }
        hits += found;
    }
    return hits;
}

/* Candidates point into the index: resolution finishes within this slice. */
static size_t lookup(void *ctx, eg_arena_t *a, const char *name, eg_resolve_cand_t **out)
{
    ictx_t *c = ctx;
    eg_resolve_hit_t hits[EG_RESOLVE_CAND_MAX];
    size_t n =
        eg_mindex_entity_search(c->ix, name, EG_RESOLVE_CAND_MIN_SIM, hits, EG_RESOLVE_CAND_MAX);

    *out = eg_arena_alloc(a, (n + 1) * sizeof(**out));
    for (size_t i = 0; i < n; i++) {
        const eg_mindex_entity_t *e = eg_mindex_entity(c->ix, hits[i].id);
        (*out)[i] = (eg_resolve_cand_t){
            .id = e->id, .name = e->name, .last_seen = e->last_seen, .ref = hits[i].id};
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

static void resolve_in(ictx_t *c, const eg_resolve_mention_t *m, size_t nm, eg_resolve_out_t *out,
                       eg_resolve_new_t **news, size_t *nnew)
{
    for (c->ncache = 16; c->ncache < 2 * nm + 2;)
        c->ncache *= 2;
    c->cache = eg_arena_calloc(c->a, c->ncache * sizeof(*c->cache));
    eg_resolve_batch(c->a, m, nm, lookup, overlap_cb, c, out, news, nnew);
}

void eg_retain_resolve_mentions(eg_arena_t *a, eg_mindex_t *ix, const eg_resolve_mention_t *m,
                                size_t n, eg_resolve_out_t *out, eg_resolve_new_t **news,
                                size_t *nnew)
{
    ictx_t c = {.a = a, .ix = ix};

    resolve_in(&c, m, n, out, news, nnew);
}

static void resolve_entities(ictx_t *c)
{
    eg__run_t *r = c->r;
    size_t nm = 0;

    for (size_t g = 0; g < r->nfacts; g++)
        nm += r->facts[g].nnames;
    if (nm == 0)
        return;

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
    resolve_in(c, m, nm, out, &news, &nnew);

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
}

/* ---- the step ------------------------------------------------------------------------------- */

bool eg__retain_index_slice(eg__run_t *r, eg_mindex_t *ix)
{
    ictx_t c = {.r = r, .a = &r->arena, .ix = ix};
    uint64_t t0 = eg_mono_ns();

    build_exclusions(&c);
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
        scan_start(&c);
    }
    scan_slice(&c, t0);
    if (!r->sem_done)
        return false;
    while (r->lnext < r->nfacts) {
        eg__rfact_t *f = &r->facts[r->lnext];
        c.fact = r->lnext;
        f->nlinks =
            eg_links_for_unit(&r->arena, r->lbatch, r->lnext, r->dim, near_cb,
                              r->vbatch ? search_cb : NULL, &c, f->causes, f->ncauses, &f->links);
        r->lnext++;
        if (eg_mono_ns() - t0 > EG__RETAIN_SLICE_NS)
            break;
    }
    return r->lnext >= r->nfacts;
}
