/* Hindsight reflect routes: POST B/reflect and POST B/mental-models/{id}/dry-run-refresh. Thin:
 * validate ReflectRequest the way pydantic does, map it onto the core's eg_reflect_req_t
 * (engram/reflect.h), render ReflectResponse (null keys dropped); the dry run renders what the
 * core's refresh would store (engram/reflect.h, eg_reflect_mm_refresh) without storing it. */
#include <string.h>

#include "engram/error.h"
#include "engram/mental_models.h"
#include "engram/recall.h"
#include "engram/reflect.h"
#include "engram/text.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

static const char *const budgets[] = {"low", "mid", "high", NULL};
static const char *const matches[] = {"any", "all", "any_strict", "all_strict", "exact", NULL};

#define TIMEOUT_DETAIL                                                                             \
    "Request timed out while searching memories. Try a lower budget or a more specific query."

typedef struct {
    eg_req_t *req;
    eg_reflect_req_t r;
    bool facts, tool_calls, tool_output;
} reflect_ctx_t;

/* ---- parsing -------------------------------------------------------------------------------- */

/* include.<name>: an object (on) or null / absent (off). */
static bool include_opt(const cJSON *inc, const char *name, cJSON *errs, const cJSON **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(inc, name);

    if (v == NULL || cJSON_IsNull(v))
        return false;
    if (!cJSON_IsObject(v)) {
        cJSON *loc = cJSON_CreateArray();

        cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
        cJSON_AddItemToArray(loc, cJSON_CreateString("include"));
        cJSON_AddItemToArray(loc, cJSON_CreateString(name));
        eg__hs_verr_loc(errs, loc, "model_attributes_type",
                        "Input should be a valid dictionary or object to extract fields from", v,
                        NULL);
        return false;
    }
    *out = v;
    return true;
}

static bool parse(reflect_ctx_t *c, const cJSON *body)
{
    eg_req_t *req = c->req;
    eg_reflect_req_t *r = &c->r;
    cJSON *errs = cJSON_CreateArray();
    const cJSON *v;
    const char *s = NULL, *context = NULL;
    int64_t n;

    eg_reflect_req_init(r);
    v = cJSON_GetObjectItemCaseSensitive(body, "query");
    if (v == NULL)
        eg__hs_verr_missing(errs, "query", NULL, body);
    else if (!cJSON_IsString(v))
        eg__hs_verr_type(errs, "query", NULL, "string", v);
    else
        r->query = v->valuestring;
    if (eg__hs_opt_string(body, "budget", NULL, &s, errs) && eg_recall_budget_parse(s, &r->budget))
        eg__hs_verr_literal(errs, "body", "budget", NULL, budgets,
                            cJSON_GetObjectItemCaseSensitive(body, "budget"));
    eg__hs_opt_string(body, "context", NULL, &context, errs);
    if (eg__hs_opt_int(body, "max_tokens", NULL, 1, 1000000, &n, errs))
        r->max_tokens = (size_t)n;

    v = cJSON_GetObjectItemCaseSensitive(body, "include");
    if (v != NULL && !cJSON_IsNull(v)) {
        const cJSON *f = NULL, *t = NULL;

        if (!cJSON_IsObject(v)) {
            eg__hs_verr_type(errs, "include", NULL, "model", v);
        } else {
            c->facts = include_opt(v, "facts", errs, &f);
            c->tool_calls = include_opt(v, "tool_calls", errs, &t);
            c->tool_output = true;
            if (t)
                eg__hs_opt_bool(t, "output", NULL, &c->tool_output, errs);
        }
    }

    v = cJSON_GetObjectItemCaseSensitive(body, "response_schema");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) {
            eg__hs_verr(errs, "body", "response_schema", NULL, "dict_type",
                        "Input should be a valid dictionary", v, NULL);
        } else {
            char *txt = cJSON_PrintUnformatted(v);

            r->response_schema = eg_arena_strdup(&req->arena, txt ? txt : "{}");
            cJSON_free(txt);
        }
    }

    {
        const char **tags = NULL;
        size_t nt = 0;

        if (eg__hs_opt_strings(req, body, "tags", &tags, &nt, errs)) {
            r->tags = tags;
            r->ntags = nt;
        }
    }
    if (eg__hs_opt_string(body, "tags_match", NULL, &s, errs) &&
        eg_tags_match_parse(s, &r->tags_match))
        eg__hs_verr_literal(errs, "body", "tags_match", NULL, matches,
                            cJSON_GetObjectItemCaseSensitive(body, "tags_match"));
    eg__hs_tag_groups(req, body, &r->tag_groups, &r->ntag_groups, errs);
    eg__hs_opt_bool(body, "apply_all_directives", NULL, &r->apply_all_directives, errs);
    eg__hs_opt_bool(body, "exclude_mental_models", NULL, &r->exclude_mental_models, errs);
    {
        const char **ids = NULL;
        size_t ni = 0;

        if (eg__hs_opt_strings(req, body, "exclude_mental_model_ids", &ids, &ni, errs)) {
            r->exclude_mm_ids = ids;
            r->nexclude_mm_ids = ni;
        }
    }
    {
        const char **types = NULL;
        size_t nt = 0;

        if (eg__hs_opt_strings(req, body, "fact_types", &types, &nt, errs)) {
            for (size_t i = 0; i < nt; i++) {
                eg_fact_type_t ft;

                if (eg_fact_type_parse(types[i], &ft)) {
                    cJSON *loc = cJSON_CreateArray();

                    cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
                    cJSON_AddItemToArray(loc, cJSON_CreateString("fact_types"));
                    cJSON_AddItemToArray(loc, cJSON_CreateNumber((double)i));
                    eg__hs_verr_loc(
                        errs, loc, "literal_error",
                        "Input should be 'world', 'experience' or 'observation'",
                        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(body, "fact_types"),
                                           (int)i),
                        NULL);
                    continue;
                }
                r->types |= 1u << ft;
            }
            /* An empty list, like none, retrieves every type (Hindsight tests it for
             * truthiness). */
        }
    }
    if (r->ntags && r->ntag_groups)
        eg__hs_verr(errs, "body", NULL, NULL, "value_error",
                    "Value error, tags and tag_groups are mutually exclusive", body, NULL);

    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return false;
    }
    cJSON_Delete(errs);
    if (context && context[0])
        r->query = eg_arena_printf(&req->arena, "%s\n\n%s", r->query, context);
    return true;
}

/* ---- rendering ------------------------------------------------------------------------------ */

static void add_time(cJSON *o, const char *key, int64_t us)
{
    if (us != EG_MEM_TIME_NONE)
        eg__hs_add_time_us(o, key, us);
}

static cJSON *eg__hs_reflect_usage(const eg_usage_t *u)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddNumberToObject(o, "input_tokens", (double)u->input_tokens);
    cJSON_AddNumberToObject(o, "output_tokens", (double)u->output_tokens);
    cJSON_AddNumberToObject(o, "total_tokens", (double)u->total_tokens);
    cJSON_AddNumberToObject(o, "cached_tokens", (double)u->cached_tokens);
    cJSON_AddNumberToObject(o, "thoughts_tokens", (double)u->thoughts_tokens);
    return o;
}

static cJSON *eg__hs_reflect_based_on(const eg_reflect_result_t *res)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *mem = cJSON_AddArrayToObject(o, "memories");
    cJSON *mms = cJSON_AddArrayToObject(o, "mental_models");
    cJSON *dirs = cJSON_AddArrayToObject(o, "directives");

    for (size_t i = 0; i < res->nfacts; i++) {
        const eg_reflect_fact_t *f = &res->facts[i];
        cJSON *j = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "id", f->id);
        cJSON_AddStringToObject(j, "text", f->text);
        cJSON_AddStringToObject(j, "type", eg_fact_type_name(f->type));
        if (f->context && f->context[0])
            cJSON_AddStringToObject(j, "context", f->context);
        add_time(j, "occurred_start", f->occurred_start);
        add_time(j, "occurred_end", f->occurred_end);
        cJSON_AddItemToArray(mem, j);
    }
    for (size_t i = 0; i < res->nmental_models; i++) {
        cJSON *j = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "id", res->mental_models[i].id);
        cJSON_AddStringToObject(j, "text", res->mental_models[i].content);
        cJSON_AddStringToObject(j, "context", res->mental_models[i].name);
        cJSON_AddItemToArray(mms, j);
    }
    for (size_t i = 0; i < res->ndirectives; i++) {
        cJSON *j = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "id", res->directives[i].id);
        cJSON_AddStringToObject(j, "name", res->directives[i].name);
        cJSON_AddStringToObject(j, "content", res->directives[i].content);
        cJSON_AddItemToArray(dirs, j);
    }
    return o;
}

static cJSON *eg__hs_reflect_trace(const eg_reflect_result_t *res, bool output)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *tc = cJSON_AddArrayToObject(o, "tool_calls");
    cJSON *lc = cJSON_AddArrayToObject(o, "llm_calls");

    for (size_t i = 0; i < res->ntool_calls; i++) {
        const eg_reflect_tool_call_t *t = &res->tool_calls[i];
        cJSON *j = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "tool", t->tool);
        cJSON_AddItemToObject(j, "input",
                              t->input ? cJSON_Duplicate(t->input, true) : cJSON_CreateObject());
        if (output && t->output)
            cJSON_AddItemToObject(j, "output", cJSON_Duplicate(t->output, true));
        cJSON_AddNumberToObject(j, "duration_ms", (double)t->duration_ms);
        cJSON_AddNumberToObject(j, "iteration", t->iteration);
        cJSON_AddItemToArray(tc, j);
    }
    for (size_t i = 0; i < res->nllm_calls; i++) {
        cJSON *j = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "scope", res->llm_calls[i].scope);
        cJSON_AddNumberToObject(j, "duration_ms", (double)res->llm_calls[i].duration_ms);
        cJSON_AddItemToArray(lc, j);
    }
    return o;
}

static void reflect_fail(eg_req_t *req, int err)
{
    if (err == EG_EUPTIMEOUT)
        eg_res_error_status(req, 504, err, "%s", TIMEOUT_DETAIL);
    else if (err == EG_EUPSTREAM || err == EG_ECONNECT || err == EG_EDNS || err == EG_ETLS ||
             err == EG_EAUTH || err == EG_EINVAL || err == EG_ECANCELED)
        eg_res_error_status(req, 502, err, "reflect failed: the language model call failed (%s)",
                            eg_strerror(err));
    else
        eg__hs_fail(req, err, "reflect failed");
}

static void on_reflected(void *udata, int err, const eg_reflect_result_t *res)
{
    reflect_ctx_t *c = udata;
    cJSON *j;

    if (err) {
        reflect_fail(c->req, err);
        return;
    }
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "text", res->text);
    if (c->facts)
        cJSON_AddItemToObject(j, "based_on", eg__hs_reflect_based_on(res));
    if (res->structured_output)
        cJSON_AddItemToObject(j, "structured_output",
                              cJSON_Duplicate(res->structured_output, true));
    cJSON_AddItemToObject(j, "usage", eg__hs_reflect_usage(&res->usage));
    if (c->tool_calls)
        cJSON_AddItemToObject(j, "trace", eg__hs_reflect_trace(res, c->tool_output));
    eg__hs_send(c->req, 200, j);
}

static void h_reflect(eg_req_t *req)
{
    const char *bank = eg__hs_bank_id(req);
    reflect_ctx_t *c;
    cJSON *body;
    int rc;

    if (bank == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    c = eg_arena_calloc(&req->arena, sizeof(*c));
    c->req = req;
    if (!parse(c, body))
        return;
    rc = eg_reflect(req->auth.workspace_id, bank, &c->r, on_reflected, c);
    if (rc)
        reflect_fail(req, rc);
}

/* ---- POST B/mental-models/{id}/dry-run-refresh --------------------------------------------- */

static const char *const outcomes[] = {"content_written", "content_unchanged",
                                       "refresh_failed_empty_candidate"};

static cJSON *strings(const char *const *s, size_t n)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(s[i]));
    return a;
}

/* Facts by fact type ({"world": 3, ...}), only the types that have some. */
static cJSON *type_counts(const size_t n[EG_FACT_NTYPES])
{
    cJSON *o = cJSON_CreateObject();

    for (int t = 0; t < EG_FACT_NTYPES; t++)
        if (n[t])
            cJSON_AddNumberToObject(o, eg_fact_type_name((eg_fact_type_t)t), (double)n[t]);
    return o;
}

static void on_dry_run(void *udata, int err, const eg_reflect_refresh_t *rf)
{
    eg_req_t *req = udata;
    const eg_reflect_result_t *res;
    cJSON *j, *o, *warnings, *trace, *tc, *lc;
    char *diff;

    if (err == EG_ENOTFOUND) {
        eg_res_error(req, err, "Mental model '%s' not found", eg_req_param(req, "mental_model_id"));
        return;
    }
    if (err) {
        reflect_fail(req, err);
        return;
    }
    res = rf->reflect;
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "mental_model_id", rf->mm->id);
    cJSON_AddStringToObject(j, "name", rf->mm->name);
    cJSON_AddStringToObject(j, "requested_mode", rf->requested_delta ? "delta" : "full");
    cJSON_AddStringToObject(j, "effective_mode", "full");
    if (rf->requested_delta)
        cJSON_AddStringToObject(j, "mode_fallback_reason",
                                rf->mm->content[0] ? "structured_doc_unreadable"
                                                   : "no_baseline_content");
    cJSON_AddStringToObject(j, "outcome", outcomes[rf->outcome]);
    cJSON_AddBoolToObject(j, "would_persist", rf->outcome == EG_REFLECT_REFRESH_WRITTEN);

    o = cJSON_AddObjectToObject(j, "scope");
    if (rf->scope.tags)
        cJSON_AddItemToObject(o, "tags", strings(rf->scope.tags, rf->scope.ntags));
    cJSON_AddStringToObject(o, "tags_match", eg_tags_match_name(rf->scope.tags_match));
    if (rf->scope.tag_groups)
        cJSON_AddItemToObject(o, "tag_groups", cJSON_Duplicate(rf->scope.tag_groups, true));
    if (rf->scope.fact_types)
        cJSON_AddItemToObject(o, "fact_types", cJSON_Duplicate(rf->scope.fact_types, true));
    cJSON_AddBoolToObject(o, "exclude_mental_models", rf->scope.exclude_mental_models);
    cJSON_AddItemToObject(o, "exclude_mental_model_ids",
                          strings(rf->scope.exclude_ids, rf->scope.nexclude_ids));

    o = cJSON_AddObjectToObject(j, "window");
    eg__hs_add_time_us(o, "created_before", eg_now_ms() * 1000);

    o = cJSON_AddObjectToObject(j, "facts");
    cJSON_AddItemToObject(o, "retrieved", type_counts(res->retrieved));
    cJSON_AddItemToObject(o, "used", type_counts(res->used));
    cJSON_AddItemToObject(j, "based_on", eg_reflect_based_on_by_type(res));
    cJSON_AddStringToObject(j, "current_content", rf->mm->content);
    cJSON_AddStringToObject(j, "candidate_content", rf->content);
    cJSON_AddStringToObject(j, "preview_content",
                            rf->outcome == EG_REFLECT_REFRESH_EMPTY ? rf->mm->content
                                                                    : rf->content);
    diff = eg_reflect_unified_diff(&req->arena, rf->mm->content,
                                   rf->outcome == EG_REFLECT_REFRESH_EMPTY ? rf->mm->content
                                                                           : rf->content);
    cJSON_AddStringToObject(j, "diff", diff);

    warnings = cJSON_CreateArray();
    if (rf->requested_delta)
        cJSON_AddItemToArray(warnings,
                             cJSON_CreateString("delta mode is not supported: the refresh "
                                                "regenerates the whole content"));
    if (!res->llm)
        cJSON_AddItemToArray(warnings,
                             cJSON_CreateString("no language model is configured for reflect: "
                                                "the content is an extractive list of memories"));
    if (rf->outcome == EG_REFLECT_REFRESH_EMPTY)
        cJSON_AddItemToArray(warnings, cJSON_CreateString("reflect produced an empty answer"));

    trace = cJSON_AddObjectToObject(j, "trace");
    cJSON_AddStringToObject(trace, "effective_mode", "full");
    cJSON_AddStringToObject(trace, "outcome", outcomes[rf->outcome]);
    tc = cJSON_AddArrayToObject(trace, "tool_calls");
    for (size_t i = 0; i < res->ntool_calls; i++) {
        const eg_reflect_tool_call_t *t = &res->tool_calls[i];
        cJSON *x = cJSON_CreateObject();

        cJSON_AddStringToObject(x, "tool", t->tool);
        if (t->reason)
            cJSON_AddStringToObject(x, "reason", t->reason);
        cJSON_AddItemToObject(x, "input",
                              t->input ? cJSON_Duplicate(t->input, true) : cJSON_CreateObject());
        if (t->output)
            cJSON_AddItemToObject(x, "output", cJSON_Duplicate(t->output, true));
        cJSON_AddNumberToObject(x, "result_count", (double)t->result_count);
        cJSON_AddNumberToObject(x, "duration_ms", (double)t->duration_ms);
        cJSON_AddNumberToObject(x, "iteration", t->iteration);
        cJSON_AddItemToArray(tc, x);
    }
    lc = cJSON_AddArrayToObject(trace, "llm_calls");
    for (size_t i = 0; i < res->nllm_calls; i++) {
        cJSON *x = cJSON_CreateObject();

        cJSON_AddStringToObject(x, "scope", res->llm_calls[i].scope);
        cJSON_AddNumberToObject(x, "duration_ms", (double)res->llm_calls[i].duration_ms);
        cJSON_AddItemToArray(lc, x);
    }
    cJSON_AddItemToObject(trace, "usage", eg__hs_reflect_usage(&res->usage));
    cJSON_AddNumberToObject(trace, "duration_ms", (double)rf->duration_ms);
    cJSON_AddItemToObject(trace, "warnings", cJSON_Duplicate(warnings, true));

    cJSON_AddItemToObject(j, "usage", eg__hs_reflect_usage(&res->usage));
    cJSON_AddNumberToObject(j, "duration_ms", (double)rf->duration_ms);
    cJSON_AddItemToObject(j, "warnings", warnings);
    eg__hs_send(req, 200, j);
}

static void h_dry_run(eg_req_t *req)
{
    const char *bank = eg__hs_bank_id(req);
    const char *id = eg_req_param(req, "mental_model_id");
    int rc;

    if (bank == NULL)
        return;
    if (!id || !eg_mm_id_valid(id, strlen(id))) {
        eg_res_error(req, EG_ENOTFOUND, "Mental model '%s' not found", id ? id : "");
        return;
    }
    rc = eg_reflect_mm_refresh(req->auth.workspace_id, bank, id, false, on_dry_run, req);
    if (rc)
        reflect_fail(req, rc);
}

int eg__hs_reflect_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"POST", B "/reflect", h_reflect},
        {"POST", B "/mental-models/{mental_model_id}/dry-run-refresh", h_dry_run},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
