/* The MEMORY_SEARCH runner: query expansion, chunk search inside the guard-rail scope, context
 * chunks around each hit.
 *
 * Steps (each a progress item): GeneratingQueries (the model writes queryExpansion.queryCount
 * more queries; without a model the query is searched as given, and the item says so),
 * ExploreQueries (each query searched, its hits per memory type), SearchMemoryTypes (per type:
 * how many chunks, the best score), then the hits merged best first (a chunk found by several
 * queries keeps its best score), cut to chunkLimit, and widened by contextExpansion.before /
 * after chunks of the same memory. Every read passes the task's scope. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/util.h"
#include "engram/error.h"
#include "engram/log.h"
#include "runs/tasks_int.h"

#define SEARCH_QUERIES_MAX (EG_TASK_QUERY_COUNT_MAX + 1)
#define SEARCH_TYPES_MAX   EG_LIB_SCOPE_MAX

static const char *const expand_schema =
    "{\"type\":\"object\",\"properties\":{\"queries\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"string\"}}},\"required\":[\"queries\"],\"additionalProperties\":false}";

typedef struct stype_s {
    const char *id, *name;
    size_t nchunks;
    float best;
} stype_t;

typedef struct search_s {
    const char *query;
    int limit, before, after, qcount;
    const char *queries[SEARCH_QUERIES_MAX];
    size_t nqueries, qi;
    stype_t types[SEARCH_TYPES_MAX];
    size_t ntypes;
    eg_lib_chunk_t *hits; /* merged, best first */
    size_t nhits, caphits;
    cJSON *explored; /* ExploreQueries.queries so far */
    cJSON *items;    /* the result items, context added one hit at a time */
    size_t ci;       /* next hit to widen */
    int gen_item, explore_item, types_item;
} search_t;

static search_t *S(eg__trun_t *r)
{
    return r->runner;
}

static stype_t *type_of(search_t *s, const char *id, const char *name)
{
    for (size_t i = 0; i < s->ntypes; i++)
        if (strcmp(s->types[i].id, id) == 0)
            return &s->types[i];
    if (s->ntypes >= SEARCH_TYPES_MAX)
        return NULL;
    s->types[s->ntypes].id = id;
    s->types[s->ntypes].name = name;
    return &s->types[s->ntypes++];
}

static cJSON *types_json(const search_t *s, bool with_queries, bool with_result, const char *why)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; i < s->ntypes; i++) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "memoryTypeId", s->types[i].id);
        cJSON_AddStringToObject(o, "memoryTypeName", s->types[i].name);
        if (why != NULL)
            cJSON_AddStringToObject(o, "reasoning", why);
        if (with_queries) {
            cJSON *q = cJSON_AddArrayToObject(o, "queries");

            cJSON_AddBoolToObject(o, "reasoningCompleted", true);
            for (size_t k = 0; k < s->nqueries; k++) {
                cJSON *x = cJSON_CreateObject();

                cJSON_AddStringToObject(x, "query", s->queries[k]);
                cJSON_AddItemToArray(q, x);
            }
        }
        if (with_result) {
            cJSON *res = cJSON_AddObjectToObject(o, "result");

            cJSON_AddNumberToObject(res, "numberOfChunks", (double)s->types[i].nchunks);
            cJSON_AddNumberToObject(res, "highestChunkScore", (double)s->types[i].best);
        }
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static void generating(eg__trun_t *r, bool done, const char *why)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddItemToObject(d, "memoryTypes", types_json(S(r), done, false, why));
    eg__trun_progress(r, S(r)->gen_item, "GeneratingQueries", d);
}

/* ---- completion -------------------------------------------------------------------------- */

static void complete(eg__trun_t *r)
{
    search_t *s = S(r);
    char t[EG_TASK_TIME_MAX];
    cJSON *done = cJSON_CreateObject(), *resp = cJSON_AddObjectToObject(done, "response");
    cJSON *ok = cJSON_CreateObject();

    cJSON_AddStringToObject(resp, "query", s->query);
    cJSON_AddItemToObject(resp, "items", cJSON_Duplicate(s->items, true));
    eg_time_iso_us(eg_now_us(), t);
    cJSON_AddStringToObject(ok, "completedAt", t);
    cJSON_AddStringToObject(ok, "query", s->query);
    cJSON_AddItemToObject(ok, "items", s->items);
    s->items = NULL;
    eg__trun_complete(r, done, ok);
}

static void widen_next(eg__trun_t *r);

static cJSON *chunk_json(const eg_lib_chunk_t *c, const char *relation)
{
    cJSON *o = cJSON_CreateObject(), *p = cJSON_CreateArray();

    for (size_t i = 0; i < c->npages; i++)
        cJSON_AddItemToArray(p, cJSON_CreateNumber(c->pages[i]));
    cJSON_AddNumberToObject(o, "chunkNumber", c->chunk_number);
    cJSON_AddItemToObject(o, "pageNumbers", p);
    cJSON_AddStringToObject(o, "content", c->content ? c->content : "");
    cJSON_AddStringToObject(o, "relation", relation);
    return o;
}

static void on_context(void *udata, int err, const eg_lib_chunk_t *c, size_t n)
{
    eg__trun_t *r = udata;
    search_t *s = S(r);
    const eg_lib_chunk_t *hit = &s->hits[s->ci];
    cJSON *item = cJSON_GetArrayItem(s->items, (int)s->ci);
    cJSON *chunks = cJSON_CreateArray();
    bool matched = false;

    /* A memory deleted (or gone out of scope) since the search keeps its hit alone. */
    if (err == 0) {
        for (size_t i = 0; i < n; i++) {
            if (c[i].chunk_number == hit->chunk_number) {
                cJSON_AddItemToArray(chunks, chunk_json(hit, "MATCH"));
                matched = true;
            } else
                cJSON_AddItemToArray(chunks, chunk_json(&c[i], c[i].chunk_number < hit->chunk_number
                                                                   ? "CONTEXT_BEFORE"
                                                                   : "CONTEXT_AFTER"));
        }
    }
    if (matched)
        cJSON_ReplaceItemInObjectCaseSensitive(item, "chunks", chunks);
    else
        cJSON_Delete(chunks);
    s->ci++;
    widen_next(r);
}

static void widen_next(eg__trun_t *r)
{
    search_t *s = S(r);
    const eg_lib_chunk_t *h;
    int rc;

    if (s->ci >= s->nhits || (s->before == 0 && s->after == 0)) {
        complete(r);
        return;
    }
    h = &s->hits[s->ci];
    rc = eg_lib_chunks(r->ws, &r->scope, h->memory_id, h->chunk_number - s->before,
                       h->chunk_number + s->after, on_context, r);
    if (rc != 0)
        on_context(r, rc, NULL, 0);
}

/* ---- searching --------------------------------------------------------------------------- */

static void search_next(eg__trun_t *r);

/* Add hits to the merged list: a chunk already there keeps the better score. */
static void merge(eg__trun_t *r, const eg_lib_chunk_t *c, size_t n)
{
    search_t *s = S(r);

    for (size_t i = 0; i < n; i++) {
        size_t k;

        for (k = 0; k < s->nhits; k++)
            if (s->hits[k].chunk_number == c[i].chunk_number &&
                strcmp(s->hits[k].memory_id, c[i].memory_id) == 0)
                break;
        if (k < s->nhits) {
            if (c[i].score > s->hits[k].score)
                s->hits[k].score = c[i].score;
            continue;
        }
        if (s->nhits == s->caphits) {
            size_t cap = s->caphits ? s->caphits * 2 : 32;
            eg_lib_chunk_t *nh = eg_arena_alloc(&r->arena, cap * sizeof(*nh));

            if (s->nhits)
                memcpy(nh, s->hits, s->nhits * sizeof(*nh));
            s->hits = nh;
            s->caphits = cap;
        }
        s->hits[s->nhits++] = *eg__task_chunks_copy(&r->arena, &c[i], 1);
    }
}

static int by_score(const void *a, const void *b)
{
    const eg_lib_chunk_t *x = a, *y = b;

    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    int c = strcmp(x->memory_id, y->memory_id);
    return c != 0 ? c : x->chunk_number - y->chunk_number;
}

static void on_hits(void *udata, int err, const eg_lib_chunk_t *c, size_t n)
{
    eg__trun_t *r = udata;
    search_t *s = S(r);
    const char *q = s->queries[s->qi];
    cJSON *d;

    if (err != 0) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "query", q);
        cJSON_AddStringToObject(o, "memoryTypeId", "");
        cJSON_AddStringToObject(o, "memoryTypeName", "");
        cJSON_AddStringToObject(o, "error", eg_strerror(err));
        cJSON_AddItemToArray(s->explored, o);
        eg__trun_fail(r, eg_strerror(err));
        return;
    }
    /* One entry per memory type of the query's hits. */
    for (size_t i = 0; i < n; i++) {
        stype_t *t = type_of(s, eg_arena_strdup(&r->arena, c[i].type_id),
                             eg_arena_strdup(&r->arena, c[i].type_name));
        cJSON *o = NULL, *res, *items;
        bool found = false;

        if (t != NULL) {
            t->nchunks++;
            if (c[i].score > t->best)
                t->best = c[i].score;
        }
        cJSON_ArrayForEach(o, s->explored)
        {
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "query")), q) ==
                    0 &&
                strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "memoryTypeId")),
                       c[i].type_id) == 0) {
                found = true;
                break;
            }
        }
        if (!found) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "query", q);
            cJSON_AddStringToObject(o, "memoryTypeId", c[i].type_id);
            cJSON_AddStringToObject(o, "memoryTypeName", c[i].type_name);
            res = cJSON_AddObjectToObject(o, "result");
            cJSON_AddNumberToObject(res, "numberOfChunks", 0);
            cJSON_AddNumberToObject(res, "highestChunkScore", 0);
            cJSON_AddArrayToObject(res, "items");
            cJSON_AddItemToArray(s->explored, o);
        }
        res = cJSON_GetObjectItemCaseSensitive(o, "result");
        items = cJSON_GetObjectItemCaseSensitive(res, "items");
        cJSON_AddItemToArray(items, eg__task_search_item(&c[i]));
        cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(res, "numberOfChunks"),
                             cJSON_GetArraySize(items));
        if (c[i].score > cJSON_GetObjectItemCaseSensitive(res, "highestChunkScore")->valuedouble)
            cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(res, "highestChunkScore"),
                                 c[i].score);
    }
    merge(r, c, n);
    d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "queries", cJSON_Duplicate(s->explored, true));
    eg__trun_progress(r, s->explore_item, "ExploreQueries", d);
    s->qi++;
    search_next(r);
}

static void search_next(eg__trun_t *r)
{
    search_t *s = S(r);
    cJSON *d;
    int rc;

    if (s->qi < s->nqueries) {
        rc = eg_lib_search(r->ws, &r->scope, s->queries[s->qi], (size_t)s->limit, on_hits, r);
        if (rc != 0)
            on_hits(r, rc, NULL, 0);
        return;
    }
    if (s->nhits > 1)
        qsort(s->hits, s->nhits, sizeof(*s->hits), by_score);
    if (s->nhits > (size_t)s->limit)
        s->nhits = (size_t)s->limit;
    s->types_item = eg__trun_item(r);
    d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "memoryTypes", types_json(s, false, true, NULL));
    eg__trun_progress(r, s->types_item, "SearchMemoryTypes", d);
    s->items = cJSON_CreateArray();
    for (size_t i = 0; i < s->nhits; i++)
        cJSON_AddItemToArray(s->items, eg__task_search_item(&s->hits[i]));
    s->ci = 0;
    widen_next(r);
}

static void start_search(eg__trun_t *r)
{
    S(r)->explore_item = eg__trun_item(r);
    S(r)->qi = 0;
    search_next(r);
}

static void add_query(eg__trun_t *r, const char *q)
{
    search_t *s = S(r);

    if (q == NULL || q[0] == '\0' || s->nqueries >= SEARCH_QUERIES_MAX)
        return;
    for (size_t i = 0; i < s->nqueries; i++)
        if (strcmp(s->queries[i], q) == 0)
            return;
    s->queries[s->nqueries++] = eg_arena_strdup(&r->arena, q);
}

static void on_expanded(void *udata, int err, const eg_llm_resp_t *resp)
{
    eg__trun_t *r = udata;
    search_t *s = S(r);
    const cJSON *qs, *q;
    int n = 0;

    if (err != 0) {
        eg__trun_fail(r, resp && resp->error && resp->error[0] ? resp->error : eg_strerror(err));
        return;
    }
    qs = cJSON_GetObjectItemCaseSensitive(resp->json, "queries");
    cJSON_ArrayForEach(q, qs)
    {
        if (n++ >= s->qcount)
            break;
        if (cJSON_IsString(q))
            add_query(r, q->valuestring);
    }
    generating(r, true, NULL);
    start_search(r);
}

static void on_types(void *udata, int err, const eg_lib_memref_t *m, size_t n)
{
    eg__trun_t *r = udata;
    search_t *s = S(r);
    eg_llm_req_t req = {0};
    eg_llm_msg_t *msgs;
    char *prompt;
    int rc;

    if (err != 0) {
        eg__trun_fail(r, eg_strerror(err));
        return;
    }
    for (size_t i = 0; i < n; i++)
        type_of(s, eg_arena_strdup(&r->arena, m[i].type_id ? m[i].type_id : ""),
                eg_arena_strdup(&r->arena, m[i].type_name ? m[i].type_name : ""));
    s->gen_item = eg__trun_item(r);
    add_query(r, s->query);
    if (s->qcount <= 0) {
        generating(r, true, NULL);
        start_search(r);
        return;
    }
    if (r->llm == NULL) {
        generating(r, true,
                   "No language model is configured, so the query is searched as given (no "
                   "query expansion).");
        start_search(r);
        return;
    }
    generating(r, false, NULL);
    prompt = eg_arena_printf(
        &r->arena,
        "Write %d different search queries that would find passages answering the search "
        "below in a library of documents. Vary the wording; keep each query short. %s Answer "
        "with JSON {\"queries\": [\"...\"]}.\n\nSearch: %s",
        s->qcount,
        strcmp(r->language, "no") == 0 ? "Write them in Norwegian." : "Write them in English.",
        s->query);
    msgs = eg_arena_calloc(&r->arena, sizeof(*msgs));
    msgs[0].role = EG_LLM_USER;
    msgs[0].content = prompt;
    req.msgs = msgs;
    req.nmsgs = 1;
    req.schema = expand_schema;
    req.schema_name = "queries";
    req.temperature = -1;
    req.scope = "agent.search";
    rc = eg_llm_chat(r->llm, &req, on_expanded, r, NULL);
    if (rc != 0)
        eg__trun_fail(r, eg_strerror(rc));
}

static void search_release(void *p)
{
    search_t *s = p;

    cJSON_Delete(s->explored);
    cJSON_Delete(s->items);
}

void eg__task_run_search(eg__trun_t *r)
{
    search_t *s = eg_arena_calloc(&r->arena, sizeof(*s));
    const cJSON *ce = cJSON_GetObjectItemCaseSensitive(r->request, "contextExpansion");
    const cJSON *qe = cJSON_GetObjectItemCaseSensitive(r->request, "queryExpansion");
    int rc;

    r->runner = s;
    eg_arena_defer(&r->arena, search_release, s);
    s->query = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->request, "query"));
    if (s->query == NULL)
        s->query = "";
    s->limit = eg__trun_int(r->request, "chunkLimit", 10);
    s->before = eg__trun_int(ce, "before", 0);
    s->after = eg__trun_int(ce, "after", 0);
    s->qcount = eg__trun_int(qe, "queryCount", 0);
    s->explored = cJSON_CreateArray();
    rc = eg_lib_memories(r->ws, &r->scope, EG_LIB_MEMREFS_MAX, on_types, r);
    if (rc != 0)
        eg__trun_fail(r, eg_strerror(rc));
}
