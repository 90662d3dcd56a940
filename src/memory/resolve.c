/* Entity resolution of a retain batch: Hindsight's candidate scoring, then the merging of the
 * batch's new names. Each mention is decided on its own (its fact's other names and time differ),
 * as Hindsight does, so two spellings of one name in a batch may land on different entities only
 * when their evidence differs. */
#include <string.h>

#include "engram/resolve.h"
#include "engram/util.h"

#define US_PER_DAY (86400.0 * 1e6)

/* The score from its parts, always combined in this order (so a bound computed from larger parts
 * is never below the score: each step rounds monotonically). */
static double combine(double ratio, size_t overlap, size_t nnearby, double recency)
{
    double s = EG_RESOLVE_W_NAME * ratio;
    if (nnearby > 0)
        s += EG_RESOLVE_W_COOC * (double)overlap / (double)nnearby;
    return s + recency;
}

/* The recency part: 0.2 * (1 - days apart / 7) within 7 days. */
static double recency(int64_t event, int64_t last_seen)
{
    if (event == INT64_MIN || last_seen == INT64_MIN)
        return 0.0;
    double days = (double)(event > last_seen ? event - last_seen : last_seen - event) / US_PER_DAY;
    return days < EG_RESOLVE_RECENCY_DAYS
               ? EG_RESOLVE_W_TIME * (1.0 - days / EG_RESOLVE_RECENCY_DAYS)
               : 0.0;
}

/* How many of the nearby names (lowercased, unique) are among cooc_low. */
static size_t overlap_of(const char *const *nearby_low, size_t nnearby, const char *const *cooc_low,
                         size_t ncooc)
{
    size_t overlap = 0;
    for (size_t i = 0; i < nnearby; i++) {
        for (size_t k = 0; k < ncooc; k++) {
            if (strcmp(nearby_low[i], cooc_low[k]) == 0) {
                overlap++;
                break;
            }
        }
    }
    return overlap;
}

/* The score with every name already lowercased: nearby unique, cooc as given. */
static double score_lowered(const char *name_low, const char *const *nearby_low, size_t nnearby,
                            int64_t event, const char *cand_low, const char *const *cooc_low,
                            size_t ncooc, int64_t last_seen)
{
    double ratio = eg_resolve_seq_ratio(name_low, strlen(name_low), cand_low, strlen(cand_low));
    return combine(ratio, nnearby > 0 ? overlap_of(nearby_low, nnearby, cooc_low, ncooc) : 0,
                   nnearby, recency(event, last_seen));
}

/* An upper bound of eg_resolve_seq_ratio(low, lower(b)). SequenceMatcher's matching blocks are a
 * common subsequence of the two, so the ratio never exceeds 2 * LCS / (la + lb); the LCS length
 * comes from a bit-parallel pass over b (Hyyro's algorithm: peq[c] has bit i set where low[i] is
 * c; la <= 64 and ASCII), some 20 ns for a name, against a few hundred for the ratio itself.
 * Otherwise difflib's quick_ratio (matches never exceed the multiset intersection of the
 * characters) when both are ASCII, else 1. Over the code points the ratio compares (the first
 * EG_RESOLVE_NAME_MAX_CP). */
static double ratio_bound(const char *low, const uint64_t *peq, const char *b)
{
    uint16_t cnt[128] = {0};
    size_t la = strlen(low), lb = 0, inter = 0;

    if (peq) {
        uint64_t v = ~0ULL;
        for (; b[lb]; lb++) {
            unsigned char c = (unsigned char)b[lb];
            if (c >= 0x80 || lb >= EG_RESOLVE_NAME_MAX_CP)
                break;
            if (c >= 'A' && c <= 'Z')
                c += 32;
            uint64_t u = v & peq[c];
            v = (v + u) | (v - u);
        }
        if (!b[lb]) {
            uint64_t mask = la == 64 ? ~0ULL : (1ULL << la) - 1;
            size_t lcs = la - (size_t)__builtin_popcountll(v & mask);
            return la + lb == 0 ? 1.0 : 2.0 * (double)lcs / (double)(la + lb);
        }
        lb = 0;
    }
    la = 0;
    for (; low[la] && la < EG_RESOLVE_NAME_MAX_CP; la++) {
        if ((unsigned char)low[la] >= 0x80)
            return 1.0;
        cnt[(unsigned char)low[la]]++;
    }
    for (; b[lb] && lb < EG_RESOLVE_NAME_MAX_CP; lb++) {
        unsigned char c = (unsigned char)b[lb];
        if (c >= 0x80)
            return 1.0;
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (cnt[c] > 0) {
            cnt[c]--;
            inter++;
        }
    }
    if (la + lb == 0)
        return 1.0;
    return 2.0 * (double)inter / (double)(la + lb);
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

/* Candidates of one distinct spelling; what is derived from them is computed when first needed
 * and kept for the spelling's other mentions. */
typedef struct {
    const char *name; /* spelling (key) */
    const char *low;  /* lowercased */
    eg_resolve_cand_t *c;
    size_t n;
    const char **low_c;     /* candidate names, lowercased (NULL: not yet) */
    const char ***cooc_low; /* their co-occurring names, lowercased (NULL: not yet) */
    size_t *ncooc;
    double *bound; /* ratio_bound(low, low_c) (< 0: not yet) */
    uint64_t *peq; /* low's character masks for the LCS bound (NULL: not ASCII or too long) */
    double *ratio; /* the ratio itself (< 0: not yet) */
} spelling_t;

/* The context of one batch's lazy candidate parts. */
typedef struct {
    eg_arena_t *a;
    eg_resolve_overlap_fn overlap;
    void *ctx;
} lazy_t;

static const char *cand_low(const lazy_t *z, spelling_t *s, size_t k)
{
    if (!s->low_c[k])
        s->low_c[k] = eg_resolve_lower(z->a, s->c[k].name);
    return s->low_c[k];
}

static double cand_bound(const lazy_t *z, spelling_t *s, size_t k)
{
    if (s->bound[k] < 0)
        s->bound[k] = ratio_bound(s->low, s->peq, s->c[k].name);
    return s->bound[k];
}

static double cand_ratio(const lazy_t *z, spelling_t *s, size_t k)
{
    if (s->ratio[k] < 0) {
        const char *b = cand_low(z, s, k);
        s->ratio[k] = eg_resolve_seq_ratio(s->low, strlen(s->low), b, strlen(b));
    }
    return s->ratio[k];
}

/* The candidate's co-occurring names from its cooc field, lowercased (repeats kept: only
 * membership is asked). */
static size_t cand_cooc(const lazy_t *z, spelling_t *s, size_t k, const char *const **out)
{
    if (!s->cooc_low[k]) {
        size_t n = s->c[k].ncooc;
        const char **low = eg_arena_alloc(z->a, (n + 1) * sizeof(*low));
        for (size_t i = 0; i < n; i++)
            low[i] = eg_resolve_lower(z->a, s->c[k].cooc[i]);
        s->cooc_low[k] = low;
        s->ncooc[k] = n;
    }
    *out = s->cooc_low[k];
    return s->ncooc[k];
}

static size_t cand_overlap(const lazy_t *z, spelling_t *s, size_t k, const char *const *near,
                           size_t nn)
{
    const char *const *cooc;
    size_t nc;

    if (nn == 0)
        return 0;
    if (z->overlap)
        return z->overlap(z->ctx, &s->c[k], near, nn);
    nc = cand_cooc(z, s, k, &cooc);
    return overlap_of(near, nn, cooc, nc);
}

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
                                const char *name, const char *low, eg_resolve_lookup_fn lookup,
                                void *ctx)
{
    size_t slot = smap_slot(map, name);
    if (map->keys[slot])
        return &sp[map->vals[slot]];

    spelling_t *s = &sp[*nsp];
    map->keys[slot] = name;
    map->vals[slot] = (*nsp)++;
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->low = low;
    s->n = lookup ? lookup(ctx, a, name, &s->c) : 0;
    if (s->n > EG_RESOLVE_CAND_MAX)
        s->n = EG_RESOLVE_CAND_MAX;
    s->low_c = eg_arena_calloc(a, (s->n + 1) * sizeof(*s->low_c));
    s->cooc_low = eg_arena_calloc(a, (s->n + 1) * sizeof(*s->cooc_low));
    s->ncooc = eg_arena_calloc(a, (s->n + 1) * sizeof(*s->ncooc));
    s->bound = eg_arena_alloc(a, (s->n + 1) * sizeof(*s->bound));
    s->ratio = eg_arena_alloc(a, (s->n + 1) * sizeof(*s->ratio));
    for (size_t k = 0; k < s->n; k++)
        s->bound[k] = s->ratio[k] = -1.0;
    size_t la = strlen(low);
    bool ascii = la > 0 && la <= 64;
    for (size_t i = 0; ascii && i < la; i++)
        ascii = (unsigned char)low[i] < 0x80;
    if (ascii && s->n > 0) {
        s->peq = eg_arena_calloc(a, 128 * sizeof(*s->peq));
        for (size_t i = 0; i < la; i++)
            s->peq[(unsigned char)low[i]] |= 1ULL << i;
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

/* Candidates ordered by an upper bound of their score: the highest bound first, then the lower
 * index (a binary heap, popped only as far as the search goes). */
typedef struct {
    double ub;
    size_t k;
} bound_t;

static bool bound_before(const bound_t *x, const bound_t *y)
{
    return x->ub > y->ub || (x->ub == y->ub && x->k < y->k);
}

static void bound_sift(bound_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && bound_before(&h[l], &h[m]))
            m = l;
        if (r < n && bound_before(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        bound_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* The candidate mention i goes to, or SIZE_MAX; its score in *score. The first candidate with
 * the highest score wins when that score is above the threshold. Candidates are visited by an
 * upper bound of their score from the cheap parts (recency, the ratio's quick bound, full
 * co-occurrence), so the search stops at the first whose bound cannot beat the best so far; a
 * visited one gets its ratio, and its co-occurrence only if that can still win. */
static size_t choose(const lazy_t *z, spelling_t *s, const char *low, const char *const *near,
                     size_t nn, int64_t event, double *score)
{
    double bar = EG_RESOLVE_THRESHOLD;
    size_t best = SIZE_MAX, nh = s->n;
    bound_t *h = eg_arena_alloc(z->a, (s->n + 1) * sizeof(*h));

    for (size_t k = 0; k < s->n; k++)
        h[k] =
            (bound_t){combine(cand_bound(z, s, k), nn, nn, recency(event, s->c[k].last_seen)), k};
    for (size_t i = nh / 2; i-- > 0;)
        bound_sift(h, nh, i);
    while (nh > 0) {
        bound_t top = h[0];
        size_t k = top.k;
        /* Bounds only fall from here: nothing later can beat bar (a tie at bar loses to the
         * lower index best). */
        if (top.ub < bar || (top.ub == bar && (best == SIZE_MAX || k > best)))
            break;
        h[0] = h[--nh];
        bound_sift(h, nh, 0);
        double rec = recency(event, s->c[k].last_seen);
        double ratio = cand_ratio(z, s, k);
        double ub = combine(ratio, nn, nn, rec);
        if (ub < bar || (ub == bar && (best == SIZE_MAX || k > best)))
            continue;
        double sc = combine(ratio, cand_overlap(z, s, k, near, nn), nn, rec);
        if (sc > bar || (sc == bar && best != SIZE_MAX && k < best)) {
            bar = sc;
            best = k;
        }
    }
    if (best != SIZE_MAX) {
        *score = bar;
        return best;
    }
    /* Entity names are unique case-insensitively in a bank: Hindsight's insert of a "new" entity
     * that loses the scoring but has an existing name lands on that entity (ON CONFLICT), so the
     * same name always means the same entity. */
    for (size_t k = 0; k < s->n; k++) {
        if (strcmp(cand_low(z, s, k), low) == 0) {
            *score = combine(cand_ratio(z, s, k), cand_overlap(z, s, k, near, nn), nn,
                             recency(event, s->c[k].last_seen));
            return k;
        }
    }
    *score = 0.0;
    return SIZE_MAX;
}

void eg_resolve_batch(eg_arena_t *a, const eg_resolve_mention_t *m, size_t n,
                      eg_resolve_lookup_fn lookup, eg_resolve_overlap_fn overlap, void *ctx,
                      eg_resolve_out_t *out, eg_resolve_new_t **news, size_t *nnew)
{
    smap_t spmap, gmap;
    spelling_t *sp = eg_arena_alloc(a, (n + 1) * sizeof(*sp));
    group_t *g = eg_arena_calloc(a, (n + 1) * sizeof(*g));
    eg_resolve_new_t *nv = eg_arena_alloc(a, (n + 1) * sizeof(*nv));
    size_t nsp = 0, ng = 0, nfuzzy = 0;
    const char **low = eg_arena_alloc(a, (n + 1) * sizeof(*low));
    const char **near = eg_arena_alloc(a, (n + 1) * sizeof(*near));
    lazy_t z = {a, overlap, ctx};

    smap_init(a, &spmap, n);
    smap_init(a, &gmap, n);
    for (size_t i = 0; i < n; i++)
        low[i] = eg_resolve_lower(a, m[i].name);

    for (size_t i = 0; i < n; i++) {
        spelling_t *s = spelling_get(a, &spmap, sp, &nsp, m[i].name, low[i], lookup, ctx);
        size_t best = SIZE_MAX, nn = 0;
        double best_score = 0.0;

        out[i].entity_id = NULL;
        out[i].new_index = 0;
        out[i].score = 0.0;
        if (!m[i].resolve) {
            for (size_t k = 0; k < s->n && best == SIZE_MAX; k++)
                if (strcmp(cand_low(&z, s, k), low[i]) == 0)
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
            best = choose(&z, s, low[i], near, nn, m[i].event, &best_score);
        }
        if (best != SIZE_MAX) {
            out[i].entity_id = s->c[best].id;
            out[i].score = best_score;
            continue;
        }
        out[i].new_index =
            group_for(a, &gmap, g, nv, &ng, &nfuzzy, m[i].name, low[i], m[i].resolve);
        seen(&nv[out[i].new_index], m[i].event);
    }
    *news = nv;
    *nnew = ng;
}
