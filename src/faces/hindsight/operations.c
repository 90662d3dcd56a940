/* Hindsight operation routes: list a bank's asynchronous operations, read one (an unknown id is a
 * 200 with status "not_found"), cancel a pending one, retry a failed one, delete a finished one.
 * Thin: parse, call the bank operations module (engram/bankops.h), render OperationResponse /
 * OperationStatusResponse. */
#include <stdlib.h>
#include <string.h>

#include "engram/bankops.h"
#include "engram/error.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

static const char *const op_keep_nulls[] = {"error_message", NULL};

static void add_ms(cJSON *o, const char *name, int64_t ms)
{
    eg__hs_add_time(o, name, ms); /* nothing when 0 */
}

/* OperationProgress: the worker's own snapshot (meta.progress), else one made of the record's
 * fraction while it runs. */
static void add_progress(cJSON *o, const eg_bankop_t *op)
{
    const cJSON *p = op->meta ? cJSON_GetObjectItemCaseSensitive(op->meta, "progress") : NULL;
    cJSON *j;

    if (cJSON_IsObject(p) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(p, "stage"))) {
        j = cJSON_Duplicate(p, true);
        if (!cJSON_HasObjectItem(j, "at"))
            add_ms(j, "at", op->rec.updated_ms);
        cJSON_AddItemToObject(o, "progress", j);
        return;
    }
    if (op->rec.status != EG_OP_PROCESSING)
        return;
    j = cJSON_AddObjectToObject(o, "progress");
    cJSON_AddStringToObject(j, "stage", "processing");
    add_ms(j, "at", op->rec.updated_ms);
    cJSON_AddNumberToObject(j, "processed", (double)(int64_t)(op->rec.progress * 100 + 0.5));
    cJSON_AddNumberToObject(j, "total", 100);
}

static void add_meta_str(cJSON *o, const eg_bankop_t *op, const char *key, const char *name)
{
    const char *v = eg_bankop_meta_str(op, key);

    if (v)
        cJSON_AddStringToObject(o, name, v);
}

/* OperationResponse (a list item). */
static cJSON *op_json(const eg_bankop_t *op)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", op->rec.id);
    cJSON_AddStringToObject(o, "task_type", op->rec.kind);
    cJSON_AddNumberToObject(o, "items_count", (double)eg_bankop_meta_int(op, "items_count"));
    add_meta_str(o, op, "document_id", "document_id");
    add_meta_str(o, op, "filename", "filename");
    add_meta_str(o, op, "mental_model_id", "mental_model_id");
    add_ms(o, "created_at", op->rec.created_ms);
    add_ms(o, "updated_at", op->rec.updated_ms);
    cJSON_AddStringToObject(o, "status", eg_op_status_name(op->rec.status));
    cJSON_AddItemToObject(o, "error_message",
                          op->rec.error[0] ? cJSON_CreateString(op->rec.error)
                                           : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "retry_count", (double)op->rec.retries);
    add_progress(o, op);
    return o;
}

/* Operation ids are UUIDs; anything else is a 400, as in Hindsight. False after answering. */
static const char *op_id(eg_req_t *req)
{
    const char *id = eg_req_param(req, "operation_id");

    if (id && eg_uuid_valid(id))
        return id;
    eg_res_error_status(req, 400, EG_EINVAL, "Invalid operation_id format: %s", id ? id : "");
    return NULL;
}

/* ---- GET B/operations ------------------------------------------------------------------------ */

static void on_list(void *udata, int err, const eg_bankop_t *ops, size_t n, size_t total)
{
    eg_req_t *req = udata;
    eg_bankops_query_t *q = req->udata;
    cJSON *j, *arr;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bank_id", eg_req_param(req, "bank_id"));
    cJSON_AddNumberToObject(j, "total", (double)total);
    cJSON_AddNumberToObject(j, "limit", (double)q->limit);
    cJSON_AddNumberToObject(j, "offset", (double)q->offset);
    arr = cJSON_AddArrayToObject(j, "operations");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, op_json(&ops[i]));
    eg__hs_strip_nulls(j, op_keep_nulls);
    eg_res_json(req, 200, j);
}

static void h_list(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req), *status;
    eg_bankops_query_t *q;
    eg_op_status_t st;
    cJSON *errs;
    int64_t limit, offset;
    bool exclude;
    int rc;

    if (id == NULL)
        return;
    errs = cJSON_CreateArray();
    eg__hs_query_int_in(req, "limit", 20, 1, 100, &limit, errs);
    eg__hs_query_int(req, "offset", 0, 0, &offset, errs);
    eg__hs_query_bool(req, "exclude_parents", false, &exclude, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    q = eg_arena_calloc(&req->arena, sizeof(*q));
    q->status = EG_OP_KEEP;
    status = eg_req_query(req, "status");
    if (status && eg_op_status_parse(status, &st) == 0)
        q->status = (int)st;
    else if (status)
        q->none = true; /* a status no operation has */
    q->kind = eg_req_query(req, "type");
    q->exclude_parents = exclude;
    q->limit = (size_t)limit;
    q->offset = (size_t)offset;
    req->udata = q;
    rc = eg_bankops_list(req->auth.workspace_id, id, q, on_list, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- GET B/operations/{operation_id} --------------------------------------------------------- */

static void on_get(void *udata, int err, const eg_bankop_t *op, const eg_bankop_t *children,
                   size_t nchildren)
{
    eg_req_t *req = udata;
    bool payload = req->udata != NULL;
    const cJSON *v;
    cJSON *j;

    if (err && err != EG_ENOTFOUND) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "operation_id", eg_req_param(req, "operation_id"));
    if (err == EG_ENOTFOUND) {
        cJSON_AddStringToObject(j, "status", "not_found");
        eg__hs_send(req, 200, j);
        return;
    }
    cJSON_AddStringToObject(j, "status", eg_op_status_name(op->rec.status));
    cJSON_AddStringToObject(j, "operation_type", op->rec.kind);
    add_ms(j, "created_at", op->rec.created_ms);
    add_ms(j, "updated_at", op->rec.updated_ms);
    if (op->rec.status == EG_OP_COMPLETED || op->rec.status == EG_OP_FAILED ||
        op->rec.status == EG_OP_CANCELLED)
        add_ms(j, "completed_at", op->rec.finished_ms);
    if (op->rec.error[0])
        cJSON_AddStringToObject(j, "error_message", op->rec.error);
    cJSON_AddNumberToObject(j, "retry_count", (double)op->rec.retries);
    add_progress(j, op);
    v = op->meta ? cJSON_GetObjectItemCaseSensitive(op->meta, "result") : NULL;
    if (cJSON_IsObject(v))
        cJSON_AddItemToObject(j, "result_metadata", cJSON_Duplicate(v, true));
    if (op->meta && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(op->meta, "children"))) {
        cJSON *arr = cJSON_AddArrayToObject(j, "child_operations");

        for (size_t i = 0; i < nchildren; i++) {
            const eg_bankop_t *c = &children[i];
            cJSON *o = cJSON_CreateObject();
            const cJSON *sbi =
                c->meta ? cJSON_GetObjectItemCaseSensitive(c->meta, "sub_batch_index") : NULL;

            cJSON_AddStringToObject(o, "operation_id", c->rec.id);
            cJSON_AddStringToObject(o, "status", eg_op_status_name(c->rec.status));
            if (cJSON_IsNumber(sbi))
                cJSON_AddNumberToObject(o, "sub_batch_index", sbi->valuedouble);
            cJSON_AddNumberToObject(o, "items_count", (double)eg_bankop_meta_int(c, "items_count"));
            if (c->rec.error[0])
                cJSON_AddStringToObject(o, "error_message", c->rec.error);
            cJSON_AddItemToArray(arr, o);
        }
    }
    v = op->meta ? cJSON_GetObjectItemCaseSensitive(op->meta, "payload") : NULL;
    if (payload && cJSON_IsObject(v))
        cJSON_AddItemToObject(j, "task_payload", cJSON_Duplicate(v, true));
    eg__hs_send(req, 200, j);
}

static void h_get(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req), *op;
    cJSON *errs;
    bool payload;
    int rc;

    if (id == NULL || (op = op_id(req)) == NULL)
        return;
    errs = cJSON_CreateArray();
    if (!eg__hs_query_bool(req, "include_payload", false, &payload, errs)) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    req->udata = payload ? req : NULL;
    rc = eg_bankops_get(req->auth.workspace_id, id, op, on_get, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

/* ---- cancel, retry, delete --------------------------------------------------------------------
 */

/* The answer to a move: {success, message, operation_id}, or why it did not apply. */
static void moved(eg_req_t *req, int err, const eg_op_t *op, const char *done_word,
                  const char *allowed)
{
    const char *id = eg_req_param(req, "operation_id");
    cJSON *j;

    if (err == EG_ENOTFOUND) {
        eg_res_error_status(req, 404, EG_ENOTFOUND, "Operation %s not found", id);
        return;
    }
    if (err == EG_ECONFLICT && op) {
        eg_res_error_status(req, 409, EG_ECONFLICT, "Operation %s is %s; only %s", id,
                            eg_op_status_name(op->status), allowed);
        return;
    }
    if (err == EG_ENOTIMPL && op) {
        eg_res_error_status(req, 409, EG_ECONFLICT,
                            "Operation %s is of type '%s', which cannot be retried", id, op->kind);
        return;
    }
    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "success", true);
    cJSON_AddStringToObject(j, "message",
                            eg_arena_printf(&req->arena, "Operation %s %s", id, done_word));
    cJSON_AddStringToObject(j, "operation_id", id);
    eg__hs_send(req, 200, j);
}

static void on_cancelled(void *udata, int err, const eg_op_t *op)
{
    moved(udata, err, op, "cancelled", "a pending operation can be cancelled");
}

static void on_retried(void *udata, int err, const eg_op_t *op)
{
    moved(udata, err, op, "queued for retry", "a failed operation can be retried");
}

static void on_deleted(void *udata, int err, const eg_op_t *op)
{
    moved(udata, err, op, "deleted", "a completed, failed or cancelled operation can be deleted");
}

static void h_cancel(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req), *op;
    int rc;

    if (id == NULL || (op = op_id(req)) == NULL)
        return;
    rc = eg_bankops_cancel(req->auth.workspace_id, id, op, on_cancelled, req);
    if (rc)
        on_cancelled(req, rc, NULL);
}

static void h_retry(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req), *op;
    int rc;

    if (id == NULL || (op = op_id(req)) == NULL)
        return;
    rc = eg_bankops_retry(req->auth.workspace_id, id, op, on_retried, req);
    if (rc)
        on_retried(req, rc, NULL);
}

static void h_delete(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req), *op;
    int rc;

    if (id == NULL || (op = op_id(req)) == NULL)
        return;
    rc = eg_bankops_delete(req->auth.workspace_id, id, op, on_deleted, req);
    if (rc)
        on_deleted(req, rc, NULL);
}

int eg__hs_operations_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"GET", B "/operations", h_list},
        {"GET", B "/operations/{operation_id}", h_get},
        {"DELETE", B "/operations/{operation_id}", h_cancel},
        {"POST", B "/operations/{operation_id}/retry", h_retry},
        {"DELETE", B "/operations/{operation_id}/delete", h_delete},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
