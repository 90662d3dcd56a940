/* Fency face: agent tasks (/v1/agent-tasks*) and conversations (/v1/conversations*), secret key.
 * The records and their runs are the core's (engram/tasks.h); this file parses and renders. */
#include <string.h>

#include "engram/util.h"
#include "engram/error.h"
#include "engram/tasks.h"
#include "fency_int.h"

static bool gone(eg_req_t *req)
{
    if (req->gone)
        eg_res_send(req, 499, NULL, NULL, 0);
    return req->gone;
}

static void on_one(eg_req_t *req, int err, const cJSON *json, const char *what)
{
    if (gone(req))
        return;
    if (err != 0) {
        eg__fy_fail(req, err, what);
        return;
    }
    eg_res_json(req, 200, cJSON_Duplicate(json, true));
}

/* A page of stored records; keep (NULL = all) names the fields each item shows. */
static void page_answer(eg_req_t *req, int err, const eg_zpage_t *page, const char *const *keep,
                        const char *what)
{
    cJSON *items;

    if (gone(req))
        return;
    if (err != 0) {
        eg__fy_fail(req, err, what);
        return;
    }
    items = cJSON_CreateArray();
    for (size_t i = 0; i < page->n; i++) {
        cJSON *v = cJSON_Parse(page->values[i]), *o;

        if (v == NULL)
            continue;
        if (keep == NULL) {
            cJSON_AddItemToArray(items, v);
            continue;
        }
        o = cJSON_CreateObject();
        for (const char *const *k = keep; *k != NULL; k++) {
            cJSON *f = cJSON_DetachItemFromObjectCaseSensitive(v, *k);

            cJSON_AddItemToObject(o, *k, f ? f : cJSON_CreateNull());
        }
        cJSON_Delete(v);
        cJSON_AddItemToArray(items, o);
    }
    eg_res_json(req, 200, eg__fy_page_json(items, page));
}

/* ---- agent tasks ------------------------------------------------------------------------- */

static void on_task(void *udata, int err, const cJSON *task)
{
    on_one(udata, err, task, "agent task");
}

static void on_task_page(void *udata, int err, const eg_zpage_t *page)
{
    page_answer(udata, err, page, NULL, "agent tasks");
}

static void task_list(eg_req_t *req)
{
    const char *cnv = eg_req_query(req, "conversationId");
    eg_zpage_req_t q = {0};
    int rc;

    if (!eg__fy_page_query(req, &q))
        return;
    if (cnv != NULL && cnv[0] == '\0')
        cnv = NULL;
    if (cnv != NULL && !eg_hexid_valid(cnv, "cnv")) {
        eg__fy_error(req, 400, "conversationId is not a conversation id");
        return;
    }
    rc = eg_task_list(req->auth.workspace_id, cnv, &q, on_task_page, req);
    if (rc != 0)
        eg__fy_fail(req, rc, "agent tasks");
}

static void task_get(eg_req_t *req)
{
    int rc = eg_task_get(req->auth.workspace_id, eg_req_param(req, "id"), on_task, req);

    if (rc != 0)
        eg__fy_fail(req, rc, "agent task");
}

/* ---- conversations ----------------------------------------------------------------------- */

static void on_cnv(void *udata, int err, const cJSON *cnv)
{
    on_one(udata, err, cnv, "conversation");
}

static void on_cnv_page(void *udata, int err, const eg_zpage_t *page)
{
    static const char *const keep[] = {"id", "title", "createdAt", NULL};

    page_answer(udata, err, page, keep, "conversations");
}

static void cnv_create(eg_req_t *req)
{
    const cJSON *meta, *title;
    cJSON *body = NULL;
    int rc;

    /* Every field is optional, so is the body. */
    if (req->body.len > 0 && (body = eg__fy_body(req)) == NULL)
        return;
    meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
    title = cJSON_GetObjectItemCaseSensitive(body, "title");
    if (cJSON_IsNull(meta))
        meta = NULL;
    if (cJSON_IsNull(title))
        title = NULL;
    if (meta != NULL && !cJSON_IsObject(meta)) {
        eg__fy_error(req, 400, "metadata must be an object");
        return;
    }
    if (title != NULL && !cJSON_IsString(title)) {
        eg__fy_error(req, 400, "title must be a string");
        return;
    }
    rc = eg_conversation_create(req->auth.workspace_id, title ? title->valuestring : NULL, meta,
                                on_cnv, req);
    if (rc != 0)
        eg__fy_fail(req, rc, "conversation");
}

static void cnv_get(eg_req_t *req)
{
    int rc = eg_conversation_get(req->auth.workspace_id, eg_req_param(req, "id"), on_cnv, req);

    if (rc != 0)
        eg__fy_fail(req, rc, "conversation");
}

static void cnv_search(eg_req_t *req)
{
    eg_zpage_req_t q = {0};
    const cJSON *meta = NULL;
    cJSON *body = NULL;
    int rc;

    if (!eg__fy_page_query(req, &q))
        return;
    /* The body is optional: no body (or no metadata) lists every conversation. */
    if (req->body.len > 0) {
        if ((body = eg__fy_body(req)) == NULL)
            return;
        meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
        if (cJSON_IsNull(meta))
            meta = NULL;
        if (meta != NULL && !cJSON_IsObject(meta)) {
            eg__fy_error(req, 400, "metadata must be an object of key/value pairs to match");
            return;
        }
    }
    rc = eg_conversation_search(req->auth.workspace_id, meta, &q, on_cnv_page, req);
    if (rc != 0)
        eg__fy_fail(req, rc, "conversations");
}

int eg__fy_tasks_mount(eg_router_t *r)
{
    /* The literal /v1/conversations/search comes first: it wins over /v1/conversations/{id}. */
    static const eg__fy_route_t routes[] = {
        {"GET", "/v1/agent-tasks", task_list},
        {"GET", "/v1/agent-tasks/{id}", task_get},
        {"POST", "/v1/conversations/search", cnv_search},
        {"POST", "/v1/conversations", cnv_create},
        {"GET", "/v1/conversations/{id}", cnv_get},
    };

    return eg__fy_add_routes(r, routes, sizeof(routes) / sizeof(routes[0]), EG_ROUTE_AUTH);
}
