/* Entity resolution of a retain batch: Hindsight's candidate scoring, then the merging of the
 * batch's new names. Each mention is decided on its own (its fact's other names and time differ),
 * as Hindsight does, so two spellings of one name in a batch may land on different entities only
 * when their evidence differs. */
#include <string.h>

#include "engram/resolve.h"
#include "engram/util.h"

#define US_PER_DAY (86400.0 * 1e6)

/* The score with every name already lowercased: nearby unique, cooc as given. */
static double score_lowered(const char *name_low, const char *const *nearby_low, size_t nnearby,
                            int64_t event, const char *cand_low, const char *const *cooc_low,
                            size_t ncooc, int64_t last_seen)
{
    double s = EG_RESOLVE_W_NAME *
               eg_resolve_seq_ratio(name_low, strlen(name_low), cand_low, strlen(cand_low));
    if (nnearby > 0) {
        size_t overlap = 0;
        for (size_t i = 0; i < nnearby; i++) {
            for (size_t k = 0; k < ncooc; k++) {
                if (strcmp(nearby_low[i], cooc_low[k]) == 0) {
                    overlap++;
                    break;
                }
            }
        }
        s += EG_RESOLVE_W_COOC * (double)overlap / (double)nnearby;
    }
    if (event != INT64_MIN && last_seen != INT64_MIN) {
        double days =
            (double)(event > last_seen ? event - last_seen : last_seen - event) / US_PER_DAY;
        if (days < EG_RESOLVE_RECENCY_DAYS)
            s += EG_RESOLVE_W_TIME * (1.0 - days / EG_RESOLVE_RECENCY_DAYS);
    }
    return s;
}

/* Lowercase names into the arena, dropping repeats (a set, as Hindsight builds it). */
static size_t lower_set(eg_arena_t *a, const char *const *names, size_t n, const char *skip,
                        const char ***out)
{
    const char **v = eg_arena_alloc(a, (n + 1) * sizeof(*v));
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(names[i], skip) == 0)
            continue;
        const char *low = eg_resolve_lower(a, names[i]);
        bool dup = false;
        for (size_t k = 0; k < m && !dup; k++)
            dup = strcmp(v[k], low) == 0;
        if (!dup)
            v[m++] = low;
    }
    *out = v;
    return m;
}

double eg_resolve_score(const char *name, const char *const *nearby, size_t nnearby, int64_t event,
                        const eg_resolve_cand_t *c)
{
    eg_arena_t a;
    const char **near_low, **cooc_low;

    eg_arena_init(&a);
    size_t nn = lower_set(&a, nearby, nnearby, name, &near_low);
    size_t nc = lower_set(&a, c->cooc, c->ncooc, NULL, &cooc_low);
    double s = score_lowered(eg_resolve_lower(&a, name), near_low, nn, event,
                             eg_resolve_lower(&a, c->name), cooc_low, nc, c->last_seen);
    eg_arena_destroy(&a);
    return s;
}

/* ---- the batch ------------------------------------------------------------------------------ */

/* Candidates of one distinct spelling, lowercased once. */
typedef struct {
    const char *name; /* spelling (key) */
    eg_resolve_cand_t *c;
    size_t n;
    const char **low;       /* candidate names, lowercased */
    const char ***cooc_low; /* their co-occurring names, lowercased, unique */
    size_t *ncooc;
} spelling_t;

/* A new entity being formed. */
typedef struct {
    const char *low; /* lowercased first spelling */
    uint64_t *tri;   /* its trigrams, when it takes part in the fuzzy merge */
    size_t ntri;
    bool fuzzy;
} group_t;

/* Small open-addressing string -> index map in the arena. */
typedef struct {
    const char **keys;
    size_t *vals;
    size_t cap;
} smap_t;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void smap_init(eg_arena_t *a, smap_t *m, size_t n)
{
    m->cap = 16;
    while (m->cap < n * 2 + 2)
        m->cap *= 2;
    m->keys = eg_arena_calloc(a, m->cap * sizeof(*m->keys));
    m->vals = eg_arena_alloc(a, m->cap * sizeof(*m->vals));
}

/* The slot of key: keys[slot] is NULL when absent (then set keys/vals there to insert). The map
 * is sized for every key up front, so it never fills. */
static size_t smap_slot(const smap_t *m, const char *key)
{
    size_t i = str_hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static spelling_t *spelling_get(eg_arena_t *a, smap_t *map, spelling_t *sp, size_t *nsp,
                                const char *name, eg_resolve_lookup_fn lookup, void *ctx)
{
    size_t slot = smap_slot(map, name);
    if (map->keys[slot])
        return &sp[map->vals[slot]];

    spelling_t *s = &sp[*nsp];
    map->keys[slot] = name;
    map->vals[slot] = (*nsp)++;
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->n = lookup ? lookup(ctx, a, name, &s->c) : 0;
    if (s->n > EG_RESOLVE_CAND_MAX)
        s->n = EG_RESOLVE_CAND_MAX;
    s->low = eg_arena_alloc(a, (s->n + 1) * sizeof(*s->low));
    s->cooc_low = eg_arena_alloc(a, (s->n + 1) * sizeof(*s->cooc_low));
    s->ncooc = eg_arena_alloc(a, (s->n + 1) * sizeof(*s->ncooc));
    for (size_t k = 0; k < s->n; k++) {
        s->low[k] = eg_resolve_lower(a, s->c[k].name);
        s->ncooc[k] = lower_set(a, s->c[k].cooc, s->c[k].ncooc, NULL, &s->cooc_low[k]);
    }
    return s;
}

/* The new entity for a mention: its case-insensitive spelling's group, else (resolvable names
 * only) the most similar of the first EG_RESOLVE_MERGE_MAX groups at trigram Jaccard >= 0.5,
 * else a new group. */
static size_t group_for(eg_arena_t *a, smap_t *gmap, group_t *g, eg_resolve_new_t *news, size_t *ng,
                        size_t *nfuzzy, const char *name, const char *low, bool resolve)
{
    size_t slot = smap_slot(gmap, low);
    if (gmap->keys[slot])
        return gmap->vals[slot];

    uint64_t *tri = NULL;
    size_t ntri = 0, best = SIZE_MAX;
    double best_sim = 0;
    if (resolve && *nfuzzy < EG_RESOLVE_MERGE_MAX) {
        ntri = eg_resolve_trigrams(a, low, &tri);
        for (size_t k = 0; k < *ng; k++) {
            if (!g[k].fuzzy)
                continue;
            double sim = eg_resolve_trigram_sim(tri, ntri, g[k].tri, g[k].ntri);
            if (sim >= EG_RESOLVE_MERGE_SIM && sim > best_sim) {
                best_sim = sim;
                best = k;
            }
        }
    }
    gmap->keys[slot] = low;
    if (best != SIZE_MAX) {
        gmap->vals[slot] = best;
        return best;
    }
    size_t idx = (*ng)++;
    gmap->vals[slot] = idx;
    g[idx].low = low;
    g[idx].tri = tri;
    g[idx].ntri = ntri;
    g[idx].fuzzy = resolve && *nfuzzy < EG_RESOLVE_MERGE_MAX;
    *nfuzzy += g[idx].fuzzy;
    news[idx].name = name;
    news[idx].mentions = 0;
    news[idx].first_seen = news[idx].last_seen = INT64_MIN;
    return idx;
}

static void seen(eg_resolve_new_t *e, int64_t t)
{
    e->mentions++;
    if (t == INT64_MIN)
        return;
    if (e->first_seen == INT64_MIN || t < e->first_seen)
        e->first_seen = t;
    if (e->last_seen == INT64_MIN || t > e->last_seen)
        e->last_seen = t;
}

void eg_resolve_batch(eg_arena_t *a, const eg_resolve_mention_t *m, size_t n,
                      eg_resolve_lookup_fn lookup, void *ctx, eg_resolve_out_t *out,
                      eg_resolve_new_t **news, size_t *nnew)
{
    smap_t spmap, gmap;
    spelling_t *sp = eg_arena_alloc(a, (n + 1) * sizeof(*sp));
    group_t *g = eg_arena_calloc(a, (n + 1) * sizeof(*g));
    eg_resolve_new_t *nv = eg_arena_alloc(a, (n + 1) * sizeof(*nv));
    size_t nsp = 0, ng = 0, nfuzzy = 0;
    const char **low = eg_arena_alloc(a, (n + 1) * sizeof(*low));
    const char **near = eg_arena_alloc(a, (n + 1) * sizeof(*near));

    smap_init(a, &spmap, n);
    smap_init(a, &gmap, n);
    for (size_t i = 0; i < n; i++)
        low[i] = eg_resolve_lower(a, m[i].name);

    for (size_t i = 0; i < n; i++) {
        spelling_t *s = spelling_get(a, &spmap, sp, &nsp, m[i].name, lookup, ctx);
        size_t best = SIZE_MAX, nn = 0;
        double best_score = 0.0;

        out[i].entity_id = NULL;
        out[i].new_index = 0;
        out[i].score = 0.0;
        if (!m[i].resolve) {
            for (size_t k = 0; k < s->n && best == SIZE_MAX; k++)
                if (strcmp(s->low[k], low[i]) == 0)
                    best = k;
            best_score = best != SIZE_MAX ? 1.0 : 0.0;
        } else if (s->n > 0) {
            /* The other names of the same fact, lowercased and unique; a spelling equal to
             * this mention's own is not "nearby" (Hindsight compares exact text here). */
            for (size_t k = 0; k < n; k++) {
                if (k == i || m[k].fact != m[i].fact || strcmp(m[k].name, m[i].name) == 0)
                    continue;
                bool dup = false;
                for (size_t q = 0; q < nn && !dup; q++)
                    dup = strcmp(near[q], low[k]) == 0;
                if (!dup)
                    near[nn++] = low[k];
            }
            for (size_t k = 0; k < s->n; k++) {
                double sc = score_lowered(low[i], near, nn, m[i].event, s->low[k], s->cooc_low[k],
                                          s->ncooc[k], s->c[k].last_seen);
                if (sc > best_score) {
                    best_score = sc;
                    best = k;
                }
            }
            if (best_score <= EG_RESOLVE_THRESHOLD) {
                /* Entity names are unique case-insensitively in a bank: Hindsight's insert of a
                 * "new" entity that loses the scoring but has an existing name lands on that
                 * entity (ON CONFLICT), so the same name always means the same entity. */
                best = SIZE_MAX;
                for (size_t k = 0; k < s->n && best == SIZE_MAX; k++) {
                    if (strcmp(s->low[k], low[i]) == 0) {
                        best = k;
                        best_score = score_lowered(low[i], near, nn, m[i].event, s->low[k],
                                                   s->cooc_low[k], s->ncooc[k], s->c[k].last_seen);
                    }
                }
            }
        }
        if (best != SIZE_MAX) {
            out[i].entity_id = s->c[best].id;
            out[i].score = best_score;
            continue;
        }
        out[i].new_index =
            group_for(a, &gmap, g, nv, &ng, &nfuzzy, m[i].name, low[i], m[i].resolve);
        out[i].score = best_score;
        seen(&nv[out[i].new_index], m[i].event);
    }
    *news = nv;
    *nnew = ng;
}
