/* Hindsight directive routes: list, create, get, PATCH, DELETE. Thin: parse and validate the
 * way FastAPI/pydantic would, call engram/directives.h, render DirectiveResponse. */
#include <stdlib.h>
#include <string.h>

#include "engram/directives.h"
#include "engram/error.h"
#include "engram/mstore.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

static cJSON *directive_json(eg_req_t *req, const eg_directive_t *d)
{
    cJSON *o = cJSON_CreateObject(), *tags = cJSON_CreateArray();

    cJSON_AddStringToObject(o, "id", d->id);
    cJSON_AddStringToObject(o, "bank_id", eg_req_param(req, "bank_id"));
    cJSON_AddStringToObject(o, "name", d->name);
    cJSON_AddStringToObject(o, "content", d->content);
    cJSON_AddNumberToObject(o, "priority", (double)d->priority);
    cJSON_AddBoolToObject(o, "is_active", d->is_active);
    for (size_t i = 0; i < d->ntags; i++)
        cJSON_AddItemToArray(tags, cJSON_CreateString(d->tags[i]));
    cJSON_AddItemToObject(o, "tags", tags);
    eg__hs_add_time_us(o, "created_at", d->created_at);
    eg__hs_add_time_us(o, "updated_at", d->updated_at);
    return o;
}

static void not_found(eg_req_t *req)
{
    eg_res_error_status(req, 404, EG_ENOTFOUND, "Directive '%s' not found",
                        eg_req_param(req, "directive_id"));
}

static void fail(eg_req_t *req, int err)
{
    if (err == EG_ENOTFOUND || err == EG_EINVAL) /* an id the store cannot hold names nothing */
        not_found(req);
    else if (err == EG_ECONFLICT)
        eg_res_error_status(req, 409, err, "This bank already holds %d directives",
                            EG_DIRECTIVES_MAX);
    else
        eg__hs_fail(req, err, "");
}

static void on_directive(void *udata, int err, const eg_directive_t *d)
{
    eg_req_t *req = udata;

    if (err) {
        fail(req, err);
        return;
    }
    eg__hs_send(req, 200, directive_json(req, d));
}

/* ---- GET B/directives ------------------------------------------------------------------------ */

static void on_list(void *udata, int err, const eg_directive_t *ds, size_t n, size_t total)
{
    eg_req_t *req = udata;
    eg_directives_query_t *q = req->udata;
    cJSON *j, *items;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    items = cJSON_AddArrayToObject(j, "items");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, directive_json(req, &ds[i]));
    cJSON_AddNumberToObject(j, "total", (double)total);
    cJSON_AddNumberToObject(j, "limit", (double)q->limit);
    cJSON_AddNumberToObject(j, "offset", (double)q->offset);
    eg__hs_send(req, 200, j);
}

static void h_list(eg_req_t *req)
{
    static const char *const matches[] = {"any", "all", "exact", NULL};
    const char *id = eg__hs_bank_id(req), *match;
    eg_directives_query_t *q;
    const char **tags = NULL;
    int64_t limit, offset;
    bool active_only;
    cJSON *errs;
    int rc;

    if (id == NULL)
        return;
    errs = cJSON_CreateArray();
    eg__hs_query_enum(req, "tags_match", matches, "any", &match, errs);
    eg__hs_query_bool(req, "active_only", true, &active_only, errs);
    eg__hs_query_int_in(req, "limit", 100, 1, 1000, &limit, errs);
    eg__hs_query_int(req, "offset", 0, 0, &offset, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    q = eg_arena_calloc(&req->arena, sizeof(*q));
    eg_tags_match_parse(match, &q->tags_match);
    q->ntags = eg_req_query_all(req, "tags", NULL, 0);
    if (q->ntags) {
        tags = eg_arena_alloc(&req->arena, q->ntags * sizeof(*tags));
        eg_req_query_all(req, "tags", tags, q->ntags);
    }
    q->tags = tags;
    q->active_only = active_only;
    q->limit = (size_t)limit;
    q->offset = (size_t)offset;
    req->udata = q;
    rc = eg_directives_list(req->auth.workspace_id, id, q, on_list, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- POST B/directives ----------------------------------------------------------------------- */

static void h_create(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    eg_directive_new_t d = {.is_active = true};
    const char **tags = NULL;
    cJSON *body, *errs;
    int rc;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    if (!cJSON_HasObjectItem(body, "name"))
        eg__hs_verr_missing(errs, "name", NULL, body);
    else if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(body, "name")))
        eg__hs_verr_type(errs, "name", NULL, "string", cJSON_GetObjectItem(body, "name"));
    eg__hs_opt_string(body, "name", NULL, &d.name, errs);
    if (!cJSON_HasObjectItem(body, "content"))
        eg__hs_verr_missing(errs, "content", NULL, body);
    else if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(body, "content")))
        eg__hs_verr_type(errs, "content", NULL, "string", cJSON_GetObjectItem(body, "content"));
    eg__hs_opt_string(body, "content", NULL, &d.content, errs);
    eg__hs_opt_int(body, "priority", NULL, INT32_MIN, INT32_MAX, &d.priority, errs);
    eg__hs_opt_bool(body, "is_active", NULL, &d.is_active, errs);
    eg__hs_opt_strings(req, body, "tags", &tags, &d.ntags, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    d.tags = tags;
    rc = eg_directive_create(req->auth.workspace_id, id, &d, on_directive, req);
    if (rc == EG_EINVAL)
        eg_res_error_status(req, 400, rc,
                            "Invalid directive: name up to %d bytes, content up to %d bytes, at "
                            "most %d non-empty tags",
                            EG_DIRECTIVE_NAME_MAX, EG_DIRECTIVE_CONTENT_MAX, EG_MEM_TAGS_MAX);
    else if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- GET / PATCH / DELETE B/directives/{directive_id} ---------------------------------------- */

static void h_get(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_directive_get(req->auth.workspace_id, id, eg_req_param(req, "directive_id"),
                          on_directive, req);
    if (rc)
        fail(req, rc);
}

static void h_patch(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    eg_directive_patch_t p = {0};
    const char **tags = NULL;
    cJSON *body, *errs;
    int rc;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    eg__hs_opt_string(body, "name", NULL, &p.name, errs);
    eg__hs_opt_string(body, "content", NULL, &p.content, errs);
    p.set_priority =
        eg__hs_opt_int(body, "priority", NULL, INT32_MIN, INT32_MAX, &p.priority, errs);
    p.set_active = eg__hs_opt_bool(body, "is_active", NULL, &p.is_active, errs);
    p.set_tags = eg__hs_opt_strings(req, body, "tags", &tags, &p.ntags, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    p.tags = tags;
    rc = eg_directive_patch(req->auth.workspace_id, id, eg_req_param(req, "directive_id"), &p,
                            on_directive, req);
    if (rc == EG_EINVAL && (p.name || p.content || p.set_tags))
        eg_res_error_status(req, 400, rc,
                            "Invalid directive: name up to %d bytes, content up to %d bytes, at "
                            "most %d non-empty tags",
                            EG_DIRECTIVE_NAME_MAX, EG_DIRECTIVE_CONTENT_MAX, EG_MEM_TAGS_MAX);
    else if (rc)
        fail(req, rc);
}

static void on_deleted(void *udata, int err, const eg_directive_t *d)
{
    eg_req_t *req = udata;
    cJSON *j;

    (void)d;
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
    rc = eg_directive_delete(req->auth.workspace_id, id, eg_req_param(req, "directive_id"),
                             on_deleted, req);
    if (rc)
        fail(req, rc);
}

int eg__hs_directives_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"GET", B "/directives", h_list},
        {"POST", B "/directives", h_create},
        {"GET", B "/directives/{directive_id}", h_get},
        {"PATCH", B "/directives/{directive_id}", h_patch},
        {"DELETE", B "/directives/{directive_id}", h_delete},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
