/* Fency face: memories, memory types and bulk METADATA jobs (/v1/memories*, /v1/memory-types*),
 * secret key. Requests are parsed and handed to the library (engram/library.h), which owns the
 * behaviour and answers in Fency's shapes; this file maps its errors to statuses. The upload
 * routes are in uploads.c. */
#include <string.h>

#include "engram/error.h"
#include "engram/library.h"
#include "fency_int.h"

/* Answer a library result: the JSON at 200, or the error with the library's reason. */
static void answer(eg_req_t *req, int err, const char *why, const cJSON *json, const char *what)
{
    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0);
        return;
    }
    if (err == 0) {
        eg_res_json(req, 200, cJSON_Duplicate(json, true));
        return;
    }
    switch (err) {
    case EG_EINVAL:
        eg__fy_error(req, 400, "%s", why ? why : "invalid request");
        return;
    case EG_ENOTFOUND:
        if (why)
            eg__fy_error(req, 404, "%s", why);
        else
            eg__fy_fail(req, err, what);
        return;
    case EG_ECONFLICT:
        if (why)
            eg__fy_error(req, 409, "%s", why);
        else
            eg__fy_fail(req, err, what);
        return;
    default:
        eg__fy_fail(req, err, what);
    }
}

static void on_memory(void *udata, int err, const char *why, const cJSON *json)
{
    answer(udata, err, why, json, "memory");
}

static void on_type(void *udata, int err, const char *why, const cJSON *json)
{
    answer(udata, err, why, json, "memory type");
}

static void on_job(void *udata, int err, const char *why, const cJSON *json)
{
    answer(udata, err, why, json, "job");
}

/* A call that failed before its callback: answer at once. */
static void refused(eg_req_t *req, int rc, const char *why, const char *what)
{
    answer(req, rc, why, NULL, what);
}

static void on_page(void *udata, int err, const cJSON *items, const eg_zpage_t *page)
{
    eg_req_t *req = udata;

    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0);
        return;
    }
    if (err != 0) {
        eg__fy_fail(req, err, "list");
        return;
    }
    eg_res_json(req, 200, eg__fy_page_json(cJSON_Duplicate(items, true), page));
}

/* ---- memories ----------------------------------------------------------------------------- */

static void memory_create(eg_req_t *req)
{
    cJSON *body = eg__fy_body(req);
    const char *why = NULL;
    int rc;

    if (!body)
        return;
    rc = eg_lib_memory_create(req->auth.workspace_id, body, &why, on_memory, req);
    if (rc != 0)
        refused(req, rc, why, rc == EG_ENOTFOUND ? "memory type" : "memory");
}

static void memory_list(eg_req_t *req)
{
    eg_zpage_req_t q = {0};
    int rc;

    if (!eg__fy_page_query(req, &q))
        return;
    rc = eg_lib_memory_page(req->auth.workspace_id, &q, on_page, req);
    if (rc != 0)
        refused(req, rc, NULL, "memories");
}

static void on_memory_got(void *udata, int err, const cJSON *json)
{
    answer(udata, err, NULL, json, "memory");
}

static void memory_get(eg_req_t *req)
{
    int rc = eg_lib_memory_get(req->auth.workspace_id, eg_req_param(req, "id"), on_memory_got, req);

    if (rc != 0)
        refused(req, rc, NULL, "memory");
}

static void memory_patch(eg_req_t *req)
{
    cJSON *body = eg__fy_body(req);
    const char *why = NULL;
    int rc;

    if (!body)
        return;
    rc = eg_lib_memory_patch(req->auth.workspace_id, eg_req_param(req, "id"), body, &why, on_memory,
                             req);
    if (rc != 0)
        refused(req, rc, why, "memory");
}

static void memory_delete(eg_req_t *req)
{
    int rc = eg_lib_memory_delete(req->auth.workspace_id, eg_req_param(req, "id"), on_memory, req);

    if (rc != 0)
        refused(req, rc, NULL, "memory");
}

/* ---- bulk jobs ---------------------------------------------------------------------------- */

static void job_create(eg_req_t *req)
{
    cJSON *body = eg__fy_body(req);
    const char *why = NULL;
    int rc;

    if (!body)
        return;
    rc = eg_lib_job_create(req->auth.workspace_id, body, &why, on_job, req);
    if (rc != 0)
        refused(req, rc, why, rc == EG_ENOTFOUND ? "memory type" : "job");
}

static void job_get(eg_req_t *req)
{
    int rc = eg_lib_job_get(req->auth.workspace_id, eg_req_param(req, "jobId"), on_job, req);

    if (rc != 0)
        refused(req, rc, NULL, "job");
}

/* ---- memory types ------------------------------------------------------------------------- */

static void type_create(eg_req_t *req)
{
    cJSON *body = eg__fy_body(req);
    const char *why = NULL;
    int rc;

    if (!body)
        return;
    rc = eg_lib_type_create(req->auth.workspace_id, body, &why, on_type, req);
    if (rc != 0)
        refused(req, rc, why, "memory type");
}

static void type_list(eg_req_t *req)
{
    eg_zpage_req_t q = {0};
    int rc;

    if (!eg__fy_page_query(req, &q))
        return;
    rc = eg_lib_type_page(req->auth.workspace_id, &q, on_page, req);
    if (rc != 0)
        refused(req, rc, NULL, "memory types");
}

static void type_get(eg_req_t *req)
{
    int rc = eg_lib_type_get(req->auth.workspace_id, eg_req_param(req, "id"), on_type, req);

    if (rc != 0)
        refused(req, rc, NULL, "memory type");
}

static void type_delete(eg_req_t *req)
{
    int rc = eg_lib_type_delete(req->auth.workspace_id, eg_req_param(req, "id"), on_type, req);

    if (rc != 0)
        refused(req, rc, NULL, "memory type");
}

int eg__fy_library_mount(eg_router_t *r)
{
    /* The literal /v1/memories/jobs routes come first: they win over /v1/memories/{id}. */
    static const eg__fy_route_t routes[] = {
        {"POST", "/v1/memories/jobs", job_create},
        {"GET", "/v1/memories/jobs/{jobId}", job_get},
        {"POST", "/v1/memories", memory_create},
        {"GET", "/v1/memories", memory_list},
        {"GET", "/v1/memories/{id}", memory_get},
        {"PATCH", "/v1/memories/{id}", memory_patch},
        {"DELETE", "/v1/memories/{id}", memory_delete},
        {"POST", "/v1/memory-types", type_create},
        {"GET", "/v1/memory-types", type_list},
        {"GET", "/v1/memory-types/{id}", type_get},
        {"DELETE", "/v1/memory-types/{id}", type_delete},
    };

    return eg__fy_add_routes(r, routes, sizeof(routes) / sizeof(routes[0]), EG_ROUTE_AUTH);
}
