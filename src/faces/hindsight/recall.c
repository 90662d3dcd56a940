/* Hindsight recall route: POST B/memories/recall. Thin: validate the RecallRequest the way
 * pydantic does, map it onto the core's eg_recall_req_t (engram/recall.h) with the bank's
 * retrieval switches, render RecallResponse (null keys dropped). */
#include <math.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/buf.h"
#include "engram/error.h"
#include "engram/recall.h"
#include "engram/text.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B                      "/v1/default/banks/{bank_id}"
#define TAG_GROUP_DEPTH        16 /* nesting of tag_groups accepted */
#define INCLUDE_TOKEN_MAX      1000000
#define INCLUDE_SOURCE_INT_MAX (INT64_C(1) << 53) /* exact in a double */

static const char *const budgets[] = {"low", "mid", "high", NULL};
static const char *const matches[] = {"any", "all", "any_strict", "all_strict", "exact", NULL};

typedef struct {
    eg_req_t *req;
    eg_recall_req_t r;
} recall_ctx_t;

/* ---- parsing ------------------------------------------------------------------------------- */

/* loc ["body", a, b] as an array (b may be NULL). */
static cJSON *loc2(const char *a, const char *b)
{
    cJSON *loc = cJSON_CreateArray();

    cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
    cJSON_AddItemToArray(loc, cJSON_CreateString(a));
    if (b)
        cJSON_AddItemToArray(loc, cJSON_CreateString(b));
    return loc;
}

/* An optional {max_tokens: int} include option at include.<name>: false when absent; null
 * sets *off. */
static void include_opt(const cJSON *inc, const char *name, bool *on, size_t *max_tokens,
                        cJSON *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(inc, name), *m;

    if (v == NULL)
        return;
    if (cJSON_IsNull(v)) {
        *on = false;
        return;
    }
    if (!cJSON_IsObject(v)) {
        eg__hs_verr_loc(errs, loc2("include", name), "model_attributes_type",
                        "Input should be a valid dictionary or object to extract fields from", v,
                        NULL);
        return;
    }
    *on = true;
    m = cJSON_GetObjectItemCaseSensitive(v, "max_tokens");
    if (m == NULL || cJSON_IsNull(m))
        return;
    if (!cJSON_IsNumber(m) || m->valuedouble != floor(m->valuedouble) || m->valuedouble < 0 ||
        m->valuedouble > INCLUDE_TOKEN_MAX) {
        cJSON *loc = loc2("include", name);

        cJSON_AddItemToArray(loc, cJSON_CreateString("max_tokens"));
        eg__hs_verr_loc(errs, loc, "int_type",
                        "Input should be a valid integer between 0 and 1000000", m, NULL);
        return;
    }
    *max_tokens = (size_t)m->valuedouble;
}

/* include.source_facts.<name>: SourceFactsIncludeOptions' plain ints (negative: unlimited), lax
 * as pydantic is ("12" and 12.0 are 12); null or another type is an int_type error. */
static void source_facts_int(const cJSON *sf, const char *name, int64_t *out, cJSON *errs)
{
    static const char *const why[] = {
        [EG_BANK_CFG_BAD_TYPE] = "int_type",
        [EG_BANK_CFG_BAD_PARSE] = "int_parsing",
        [EG_BANK_CFG_FRACTION] = "int_from_float",
    };
    static const char *const msg[] = {
        [EG_BANK_CFG_BAD_TYPE] = "Input should be a valid integer",
        [EG_BANK_CFG_BAD_PARSE] = "Input should be a valid integer, unable to parse string as an "
                                  "integer",
        [EG_BANK_CFG_FRACTION] = "Input should be a valid integer, got a number with a "
                                 "fractional part",
    };
    const eg_bank_cfg_key_t k = {.name = name,
                                 .type = EG_BANK_CFG_INT,
                                 .min = -INCLUDE_SOURCE_INT_MAX,
                                 .max = INCLUDE_SOURCE_INT_MAX};
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sf, name);
    eg_bank_cfg_why_t w = EG_BANK_CFG_BAD_TYPE;
    cJSON *norm = NULL, *loc;

    if (v == NULL)
        return;
    if (!cJSON_IsNull(v) && (w = eg_bank_cfg_coerce(&k, v, &norm)) == EG_BANK_CFG_OK && norm) {
        *out = (int64_t)norm->valuedouble;
        cJSON_Delete(norm);
        return;
    }
    cJSON_Delete(norm);
    loc = loc2("include", "source_facts");
    cJSON_AddItemToArray(loc, cJSON_CreateString(name));
    if (w != EG_BANK_CFG_BAD_PARSE && w != EG_BANK_CFG_FRACTION) /* or past any real budget */
        w = EG_BANK_CFG_BAD_TYPE;
    eg__hs_verr_loc(errs, loc, why[w], msg[w], v, NULL);
}

/* include.source_facts: absent or null is off, an object turns it on with its budgets. */
static void include_source_facts(const cJSON *inc, eg_recall_req_t *r, cJSON *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(inc, "source_facts");

    if (v == NULL || cJSON_IsNull(v))
        return;
    if (!cJSON_IsObject(v)) {
        eg__hs_verr_loc(errs, loc2("include", "source_facts"), "model_attributes_type",
                        "Input should be a valid dictionary or object to extract fields from", v,
                        NULL);
        return;
    }
    r->source_facts = true;
    source_facts_int(v, "max_tokens", &r->source_facts_max_tokens, errs);
    source_facts_int(v, "max_tokens_per_observation", &r->source_facts_max_tokens_per_observation,
                     errs);
}

/* The strings of a JSON array into the arena; false (and an error) when it is not a list of
 * strings. */
static bool string_list(eg_req_t *req, const cJSON *v, const char ***out, size_t *n)
{
    const cJSON *e;
    const char **s;

    if (!cJSON_IsArray(v))
        return false;
    s = eg_arena_alloc(&req->arena, ((size_t)cJSON_GetArraySize(v) + 1) * sizeof(*s));
    *n = 0;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e))
            return false;
        s[(*n)++] = e->valuestring;
    }
    *out = s;
    return true;
}

/* One tag group (leaf, and, or, not), recursively; false with *why on a malformed group. */
static bool tag_group(eg_req_t *req, const cJSON *v, int depth, eg_tag_group_t *g, const char **why)
{
    const cJSON *x;

    memset(g, 0, sizeof(*g));
    if (depth > TAG_GROUP_DEPTH) {
        *why = "tag_groups are nested too deeply";
        return false;
    }
    if (!cJSON_IsObject(v)) {
        *why = "each tag group must be an object: {tags, match}, {and: [...]}, {or: [...]} or "
               "{not: {...}}";
        return false;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(v, "tags")) != NULL) {
        const char **tags = NULL;
        size_t n = 0;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, "match");

        if (!string_list(req, x, &tags, &n)) {
            *why = "a tag group's tags must be a list of strings";
            return false;
        }
        g->kind = EG_TAG_GROUP_LEAF;
        g->tags = tags;
        g->ntags = n;
        g->match = EG_TAGS_ANY_STRICT;
        if (m && !cJSON_IsNull(m) &&
            (!cJSON_IsString(m) || eg_tags_match_parse(m->valuestring, &g->match))) {
            *why = "a tag group's match must be 'any', 'all', 'any_strict', 'all_strict' or "
                   "'exact'";
            return false;
        }
        return true;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(v, "not")) != NULL) {
        eg_tag_group_t *c = eg_arena_alloc(&req->arena, sizeof(*c));

        g->kind = EG_TAG_GROUP_NOT;
        g->children = c;
        g->nchildren = 1;
        return tag_group(req, x, depth + 1, c, why);
    }
    x = cJSON_GetObjectItemCaseSensitive(v, "and");
    g->kind = EG_TAG_GROUP_AND;
    if (x == NULL) {
        x = cJSON_GetObjectItemCaseSensitive(v, "or");
        g->kind = EG_TAG_GROUP_OR;
    }
    if (x == NULL || !cJSON_IsArray(x)) {
        *why = "each tag group must be {tags, match}, {and: [...]}, {or: [...]} or {not: {...}}";
        return false;
    }
    {
        size_t n = (size_t)cJSON_GetArraySize(x), i = 0;
        eg_tag_group_t *c = eg_arena_alloc(&req->arena, (n + 1) * sizeof(*c));
        const cJSON *e;

        cJSON_ArrayForEach(e, x)
        {
            if (!tag_group(req, e, depth + 1, &c[i++], why))
                return false;
        }
        g->children = c;
        g->nchildren = n;
    }
    return true;
}

int eg__hs_tag_groups(eg_req_t *req, const cJSON *body, const eg_tag_group_t **out, size_t *n,
                      cJSON *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "tag_groups"), *e;
    const char *why = NULL;
    eg_tag_group_t *g;
    size_t ng, i = 0;

    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsArray(v)) {
        eg__hs_verr(errs, "body", "tag_groups", NULL, "list_type", "Input should be a valid list",
                    v, NULL);
        return EG_EINVAL;
    }
    ng = (size_t)cJSON_GetArraySize(v);
    g = eg_arena_alloc(&req->arena, (ng + 1) * sizeof(*g));
    cJSON_ArrayForEach(e, v)
    {
        if (!tag_group(req, e, 1, &g[i++], &why)) {
            eg__hs_verr(errs, "body", "tag_groups", NULL, "value_error", why, e, NULL);
            return EG_EINVAL;
        }
    }
    *out = g;
    *n = ng;
    return 0;
}

/* min_scores.<name>: a number or null. */
static void min_score(const cJSON *ms, const char *name, float *out, cJSON *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ms, name);

    if (v == NULL || cJSON_IsNull(v))
        return;
    if (!cJSON_IsNumber(v)) {
        eg__hs_verr_loc(errs, loc2("min_scores", name), "float_type",
                        "Input should be a valid number", v, NULL);
        return;
    }
    *out = (float)v->valuedouble;
}

/* An ISO date-time string at loc; false (with an error) when it is not one. */
static bool iso_field(const cJSON *v, cJSON *loc, int64_t *out, cJSON *errs)
{
    if (cJSON_IsString(v) && eg_text_parse_iso(v->valuestring, strlen(v->valuestring), out) == 0) {
        cJSON_Delete(loc);
        return true;
    }
    eg__hs_verr_loc(errs, loc, cJSON_IsString(v) ? "datetime_from_date_parsing" : "datetime_type",
                    cJSON_IsString(v) ? "Input should be a valid datetime or date"
                                      : "Input should be a valid datetime",
                    v, NULL);
    return false;
}

/* Parse the whole body into c->r; false after answering 422/400. */
static bool parse(recall_ctx_t *c, const cJSON *body)
{
    eg_req_t *req = c->req;
    eg_recall_req_t *r = &c->r;
    cJSON *errs = cJSON_CreateArray();
    const cJSON *v;
    const char *s = NULL, *why = NULL;
    int64_t n;

    eg_recall_req_init(r);
    v = cJSON_GetObjectItemCaseSensitive(body, "query");
    if (v == NULL)
        eg__hs_verr_missing(errs, "query", NULL, body);
    else if (!cJSON_IsString(v))
        eg__hs_verr_type(errs, "query", NULL, "string", v);
    else {
        r->query = v->valuestring;
        r->query_len = strlen(v->valuestring);
    }

    v = cJSON_GetObjectItemCaseSensitive(body, "types");
    if (v != NULL && !cJSON_IsNull(v)) {
        const char **types = NULL;
        size_t nt = 0;

        if (!string_list(req, v, &types, &nt)) {
            eg__hs_verr(errs, "body", "types", NULL, "list_type",
                        "Input should be a valid list of strings", v, NULL);
        } else {
            r->types = 0;
            for (size_t i = 0; i < nt; i++) {
                if (eg_recall_type_add(types[i], &r->types)) {
                    cJSON_Delete(errs);
                    eg_res_error(req, EG_EINVAL,
                                 "Invalid fact type '%s': use world, experience or observation",
                                 types[i]);
                    return false;
                }
            }
        }
    }
    if (eg__hs_opt_string(body, "budget", NULL, &s, errs) && eg_recall_budget_parse(s, &r->budget))
        eg__hs_verr_literal(errs, "body", "budget", NULL, budgets,
                            cJSON_GetObjectItemCaseSensitive(body, "budget"));
    if (eg__hs_opt_int(body, "max_tokens", NULL, 0, 100000000, &n, errs))
        r->max_tokens = (size_t)n;
    eg__hs_opt_bool(body, "trace", NULL, &r->trace, errs);
    eg__hs_opt_bool(body, "prefer_observations", NULL, &r->prefer_observations, errs);
    v = cJSON_GetObjectItemCaseSensitive(body, "query_timestamp");
    if (v != NULL && !cJSON_IsNull(v))
        iso_field(v, loc2("query_timestamp", NULL), &r->query_timestamp, errs);

    v = cJSON_GetObjectItemCaseSensitive(body, "include");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) {
            eg__hs_verr_type(errs, "include", NULL, "model", v);
        } else {
            include_opt(v, "entities", &r->entities, &r->entities_max_tokens, errs);
            include_opt(v, "chunks", &r->chunks, &r->chunks_max_tokens, errs);
            include_source_facts(v, r, errs);
        }
    }

    v = cJSON_GetObjectItemCaseSensitive(body, "tags");
    if (v != NULL && !cJSON_IsNull(v)) {
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

    v = cJSON_GetObjectItemCaseSensitive(body, "tag_groups");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsArray(v)) {
            eg__hs_verr(errs, "body", "tag_groups", NULL, "list_type",
                        "Input should be a valid list", v, NULL);
        } else {
            size_t ng = (size_t)cJSON_GetArraySize(v), i = 0;
            eg_tag_group_t *g = eg_arena_alloc(&req->arena, (ng + 1) * sizeof(*g));
            const cJSON *e;

            cJSON_ArrayForEach(e, v)
            {
                if (!tag_group(req, e, 1, &g[i++], &why)) {
                    eg__hs_verr(errs, "body", "tag_groups", NULL, "value_error", why, e, NULL);
                    break;
                }
            }
            r->tag_groups = g;
            r->ntag_groups = ng;
        }
    }

    v = cJSON_GetObjectItemCaseSensitive(body, "min_scores");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) {
            eg__hs_verr_type(errs, "min_scores", NULL, "model", v);
        } else {
            min_score(v, "semantic", &r->min_semantic, errs);
            min_score(v, "keyword", &r->min_keyword, errs);
            min_score(v, "reranker", &r->min_reranker, errs);
            min_score(v, "final", &r->min_final, errs);
        }
    }

    v = cJSON_GetObjectItemCaseSensitive(body, "temporal_window");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) {
            eg__hs_verr_type(errs, "temporal_window", NULL, "model", v);
        } else {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(v, "start");
            const cJSON *en = cJSON_GetObjectItemCaseSensitive(v, "end");
            bool ok = true;

            if (st == NULL)
                eg__hs_verr_missing(errs, "temporal_window", "start", v), ok = false;
            else
                ok = iso_field(st, loc2("temporal_window", "start"), &r->window_start, errs) && ok;
            if (en == NULL)
                eg__hs_verr_missing(errs, "temporal_window", "end", v), ok = false;
            else
                ok = iso_field(en, loc2("temporal_window", "end"), &r->window_end, errs) && ok;
            r->has_window = ok;
        }
    }

    if (cJSON_GetArraySize(errs) > 0) {
        eg__hs_send_422(req, errs);
        return false;
    }
    cJSON_Delete(errs);
    if (eg_recall_req_check(r, &why)) {
        if (r->query_len &&
            eg_text_estimate_tokens(r->query, r->query_len) > EG_RECALL_QUERY_TOKENS_MAX)
            eg_res_error(req, EG_EINVAL,
                         "Query too long: %zu tokens exceeds maximum of %d. Please shorten your "
                         "query.",
                         eg_text_estimate_tokens(r->query, r->query_len),
                         EG_RECALL_QUERY_TOKENS_MAX);
        else
            eg_res_error(req, EG_EINVAL, "%s", why ? why : "invalid recall request");
        return false;
    }
    return true;
}

/* ---- rendering ----------------------------------------------------------------------------- */

static void add_score(cJSON *o, const char *name, float v)
{
    if (!isnan(v))
        cJSON_AddNumberToObject(o, name, eg__hs_score(v));
}

/* ---- the response, written straight into a buffer (the eg__hs_w_* writers, jsonw.c) ------- */

/* A RecallResult. A source fact (source true) is the bare record, as Hindsight gives it: no
 * entities, no scores. */
static void w_item(eg_buf_t *b, const eg_recall_item_t *it, bool source)
{
    const eg_mem_unit_t *u = it->unit;

    eg_buf_append(b, "{\"id\":", 6);
    eg__hs_w_jstr(b, u->id);
    eg__hs_w_str(b, "text", u->text);
    eg__hs_w_str(b, "type", eg_fact_type_name(u->type));
    if (!source)
        eg__hs_w_strings(b, "entities", it->entity_names, it->nentity_names);
    if (u->context && u->context[0])
        eg__hs_w_str(b, "context", u->context);
    eg__hs_w_time(b, "occurred_start", u->occurred_start);
    eg__hs_w_time(b, "occurred_end", u->occurred_end);
    eg__hs_w_time(b, "mentioned_at", u->mentioned_at);
    if (u->document_id)
        eg__hs_w_str(b, "document_id", u->document_id);
    eg__hs_w_json(b, "metadata", u->metadata);
    if (u->chunk_id)
        eg__hs_w_str(b, "chunk_id", u->chunk_id);
    eg__hs_w_strings(b, "tags", u->tags, u->ntags);
    if (u->nsources)
        eg__hs_w_strings(b, "source_fact_ids", u->source_ids, u->nsources);
    if (source) {
        eg_buf_append(b, "}", 1);
        return;
    }
    eg_buf_puts(b, ",\"scores\":{\"final\":");
    eg__hs_w_number(b, it->final);
    eg__hs_w_score(b, "semantic", it->semantic);
    eg__hs_w_score(b, "keyword", it->keyword);
    eg_buf_append(b, "}}", 2);
}

/* A set of strings in the arena (the entity names already written). */
typedef struct {
    const char **keys;
    size_t mask;
} nameset_t;

static bool nameset_add(nameset_t *s, const char *name)
{
    size_t h = 1469598103934665603u;

    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
        if (!s->keys[i]) {
            s->keys[i] = name;
            return true;
        }
        if (!strcmp(s->keys[i], name))
            return false;
    }
}

static cJSON *trace_json(const recall_ctx_t *c, const eg_recall_result_t *res)
{
    const eg_recall_stats_t *st = res->stats;
    cJSON *t = cJSON_CreateObject(), *arms, *cands;

    cJSON_AddStringToObject(t, "query", c->r.query);
    cJSON_AddStringToObject(t, "budget", budgets[c->r.budget]);
    cJSON_AddNumberToObject(t, "max_tokens", (double)c->r.max_tokens);
    if (st == NULL)
        return t;
    arms = cJSON_AddObjectToObject(t, "retrieval");
    for (int a = 0; a < EG_RECALL_NARMS; a++) {
        cJSON *o = cJSON_AddObjectToObject(arms, eg_recall_arm_name((eg_recall_arm_t)a));

        cJSON_AddNumberToObject(o, "results", (double)st->arm_hits[a]);
        cJSON_AddNumberToObject(o, "duration_ms", st->arm_ms[a]);
    }
    if (st->has_window) {
        cJSON *w = cJSON_AddObjectToObject(t, "temporal_window");

        eg__hs_add_time_us(w, "start", st->window_start);
        eg__hs_add_time_us(w, "end", st->window_end);
    }
    cJSON_AddNumberToObject(t, "allowed_units", (double)st->allowed);
    cJSON_AddNumberToObject(t, "fused_candidates", (double)st->fused);
    cJSON_AddNumberToObject(t, "after_min_scores", (double)st->after_floor);
    cJSON_AddNumberToObject(t, "kept", (double)st->kept);
    cJSON_AddNumberToObject(t, "tokens", (double)st->tokens);
    cJSON_AddNumberToObject(t, "filter_ms", st->filter_ms);
    cJSON_AddNumberToObject(t, "fuse_ms", st->fuse_ms);
    cJSON_AddNumberToObject(t, "score_ms", st->score_ms);
    cJSON_AddNumberToObject(t, "rank_ms", st->total_ms);
    cJSON_AddNumberToObject(t, "fetch_ms", res->fetch_ms);
    cJSON_AddNumberToObject(t, "total_ms", st->total_ms + res->fetch_ms);
    cands = cJSON_AddArrayToObject(t, "candidates");
    for (size_t i = 0; i < res->ncandidates; i++) {
        const eg_recall_trace_cand_t *tc = &res->candidates[i];
        cJSON *o = cJSON_CreateObject(), *ranks = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "id", tc->id);
        for (int a = 0; a < EG_RECALL_NARMS; a++) {
            if (tc->c.rank[a])
                cJSON_AddNumberToObject(ranks, eg_recall_arm_name((eg_recall_arm_t)a),
                                        (double)tc->c.rank[a]);
        }
        cJSON_AddItemToObject(o, "ranks", ranks);
        cJSON_AddNumberToObject(o, "rrf", eg__hs_score(tc->c.rrf));
        cJSON_AddNumberToObject(o, "rank_score", eg__hs_score(tc->c.rank_score));
        cJSON_AddNumberToObject(o, "recency", eg__hs_score(tc->c.recency));
        add_score(o, "temporal", tc->c.proximity);
        cJSON_AddNumberToObject(o, "final", eg__hs_score(tc->c.final));
        cJSON_AddItemToArray(cands, o);
    }
    return t;
}

static void on_recalled(void *udata, int err, const eg_recall_result_t *res)
{
    recall_ctx_t *c = udata;
    eg_req_t *req = c->req;
    eg_buf_t b = EG_BUF_INIT;

    if (err) {
        eg__hs_fail(req, err, "recall failed");
        return;
    }
    eg_buf_reserve(&b, 512 + res->n * 768 + res->nentities * 128);
    eg_buf_append(&b, "{\"results\":[", 12);
    for (size_t i = 0; i < res->n; i++) {
        if (i)
            eg_buf_append(&b, ",", 1);
        w_item(&b, &res->items[i], false);
    }
    eg_buf_append(&b, "]", 1);
    if (c->r.trace) {
        cJSON *t = trace_json(c, res);
        char *text;

        eg__hs_strip_nulls(t, NULL);
        text = cJSON_PrintUnformatted(t);
        eg__hs_w_key(&b, "trace");
        eg_buf_puts(&b, text ? text : "{}");
        cJSON_free(text);
        cJSON_Delete(t);
    }
    if (c->r.entities) {
        /* Keyed by name, as Hindsight does; a second entity of the same name keeps the first. */
        nameset_t seen = {NULL, 0};
        size_t cap = 16;
        bool first = true;

        while (cap < 2 * res->nentities)
            cap *= 2;
        seen.keys = eg_arena_calloc(&req->arena, cap * sizeof(*seen.keys));
        seen.mask = cap - 1;
        eg__hs_w_key(&b, "entities");
        eg_buf_append(&b, "{", 1);
        for (size_t i = 0; i < res->nentities; i++) {
            const eg_recall_entity_t *e = &res->entities[i];

            if (!nameset_add(&seen, e->canonical_name))
                continue;
            if (!first)
                eg_buf_append(&b, ",", 1);
            first = false;
            eg__hs_w_jstr(&b, e->canonical_name);
            eg_buf_append(&b, ":{\"entity_id\":", 14);
            eg__hs_w_jstr(&b, e->id);
            eg__hs_w_str(&b, "canonical_name", e->canonical_name);
            eg__hs_w_key(&b, "observations");
            eg_buf_append(&b, "[", 1);
            for (size_t k = 0; k < e->nobservations; k++) {
                eg_buf_append(&b, k ? ",{\"text\":" : "{\"text\":", k ? 9 : 8);
                eg__hs_w_jstr(&b, e->observations[k]->text);
                eg__hs_w_time(&b, "mentioned_at", e->observations[k]->mentioned_at);
                eg_buf_append(&b, "}", 1);
            }
            eg_buf_append(&b, "]}", 2);
        }
        eg_buf_append(&b, "}", 1);
    }
    if (c->r.chunks) {
        eg__hs_w_key(&b, "chunks");
        eg_buf_append(&b, "{", 1);
        for (size_t i = 0; i < res->nchunks; i++) {
            const eg_recall_chunk_t *ch = &res->chunks[i];

            if (i)
                eg_buf_append(&b, ",", 1);
            eg__hs_w_jstr(&b, ch->id);
            eg_buf_append(&b, ":{\"id\":", 7);
            eg__hs_w_jstr(&b, ch->id);
            eg__hs_w_str(&b, "text", ch->text);
            eg_buf_printf(&b, ",\"chunk_index\":%zu,\"truncated\":%s}", ch->chunk_index,
                          ch->truncated ? "true" : "false");
        }
        eg_buf_append(&b, "}", 1);
    }
    if (c->r.source_facts && res->source_facts) {
        /* Keyed by fact id; every observation result lists all its sources in source_fact_ids,
         * those the budget left out have no entry here (source_facts_truncated). Without any
         * source to show (no observation result names one) Hindsight's map is null: left out. */
        eg__hs_w_key(&b, "source_facts");
        eg_buf_append(&b, "{", 1);
        for (size_t i = 0; i < res->nsource_facts; i++) {
            const eg_recall_item_t it = {.unit = res->source_facts[i]};

            if (i)
                eg_buf_append(&b, ",", 1);
            eg__hs_w_jstr(&b, it.unit->id);
            eg_buf_append(&b, ":", 1);
            w_item(&b, &it, true);
        }
        eg_buf_append(&b, "}", 1);
    }
    if (c->r.source_facts)
        eg_buf_puts(&b, res->source_facts_truncated ? ",\"source_facts_truncated\":true"
                                                    : ",\"source_facts_truncated\":false");
    eg_buf_append(&b, "}", 1);
    eg_res_send(req, 200, "application/json", b.data, b.len);
    eg_buf_free(&b);
}

static void on_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    recall_ctx_t *c = udata;
    int rc;

    (void)created;
    if (err && err != EG_ENOTFOUND) {
        eg__hs_fail(c->req, err, "recall failed");
        return;
    }
    if (err == 0) {
        cJSON *cfg = eg_bank_config_resolved(bank);

        c->r.graph =
            !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "enable_graph_retrieval"));
        c->r.temporal =
            !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "enable_temporal_retrieval"));
        cJSON_Delete(cfg);
    }
    /* A bank that does not exist recalls nothing, without error (eg_recall answers empty). */
    rc = eg_recall(c->req->auth.workspace_id, eg_req_param(c->req, "bank_id"), &c->r, on_recalled,
                   c);
    if (rc == EG_EINVAL)
        eg_res_error(c->req, rc, "%s", "invalid recall request");
    else if (rc)
        eg__hs_fail(c->req, rc, "recall failed");
}

static void h_recall(eg_req_t *req)
{
    const char *bank = eg__hs_bank_id(req);
    recall_ctx_t *c;
    cJSON *body;
    int rc;

    if (bank == NULL || (body = eg__hs_body(req, true)) == NULL)
        return;
    c = eg_arena_alloc(&req->arena, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->req = req;
    if (!parse(c, body))
        return;
    rc = eg_bank_get(req->auth.workspace_id, bank, on_bank, c);
    if (rc)
        eg__hs_fail(req, rc, "recall failed");
}

int eg__hs_recall_mount(eg_router_t *r)
{
    return eg_router_add(r, &eg__hs_face, "POST", B "/memories/recall", h_recall, EG_ROUTE_AUTH);
}
