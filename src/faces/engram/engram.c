/* engram's own routes: health, version, metrics, and the /engram/v1 API (who am I, API keys).
 * Thin: parse, call the core, render. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/faces.h"
#include "engram/metrics.h"
#include "engram/store.h"
#include "engram/tenancy.h"
#include "engram/util.h"
#include "engram_int.h"
#include "events_api.h"
#include "stream_api.h"
#include "webhooks_api.h"

#define EG_API_VERSION "2026-11-01"

/* ---- health, version, metrics ------------------------------------------------------------ */

typedef struct {
    eg_req_t *req;
    uint64_t start_ns;
    bool ready_probe;
} health_op_t;

static void health_down(eg_req_t *req, const char *error)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "unavailable");
    cJSON *redis = cJSON_AddObjectToObject(j, "redis");
    int ready, total;

    eg_store_stats(&ready, &total);
    cJSON_AddStringToObject(redis, "status", "down");
    cJSON_AddStringToObject(redis, "error", error && error[0] ? error : "not connected");
    cJSON_AddNumberToObject(redis, "connections_ready", ready);
    cJSON_AddNumberToObject(redis, "connections_total", total);
    eg_res_header(req, "Retry-After", "1");
    eg_res_json(req, 503, j);
}

static void on_health_pong(void *udata, int err, redisReply *reply)
{
    health_op_t *op = udata;
    eg_req_t *req = op->req;
    double ms = (double)(eg_mono_ns() - op->start_ns) / 1e6;

    if (err != 0 || reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        health_down(req, err ? eg_strerror(err) : reply->str);
        return;
    }
    if (op->ready_probe && eg_server_draining(req->server)) {
        eg_res_json(req, 503, cJSON_Parse("{\"status\":\"draining\"}"));
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON *redis = cJSON_AddObjectToObject(j, "redis");
    int ready, total;
    eg_store_stats(&ready, &total);
    cJSON_AddStringToObject(redis, "status", "up");
    cJSON_AddNumberToObject(redis, "latency_ms", ms);
    cJSON_AddNumberToObject(redis, "connections_ready", ready);
    cJSON_AddNumberToObject(redis, "connections_total", total);
    eg_res_json(req, 200, j);
}

static void health_probe(eg_req_t *req, bool ready_probe)
{
    health_op_t *op = eg_arena_calloc(&req->arena, sizeof(*op));

    op->req = req;
    op->start_ns = eg_mono_ns();
    op->ready_probe = ready_probe;
    if (ready_probe && eg_server_draining(req->server)) {
        eg_res_json(req, 503, cJSON_Parse("{\"status\":\"draining\"}"));
        return;
    }
    if (eg_store_ping(on_health_pong, op) != 0)
        health_down(req, eg_store_last_error());
}

static void h_health(eg_req_t *req)
{
    health_probe(req, false);
}

static void h_ready(eg_req_t *req)
{
    health_probe(req, true);
}

static void h_live(eg_req_t *req)
{
    static const char body[] = "{\"status\":\"ok\"}";
    eg_res_send(req, 200, "application/json", body, sizeof(body) - 1);
}

static void h_version(eg_req_t *req)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *f = cJSON_AddObjectToObject(j, "features");

    cJSON_AddStringToObject(j, "api_version", EG_API_VERSION);
    cJSON_AddStringToObject(j, "version", ENGRAM_VERSION);
    cJSON_AddBoolToObject(f, "api_keys", true);
    cJSON_AddBoolToObject(f, "cors", true);
    cJSON_AddBoolToObject(f, "metrics", true);
    cJSON_AddBoolToObject(f, "hindsight", false);
    cJSON_AddBoolToObject(f, "fency", false);
    cJSON_AddBoolToObject(f, "faosx", false);
    cJSON_AddBoolToObject(f, "fiberwise", false);
    cJSON_AddBoolToObject(f, "cadenya", false);
    eg_res_json(req, 200, j);
}

static void h_metrics(eg_req_t *req)
{
    eg_buf_t out = EG_BUF_INIT;

    eg_metrics_gauge_set("engram_http_connections_current", "Open client connections",
                         (double)eg_server_conn_count(req->server));
    eg_metrics_render(&out);
    eg_res_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    eg_buf_free(&out);
}

/* ---- /engram/v1 -------------------------------------------------------------------------- */

static void h_whoami(eg_req_t *req)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddStringToObject(j, "workspace_id", req->auth.workspace_id);
    cJSON_AddStringToObject(j, "key_id", req->auth.key_id);
    cJSON_AddStringToObject(j, "kind", eg_apikey_kind_name(req->auth.kind));
    eg_res_json(req, 200, j);
}

static cJSON *key_json(const eg_apikey_t *k)
{
    cJSON *o = cJSON_CreateObject();
    char when[32];

    cJSON_AddStringToObject(o, "id", k->id);
    cJSON_AddStringToObject(o, "name", k->name);
    cJSON_AddStringToObject(o, "kind", eg_apikey_kind_name(k->kind));
    cJSON_AddStringToObject(o, "prefix", k->prefix);
    cJSON_AddStringToObject(o, "workspace_id", k->workspace_id);
    eg_time_iso8601(k->created_ms, when);
    cJSON_AddStringToObject(o, "created_at", when);
    if (k->last_used_ms) {
        eg_time_iso8601(k->last_used_ms, when);
        cJSON_AddStringToObject(o, "last_used_at", when);
    } else {
        cJSON_AddNullToObject(o, "last_used_at");
    }
    return o;
}

void eg__engram_store_error(eg_req_t *req, int err)
{
    eg_res_error(req, err, "storage unavailable: %s", eg_store_error_text(err));
}

cJSON *eg__engram_body_object(eg_req_t *req)
{
    cJSON *body = eg_req_json(req);

    if (body == NULL)
        return NULL;
    if (!cJSON_IsObject(body)) {
        eg_res_error(req, EG_EINVAL, "request body must be a JSON object");
        return NULL;
    }
    return body;
}

cJSON *eg__engram_body_required(eg_req_t *req, const cJSON *body, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);

    if (v == NULL)
        eg_res_error(req, EG_EINVAL, "field '%s' is required", name);
    return v;
}

static void on_keys_listed(void *udata, int err, const eg_apikey_t *keys, size_t n)
{
    eg_req_t *req = udata;

    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(j, "data");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(data, key_json(&keys[i]));
    eg_res_json(req, 200, j);
}

static void h_keys_list(eg_req_t *req)
{
    int rc = eg_apikey_list(req->auth.workspace_id, on_keys_listed, req);
    if (rc)
        eg__engram_store_error(req, rc);
}

static void on_key_created(void *udata, int err, const eg_apikey_t *key, const char *secret)
{
    eg_req_t *req = udata;

    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    cJSON *j = key_json(key);
    cJSON_AddStringToObject(j, "key", secret);
    eg_res_json(req, 201, j);
}

static void h_keys_create(eg_req_t *req)
{
    cJSON *body = eg__engram_body_object(req), *name, *kind;
    eg_key_kind_t k = EG_KEY_SECRET;
    int rc;

    if (body == NULL)
        return;
    name = eg__engram_body_required(req, body, "name");
    if (name == NULL)
        return;
    if (!cJSON_IsString(name) || name->valuestring[0] == '\0' || strlen(name->valuestring) > 128) {
        eg_res_error(req, EG_EINVAL, "field 'name' must be a string of 1 to 128 bytes");
        return;
    }
    kind = cJSON_GetObjectItemCaseSensitive(body, "kind");
    if (kind && !cJSON_IsNull(kind)) {
        if (cJSON_IsString(kind) && strcmp(kind->valuestring, "secret") == 0) {
            k = EG_KEY_SECRET;
        } else if (cJSON_IsString(kind) && strcmp(kind->valuestring, "publishable") == 0) {
            k = EG_KEY_PUBLISHABLE;
        } else {
            eg_res_error(req, EG_EINVAL, "field 'kind' must be \"secret\" or \"publishable\"");
            return;
        }
    }
    rc = eg_apikey_create(req->auth.workspace_id, k, name->valuestring, on_key_created, req);
    if (rc)
        eg__engram_store_error(req, rc);
}

static void on_key_revoked(void *udata, int err)
{
    eg_req_t *req = udata;

    if (err == EG_ENOTFOUND) {
        eg_res_error(req, EG_ENOTFOUND, "API key %s not found", eg_req_param(req, "key_id"));
        return;
    }
    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", eg_req_param(req, "key_id"));
    cJSON_AddBoolToObject(j, "revoked", true);
    eg_res_json(req, 200, j);
}

static void h_keys_revoke(eg_req_t *req)
{
    const char *id = eg_req_param(req, "key_id");
    int rc;

    if (!eg_uuid_valid(id)) {
        eg_res_error(req, EG_ENOTFOUND, "API key %s not found", id);
        return;
    }
    rc = eg_apikey_revoke(req->auth.workspace_id, id, on_key_revoked, req);
    if (rc)
        eg__engram_store_error(req, rc);
}

int eg_face_engram_mount(eg_router_t *r)
{
    static const struct {
        const char *method, *tmpl;
        eg_handler_fn fn;
        unsigned flags;
    } routes[] = {
        {"GET", "/health", h_health, EG_ROUTE_PUBLIC},
        {"GET", "/health/live", h_live, EG_ROUTE_PUBLIC},
        {"GET", "/health/ready", h_ready, EG_ROUTE_PUBLIC},
        {"GET", "/version", h_version, EG_ROUTE_PUBLIC},
        {"GET", "/metrics", h_metrics, EG_ROUTE_PUBLIC},
        {"GET", "/engram/v1/whoami", h_whoami, EG_ROUTE_AUTH | EG_ROUTE_TOKEN_QS},
        {"GET", "/engram/v1/keys", h_keys_list, EG_ROUTE_AUTH},
        {"POST", "/engram/v1/keys", h_keys_create, EG_ROUTE_AUTH},
        {"DELETE", "/engram/v1/keys/{key_id}", h_keys_revoke, EG_ROUTE_AUTH},
        {"GET", "/engram/v1/events", eg__engram_events_list, EG_ROUTE_AUTH | EG_ROUTE_TOKEN_QS},
        {"POST", "/engram/v1/events", eg__engram_events_create, EG_ROUTE_AUTH},
        {"GET", "/engram/v1/events/stream", eg__engram_events_stream,
         EG_ROUTE_AUTH | EG_ROUTE_TOKEN_QS},
        {"GET", "/engram/v1/events/ws", eg__engram_events_ws, EG_ROUTE_AUTH | EG_ROUTE_TOKEN_QS},
        {"GET", "/engram/v1/events/{event_id}", eg__engram_events_get,
         EG_ROUTE_AUTH | EG_ROUTE_TOKEN_QS},
        {"POST", "/engram/v1/webhooks", eg__engram_webhooks_create, EG_ROUTE_AUTH},
        {"GET", "/engram/v1/webhooks", eg__engram_webhooks_list, EG_ROUTE_AUTH},
        {"GET", "/engram/v1/webhooks/{webhook_id}", eg__engram_webhooks_get, EG_ROUTE_AUTH},
        {"PATCH", "/engram/v1/webhooks/{webhook_id}", eg__engram_webhooks_update, EG_ROUTE_AUTH},
        {"DELETE", "/engram/v1/webhooks/{webhook_id}", eg__engram_webhooks_delete, EG_ROUTE_AUTH},
        {"GET", "/engram/v1/webhooks/{webhook_id}/deliveries", eg__engram_webhooks_deliveries,
         EG_ROUTE_AUTH},
        {"POST", "/engram/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
         eg__engram_webhooks_retry, EG_ROUTE_AUTH},
    };

    for (size_t i = 0; i < EG_ARRAY_SIZE(routes); i++) {
        int rc = eg_router_add(r, &eg_face_engram, routes[i].method, routes[i].tmpl, routes[i].fn,
                               routes[i].flags);
        if (rc)
            return rc;
    }
    return 0;
}

int eg_faces_mount_all(eg_router_t *r, const eg_config_t *cfg)
{
    /* Product faces arrive with their issues; each reads its prefix from cfg. */
    int rc = eg_face_engram_mount(r);

    if (rc == 0)
        rc = eg_face_hindsight_mount(r, cfg);
    if (rc == 0)
        rc = eg_face_fency_mount(r, cfg);
    return rc;
}
