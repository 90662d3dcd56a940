/* Recall over a bank's index (eg_recall_rank): filters into per-type slot bitmaps, the four arms
 * per requested fact type, fusion, scores, floors and the token fill. Everything here is
 * synchronous and in memory; recall_fetch.c adds the records from Redis. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/embed.h"
#include "engram/error.h"
#include "engram/recall.h"
#include "engram/text.h"
#include "engram/util.h"

#include "recall_int.h"

/* What the graph callbacks see: the index, the current fact type's allowed slots and the query. */
typedef struct {
    eg_mindex_t *ix;
    const uint64_t *allow;
    size_t nbits;
    const float *qv;
    float *tmp; /* dim floats */
    size_t dim;
    int64_t wstart, wend; /* the temporal window */
} rank_ctx_t;

static bool g_allowed(void *ud, uint32_t s)
{
    rank_ctx_t *c = ud;
    return eg_slot_allowed(c->allow, c->nbits, s);
}

static size_t g_unit_entities(void *ud, uint32_t s, const uint32_t **out)
{
    const eg_mindex_unit_t *u = eg_mindex_unit(((rank_ctx_t *)ud)->ix, s);

    *out = u ? u->ents : NULL;
    return u ? u->nents : 0;
}

static size_t g_entity_units(void *ud, uint32_t e, const uint32_t **out)
{
    const eg_mindex_entity_t *ent = eg_mindex_entity(((rank_ctx_t *)ud)->ix, e);

    *out = ent ? ent->slots : NULL;
    return ent ? ent->nslots : 0;
}

static size_t g_links(void *ud, uint32_t s, const eg_mindex_link_t **out)
{
    const eg_mindex_unit_t *u = eg_mindex_unit(((rank_ctx_t *)ud)->ix, s);

    *out = u ? u->links : NULL;
    return u ? u->nlinks : 0;
}

static size_t g_time_near(void *ud, uint32_t s, size_t max, eg_mindex_link_t *out)
{
    return eg_mindex_time_near(((rank_ctx_t *)ud)->ix, s, EG_RECALL_TEMPORAL_WINDOW_US, max, out);
}

/* The date temporal proximity is measured on (Hindsight's "best date"). */
static int64_t unit_best_date(const eg_mindex_unit_t *u)
{
    if (u->occurred_start != EG_MEM_TIME_NONE && u->occurred_end != EG_MEM_TIME_NONE)
        return u->occurred_start + (u->occurred_end - u->occurred_start) / 2;
    if (u->occurred_start != EG_MEM_TIME_NONE)
        return u->occurred_start;
    if (u->occurred_end != EG_MEM_TIME_NONE)
        return u->occurred_end;
    return u->mentioned_at;
}

static int64_t g_when(void *ud, uint32_t s)
{
    const eg_mindex_unit_t *u = eg_mindex_unit(((rank_ctx_t *)ud)->ix, s);
    return u ? unit_best_date(u) : EG_MEM_TIME_NONE;
}

static float g_similarity(void *ud, uint32_t s)
{
    rank_ctx_t *c = ud;

    if (eg_vindex_get(eg_mindex_vectors(c->ix), s, c->tmp) != 0)
        return -1.0f;
    return eg_vec_dot(c->tmp, c->qv, c->dim);
}

/* A unit dated in the window: its occurred range overlaps it, or one of its dates lies in it. */
static bool in_window(uint32_t s, void *ud)
{
    rank_ctx_t *c = ud;
    const eg_mindex_unit_t *u = eg_mindex_unit(c->ix, s);

#define IN(t) ((t) != EG_MEM_TIME_NONE && (t) >= c->wstart && (t) <= c->wend)
    if (!u)
        return false;
    if (u->occurred_start != EG_MEM_TIME_NONE && u->occurred_end != EG_MEM_TIME_NONE &&
        u->occurred_start <= c->wend && u->occurred_end >= c->wstart)
        return true;
    return IN(u->mentioned_at) || IN(u->occurred_start) || IN(u->occurred_end);
#undef IN
}

static uint32_t tag_lookup(void *ud, const char *tag)
{
    return eg_mindex_tag(ud, tag);
}

/* Hits of one arm gathered over the fact types, with the temporal arm's proximities. */
typedef struct {
    eg_hit_t *hits;
    float *prox;
    size_t n, cap;
} arm_list_t;

static void arm_reserve(eg_arena_t *a, arm_list_t *l, size_t more)
{
    if (l->n + more <= l->cap)
        return;
    size_t cap = (l->n + more) * 2;
    eg_hit_t *h = eg_arena_alloc(a, cap * sizeof(eg_hit_t));
    float *p = eg_arena_alloc(a, cap * sizeof(float));
    if (l->n) {
        memcpy(h, l->hits, l->n * sizeof(eg_hit_t));
        memcpy(p, l->prox, l->n * sizeof(float));
    }
    l->hits = h;
    l->prox = p;
    l->cap = cap;
}

typedef struct {
    eg_hit_t h;
    float prox;
} hit_prox_t;

static int cmp_hit_prox(const void *pa, const void *pb)
{
    const hit_prox_t *a = pa, *b = pb;

    if (a->h.score != b->h.score)
        return a->h.score > b->h.score ? -1 : 1;
    return a->h.slot < b->h.slot ? -1 : a->h.slot > b->h.slot;
}

/* Lists of several fact types merge by score (each type's list is already sorted). */
static void arm_sort(eg_arena_t *a, arm_list_t *l, bool with_prox)
{
    if (l->n < 2)
        return;
    if (!with_prox) {
        eg__hits_sort(l->hits, l->n);
        return;
    }
    hit_prox_t *t = eg_arena_alloc(a, l->n * sizeof(*t));
    for (size_t i = 0; i < l->n; i++)
        t[i] = (hit_prox_t){l->hits[i], l->prox[i]};
    qsort(t, l->n, sizeof(*t), cmp_hit_prox);
    for (size_t i = 0; i < l->n; i++) {
        l->hits[i] = t[i].h;
        l->prox[i] = t[i].prox;
    }
}

static double ms_since(uint64_t t0)
{
    return (double)(eg_mono_ns() - t0) / 1e6;
}

/* ---- filter bitmaps -----------------------------------------------------------------------
 *
 * Which units a recall may return depends on their type and state, and on the request's tag
 * filter. The first part is the same for every request until the index changes, and walking every
 * slot for it costs as much as a keyword search at 10^5 facts, so the per-type bitmaps of live,
 * valid units are kept per (index, version) for the few most recently recalled banks. Only a tag
 * filter makes a recall walk the units, and then only those of its types. */

#define FCACHE_N 8

typedef struct {
    const eg_mindex_t *ix; /* NULL: free entry */
    uint64_t version, used;
    size_t nslots;
    uint64_t *bm[EG_FACT_NTYPES];
    size_t count[EG_FACT_NTYPES];
} fcache_t;

static fcache_t fcache[FCACHE_N];
static uint64_t fcache_tick;

static const fcache_t *type_bitmaps(eg_mindex_t *ix)
{
    uint64_t v = eg_mindex_version(ix);
    size_t nslots = eg_mindex_slots(ix), words = (nslots + 63) / 64;
    fcache_t *f = &fcache[0];

    for (int i = 0; i < FCACHE_N; i++) {
        if (fcache[i].ix == ix && fcache[i].version == v) {
            fcache[i].used = ++fcache_tick;
            return &fcache[i];
        }
        if (fcache[i].used < f->used)
            f = &fcache[i];
    }
    for (int t = 0; t < EG_FACT_NTYPES; t++) {
        free(f->bm[t]);
        f->bm[t] = eg_xcalloc(words ? words : 1, sizeof(uint64_t));
        f->count[t] = 0;
    }
    for (uint32_t s = 0; s < nslots; s++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);

        if (!u || u->invalidated || u->type >= EG_FACT_NTYPES)
            continue;
        f->bm[u->type][s >> 6] |= UINT64_C(1) << (s & 63);
        f->count[u->type]++;
    }
    f->ix = ix;
    f->version = v;
    f->nslots = nslots;
    f->used = ++fcache_tick;
    return f;
}

size_t eg__recall_type_count(eg_mindex_t *ix, eg_fact_type_t type)
{
    return (unsigned)type < EG_FACT_NTYPES ? type_bitmaps(ix)->count[type] : 0;
}

/* One allowed-slots bitmap per requested fact type present in the bank (NULL otherwise): live,
 * valid units of that type whose tags pass the request's filter. Returns the number allowed. */
static size_t build_filters(eg_arena_t *a, eg_mindex_t *ix, const eg_recall_req_t *req,
                            const uint64_t *bm[EG_FACT_NTYPES], size_t count[EG_FACT_NTYPES])
{
    const fcache_t *fc = type_bitmaps(ix);
    size_t words = (fc->nslots + 63) / 64, total = 0;
    eg_tagfilter_t *tf;

    eg_tagfilter_compile(a, req->tags, req->ntags, req->tags_match, req->tag_groups,
                         req->ntag_groups, tag_lookup, ix, &tf);
    for (int t = 0; t < EG_FACT_NTYPES; t++) {
        uint64_t *m;

        bm[t] = NULL;
        count[t] = 0;
        if (!(req->types & (1u << t)) || !fc->count[t])
            continue;
        if (!tf) {
            bm[t] = fc->bm[t];
            count[t] = fc->count[t];
            total += count[t];
            continue;
        }
        m = eg_arena_calloc(a, (words ? words : 1) * sizeof(uint64_t));
        for (size_t w = 0; w < words; w++) {
            for (uint64_t bits = fc->bm[t][w]; bits; bits &= bits - 1) {
                uint32_t s = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
                const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);

                if (eg_tagfilter_match(tf, u->tags, u->ntags)) {
                    m[w] |= UINT64_C(1) << (s & 63);
                    count[t]++;
                }
            }
        }
        if (count[t]) {
            bm[t] = m;
            total += count[t];
        }
    }
    return total;
}

int eg_recall_rank(eg_arena_t *a, eg_mindex_t *ix, const eg_recall_req_t *req, int64_t now_us,
                   eg_recall_ranked_t *out)
{
    eg_recall_stats_t *st = &out->stats;
    uint64_t t0 = eg_mono_ns(), t;
    size_t depth = eg_recall_budget_depth(req->budget), dim = eg_mindex_dim(ix);
    size_t nslots = eg_mindex_slots(ix), count[EG_FACT_NTYPES], nterms = 0, n;
    const uint64_t *bm[EG_FACT_NTYPES];
    arm_list_t arms[EG_RECALL_NARMS];
    eg_recall_list_t lists[EG_RECALL_NARMS];
    const char **terms = NULL;
    const float *qv;
    eg_hit_t *buf, *seeds;
    rank_ctx_t ctx = {.ix = ix, .nbits = nslots, .dim = dim};
    eg_recall_graph_t g = {
        .udata = &ctx,
        .allowed = g_allowed,
        .unit_entities = g_unit_entities,
        .entity_units = g_entity_units,
        .links = g_links,
        .time_near = g_time_near,
        .when = g_when,
        .similarity = g_similarity,
    };
    eg_recall_cand_t *c;
    uint32_t *tokens;

    memset(out, 0, sizeof(*out));
    memset(arms, 0, sizeof(arms));
    if (eg_recall_req_check(req, NULL) != 0 || (req->query_vec && req->query_dim != dim))
        return EG_EINVAL;
    st->now = req->query_timestamp != EG_MEM_TIME_NONE ? req->query_timestamp : now_us;
    st->window_start = st->window_end = EG_MEM_TIME_NONE;
    st->has_window = req->temporal && eg_recall_window(req, now_us, &ctx.wstart, &ctx.wend);
    if (st->has_window) {
        st->window_start = ctx.wstart;
        st->window_end = ctx.wend;
    }

    t = eg_mono_ns();
    st->allowed = build_filters(a, ix, req, bm, count);
    st->filter_ms = ms_since(t);
    if (!st->allowed || !dim) {
        st->total_ms = ms_since(t0);
        return 0;
    }

    if (req->query_vec) {
        qv = req->query_vec;
    } else {
        float *v = eg_arena_alloc(a, dim * sizeof(float));
        eg_embed_builtin_vec(req->query ? req->query : "", req->query_len, v, dim);
        qv = v;
    }
    ctx.qv = qv;
    ctx.tmp = eg_arena_alloc(a, dim * sizeof(float));
    nterms = eg_text_terms(a, req->query ? req->query : "", req->query_len, EG_MINDEX_BM25_FLAGS,
                           &terms);
    buf = eg_arena_alloc(a, depth * sizeof(eg_hit_t));
    seeds = eg_arena_alloc(a, EG_RECALL_GRAPH_SEEDS * sizeof(eg_hit_t));

    for (int type = 0; type < EG_FACT_NTYPES; type++) {
        size_t nsem, nseeds = 0, k;

        if (!count[type])
            continue;
        ctx.allow = bm[type];

        /* Semantic: cosine >= 0.3 (or the request's semantic floor). */
        t = eg_mono_ns();
        eg_vsearch_t vs = {.k = depth,
                           .min_score = isnan(req->min_semantic) ? EG_RECALL_SEMANTIC_MIN
                                                                 : req->min_semantic,
                           .allow = bm[type],
                           .allow_nbits = nslots,
                           .screen = true};
        nsem = eg_vindex_search(eg_mindex_vectors(ix), qv, &vs, buf);
        if (nsem) {
            arm_reserve(a, &arms[EG_RECALL_ARM_SEMANTIC], nsem);
            memcpy(arms[0].hits + arms[0].n, buf, nsem * sizeof(eg_hit_t));
            arms[0].n += nsem;
        }
        /* The graph's seeds: the best 20 of them at cosine >= 0.3. */
        for (size_t i = 0; i < nsem && nseeds < EG_RECALL_GRAPH_SEEDS; i++)
            if (buf[i].score >= EG_RECALL_SEMANTIC_MIN)
                seeds[nseeds++] = buf[i];
        st->arm_ms[EG_RECALL_ARM_SEMANTIC] += ms_since(t);

        /* Keyword: BM25 over text + context. */
        t = eg_mono_ns();
        if (nterms) {
            eg_bm25_query_t bq = {.k = depth, .allow = bm[type], .allow_nbits = nslots};
            arm_list_t *l = &arms[EG_RECALL_ARM_KEYWORD];

            k = eg_bm25_search(eg_mindex_bm25(ix), terms, nterms, &bq, buf);
            arm_reserve(a, l, k);
            for (size_t i = 0; i < k; i++)
                if (isnan(req->min_keyword) || buf[i].score >= req->min_keyword)
                    l->hits[l->n++] = buf[i];
        }
        st->arm_ms[EG_RECALL_ARM_KEYWORD] += ms_since(t);

        /* Graph: spreading from the seeds. */
        t = eg_mono_ns();
        if (req->graph && nseeds) {
            arm_list_t *l = &arms[EG_RECALL_ARM_GRAPH];

            k = eg_recall_graph_arm(a, &g, seeds, nseeds, depth, buf);
            if (k) {
                arm_reserve(a, l, k);
                memcpy(l->hits + l->n, buf, k * sizeof(eg_hit_t));
                l->n += k;
            }
        }
        st->arm_ms[EG_RECALL_ARM_GRAPH] += ms_since(t);

        /* Temporal: the best 60 units dated in the window, then spreading. */
        t = eg_mono_ns();
        if (st->has_window) {
            arm_list_t *l = &arms[EG_RECALL_ARM_TEMPORAL];
            eg_hit_t entry[EG_RECALL_TEMPORAL_HITS];
            eg_vsearch_t ts = {.k = EG_RECALL_TEMPORAL_HITS,
                               .min_score = EG_RECALL_TEMPORAL_MIN,
                               .allow = bm[type],
                               .allow_nbits = nslots,
                               .filter = in_window,
                               .udata = &ctx};
            size_t ne = eg_vindex_search(eg_mindex_vectors(ix), qv, &ts, entry);

            arm_reserve(a, l, depth);
            k = eg_recall_temporal_arm(a, &g, entry, ne, ctx.wstart, ctx.wend, depth,
                                       l->hits + l->n, l->prox + l->n);
            l->n += k;
        }
        st->arm_ms[EG_RECALL_ARM_TEMPORAL] += ms_since(t);
    }

    t = eg_mono_ns();
    for (int i = 0; i < EG_RECALL_NARMS; i++) {
        arm_sort(a, &arms[i], i == EG_RECALL_ARM_TEMPORAL);
        st->arm_hits[i] = arms[i].n;
        lists[i] = (eg_recall_list_t){arms[i].hits, arms[i].n,
                                      i == EG_RECALL_ARM_TEMPORAL ? arms[i].prox : NULL};
    }
    n = eg_recall_fuse(a, lists, EG_RECALL_CANDIDATES, &c);
    st->fused = n;
    st->fuse_ms = ms_since(t);

    t = eg_mono_ns();
    for (size_t i = 0; i < n; i++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, c[i].slot);

        c[i].when = u->occurred_start != EG_MEM_TIME_NONE ? u->occurred_start
                    : u->mentioned_at != EG_MEM_TIME_NONE ? u->mentioned_at
                                                          : u->occurred_end;
        /* The index keeps no proof count: facts have 1, which is neutral. */
        c[i].proof_count = 1;
    }
    eg_recall_score(c, n, st->now);
    if (req->trace && n) {
        out->scored = eg_arena_alloc(a, n * sizeof(*c));
        memcpy(out->scored, c, n * sizeof(*c));
        out->nscored = n;
    }
    n = eg_recall_min_scores(c, n, req->min_reranker, req->min_final);
    st->after_floor = n;
    if (n > 2 * depth)
        n = 2 * depth;
    tokens = eg_arena_alloc(a, (n ? n : 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++)
        tokens[i] = eg_mindex_unit(ix, c[i].slot)->tokens;
    n = eg_recall_fill(tokens, n, req->max_tokens, &st->tokens);
    st->score_ms = ms_since(t);

    out->results = c;
    out->n = n;
    st->kept = n;
    st->total_ms = ms_since(t0);
    return 0;
}
