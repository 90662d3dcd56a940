/* Hindsight retain route: POST B/memories. Thin: validate the RetainRequest the way pydantic
 * does, map it onto the core's eg_retain_req_t (engram/retain.h), render RetainResponse. */
#include <string.h>

#include "engram/error.h"
#include "engram/mstore.h"
#include "engram/retain.h"
#include "engram/text.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

static const char *const update_modes[] = {"replace", "append", NULL};
static const char *const scope_modes[] = {"per_tag", "combined", "all_combinations", "shared",
                                          NULL};

/* A validation error at ["body", "items", i, field(, sub)]. */
static void item_err(cJSON *errs, int i, const char *field, const char *sub, const char *type,
                     const char *msg, const cJSON *input)
{
    cJSON *loc = cJSON_CreateArray();

    cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
    cJSON_AddItemToArray(loc, cJSON_CreateString("items"));
    cJSON_AddItemToArray(loc, cJSON_CreateNumber(i));
    if (field)
        cJSON_AddItemToArray(loc, cJSON_CreateString(field));
    if (sub)
        cJSON_AddItemToArray(loc, cJSON_CreateString(sub));
    eg__hs_verr_loc(errs, loc, type, msg, input, NULL);
}

/* An optional list[str] member of item i: false when absent/null or invalid (errors added). */
static bool item_strings(eg_req_t *req, const cJSON *item, int i, const char *field,
                         const char ***out, size_t *n, cJSON *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, field), *e;
    const char **s;
    bool ok = true;
    int k = 0;

    if (v == NULL || cJSON_IsNull(v))
        return false;
    if (!cJSON_IsArray(v)) {
        item_err(errs, i, field, NULL, "list_type", "Input should be a valid list", v);
        return false;
    }
    s = eg_arena_alloc(&req->arena, ((size_t)cJSON_GetArraySize(v) + 1) * sizeof(*s));
    *n = 0;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e)) {
            cJSON *loc = cJSON_CreateArray();

            cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
            cJSON_AddItemToArray(loc, cJSON_CreateString("items"));
            cJSON_AddItemToArray(loc, cJSON_CreateNumber(i));
            cJSON_AddItemToArray(loc, cJSON_CreateString(field));
            cJSON_AddItemToArray(loc, cJSON_CreateNumber(k));
            eg__hs_verr_loc(errs, loc, "string_type", "Input should be a valid string", e, NULL);
            ok = false;
        } else {
            s[(*n)++] = e->valuestring;
        }
        k++;
    }
    *out = s;
    return ok;
}

/* An optional str member of item i. */
static bool item_string(const cJSON *item, int i, const char *field, const char **out, cJSON *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, field);

    if (v == NULL || cJSON_IsNull(v))
        return false;
    if (!cJSON_IsString(v)) {
        item_err(errs, i, field, NULL, "string_type", "Input should be a valid string", v);
        return false;
    }
    *out = v->valuestring;
    return true;
}

/* Parse one MemoryItem into it; errors go to errs. */
static void parse_item(eg_req_t *req, const cJSON *j, int i, eg_retain_item_t *it, cJSON *errs)
{
    const cJSON *v;
    const char *s = NULL;

    memset(it, 0, sizeof(*it));
    it->resolve_entities = true;
    it->timestamp = EG_RETAIN_TIME_NOW; /* null or omitted: when the retain is accepted */
    if (!cJSON_IsObject(j)) {
        item_err(errs, i, NULL, NULL, "model_attributes_type",
                 "Input should be a valid dictionary or object to extract fields from", j);
        return;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "content");
    if (v == NULL)
        item_err(errs, i, "content", NULL, "missing", "Field required", j);
    else if (!cJSON_IsString(v))
        item_err(errs, i, "content", NULL, "string_type", "Input should be a valid string", v);
    else
        it->content = v->valuestring;

    v = cJSON_GetObjectItemCaseSensitive(j, "timestamp");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v)) {
            item_err(errs, i, "timestamp", NULL, "string_type", "Input should be a valid string",
                     v);
        } else if (strcmp(v->valuestring, "unset") == 0) {
            it->timestamp = EG_MEM_TIME_NONE;
        } else if (eg_text_parse_iso(v->valuestring, strlen(v->valuestring), &it->timestamp)) {
            item_err(errs, i, "timestamp", NULL, "value_error",
                     "Value error, timestamp must be an ISO 8601 date-time or 'unset'", v);
        }
    }
    if (item_string(j, i, "context", &s, errs))
        it->context = s;
    if (item_string(j, i, "document_id", &s, errs)) {
        if (s[0] == '\0' || strlen(s) > EG_MEM_DOC_ID_MAX)
            item_err(errs, i, "document_id", NULL, "value_error",
                     "Value error, document_id must be 1 to 512 bytes", v);
        else
            it->document_id = s;
    }
    if (item_string(j, i, "strategy", &s, errs))
        it->strategy = s;

    v = cJSON_GetObjectItemCaseSensitive(j, "metadata");
    if (v != NULL && !cJSON_IsNull(v)) {
        const cJSON *e;

        if (!cJSON_IsObject(v)) {
            item_err(errs, i, "metadata", NULL, "dict_type", "Input should be a valid dictionary",
                     v);
        } else {
            cJSON_ArrayForEach(e, v)
            {
                if (!cJSON_IsString(e))
                    item_err(errs, i, "metadata", e->string, "string_type",
                             "Input should be a valid string", e);
            }
            it->metadata = v;
        }
    }

    v = cJSON_GetObjectItemCaseSensitive(j, "entities");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsArray(v)) {
            item_err(errs, i, "entities", NULL, "list_type", "Input should be a valid list", v);
        } else {
            size_t n = (size_t)cJSON_GetArraySize(v), k = 0;
            eg_retain_entity_t *ents = eg_arena_alloc(&req->arena, (n + 1) * sizeof(*ents));
            const cJSON *e;

            cJSON_ArrayForEach(e, v)
            {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "text");
                const cJSON *ty = cJSON_GetObjectItemCaseSensitive(e, "type");

                if (!cJSON_IsObject(e) || !cJSON_IsString(t) ||
                    (ty && !cJSON_IsNull(ty) && !cJSON_IsString(ty))) {
                    item_err(errs, i, "entities", NULL, "model_attributes_type",
                             "Each entity must be an object {text: string, type?: string}", e);
                    continue;
                }
                ents[k].text = t->valuestring;
                ents[k].type = cJSON_IsString(ty) ? ty->valuestring : NULL;
                k++;
            }
            it->entities = ents;
            it->nentities = k;
        }
    }

    v = cJSON_GetObjectItemCaseSensitive(j, "resolve_entities");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (cJSON_IsBool(v))
            it->resolve_entities = cJSON_IsTrue(v);
        else
            item_err(errs, i, "resolve_entities", NULL, "bool_type",
                     "Input should be a valid boolean", v);
    }

    {
        const char **tags = NULL;
        size_t n = 0;

        if (item_strings(req, j, i, "tags", &tags, &n, errs)) {
            it->tags = tags;
            it->ntags = n;
        }
    }

    v = cJSON_GetObjectItemCaseSensitive(j, "update_mode");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (cJSON_IsString(v) && strcmp(v->valuestring, "append") == 0)
            it->append = true;
        else if (!cJSON_IsString(v) || strcmp(v->valuestring, "replace") != 0)
            item_err(errs, i, "update_mode", NULL, "literal_error",
                     "Input should be 'replace' or 'append'", v);
    }
    (void)update_modes;

    v = cJSON_GetObjectItemCaseSensitive(j, "observation_scopes");
    if (v != NULL && !cJSON_IsNull(v)) {
        bool ok = false;

        if (cJSON_IsString(v)) {
            for (const char *const *m = scope_modes; *m; m++)
                ok = ok || strcmp(*m, v->valuestring) == 0;
        } else if (cJSON_IsArray(v)) {
            const cJSON *g, *t;

            ok = true;
            cJSON_ArrayForEach(g, v)
            {
                if (!cJSON_IsArray(g)) {
                    ok = false;
                    break;
                }
                cJSON_ArrayForEach(t, g) ok = ok && cJSON_IsString(t);
            }
        }
        if (ok)
            it->observation_scopes = v;
        else
            item_err(errs, i, "observation_scopes", NULL, "value_error",
                     "Input should be 'per_tag', 'combined', 'all_combinations', 'shared' or a "
                     "list of tag lists",
                     v);
    }
}

/* TokenUsage. */
static void add_usage(cJSON *j, const eg_usage_t *us)
{
    cJSON *u = cJSON_AddObjectToObject(j, "usage");
    int64_t total = us->total_tokens ? us->total_tokens : us->input_tokens + us->output_tokens;

    cJSON_AddNumberToObject(u, "input_tokens", (double)us->input_tokens);
    cJSON_AddNumberToObject(u, "output_tokens", (double)us->output_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", (double)total);
    cJSON_AddNumberToObject(u, "cached_tokens", (double)us->cached_tokens);
    cJSON_AddNumberToObject(u, "thoughts_tokens", (double)us->thoughts_tokens);
}

/* A failed model call: Hindsight answers 500 {"detail": "<why>"} (its handlers turn an
 * extraction exception into an HTTPException 500). */
static void send_model_error(eg_req_t *req, const char *why)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddStringToObject(j, "detail", why);
    eg__hs_send(req, 500, j);
}

static void on_retained(void *udata, int err, const eg_retain_result_t *res)
{
    eg_req_t *req = udata;
    cJSON *j;

    if (err == EG_ECONFLICT) {
        eg_res_error(req, err, "%s",
                     "operation_id is already used by a different operation, or the bank's "
                     "stored embeddings have another dimension or model");
        return;
    }
    if (err == EG_EINVAL) {
        eg_res_error(req, err, "%s",
                     "invalid retain request (update_mode 'append' needs the document's text "
                     "to be stored)");
        return;
    }
    if (err == EG_ECANCELED) {
        eg_res_error(req, EG_EUNAVAIL, "%s", "the server is shutting down; retry");
        return;
    }
    if (err && res && res->error) {
        send_model_error(req, res->error);
        return;
    }
    if (err) {
        eg__hs_fail(req, err, "retain failed");
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "success", true);
    cJSON_AddStringToObject(j, "bank_id", eg_req_param(req, "bank_id"));
    cJSON_AddNumberToObject(j, "items_count", (double)res->items_count);
    cJSON_AddBoolToObject(j, "async", res->operation_id != NULL);
    if (res->operation_id) {
        cJSON *ids = cJSON_AddArrayToObject(j, "operation_ids");

        cJSON_AddStringToObject(j, "operation_id", res->operation_id);
        for (size_t i = 0; i < res->noperation_ids; i++)
            cJSON_AddItemToArray(ids, cJSON_CreateString(res->operation_ids[i]));
    } else {
        add_usage(j, &res->usage);
    }
    eg__hs_send(req, 200, j);
}

static void h_retain(eg_req_t *req)
{
    const char *bank = eg__hs_bank_id(req);
    cJSON *body, *errs;
    const cJSON *items, *v;
    eg_retain_req_t r = {0};
    eg_retain_item_t *its;
    int n, i = 0, rc;

    if (bank == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    items = cJSON_GetObjectItemCaseSensitive(body, "items");
    if (items == NULL) {
        eg__hs_verr_missing(errs, "items", NULL, body);
    } else if (!cJSON_IsArray(items)) {
        eg__hs_verr(errs, "body", "items", NULL, "list_type", "Input should be a valid list", items,
                    NULL);
    } else if ((n = cJSON_GetArraySize(items)) == 0) {
        cJSON *ctx = cJSON_CreateObject();

        cJSON_AddStringToObject(ctx, "field_type", "List");
        cJSON_AddNumberToObject(ctx, "min_length", 1);
        cJSON_AddNumberToObject(ctx, "actual_length", 0);
        eg__hs_verr(errs, "body", "items", NULL, "too_short",
                    "List should have at least 1 item after validation, not 0", items, ctx);
    } else {
        its = eg_arena_alloc(&req->arena, (size_t)n * sizeof(*its));
        cJSON_ArrayForEach(v, items)
        {
            parse_item(req, v, i, &its[i], errs);
            i++;
        }
        r.items = its;
        r.nitems = (size_t)n;
    }
    eg__hs_opt_bool(body, "async", NULL, &r.async, errs);
    {
        const char **tags = NULL;
        size_t nt = 0;

        if (eg__hs_opt_strings(req, body, "document_tags", &tags, &nt, errs)) {
            r.document_tags = tags;
            r.ndocument_tags = nt;
        }
    }
    if (eg__hs_opt_string(body, "operation_id", NULL, &r.operation_id, errs) && !r.async)
        r.operation_id = NULL; /* ignored for synchronous retain */
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    if (r.operation_id && !eg_uuid_valid(r.operation_id)) {
        eg_res_error(req, EG_EINVAL, "Invalid operation_id '%s': must be a UUID", r.operation_id);
        return;
    }
    rc = eg_retain(req->auth.workspace_id, bank, &r, on_retained, req);
    if (rc == EG_EINVAL)
        eg_res_error(req, rc, "%s", "invalid retain request");
    else if (rc)
        eg__hs_fail(req, rc, "retain failed");
}

/* ---- POST B/memories/dry-run-extract ------------------------------------------------------- */

static void on_dry_run(void *udata, int err, const eg_extract_result_t *res)
{
    eg_req_t *req = udata;
    cJSON *j, *facts;

    if (err && res && res->error) {
        send_model_error(req, res->error);
        return;
    }
    if (err) {
        eg__hs_fail(req, err, "dry-run extraction failed");
        return;
    }
    j = cJSON_CreateObject();
    facts = cJSON_AddArrayToObject(j, "facts");
    for (size_t i = 0; i < res->nfacts; i++) {
        const eg_extract_fact_t *f = &res->facts[i];
        cJSON *o = cJSON_CreateObject(), *ents;

        cJSON_AddStringToObject(o, "text", f->text);
        cJSON_AddStringToObject(o, "fact_type", eg_fact_type_name(f->type));
        eg__hs_add_time_us(o, "occurred_start", f->occurred_start);
        eg__hs_add_time_us(o, "occurred_end", f->occurred_end);
        ents = cJSON_AddArrayToObject(o, "entities");
        for (size_t k = 0; k < f->nentities; k++)
            cJSON_AddItemToArray(ents, cJSON_CreateString(f->entities[k]));
        cJSON_AddItemToArray(facts, o);
    }
    add_usage(j, &res->usage);
    eg__hs_send(req, 200, j);
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\f' && *s != '\v')
            return false;
    return true;
}

/* DryRunExtractRequest: body fields override the bank's config for this call (null or absent
 * keep the bank's). entity_labels is accepted and not used (labels are not extracted). */
static void h_dry_run(eg_req_t *req)
{
    const char *bank = eg__hs_bank_id(req);
    eg_retain_dry_req_t d = {
        .timestamp = EG_RETAIN_TIME_NOW, .causal_links = -1, .free_form_entities = -1};
    cJSON *body, *errs;
    const cJSON *v;
    bool b;
    int64_t n;

    if (bank == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    errs = cJSON_CreateArray();
    v = cJSON_GetObjectItemCaseSensitive(body, "content");
    if (v == NULL)
        eg__hs_verr_missing(errs, "content", NULL, body);
    else if (!cJSON_IsString(v))
        eg__hs_verr_type(errs, "content", NULL, "string", v);
    else if (blank(v->valuestring))
        eg__hs_verr(errs, "body", "content", NULL, "value_error",
                    "Value error, content must not be empty", v, NULL);
    else
        d.content = v->valuestring;
    eg__hs_opt_string(body, "context", NULL, &d.context, errs);
    v = cJSON_GetObjectItemCaseSensitive(body, "timestamp");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v) ||
            eg_text_parse_iso(v->valuestring, strlen(v->valuestring), &d.timestamp) != 0)
            eg__hs_verr(errs, "body", "timestamp", NULL, "datetime_from_date_parsing",
                        "Input should be a valid datetime or date", v, NULL);
    }
    eg__hs_opt_string(body, "retain_mission", NULL, &d.mission, errs);
    if (eg__hs_opt_string(body, "retain_extraction_mode", NULL, &d.mode, errs)) {
        eg_extract_mode_t mode;
        if (eg_extract_mode_parse(d.mode, &mode) != 0) {
            static const char *const modes[] = {"concise",  "verbose", "custom",
                                                "verbatim", "chunks",  NULL};
            eg__hs_verr_literal(errs, "body", "retain_extraction_mode", NULL, modes,
                                cJSON_GetObjectItemCaseSensitive(body, "retain_extraction_mode"));
        }
    }
    eg__hs_opt_string(body, "retain_custom_instructions", NULL, &d.custom_instructions, errs);
    eg__hs_opt_string(body, "llm_output_language", NULL, &d.output_language, errs);
    if (eg__hs_opt_bool(body, "retain_extract_causal_links", NULL, &b, errs))
        d.causal_links = b;
    if (eg__hs_opt_bool(body, "entities_allow_free_form", NULL, &b, errs))
        d.free_form_entities = b;
    if (eg__hs_opt_int(body, "retain_chunk_size", NULL, 1, 1000000, &n, errs))
        d.chunk_size = (size_t)n;
    v = cJSON_GetObjectItemCaseSensitive(body, "entity_labels");
    if (v != NULL && !cJSON_IsNull(v) && !cJSON_IsArray(v))
        eg__hs_verr(errs, "body", "entity_labels", NULL, "list_type",
                    "Input should be a valid list", v, NULL);
    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return;
    }
    cJSON_Delete(errs);
    int rc = eg_retain_dry_run(req->auth.workspace_id, bank, &d, on_dry_run, req);
    if (rc)
        eg__hs_fail(req, rc, "dry-run extraction failed");
}

int eg__hs_retain_mount(eg_router_t *r)
{
    int rc = eg_router_add(r, &eg__hs_face, "POST", B "/memories", h_retain, EG_ROUTE_AUTH);
    if (rc == 0)
        rc = eg_router_add(r, &eg__hs_face, "POST", B "/memories/dry-run-extract", h_dry_run,
                           EG_ROUTE_AUTH);
    return rc;
}
