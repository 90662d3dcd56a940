/* Recall's graph and temporal arms: spreading activation over an abstract adjacency
 * (eg_recall_graph_t), so the same code runs over a bank's index and over a test's arrays. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/recall.h"

#include "recall_int.h"

static bool is_causal(uint8_t t)
{
    return t == EG_LINK_CAUSES || t == EG_LINK_CAUSED_BY || t == EG_LINK_ENABLES ||
           t == EG_LINK_PREVENTS;
}

/* ---- graph arm --------------------------------------------------------------------------------
 */

typedef struct {
    uint32_t slot;
    uint32_t shared; /* (seed, entity) pairs shared with the seeds */
    float sem, causal;
} graph_acc_t;

size_t eg_recall_graph_arm(eg_arena_t *a, const eg_recall_graph_t *g, const eg_hit_t *seeds,
                           size_t nseeds, size_t k, eg_hit_t *out)
{
    eg__slotmap_t seen, acc_map;
    graph_acc_t *acc;
    size_t bound = 0, nacc = 0, nout = 0;

    if (!nseeds || !k)
        return 0;
    /* An upper bound on the units reached, so the accumulators never move. */
    for (size_t i = 0; i < nseeds; i++) {
        const uint32_t *ents, *units;
        const eg_mindex_link_t *links;
        size_t ne = g->unit_entities ? g->unit_entities(g->udata, seeds[i].slot, &ents) : 0;

        for (size_t e = 0; e < ne; e++) {
            size_t nu = g->entity_units(g->udata, ents[e], &units);
            bound += nu < EG_RECALL_GRAPH_ENTITY_UNITS ? nu : EG_RECALL_GRAPH_ENTITY_UNITS;
        }
        bound += g->links ? g->links(g->udata, seeds[i].slot, &links) : 0;
    }
    if (!bound)
        return 0;
    acc = eg_arena_alloc(a, bound * sizeof(*acc));
    eg__slotmap_init(&seen, a, nseeds);
    eg__slotmap_init(&acc_map, a, bound < 4096 ? bound : 4096);
    for (size_t i = 0; i < nseeds; i++) {
        bool added;
        eg__slotmap_put(&seen, seeds[i].slot, 0, &added);
    }

    for (size_t i = 0; i < nseeds; i++) {
        const uint32_t *ents, *units;
        const eg_mindex_link_t *links;
        size_t ne = g->unit_entities ? g->unit_entities(g->udata, seeds[i].slot, &ents) : 0;
        size_t nl = g->links ? g->links(g->udata, seeds[i].slot, &links) : 0;

        if (i && seeds[i].slot == seeds[i - 1].slot)
            continue;
        for (size_t e = 0; e < ne; e++) {
            size_t nu = g->entity_units(g->udata, ents[e], &units);

            /* A very common entity (the user's own name) is looked at through its last 200
             * units: the index keeps them by slot, so those are mostly the latest stored. */
            if (nu > EG_RECALL_GRAPH_ENTITY_UNITS) {
                units += nu - EG_RECALL_GRAPH_ENTITY_UNITS;
                nu = EG_RECALL_GRAPH_ENTITY_UNITS;
            }
            for (size_t j = 0; j < nu; j++) {
                bool added;
                uint32_t *idx;

                if (eg__slotmap_get(&seen, units[j]) || !g->allowed(g->udata, units[j]))
                    continue;
                idx = eg__slotmap_put(&acc_map, units[j], (uint32_t)nacc, &added);
                if (added)
                    acc[nacc++] = (graph_acc_t){.slot = units[j]};
                acc[*idx].shared++;
            }
        }
        for (size_t j = 0; j < nl; j++) {
            const eg_mindex_link_t *l = &links[j];
            bool added, sem = l->type == EG_LINK_SEMANTIC, causal = is_causal(l->type);
            uint32_t *idx;

            if ((!sem && !causal) || eg__slotmap_get(&seen, l->slot) ||
                !g->allowed(g->udata, l->slot))
                continue;
            idx = eg__slotmap_put(&acc_map, l->slot, (uint32_t)nacc, &added);
            if (added)
                acc[nacc++] = (graph_acc_t){.slot = l->slot};
            if (sem && l->weight > acc[*idx].sem)
                acc[*idx].sem = l->weight;
            if (causal && l->weight > acc[*idx].causal)
                acc[*idx].causal = l->weight;
        }
    }
    for (size_t i = 0; i < nacc; i++) {
        float s = (float)tanh(0.5 * acc[i].shared) + acc[i].sem + acc[i].causal;
        eg_topk_offer(out, &nout, k, acc[i].slot, s);
    }
    eg_topk_sort(out, nout);
    return nout;
}

/* ---- temporal arm -----------------------------------------------------------------------------
 */

double eg_recall_proximity(int64_t when, int64_t start, int64_t end)
{
    double half, d;

    if (when == EG_MEM_TIME_NONE)
        return NAN;
    if (end <= start)
        return 1.0;
    half = ((double)end - (double)start) / 2.0;
    d = fabs((double)when - ((double)start + half));
    return d >= half ? 0.0 : 1.0 - d / half;
}

static int cmp_link_weight(const void *pa, const void *pb)
{
    const eg_mindex_link_t *a = pa, *b = pb;

    if (a->weight != b->weight)
        return a->weight > b->weight ? -1 : 1;
    return a->slot < b->slot ? -1 : a->slot > b->slot;
}

typedef struct {
    uint32_t slot;
    float act; /* activation carried to the neighbours */
} tnode_t;

size_t eg_recall_temporal_arm(eg_arena_t *a, const eg_recall_graph_t *g, const eg_hit_t *hits,
                              size_t nhits, int64_t start, int64_t end, size_t k, eg_hit_t *out,
                              float *prox)
{
    size_t nout = 0, nfront = 0, bucket_n[EG_RECALL_TEMPORAL_BUCKETS] = {0};
    size_t *bucket_of, cap_links = 0;
    tnode_t *front, *next;
    eg_mindex_link_t *nb = NULL;
    eg__slotmap_t visited;
    double span = (double)end - (double)start;

    if (!nhits || !k)
        return 0;
    bucket_of = eg_arena_alloc(a, nhits * sizeof(size_t));
    front = eg_arena_alloc(a, k * sizeof(tnode_t));
    next = eg_arena_alloc(a, k * sizeof(tnode_t));
    eg__slotmap_init(&visited, a, k);

    /* Entry points spread over the window: which of 8 equal time buckets each hit falls in. */
    for (size_t i = 0; i < nhits; i++) {
        int64_t w = g->when(g->udata, hits[i].slot);
        size_t b = 0;

        if (w != EG_MEM_TIME_NONE && span > 0) {
            double f = ((double)w - (double)start) / span * EG_RECALL_TEMPORAL_BUCKETS;
            b = f <= 0                                ? 0
                : f >= EG_RECALL_TEMPORAL_BUCKETS - 1 ? EG_RECALL_TEMPORAL_BUCKETS - 1
                                                      : (size_t)f;
        }
        bucket_of[i] = b;
        bucket_n[b]++;
    }
    /* Round robin over the buckets, the best hit of each first. */
    for (size_t round = 0; nout < EG_RECALL_TEMPORAL_ENTRIES && nout < k; round++) {
        bool any = false;

        for (size_t b = 0;
             b < EG_RECALL_TEMPORAL_BUCKETS && nout < EG_RECALL_TEMPORAL_ENTRIES && nout < k; b++) {
            size_t seen_in_b = 0;

            if (bucket_n[b] <= round)
                continue;
            any = true;
            for (size_t i = 0; i < nhits; i++) {
                bool added;
                double p;

                if (bucket_of[i] != b || seen_in_b++ != round)
                    continue;
                eg__slotmap_put(&visited, hits[i].slot, 0, &added);
                if (!added)
                    break;
                p = eg_recall_proximity(g->when(g->udata, hits[i].slot), start, end);
                if (isnan(p))
                    p = 0.5;
                out[nout] = (eg_hit_t){.slot = hits[i].slot, .score = (float)p};
                prox[nout++] = (float)p;
                front[nfront++] = (tnode_t){.slot = hits[i].slot, .act = 1.0f};
                break;
            }
        }
        if (!any)
            break;
    }

    /* Breadth-first spreading over temporal and causal links. */
    for (int level = 0; level < EG_RECALL_TEMPORAL_ITERATIONS && nfront && nout < k; level++) {
        size_t nnext = 0;

        for (size_t f = 0; f < nfront && nout < k; f++) {
            const eg_mindex_link_t *links = NULL;
            size_t nl = g->links ? g->links(g->udata, front[f].slot, &links) : 0, nn = 0;

            if (cap_links < EG_RECALL_TEMPORAL_NEIGHBOURS + nl) {
                cap_links = 2 * (EG_RECALL_TEMPORAL_NEIGHBOURS + nl);
                nb = eg_arena_alloc(a, cap_links * sizeof(*nb));
            }
            if (g->time_near)
                nn = g->time_near(g->udata, front[f].slot, EG_RECALL_TEMPORAL_NEIGHBOURS, nb);
            for (size_t j = 0; j < nl; j++)
                if (is_causal(links[j].type))
                    nb[nn++] = links[j];
            /* Keep the links above the floor to units still unvisited and allowed, then the 10
             * strongest of them. */
            size_t keep = 0;
            for (size_t j = 0; j < nn; j++)
                if (nb[j].weight >= EG_RECALL_TEMPORAL_LINK_MIN &&
                    !eg__slotmap_get(&visited, nb[j].slot) && g->allowed(g->udata, nb[j].slot))
                    nb[keep++] = nb[j];
            qsort(nb, keep, sizeof(*nb), cmp_link_weight);
            if (keep > EG_RECALL_TEMPORAL_NEIGHBOURS)
                keep = EG_RECALL_TEMPORAL_NEIGHBOURS;

            for (size_t j = 0; j < keep && nout < k; j++) {
                bool added;
                double p, boost = 1.0, propagated, score;

                if (g->similarity &&
                    !(g->similarity(g->udata, nb[j].slot) >= EG_RECALL_TEMPORAL_MIN))
                    continue;
                eg__slotmap_put(&visited, nb[j].slot, 0, &added);
                if (!added)
                    continue; /* reached twice from this node (a temporal and a causal link) */
                p = eg_recall_proximity(g->when(g->udata, nb[j].slot), start, end);
                if (isnan(p))
                    p = 0.3;
                if (nb[j].type == EG_LINK_CAUSES || nb[j].type == EG_LINK_CAUSED_BY)
                    boost = 2.0;
                else if (nb[j].type == EG_LINK_ENABLES || nb[j].type == EG_LINK_PREVENTS)
                    boost = 1.5;
                propagated = front[f].act * nb[j].weight * boost * 0.7;
                score = p > propagated ? p : propagated;
                out[nout] = (eg_hit_t){.slot = nb[j].slot, .score = (float)score};
                prox[nout++] = (float)p;
                if (score > 0.2 && nnext < k)
                    next[nnext++] = (tnode_t){.slot = nb[j].slot, .act = (float)score};
            }
        }
        tnode_t *t = front;
        front = next;
        next = t;
        nfront = nnext;
    }

    /* Best first, carrying each hit's proximity along. */
    if (nout > 1) {
        eg__slotmap_t pos;
        float *p2 = eg_arena_alloc(a, nout * sizeof(float));

        eg__slotmap_init(&pos, a, nout);
        for (size_t i = 0; i < nout; i++) {
            bool added;
            eg__slotmap_put(&pos, out[i].slot, (uint32_t)i, &added);
        }
        memcpy(p2, prox, nout * sizeof(float));
        eg__hits_sort(out, nout);
        for (size_t i = 0; i < nout; i++)
            prox[i] = p2[*eg__slotmap_get(&pos, out[i].slot)];
    }
    return nout;
}
