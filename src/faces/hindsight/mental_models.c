/* Hindsight mental model routes: list, create (queues the first refresh), get, PATCH, DELETE,
 * history, refresh, clear. Thin: parse and validate the way FastAPI/pydantic would, call
 * engram/mental_models.h, render MentalModelResponse. dry-run-refresh belongs to reflect.c. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/mental_models.h"
#include "engram/mstore.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

typedef enum { DETAIL_METADATA, DETAIL_CONTENT, DETAIL_FULL } detail_t;

static const char *const details[] = {"metadata", "content", "full", NULL};

/* The trigger as MentalModelTrigger-Output shows it: defaults, then what was stored. */
static cJSON *trigger_out(const cJSON *stored)
{
    cJSON *t = cJSON_CreateObject();
    const cJSON *e;

    cJSON_AddStringToObject(t, "mode", "full");
    cJSON_AddBoolToObject(t, "refresh_after_consolidation", false);
    cJSON_AddBoolToObject(t, "exclude_mental_models", false);
    cJSON_AddBoolToObject(t, "keep_trace", false);
    cJSON_ArrayForEach(e, stored)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(t, e->string);
        cJSON_AddItemToObject(t, e->string, cJSON_Duplicate(e, true));
    }
    return t;
}

static cJSON *mm_json(eg_req_t *req, const eg_mm_t *m, detail_t detail)
{
    cJSON *o = cJSON_CreateObject(), *tags = cJSON_CreateArray();

    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "bank_id", eg_req_param(req, "bank_id"));
    cJSON_AddStringToObject(o, "name", m->name);
    if (detail >= DETAIL_CONTENT) {
        cJSON_AddStringToObject(o, "source_query", m->source_query);
        cJSON_AddStringToObject(o, "content", m->content);
    }
    for (size_t i = 0; i < m->ntags; i++)
        cJSON_AddItemToArray(tags, cJSON_CreateString(m->tags[i]));
    cJSON_AddItemToObject(o, "tags", tags);
    if (detail >= DETAIL_CONTENT) {
        cJSON_AddNumberToObject(o, "max_tokens", (double)m->max_tokens);
        cJSON_AddItemToObject(o, "trigger", trigger_out(m->trigger));
    }
    eg__hs_add_time_us(o, "last_refreshed_at", m->last_refreshed_at);
    eg__hs_add_time_us(o, "last_memory_seen_at", m->last_memory_seen_at);
    eg__hs_add_time_us(o, "created_at", m->created_at);
    if (detail == DETAIL_FULL && m->reflect_response)
        cJSON_AddItemToObject(o, "reflect_response", cJSON_Duplicate(m->reflect_response, true));
    cJSON_AddBoolToObject(o, "is_stale", m->is_stale);
    return o;
}

static void not_found(eg_req_t *req)
{
    eg_res_error_status(req, 404, EG_ENOTFOUND, "Mental model '%s' not found",
                        eg_req_param(req, "mental_model_id"));
}

static void fail(eg_req_t *req, int err)
{
    if (err == EG_ENOTFOUND || err == EG_EINVAL) /* an id the store cannot hold names nothing */
        not_found(req);
    else
        eg__hs_fail(req, err, "");
}

static bool detail_param(eg_req_t *req, detail_t *out)
{
    const char *d;
    cJSON *errs = cJSON_CreateArray();

    if (!eg__hs_query_enum(req, "detail", details, "full", &d, errs)) {
        eg__hs_send_422(req, errs);
        return false;
    }
    cJSON_Delete(errs);
    *out = strcmp(d, "metadata") == 0  ? DETAIL_METADATA
           : strcmp(d, "content") == 0 ? DETAIL_CONTENT
                                       : DETAIL_FULL;
    return true;
}

static void on_mm(void *udata, int err, const eg_mm_t *m)
{
    eg_req_t *req = udata;
    detail_t *detail = req->udata;

    if (err) {
        fail(req, err);
        return;
    }
    eg__hs_send(req, 200, mm_json(req, m, detail ? *detail : DETAIL_FULL));
}

/* ---- trigger validation (MentalModelTrigger-Input) ------------------------------------------- */

/* Check body.trigger and return its normalised copy (known keys with non-null values; unknown
 * keys are ignored, as pydantic does), or NULL when it is absent or after adding errors. */
static cJSON *trigger_in(const cJSON *body, cJSON *errs, bool *given)
{
    static const char *const modes[] = {"full", "delta", NULL};
    static const char *const matches[] = {"any", "all", "any_strict", "all_strict", "exact", NULL};
    static const char *const types[] = {"world", "experience", "observation", NULL};
    static const char *const bools[] = {"refresh_after_consolidation", "exclude_mental_models",
                                        "keep_trace", "include_chunks", NULL};
    static const char *const ints[] = {"min_refresh_interval_seconds", "recall_max_tokens",
                                       "recall_chunks_max_tokens", NULL};
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "trigger"), *v;
    int nerr = cJSON_GetArraySize(errs);
    cJSON *out;

    *given = t != NULL && !cJSON_IsNull(t);
    if (!*given)
        return NULL;
    if (!cJSON_IsObject(t)) {
        eg__hs_verr_type(errs, "trigger", NULL, "model", t);
        return NULL;
    }
    out = cJSON_CreateObject();
    v = cJSON_GetObjectItemCaseSensitive(t, "mode");
    if (v && !cJSON_IsNull(v)) {
        bool ok = cJSON_IsString(v) &&
                  (strcmp(v->valuestring, "full") == 0 || strcmp(v->valuestring, "delta") == 0);
        if (ok)
            cJSON_AddStringToObject(out, "mode", v->valuestring);
        else
            eg__hs_verr_literal(errs, "body", "trigger", "mode", modes, v);
    }
    for (size_t i = 0; bools[i]; i++) {
        bool b;

        if (eg__hs_opt_bool(t, "trigger", bools[i], &b, errs))
            cJSON_AddBoolToObject(out, bools[i], b);
    }
    for (size_t i = 0; ints[i]; i++) {
        int64_t n;

        if (eg__hs_opt_int(t, "trigger", ints[i], i == 0 ? 0 : INT32_MIN, INT32_MAX, &n, errs))
            cJSON_AddNumberToObject(out, ints[i], (double)n);
    }
    const char *s;
    if (eg__hs_opt_string(t, "trigger", "refresh_cron", &s, errs))
        cJSON_AddStringToObject(out, "refresh_cron", s);
    v = cJSON_GetObjectItemCaseSensitive(t, "tags_match");
    if (v && !cJSON_IsNull(v)) {
        eg_tags_match_t m;

        if (cJSON_IsString(v) && eg_tags_match_parse(v->valuestring, &m) == 0)
            cJSON_AddStringToObject(out, "tags_match", v->valuestring);
        else
            eg__hs_verr_literal(errs, "body", "trigger", "tags_match", matches, v);
    }
    v = cJSON_GetObjectItemCaseSensitive(t, "fact_types");
    if (v && !cJSON_IsNull(v)) {
        const cJSON *e;
        bool ok = cJSON_IsArray(v);

        cJSON_ArrayForEach(e, v)
        {
            eg_fact_type_t ft;

            ok = ok && cJSON_IsString(e) && eg_fact_type_parse(e->valuestring, &ft) == 0;
        }
        if (ok)
            cJSON_AddItemToObject(out, "fact_types", cJSON_Duplicate(v, true));
        else if (!cJSON_IsArray(v))
            eg__hs_verr(errs, "body", "trigger", "fact_types", "list_type",
                        "Input should be a valid list", v, NULL);
        else
            eg__hs_verr_literal(errs, "body", "trigger", "fact_types", types, v);
    }
    v = cJSON_GetObjectItemCaseSensitive(t, "exclude_mental_model_ids");
    if (v && !cJSON_IsNull(v)) {
        const cJSON *e;
        bool ok = cJSON_IsArray(v);

        cJSON_ArrayForEach(e, v) ok = ok && cJSON_IsString(e);
        if (ok)
            cJSON_AddItemToObject(out, "exclude_mental_model_ids", cJSON_Duplicate(v, true));
        else
            eg__hs_verr(errs, "body", "trigger", "exclude_mental_model_ids", "list_type",
                        "Input should be a valid list of strings", v, NULL);
    }
    v = cJSON_GetObjectItemCaseSensitive(t, "tag_groups");
    if (v && !cJSON_IsNull(v)) {
        if (cJSON_IsArray(v))
            cJSON_AddItemToObject(out, "tag_groups", cJSON_Duplicate(v, true));
        else
            eg__hs_verr(errs, "body", "trigger", "tag_groups", "list_type",
                        "Input should be a valid list", v, NULL);
    }
    v = cJSON_GetObjectItemCaseSensitive(t, "response_schema");
    if (v && !cJSON_IsNull(v)) {
        if (cJSON_IsObject(v))
            cJSON_AddItemToObject(out, "response_schema", cJSON_Duplicate(v, true));
        else
            eg__hs_verr_type(errs, "trigger", "response_schema", "dict", v);
    }
    if (cJSON_GetArraySize(errs) > nerr) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

/* max_tokens: an int in [256, 8192] (pydantic ge/le). */
static bool max_tokens_in(const cJSON *body, int64_t *out, cJSON *errs)
{
    return eg__hs_opt_int(body, "max_tokens", NULL, EG_MM_MAX_TOKENS_MIN, EG_MM_MAX_TOKENS_MAX, out,
                          errs);
}

static void required_string(const cJSON *body, const char *field, const char **out, cJSON *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, field);

    if (v == NULL)
        eg__hs_verr_missing(errs, field, NULL, body);
    else if (cJSON_IsNull(v))
        eg__hs_verr_type(errs, field, NULL, "string", v);
    else
        eg__hs_opt_string(body, field, NULL, out, errs);
}

static void bad_model(eg_req_t *req)
{
    eg_res_error_status(req, 400, EG_EINVAL,
                        "Invalid mental model: id of 1-%d printable characters without spaces, "
                        "name up to %d bytes, source_query up to %d bytes, at most %d non-empty "
                        "tags",
                        EG_MM_ID_MAX, EG_MM_NAME_MAX, EG_MM_QUERY_MAX, EG_MEM_TAGS_MAX);
}

/* ---- GET B/mental-models --------------------------------------------------------------------- */

typedef struct list_ctx_s {
    eg_mm_query_t q;
    detail_t detail;
} list_ctx_t;

static void on_list(void *udata, int err, const eg_mm_t *ms, size_t n, size_t total)
{
    eg_req_t *req = udata;
    list_ctx_t *c = req->udata;
    cJSON *j, *items;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    items = cJSON_AddArrayToObject(j, "items");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, mm_json(req, &ms[i], c->detail));
    cJSON_AddNumberToObject(j, "total", (double)total);
    cJSON_AddNumberToObject(j, "limit", (double)c->q.limit);
    cJSON_AddNumberToObject(j, "offset", (double)c->q.offset);
    eg__hs_send(req, 200, j);
}

static void h_list(eg_req_t *req)
{
    static const char *const matches[] = {"any", "all", "exact", NULL};
    const char *id = eg__hs_bank_id(req), *match, *d;
    const char **tags = NULL;
    int64_t limit, offset;
    list_ctx_t *c;
    cJSON *errs;
    int rc;

    if (id == NULL)
        return;
    errs = cJSON_CreateArray();
    eg__hs_query_enum(req, "tags_match", matches, "any", &match, errs);
    eg__hs_query_enum(req, "detail", details, "full", &d, errs);
    eg__hs_query_int_in(req, "limit", 100, 1, 1000, &limit, errs);
    eg__hs_query_int(req, "offset", 0, 0, &offset, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    c = eg_arena_calloc(&req->arena, sizeof(*c));
    eg_tags_match_parse(match, &c->q.tags_match);
    c->detail = strcmp(d, "metadata") == 0  ? DETAIL_METADATA
                : strcmp(d, "content") == 0 ? DETAIL_CONTENT
                                            : DETAIL_FULL;
    c->q.ntags = eg_req_query_all(req, "tags", NULL, 0);
    if (c->q.ntags) {
        tags = eg_arena_alloc(&req->arena, c->q.ntags * sizeof(*tags));
        eg_req_query_all(req, "tags", tags, c->q.ntags);
    }
    c->q.tags = tags;
    c->q.limit = (size_t)limit;
    c->q.offset = (size_t)offset;
    req->udata = c;
    rc = eg_mm_list(req->auth.workspace_id, id, &c->q, on_list, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- POST B/mental-models -------------------------------------------------------------------- */

static void on_created(void *udata, int err, const char *id, const char *op_id)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err == EG_ECONFLICT) {
        eg_res_error_status(req, 409, err,
                            "Mental model '%s' already exists (or the bank holds %d models)",
                            (const char *)req->udata, EG_MM_MAX);
        return;
    }
    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "mental_model_id", id);
    cJSON_AddStringToObject(j, "operation_id", op_id);
    eg__hs_send(req, 200, j);
}

static void h_create(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    eg_mm_new_t m = {0};
    const char **tags = NULL;
    cJSON *body, *errs, *trigger;
    bool has_trigger;
    int rc;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    eg__hs_opt_string(body, "id", NULL, &m.id, errs);
    required_string(body, "name", &m.name, errs);
    required_string(body, "source_query", &m.source_query, errs);
    eg__hs_opt_strings(req, body, "tags", &tags, &m.ntags, errs);
    max_tokens_in(body, &m.max_tokens, errs);
    trigger = trigger_in(body, errs, &has_trigger);
    if (cJSON_GetArraySize(errs) > 0) {
        cJSON_Delete(trigger);
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    m.tags = tags;
    m.trigger = trigger;
    req->udata = (void *)(m.id ? m.id : "");
    rc = eg_mm_create(req->auth.workspace_id, id, &m, on_created, req);
    cJSON_Delete(trigger);
    if (rc == EG_EINVAL)
        bad_model(req);
    else if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- GET / PATCH / DELETE B/mental-models/{id} ----------------------------------------------- */

static void h_get(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    detail_t *detail;
    int rc;

    if (id == NULL)
        return;
    detail = eg_arena_calloc(&req->arena, sizeof(*detail));
    if (!detail_param(req, detail))
        return;
    req->udata = detail;
    rc = eg_mm_get(req->auth.workspace_id, id, eg_req_param(req, "mental_model_id"), on_mm, req);
    if (rc)
        fail(req, rc);
}

static void h_patch(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    eg_mm_patch_t p = {0};
    const char **tags = NULL;
    cJSON *body, *errs, *trigger;
    bool has_trigger;
    int rc;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    eg__hs_opt_string(body, "name", NULL, &p.name, errs);
    eg__hs_opt_string(body, "source_query", NULL, &p.source_query, errs);
    max_tokens_in(body, &p.max_tokens, errs);
    p.set_tags = eg__hs_opt_strings(req, body, "tags", &tags, &p.ntags, errs);
    trigger = trigger_in(body, errs, &has_trigger);
    if (cJSON_GetArraySize(errs) > 0) {
        cJSON_Delete(trigger);
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    p.tags = tags;
    p.trigger = trigger;
    rc = eg_mm_patch(req->auth.workspace_id, id, eg_req_param(req, "mental_model_id"), &p, on_mm,
                     req);
    cJSON_Delete(trigger);
    if (rc == EG_EINVAL && (p.name || p.source_query || p.set_tags))
        bad_model(req);
    else if (rc)
        fail(req, rc);
}

static void on_deleted(void *udata, int err, const eg_mm_t *m)
{
    eg_req_t *req = udata;
    cJSON *j;

    (void)m;
    if (err) {
        fail(req, err);
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "deleted");
    eg__hs_send(req, 200, j);
}

static void h_delete(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_mm_delete(req->auth.workspace_id, id, eg_req_param(req, "mental_model_id"), on_deleted,
                      req);
    if (rc)
        fail(req, rc);
}

/* ---- history, refresh, clear ----------------------------------------------------------------- */

static void on_history(void *udata, int err, const eg_mm_version_t *vs, size_t n)
{
    eg_req_t *req = udata;
    cJSON *a;

    if (err) {
        fail(req, err);
        return;
    }
    a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "previous_content", vs[i].previous_content);
        eg__hs_add_time_us(o, "previous_refreshed_at", vs[i].previous_refreshed_at);
        eg__hs_add_time_us(o, "changed_at", vs[i].changed_at);
        cJSON_AddItemToArray(a, o);
    }
    eg__hs_send(req, 200, a);
}

static void h_history(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_mm_history(req->auth.workspace_id, id, eg_req_param(req, "mental_model_id"), on_history,
                       req);
    if (rc)
        fail(req, rc);
}

static void on_refresh(void *udata, int err, const char *id, const char *op_id)
{
    eg_req_t *req = udata;
    cJSON *j;

    (void)id;
    if (err) {
        fail(req, err);
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "operation_id", op_id);
    cJSON_AddStringToObject(j, "status", "queued");
    eg__hs_send(req, 200, j);
}

static void h_refresh(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_mm_refresh_enqueue(req->auth.workspace_id, id, eg_req_param(req, "mental_model_id"),
                               on_refresh, req);
    if (rc)
        fail(req, rc);
}

static void h_clear(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_mm_clear(req->auth.workspace_id, id, eg_req_param(req, "mental_model_id"), on_mm, req);
    if (rc)
        fail(req, rc);
}

int eg__hs_mental_models_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"GET", B "/mental-models", h_list},
        {"POST", B "/mental-models", h_create},
        {"GET", B "/mental-models/{mental_model_id}", h_get},
        {"PATCH", B "/mental-models/{mental_model_id}", h_patch},
        {"DELETE", B "/mental-models/{mental_model_id}", h_delete},
        {"GET", B "/mental-models/{mental_model_id}/history", h_history},
        {"POST", B "/mental-models/{mental_model_id}/refresh", h_refresh},
        {"POST", B "/mental-models/{mental_model_id}/clear", h_clear},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
