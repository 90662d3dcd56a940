/* Consolidation and observation routes of the Hindsight face: POST B/consolidate, POST
 * B/consolidation/recover, DELETE B/observations, GET B/observations/scopes and DELETE
 * B/memories/{memory_id}/observations. Thin: parsing and shapes; engram/consolidate.h does the
 * work. */
#include <string.h>

#include "engram/consolidate.h"
#include "engram/error.h"
#include "engram/http.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

/* ---- POST B/consolidate ---------------------------------------------------------------------- */

static void on_queued(void *udata, int err, const char *op_id, bool dedup)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "operation_id", op_id);
    cJSON_AddBoolToObject(j, "deduplicated", dedup);
    eg__hs_send(req, 200, j);
}

/* observation_scopes: null, or a list of lists of strings (ConsolidationRequest). */
static bool scopes_check(const cJSON *v, cJSON *errs)
{
    const cJSON *sc, *t;
    int i = 0;

    if (v == NULL || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsArray(v)) {
        eg__hs_verr_type(errs, "observation_scopes", NULL, "list", v);
        return false;
    }
    cJSON_ArrayForEach(sc, v)
    {
        int k = 0;

        if (!cJSON_IsArray(sc)) {
            cJSON *loc = cJSON_CreateArray();
            cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
            cJSON_AddItemToArray(loc, cJSON_CreateString("observation_scopes"));
            cJSON_AddItemToArray(loc, cJSON_CreateNumber(i));
            eg__hs_verr_loc(errs, loc, "list_type", "Input should be a valid list", sc, NULL);
            return false;
        }
        cJSON_ArrayForEach(t, sc)
        {
            if (!cJSON_IsString(t)) {
                cJSON *loc = cJSON_CreateArray();
                cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
                cJSON_AddItemToArray(loc, cJSON_CreateString("observation_scopes"));
                cJSON_AddItemToArray(loc, cJSON_CreateNumber(i));
                cJSON_AddItemToArray(loc, cJSON_CreateNumber(k));
                eg__hs_verr_loc(errs, loc, "string_type", "Input should be a valid string", t,
                                NULL);
                return false;
            }
            k++;
        }
        i++;
    }
    return true;
}

/* No body, only whitespace, or JSON null. */
static bool body_is_null(const eg_req_t *req)
{
    const char *p = req->body.data;
    size_t n = req->body.len, i = 0;

    while (p && i < n && strchr(" \t\r\n", p[i]))
        i++;
    if (p == NULL || i == n)
        return true;
    return n - i >= 4 && strncmp(p + i, "null", 4) == 0 &&
           strspn(p + i + 4, " \t\r\n") == n - i - 4;
}

static void h_consolidate(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    cJSON *body, *errs, *scopes = NULL;
    int rc;

    if (id == NULL)
        return;
    /* The body is optional and may be JSON null. */
    if (!body_is_null(req)) {
        body = eg__hs_body(req, false);
        if (body == NULL)
            return;
        scopes = cJSON_GetObjectItemCaseSensitive(body, "observation_scopes");
    }
    errs = cJSON_CreateArray();
    if (!scopes_check(scopes, errs)) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    if (!eg_consolidate_scopes_valid(scopes)) {
        eg_res_error_status(req, 400, EG_EINVAL, "observation_scopes: too many scopes or tags");
        return;
    }
    rc = eg_consolidate_enqueue(req->auth.workspace_id, id, cJSON_IsArray(scopes) ? scopes : NULL,
                                on_queued, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- POST B/consolidation/recover --------------------------------------------------------- */

static void on_recovered(void *udata, int err, int64_t n)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "retried_count", (double)n);
    eg__hs_send(req, 200, j);
}

static void h_recover(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_consolidate_recover(req->auth.workspace_id, id, on_recovered, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- DELETE B/observations ------------------------------------------------------------------ */

static void on_cleared(void *udata, int err, int64_t n)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "success", true);
    cJSON_AddStringToObject(
        j, "message", eg_arena_printf(&req->arena, "Deleted %lld observations", (long long)n));
    cJSON_AddNumberToObject(j, "deleted_count", (double)n);
    eg__hs_send(req, 200, j);
}

static void h_clear(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_consolidate_clear(req->auth.workspace_id, id, on_cleared, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- GET B/observations/scopes -------------------------------------------------------------- */

static void on_scopes(void *udata, int err, const eg_obs_scope_t *scopes, size_t n)
{
    eg_req_t *req = udata;
    cJSON *j, *arr;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(j, "scopes");
    for (size_t i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateObject(), *tags = cJSON_AddArrayToObject(s, "tags");

        for (size_t k = 0; k < scopes[i].ntags; k++)
            cJSON_AddItemToArray(tags, cJSON_CreateString(scopes[i].tags[k]));
        cJSON_AddNumberToObject(s, "count", (double)scopes[i].count);
        cJSON_AddItemToArray(arr, s);
    }
    eg__hs_send(req, 200, j);
}

static void h_scopes(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_consolidate_scopes(req->auth.workspace_id, id, on_scopes, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- DELETE B/memories/{memory_id}/observations -----------------------------------------------
 */

static void on_memory_cleared(void *udata, int err, int64_t n)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err) {
        eg__hs_fail(req, err,
                    eg_arena_printf(&req->arena, "Memory unit '%s' not found",
                                    eg_req_param(req, "memory_id")));
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "deleted_count", (double)n);
    eg__hs_send(req, 200, j);
}

static void h_clear_memory(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_consolidate_clear_memory(req->auth.workspace_id, id, eg_req_param(req, "memory_id"),
                                     on_memory_cleared, req);
    if (rc)
        on_memory_cleared(req, rc, 0);
}

int eg__hs_observations_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"POST", B "/consolidate", h_consolidate},
        {"POST", B "/consolidation/recover", h_recover},
        {"DELETE", B "/observations", h_clear},
        {"GET", B "/observations/scopes", h_scopes},
        {"DELETE", B "/memories/{memory_id}/observations", h_clear_memory},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
