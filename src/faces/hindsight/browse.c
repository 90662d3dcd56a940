/* Hindsight routes that look at a whole bank: the memory graph, tags, entities (list, one, the
 * co-occurrence graph, the removed regenerate), statistics and the memories time series. Thin:
 * parse the vendor's query, call the memories module (engram/memories.h), render. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/memories.h"
#include "engram/mental_models.h"
#include "engram/text.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

/* ---- GET B/graph ----------------------------------------------------------------------------- */

/* The first n code points of s, then "..." when there were more (Python's s[:n] + "..."). */
static char *label(eg_arena_t *a, const char *s, size_t n)
{
    size_t i = 0, cps = 0;

    while (s[i] && cps < n) {
        i++;
        while ((s[i] & 0xC0) == 0x80)
            i++;
        cps++;
    }
    return s[i] ? eg_arena_printf(a, "%.*s...", (int)i, s) : eg_arena_strdup(a, s);
}

static cJSON *table_row(eg_arena_t *a, const eg_memory_t *m)
{
    const eg_mem_unit_t *u = m->unit;
    int64_t date = u->occurred_start != EG_MEM_TIME_NONE ? u->occurred_start : u->mentioned_at;
    cJSON *o = cJSON_CreateObject(), *tags;
    eg_buf_t names = EG_BUF_INIT;

    cJSON_AddStringToObject(o, "id", u->id);
    cJSON_AddStringToObject(o, "text", u->text);
    cJSON_AddStringToObject(o, "context", u->context && u->context[0] ? u->context : "N/A");
    if (date != EG_MEM_TIME_NONE) {
        char iso[EG_TEXT_ISO_MAX];

        eg_text_format_iso(date, iso); /* "2024-01-15T10:30:..." -> "2024-01-15 10:30" */
        cJSON_AddStringToObject(o, "date", eg_arena_printf(a, "%.10s %.5s", iso, iso + 11));
    } else {
        cJSON_AddStringToObject(o, "date", "N/A");
    }
    for (size_t i = 0; i < m->nentity_names; i++)
        eg_buf_printf(&names, "%s%s", i ? ", " : "", m->entity_names[i]);
    eg_buf_puts(&names, "");
    cJSON_AddStringToObject(o, "entities", m->nentity_names ? names.data : "None");
    eg_buf_free(&names);
    eg__hs_add_time_us(o, "occurred_start", u->occurred_start);
    eg__hs_add_time_us(o, "occurred_end", u->occurred_end);
    eg__hs_add_time_us(o, "mentioned_at", u->mentioned_at);
    if (u->document_id)
        cJSON_AddStringToObject(o, "document_id", u->document_id);
    if (u->chunk_id)
        cJSON_AddStringToObject(o, "chunk_id", u->chunk_id);
    cJSON_AddStringToObject(o, "fact_type", eg_fact_type_name(u->type));
    tags = cJSON_AddArrayToObject(o, "tags");
    for (size_t i = 0; i < u->ntags; i++)
        cJSON_AddItemToArray(tags, cJSON_CreateString(u->tags[i]));
    return o;
}

static void on_graph(void *udata, int err, const eg_memory_t *items, size_t n,
                     const eg_memgraph_edge_t *edges, size_t nedges, size_t total)
{
    eg_req_t *req = udata;
    eg_memories_query_t *q = req->udata;
    cJSON *j, *nodes, *es, *rows;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    nodes = cJSON_AddArrayToObject(j, "nodes");
    es = cJSON_AddArrayToObject(j, "edges");
    rows = cJSON_AddArrayToObject(j, "table_rows");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "id", items[i].unit->id);
        cJSON_AddStringToObject(o, "label", label(&req->arena, items[i].unit->text, 30));
        cJSON_AddStringToObject(o, "type", eg_fact_type_name(items[i].unit->type));
        cJSON_AddItemToArray(nodes, o);
        cJSON_AddItemToArray(rows, table_row(&req->arena, &items[i]));
    }
    for (size_t i = 0; i < nedges; i++) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "from", items[edges[i].from].unit->id);
        cJSON_AddStringToObject(o, "to", items[edges[i].to].unit->id);
        cJSON_AddStringToObject(o, "type", eg_memgraph_type_name(edges[i].type));
        cJSON_AddNumberToObject(o, "weight", edges[i].weight);
        cJSON_AddItemToArray(es, o);
    }
    cJSON_AddNumberToObject(j, "total_units", (double)total);
    cJSON_AddNumberToObject(j, "limit", (double)q->limit);
    eg__hs_send(req, 200, j);
}

static void h_graph(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req), *type, *match;
    eg_memories_query_t *q;
    const char **tags = NULL;
    size_t ntags;
    cJSON *errs;
    int64_t limit;
    eg_fact_type_t t;
    int rc;

    if (id == NULL)
        return;
    errs = cJSON_CreateArray();
    if (!eg__hs_query_int(req, "limit", 1000, 0, &limit, errs)) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    q = eg_arena_calloc(&req->arena, sizeof(*q));
    match = eg_req_query(req, "tags_match");
    if (eg_tags_match_parse(match ? match : "all_strict", &q->tags_match) != 0) {
        eg_res_error_status(req, 400, EG_EINVAL,
                            "Invalid tags_match '%s': expected 'any', 'all', 'any_strict', "
                            "'all_strict' or 'exact'.",
                            match);
        return;
    }
    type = eg_req_query(req, "type");
    if (type && eg_fact_type_parse(type, &t) == 0)
        q->types = 1u << t;
    else if (type)
        q->none = true;
    ntags = eg_req_query_all(req, "tags", NULL, 0);
    if (ntags) {
        tags = eg_arena_alloc(&req->arena, ntags * sizeof(*tags));
        eg_req_query_all(req, "tags", tags, ntags);
    }
    q->tags = tags;
    q->ntags = ntags;
    q->text = eg_req_query(req, "q");
    q->document_id = eg_req_query(req, "document_id");
    q->chunk_id = eg_req_query(req, "chunk_id");
    q->limit = (size_t)limit;
    req->udata = q;
    rc = eg_memories_graph(req->auth.workspace_id, id, q, on_graph, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- GET B/tags ------------------------------------------------------------------------------ */

typedef struct page_s {
    int64_t limit, offset;
} page_t;

static cJSON *page_json(eg_req_t *req, cJSON *items, size_t total)
{
    page_t *p = req->udata;
    cJSON *j = cJSON_CreateObject();

    cJSON_AddItemToObject(j, "items", items);
    cJSON_AddNumberToObject(j, "total", (double)total);
    cJSON_AddNumberToObject(j, "limit", (double)p->limit);
    cJSON_AddNumberToObject(j, "offset", (double)p->offset);
    return j;
}

/* limit (default def) and offset into a page_t in req->udata; false after answering 422. */
static bool page_params(eg_req_t *req, int64_t def)
{
    page_t *p = eg_arena_calloc(&req->arena, sizeof(*p));
    cJSON *errs = cJSON_CreateArray();

    eg__hs_query_int(req, "limit", def, 0, &p->limit, errs);
    eg__hs_query_int(req, "offset", 0, 0, &p->offset, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return false;
    }
    cJSON_Delete(errs);
    req->udata = p;
    return true;
}

static void on_tags(void *udata, int err, const eg_tag_count_t *tags, size_t n, size_t total)
{
    eg_req_t *req = udata;
    cJSON *items;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    items = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "tag", tags[i].tag);
        cJSON_AddNumberToObject(o, "count", (double)tags[i].count);
        cJSON_AddItemToArray(items, o);
    }
    eg__hs_send(req, 200, page_json(req, items, total));
}

static void on_mm_tags(void *udata, int err, const eg_mm_tag_count_t *tags, size_t n,
                       size_t total)
{
    eg_req_t *req = udata;
    cJSON *items;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    items = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "tag", tags[i].tag);
        cJSON_AddNumberToObject(o, "count", (double)tags[i].count);
        cJSON_AddItemToArray(items, o);
    }
    eg__hs_send(req, 200, page_json(req, items, total));
}

static void h_tags(eg_req_t *req)
{
    static const char *const sources[] = {"memories", "mental_models", NULL};
    const char *id = eg__hs_bank_id(req), *source;
    page_t *p;
    cJSON *errs;
    int rc;

    if (id == NULL)
        return;
    errs = cJSON_CreateArray();
    if (!eg__hs_query_enum(req, "source", sources, "memories", &source, errs)) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    if (!page_params(req, 100))
        return;
    p = req->udata;
    if (strcmp(source, "mental_models") == 0) {
        rc = eg_mm_tags(req->auth.workspace_id, id, eg_req_query(req, "q"), (size_t)p->limit,
                        (size_t)p->offset, on_mm_tags, req);
        if (rc)
            eg__hs_fail(req, rc, "");
        return;
    }
    rc = eg_memories_tags(req->auth.workspace_id, id, eg_req_query(req, "q"), (size_t)p->limit,
                          (size_t)p->offset, on_tags, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- entities -------------------------------------------------------------------------------- */

static cJSON *entity_json(const eg_mem_entity_t *e)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", e->id);
    cJSON_AddStringToObject(o, "canonical_name", e->canonical_name);
    cJSON_AddNumberToObject(o, "mention_count", (double)e->mention_count);
    eg__hs_add_time_us(o, "first_seen", e->first_seen);
    eg__hs_add_time_us(o, "last_seen", e->last_seen);
    cJSON_AddItemToObject(o, "metadata",
                          e->metadata ? cJSON_Duplicate(e->metadata, true) : cJSON_CreateObject());
    return o;
}

static void on_entities(void *udata, int err, const eg_mem_entity_t *ents, size_t n, size_t total)
{
    eg_req_t *req = udata;
    cJSON *items;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    items = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, entity_json(&ents[i]));
    eg__hs_send(req, 200, page_json(req, items, total));
}

static void h_entities(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    page_t *p;
    int rc;

    if (id == NULL || !page_params(req, 100))
        return;
    p = req->udata;
    rc = eg_memories_entities(req->auth.workspace_id, id, (size_t)p->limit, (size_t)p->offset,
                              on_entities, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

static const char *entity_not_found(eg_req_t *req)
{
    return eg_arena_printf(&req->arena, "Entity %s not found", eg_req_param(req, "entity_id"));
}

/* The observations about an entity (consolidation's, newest first, at most 50), added to the
 * entity's JSON as [{text, mentioned_at?}] before it is sent. */
static void on_entity_obs(void *udata, int err, const eg_memory_t *items, size_t n, size_t total)
{
    eg_req_t *req = udata;
    cJSON *j = req->udata, *obs;

    (void)total;
    if (err) {
        cJSON_Delete(j);
        eg__hs_fail(req, err, "");
        return;
    }
    obs = cJSON_AddArrayToObject(j, "observations");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "text", items[i].unit->text);
        eg__hs_add_time_us(o, "mentioned_at", items[i].unit->mentioned_at);
        cJSON_AddItemToArray(obs, o);
    }
    eg__hs_send(req, 200, j);
}

static void entity_observations(eg_req_t *req, cJSON *j, const char *entity_id)
{
    eg_memories_query_t q = {.types = 1u << EG_FACT_OBSERVATION,
                             .entity_id = eg_arena_strdup(&req->arena, entity_id),
                             .limit = 50};
    int rc;

    req->udata = j;
    rc = eg_memories_list(req->auth.workspace_id, eg__hs_bank_id(req), &q, on_entity_obs, req);
    if (rc)
        on_entity_obs(req, rc, NULL, 0, 0);
}

static void on_entity(void *udata, int err, const eg_mem_entity_t *const *ents, size_t n)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err == 0 && (n < 1 || ents[0] == NULL))
        err = EG_ENOTFOUND;
    if (err == EG_EINVAL) /* an id the store cannot hold names no entity */
        err = EG_ENOTFOUND;
    if (err) {
        eg__hs_fail(req, err, entity_not_found(req));
        return;
    }
    j = entity_json(ents[0]);
    entity_observations(req, j, ents[0]->id);
}

static void h_entity(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    const char *ids[1] = {eg_req_param(req, "entity_id")};
    int rc;

    if (id == NULL)
        return;
    rc = eg_mem_entities_get(req->auth.workspace_id, id, ids, 1, on_entity, req);
    if (rc)
        on_entity(req, rc, NULL, 0);
}

static void h_regenerate(eg_req_t *req)
{
    if (eg__hs_bank_id(req) == NULL)
        return;
    eg_res_error_status(req, 410, EG_ENOTFOUND,
                        "This endpoint is deprecated. Entity observations are no longer "
                        "supported.");
}

static void on_entity_graph(void *udata, int err, const eg_entgraph_node_t *nodes, size_t nnodes,
                            const eg_entgraph_edge_t *edges, size_t nedges)
{
    eg_req_t *req = udata;
    page_t *p = req->udata;
    cJSON *j, *ns, *es;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    ns = cJSON_AddArrayToObject(j, "nodes");
    es = cJSON_AddArrayToObject(j, "edges");
    for (size_t i = 0; i < nnodes; i++) {
        cJSON *o = cJSON_CreateObject(), *d = cJSON_AddObjectToObject(o, "data");

        cJSON_AddStringToObject(d, "id", nodes[i].id);
        cJSON_AddStringToObject(d, "label", nodes[i].name);
        cJSON_AddNumberToObject(d, "mentionCount", (double)nodes[i].mention_count);
        cJSON_AddStringToObject(d, "color", nodes[i].mention_count > 1 ? "#42a5f5" : "#90caf9");
        cJSON_AddItemToArray(ns, o);
    }
    for (size_t i = 0; i < nedges; i++) {
        cJSON *o = cJSON_CreateObject(), *d = cJSON_AddObjectToObject(o, "data");
        const char *a = nodes[edges[i].a].id, *b = nodes[edges[i].b].id;

        cJSON_AddStringToObject(d, "id", eg_arena_printf(&req->arena, "%s-%s", a, b));
        cJSON_AddStringToObject(d, "source", a);
        cJSON_AddStringToObject(d, "target", b);
        cJSON_AddNumberToObject(d, "weight", (double)edges[i].count);
        cJSON_AddStringToObject(d, "linkType", "cooccurrence");
        eg__hs_add_time_us(d, "lastCooccurred", edges[i].last);
        cJSON_AddStringToObject(d, "color", "#ffd700");
        cJSON_AddStringToObject(d, "lineStyle", "solid");
        cJSON_AddItemToArray(es, o);
    }
    cJSON_AddNumberToObject(j, "total_entities", (double)nnodes);
    cJSON_AddNumberToObject(j, "total_edges", (double)nedges);
    cJSON_AddNumberToObject(j, "limit", (double)p->limit);
    eg__hs_send(req, 200, j);
}

static void h_entity_graph(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    page_t *p;
    cJSON *errs;
    int64_t min_count;
    int rc;

    if (id == NULL)
        return;
    p = eg_arena_calloc(&req->arena, sizeof(*p));
    errs = cJSON_CreateArray();
    eg__hs_query_int(req, "limit", 1000, 0, &p->limit, errs);
    eg__hs_query_int(req, "min_count", 1, INT64_MIN, &min_count, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    req->udata = p;
    rc = eg_memories_entity_graph(req->auth.workspace_id, id, (size_t)p->limit, min_count,
                                  on_entity_graph, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- GET B/stats ----------------------------------------------------------------------------- */

static void on_stats(void *udata, int err, const eg_memstats_t *st)
{
    eg_req_t *req = udata;
    cJSON *j, *nodes, *links, *by_fact, *breakdown, *ops;
    size_t total_nodes = 0, total_links = 0;
    char when[EG_TEXT_ISO_MAX];

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bank_id", eg_req_param(req, "bank_id"));
    nodes = cJSON_CreateObject();
    links = cJSON_CreateObject();
    by_fact = cJSON_CreateObject();
    breakdown = cJSON_CreateObject();
    for (int t = 0; t < EG_FACT_NTYPES; t++) {
        size_t sum = 0;
        cJSON *row = NULL;

        total_nodes += st->units[t];
        if (st->units[t])
            cJSON_AddNumberToObject(nodes, eg_fact_type_name(t), (double)st->units[t]);
        for (int l = 0; l < EG_MEMGRAPH_NTYPES; l++) {
            if (st->links_by_fact[t][l] == 0)
                continue;
            if (row == NULL)
                row = cJSON_AddObjectToObject(breakdown, eg_fact_type_name(t));
            cJSON_AddNumberToObject(row, eg_memgraph_type_name(l), (double)st->links_by_fact[t][l]);
            sum += st->links_by_fact[t][l];
        }
        if (sum)
            cJSON_AddNumberToObject(by_fact, eg_fact_type_name(t), (double)sum);
    }
    for (int l = 0; l < EG_MEMGRAPH_NTYPES; l++) {
        total_links += st->links[l];
        if (st->links[l])
            cJSON_AddNumberToObject(links, eg_memgraph_type_name(l), (double)st->links[l]);
    }
    cJSON_AddNumberToObject(j, "total_nodes", (double)total_nodes);
    cJSON_AddNumberToObject(j, "total_links", (double)total_links);
    cJSON_AddNumberToObject(j, "total_documents", (double)st->documents);
    cJSON_AddItemToObject(j, "nodes_by_fact_type", nodes);
    cJSON_AddItemToObject(j, "links_by_link_type", links);
    cJSON_AddItemToObject(j, "links_by_fact_type", by_fact);
    cJSON_AddItemToObject(j, "links_breakdown", breakdown);
    cJSON_AddNumberToObject(j, "pending_operations", (double)st->ops[EG_OP_PENDING]);
    cJSON_AddNumberToObject(j, "failed_operations", (double)st->ops[EG_OP_FAILED]);
    ops = cJSON_AddObjectToObject(j, "operations_by_status");
    for (int s = EG_OP_PENDING; s <= EG_OP_CANCELLED; s++)
        if (st->ops[s])
            cJSON_AddNumberToObject(ops, eg_op_status_name(s), (double)st->ops[s]);
    if (st->last_write_ms > 0 && total_nodes + st->invalidated > 0) {
        eg_text_format_iso(st->last_write_ms * 1000, when);
        cJSON_AddStringToObject(j, "last_memory_write_at", when);
    }
    if (st->last_consolidated_ms > 0) {
        eg_text_format_iso(st->last_consolidated_ms * 1000, when);
        cJSON_AddStringToObject(j, "last_consolidated_at", when);
    }
    cJSON_AddNumberToObject(j, "pending_consolidation", (double)st->pending_consolidation);
    cJSON_AddNumberToObject(j, "failed_consolidation", (double)st->failed_consolidation);
    cJSON_AddNumberToObject(j, "total_observations", (double)st->units[EG_FACT_OBSERVATION]);
    eg__hs_send(req, 200, j);
}

static void h_stats(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    cJSON *errs;
    bool refresh;
    int rc;

    if (id == NULL)
        return;
    errs = cJSON_CreateArray();
    /* refresh: always fresh here (nothing is cached), so the flag is checked and ignored. */
    if (!eg__hs_query_bool(req, "refresh", false, &refresh, errs)) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    rc = eg_memories_stats(req->auth.workspace_id, id, on_stats, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- GET B/stats/memories-timeseries --------------------------------------------------------- */

typedef struct ts_s {
    eg_ts_period_t period;
    eg_ts_field_t field;
} ts_t;

static void on_timeseries(void *udata, int err, const char *trunc, const eg_ts_bucket_t *b,
                          size_t n)
{
    eg_req_t *req = udata;
    ts_t *ts = req->udata;
    cJSON *j, *arr;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bank_id", eg_req_param(req, "bank_id"));
    cJSON_AddStringToObject(j, "period", eg_ts_period_name(ts->period));
    cJSON_AddStringToObject(j, "trunc", trunc);
    cJSON_AddStringToObject(j, "time_field", eg_ts_field_name(ts->field));
    arr = cJSON_AddArrayToObject(j, "buckets");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();

        eg__hs_add_time_us(o, "time", b[i].start);
        for (int t = 0; t < EG_FACT_NTYPES; t++)
            cJSON_AddNumberToObject(o, eg_fact_type_name(t), (double)b[i].counts[t]);
        cJSON_AddItemToArray(arr, o);
    }
    eg__hs_send(req, 200, j);
}

static void h_timeseries(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    ts_t *ts;
    int rc;

    if (id == NULL)
        return;
    ts = eg_arena_calloc(&req->arena, sizeof(*ts));
    /* Unknown values fall back to the defaults, as Hindsight does (no 422). */
    if (eg_ts_period_parse(eg_req_query(req, "period"), &ts->period) != 0)
        ts->period = EG_TS_7D;
    if (eg_ts_field_parse(eg_req_query(req, "time_field"), &ts->field) != 0)
        ts->field = EG_TS_CREATED;
    req->udata = ts;
    rc = eg_memories_timeseries(req->auth.workspace_id, id, ts->period, ts->field,
                                eg_now_ms() * 1000, on_timeseries, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

int eg__hs_browse_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"GET", B "/graph", h_graph},
        {"GET", B "/tags", h_tags},
        {"GET", B "/entities", h_entities},
        {"GET", B "/entities/graph", h_entity_graph},
        {"GET", B "/entities/{entity_id}", h_entity},
        {"POST", B "/entities/{entity_id}/regenerate", h_regenerate},
        {"GET", B "/stats", h_stats},
        {"GET", B "/stats/memories-timeseries", h_timeseries},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
