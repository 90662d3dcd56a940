/* Hindsight document routes: list, get, PATCH tags, DELETE (cascading to the document's units,
 * chunks and links), a document's chunks, and a chunk by id alone. Thin: parse, call the
 * memories module (engram/memories.h) or the store (engram/mstore.h), render. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/memories.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

static const char *const doc_keep_nulls[] = {"original_text", "content_hash", NULL};

static cJSON *tags_json(const char *const *tags, size_t n)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(tags[i]));
    return a;
}

/* ---- GET B/documents ------------------------------------------------------------------------- */

static void on_documents(void *udata, int err, const eg_doc_item_t *docs, size_t n, size_t total)
{
    eg_req_t *req = udata;
    eg_docs_query_t *q = req->udata;
    cJSON *j, *items;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    items = cJSON_AddArrayToObject(j, "items");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "id", docs[i].id);
        cJSON_AddStringToObject(o, "bank_id", eg_req_param(req, "bank_id"));
        if (docs[i].content_hash)
            cJSON_AddStringToObject(o, "content_hash", docs[i].content_hash);
        eg__hs_add_time_us(o, "created_at", docs[i].created_at);
        eg__hs_add_time_us(o, "updated_at", docs[i].updated_at);
        cJSON_AddNumberToObject(o, "memory_unit_count", (double)docs[i].nunits);
        cJSON_AddItemToObject(o, "tags", tags_json(docs[i].tags, docs[i].ntags));
        cJSON_AddNumberToObject(o, "text_length", (double)docs[i].text_length);
        cJSON_AddItemToArray(items, o);
    }
    cJSON_AddNumberToObject(j, "total", (double)total);
    cJSON_AddNumberToObject(j, "limit", (double)q->limit);
    cJSON_AddNumberToObject(j, "offset", (double)q->offset);
    eg__hs_send(req, 200, j);
}

static void h_list(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req), *match;
    eg_docs_query_t *q;
    const char **tags = NULL;
    cJSON *errs;
    int64_t limit, offset;
    int rc;

    if (id == NULL)
        return;
    errs = cJSON_CreateArray();
    eg__hs_query_int(req, "limit", 100, 0, &limit, errs);
    eg__hs_query_int(req, "offset", 0, 0, &offset, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    q = eg_arena_calloc(&req->arena, sizeof(*q));
    match = eg_req_query(req, "tags_match");
    if (eg_tags_match_parse(match ? match : "any_strict", &q->tags_match) != 0) {
        eg_res_error_status(req, 400, EG_EINVAL,
                            "Invalid tags_match '%s': expected 'any', 'all', 'any_strict', "
                            "'all_strict' or 'exact'.",
                            match);
        return;
    }
    q->ntags = eg_req_query_all(req, "tags", NULL, 0);
    if (q->ntags) {
        tags = eg_arena_alloc(&req->arena, q->ntags * sizeof(*tags));
        eg_req_query_all(req, "tags", tags, q->ntags);
    }
    q->tags = tags;
    q->q = eg_req_query(req, "q");
    q->limit = (size_t)limit;
    q->offset = (size_t)offset;
    req->udata = q;
    rc = eg_memories_documents(req->auth.workspace_id, id, q, on_documents, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- GET B/documents/{document_id} ----------------------------------------------------------- */

static void on_document(void *udata, int err, const eg_mem_doc_t *d,
                        const size_t by_type[EG_FACT_NTYPES])
{
    eg_req_t *req = udata;
    const cJSON *scopes;
    cJSON *j, *nodes;

    if (err == EG_EINVAL) /* an id the store cannot hold names no document */
        err = EG_ENOTFOUND;
    if (err) {
        eg__hs_fail(req, err, "Document not found");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", d->id);
    cJSON_AddStringToObject(j, "bank_id", eg_req_param(req, "bank_id"));
    cJSON_AddItemToObject(j, "original_text",
                          d->original_text ? cJSON_CreateString(d->original_text)
                                           : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "content_hash",
                          d->content_hash ? cJSON_CreateString(d->content_hash)
                                          : cJSON_CreateNull());
    eg__hs_add_time_us(j, "created_at", d->created_at);
    eg__hs_add_time_us(j, "updated_at", d->updated_at);
    cJSON_AddNumberToObject(j, "memory_unit_count", (double)d->nunits);
    nodes = cJSON_AddObjectToObject(j, "nodes_by_fact_type");
    for (int t = 0; t < EG_FACT_NTYPES; t++)
        if (by_type[t])
            cJSON_AddNumberToObject(nodes, eg_fact_type_name(t), (double)by_type[t]);
    cJSON_AddItemToObject(j, "tags", tags_json(d->tags, d->ntags));
    if (d->metadata)
        cJSON_AddItemToObject(j, "document_metadata", cJSON_Duplicate(d->metadata, true));
    if (d->retain_params) {
        cJSON_AddItemToObject(j, "retain_params", cJSON_Duplicate(d->retain_params, true));
        scopes = cJSON_GetObjectItemCaseSensitive(d->retain_params, "observation_scopes");
        if (scopes && !cJSON_IsNull(scopes))
            cJSON_AddItemToObject(j, "observation_scopes", cJSON_Duplicate(scopes, true));
    }
    eg__hs_strip_nulls(j, doc_keep_nulls);
    eg_res_json(req, 200, j);
}

static void h_get(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_memories_document(req->auth.workspace_id, id, eg_req_param(req, "document_id"),
                              on_document, req);
    if (rc)
        eg__hs_fail(req, rc, "Document not found");
}

/* ---- PATCH B/documents/{document_id} --------------------------------------------------------- */

static void on_tags_set(void *udata, int err, int64_t n)
{
    eg_req_t *req = udata;
    cJSON *j;

    (void)n;
    if (err) {
        eg__hs_fail(req, err, "Document not found");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "success", true);
    eg__hs_send(req, 200, j);
}

static void h_patch(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    const char **tags = NULL;
    size_t ntags = 0;
    cJSON *body, *errs;
    bool given;
    int rc;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    given = eg__hs_opt_strings(req, body, "tags", &tags, &ntags, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    if (!given) {
        eg_res_error_status(req, 422, EG_EUNPROCESSABLE,
                            "At least one field (tags) must be provided");
        return;
    }
    if (ntags > EG_MEM_TAGS_MAX) {
        eg_res_error_status(req, 400, EG_EINVAL, "At most %d tags", EG_MEM_TAGS_MAX);
        return;
    }
    for (size_t i = 0; i < ntags; i++) {
        if (strlen(tags[i]) > EG_MEM_TAG_MAX) {
            eg_res_error_status(req, 400, EG_EINVAL, "A tag is at most %d bytes", EG_MEM_TAG_MAX);
            return;
        }
    }
    rc = eg_mem_doc_set_tags(req->auth.workspace_id, id, eg_req_param(req, "document_id"), tags,
                             ntags, on_tags_set, req);
    if (rc == EG_EINVAL) /* an id the store cannot hold names no document */
        rc = EG_ENOTFOUND;
    if (rc)
        eg__hs_fail(req, rc, "Document not found");
}

/* ---- DELETE B/documents/{document_id} -------------------------------------------------------- */

static void on_doc_deleted(void *udata, int err, int64_t n)
{
    eg_req_t *req = udata;
    const char *doc = eg_req_param(req, "document_id");
    cJSON *j;

    if (err == EG_EINVAL)
        err = EG_ENOTFOUND;
    if (err) {
        eg__hs_fail(req, err, "Document not found");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "success", true);
    cJSON_AddStringToObject(
        j, "message",
        eg_arena_printf(&req->arena,
                        "Document '%s' and %lld associated memory units deleted successfully", doc,
                        (long long)n));
    cJSON_AddStringToObject(j, "document_id", doc);
    cJSON_AddNumberToObject(j, "memory_units_deleted", (double)n);
    eg__hs_send(req, 200, j);
}

static void h_delete(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_mem_doc_delete(req->auth.workspace_id, id, eg_req_param(req, "document_id"),
                           on_doc_deleted, req);
    if (rc)
        on_doc_deleted(req, rc, 0);
}

/* ---- chunks ---------------------------------------------------------------------------------- */

static cJSON *chunk_json(const char *bank_id, const eg_mem_chunk_t *c)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "chunk_id", c->id);
    cJSON_AddStringToObject(o, "document_id", c->document_id);
    cJSON_AddStringToObject(o, "bank_id", bank_id);
    cJSON_AddNumberToObject(o, "chunk_index", (double)c->chunk_index);
    cJSON_AddStringToObject(o, "chunk_text", c->text);
    eg__hs_add_time_us(o, "created_at", c->created_at);
    return o;
}

typedef struct page_s {
    int64_t limit, offset;
} page_t;

static void on_chunks(void *udata, int err, const eg_mem_chunk_t *const *chunks, size_t n,
                      size_t total)
{
    eg_req_t *req = udata;
    page_t *p = req->udata;
    cJSON *j, *items;

    if (err == EG_EINVAL)
        err = EG_ENOTFOUND;
    if (err) {
        eg__hs_fail(req, err, "Document not found");
        return;
    }
    j = cJSON_CreateObject();
    items = cJSON_AddArrayToObject(j, "items");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, chunk_json(eg_req_param(req, "bank_id"), chunks[i]));
    cJSON_AddNumberToObject(j, "total", (double)total);
    cJSON_AddNumberToObject(j, "limit", (double)p->limit);
    cJSON_AddNumberToObject(j, "offset", (double)p->offset);
    eg__hs_send(req, 200, j);
}

static void h_chunks(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    page_t *p;
    cJSON *errs;
    int rc;

    if (id == NULL)
        return;
    p = eg_arena_calloc(&req->arena, sizeof(*p));
    errs = cJSON_CreateArray();
    eg__hs_query_int_in(req, "limit", 100, 1, 1000, &p->limit, errs);
    eg__hs_query_int(req, "offset", 0, 0, &p->offset, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    req->udata = p;
    rc = eg_memories_chunks(req->auth.workspace_id, id, eg_req_param(req, "document_id"),
                            (size_t)p->limit, (size_t)p->offset, on_chunks, req);
    if (rc)
        on_chunks(req, rc, NULL, 0, 0);
}

static void on_chunk(void *udata, int err, const char *bank_id, const eg_mem_chunk_t *chunk)
{
    eg_req_t *req = udata;

    if (err) {
        eg__hs_fail(req, err, "Chunk not found");
        return;
    }
    eg__hs_send(req, 200, chunk_json(bank_id, chunk));
}

static void h_chunk(eg_req_t *req)
{
    int rc = eg_memories_chunk_find(req->auth.workspace_id, eg_req_param(req, "chunk_id"), on_chunk,
                                    req);

    if (rc)
        on_chunk(req, rc, NULL, NULL);
}

int eg__hs_documents_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"GET", B "/documents", h_list},
        {"GET", B "/documents/{document_id}", h_get},
        {"PATCH", B "/documents/{document_id}", h_patch},
        {"DELETE", B "/documents/{document_id}", h_delete},
        {"GET", B "/documents/{document_id}/chunks", h_chunks},
        {"GET", "/v1/default/chunks/{chunk_id}", h_chunk},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
