/* A mental model's refresh: reflect over its source query in its scope, then (unless a dry run)
 * store the answer with eg_mm_save_refresh (engram/mental_models.h).
 *
 * Scope, as Hindsight resolves it: the model's tags filter memories with tags_match all_strict
 * (trigger.tags_match overrides), trigger.tag_groups replace the flat tags, trigger.fact_types
 * restrict retrieval, trigger.exclude_mental_models / exclude_mental_model_ids keep other models
 * out, and the model itself is always excluded. The answer's length is the model's max_tokens.
 * Only full mode exists here: a model asking for delta is refreshed in full (and says why). */
#include <stdlib.h>
#include <string.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/mental_models.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/reflect_int.h"

#define GROUP_DEPTH 16

typedef struct {
    eg_arena_t arena;
    char *ws, *bank;
    bool save;
    eg_reflect_refresh_fn cb;
    void *udata;
    eg_mm_t mm; /* copied */
    eg_reflect_req_t req;
    eg_reflect_refresh_t out;
    cJSON *reflect_response;
    uint64_t t0;
} refresh_t;

static void refresh_free(refresh_t *r)
{
    eg_arena_destroy(&r->arena);
    free(r);
}

static void finish(refresh_t *r, int err)
{
    r->out.duration_ms = uv_hrtime() / 1000000 - r->t0;
    r->cb(r->udata, err, err ? NULL : &r->out);
    refresh_free(r);
}

/* ---- copying the model and resolving its scope ---------------------------------------------- */

static const char **copy_strs(eg_arena_t *a, const char *const *s, size_t n)
{
    const char **out = eg_arena_alloc(a, (n + 1) * sizeof(*out));

    for (size_t i = 0; i < n; i++)
        out[i] = eg_arena_strdup(a, s[i]);
    return out;
}

static const char **json_strs(eg_arena_t *a, const cJSON *v, size_t *n)
{
    const cJSON *e;
    const char **out = eg_arena_alloc(a, ((size_t)cJSON_GetArraySize(v) + 1) * sizeof(*out));

    *n = 0;
    cJSON_ArrayForEach(e, v)
    {
        if (cJSON_IsString(e))
            out[(*n)++] = eg_arena_strdup(a, e->valuestring);
    }
    return out;
}

/* One tag group of a trigger ({tags, match} | {and} | {or} | {not}); false when malformed. */
static bool group(eg_arena_t *a, const cJSON *v, int depth, eg_tag_group_t *g)
{
    const cJSON *x;

    memset(g, 0, sizeof(*g));
    if (depth > GROUP_DEPTH || !cJSON_IsObject(v))
        return false;
    if ((x = cJSON_GetObjectItemCaseSensitive(v, "tags")) != NULL) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, "match");

        g->kind = EG_TAG_GROUP_LEAF;
        g->tags = json_strs(a, x, &g->ntags);
        g->match = EG_TAGS_ANY_STRICT;
        return !cJSON_IsString(m) || eg_tags_match_parse(m->valuestring, &g->match) == 0;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(v, "not")) != NULL) {
        eg_tag_group_t *c = eg_arena_alloc(a, sizeof(*c));

        g->kind = EG_TAG_GROUP_NOT;
        g->children = c;
        g->nchildren = 1;
        return group(a, x, depth + 1, c);
    }
    g->kind = EG_TAG_GROUP_AND;
    if ((x = cJSON_GetObjectItemCaseSensitive(v, "and")) == NULL) {
        x = cJSON_GetObjectItemCaseSensitive(v, "or");
        g->kind = EG_TAG_GROUP_OR;
    }
    if (!cJSON_IsArray(x))
        return false;
    {
        size_t n = (size_t)cJSON_GetArraySize(x), i = 0;
        eg_tag_group_t *c = eg_arena_alloc(a, (n + 1) * sizeof(*c));
        const cJSON *e;

        cJSON_ArrayForEach(e, x)
        {
            if (!group(a, e, depth + 1, &c[i++]))
                return false;
        }
        g->children = c;
        g->nchildren = n;
    }
    return true;
}

static void resolve_scope(refresh_t *r)
{
    eg_reflect_req_t *q = &r->req;
    eg_reflect_refresh_scope_t *sc = &r->out.scope;
    const cJSON *t = r->mm.trigger, *v;
    const char **ex;
    size_t nex = 0;

    eg_reflect_req_init(q);
    q->query = r->mm.source_query;
    q->max_tokens = (size_t)(r->mm.max_tokens > 0 ? r->mm.max_tokens : EG_MM_MAX_TOKENS_DEF);
    q->tags = r->mm.tags;
    q->ntags = r->mm.ntags;
    q->tags_match = r->mm.ntags ? EG_TAGS_ALL_STRICT : EG_TAGS_ANY;
    v = cJSON_GetObjectItemCaseSensitive(t, "tags_match");
    if (cJSON_IsString(v))
        eg_tags_match_parse(v->valuestring, &q->tags_match);
    v = cJSON_GetObjectItemCaseSensitive(t, "tag_groups");
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) {
        size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
        eg_tag_group_t *g = eg_arena_alloc(&r->arena, (n + 1) * sizeof(*g));
        const cJSON *e;
        bool ok = true;

        cJSON_ArrayForEach(e, v)
        {
            ok = ok && group(&r->arena, e, 1, &g[i++]);
        }
        if (ok) {
            /* Groups replace the flat tags. */
            q->tag_groups = g;
            q->ntag_groups = n;
            q->tags = NULL;
            q->ntags = 0;
            sc->tag_groups = v;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(t, "fact_types");
    if (cJSON_IsArray(v)) {
        const cJSON *e;

        cJSON_ArrayForEach(e, v)
        {
            eg_fact_type_t ft;

            if (cJSON_IsString(e) && eg_fact_type_parse(e->valuestring, &ft) == 0)
                q->types |= 1u << ft;
        }
        sc->fact_types = v;
    }
    q->exclude_mental_models =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "exclude_mental_models"));
    v = cJSON_GetObjectItemCaseSensitive(t, "exclude_mental_model_ids");
    ex = eg_arena_alloc(&r->arena, ((size_t)cJSON_GetArraySize(v) + 2) * sizeof(*ex));
    ex[nex++] = r->mm.id; /* never its own source */
    {
        const cJSON *e;

        cJSON_ArrayForEach(e, v)
        {
            if (cJSON_IsString(e) && strcmp(e->valuestring, r->mm.id))
                ex[nex++] = eg_arena_strdup(&r->arena, e->valuestring);
        }
    }
    q->exclude_mm_ids = ex;
    q->nexclude_mm_ids = nex;
    v = cJSON_GetObjectItemCaseSensitive(t, "response_schema");
    if (cJSON_IsObject(v)) {
        char *txt = cJSON_PrintUnformatted(v);

        q->response_schema = eg_arena_strdup(&r->arena, txt);
        cJSON_free(txt);
    }
    sc->tags = q->tags;
    sc->ntags = q->ntags;
    sc->tags_match = q->tags_match;
    sc->exclude_mental_models = q->exclude_mental_models;
    sc->exclude_ids = ex;
    sc->nexclude_ids = nex;

    v = cJSON_GetObjectItemCaseSensitive(t, "mode");
    r->out.requested_delta = cJSON_IsString(v) && !strcmp(v->valuestring, "delta");
}

/* ---- what a refresh stores ------------------------------------------------------------------ */

cJSON *eg_reflect_based_on_by_type(const eg_reflect_result_t *res)
{
    cJSON *o = cJSON_CreateObject();

    for (size_t i = 0; i < res->nfacts; i++) {
        const eg_reflect_fact_t *f = &res->facts[i];
        const char *type = eg_fact_type_name(f->type);
        cJSON *list = cJSON_GetObjectItemCaseSensitive(o, type);
        cJSON *j = eg__reflect_fact_json(f);

        if (!list)
            list = cJSON_AddArrayToObject(o, type);
        cJSON_DeleteItemFromObjectCaseSensitive(j, "mentioned_at");
        cJSON_AddItemToArray(list, j);
    }
    if (res->nmental_models) {
        cJSON *list = cJSON_AddArrayToObject(o, "mental_models");

        for (size_t i = 0; i < res->nmental_models; i++) {
            cJSON *j = cJSON_CreateObject();

            cJSON_AddStringToObject(j, "id", res->mental_models[i].id);
            cJSON_AddStringToObject(j, "text", res->mental_models[i].content);
            cJSON_AddStringToObject(j, "context", res->mental_models[i].name);
            cJSON_AddItemToArray(list, j);
        }
    }
    if (res->ndirectives) {
        cJSON *list = cJSON_AddArrayToObject(o, "directives");

        for (size_t i = 0; i < res->ndirectives; i++) {
            cJSON *j = cJSON_CreateObject();

            cJSON_AddStringToObject(j, "id", res->directives[i].id);
            cJSON_AddStringToObject(j, "name", res->directives[i].name);
            cJSON_AddStringToObject(j, "content", res->directives[i].content);
            cJSON_AddItemToArray(list, j);
        }
    }
    return o;
}

static void on_saved(void *udata, int err, const eg_mm_t *m)
{
    refresh_t *r = udata;

    (void)m;
    r->out.saved = err == 0;
    finish(r, err);
}

static void on_reflected(void *udata, int err, const eg_reflect_result_t *res)
{
    refresh_t *r = udata;
    char *txt;

    if (err) {
        finish(r, err);
        return;
    }
    r->out.reflect = res;
    r->out.content = res->text;
    if (!res->text[0])
        r->out.outcome = EG_REFLECT_REFRESH_EMPTY;
    else if (!strcmp(res->text, r->mm.content))
        r->out.outcome = EG_REFLECT_REFRESH_UNCHANGED;
    else
        r->out.outcome = EG_REFLECT_REFRESH_WRITTEN;
    r->reflect_response = cJSON_CreateObject();
    eg_arena_defer(&r->arena, (void (*)(void *))cJSON_Delete, r->reflect_response);
    cJSON_AddStringToObject(r->reflect_response, "text", res->text);
    cJSON_AddItemToObject(r->reflect_response, "based_on", eg_reflect_based_on_by_type(res));
    if (res->structured_output)
        cJSON_AddItemToObject(r->reflect_response, "structured_output",
                              cJSON_Duplicate(res->structured_output, true));
    txt = cJSON_PrintUnformatted(r->reflect_response);
    r->out.reflect_response = eg_arena_strdup(&r->arena, txt ? txt : "{}");
    cJSON_free(txt);
    /* The result's strings live in reflect's run, which ends when this callback returns: a save
     * (asynchronous) keeps copies. */
    if (!r->save || r->out.outcome == EG_REFLECT_REFRESH_EMPTY) {
        r->cb(r->udata, 0, &r->out);
        refresh_free(r);
        return;
    }
    r->out.reflect = NULL;
    r->out.content = eg_arena_strdup(&r->arena, res->text);
    if (eg_mm_save_refresh(r->ws, r->bank, r->mm.id, r->out.content, r->out.reflect_response,
                           on_saved, r) != 0)
        finish(r, EG_EUNAVAIL);
}

static void on_mm(void *udata, int err, const eg_mm_t *m)
{
    refresh_t *r = udata;
    eg_arena_t *a = &r->arena;
    int rc;

    if (err) {
        finish(r, err);
        return;
    }
    r->mm = *m;
    r->mm.id = eg_arena_strdup(a, m->id);
    r->mm.name = eg_arena_strdup(a, m->name);
    r->mm.source_query = eg_arena_strdup(a, m->source_query);
    r->mm.content = eg_arena_strdup(a, m->content ? m->content : "");
    r->mm.tags = copy_strs(a, m->tags, m->ntags);
    r->mm.trigger = m->trigger ? cJSON_Duplicate(m->trigger, true) : cJSON_CreateObject();
    eg_arena_defer(a, (void (*)(void *))cJSON_Delete, (void *)r->mm.trigger);
    r->mm.reflect_response = NULL;
    r->out.mm = &r->mm;
    resolve_scope(r);
    rc = eg_reflect(r->ws, r->bank, &r->req, on_reflected, r);
    if (rc)
        finish(r, rc);
}

int eg_reflect_mm_refresh(const char *ws_id, const char *bank_id, const char *mm_id, bool save,
                          eg_reflect_refresh_fn cb, void *udata)
{
    refresh_t *r;
    int rc;

    if (!ws_id || !bank_id || !mm_id || !cb)
        return EG_EINVAL;
    r = eg_xcalloc(1, sizeof(*r));
    eg_arena_init(&r->arena);
    r->ws = eg_arena_strdup(&r->arena, ws_id);
    r->bank = eg_arena_strdup(&r->arena, bank_id);
    r->save = save;
    r->cb = cb;
    r->udata = udata;
    r->t0 = uv_hrtime() / 1000000;
    rc = eg_mm_get(ws_id, bank_id, mm_id, on_mm, r);
    if (rc)
        refresh_free(r);
    return rc;
}

/* ---- the unified diff of a dry run ---------------------------------------------------------- */

typedef struct {
    const char **l;
    size_t *len, n;
} lines_t;

static void split_lines(eg_arena_t *a, const char *s, lines_t *out)
{
    size_t n = 1;

    for (const char *p = s; *p; p++)
        n += *p == '\n';
    out->l = eg_arena_alloc(a, n * sizeof(*out->l));
    out->len = eg_arena_alloc(a, n * sizeof(*out->len));
    out->n = 0;
    if (!*s)
        return;
    while (*s) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);

        out->l[out->n] = s;
        out->len[out->n++] = len;
        s += len + (e ? 1 : 0);
    }
}

static bool line_eq(const lines_t *a, size_t i, const lines_t *b, size_t j)
{
    return a->len[i] == b->len[j] && !memcmp(a->l[i], b->l[j], a->len[i]);
}

char *eg_reflect_unified_diff(eg_arena_t *a, const char *from, const char *to)
{
    lines_t x, y;
    eg_buf_t b = EG_BUF_INIT;
    uint32_t *lcs = NULL;
    size_t i = 0, j = 0;
    char *out;

    if (!strcmp(from, to))
        return eg_arena_strdup(a, "");
    split_lines(a, from, &x);
    split_lines(a, to, &y);
    /* LCS table over lines; past ~16M cells every old line is removed and every new one added. */
    if ((x.n + 1) * (y.n + 1) <= 16u * 1024 * 1024) {
        lcs = calloc((x.n + 1) * (y.n + 1), sizeof(*lcs));
        for (size_t p = x.n; p-- > 0;)
            for (size_t q = y.n; q-- > 0;)
                lcs[p * (y.n + 1) + q] =
                    line_eq(&x, p, &y, q)
                        ? lcs[(p + 1) * (y.n + 1) + q + 1] + 1
                        : (lcs[(p + 1) * (y.n + 1) + q] > lcs[p * (y.n + 1) + q + 1]
                               ? lcs[(p + 1) * (y.n + 1) + q]
                               : lcs[p * (y.n + 1) + q + 1]);
    }
    eg_buf_printf(&b, "--- current\n+++ preview\n@@ -%zu,%zu +%zu,%zu @@\n", x.n ? (size_t)1 : 0,
                  x.n, y.n ? (size_t)1 : 0, y.n);
    while (i < x.n || j < y.n) {
        if (lcs && i < x.n && j < y.n && line_eq(&x, i, &y, j)) {
            eg_buf_printf(&b, " %.*s\n", (int)x.len[i], x.l[i]);
            i++, j++;
        } else if (i < x.n && (j >= y.n || !lcs ||
                               lcs[(i + 1) * (y.n + 1) + j] >= lcs[i * (y.n + 1) + j + 1])) {
            eg_buf_printf(&b, "-%.*s\n", (int)x.len[i], x.l[i]);
            i++;
        } else {
            eg_buf_printf(&b, "+%.*s\n", (int)y.len[j], y.l[j]);
            j++;
        }
    }
    free(lcs);
    out = eg_arena_strndup(a, b.data, b.len);
    eg_buf_free(&b);
    return out;
}
