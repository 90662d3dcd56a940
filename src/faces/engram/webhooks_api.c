/* engram's webhook routes. Thin: parse and validate the request shape, call the core
 * (engram/webhooks.h), render engram's JSON. */
#include <stdio.h>
#include <string.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/util.h"
#include "engram/webhooks.h"
#include "engram_int.h"
#include "webhooks_api.h"

#define WH_LIMIT_DEFAULT 50

static void wh_not_found(eg_req_t *req)
{
    eg_res_error(req, EG_ENOTFOUND, "webhook %s not found", eg_req_param(req, "webhook_id"));
}

static cJSON *wh_json(const eg_webhook_t *wh)
{
    cJSON *j = cJSON_CreateObject(), *types;

    cJSON_AddStringToObject(j, "id", wh->id);
    cJSON_AddStringToObject(j, "url", wh->url);
    types = cJSON_AddArrayToObject(j, "event_types");
    for (size_t i = 0; i < wh->ntypes; i++)
        cJSON_AddItemToArray(types, cJSON_CreateString(wh->event_types[i]));
    cJSON_AddStringToObject(j, "signing", eg_webhook_signing_name(wh->signing));
    if (wh->secret != NULL)
        cJSON_AddStringToObject(j, "secret", wh->secret);
    cJSON_AddStringToObject(j, "secret_prefix", wh->secret_prefix);
    cJSON_AddBoolToObject(j, "enabled", wh->enabled);
    if (wh->description != NULL)
        cJSON_AddStringToObject(j, "description", wh->description);
    else
        cJSON_AddNullToObject(j, "description");
    if (wh->disabled_reason != NULL)
        cJSON_AddStringToObject(j, "disabled_reason", wh->disabled_reason);
    else
        cJSON_AddNullToObject(j, "disabled_reason");
    cJSON_AddStringToObject(j, "created_at", wh->created_at);
    cJSON_AddStringToObject(j, "updated_at", wh->updated_at);
    return j;
}

/* Parse a create or update body into spec; false after answering 400. */
static bool wh_parse(eg_req_t *req, cJSON *body, eg_webhook_spec_t *spec, bool create)
{
    const char **types;
    const char *field, *why;
    cJSON *v, *t;
    size_t n = 0;

    memset(spec, 0, sizeof(*spec));
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "url")) != NULL) {
        if (!cJSON_IsString(v)) {
            eg_res_error(req, EG_EINVAL, "field 'url' must be a string");
            return false;
        }
        spec->url = v->valuestring;
        spec->has_url = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "event_types")) != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > EG_WEBHOOK_TYPES_MAX) {
            eg_res_error(req, EG_EINVAL,
                         "field 'event_types' must be an array of at most %d event types",
                         EG_WEBHOOK_TYPES_MAX);
            return false;
        }
        types = eg_arena_calloc(&req->arena, (size_t)(cJSON_GetArraySize(v) + 1) * sizeof(*types));
        cJSON_ArrayForEach(t, v)
        {
            if (!cJSON_IsString(t)) {
                eg_res_error(req, EG_EINVAL, "field 'event_types' must hold strings");
                return false;
            }
            types[n++] = t->valuestring;
        }
        spec->event_types = types;
        spec->ntypes = n;
        spec->has_types = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "enabled")) != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v)) {
            eg_res_error(req, EG_EINVAL, "field 'enabled' must be true or false");
            return false;
        }
        spec->enabled = cJSON_IsTrue(v);
        spec->has_enabled = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "description")) != NULL) {
        if (!cJSON_IsString(v) && !cJSON_IsNull(v)) {
            eg_res_error(req, EG_EINVAL, "field 'description' must be a string or null");
            return false;
        }
        spec->description = cJSON_IsString(v) ? v->valuestring : NULL;
        spec->has_description = true;
    }
    if (create) {
        if ((v = cJSON_GetObjectItemCaseSensitive(body, "signing")) != NULL && !cJSON_IsNull(v) &&
            (!cJSON_IsString(v) || eg_webhook_signing_parse(v->valuestring, &spec->signing))) {
            eg_res_error(req, EG_EINVAL,
                         "field 'signing' must be \"standard\", \"fency\" or \"hindsight\"");
            return false;
        }
        if ((v = cJSON_GetObjectItemCaseSensitive(body, "secret")) != NULL && !cJSON_IsNull(v)) {
            if (!cJSON_IsString(v)) {
                eg_res_error(req, EG_EINVAL, "field 'secret' must be a string");
                return false;
            }
            spec->secret = v->valuestring;
        }
    } else {
        static const char *const fixed[] = {"signing", "secret"};

        for (size_t i = 0; i < EG_ARRAY_SIZE(fixed); i++) {
            if (cJSON_GetObjectItemCaseSensitive(body, fixed[i]) != NULL) {
                eg_res_error(req, EG_EINVAL,
                             "field '%s' cannot be changed; create a new endpoint instead",
                             fixed[i]);
                return false;
            }
        }
        if (!spec->has_url && !spec->has_types && !spec->has_enabled && !spec->has_description) {
            eg_res_error(req, EG_EINVAL,
                         "request body must set at least one of 'url', 'event_types', "
                         "'enabled', 'description'");
            return false;
        }
    }
    if (eg_webhook_spec_check(spec, create, &field, &why) != 0) {
        eg_res_error(req, EG_EINVAL, "field '%s' %s", field, why);
        return false;
    }
    return true;
}

/* ---- endpoints --------------------------------------------------------------------------- */

static void on_created(void *udata, int err, const eg_webhook_t *wh)
{
    eg_req_t *req = udata;

    if (err == EG_ECONFLICT) {
        eg_res_error(req, EG_ECONFLICT, "this workspace already has %d webhook endpoints",
                     EG_WEBHOOK_ENDPOINTS);
        return;
    }
    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    eg_res_json(req, 201, wh_json(wh));
}

void eg__engram_webhooks_create(eg_req_t *req)
{
    cJSON *body = eg__engram_body_object(req);
    eg_webhook_spec_t spec;
    int rc;

    if (body == NULL || !wh_parse(req, body, &spec, true))
        return;
    rc = eg_webhook_create(req->auth.workspace_id, &spec, on_created, req);
    if (rc)
        eg__engram_store_error(req, rc);
}

static void on_listed(void *udata, int err, const eg_webhook_t *whs, size_t n)
{
    eg_req_t *req = udata;
    cJSON *j, *data;

    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    j = cJSON_CreateObject();
    data = cJSON_AddArrayToObject(j, "data");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(data, wh_json(&whs[i]));
    eg_res_json(req, 200, j);
}

void eg__engram_webhooks_list(eg_req_t *req)
{
    int rc = eg_webhook_list(req->auth.workspace_id, on_listed, req);

    if (rc)
        eg__engram_store_error(req, rc);
}

static void on_one(void *udata, int err, const eg_webhook_t *wh)
{
    eg_req_t *req = udata;

    if (err == EG_ENOTFOUND) {
        wh_not_found(req);
        return;
    }
    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    eg_res_json(req, 200, wh_json(wh));
}

void eg__engram_webhooks_get(eg_req_t *req)
{
    int rc = eg_webhook_get(req->auth.workspace_id, eg_req_param(req, "webhook_id"), on_one, req);

    if (rc == EG_ENOTFOUND)
        wh_not_found(req);
    else if (rc)
        eg__engram_store_error(req, rc);
}

void eg__engram_webhooks_update(eg_req_t *req)
{
    cJSON *body = eg__engram_body_object(req);
    eg_webhook_spec_t spec;
    int rc;

    if (body == NULL || !wh_parse(req, body, &spec, false))
        return;
    rc = eg_webhook_update(req->auth.workspace_id, eg_req_param(req, "webhook_id"), &spec, on_one,
                           req);
    if (rc == EG_ENOTFOUND)
        wh_not_found(req);
    else if (rc)
        eg__engram_store_error(req, rc);
}

static void on_deleted(void *udata, int err)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err == EG_ENOTFOUND) {
        wh_not_found(req);
        return;
    }
    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", eg_req_param(req, "webhook_id"));
    cJSON_AddBoolToObject(j, "deleted", true);
    eg_res_json(req, 200, j);
}

void eg__engram_webhooks_delete(eg_req_t *req)
{
    int rc =
        eg_webhook_delete(req->auth.workspace_id, eg_req_param(req, "webhook_id"), on_deleted, req);

    if (rc == EG_ENOTFOUND)
        wh_not_found(req);
    else if (rc)
        eg__engram_store_error(req, rc);
}

/* ---- deliveries -------------------------------------------------------------------------- */

static void on_deliveries(void *udata, int err, const eg_webhook_delivery_t *ds, size_t n,
                          const char *next)
{
    eg_req_t *req = udata;
    eg_buf_t b = EG_BUF_INIT;

    if (err == EG_ENOTFOUND) {
        wh_not_found(req);
        return;
    }
    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    eg_buf_puts(&b, "{\"data\":[");
    for (size_t i = 0; i < n; i++) {
        const eg_webhook_delivery_t *d = &ds[i];

        eg_buf_puts(&b, i > 0 ? ",{\"id\":" : "{\"id\":");
        eg_buf_json_str(&b, d->id);
        eg_buf_puts(&b, ",\"event_id\":");
        eg_buf_json_str(&b, d->event_id != NULL ? d->event_id : "");
        eg_buf_puts(&b, ",\"event_type\":");
        eg_buf_json_str(&b, d->event_type != NULL ? d->event_type : "");
        eg_buf_puts(&b, ",\"status\":");
        eg_buf_json_str(&b, d->status);
        /* Attempts are stored as the JSON objects the API shows. */
        eg_buf_puts(&b, ",\"attempts\":[");
        for (size_t j = 0; j < d->nattempts; j++) {
            if (j > 0)
                eg_buf_puts(&b, ",");
            eg_buf_puts(&b, d->attempts[j]);
        }
        eg_buf_puts(&b, "],\"next_attempt_at\":");
        if (d->next_attempt_at != NULL)
            eg_buf_json_str(&b, d->next_attempt_at);
        else
            eg_buf_puts(&b, "null");
        eg_buf_puts(&b, ",\"created_at\":");
        eg_buf_json_str(&b, d->created_at != NULL ? d->created_at : "");
        eg_buf_puts(&b, ",\"updated_at\":");
        eg_buf_json_str(&b, d->updated_at != NULL ? d->updated_at : "");
        eg_buf_puts(&b, "}");
    }
    eg_buf_puts(&b, "],\"next_cursor\":");
    if (next != NULL)
        eg_buf_json_str(&b, next);
    else
        eg_buf_puts(&b, "null");
    eg_buf_puts(&b, next != NULL ? ",\"has_more\":true}" : ",\"has_more\":false}");
    eg_res_send(req, 200, "application/json", b.data, b.len);
    eg_buf_free(&b);
}

void eg__engram_webhooks_deliveries(eg_req_t *req)
{
    const char *limit = eg_req_query(req, "limit"), *cursor = eg_req_query(req, "cursor");
    int64_t n = WH_LIMIT_DEFAULT, c;
    int rc;

    if (limit != NULL && eg_parse_int64(limit, 1, EG_WEBHOOK_LIMIT_MAX, &n) != 0) {
        eg_res_error(req, EG_EINVAL, "query parameter 'limit' must be an integer from 1 to %d",
                     EG_WEBHOOK_LIMIT_MAX);
        return;
    }
    if (cursor != NULL && eg_parse_int64(cursor, 0, INT64_MAX, &c) != 0) {
        eg_res_error(req, EG_EINVAL,
                     "query parameter 'cursor' must be a next_cursor from this API");
        return;
    }
    rc = eg_webhook_deliveries(req->auth.workspace_id, eg_req_param(req, "webhook_id"), cursor,
                               (int)n, on_deliveries, req);
    if (rc == EG_ENOTFOUND)
        wh_not_found(req);
    else if (rc)
        eg__engram_store_error(req, rc);
}

static void on_retried(void *udata, int err)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err == EG_ENOTFOUND) {
        eg_res_error(req, EG_ENOTFOUND, "delivery %s of webhook %s not found",
                     eg_req_param(req, "delivery_id"), eg_req_param(req, "webhook_id"));
        return;
    }
    if (err == EG_ECONFLICT) {
        eg_res_error(req, EG_ECONFLICT,
                     "delivery %s has not failed; only failed deliveries can "
                     "be retried",
                     eg_req_param(req, "delivery_id"));
        return;
    }
    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", eg_req_param(req, "delivery_id"));
    cJSON_AddStringToObject(j, "status", "pending");
    eg_res_json(req, 202, j);
}

void eg__engram_webhooks_retry(eg_req_t *req)
{
    int rc = eg_webhook_retry(req->auth.workspace_id, eg_req_param(req, "webhook_id"),
                              eg_req_param(req, "delivery_id"), on_retried, req);

    if (rc == EG_ENOTFOUND)
        on_retried(req, rc);
    else if (rc)
        eg__engram_store_error(req, rc);
}
