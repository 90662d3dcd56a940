/* Memories (engram/memories.h): the memory graph and the entity co-occurrence graph.
 *
 * Both are built over the bank's index inside the acquire callback. The memory graph then
 * fetches the records of its nodes (their text is not in the index); the entity graph needs
 * nothing from Redis. Entity edges are not stored anywhere: they come from which units mention
 * which entities, as Hindsight computes them at query time. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/util.h"
#include "memories_int.h"

#define TEMPORAL_WINDOW_US (INT64_C(24) * 3600 * 1000000)
#define TEMPORAL_MAX       20

const char *eg_memgraph_type_name(unsigned type)
{
    return type == EG_MEMGRAPH_ENTITY ? "entity" : eg_link_type_name((eg_link_type_t)type);
}

/* ---- the memory graph ----------------------------------------------------------------------- */

typedef struct graph_req_s {
    eg__memreq_t r;
    eg_memories_query_t *q;
    eg_memgraph_fn cb;
    size_t total, nnodes;
    eg_memgraph_edge_t *edges; /* between node positions, remapped to items after the fetch */
    size_t nedges, capedges;
} graph_req_t;

static void add_edge(graph_req_t *g, eg__u64set_t *seen, uint32_t a, uint32_t b, unsigned type,
                     float weight)
{
    uint32_t lo = a < b ? a : b, hi = a < b ? b : a;

    /* A stored link is typed from its holder's side: name it from the first node's side, so the
     * two sides of one causal link are one edge. */
    if (a > b && type < EG_LINK_NTYPES)
        type = eg_link_type_reverse((eg_link_type_t)type);
    if (a == b || !eg__u64set_add(&seen[type], ((uint64_t)lo << 32) | hi))
        return;
    if (g->nedges == g->capedges) {
        size_t cap = g->capedges ? g->capedges * 2 : 64;
        eg_memgraph_edge_t *e = eg_arena_alloc(&g->r.arena, cap * sizeof(*e));

        if (g->nedges)
            memcpy(e, g->edges, g->nedges * sizeof(*e));
        g->edges = e;
        g->capedges = cap;
    }
    g->edges[g->nedges++] =
        (eg_memgraph_edge_t){.from = lo, .to = hi, .type = (uint8_t)type, .weight = weight};
}

static void graph_done(graph_req_t *g, int err, const eg_memory_t *items, size_t n)
{
    g->cb(g->r.udata, err, items, n, err ? NULL : g->edges, err ? 0 : g->nedges,
          err ? 0 : g->total);
    eg__memreq_free(g);
}

static void on_graph_fetched(void *udata, int err, eg_memory_t *items, size_t n,
                             const uint32_t *pos)
{
    graph_req_t *g = udata;
    size_t k = 0;

    if (err) {
        graph_done(g, err, NULL, 0);
        return;
    }
    /* Nodes whose record vanished meanwhile take their edges with them. */
    for (size_t i = 0; i < g->nedges; i++) {
        eg_memgraph_edge_t e = g->edges[i];

        if (pos[e.from] == UINT32_MAX || pos[e.to] == UINT32_MAX)
            continue;
        e.from = pos[e.from];
        e.to = pos[e.to];
        g->edges[k++] = e;
    }
    g->nedges = k;
    graph_done(g, 0, items, n);
}

static void graph_edges(graph_req_t *g, eg_mindex_t *ix, const uint32_t *sel, size_t n)
{
    eg_arena_t *a = &g->r.arena;
    size_t nslots = eg_mindex_slots(ix);
    uint32_t *where = eg_arena_alloc(a, (nslots + 1) * sizeof(*where)); /* slot -> node */
    uint32_t *last = NULL;                                              /* entity -> node */
    eg_mindex_link_t near[TEMPORAL_MAX];
    eg__u64set_t seen[EG_MEMGRAPH_NTYPES]; /* one per edge type */

    memset(where, 0xff, (nslots + 1) * sizeof(*where));
    for (size_t i = 0; i < n; i++)
        where[sel[i]] = (uint32_t)i;
    for (int t = 0; t < EG_MEMGRAPH_NTYPES; t++)
        eg__u64set_init(&seen[t], a, t == EG_LINK_TEMPORAL ? n * 4 : n);
    if (eg_mindex_entities(ix) > 0) {
        last = eg_arena_alloc(a, eg_mindex_entities(ix) * sizeof(*last));
        memset(last, 0xff, eg_mindex_entities(ix) * sizeof(*last));
    }
    for (size_t i = 0; i < n; i++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, sel[i]);
        size_t nn;

        for (uint32_t l = 0; l < u->nlinks; l++) {
            const eg_mindex_link_t *lk = &u->links[l];

            if (lk->slot < nslots && where[lk->slot] != UINT32_MAX)
                add_edge(g, seen, (uint32_t)i, where[lk->slot], lk->type, lk->weight);
        }
        nn = eg_mindex_time_near(ix, sel[i], TEMPORAL_WINDOW_US, TEMPORAL_MAX, near);
        for (size_t t = 0; t < nn; t++)
            if (near[t].slot < nslots && where[near[t].slot] != UINT32_MAX)
                add_edge(g, seen, (uint32_t)i, where[near[t].slot], EG_LINK_TEMPORAL,
                         near[t].weight);
        /* Units sharing an entity form a chain in the graph's order, not a clique: that keeps
         * them connected with a number of edges linear in the units. */
        for (uint16_t e = 0; e < u->nents; e++) {
            uint32_t ent = u->ents[e];

            if (last == NULL || ent >= eg_mindex_entities(ix))
                continue;
            if (last[ent] != UINT32_MAX)
                add_edge(g, seen, last[ent], (uint32_t)i, EG_MEMGRAPH_ENTITY, 1.0f);
            last[ent] = (uint32_t)i;
        }
    }
}

static void on_graph_index(void *udata, int err, eg_mindex_t *ix)
{
    graph_req_t *g = udata;
    uint32_t *sel;
    size_t n;
    int rc;

    if (err) {
        graph_done(g, err, NULL, 0);
        return;
    }
    g->q->state = EG_MEM_STATE_VALID; /* invalidated memories never show in the graph */
    g->total = eg__mem_select(&g->r.arena, ix, g->r.bank_id, g->q, &sel);
    n = EG_MIN(EG_MIN(g->total, g->q->limit), (size_t)EG_MEMORIES_FETCH_MAX);
    if (n == 0) {
        graph_done(g, 0, NULL, 0);
        return;
    }
    graph_edges(g, ix, sel, n);
    rc = eg__mem_fetch(&g->r.arena, g->r.ws_id, g->r.bank_id,
                       eg__mem_slot_ids(&g->r.arena, ix, sel, n), n, on_graph_fetched, g);
    if (rc)
        graph_done(g, rc, NULL, 0);
}

int eg_memories_graph(const char *ws_id, const char *bank_id, const eg_memories_query_t *q,
                      eg_memgraph_fn cb, void *udata)
{
    graph_req_t *g;
    int rc;

    if (ws_id == NULL || bank_id == NULL || q == NULL || cb == NULL)
        return EG_EINVAL;
    g = eg__memreq_new(sizeof(*g), ws_id, bank_id, udata);
    g->q = eg__mem_query_copy(&g->r.arena, q);
    g->cb = cb;
    rc = eg_mindex_acquire(ws_id, bank_id, on_graph_index, g);
    if (rc)
        eg__memreq_free(g);
    return rc;
}

/* ---- the entity co-occurrence graph --------------------------------------------------------- */

typedef struct pair_s {
    uint64_t key; /* entity a << 32 | entity b (indexes), UINT64_MAX = empty */
    int64_t count, last;
} pair_t;

typedef struct pairmap_s {
    eg_arena_t *a;
    pair_t *t;
    size_t mask, n;
} pairmap_t;

static void pairmap_alloc(pairmap_t *m, size_t cap)
{
    m->t = eg_arena_alloc(m->a, cap * sizeof(*m->t));
    for (size_t i = 0; i < cap; i++)
        m->t[i].key = UINT64_MAX;
    m->mask = cap - 1;
}

static pair_t *pairmap_get(pairmap_t *m, uint64_t key)
{
    size_t i;

    if ((m->n + 1) * 2 > m->mask + 1) {
        pair_t *old = m->t;
        size_t oldcap = m->mask + 1;

        pairmap_alloc(m, oldcap * 2);
        m->n = 0;
        for (size_t j = 0; j < oldcap; j++) {
            if (old[j].key != UINT64_MAX) {
                pair_t *p = pairmap_get(m, old[j].key);

                p->count = old[j].count;
                p->last = old[j].last;
            }
        }
    }
    for (i = (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & m->mask;
         m->t[i].key != UINT64_MAX; i = (i + 1) & m->mask)
        if (m->t[i].key == key)
            return &m->t[i];
    m->t[i] = (pair_t){.key = key, .count = 0, .last = EG_MEM_TIME_NONE};
    m->n++;
    return &m->t[i];
}

static int cmp_pair(const void *pa, const void *pb)
{
    const pair_t *a = pa, *b = pb;

    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    if (a->last != b->last)
        return a->last > b->last ? -1 : 1;
    return a->key < b->key ? -1 : a->key > b->key;
}

typedef struct entgraph_req_s {
    eg__memreq_t r;
    size_t limit;
    int64_t min_count;
    eg_entgraph_fn cb;
} entgraph_req_t;

static void on_entgraph_index(void *udata, int err, eg_mindex_t *ix)
{
    entgraph_req_t *er = udata;
    eg_arena_t *a = &er->r.arena;
    size_t nslots, nents, npairs = 0, nedges, nnodes = 0;
    pairmap_t m = {.a = a};
    pair_t *pairs;
    uint32_t *node_of;
    eg_entgraph_node_t *nodes;
    eg_entgraph_edge_t *edges;

    if (err) {
        er->cb(er->r.udata, err, NULL, 0, NULL, 0);
        eg__memreq_free(er);
        return;
    }
    nslots = eg_mindex_slots(ix);
    nents = eg_mindex_entities(ix);
    pairmap_alloc(&m, 64);
    for (uint32_t s = 0; s < nslots; s++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);
        int64_t when;

        if (u == NULL || u->invalidated || u->nents < 2)
            continue;
        when = u->mentioned_at != EG_MEM_TIME_NONE ? u->mentioned_at : u->created_at;
        for (uint16_t i = 0; i < u->nents; i++) {
            for (uint16_t j = i + 1; j < u->nents; j++) {
                uint32_t x = u->ents[i], y = u->ents[j];
                pair_t *p;

                if (x == y || x >= nents || y >= nents)
                    continue;
                p = pairmap_get(&m, x < y ? ((uint64_t)x << 32) | y : ((uint64_t)y << 32) | x);
                p->count++;
                if (when != EG_MEM_TIME_NONE && (p->last == EG_MEM_TIME_NONE || when > p->last))
                    p->last = when;
            }
        }
    }
    pairs = eg_arena_alloc(a, (m.n ? m.n : 1) * sizeof(*pairs));
    for (size_t i = 0; i <= m.mask; i++)
        if (m.t[i].key != UINT64_MAX && m.t[i].count >= er->min_count)
            pairs[npairs++] = m.t[i];
    qsort(pairs, npairs, sizeof(*pairs), cmp_pair);
    nedges = EG_MIN(npairs, er->limit);
    edges = eg_arena_alloc(a, (nedges ? nedges : 1) * sizeof(*edges));
    nodes = eg_arena_alloc(a, (2 * nedges + 1) * sizeof(*nodes));
    node_of = eg_arena_alloc(a, (nents + 1) * sizeof(*node_of));
    memset(node_of, 0xff, (nents + 1) * sizeof(*node_of));
    for (size_t i = 0; i < nedges; i++) {
        uint32_t ends[2] = {(uint32_t)(pairs[i].key >> 32), (uint32_t)pairs[i].key};

        for (int k = 0; k < 2; k++) {
            const eg_mindex_entity_t *e = eg_mindex_entity(ix, ends[k]);

            if (node_of[ends[k]] == UINT32_MAX) {
                node_of[ends[k]] = (uint32_t)nnodes;
                nodes[nnodes].id = eg_arena_strdup(a, e ? e->id : "");
                nodes[nnodes].name = eg_arena_strdup(a, e ? e->name : "");
                nodes[nnodes].mention_count = e ? e->mention_count : 0;
                nnodes++;
            }
        }
        edges[i].a = node_of[ends[0]];
        edges[i].b = node_of[ends[1]];
        if (strcmp(nodes[edges[i].a].id, nodes[edges[i].b].id) > 0) {
            uint32_t t = edges[i].a;

            edges[i].a = edges[i].b;
            edges[i].b = t;
        }
        edges[i].count = pairs[i].count;
        edges[i].last = pairs[i].last;
    }
    er->cb(er->r.udata, 0, nodes, nnodes, edges, nedges);
    eg__memreq_free(er);
}

int eg_memories_entity_graph(const char *ws_id, const char *bank_id, size_t limit,
                             int64_t min_count, eg_entgraph_fn cb, void *udata)
{
    entgraph_req_t *er;
    int rc;

    if (ws_id == NULL || bank_id == NULL || cb == NULL)
        return EG_EINVAL;
    er = eg__memreq_new(sizeof(*er), ws_id, bank_id, udata);
    er->limit = limit;
    er->min_count = min_count;
    er->cb = cb;
    rc = eg_mindex_acquire(ws_id, bank_id, on_entgraph_index, er);
    if (rc)
        eg__memreq_free(er);
    return rc;
}
