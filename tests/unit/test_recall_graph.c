/* Recall's graph and temporal arms over a small hand-built adjacency (no index, no Redis). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engram/recall.h"
#include "engram/text.h"

#define NU  400
#define NE  8
#define DAY EG_TEXT_US_PER_DAY

/* A test bank: per unit whether it is allowed, its date, its cosine with the query, its entities,
 * stored links and temporal neighbours; per entity its units. */
typedef struct {
    bool allowed[NU];
    int64_t when[NU];
    float sim[NU];
    uint32_t ents[NU][4];
    size_t nents[NU];
    uint32_t eunits[NE][300];
    size_t neunits[NE];
    eg_mindex_link_t links[NU][8];
    size_t nlinks[NU];
    eg_mindex_link_t near[NU][8];
    size_t nnear[NU];
} tbank_t;

static tbank_t B;

static bool cb_allowed(void *ud, uint32_t s)
{
    return s < NU && ((tbank_t *)ud)->allowed[s];
}

static size_t cb_unit_entities(void *ud, uint32_t s, const uint32_t **out)
{
    *out = ((tbank_t *)ud)->ents[s];
    return ((tbank_t *)ud)->nents[s];
}

static size_t cb_entity_units(void *ud, uint32_t e, const uint32_t **out)
{
    *out = ((tbank_t *)ud)->eunits[e];
    return ((tbank_t *)ud)->neunits[e];
}

static size_t cb_links(void *ud, uint32_t s, const eg_mindex_link_t **out)
{
    *out = ((tbank_t *)ud)->links[s];
    return ((tbank_t *)ud)->nlinks[s];
}

static size_t cb_time_near(void *ud, uint32_t s, size_t max, eg_mindex_link_t *out)
{
    tbank_t *b = ud;
    size_t n = b->nnear[s] < max ? b->nnear[s] : max;
    memcpy(out, b->near[s], n * sizeof(*out));
    return n;
}

static int64_t cb_when(void *ud, uint32_t s)
{
    return ((tbank_t *)ud)->when[s];
}

static float cb_sim(void *ud, uint32_t s)
{
    return ((tbank_t *)ud)->sim[s];
}

static const eg_recall_graph_t G = {
    .udata = &B,
    .allowed = cb_allowed,
    .unit_entities = cb_unit_entities,
    .entity_units = cb_entity_units,
    .links = cb_links,
    .time_near = cb_time_near,
    .when = cb_when,
    .similarity = cb_sim,
};

static void reset(void)
{
    memset(&B, 0, sizeof(B));
    for (int i = 0; i < NU; i++) {
        B.allowed[i] = true;
        B.when[i] = EG_MEM_TIME_NONE;
        B.sim[i] = 0.5f;
    }
}

static void mention(uint32_t unit, uint32_t ent)
{
    B.ents[unit][B.nents[unit]++] = ent;
    B.eunits[ent][B.neunits[ent]++] = unit;
}

/* A stored link, both sides (the reverse type from the other end). */
static void link2(uint32_t from, uint32_t to, eg_link_type_t t, float w)
{
    eg_link_type_t rev = t == EG_LINK_CAUSES      ? EG_LINK_CAUSED_BY
                         : t == EG_LINK_CAUSED_BY ? EG_LINK_CAUSES
                                                  : t;
    B.links[from][B.nlinks[from]++] = (eg_mindex_link_t){.slot = to, .weight = w, .type = t};
    B.links[to][B.nlinks[to]++] = (eg_mindex_link_t){.slot = from, .weight = w, .type = rev};
}

static void near2(uint32_t a, uint32_t b, float w)
{
    B.near[a][B.nnear[a]++] = (eg_mindex_link_t){.slot = b, .weight = w, .type = EG_LINK_TEMPORAL};
    B.near[b][B.nnear[b]++] = (eg_mindex_link_t){.slot = a, .weight = w, .type = EG_LINK_TEMPORAL};
}

/* Entities: e0 in units 0-3, e1 in 0 and 4. Links: 0-5 semantic 0.8, 0 causes 6 (0.9), 1-7
 * semantic 0.75, 8-9 semantic 0.99 (not reachable from the seeds). */
static void graph_bank(void)
{
    reset();
    for (uint32_t u = 0; u < 4; u++)
        mention(u, 0);
    mention(0, 1);
    mention(4, 1);
    link2(0, 5, EG_LINK_SEMANTIC, 0.8f);
    link2(0, 6, EG_LINK_CAUSES, 0.9f);
    link2(1, 7, EG_LINK_SEMANTIC, 0.75f);
    link2(8, 9, EG_LINK_SEMANTIC, 0.99f);
}

Test(recall_graph, entity_semantic_and_causal_expansion)
{
    eg_arena_t a;
    eg_hit_t seeds[] = {{.slot = 0, .score = 0.9f}, {.slot = 1, .score = 0.6f}}, out[20];
    size_t n;

    graph_bank();
    eg_arena_init(&a);
    /* 6: causal 0.9; 5: semantic 0.8; 2 and 3: entity e0 shared with both seeds, tanh(1) =
     * 0.761594; 7: semantic 0.75; 4: e1 shared with seed 0, tanh(0.5) = 0.462117. The seeds
     * themselves and the unlinked 8, 9 are not results. */
    n = eg_recall_graph_arm(&a, &G, seeds, 2, 20, out);
    cr_assert_eq(n, 6);
    cr_assert_eq(out[0].slot, 6);
    cr_assert_float_eq(out[0].score, 0.9f, 1e-6);
    cr_assert_eq(out[1].slot, 5);
    cr_assert_float_eq(out[1].score, 0.8f, 1e-6);
    cr_assert_eq(out[2].slot, 2);
    cr_assert_float_eq(out[2].score, tanh(1.0), 1e-6);
    cr_assert_eq(out[3].slot, 3);
    cr_assert_eq(out[4].slot, 7);
    cr_assert_eq(out[5].slot, 4);
    cr_assert_float_eq(out[5].score, tanh(0.5), 1e-6);

    /* k keeps the best; filtered units are never results. */
    B.allowed[6] = false;
    B.allowed[2] = false;
    n = eg_recall_graph_arm(&a, &G, seeds, 2, 2, out);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].slot, 5);
    cr_assert_eq(out[1].slot, 3);

    /* The three sources add up: a unit sharing e0 with one seed and semantically linked to it. */
    graph_bank();
    link2(0, 2, EG_LINK_SEMANTIC, 0.7f);
    n = eg_recall_graph_arm(&a, &G, seeds, 1, 20, out);
    cr_assert_eq(out[0].slot, 2);
    cr_assert_float_eq(out[0].score, tanh(0.5) + 0.7, 1e-6);

    cr_assert_eq(eg_recall_graph_arm(&a, &G, seeds, 0, 20, out), 0);
    cr_assert_eq(eg_recall_graph_arm(&a, &G, seeds, 2, 0, out), 0);
    eg_arena_destroy(&a);
}

Test(recall_graph, at_most_200_units_per_entity)
{
    eg_arena_t a;
    eg_hit_t seed = {.slot = 0, .score = 0.9f}, out[400];
    size_t n;
    bool seen[NU] = {false};

    reset();
    eg_arena_init(&a);
    /* e3 is mentioned by the seed and by units 100..349: only the last 200 of its list
     * (150..349) are looked at. */
    mention(0, 3);
    for (uint32_t u = 100; u < 350; u++)
        mention(u, 3);
    n = eg_recall_graph_arm(&a, &G, &seed, 1, 400, out);
    cr_assert_eq(n, 200);
    for (size_t i = 0; i < n; i++) {
        cr_assert_float_eq(out[i].score, tanh(0.5), 1e-6);
        seen[out[i].slot] = true;
    }
    cr_assert(seen[150] && seen[349]);
    cr_assert_not(seen[149]);
    eg_arena_destroy(&a);
}

Test(recall_graph, proximity)
{
    int64_t s = 0, e = 8 * DAY;

    cr_assert_float_eq(eg_recall_proximity(4 * DAY, s, e), 1.0, 1e-12);
    cr_assert_float_eq(eg_recall_proximity(DAY / 2, s, e), 0.125, 1e-12);
    cr_assert_float_eq(eg_recall_proximity(6 * DAY, s, e), 0.5, 1e-12);
    cr_assert_float_eq(eg_recall_proximity(20 * DAY, s, e), 0.0, 1e-12);
    cr_assert_float_eq(eg_recall_proximity(-DAY, s, e), 0.0, 1e-12);
    cr_assert_float_eq(eg_recall_proximity(123, 5, 5), 1.0, 1e-12);
    cr_assert(isnan(eg_recall_proximity(EG_MEM_TIME_NONE, s, e)));
}

static size_t find(const eg_hit_t *h, size_t n, uint32_t slot)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].slot == slot)
            return i;
    return SIZE_MAX;
}

Test(recall_graph, temporal_entry_points_over_buckets)
{
    eg_arena_t a;
    eg_hit_t hits[12], out[64];
    float prox[64];
    size_t n;

    reset();
    eg_arena_init(&a);
    /* Window: 8 days. Hits 10..20 are in bucket 0 (day 0.5), the last, 21, in bucket 7 (day 7.5):
     * 10 entries round robin = the best 9 of bucket 0 and the one of bucket 7. */
    for (uint32_t i = 0; i < 12; i++) {
        hits[i] = (eg_hit_t){.slot = 10 + i, .score = 0.9f - 0.01f * (float)i};
        B.when[10 + i] = i < 11 ? DAY / 2 : 7 * DAY + DAY / 2;
    }
    n = eg_recall_temporal_arm(&a, &G, hits, 12, 0, 8 * DAY, 100, out, prox);
    cr_assert_eq(n, 10);
    cr_assert_neq(find(out, n, 21), SIZE_MAX, "the lone late hit is an entry point");
    cr_assert_neq(find(out, n, 18), SIZE_MAX);
    cr_assert_eq(find(out, n, 19), SIZE_MAX);
    cr_assert_eq(find(out, n, 20), SIZE_MAX);
    for (size_t i = 0; i < n; i++) {
        cr_assert_float_eq(out[i].score, 0.125f, 1e-6);
        cr_assert_float_eq(prox[i], 0.125f, 1e-6);
    }
    /* Equal scores: lower slot first. */
    cr_assert_eq(out[0].slot, 10);
    cr_assert_eq(out[9].slot, 21);

    /* k bounds the entries too. */
    cr_assert_eq(eg_recall_temporal_arm(&a, &G, hits, 12, 0, 8 * DAY, 3, out, prox), 3);
    cr_assert_eq(eg_recall_temporal_arm(&a, &G, hits, 0, 0, 8 * DAY, 3, out, prox), 0);
    eg_arena_destroy(&a);
}

Test(recall_graph, temporal_spreading)
{
    eg_arena_t a;
    eg_hit_t hit = {.slot = 1, .score = 0.8f}, out[64];
    float prox[64];
    size_t n, i;

    reset();
    eg_arena_init(&a);
    /* Entry 1 at the middle of the window (proximity 1). Its temporal neighbour 2 lies far
     * outside the window (proximity 0): 1 x 0.9 x 0.7 = 0.63. 2 was caused by 3 (undated,
     * proximity 0.3): 0.63 x 1.0 x 2 x 0.7 = 0.882. 3 enables 4 (proximity 0.5):
     * max(0.5, 0.882 x 0.5 x 1.5 x 0.7 = 0.46305) = 0.5. 3-5 temporal at 0.05 is under the
     * floor; 3 causes 6, whose cosine 0.05 is under 0.1; 7 is filtered out. */
    B.when[1] = 4 * DAY;
    B.when[2] = 100 * DAY;
    B.when[4] = 6 * DAY;
    near2(1, 2, 0.9f);
    link2(2, 3, EG_LINK_CAUSED_BY, 1.0f);
    link2(3, 4, EG_LINK_ENABLES, 0.5f);
    near2(3, 5, 0.05f);
    link2(3, 6, EG_LINK_CAUSES, 0.9f);
    B.sim[6] = 0.05f;
    link2(3, 7, EG_LINK_CAUSES, 0.9f);
    B.allowed[7] = false;

    n = eg_recall_temporal_arm(&a, &G, &hit, 1, 0, 8 * DAY, 100, out, prox);
    cr_assert_eq(n, 4);
    cr_assert_eq(out[0].slot, 1);
    cr_assert_float_eq(out[0].score, 1.0f, 1e-6);
    cr_assert_eq(out[1].slot, 3);
    cr_assert_float_eq(out[1].score, 0.882f, 1e-5);
    cr_assert_float_eq(prox[1], 0.3f, 1e-6);
    cr_assert_eq(out[2].slot, 2);
    cr_assert_float_eq(out[2].score, 0.63f, 1e-5);
    cr_assert_float_eq(prox[2], 0.0f, 1e-6);
    cr_assert_eq(out[3].slot, 4);
    cr_assert_float_eq(out[3].score, 0.5f, 1e-5);
    cr_assert_float_eq(prox[3], 0.5f, 1e-6);

    /* The budget k counts every unit reached. */
    n = eg_recall_temporal_arm(&a, &G, &hit, 1, 0, 8 * DAY, 2, out, prox);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].slot, 1);
    cr_assert_eq(out[1].slot, 2);

    /* A weak activation does not spread: with 1-2 at 0.2, 2 scores 0.14 and stops there. */
    B.near[1][0].weight = 0.2f;
    B.near[2][0].weight = 0.2f;
    n = eg_recall_temporal_arm(&a, &G, &hit, 1, 0, 8 * DAY, 100, out, prox);
    cr_assert_eq(n, 2);
    i = find(out, n, 2);
    cr_assert_float_eq(out[i].score, 0.14f, 1e-6);

    /* At most 5 levels: a chain 1-30-31-...-39 of strong temporal links reaches 5 units. */
    reset();
    B.when[1] = 4 * DAY;
    near2(1, 30, 1.0f);
    for (uint32_t u = 30; u < 39; u++) {
        B.when[u] = 4 * DAY;
        near2(u, u + 1, 1.0f);
    }
    n = eg_recall_temporal_arm(&a, &G, &hit, 1, 0, 8 * DAY, 100, out, prox);
    cr_assert_eq(n, 6);
    cr_assert_neq(find(out, n, 34), SIZE_MAX);
    cr_assert_eq(find(out, n, 35), SIZE_MAX);

    /* At most 10 neighbours per node, the strongest. */
    reset();
    B.when[1] = 4 * DAY;
    for (uint32_t u = 0; u < 8; u++)
        near2(1, 100 + u, 0.5f + 0.01f * (float)u);
    for (uint32_t u = 0; u < 6; u++)
        link2(1, 200 + u, EG_LINK_CAUSES, 0.2f + 0.01f * (float)u);
    n = eg_recall_temporal_arm(&a, &G, &hit, 1, 0, 8 * DAY, 100, out, prox);
    cr_assert_eq(n, 11);
    cr_assert_neq(find(out, n, 100), SIZE_MAX);
    cr_assert_neq(find(out, n, 205), SIZE_MAX);
    cr_assert_neq(find(out, n, 204), SIZE_MAX);
    cr_assert_eq(find(out, n, 203), SIZE_MAX);
    eg_arena_destroy(&a);
}
