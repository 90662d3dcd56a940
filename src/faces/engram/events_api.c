/* engram's event routes: list (paged, filtered), get by id, and emit for operators and tests.
 * Thin: parse and validate the request, call src/events, render. The events' JSON comes
 * serialized from the log and is copied into the response as is. */
#include <stdio.h>
#include <string.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/events.h"
#include "engram/util.h"
#include "engram_int.h"
#include "events_api.h"

#define EV_LIMIT_DEFAULT 100

/* ---- GET /engram/v1/events --------------------------------------------------------------- */

static void on_page(void *udata, int err, const eg_event_page_t *page)
{
    eg_req_t *req = udata;
    eg_buf_t b = EG_BUF_INIT;

    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    eg_buf_puts(&b, "{\"data\":[");
    for (size_t i = 0; i < page->n; i++) {
        if (i > 0)
            eg_buf_puts(&b, ",");
        eg_buf_append(&b, page->events[i].json, page->events[i].len);
    }
    eg_buf_puts(&b, "],\"next_cursor\":");
    if (page->next_cursor != NULL)
        eg_buf_json_str(&b, page->next_cursor);
    else
        eg_buf_puts(&b, "null");
    eg_buf_puts(&b, page->has_more ? ",\"has_more\":true}" : ",\"has_more\":false}");
    eg_res_send(req, 200, "application/json", b.data, b.len);
    eg_buf_free(&b);
}

void eg__engram_events_list(eg_req_t *req)
{
    const char *types[EG_EVENT_TYPES_MAX + 1];
    const char *limit = eg_req_query(req, "limit"), *order = eg_req_query(req, "order");
    eg_event_query_t q = {0};
    int64_t n = EV_LIMIT_DEFAULT;
    int rc;

    if (limit != NULL && eg_parse_int64(limit, 1, EG_EVENTS_LIMIT_MAX, &n) != 0) {
        eg_res_error(req, EG_EINVAL, "query parameter 'limit' must be an integer from 1 to %d",
                     EG_EVENTS_LIMIT_MAX);
        return;
    }
    q.limit = (int)n;
    q.after = eg_req_query(req, "cursor");
    if (q.after != NULL && eg_event_id_parse(q.after, NULL, NULL) != 0) {
        eg_res_error(req, EG_EINVAL,
                     "query parameter 'cursor' must be a next_cursor or an event id from this API");
        return;
    }
    if (order == NULL || strcmp(order, "desc") == 0) {
        q.desc = true;
    } else if (strcmp(order, "asc") != 0) {
        eg_res_error(req, EG_EINVAL, "query parameter 'order' must be \"asc\" or \"desc\"");
        return;
    }
    q.ntypes = eg_req_query_all(req, "type", types, EG_ARRAY_SIZE(types));
    if (q.ntypes > EG_EVENT_TYPES_MAX) {
        eg_res_error(req, EG_EINVAL, "query parameter 'type' may be given at most %d times",
                     EG_EVENT_TYPES_MAX);
        return;
    }
    for (size_t i = 0; i < q.ntypes; i++) {
        if (!eg_event_type_pattern_valid(types[i])) {
            eg_res_error(req, EG_EINVAL,
                         "query parameter 'type' must be an event type like \"memory.created\", "
                         "a prefix wildcard like \"memory.*\", or \"*\"");
            return;
        }
    }
    q.types = types;
    q.entity_id = eg_req_query(req, "entity_id");
    if (q.entity_id != NULL && (q.entity_id[0] == '\0' || strlen(q.entity_id) > 256)) {
        eg_res_error(req, EG_EINVAL, "query parameter 'entity_id' must be 1 to 256 bytes");
        return;
    }
    rc = eg_events_read(req->auth.workspace_id, &q, on_page, req);
    if (rc)
        eg__engram_store_error(req, rc);
}

/* ---- GET /engram/v1/events/{event_id} ---------------------------------------------------- */

static void on_event_got(void *udata, int err, const eg_event_t *ev)
{
    eg_req_t *req = udata;

    if (err == EG_ENOTFOUND) {
        eg_res_error(req, EG_ENOTFOUND, "event %s not found", eg_req_param(req, "event_id"));
        return;
    }
    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    eg_res_send(req, 200, "application/json", ev->json, ev->len);
}

void eg__engram_events_get(eg_req_t *req)
{
    const char *id = eg_req_param(req, "event_id");
    int rc = eg_events_get(req->auth.workspace_id, id, on_event_got, req);

    if (rc == EG_ENOTFOUND)
        eg_res_error(req, EG_ENOTFOUND, "event %s not found", id);
    else if (rc)
        eg__engram_store_error(req, rc);
}

/* ---- POST /engram/v1/events -------------------------------------------------------------- */

static void on_emitted(void *udata, int err, const eg_event_t *ev)
{
    eg_req_t *req = udata;

    if (err) {
        eg__engram_store_error(req, err);
        return;
    }
    eg_res_send(req, 201, "application/json", ev->json, ev->len);
}

void eg__engram_events_create(eg_req_t *req)
{
    cJSON *body = eg__engram_body_object(req), *type, *entity, *empty = NULL;
    int rc;

    if (body == NULL)
        return;
    type = eg__engram_body_required(req, body, "type");
    if (type == NULL)
        return;
    if (!cJSON_IsString(type) || !eg_event_type_valid(type->valuestring)) {
        eg_res_error(req, EG_EINVAL,
                     "field 'type' must be a string matching ^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)*$ "
                     "of at most %d characters",
                     EG_EVENT_TYPE_MAX);
        return;
    }
    entity = cJSON_GetObjectItemCaseSensitive(body, "entity");
    if (entity != NULL && !cJSON_IsObject(entity)) {
        eg_res_error(req, EG_EINVAL, "field 'entity' must be a JSON object");
        return;
    }
    if (entity == NULL)
        entity = empty = cJSON_CreateObject();
    rc = eg_event_emit_ev(req->auth.workspace_id, type->valuestring, entity, on_emitted, req);
    cJSON_Delete(empty);
    if (rc)
        eg__engram_store_error(req, rc);
}
