/* Hindsight bank routes: list, create-or-update, patch, delete, the deprecated profile and
 * background routes, and the per-bank config. Thin: parse the vendor's shapes, call the bank
 * module (src/memory/bank.c), render. A bank id is scoped to the caller's workspace. */
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/bank_webhooks.h"
#include "engram/error.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

/* CreateBankRequest fields that are per-bank config keys under the same name. */
static const char *const create_cfg_fields[] = {
    "retain_mission",       "retain_extraction_mode",       "retain_custom_instructions",
    "retain_chunk_size",    "retain_structured_chunk_size", "enable_observations",
    "observations_mission", "enable_temporal_retrieval",    "enable_graph_retrieval",
    "enable_reranking",
};

static const char *const trait_names[3] = {"skepticism", "literalism", "empathy"};

/* ---- rendering --------------------------------------------------------------------------- */

static cJSON *disposition_json(const eg_bank_t *b)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddNumberToObject(d, "skepticism", b->skepticism);
    cJSON_AddNumberToObject(d, "literalism", b->literalism);
    cJSON_AddNumberToObject(d, "empathy", b->empathy);
    return d;
}

static cJSON *profile_json(const eg_bank_t *b)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddStringToObject(j, "bank_id", b->id);
    cJSON_AddStringToObject(j, "name", b->name);
    cJSON_AddItemToObject(j, "disposition", disposition_json(b));
    cJSON_AddStringToObject(j, "mission", b->mission);
    cJSON_AddStringToObject(j, "background", b->mission); /* deprecated alias */
    return j;
}

static cJSON *config_json(const char *bank_id, const eg_bank_t *b)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddStringToObject(j, "bank_id", bank_id);
    cJSON_AddItemToObject(j, "config", eg_bank_config_resolved(b));
    cJSON_AddItemToObject(j, "overrides",
                          b ? cJSON_Duplicate(b->overrides, true) : cJSON_CreateObject());
    return j;
}

static const char *not_found(eg_req_t *req)
{
    return eg_arena_printf(&req->arena, "Bank '%s' not found", eg_req_param(req, "bank_id"));
}

static void on_profile(void *udata, int err, const eg_bank_t *bank, bool created)
{
    eg_req_t *req = udata;

    (void)created;
    if (err) {
        eg__hs_fail(req, err, not_found(req));
        return;
    }
    eg__hs_send(req, 200, profile_json(bank));
}

static void on_config(void *udata, int err, const eg_bank_t *bank, bool created)
{
    eg_req_t *req = udata;

    (void)created;
    /* A bank that does not exist has the default configuration; reading creates nothing. */
    if (err && err != EG_ENOTFOUND) {
        eg__hs_fail(req, err, not_found(req));
        return;
    }
    eg__hs_send(req, 200, config_json(eg_req_param(req, "bank_id"), err ? NULL : bank));
}

static void on_background(void *udata, int err, const eg_bank_t *bank, bool created)
{
    eg_req_t *req = udata;
    cJSON *j;

    (void)created;
    if (err) {
        eg__hs_fail(req, err, not_found(req));
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "mission", bank->mission);
    cJSON_AddStringToObject(j, "background", bank->mission);
    eg__hs_send(req, 200, j);
}

/* ---- request parsing --------------------------------------------------------------------- */

/* A config override parsed from the body: canonical key and normalised value (NULL removes). */
typedef struct {
    const char *keys[32];
    const cJSON *values[32];
    size_t n;
} cfg_set_t;

static void cfg_add(eg_req_t *req, cfg_set_t *set, const char *key, cJSON *value)
{
    if (value)
        eg_arena_defer(&req->arena, (void (*)(void *))cJSON_Delete, value);
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->keys[i], key) == 0) {
            set->values[i] = value;
            return;
        }
    }
    if (set->n < EG_ARRAY_SIZE(set->keys)) {
        set->keys[set->n] = key;
        set->values[set->n++] = value;
    }
}

/* A DispositionTraits object at body.<field>: all three traits, each an integer 1..5. */
static bool parse_traits(const cJSON *body, const char *field, int traits[3], cJSON *errs)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(body, field);
    bool ok = true;

    if (!cJSON_IsObject(d)) {
        eg__hs_verr_type(errs, field, NULL, "model", d);
        return false;
    }
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, trait_names[i]);
        int64_t t;

        if (v == NULL) {
            eg__hs_verr_missing(errs, field, trait_names[i], d);
            ok = false;
        } else if (cJSON_IsNull(v)) {
            eg__hs_verr_type(errs, field, trait_names[i], "integer", v);
            ok = false;
        } else if (eg__hs_opt_int(d, field, trait_names[i], EG_BANK_TRAIT_MIN, EG_BANK_TRAIT_MAX,
                                  &t, errs)) {
            traits[i] = (int)t;
        } else {
            ok = false;
        }
    }
    return ok;
}

/* CreateBankRequest (PUT and PATCH B): every field optional. Returns the number of fields given
 * (non-null), or -1 after adding validation errors. */
static int parse_create(eg_req_t *req, const cJSON *body, eg_bank_update_t *u, cfg_set_t *set,
                        cJSON *errs)
{
    static const char *const mission_fields[] = {"background", "mission", "reflect_mission"};
    int given = 0, nerr0 = cJSON_GetArraySize(errs);
    int traits[3] = {0, 0, 0};

    if (eg__hs_opt_string(body, "name", NULL, &u->name, errs))
        given++;
    /* One stored string: reflect_mission wins over mission, which wins over background. */
    for (size_t i = 0; i < EG_ARRAY_SIZE(mission_fields); i++) {
        if (eg__hs_opt_string(body, mission_fields[i], NULL, &u->mission, errs))
            given++;
    }
    if (cJSON_GetObjectItemCaseSensitive(body, "disposition") &&
        !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(body, "disposition"))) {
        given++;
        parse_traits(body, "disposition", traits, errs);
    }
    for (int i = 0; i < 3; i++) { /* the flat fields win */
        char field[32];
        int64_t t;

        snprintf(field, sizeof(field), "disposition_%s", trait_names[i]);
        if (eg__hs_opt_int(body, field, NULL, EG_BANK_TRAIT_MIN, EG_BANK_TRAIT_MAX, &t, errs)) {
            traits[i] = (int)t;
            given++;
        }
    }
    u->skepticism = traits[0];
    u->literalism = traits[1];
    u->empathy = traits[2];
    for (size_t i = 0; i < EG_ARRAY_SIZE(create_cfg_fields); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, create_cfg_fields[i]);
        const eg_bank_cfg_key_t *k = eg_bank_cfg_find(create_cfg_fields[i]);
        eg_bank_cfg_why_t why;
        cJSON *norm = NULL;

        if (v == NULL || cJSON_IsNull(v) || k == NULL)
            continue;
        why = eg_bank_cfg_coerce(k, v, &norm);
        if (why != EG_BANK_CFG_OK) {
            eg__hs_verr_cfg(errs, create_cfg_fields[i], NULL, k, why, v);
            continue;
        }
        cfg_add(req, set, k->name, norm);
        given++;
    }
    u->cfg_keys = set->keys;
    u->cfg_values = set->values;
    u->ncfg = set->n;
    return cJSON_GetArraySize(errs) > nerr0 ? -1 : given;
}

/* ---- handlers ---------------------------------------------------------------------------- */

static void h_list(eg_req_t *req);

static void on_listed(void *udata, int err, const eg_bank_t *banks, size_t n, size_t total)
{
    eg_req_t *req = udata;
    eg_bank_query_t *q = req->udata;
    cJSON *j, *arr;

    if (err) {
        eg__hs_fail(req, err, "");
        return;
    }
    j = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(j, "banks");
    for (size_t i = 0; i < n; i++) {
        const eg_bank_t *b = &banks[i];
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "bank_id", b->id);
        cJSON_AddStringToObject(o, "name", b->name);
        cJSON_AddItemToObject(o, "disposition", disposition_json(b));
        cJSON_AddStringToObject(o, "mission", b->mission);
        eg__hs_add_time(o, "created_at", b->created_ms);
        eg__hs_add_time(o, "updated_at", b->updated_ms);
        cJSON_AddNumberToObject(o, "fact_count", (double)b->fact_count);
        eg__hs_add_time(o, "last_document_at", b->last_document_ms);
        eg__hs_add_time(o, "last_write_at", b->last_write_ms);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddNumberToObject(j, "total", (double)total);
    cJSON_AddNumberToObject(j, "limit", (double)q->limit);
    cJSON_AddNumberToObject(j, "offset", (double)q->offset);
    eg__hs_send(req, 200, j);
}

static void h_list(eg_req_t *req)
{
    eg_bank_query_t *q = eg_arena_calloc(&req->arena, sizeof(*q));
    cJSON *errs = cJSON_CreateArray();
    int64_t limit, offset;
    int rc;

    eg__hs_query_int(req, "limit", 100, 0, &limit, errs);
    eg__hs_query_int(req, "offset", 0, 0, &offset, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    q->q = eg_req_query(req, "q");
    q->limit = (size_t)limit;
    q->offset = (size_t)offset;
    req->udata = q;
    rc = eg_bank_list(req->auth.workspace_id, q, on_listed, req);
    if (rc)
        eg__hs_fail(req, rc, "");
}

static void h_put(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    eg_bank_update_t u = {0};
    cfg_set_t *set;
    cJSON *body, *errs;
    int rc;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    set = eg_arena_calloc(&req->arena, sizeof(*set));
    errs = cJSON_CreateArray();
    if (parse_create(req, body, &u, set, errs) < 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    rc = eg_bank_put(req->auth.workspace_id, id, &u, on_profile, req);
    if (rc)
        eg__hs_fail(req, rc, not_found(req));
}

static void h_patch(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    eg_bank_update_t u = {0};
    cfg_set_t *set;
    cJSON *body, *errs;
    int rc, given;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    set = eg_arena_calloc(&req->arena, sizeof(*set));
    errs = cJSON_CreateArray();
    given = parse_create(req, body, &u, set, errs);
    if (given < 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    if (given == 0) {
        eg_res_error_status(req, 422, EG_EUNPROCESSABLE, "No fields to update");
        return;
    }
    rc = eg_bank_patch(req->auth.workspace_id, id, &u, on_profile, req);
    if (rc)
        eg__hs_fail(req, rc, not_found(req));
}

static void on_hooks_dropped(void *udata, int err)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err) {
        eg__hs_fail(req, err, not_found(req));
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "success", true);
    cJSON_AddStringToObject(
        j, "message",
        eg_arena_printf(&req->arena, "Bank '%s' and all associated data deleted successfully",
                        eg_req_param(req, "bank_id")));
    cJSON_AddNumberToObject(j, "deleted_count", (double)*(int64_t *)req->udata);
    eg__hs_send(req, 200, j);
}

static void on_deleted(void *udata, int err, bool existed, int64_t deleted)
{
    eg_req_t *req = udata;
    int64_t *count;

    (void)existed; /* deleting a bank that is not there succeeds, as in Hindsight */
    if (err) {
        eg__hs_fail(req, err, not_found(req));
        return;
    }
    /* The bank's webhooks go with it (they live in the workspace's slot: a second call). A
     * failure here answers 503 and the client's retry of the DELETE finishes the job. */
    count = eg_arena_calloc(&req->arena, sizeof(*count));
    *count = deleted;
    req->udata = count;
    err = eg_bank_webhooks_drop(req->auth.workspace_id, eg_req_param(req, "bank_id"),
                                on_hooks_dropped, req);
    if (err)
        eg__hs_fail(req, err, not_found(req));
}

static void h_delete(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_bank_delete(req->auth.workspace_id, id, on_deleted, req);
    if (rc)
        eg__hs_fail(req, rc, not_found(req));
}

static void h_profile_get(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_bank_get(req->auth.workspace_id, id, on_profile, req);
    if (rc)
        eg__hs_fail(req, rc, not_found(req));
}

static void h_profile_put(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int traits[3] = {0, 0, 0};
    eg_bank_update_t u = {0};
    cJSON *body, *errs;
    int rc;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    if (cJSON_GetObjectItemCaseSensitive(body, "disposition") == NULL)
        eg__hs_verr_missing(errs, "disposition", NULL, body);
    else
        parse_traits(body, "disposition", traits, errs);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    u.skepticism = traits[0];
    u.literalism = traits[1];
    u.empathy = traits[2];
    rc = eg_bank_put(req->auth.workspace_id, id, &u, on_profile, req);
    if (rc)
        eg__hs_fail(req, rc, not_found(req));
}

static void h_background(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    eg_bank_update_t u = {0};
    cJSON *body, *errs;
    const cJSON *content;
    bool ignored;
    int rc;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    content = cJSON_GetObjectItemCaseSensitive(body, "content");
    if (content == NULL)
        eg__hs_verr_missing(errs, "content", NULL, body);
    else if (!cJSON_IsString(content))
        eg__hs_verr_type(errs, "content", NULL, "string", content);
    eg__hs_opt_bool(body, "update_disposition", NULL, &ignored, errs); /* deprecated no-op */
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    u.mission = content->valuestring;
    rc = eg_bank_put(req->auth.workspace_id, id, &u, on_background, req);
    if (rc)
        eg__hs_fail(req, rc, not_found(req));
}

static void h_config_get(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_bank_get(req->auth.workspace_id, id, on_config, req);
    if (rc)
        eg__hs_fail(req, rc, not_found(req));
}

static void h_config_patch(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    eg_bank_update_t u = {0};
    eg_buf_t unknown = EG_BUF_INIT;
    const cJSON *updates, *v;
    cfg_set_t *set;
    cJSON *body, *errs;
    int rc;

    if (id == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    updates = cJSON_GetObjectItemCaseSensitive(body, "updates");
    if (updates == NULL)
        eg__hs_verr_missing(errs, "updates", NULL, body);
    else if (!cJSON_IsObject(updates))
        eg__hs_verr_type(errs, "updates", NULL, "dict", updates);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    set = eg_arena_calloc(&req->arena, sizeof(*set));
    cJSON_ArrayForEach(v, updates)
    {
        const eg_bank_cfg_key_t *k = eg_bank_cfg_find(v->string);
        eg_bank_cfg_why_t why;
        cJSON *norm = NULL;

        if (k == NULL) {
            eg_buf_printf(&unknown, "%s%s", unknown.len ? ", " : "", v->string);
            continue;
        }
        why = eg_bank_cfg_coerce(k, v, &norm);
        if (why != EG_BANK_CFG_OK) {
            eg__hs_verr_cfg(errs, "updates", v->string, k, why, v);
            continue;
        }
        cfg_add(req, set, k->name, norm);
    }
    if (unknown.len) {
        cJSON_Delete(errs);
        eg_res_error_status(req, 400, EG_EINVAL,
                            "Unknown or non-configurable bank config key(s): %.*s",
                            (int)unknown.len, unknown.data);
        eg_buf_free(&unknown);
        return;
    }
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    u.cfg_keys = set->keys;
    u.cfg_values = set->values;
    u.ncfg = set->n;
    rc = eg_bank_put(req->auth.workspace_id, id, &u, on_config, req);
    if (rc)
        eg__hs_fail(req, rc, not_found(req));
}

static void h_config_delete(eg_req_t *req)
{
    const char *id = eg__hs_bank_id(req);
    int rc;

    if (id == NULL)
        return;
    rc = eg_bank_config_reset(req->auth.workspace_id, id, on_config, req);
    if (rc)
        eg__hs_fail(req, rc, not_found(req));
}

int eg__hs_banks_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"GET", "/v1/default/banks", h_list},
        {"PUT", B, h_put},
        {"PATCH", B, h_patch},
        {"DELETE", B, h_delete},
        {"GET", B "/profile", h_profile_get},
        {"PUT", B "/profile", h_profile_put},
        {"POST", B "/background", h_background},
        {"GET", B "/config", h_config_get},
        {"PATCH", B "/config", h_config_patch},
        {"DELETE", B "/config", h_config_delete},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
