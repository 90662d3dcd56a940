/* Hindsight bank webhook routes: register, list, update, delete, and the delivery history. Thin:
 * parse CreateWebhookRequest / UpdateWebhookRequest the way pydantic would, call the bank
 * endpoints of the core (engram/bank_webhooks.h), render WebhookResponse and
 * WebhookDeliveryListResponse. The signing secret is never returned, as in Hindsight. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bank_webhooks.h"
#include "engram/error.h"
#include "engram/text.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

#define WH_NOT_FOUND   "Webhook not found"
#define DELIVERIES_DEF 50

/* ---- rendering --------------------------------------------------------------------------- */

/* A core timestamp (RFC 3339) as Python isoformat; nothing when it does not parse. */
static void add_time(cJSON *o, const char *name, const char *iso)
{
    int64_t us;

    if (iso != NULL && eg_text_parse_iso(iso, strlen(iso), &us) == 0)
        eg__hs_add_time(o, name, us / 1000);
}

static cJSON *kv_json(const eg_kv_t *kv, size_t n)
{
    cJSON *o = cJSON_CreateObject();

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToObject(o, kv[i].name, cJSON_CreateString(kv[i].value));
    return o;
}

static cJSON *webhook_json(const eg_bank_webhook_t *wh)
{
    cJSON *j = cJSON_CreateObject(), *types, *hc;

    cJSON_AddStringToObject(j, "id", wh->id);
    cJSON_AddStringToObject(j, "bank_id", wh->bank_id);
    cJSON_AddStringToObject(j, "url", wh->url);
    types = cJSON_AddArrayToObject(j, "event_types");
    for (size_t i = 0; i < wh->ntypes; i++)
        cJSON_AddItemToArray(types, cJSON_CreateString(wh->event_types[i]));
    cJSON_AddBoolToObject(j, "enabled", wh->enabled);
    hc = cJSON_AddObjectToObject(j, "http_config");
    cJSON_AddStringToObject(hc, "method", wh->method);
    cJSON_AddNumberToObject(hc, "timeout_seconds", wh->timeout_seconds);
    cJSON_AddItemToObject(hc, "headers", kv_json(wh->headers, wh->nheaders));
    cJSON_AddItemToObject(hc, "params", kv_json(wh->params, wh->nparams));
    add_time(j, "created_at", wh->created_at);
    add_time(j, "updated_at", wh->updated_at);
    return j;
}

/* ---- validation errors ------------------------------------------------------------------- */

/* A pydantic error at an arbitrary loc (adopted): list indexes and dict keys go deeper than
 * eg__hs_verr's two names. */
static void verr_loc(cJSON *errs, cJSON *loc, const char *type, const char *msg, const cJSON *input)
{
    cJSON *e = cJSON_CreateObject();

    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddItemToObject(e, "loc", loc);
    cJSON_AddStringToObject(e, "msg", msg);
    cJSON_AddItemToObject(e, "input", input ? cJSON_Duplicate(input, true) : cJSON_CreateNull());
    cJSON_AddItemToArray(errs, e);
}

static cJSON *loc3(const char *a, const char *b, const char *c)
{
    cJSON *loc = cJSON_CreateArray();

    cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
    cJSON_AddItemToArray(loc, cJSON_CreateString(a));
    if (b != NULL)
        cJSON_AddItemToArray(loc, cJSON_CreateString(b));
    if (c != NULL)
        cJSON_AddItemToArray(loc, cJSON_CreateString(c));
    return loc;
}

static void verr_list(cJSON *errs, const char *f, const cJSON *input)
{
    verr_loc(errs, loc3(f, NULL, NULL), "list_type", "Input should be a valid list", input);
}

/* ---- request parsing --------------------------------------------------------------------- */

/* body.<f> (in http_config: http_config.<f>) as a dict of strings, into pairs in the arena. */
static void parse_kv(eg_req_t *req, const cJSON *hc, const char *f, const eg_kv_t **out, size_t *n,
                     cJSON *errs)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(hc, f), *c;
    eg_kv_t *kv;
    size_t i = 0;

    if (o == NULL)
        return;
    if (!cJSON_IsObject(o)) {
        eg__hs_verr_type(errs, "http_config", f, "dict", o);
        return;
    }
    kv = eg_arena_calloc(&req->arena, ((size_t)cJSON_GetArraySize(o) + 1) * sizeof(*kv));
    cJSON_ArrayForEach(c, o)
    {
        if (!cJSON_IsString(c)) {
            verr_loc(errs, loc3("http_config", f, c->string), "string_type",
                     "Input should be a valid string", c);
            continue;
        }
        kv[i].name = c->string;
        kv[i++].value = c->valuestring;
    }
    *out = kv;
    *n = i;
}

/* WebhookHttpConfig: every member optional, with its default. */
static void parse_http_config(eg_req_t *req, const cJSON *hc, eg_bank_webhook_spec_t *s,
                              cJSON *errs)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(hc, "method");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(hc, "timeout_seconds");

    s->has_http_config = true;
    if (m != NULL && !cJSON_IsString(m))
        eg__hs_verr_type(errs, "http_config", "method", "string", m);
    else if (m != NULL)
        s->method = m->valuestring;
    if (t != NULL && cJSON_IsNull(t))
        eg__hs_verr_type(errs, "http_config", "timeout_seconds", "integer", t);
    else
        eg__hs_opt_int(hc, "http_config", "timeout_seconds", 1, EG_BANK_WEBHOOK_TIMEOUT_MAX,
                       &s->timeout_seconds, errs);
    parse_kv(req, hc, "headers", &s->headers, &s->nheaders, errs);
    parse_kv(req, hc, "params", &s->params, &s->nparams, errs);
}

/* CreateWebhookRequest (create) or UpdateWebhookRequest. A null is "not given" on update, except
 * for secret, where it clears the secret. Returns the number of fields given, or -1 after adding
 * validation errors. */
static int parse_spec(eg_req_t *req, const cJSON *body, bool create, eg_bank_webhook_spec_t *s,
                      cJSON *errs)
{
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(body, "url");
    const cJSON *secret = cJSON_GetObjectItemCaseSensitive(body, "secret");
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(body, "event_types");
    const cJSON *enabled = cJSON_GetObjectItemCaseSensitive(body, "enabled");
    const cJSON *hc = cJSON_GetObjectItemCaseSensitive(body, "http_config");
    int given = 0, nerr0 = cJSON_GetArraySize(errs);

    if (url == NULL && create)
        eg__hs_verr_missing(errs, "url", NULL, body);
    else if (url != NULL && (create || !cJSON_IsNull(url)) && !cJSON_IsString(url))
        eg__hs_verr_type(errs, "url", NULL, "string", url);
    else if (cJSON_IsString(url)) {
        s->url = url->valuestring;
        s->has_url = true;
        given++;
    }

    if (secret != NULL && !cJSON_IsNull(secret) && !cJSON_IsString(secret)) {
        eg__hs_verr_type(errs, "secret", NULL, "string", secret);
    } else if (secret != NULL) {
        s->secret = cJSON_IsString(secret) ? secret->valuestring : NULL;
        s->has_secret = true;
        given++;
    }

    if (types != NULL && (create || !cJSON_IsNull(types)) && !cJSON_IsArray(types)) {
        verr_list(errs, "event_types", types);
    } else if (cJSON_IsArray(types)) {
        const char **t =
            eg_arena_calloc(&req->arena, ((size_t)cJSON_GetArraySize(types) + 1) * sizeof(*t));
        const cJSON *c;
        int i = 0;

        cJSON_ArrayForEach(c, types)
        {
            if (cJSON_IsString(c)) {
                t[s->ntypes++] = c->valuestring;
            } else {
                cJSON *loc = loc3("event_types", NULL, NULL);

                cJSON_AddItemToArray(loc, cJSON_CreateNumber(i));
                verr_loc(errs, loc, "string_type", "Input should be a valid string", c);
            }
            i++;
        }
        s->event_types = t;
        s->has_types = true;
        given++;
    }

    if (enabled != NULL && create && cJSON_IsNull(enabled))
        eg__hs_verr_type(errs, "enabled", NULL, "boolean", enabled);
    else if (eg__hs_opt_bool(body, "enabled", NULL, &s->enabled, errs)) {
        s->has_enabled = true;
        given++;
    }

    if (hc != NULL && (create || !cJSON_IsNull(hc)) && !cJSON_IsObject(hc)) {
        eg__hs_verr_type(errs, "http_config", NULL, "model", hc);
    } else if (cJSON_IsObject(hc)) {
        parse_http_config(req, hc, s, errs);
        given++;
    }
    return cJSON_GetArraySize(errs) > nerr0 ? -1 : given;
}

/* The core's verdict on the values (a URL, an event type, a method, a header) as pydantic's
 * value_error at the field. False after adding it. */
static bool check_spec(const cJSON *body, const eg_bank_webhook_spec_t *s, bool create, cJSON *errs)
{
    const char *field, *sub, *why;
    const cJSON *input;
    char msg[320];

    if (eg_bank_webhook_spec_check(s, create, &field, &sub, &why) == 0)
        return true;
    input = cJSON_GetObjectItemCaseSensitive(body, field);
    if (sub != NULL)
        input = cJSON_GetObjectItemCaseSensitive(input, sub);
    snprintf(msg, sizeof(msg), "Value error, %s", why);
    verr_loc(errs, loc3(field, sub, NULL), "value_error", msg, input);
    return false;
}

/* ---- handlers ---------------------------------------------------------------------------- */

static void on_webhook(void *udata, int err, const eg_bank_webhook_t *wh)
{
    eg_req_t *req = udata;

    if (err == EG_ECONFLICT) {
        eg_res_error(req, err, "Bank '%s' already has %d webhooks", eg_req_param(req, "bank_id"),
                     EG_BANK_WEBHOOKS_MAX);
        return;
    }
    if (err) {
        eg__hs_fail(req, err, WH_NOT_FOUND);
        return;
    }
    eg__hs_send(req, strcmp(req->method, "POST") == 0 ? 201 : 200, webhook_json(wh));
}

static void h_create(eg_req_t *req)
{
    const char *bank = eg__hs_bank_id(req);
    eg_bank_webhook_spec_t s = {0};
    cJSON *body, *errs;
    int rc;

    if (bank == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    if (parse_spec(req, body, true, &s, errs) < 0 || !check_spec(body, &s, true, errs)) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    rc = eg_bank_webhook_create(req->auth.workspace_id, bank, &s, on_webhook, req);
    if (rc)
        eg__hs_fail(req, rc, WH_NOT_FOUND);
}

static void on_list(void *udata, int err, const eg_bank_webhook_t *whs, size_t n)
{
    eg_req_t *req = udata;
    cJSON *j, *items;

    if (err) {
        eg__hs_fail(req, err, WH_NOT_FOUND);
        return;
    }
    j = cJSON_CreateObject();
    items = cJSON_AddArrayToObject(j, "items");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, webhook_json(&whs[i]));
    eg__hs_send(req, 200, j);
}

static void h_list(eg_req_t *req)
{
    const char *bank = eg__hs_bank_id(req);
    int rc;

    if (bank == NULL)
        return;
    rc = eg_bank_webhook_list(req->auth.workspace_id, bank, on_list, req);
    if (rc)
        eg__hs_fail(req, rc, WH_NOT_FOUND);
}

static void h_patch(eg_req_t *req)
{
    const char *bank = eg__hs_bank_id(req);
    eg_bank_webhook_spec_t s = {0};
    cJSON *body, *errs;
    int rc, given;

    if (bank == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    given = parse_spec(req, body, false, &s, errs);
    if (given < 0 || !check_spec(body, &s, false, errs)) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    if (given == 0) {
        eg_res_error_status(req, 422, EG_EUNPROCESSABLE, "No fields provided to update");
        return;
    }
    rc = eg_bank_webhook_update(req->auth.workspace_id, bank, eg_req_param(req, "webhook_id"), &s,
                                on_webhook, req);
    if (rc)
        eg__hs_fail(req, rc, WH_NOT_FOUND);
}

static void on_deleted(void *udata, int err)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err) {
        eg__hs_fail(req, err, WH_NOT_FOUND);
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "success", true);
    eg__hs_send(req, 200, j);
}

static void h_delete(eg_req_t *req)
{
    const char *bank = eg__hs_bank_id(req);
    int rc;

    if (bank == NULL)
        return;
    rc = eg_bank_webhook_delete(req->auth.workspace_id, bank, eg_req_param(req, "webhook_id"),
                                on_deleted, req);
    if (rc)
        eg__hs_fail(req, rc, WH_NOT_FOUND);
}

/* ---- deliveries -------------------------------------------------------------------------- */

/* The core's delivery states in Hindsight's operation words: a delivery waiting for its next
 * attempt is still pending there. */
static const char *hs_status(const char *s)
{
    if (strcmp(s, "succeeded") == 0)
        return "completed";
    if (strcmp(s, "failed") == 0)
        return "failed";
    return "pending";
}

static cJSON *delivery_json(eg_req_t *req, const eg_webhook_delivery_t *d)
{
    cJSON *o = cJSON_CreateObject(), *last = NULL;
    const cJSON *v;

    cJSON_AddStringToObject(o, "id", d->id);
    cJSON_AddStringToObject(o, "webhook_id", eg_req_param(req, "webhook_id"));
    cJSON_AddStringToObject(o, "url", d->url != NULL ? d->url : "");
    cJSON_AddStringToObject(o, "event_type", d->event_type != NULL ? d->event_type : "");
    cJSON_AddStringToObject(o, "status", hs_status(d->status));
    cJSON_AddNumberToObject(o, "attempts", (double)d->nattempts);
    if (strcmp(d->status, "retrying") == 0)
        add_time(o, "next_retry_at", d->next_attempt_at);
    if (d->nattempts > 0)
        last = cJSON_Parse(d->attempts[d->nattempts - 1]);
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(last, "error")))
        cJSON_AddStringToObject(o, "last_error", v->valuestring);
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(last, "status_code")))
        cJSON_AddNumberToObject(o, "last_response_status", v->valuedouble);
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(last, "response_body")))
        cJSON_AddStringToObject(o, "last_response_body", v->valuestring);
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(last, "at")))
        add_time(o, "last_attempt_at", v->valuestring);
    cJSON_Delete(last);
    add_time(o, "created_at", d->created_at);
    add_time(o, "updated_at", d->updated_at);
    return o;
}

static void on_deliveries(void *udata, int err, const eg_webhook_delivery_t *ds, size_t n,
                          const char *next)
{
    eg_req_t *req = udata;
    cJSON *j, *items;

    if (err) {
        eg__hs_fail(req, err, WH_NOT_FOUND);
        return;
    }
    j = cJSON_CreateObject();
    items = cJSON_AddArrayToObject(j, "items");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, delivery_json(req, &ds[i]));
    if (next != NULL)
        cJSON_AddStringToObject(j, "next_cursor", next);
    eg__hs_send(req, 200, j);
}

static void h_deliveries(eg_req_t *req)
{
    const char *bank = eg__hs_bank_id(req), *cursor = eg_req_query(req, "cursor");
    cJSON *errs;
    int64_t limit, c;
    int rc;

    if (bank == NULL)
        return;
    errs = cJSON_CreateArray();
    if (eg__hs_query_int(req, "limit", DELIVERIES_DEF, 1, &limit, errs) &&
        limit > EG_BANK_WEBHOOK_LIMIT_MAX) {
        cJSON *ctx = cJSON_CreateObject(), *input = cJSON_CreateString(eg_req_query(req, "limit"));

        cJSON_AddNumberToObject(ctx, "le", EG_BANK_WEBHOOK_LIMIT_MAX);
        eg__hs_verr(errs, "query", "limit", NULL, "less_than_equal",
                    "Input should be less than or equal to 200", input, ctx);
        cJSON_Delete(input);
    }
    /* The cursor is the next_cursor of an earlier page. */
    if (cursor != NULL && eg_parse_int64(cursor, 0, INT64_MAX, &c) != 0) {
        cJSON *input = cJSON_CreateString(cursor);

        eg__hs_verr(errs, "query", "cursor", NULL, "value_error",
                    "Value error, cursor must be the next_cursor of an earlier page", input, NULL);
        cJSON_Delete(input);
    }
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    rc = eg_bank_webhook_deliveries(req->auth.workspace_id, bank, eg_req_param(req, "webhook_id"),
                                    cursor, (int)limit, on_deliveries, req);
    if (rc)
        eg__hs_fail(req, rc, WH_NOT_FOUND);
}

int eg__hs_webhooks_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"POST", B "/webhooks", h_create},
        {"GET", B "/webhooks", h_list},
        {"PATCH", B "/webhooks/{webhook_id}", h_patch},
        {"DELETE", B "/webhooks/{webhook_id}", h_delete},
        {"GET", B "/webhooks/{webhook_id}/deliveries", h_deliveries},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
