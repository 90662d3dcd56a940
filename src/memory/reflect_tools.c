/* Reflect's retrieval tools, over recall (engram/recall.h), the memory store (engram/mstore.h)
 * and mental models (engram/mental_models.h): search_mental_models, search_observations,
 * recall and expand, plus the builtin path's recall. Whatever goes wrong inside a tool becomes
 * an {"error": ...} output for the model, not a failure of the run. */
#include <stdio.h>
#include <string.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/mental_models.h"
#include "engram/text.h"
#include "memory/reflect_int.h"

/* ---- evidence ------------------------------------------------------------------------------- */

const eg_reflect_fact_t *eg__rfacts_find(const eg__rfacts_t *fs, const char *id)
{
    for (size_t i = 0; i < fs->n; i++)
        if (!strcmp(fs->v[i].id, id))
            return &fs->v[i];
    return NULL;
}

bool eg__rfacts_add(eg_arena_t *a, eg__rfacts_t *fs, const eg_reflect_fact_t *f)
{
    if (eg__rfacts_find(fs, f->id))
        return false;
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 32;
        eg_reflect_fact_t *v = eg_arena_alloc(a, cap * sizeof(*v));

        if (fs->n)
            memcpy(v, fs->v, fs->n * sizeof(*v));
        fs->v = v;
        fs->cap = cap;
    }
    fs->v[fs->n++] = *f;
    return true;
}

static void seen_mm_add(eg__reflect_t *s, const eg_mm_t *m)
{
    for (size_t i = 0; i < s->nseen_mm; i++)
        if (!strcmp(s->seen_mm[i].id, m->id))
            return;
    if (s->nseen_mm == s->capseen_mm) {
        size_t cap = s->capseen_mm ? s->capseen_mm * 2 : 8;
        eg_reflect_mm_t *v = eg_arena_alloc(&s->arena, cap * sizeof(*v));

        if (s->nseen_mm)
            memcpy(v, s->seen_mm, s->nseen_mm * sizeof(*v));
        s->seen_mm = v;
        s->capseen_mm = cap;
    }
    s->seen_mm[s->nseen_mm++] =
        (eg_reflect_mm_t){eg_arena_strdup(&s->arena, m->id), eg_arena_strdup(&s->arena, m->name),
                          eg_arena_strdup(&s->arena, m->content)};
}

static cJSON *error_output(const char *fmt, const char *arg)
{
    char msg[512];
    cJSON *o = cJSON_CreateObject();

    snprintf(msg, sizeof(msg), fmt, arg);
    cJSON_AddStringToObject(o, "error", msg);
    return o;
}

/* ---- recall and search_observations --------------------------------------------------------- */

/* A recall request scoped like the reflect request: its tags, groups and retrieval switches. */
static void scoped_recall(eg__reflect_t *s, eg_recall_req_t *r, const char *query, unsigned types)
{
    eg_recall_req_init(r);
    r->query = query;
    r->query_len = strlen(query);
    r->types = types & (s->req.types ? s->req.types : EG_RECALL_TYPES_ALL);
    r->budget = s->req.budget;
    r->tags = s->req.tags;
    r->ntags = s->req.ntags;
    r->tags_match = s->req.tags_match;
    r->tag_groups = s->req.tag_groups;
    r->ntag_groups = s->req.ntag_groups;
    r->entities = false;
    r->graph = s->profile.graph;
    r->temporal = s->profile.temporal;
}

static void on_tool_recalled(void *udata, int err, const eg_recall_result_t *res)
{
    eg__reflect_t *s = udata;
    bool obs = s->args.tool == EG__RT_SEARCH_OBSERVATIONS;
    cJSON *out, *list;

    if (err) {
        s->tool_done(s, error_output("search failed: %s", eg_strerror(err)), 0);
        return;
    }
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "query", s->args.query);
    list = cJSON_AddArrayToObject(out, obs ? "observations" : "memories");
    for (size_t i = 0; i < res->n; i++) {
        eg_reflect_fact_t f;
        cJSON *j;

        eg__reflect_fact_from_unit(&s->arena, res->items[i].unit, &f);
        eg__rfacts_add(&s->arena, f.type == EG_FACT_OBSERVATION ? &s->seen_obs : &s->seen_facts,
                       &f);
        j = eg__reflect_fact_json(&f);
        if (obs)
            cJSON_AddNumberToObject(j, "proof_count", res->items[i].unit->proof_count);
        cJSON_AddItemToArray(list, j);
    }
    if (!obs && res->nchunks) {
        cJSON *chunks = cJSON_AddArrayToObject(out, "chunks");

        for (size_t i = 0; i < res->nchunks; i++) {
            cJSON *c = cJSON_CreateObject();

            cJSON_AddStringToObject(c, "id", res->chunks[i].id);
            cJSON_AddStringToObject(c, "text", res->chunks[i].text);
            if (res->chunks[i].truncated)
                cJSON_AddBoolToObject(c, "truncated", true);
            cJSON_AddItemToArray(chunks, c);
        }
    }
    if (res->n == 0)
        cJSON_AddStringToObject(out, "note",
                                obs ? "No observations matched (observations appear once "
                                      "facts have been consolidated)."
                                    : "No memories matched this query.");
    s->tool_done(s, out, res->n);
}

static int run_recall(eg__reflect_t *s, bool obs)
{
    eg_recall_req_t r;
    unsigned types =
        obs ? 1u << EG_FACT_OBSERVATION : (1u << EG_FACT_WORLD) | (1u << EG_FACT_EXPERIENCE);
    int rc;

    scoped_recall(s, &r, s->args.query, types);
    r.max_tokens = s->args.max_tokens;
    if (!obs && s->args.max_chunk_tokens > 0) {
        r.chunks = true;
        r.chunks_max_tokens = s->args.max_chunk_tokens;
    }
    rc = eg_recall(s->ws, s->bank, &r, on_tool_recalled, s);
    if (rc == EG_EINVAL) {
        s->tool_done(s,
                     error_output("The query is not valid for a search (%s): use a shorter, "
                                  "plainer query.",
                                  "at most 500 tokens"),
                     0);
        return 0;
    }
    return rc;
}

/* ---- search_mental_models ------------------------------------------------------------------- */

static void on_mm_hits(void *udata, int err, const eg_mm_hit_t *hits, size_t n)
{
    eg__reflect_t *s = udata;
    cJSON *out, *list;

    if (err) {
        s->tool_done(s, error_output("mental model search failed: %s", eg_strerror(err)), 0);
        return;
    }
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "query", s->args.query);
    list = cJSON_AddArrayToObject(out, "mental_models");
    for (size_t i = 0; i < n; i++) {
        const eg_mm_t *m = hits[i].mm;
        cJSON *j = cJSON_CreateObject();

        seen_mm_add(s, m);
        cJSON_AddStringToObject(j, "id", m->id);
        cJSON_AddStringToObject(j, "name", m->name);
        cJSON_AddStringToObject(j, "content", m->content);
        cJSON_AddNumberToObject(j, "score", (double)(int)(hits[i].score * 1000 + 0.5) / 1000);
        cJSON_AddBoolToObject(j, "is_stale", m->is_stale);
        if (m->last_refreshed_at != EG_MEM_TIME_NONE) {
            char iso[EG_TEXT_ISO_MAX];

            eg_text_format_iso(m->last_refreshed_at, iso);
            cJSON_AddStringToObject(j, "last_refreshed_at", iso);
        }
        cJSON_AddItemToArray(list, j);
    }
    if (n == 0)
        cJSON_AddStringToObject(out, "note", "No mental models matched.");
    s->tool_done(s, out, n);
}

static void mm_search_req(eg__reflect_t *s, eg_mm_search_t *q, const char *query, size_t max)
{
    memset(q, 0, sizeof(*q));
    q->query = query;
    q->tags = s->req.tags;
    q->ntags = s->req.ntags;
    q->tags_match = s->req.tags_match;
    q->max_results = max;
    q->exclude_ids = s->req.exclude_mm_ids;
    q->nexclude = s->req.nexclude_mm_ids;
}

static int run_mm(eg__reflect_t *s)
{
    eg_mm_search_t q;

    mm_search_req(s, &q, s->args.query, s->args.max_results);
    return eg_mm_search(s->ws, s->bank, &q, on_mm_hits, s);
}

/* ---- expand --------------------------------------------------------------------------------- */

typedef struct {
    eg_reflect_fact_t *facts; /* found units, in the order asked */
    const char **chunk_ids, **doc_ids;
    size_t nfacts;
    const char **missing;
    size_t nmissing;
    size_t idoc; /* documents fetch one after the other */
    cJSON *out, *list;
} expand_t;

static expand_t *s_expand_state(eg__reflect_t *s, expand_t *set)
{
    if (set)
        s->tool_state = set;
    return s->tool_state;
}

static void expand_finish(eg__reflect_t *s, expand_t *x)
{
    if (x->nmissing) {
        cJSON *miss = cJSON_AddArrayToObject(x->out, "not_found");

        for (size_t i = 0; i < x->nmissing; i++)
            cJSON_AddItemToArray(miss, cJSON_CreateString(x->missing[i]));
    }
    s->tool_done(s, x->out, x->nfacts);
}

static cJSON *expanded_item(const eg_reflect_fact_t *f)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddStringToObject(j, "memory_id", f->id);
    cJSON_AddStringToObject(j, "text", f->text);
    return j;
}

static void on_chunks(void *udata, int err, const eg_mem_chunk_t *const *chunks, size_t n)
{
    eg__reflect_t *s = udata;
    expand_t *x = s_expand_state(s, NULL);

    for (size_t i = 0; i < x->nfacts; i++) {
        cJSON *j = expanded_item(&x->facts[i]);
        const eg_mem_chunk_t *c = NULL;

        for (size_t k = 0; !err && k < n && x->chunk_ids[i]; k++)
            if (chunks[k] && !strcmp(chunks[k]->id, x->chunk_ids[i]))
                c = chunks[k];
        if (c) {
            cJSON *cj = cJSON_AddObjectToObject(j, "chunk");

            cJSON_AddStringToObject(cj, "id", c->id);
            cJSON_AddNumberToObject(cj, "chunk_index", (double)c->chunk_index);
            cJSON_AddStringToObject(cj, "text", c->text);
        } else {
            cJSON_AddStringToObject(j, "note",
                                    err ? "the chunk could not be read"
                                        : "no source chunk is stored for this memory");
        }
        cJSON_AddItemToArray(x->list, j);
    }
    expand_finish(s, x);
}

static void next_doc(eg__reflect_t *s, expand_t *x);

static void on_doc(void *udata, int err, const eg_mem_doc_t *doc)
{
    eg__reflect_t *s = udata;
    expand_t *x = s_expand_state(s, NULL);
    cJSON *j = expanded_item(&x->facts[x->idoc]);

    if (err == 0 && doc->original_text) {
        cJSON *dj = cJSON_AddObjectToObject(j, "document");
        size_t len = strlen(doc->original_text);
        size_t cut = eg_recall_cut_tokens(doc->original_text, len, EG_REFLECT_EXPAND_DOC_TOKENS);
        char *text = eg_arena_strndup(&s->arena, doc->original_text, cut);

        cJSON_AddStringToObject(dj, "id", doc->id);
        cJSON_AddStringToObject(dj, "text", text);
        if (cut < len)
            cJSON_AddBoolToObject(dj, "truncated", true);
    } else {
        cJSON_AddStringToObject(j, "note",
                                err == 0 || err == EG_ENOTFOUND
                                    ? "the document's text is not stored"
                                    : "the document could not be read");
    }
    cJSON_AddItemToArray(x->list, j);
    x->idoc++;
    next_doc(s, x);
}

static void next_doc(eg__reflect_t *s, expand_t *x)
{
    while (x->idoc < x->nfacts) {
        const char *d = x->doc_ids[x->idoc];
        bool dup = false;

        for (size_t k = 0; d && k < x->idoc; k++)
            dup |= x->doc_ids[k] && !strcmp(x->doc_ids[k], d);
        if (d && !dup && eg_mem_doc_get(s->ws, s->bank, d, on_doc, s) == 0)
            return;
        cJSON *j = expanded_item(&x->facts[x->idoc]);

        cJSON_AddStringToObject(j, "note",
                                !d    ? "this memory has no source document"
                                : dup ? "same document as an earlier memory in this call"
                                      : "the document could not be read");
        cJSON_AddItemToArray(x->list, j);
        x->idoc++;
    }
    expand_finish(s, x);
}

static void on_units(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    eg__reflect_t *s = udata;
    expand_t *x = eg_arena_calloc(&s->arena, sizeof(*x));

    s_expand_state(s, x);
    if (err) {
        s->tool_done(s, error_output("expand failed: %s", eg_strerror(err)), 0);
        return;
    }
    x->facts = eg_arena_alloc(&s->arena, (n + 1) * sizeof(*x->facts));
    x->chunk_ids = eg_arena_alloc(&s->arena, (n + 1) * sizeof(*x->chunk_ids));
    x->doc_ids = eg_arena_alloc(&s->arena, (n + 1) * sizeof(*x->doc_ids));
    x->missing = eg_arena_alloc(&s->arena, (n + 1) * sizeof(*x->missing));
    for (size_t i = 0; i < n; i++) {
        const eg_mem_unit_t *u = units[i];

        if (!u || u->invalidated) {
            x->missing[x->nmissing++] = s->args.ids[i];
            continue;
        }
        eg__reflect_fact_from_unit(&s->arena, u, &x->facts[x->nfacts]);
        eg__rfacts_add(&s->arena, u->type == EG_FACT_OBSERVATION ? &s->seen_obs : &s->seen_facts,
                       &x->facts[x->nfacts]);
        x->chunk_ids[x->nfacts] = u->chunk_id ? eg_arena_strdup(&s->arena, u->chunk_id) : NULL;
        x->doc_ids[x->nfacts] = u->document_id ? eg_arena_strdup(&s->arena, u->document_id) : NULL;
        x->nfacts++;
    }
    if (x->nfacts == 0) {
        eg_buf_t b = EG_BUF_INIT;

        for (size_t i = 0; i < x->nmissing; i++)
            eg_buf_printf(&b, "%s%s", i ? ", " : "", x->missing[i]);
        s->tool_done(s,
                     error_output("Unknown memory ids: %s. Use ids returned by recall or "
                                  "search_observations.",
                                  b.data ? b.data : ""),
                     0);
        eg_buf_free(&b);
        return;
    }
    x->out = cJSON_CreateObject();
    cJSON_AddStringToObject(x->out, "depth", s->args.document ? "document" : "chunk");
    x->list = cJSON_AddArrayToObject(x->out, "memories");
    if (s->args.document) {
        next_doc(s, x);
        return;
    }
    {
        const char **ids = eg_arena_alloc(&s->arena, (x->nfacts + 1) * sizeof(*ids));
        size_t k = 0;

        for (size_t i = 0; i < x->nfacts; i++)
            if (x->chunk_ids[i])
                ids[k++] = x->chunk_ids[i];
        if (k == 0 || eg_mem_chunks_get(s->ws, s->bank, ids, k, on_chunks, s) != 0)
            on_chunks(s, k ? EG_EUNAVAIL : 0, NULL, 0);
    }
}

static int run_expand(eg__reflect_t *s)
{
    return eg_mem_units_get(s->ws, s->bank, s->args.ids, s->args.nids, on_units, s);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

int eg__reflect_tool_run(eg__reflect_t *s, eg__rtool_done_fn done)
{
    s->tool_done = done;
    switch (s->args.tool) {
    case EG__RT_SEARCH_MENTAL_MODELS:
        if (!s->has_mm) {
            done(s, error_output("%s is not available in this reflect.", "search_mental_models"),
                 0);
            return 0;
        }
        return run_mm(s);
    case EG__RT_SEARCH_OBSERVATIONS:
        return run_recall(s, true);
    case EG__RT_RECALL:
        return run_recall(s, false);
    case EG__RT_EXPAND:
        return run_expand(s);
    default:
        return EG_EINVAL;
    }
}

/* ---- the builtin path ----------------------------------------------------------------------- */

static void on_builtin_recalled(void *udata, int err, const eg_recall_result_t *res)
{
    eg__reflect_t *s = udata;
    eg__rrecall_fn cb = s->recall_cb;
    eg_reflect_fact_t *facts;

    if (err) {
        cb(s, err, NULL, 0);
        return;
    }
    facts = eg_arena_alloc(&s->arena, (res->n + 1) * sizeof(*facts));
    for (size_t i = 0; i < res->n; i++)
        eg__reflect_fact_from_unit(&s->arena, res->items[i].unit, &facts[i]);
    cb(s, 0, facts, res->n);
}

int eg__reflect_builtin_recall(eg__reflect_t *s, eg__rrecall_fn cb)
{
    eg_recall_req_t r;
    size_t len = strlen(s->req.query);
    /* A recall query holds at most 500 tokens; a longer question is searched by its start. */
    size_t cut = eg_recall_cut_tokens(s->req.query, len, EG_RECALL_QUERY_TOKENS_MAX);
    const char *q = cut < len ? eg_arena_strndup(&s->arena, s->req.query, cut) : s->req.query;

    scoped_recall(s, &r, q, EG_RECALL_TYPES_ALL);
    r.max_tokens = EG_REFLECT_RECALL_TOKENS;
    s->recall_cb = cb;
    return eg_recall(s->ws, s->bank, &r, on_builtin_recalled, s);
}

static void on_builtin_mms(void *udata, int err, const eg_mm_hit_t *hits, size_t n)
{
    eg__reflect_t *s = udata;
    eg__rmm_fn cb = s->mm_cb;
    eg_reflect_mm_t *mms = eg_arena_alloc(&s->arena, (n + 1) * sizeof(*mms));
    size_t k = 0;

    for (size_t i = 0; !err && i < n; i++) {
        if (!hits[i].mm->content[0])
            continue;
        mms[k++] = (eg_reflect_mm_t){eg_arena_strdup(&s->arena, hits[i].mm->id),
                                     eg_arena_strdup(&s->arena, hits[i].mm->name),
                                     eg_arena_strdup(&s->arena, hits[i].mm->content)};
    }
    cb(s, mms, k);
}

int eg__reflect_builtin_mms(eg__reflect_t *s, eg__rmm_fn cb)
{
    eg_mm_search_t q;

    mm_search_req(s, &q, s->req.query, 2);
    s->mm_cb = cb;
    return eg_mm_search(s->ws, s->bank, &q, on_builtin_mms, s);
}
