/* The Hindsight face (API 0.9.1): mount, error shape, the face-local health and version routes,
 * and the helpers every Hindsight route uses to look like FastAPI + pydantic v2 on the wire:
 * {"detail": ...} errors, 422 validation lists, nulls dropped, Python isoformat timestamps. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engram/error.h"
#include "engram/faces.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/tenancy.h"
#include "engram/util.h"
#include "engram/text.h"
#include "hindsight_int.h"

static void render_error(eg_req_t *req, int status, int err, const char *message);

eg_face_t eg__hs_face = {
    .name = "hindsight",
    .prefix = "/hindsight",
    .render_error = render_error,
};

static uint64_t started_ns;

/* FastAPI answers unknown routes and methods with Starlette's fixed texts. */
static void render_error(eg_req_t *req, int status, int err, const char *message)
{
    cJSON *j = cJSON_CreateObject();

    if (req->route == NULL && status == 404)
        message = "Not Found";
    else if (req->route == NULL && status == 405)
        message = "Method Not Allowed";
    if (err == EG_EUNAVAIL || err == EG_EBUSY || err == EG_ESTORETIMEOUT || err == EG_EREDIS)
        eg_res_header(req, "Retry-After", "30");
    cJSON_AddStringToObject(j, "detail", message);
    eg_res_json(req, status, j);
}

/* ---- response helpers -------------------------------------------------------------------- */

static bool kept(const char *name, const char *const *keep)
{
    for (; keep && *keep; keep++)
        if (name && strcmp(name, *keep) == 0)
            return true;
    return false;
}

void eg__hs_strip_nulls(cJSON *j, const char *const *keep)
{
    cJSON *c = j ? j->child : NULL;

    while (c) {
        cJSON *next = c->next;
        if (cJSON_IsObject(j) && cJSON_IsNull(c) && !kept(c->string, keep))
            cJSON_Delete(cJSON_DetachItemViaPointer(j, c));
        else if (cJSON_IsObject(c) || cJSON_IsArray(c))
            eg__hs_strip_nulls(c, keep);
        c = next;
    }
}

void eg__hs_send(eg_req_t *req, int status, cJSON *j)
{
    eg__hs_strip_nulls(j, NULL);
    eg_res_json(req, status, j);
}

void eg__hs_add_time(cJSON *obj, const char *name, int64_t ms)
{
    char when[EG_TEXT_ISO_MAX];

    if (ms == 0)
        return;
    eg_text_format_iso(ms * 1000, when);
    cJSON_AddStringToObject(obj, name, when);
}

/* ---- validation errors ------------------------------------------------------------------- */

void eg__hs_verr(cJSON *errs, const char *where, const char *f1, const char *f2, const char *type,
                 const char *msg, const cJSON *input, cJSON *ctx)
{
    cJSON *loc = cJSON_CreateArray();

    cJSON_AddItemToArray(loc, cJSON_CreateString(where));
    if (f1)
        cJSON_AddItemToArray(loc, cJSON_CreateString(f1));
    if (f1 && f2)
        cJSON_AddItemToArray(loc, cJSON_CreateString(f2));
    eg__hs_verr_loc(errs, loc, type, msg, input, ctx);
}

void eg__hs_verr_loc(cJSON *errs, cJSON *loc, const char *type, const char *msg, const cJSON *input,
                     cJSON *ctx)
{
    cJSON *e = cJSON_CreateObject();

    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddItemToObject(e, "loc", loc);
    cJSON_AddStringToObject(e, "msg", msg);
    cJSON_AddItemToObject(e, "input", input ? cJSON_Duplicate(input, true) : cJSON_CreateNull());
    if (ctx)
        cJSON_AddItemToObject(e, "ctx", ctx);
    cJSON_AddItemToArray(errs, e);
}

void eg__hs_verr_missing(cJSON *errs, const char *f1, const char *f2, const cJSON *parent)
{
    eg__hs_verr(errs, "body", f1, f2, "missing", "Field required", parent, NULL);
}

void eg__hs_verr_type(cJSON *errs, const char *f1, const char *f2, const char *what,
                      const cJSON *input)
{
    static const struct {
        const char *what, *type, *msg;
    } words[] = {
        {"string", "string_type", "Input should be a valid string"},
        {"integer", "int_type", "Input should be a valid integer"},
        {"boolean", "bool_type", "Input should be a valid boolean"},
        {"dict", "dict_type", "Input should be a valid dictionary"},
        {"model", "model_attributes_type",
         "Input should be a valid dictionary or object to extract fields from"},
    };
    for (size_t i = 0; i < EG_ARRAY_SIZE(words); i++) {
        if (strcmp(words[i].what, what) == 0) {
            eg__hs_verr(errs, "body", f1, f2, words[i].type, words[i].msg, input, NULL);
            return;
        }
    }
}

void eg__hs_send_422(eg_req_t *req, cJSON *errs)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddItemToObject(j, "detail", errs);
    eg_res_json(req, 422, j); /* "input": null is part of pydantic's shape: keep nulls */
}

cJSON *eg__hs_body(eg_req_t *req, bool required)
{
    const char *end = NULL;
    cJSON *j, *errs;
    size_t n = req->body.len;
    const char *p = req->body.data;

    while (n > 0 && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
        n--;
    }
    if (n == 0) {
        if (!required) {
            j = cJSON_CreateObject();
            eg_arena_defer(&req->arena, (void (*)(void *))cJSON_Delete, j);
            return j;
        }
        errs = cJSON_CreateArray();
        eg__hs_verr(errs, "body", NULL, NULL, "missing", "Field required", NULL, NULL);
        eg__hs_send_422(req, errs);
        return NULL;
    }
    j = cJSON_ParseWithLengthOpts(p, n, &end, false);
    if (j == NULL) {
        cJSON *ctx = cJSON_CreateObject();
        cJSON *pos = cJSON_CreateNumber((double)(end && end >= p ? (size_t)(end - p) : 0));
        cJSON *e = cJSON_CreateObject(), *loc;

        errs = cJSON_CreateArray();
        cJSON_AddStringToObject(e, "type", "json_invalid");
        loc = cJSON_AddArrayToObject(e, "loc");
        cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
        cJSON_AddItemToArray(loc, pos);
        cJSON_AddStringToObject(e, "msg", "JSON decode error");
        cJSON_AddItemToObject(e, "input", cJSON_CreateObject());
        cJSON_AddStringToObject(ctx, "error", "Expecting value");
        cJSON_AddItemToObject(e, "ctx", ctx);
        cJSON_AddItemToArray(errs, e);
        eg__hs_send_422(req, errs);
        return NULL;
    }
    eg_arena_defer(&req->arena, (void (*)(void *))cJSON_Delete, j);
    if (!cJSON_IsObject(j)) {
        errs = cJSON_CreateArray();
        eg__hs_verr(errs, "body", NULL, NULL, "model_attributes_type",
                    "Input should be a valid dictionary or object to extract fields from", j, NULL);
        eg__hs_send_422(req, errs);
        return NULL;
    }
    return j;
}

bool eg__hs_opt_string(const cJSON *obj, const char *f1, const char *f2, const char **out,
                       cJSON *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, f2 ? f2 : f1);

    if (v == NULL || cJSON_IsNull(v))
        return false;
    if (!cJSON_IsString(v)) {
        eg__hs_verr_type(errs, f1, f2, "string", v);
        return false;
    }
    *out = v->valuestring;
    return true;
}

static void verr_range(cJSON *errs, const char *where, const char *f1, const char *f2, bool low,
                       int64_t bound, const cJSON *input)
{
    cJSON *ctx = cJSON_CreateObject();
    char *msg = NULL;
    int n;

    cJSON_AddNumberToObject(ctx, low ? "ge" : "le", (double)bound);
    n = low ? asprintf(&msg, "Input should be greater than or equal to %lld", (long long)bound)
            : asprintf(&msg, "Input should be less than or equal to %lld", (long long)bound);
    eg__hs_verr(errs, where, f1, f2, low ? "greater_than_equal" : "less_than_equal",
                n < 0 ? "Input out of range" : msg, input, ctx);
    free(msg);
}

/* An optional field coerced like a config value of key k: the normalised value (the caller
 * deletes it), or NULL when the field is absent or null, or after a 422 entry went to errs. */
static cJSON *opt_coerced(const cJSON *obj, const char *f1, const char *f2,
                          const eg_bank_cfg_key_t *k, cJSON *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, f2 ? f2 : f1);
    eg_bank_cfg_why_t why;
    cJSON *norm = NULL;

    if (v == NULL || cJSON_IsNull(v))
        return NULL;
    why = eg_bank_cfg_coerce(k, v, &norm);
    if (why != EG_BANK_CFG_OK) {
        eg__hs_verr_cfg(errs, f1, f2, k, why, v);
        return NULL;
    }
    return norm;
}

bool eg__hs_opt_int(const cJSON *obj, const char *f1, const char *f2, int64_t min, int64_t max,
                    int64_t *out, cJSON *errs)
{
    eg_bank_cfg_key_t k = {.name = f2 ? f2 : f1, .type = EG_BANK_CFG_INT, .min = min, .max = max};
    cJSON *norm = opt_coerced(obj, f1, f2, &k, errs);

    if (norm == NULL)
        return false;
    *out = (int64_t)norm->valuedouble;
    cJSON_Delete(norm);
    return true;
}

bool eg__hs_opt_bool(const cJSON *obj, const char *f1, const char *f2, bool *out, cJSON *errs)
{
    eg_bank_cfg_key_t k = {.name = f2 ? f2 : f1, .type = EG_BANK_CFG_BOOL};
    cJSON *norm = opt_coerced(obj, f1, f2, &k, errs);

    if (norm == NULL)
        return false;
    *out = cJSON_IsTrue(norm);
    cJSON_Delete(norm);
    return true;
}

void eg__hs_verr_cfg(cJSON *errs, const char *f1, const char *f2, const eg_bank_cfg_key_t *k,
                     eg_bank_cfg_why_t why, const cJSON *input)
{
    static const char *const type_words[] = {
        [EG_BANK_CFG_STR] = "string",
        [EG_BANK_CFG_INT] = "integer",
        [EG_BANK_CFG_BOOL] = "boolean",
        [EG_BANK_CFG_ENUM] = "string",
    };

    switch (why) {
    case EG_BANK_CFG_OK:
        return;
    case EG_BANK_CFG_BAD_TYPE:
        eg__hs_verr_type(errs, f1, f2, type_words[k->type], input);
        return;
    case EG_BANK_CFG_BAD_PARSE:
        if (k->type == EG_BANK_CFG_BOOL)
            eg__hs_verr(errs, "body", f1, f2, "bool_parsing",
                        "Input should be a valid boolean, unable to interpret input", input, NULL);
        else
            eg__hs_verr(errs, "body", f1, f2, "int_parsing",
                        "Input should be a valid integer, unable to parse string as an integer",
                        input, NULL);
        return;
    case EG_BANK_CFG_FRACTION:
        eg__hs_verr(errs, "body", f1, f2, "int_from_float",
                    "Input should be a valid integer, got a number with a fractional part", input,
                    NULL);
        return;
    case EG_BANK_CFG_TOO_SMALL:
        verr_range(errs, "body", f1, f2, true, k->min, input);
        return;
    case EG_BANK_CFG_TOO_LARGE:
        verr_range(errs, "body", f1, f2, false, k->max, input);
        return;
    case EG_BANK_CFG_BAD_CHOICE:
        eg__hs_verr_literal(errs, "body", f1, f2, k->values, input);
        return;
    }
}

bool eg__hs_query_int(eg_req_t *req, const char *name, int64_t def, int64_t min, int64_t *out,
                      cJSON *errs)
{
    return eg__hs_query_int_in(req, name, def, min, INT64_MAX, out, errs);
}

bool eg__hs_query_int_in(eg_req_t *req, const char *name, int64_t def, int64_t min, int64_t max,
                         int64_t *out, cJSON *errs)
{
    const char *v = eg_req_query(req, name);
    cJSON *input;

    *out = def;
    if (v == NULL)
        return true;
    input = cJSON_CreateString(v);
    if (eg_parse_int64(v, INT64_MIN, INT64_MAX, out) != 0) {
        eg__hs_verr(errs, "query", name, NULL, "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer", input,
                    NULL);
        cJSON_Delete(input);
        return false;
    }
    if (*out < min || *out > max) {
        verr_range(errs, "query", name, NULL, *out < min, *out < min ? min : max, input);
        cJSON_Delete(input);
        return false;
    }
    cJSON_Delete(input);
    return true;
}

bool eg__hs_query_bool(eg_req_t *req, const char *name, bool def, bool *out, cJSON *errs)
{
    static const char *const truthy[] = {"true", "1", "yes", "on", "t", "y"};
    static const char *const falsy[] = {"false", "0", "no", "off", "f", "n"};
    const char *v = eg_req_query(req, name);
    cJSON *input;

    *out = def;
    if (v == NULL)
        return true;
    for (size_t i = 0; i < EG_ARRAY_SIZE(truthy); i++) {
        if (eg_strcaseeq(v, truthy[i]) || eg_strcaseeq(v, falsy[i])) {
            *out = eg_strcaseeq(v, truthy[i]);
            return true;
        }
    }
    input = cJSON_CreateString(v);
    eg__hs_verr(errs, "query", name, NULL, "bool_parsing",
                "Input should be a valid boolean, unable to interpret input", input, NULL);
    cJSON_Delete(input);
    return false;
}

void eg__hs_verr_literal(cJSON *errs, const char *where, const char *f1, const char *f2,
                         const char *const *values, const cJSON *input)
{
    eg_buf_t b = EG_BUF_INIT;
    cJSON *ctx = cJSON_CreateObject();
    size_t n = 0;

    while (values[n])
        n++;
    eg_buf_puts(&b, "Input should be ");
    for (size_t i = 0; i < n; i++)
        eg_buf_printf(&b, "%s'%s'", i == 0 ? "" : (i + 1 == n ? " or " : ", "), values[i]);
    eg_buf_puts(&b, ""); /* NUL-terminates */
    cJSON_AddStringToObject(ctx, "expected", b.data + strlen("Input should be "));
    eg__hs_verr(errs, where, f1, f2, "literal_error", b.data, input, ctx);
    eg_buf_free(&b);
}

bool eg__hs_query_enum(eg_req_t *req, const char *name, const char *const *values, const char *def,
                       const char **out, cJSON *errs)
{
    const char *v = eg_req_query(req, name);
    cJSON *input;

    *out = def;
    if (v == NULL)
        return true;
    for (size_t i = 0; values[i]; i++) {
        if (strcmp(v, values[i]) == 0) {
            *out = values[i];
            return true;
        }
    }
    input = cJSON_CreateString(v);
    eg__hs_verr_literal(errs, "query", name, NULL, values, input);
    cJSON_Delete(input);
    return false;
}

bool eg__hs_opt_strings(eg_req_t *req, const cJSON *obj, const char *field, const char ***out,
                        size_t *n, cJSON *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field), *e;
    int i = 0, nerr0 = cJSON_GetArraySize(errs);
    const char **s;

    if (v == NULL || cJSON_IsNull(v))
        return false;
    if (!cJSON_IsArray(v)) {
        eg__hs_verr(errs, "body", field, NULL, "list_type", "Input should be a valid list", v,
                    NULL);
        return false;
    }
    s = eg_arena_alloc(&req->arena, ((size_t)cJSON_GetArraySize(v) + 1) * sizeof(*s));
    *n = 0;
    cJSON_ArrayForEach(e, v)
    {
        if (cJSON_IsString(e)) {
            s[(*n)++] = e->valuestring;
        } else {
            /* loc ["body", field, i]: the index is a number, as pydantic writes it. */
            cJSON *loc = cJSON_CreateArray();

            cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
            cJSON_AddItemToArray(loc, cJSON_CreateString(field));
            cJSON_AddItemToArray(loc, cJSON_CreateNumber(i));
            eg__hs_verr_loc(errs, loc, "string_type", "Input should be a valid string", e, NULL);
        }
        i++;
    }
    *out = s;
    return cJSON_GetArraySize(errs) == nerr0;
}

void eg__hs_add_time_us(cJSON *obj, const char *name, int64_t us)
{
    char when[EG_TEXT_ISO_MAX];

    if (us == INT64_MIN) /* EG_MEM_TIME_NONE */
        return;
    eg_text_format_iso(us, when);
    cJSON_AddStringToObject(obj, name, when);
}

const char *eg__hs_bank_id(eg_req_t *req)
{
    const char *id = eg_req_param(req, "bank_id");
    size_t len = id ? strlen(id) : 0;
    cJSON *errs, *input;

    if (id && eg_bank_id_valid(id, len))
        return id;
    errs = cJSON_CreateArray();
    input = cJSON_CreateString(id ? id : "");
    if (len > EG_BANK_ID_MAX) {
        cJSON *ctx = cJSON_CreateObject();
        char msg[80];

        cJSON_AddNumberToObject(ctx, "max_length", EG_BANK_ID_MAX);
        snprintf(msg, sizeof(msg), "String should have at most %d characters", EG_BANK_ID_MAX);
        eg__hs_verr(errs, "path", "bank_id", NULL, "string_too_long", msg, input, ctx);
    } else {
        /* The input may be invalid UTF-8: do not echo it. */
        eg__hs_verr(errs, "path", "bank_id", NULL, "value_error",
                    "Value error, bank_id must be 1 to 256 bytes of UTF-8 without control "
                    "characters",
                    NULL, NULL);
    }
    cJSON_Delete(input);
    eg__hs_send_422(req, errs);
    return NULL;
}

void eg__hs_fail(eg_req_t *req, int err, const char *what)
{
    if (err == EG_ENOTFOUND)
        eg_res_error(req, err, "%s", what);
    else if (err == EG_EINVAL)
        eg_res_error(req, err, "%s", "invalid request");
    else if (err == EG_ECONFLICT)
        eg_res_error(req, err, "%s: the bank's state does not allow it (%s)", what,
                     eg_strerror(err));
    else if (err == EG_EUPSTREAM || err == EG_ECONNECT || err == EG_EDNS || err == EG_ETLS ||
             err == EG_EUPTIMEOUT || err == EG_ERESPTOOBIG || err == EG_EREDIRECTS)
        eg_res_error(req, err, "%s: the model provider failed (%s)", what, eg_strerror(err));
    else
        eg_res_error(req, err, "storage unavailable: %s", eg_store_error_text(err));
}

/* ---- health and version ------------------------------------------------------------------ */

static void on_health_pong(void *udata, int err, redisReply *reply)
{
    eg_req_t *req = udata;
    cJSON *j = cJSON_CreateObject();

    if (err != 0 || reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        cJSON_AddStringToObject(j, "status", "unhealthy");
        cJSON_AddStringToObject(j, "database", "disconnected");
        cJSON_AddStringToObject(j, "error", err ? eg_strerror(err) : reply->str);
        eg__hs_send(req, 503, j);
        return;
    }
    cJSON_AddStringToObject(j, "status", "healthy");
    cJSON_AddStringToObject(j, "database", "connected");
    eg__hs_send(req, 200, j);
}

static void h_health(eg_req_t *req)
{
    if (eg_store_ping(on_health_pong, req) != 0)
        on_health_pong(req, EG_EUNAVAIL, NULL);
}

static void h_live(eg_req_t *req)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddStringToObject(j, "status", "alive");
    cJSON_AddStringToObject(j, "version", EG_HS_API_VERSION);
    cJSON_AddNumberToObject(j, "uptime_seconds", (double)(eg_mono_ns() - started_ns) / 1e9);
    eg__hs_send(req, 200, j);
}

static void h_version(eg_req_t *req)
{
    /* A feature is true only when its routes work here. */
    static const struct {
        const char *name;
        bool on;
    } features[] = {
        {"observations", false},
        {"mcp", false},
        {"worker", true}, /* async retain runs on the retain queue */
        {"bank_config_api", true},
        {"bank_llm_health", true}, /* POST B/health/llm */
        {"file_upload_api", false},
        {"document_export_api", false},
        {"document_import_api", false},
        {"audit_log", false},
        {"llm_trace", false},
        {"store_document_text", true}, /* documents keep original_text */
    };
    cJSON *j = cJSON_CreateObject();
    cJSON *f;

    cJSON_AddStringToObject(j, "api_version", EG_HS_API_VERSION);
    f = cJSON_AddObjectToObject(j, "features");
    for (size_t i = 0; i < EG_ARRAY_SIZE(features); i++)
        cJSON_AddBoolToObject(f, features[i].name, features[i].on);
    eg__hs_send(req, 200, j);
}

/* ---- anonymous workspace ----------------------------------------------------------------- */

static uv_timer_t anon_timer;
static bool anon_busy;

static void on_anon_ws(void *udata, int err, const eg_workspace_t *ws);

static void on_anon_created(void *udata, int err, const eg_workspace_t *ws)
{
    if (err == EG_ECONFLICT) { /* created meanwhile by another process */
        anon_busy = false;
        return;
    }
    on_anon_ws(udata, err, ws);
}

static void on_anon_ws(void *udata, int err, const eg_workspace_t *ws)
{
    anon_busy = false;
    if (err == EG_ENOTFOUND) {
        eg_log_warn("ENGRAM_ANONYMOUS_WORKSPACE: workspace '%s' does not exist; creating it",
                    eg__hs_face.anonymous_workspace);
        anon_busy =
            eg_workspace_create(eg__hs_face.anonymous_workspace, on_anon_created, NULL) == 0;
        return;
    }
    if (err)
        return; /* Redis not ready: the timer tries again */
    snprintf(eg__hs_face.anonymous_workspace_id, sizeof(eg__hs_face.anonymous_workspace_id), "%s",
             ws->id);
    uv_timer_stop(&anon_timer);
    eg_log_warn("ANONYMOUS ACCESS: %s requests without an API key act on workspace '%s' (%s)",
                eg__hs_face.prefix[0] ? eg__hs_face.prefix : "/", ws->name, ws->id);
}

static void on_anon_timer(uv_timer_t *t)
{
    (void)t;
    if (anon_busy || eg__hs_face.anonymous_workspace_id[0] || !eg_store_up())
        return;
    anon_busy = eg_workspace_get(eg__hs_face.anonymous_workspace, on_anon_ws, NULL) == 0;
}

/* ---- mount ------------------------------------------------------------------------------- */

int eg__hs_add_routes(eg_router_t *r, const eg__hs_route_t *routes, size_t n, unsigned flags)
{
    for (size_t i = 0; i < n; i++) {
        int rc =
            eg_router_add(r, &eg__hs_face, routes[i].method, routes[i].tmpl, routes[i].fn, flags);
        if (rc)
            return rc;
    }
    return 0;
}

int eg_face_hindsight_mount(eg_router_t *r, const eg_config_t *cfg)
{
    static const eg__hs_route_t routes[] = {
        {"GET", "/health", h_health},
        {"GET", "/health/ready", h_health},
        {"GET", "/health/live", h_live},
        {"GET", "/version", h_version},
    };
    uv_loop_t *loop = eg_store_loop();

    started_ns = eg_mono_ns();
    snprintf(eg__hs_face.prefix, sizeof(eg__hs_face.prefix), "%s", cfg->mount[0]);
    eg__hs_face.anonymous_workspace = NULL;
    eg__hs_face.anonymous_workspace_id[0] = '\0';
    if (cfg->anonymous_workspace[0]) {
        eg__hs_face.anonymous_workspace = cfg->anonymous_workspace;
        eg_log_warn("ANONYMOUS ACCESS ENABLED: ENGRAM_ANONYMOUS_WORKSPACE=%s lets requests "
                    "without an API key to the Hindsight face (%s) act on that workspace",
                    cfg->anonymous_workspace, eg__hs_face.prefix[0] ? eg__hs_face.prefix : "/");
        if (loop && !uv_is_active((uv_handle_t *)&anon_timer)) {
            if (anon_timer.loop == NULL)
                uv_timer_init(loop, &anon_timer);
            uv_unref((uv_handle_t *)&anon_timer); /* never keeps the loop alive */
            uv_timer_start(&anon_timer, on_anon_timer, 0, 250);
        }
    }
    int rc = eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_PUBLIC);

    if (rc == 0)
        rc = eg__hs_banks_mount(r);
    if (rc == 0)
        rc = eg__hs_webhooks_mount(r);
    if (rc == 0)
        rc = eg__hs_memories_mount(r);
    if (rc == 0)
        rc = eg__hs_browse_mount(r);
    if (rc == 0)
        rc = eg__hs_documents_mount(r);
    if (rc == 0)
        rc = eg__hs_operations_mount(r);
    if (rc == 0)
        rc = eg__hs_retain_mount(r);
    if (rc == 0)
        rc = eg__hs_recall_mount(r);
    if (rc == 0)
        rc = eg__hs_reflect_mount(r);
    if (rc == 0)
        rc = eg__hs_observations_mount(r);
    if (rc == 0)
        rc = eg__hs_directives_mount(r);
    if (rc == 0)
        rc = eg__hs_mental_models_mount(r);
    if (rc == 0)
        rc = eg__hs_unimplemented_mount(r);
    if (rc == 0)
        rc = eg__hs_health_llm_mount(r);
    return rc;
}
