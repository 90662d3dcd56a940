/* Memories (engram/memories.h), part 2, against a real Redis and the real index
 * (memories_fixture.h): the memory graph, the entity graph, statistics, the time series, tags,
 * entities, documents and chunks (by id alone too). */
#include "memories_fixture.h"

TestSuite(memories_views, .init = setup, .fini = teardown, .timeout = 60);

/* ---- graphs ---------------------------------------------------------------------------------- */

typedef struct {
    int done, err;
    size_t n, total, nedges;
    char edges[32][64]; /* "XY type" with X, Y fixture letters */
} graph_t;

static char letter(const char *id)
{
    return strcmp(id, E.A) == 0   ? 'A'
           : strcmp(id, E.B) == 0 ? 'B'
           : strcmp(id, E.C) == 0 ? 'C'
                                  : 'D';
}

static void on_graph(void *udata, int err, const eg_memory_t *items, size_t n,
                     const eg_memgraph_edge_t *edges, size_t nedges, size_t total)
{
    graph_t *g = udata;

    g->err = err;
    g->n = n;
    g->total = total;
    g->nedges = nedges;
    for (size_t i = 0; i < nedges && i < 32; i++)
        snprintf(g->edges[i], sizeof(g->edges[i]), "%c%c %s", letter(items[edges[i].from].unit->id),
                 letter(items[edges[i].to].unit->id), eg_memgraph_type_name(edges[i].type));
    g->done = 1;
}

static bool has_edge(const graph_t *g, const char *e)
{
    for (size_t i = 0; i < g->nedges && i < 32; i++)
        if (strcmp(g->edges[i], e) == 0)
            return true;
    return false;
}

Test(memories_views, memory_graph)
{
    graph_t g = {0};
    eg_memories_query_t q = {.limit = 1000};

    cr_assert_eq(eg_memories_graph(E.ws, E.bank, &q, on_graph, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, 0);
    cr_assert_eq(g.n, 4);
    cr_assert_eq(g.total, 4);
    /* Order C A B D: C-A is A's "causes" seen from C; units sharing an entity are chained. */
    cr_assert(has_edge(&g, "AB semantic"));
    cr_assert(has_edge(&g, "CA caused_by"));
    cr_assert(has_edge(&g, "CA temporal") && has_edge(&g, "CB temporal") &&
              has_edge(&g, "AB temporal"));
    cr_assert(has_edge(&g, "AB entity") && has_edge(&g, "BD entity") && has_edge(&g, "CB entity"));
    cr_assert_not(has_edge(&g, "AD entity"), "a chain, not a clique");
    cr_assert_eq(g.nedges, 8);

    memset(&g, 0, sizeof(g));
    q = (eg_memories_query_t){.limit = 2, .types = 1u << EG_FACT_WORLD};
    cr_assert_eq(eg_memories_graph(E.ws, E.bank, &q, on_graph, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.n, 2);
    cr_assert_eq(g.total, 2);
    cr_assert(has_edge(&g, "CA caused_by"));
}

typedef struct {
    int done, err;
    size_t nnodes, nedges;
    int64_t count[8], last[8];
    char pair[8][32];
} egraph_t;

static void on_egraph(void *udata, int err, const eg_entgraph_node_t *nodes, size_t nnodes,
                      const eg_entgraph_edge_t *edges, size_t nedges)
{
    egraph_t *g = udata;

    g->err = err;
    g->nnodes = nnodes;
    g->nedges = nedges;
    for (size_t i = 0; i < nedges && i < 8; i++) {
        g->count[i] = edges[i].count;
        g->last[i] = edges[i].last;
        cr_assert_lt(strcmp(nodes[edges[i].a].id, nodes[edges[i].b].id), 0);
        snprintf(g->pair[i], sizeof(g->pair[i]), "%s", nodes[edges[i].a].name);
    }
    g->done = 1;
}

Test(memories_views, entity_graph)
{
    egraph_t g = {0};

    cr_assert_eq(eg_memories_entity_graph(E.ws, E.bank, 1000, 1, on_egraph, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, 0);
    cr_assert_eq(g.nedges, 3, "B names Alice, Bob and Paris: three pairs");
    cr_assert_eq(g.nnodes, 3);
    cr_assert_eq(g.count[0], 1);
    cr_assert_eq(g.last[0], E.m + EG_TEXT_US_PER_SEC);
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_memories_entity_graph(E.ws, E.bank, 2, 1, on_egraph, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.nedges, 2, "limit counts edges");
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_memories_entity_graph(E.ws, E.bank, 1000, 2, on_egraph, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.nedges, 0);
    cr_assert_eq(g.nnodes, 0);
}

/* ---- statistics, time series, tags, entities ------------------------------------------------- */

typedef struct {
    int done, err;
    eg_memstats_t st;
} stats_t;

static void on_stats(void *udata, int err, const eg_memstats_t *st)
{
    stats_t *s = udata;

    s->err = err;
    if (st)
        s->st = *st;
    s->done = 1;
}

Test(memories_views, stats)
{
    stats_t s = {0};

    cr_assert_eq(eg_memories_stats(E.ws, E.bank, on_stats, &s), 0);
    wait_for(&s.done);
    cr_assert_eq(s.err, 0);
    cr_assert_eq(s.st.units[EG_FACT_WORLD], 2);
    cr_assert_eq(s.st.units[EG_FACT_EXPERIENCE], 1);
    cr_assert_eq(s.st.units[EG_FACT_OBSERVATION], 1);
    cr_assert_eq(s.st.links[EG_LINK_SEMANTIC], 1);
    cr_assert_eq(s.st.links[EG_LINK_CAUSES] + s.st.links[EG_LINK_CAUSED_BY], 1);
    cr_assert_eq(s.st.links[EG_LINK_TEMPORAL], 3, "A, B and C within a day of each other");
    cr_assert_eq(s.st.links[EG_MEMGRAPH_ENTITY], 3, "Alice: A B D (a chain of 2), Bob: B C (1)");
    cr_assert_eq(s.st.documents, 2);
    cr_assert_eq(s.st.entities, 3);
    cr_assert_gt(s.st.last_write_ms, 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(s.st.ops[i], 0);
}

typedef struct {
    int done, err;
    size_t n, sum[EG_FACT_NTYPES], last_total;
    char trunc[16];
} ts_t;

static void on_ts(void *udata, int err, const char *trunc, const eg_ts_bucket_t *b, size_t n)
{
    ts_t *t = udata;

    t->err = err;
    t->n = n;
    snprintf(t->trunc, sizeof(t->trunc), "%s", trunc);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < EG_FACT_NTYPES; k++)
            t->sum[k] += b[i].counts[k];
    for (int k = 0; n && k < EG_FACT_NTYPES; k++)
        t->last_total += b[n - 1].counts[k];
    t->done = 1;
}

static ts_t timeseries(eg_ts_period_t p, eg_ts_field_t f)
{
    ts_t t = {0};

    cr_assert_eq(eg_memories_timeseries(E.ws, E.bank, p, f, E.now, on_ts, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    return t;
}

Test(memories_views, timeseries)
{
    ts_t t = timeseries(EG_TS_1D, EG_TS_CREATED);

    cr_assert_eq(t.n, 24);
    cr_assert_str_eq(t.trunc, "hour");
    cr_assert_eq(t.sum[EG_FACT_WORLD], 2);
    cr_assert_eq(t.sum[EG_FACT_EXPERIENCE], 1);
    cr_assert_eq(t.sum[EG_FACT_OBSERVATION], 0, "D was created two days ago");
    t = timeseries(EG_TS_7D, EG_TS_CREATED);
    cr_assert_eq(t.n, 7);
    cr_assert_eq(t.sum[EG_FACT_OBSERVATION], 1);
    /* D has no mentioned_at: it falls back to its created_at. */
    t = timeseries(EG_TS_7D, EG_TS_MENTIONED);
    cr_assert_eq(t.sum[0] + t.sum[1] + t.sum[2], 4);
    t = timeseries(EG_TS_1H, EG_TS_CREATED);
    cr_assert_eq(t.n, 60);
    cr_assert_eq(t.sum[0] + t.sum[1] + t.sum[2], 3, "created half an hour ago");
}

typedef struct {
    int done, err;
    size_t n, total;
    char tags[8][32];
    size_t counts[8];
} tags_t;

static void on_tags(void *udata, int err, const eg_tag_count_t *tags, size_t n, size_t total)
{
    tags_t *t = udata;

    t->err = err;
    t->n = n;
    t->total = total;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(t->tags[i], sizeof(t->tags[i]), "%s", tags[i].tag);
        t->counts[i] = tags[i].count;
    }
    t->done = 1;
}

static tags_t tags(const char *pattern, size_t limit, size_t offset)
{
    tags_t t = {0};

    cr_assert_eq(eg_memories_tags(E.ws, E.bank, pattern, limit, offset, on_tags, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    return t;
}

Test(memories_views, tags)
{
    tags_t t = tags(NULL, 100, 0);

    cr_assert_eq(t.total, 3);
    cr_assert_str_eq(t.tags[0], "team");
    cr_assert_str_eq(t.tags[1], "user:1");
    cr_assert_str_eq(t.tags[2], "user:2");
    cr_assert_eq(t.counts[0], 1);
    t = tags("USER:*", 100, 0);
    cr_assert_eq(t.total, 2);
    t = tags("user:*", 1, 1);
    cr_assert_eq(t.n, 1);
    cr_assert_str_eq(t.tags[0], "user:2");
    cr_assert_eq(tags("nothing*", 100, 0).total, 0);
}

typedef struct {
    int done, err;
    size_t n, total;
    char names[8][32];
    int64_t mentions[8];
} ents_t;

static void on_ents(void *udata, int err, const eg_mem_entity_t *e, size_t n, size_t total)
{
    ents_t *t = udata;

    t->err = err;
    t->n = n;
    t->total = total;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(t->names[i], sizeof(t->names[i]), "%s", e[i].canonical_name);
        t->mentions[i] = e[i].mention_count;
    }
    t->done = 1;
}

Test(memories_views, entities_by_mentions)
{
    ents_t t = {0};

    cr_assert_eq(eg_memories_entities(E.ws, E.bank, 100, 0, on_ents, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    cr_assert_eq(t.total, 3);
    cr_assert_str_eq(t.names[0], "Alice");
    cr_assert_eq(t.mentions[0], 3);
    cr_assert_str_eq(t.names[1], "Bob");
    cr_assert_str_eq(t.names[2], "Paris");
    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_entities(E.ws, E.bank, 1, 2, on_ents, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.n, 1);
    cr_assert_str_eq(t.names[0], "Paris");
}

/* ---- documents and chunks -------------------------------------------------------------------- */

typedef struct {
    int done, err;
    size_t n, total;
    char ids[8][32];
    size_t nunits[8];
    size_t by_type[EG_FACT_NTYPES];
    char bank[128], chunk_text[128];
    size_t chunk_index;
} docs_t;

static void on_docs(void *udata, int err, const eg_doc_item_t *d, size_t n, size_t total)
{
    docs_t *t = udata;

    t->err = err;
    t->n = n;
    t->total = total;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(t->ids[i], sizeof(t->ids[i]), "%s", d[i].id);
        t->nunits[i] = d[i].nunits;
    }
    t->done = 1;
}

static docs_t docs(eg_docs_query_t q)
{
    docs_t t = {0};

    if (q.limit == 0)
        q.limit = 100;
    cr_assert_eq(eg_memories_documents(E.ws, E.bank, &q, on_docs, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    return t;
}

static void on_doc(void *udata, int err, const eg_mem_doc_t *d, const size_t by_type[3])
{
    docs_t *t = udata;

    t->err = err;
    if (d) {
        snprintf(t->ids[0], sizeof(t->ids[0]), "%s", d->id);
        memcpy(t->by_type, by_type, sizeof(t->by_type));
    }
    t->done = 1;
}

static void on_chunks(void *udata, int err, const eg_mem_chunk_t *const *c, size_t n, size_t total)
{
    docs_t *t = udata;

    t->err = err;
    t->n = n;
    t->total = total;
    if (n) {
        snprintf(t->chunk_text, sizeof(t->chunk_text), "%s", c[0]->text);
        t->chunk_index = c[0]->chunk_index;
    }
    t->done = 1;
}

static void on_chunk(void *udata, int err, const char *bank, const eg_mem_chunk_t *c)
{
    docs_t *t = udata;

    t->err = err;
    if (c) {
        snprintf(t->bank, sizeof(t->bank), "%s", bank);
        snprintf(t->chunk_text, sizeof(t->chunk_text), "%s", c->text);
    }
    t->done = 1;
}

Test(memories_views, documents_and_chunks)
{
    const char *team[] = {"team"};
    docs_t t = docs((eg_docs_query_t){0});
    char *cid;

    cr_assert_eq(t.total, 2);
    cr_assert_str_eq(t.ids[0], "d2", "most recently written first");
    cr_assert_eq(t.nunits[1], 3);
    t = docs((eg_docs_query_t){.q = "D1"});
    cr_assert_eq(t.total, 1);
    cr_assert_str_eq(t.ids[0], "d1");
    t = docs((eg_docs_query_t){.tags = team, .ntags = 1, .tags_match = EG_TAGS_ANY_STRICT});
    cr_assert_eq(t.total, 1);
    t = docs((eg_docs_query_t){.limit = 1, .offset = 1});
    cr_assert_eq(t.n, 1);
    cr_assert_str_eq(t.ids[0], "d1");

    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_document(E.ws, E.bank, "d1", on_doc, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    cr_assert_eq(t.by_type[EG_FACT_WORLD], 2);
    cr_assert_eq(t.by_type[EG_FACT_EXPERIENCE], 1);
    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_document(E.ws, E.bank, "nope", on_doc, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, EG_ENOTFOUND);

    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_chunks(E.ws, E.bank, "d1", 1, 1, on_chunks, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    cr_assert_eq(t.total, 2);
    cr_assert_eq(t.n, 1);
    cr_assert_eq(t.chunk_index, 1);
    cr_assert_str_eq(t.chunk_text, "Bob fixes the printer.");
    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_chunks(E.ws, E.bank, "nope", 10, 0, on_chunks, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, EG_ENOTFOUND);

    /* By id alone: the bank is the longest prefix that holds the chunk. */
    cid = eg_mem_chunk_id(&E.a, E.bank, "d1", 1);
    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_chunk_find(E.ws, cid, on_chunk, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    cr_assert_str_eq(t.bank, E.bank);
    cr_assert_str_eq(t.chunk_text, "Bob fixes the printer.");
    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_chunk_find("another-workspace", cid, on_chunk, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, EG_ENOTFOUND, "another workspace's bank is another bank");
    cr_assert_eq(eg_memories_chunk_find(E.ws, "nochunkid", on_chunk, &t), EG_ENOTFOUND);
    cr_assert_eq(eg_memories_chunk_find(E.ws, "a_b_x", on_chunk, &t), EG_ENOTFOUND);
}
