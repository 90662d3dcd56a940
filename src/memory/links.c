/* Link computation for retain (see engram/links.h). Candidates from the store and from the batch
 * are pooled and ranked together, so the 20-link limits hold over both. */
#include "engram/links.h"

#include "engram/vindex.h"

#include <stdlib.h>
#include <string.h>

#define US_PER_HOUR (3600.0 * 1e6)

float eg_links_temporal_weight(int64_t dt_us)
{
    double h = (double)(dt_us < 0 ? -dt_us : dt_us) / US_PER_HOUR;
    double w = 1.0 - h / 24.0;
    return w > EG_LINKS_TEMPORAL_FLOOR ? (float)w : EG_LINKS_TEMPORAL_FLOOR;
}

int64_t eg_links_event_time(const eg_mem_unit_t *u)
{
    return u->occurred_start != EG_MEM_TIME_NONE ? u->occurred_start : u->mentioned_at;
}

typedef struct {
    const char *id;
    double key; /* sort key: ascending */
    float weight;
} cand_t;

static int cmp_cand(const void *x, const void *y)
{
    const cand_t *p = x, *q = y;
    if (p->key != q->key)
        return p->key < q->key ? -1 : 1;
    return strcmp(p->id, q->id);
}

static float clamp01(float x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* The best k candidates seen so far (k <= 20), unordered: a later batch unit replaces the worst
 * kept one when it ranks better, so a batch of n units costs n * k, not a sort of n. */
typedef struct {
    cand_t v[EG_LINKS_TEMPORAL_MAX > EG_LINKS_SEMANTIC_MAX ? EG_LINKS_TEMPORAL_MAX
                                                           : EG_LINKS_SEMANTIC_MAX];
    size_t n, k;
} best_t;

static void offer(best_t *b, cand_t c)
{
    if (b->n < b->k) {
        b->v[b->n++] = c;
        return;
    }
    size_t w = 0;
    for (size_t i = 1; i < b->n; i++)
        if (cmp_cand(&b->v[i], &b->v[w]) > 0)
            w = i;
    if (cmp_cand(&c, &b->v[w]) < 0)
        b->v[w] = c;
}

static void temporal(eg_arena_t *a, const eg_links_unit_t *batch, size_t i, eg_links_time_fn near,
                     void *ctx, best_t *b)
{
    int64_t t = batch[i].t;
    eg_links_stored_t *st = NULL;
    size_t ns = 0;

    b->n = 0;
    b->k = EG_LINKS_TEMPORAL_MAX;
    if (t == EG_MEM_TIME_NONE)
        return;
    if (near)
        ns = near(ctx, a, t, EG_LINKS_TEMPORAL_WINDOW_US, EG_LINKS_TEMPORAL_MAX, &st);
    for (size_t k = 0; k < ns; k++) {
        if (st[k].t == EG_MEM_TIME_NONE)
            continue;
        int64_t dt = st[k].t - t;
        if (dt > EG_LINKS_TEMPORAL_WINDOW_US || dt < -EG_LINKS_TEMPORAL_WINDOW_US)
            continue;
        offer(b, (cand_t){eg_arena_strdup(a, st[k].id), (double)llabs(dt),
                          eg_links_temporal_weight(dt)});
    }
    for (size_t j = 0; j < i; j++) {
        if (batch[j].t == EG_MEM_TIME_NONE)
            continue;
        int64_t dt = batch[j].t - t;
        if (dt > EG_LINKS_TEMPORAL_WINDOW_US || dt < -EG_LINKS_TEMPORAL_WINDOW_US)
            continue;
        offer(b, (cand_t){batch[j].id, (double)llabs(dt), eg_links_temporal_weight(dt)});
    }
    qsort(b->v, b->n, sizeof(*b->v), cmp_cand);
}

static void semantic(eg_arena_t *a, const eg_links_unit_t *batch, size_t i, size_t dim,
                     eg_links_search_fn search, void *ctx, best_t *b)
{
    eg_links_stored_t *st = NULL;
    size_t ns = 0;

    b->n = 0;
    b->k = EG_LINKS_SEMANTIC_MAX;
    if (!batch[i].vec)
        return;
    if (search)
        ns = search(ctx, a, batch[i].vec, EG_LINKS_SEMANTIC_MAX, EG_LINKS_SEMANTIC_MIN, &st);
    for (size_t k = 0; k < ns; k++)
        if (st[k].score >= EG_LINKS_SEMANTIC_MIN)
            offer(b, (cand_t){eg_arena_strdup(a, st[k].id), -(double)st[k].score,
                              clamp01(st[k].score)});
    for (size_t j = 0; j < i; j++) {
        if (!batch[j].vec)
            continue;
        float s = eg_vec_dot(batch[i].vec, batch[j].vec, dim);
        if (s >= EG_LINKS_SEMANTIC_MIN)
            offer(b, (cand_t){batch[j].id, -(double)s, clamp01(s)});
    }
    qsort(b->v, b->n, sizeof(*b->v), cmp_cand);
}

size_t eg_links_for_unit(eg_arena_t *a, const eg_links_unit_t *batch, size_t i, size_t dim,
                         eg_links_time_fn near, eg_links_search_fn search, void *ctx,
                         const size_t *causes, size_t ncauses, eg_mem_link_t **out)
{
    best_t b;
    eg_mem_link_t *l = eg_arena_alloc(
        a, (EG_LINKS_TEMPORAL_MAX + EG_LINKS_SEMANTIC_MAX + ncauses + 1) * sizeof(*l));
    size_t n = 0;

    temporal(a, batch, i, near, ctx, &b);
    for (size_t q = 0; q < b.n; q++)
        l[n++] = (eg_mem_link_t){b.v[q].id, EG_LINK_TEMPORAL, b.v[q].weight};
    semantic(a, batch, i, dim, search, ctx, &b);
    for (size_t q = 0; q < b.n; q++)
        l[n++] = (eg_mem_link_t){b.v[q].id, EG_LINK_SEMANTIC, b.v[q].weight};
    for (size_t q = 0; q < ncauses; q++) {
        if (causes[q] >= i)
            continue;
        bool dup = false;
        for (size_t r = 0; r < q && !dup; r++)
            dup = causes[r] == causes[q];
        if (!dup)
            l[n++] =
                (eg_mem_link_t){batch[causes[q]].id, EG_LINK_CAUSED_BY, EG_LINKS_CAUSAL_WEIGHT};
    }
    *out = l;
    return n;
}
