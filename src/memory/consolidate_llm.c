/* Consolidation with a chat model: one batch's facts, grouped by observation scope, go to the
 * model 8 at a time together with the scope's related observations (an internal recall: types
 * observation, budget low, 512 tokens, the scope's exact tag set). The model answers
 * {creates, updates, deletes} (structured output, temperature 0). What it names is checked: a
 * source fact must be one of the call's facts, an updated or deleted observation one the call
 * showed it (so an id of another bank, or a fact, is never touched). A create within cosine 0.97
 * of an observation of the scope is merged into it (the older text stays; the create's sources
 * join and the history says so). A failed call marks its facts failed with the model's error.
 * Everything the batch decided is applied at the end in one script, with the facts' marks. */
#include <stdlib.h>
#include <string.h>

#include "engram/embed.h"
#include "engram/buf.h"
#include "engram/error.h"
#include "engram/llm.h"
#include "engram/log.h"
#include "engram/recall.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/consolidate_int.h"
#include "memory/memories_int.h"

#define QUERY_TOKENS 400 /* of the facts' texts, as the related-observations query */

static const char *const k_schema =
    "{\"type\":\"object\",\"properties\":{"
    "\"creates\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"text\":{\"type\":\"string\"},\"source_fact_ids\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"string\"}},\"reason\":{\"type\":\"string\"}},\"required\":[\"text\",\"source_fact_ids\","
    "\"reason\"],\"additionalProperties\":false}},"
    "\"updates\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"text\":{\"type\":\"string\"},\"observation_id\":{\"type\":\"string\"},\"source_fact_ids\":{"
    "\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"reason\":{\"type\":\"string\"}},"
    "\"required\":[\"text\",\"observation_id\",\"source_fact_ids\",\"reason\"],"
    "\"additionalProperties\":false}},"
    "\"deletes\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"observation_id\":{\"type\":\"string\"},\"reason\":{\"type\":\"string\"}},\"required\":["
    "\"observation_id\",\"reason\"],\"additionalProperties\":false}}},"
    "\"required\":[\"creates\",\"updates\",\"deletes\"],\"additionalProperties\":false}";

static const char *const k_system =
    "You consolidate a memory bank's new facts into observations: durable, general statements "
    "that the facts support (preferences, habits, relationships, recurring situations, current "
    "states). For the new facts given, decide:\n"
    "- creates: a new observation supported by some of the new facts (source_fact_ids);\n"
    "- updates: an existing observation (observation_id) to rewrite because new facts confirm, "
    "refine or change it (its full new text, and the new facts behind the change);\n"
    "- deletes: an existing observation the new facts contradict or make obsolete.\n"
    "Use only the ids you are given. Do not restate a single fact as an observation unless it "
    "states something durable. Never create an observation that repeats an existing one: update "
    "that one instead. Each change needs a short reason. Empty lists are fine.";

/* An observation the batch creates, changes or deletes. */
typedef struct lobs_s {
    eg_mem_unit_t *u;
    bool is_new, changed, deleted;
    int64_t expect;
    const eg_obs_scope_t *scope;
    bool text_changed;
    const float *vec; /* a new one's embedding (for the merge check of later calls), or NULL */
} lobs_t;

/* One model call: up to 8 facts of one scope. */
typedef struct call_s {
    const eg_obs_scope_t *scope;
    size_t facts[EG_CONSOLIDATE_PER_CALL];
    size_t n;
} call_t;

typedef struct lpath_s {
    call_t *calls;
    size_t ncalls, cur;
    lobs_t *obs;
    size_t nobs, cap;
    /* the current call */
    const char **shown; /* observation ids the call showed the model */
    size_t nshown;
    cJSON *answer;       /* the model's answer (kept in the batch arena) */
    const char **ctexts; /* creates' texts, their vectors, and merge targets */
    const cJSON **citems;
    float *cvecs;
    const char **cmerge;
    size_t ncreates;
    eg_llm_call_t *llm_call;
    float *vecs; /* the final embeddings of new or rewritten observations */
    size_t nvecs;
} lpath_t;

static void next_call(eg__cons_run_t *r);

static lobs_t *find_obs(lpath_t *p, const char *id)
{
    for (size_t i = 0; i < p->nobs; i++)
        if (strcmp(p->obs[i].u->id, id) == 0)
            return &p->obs[i];
    return NULL;
}

static lobs_t *add_obs(eg__cons_run_t *r, lpath_t *p, const eg_mem_unit_t *u, bool is_new,
                       const eg_obs_scope_t *scope)
{
    lobs_t *o;

    if (p->nobs == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 16;
        lobs_t *nv = eg_arena_calloc(&r->batch, nc * sizeof(*nv));
        if (p->nobs)
            memcpy(nv, p->obs, p->nobs * sizeof(*nv));
        p->obs = nv;
        p->cap = nc;
    }
    o = &p->obs[p->nobs++];
    *o = (lobs_t){
        eg__mem_unit_copy(&r->batch, u), is_new, false, false, u->updated_at, scope, false, NULL};
    return o;
}

static const eg_mem_unit_t *call_fact(eg__cons_run_t *r, const call_t *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(r->facts[c->facts[i]].u->id, id) == 0)
            return r->facts[c->facts[i]].u;
    return NULL;
}

/* The valid source facts of an answer's item, among the call's facts. */
static size_t item_sources(eg__cons_run_t *r, const call_t *c, const cJSON *item,
                           const eg_mem_unit_t **out)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(item, "source_fact_ids"), *it;
    size_t n = 0;

    cJSON_ArrayForEach(it, ids)
    {
        const eg_mem_unit_t *f = cJSON_IsString(it) ? call_fact(r, c, it->valuestring) : NULL;
        bool dup = false;

        for (size_t k = 0; f && k < n && !dup; k++)
            dup = out[k] == f;
        if (f && !dup && n < EG_CONSOLIDATE_PER_CALL)
            out[n++] = f;
    }
    return n;
}

static const char *item_str(const cJSON *item, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool shown(const lpath_t *p, const char *id)
{
    for (size_t i = 0; i < p->nshown; i++)
        if (strcmp(p->shown[i], id) == 0)
            return true;
    return false;
}

/* ---- applying the model's answer to the batch's observations
 * -------------------------------------- */

static void integrate(eg__cons_run_t *r)
{
    lpath_t *p = r->path;
    const call_t *c = &p->calls[p->cur];
    int64_t now = eg_now_ms() * 1000;
    const cJSON *it;
    const eg_mem_unit_t *src[EG_CONSOLIDATE_PER_CALL];
    size_t ci = 0;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p->answer, "updates"))
    {
        const char *id = item_str(it, "observation_id"), *text = item_str(it, "text");
        size_t ns = item_sources(r, c, it, src);
        lobs_t *o;

        if (!id || !text || !text[0] || !shown(p, id) || (o = find_obs(p, id)) == NULL ||
            o->deleted)
            continue;
        if (strcmp(o->u->text, text) != 0) {
            const char **ids = eg_arena_alloc(&r->batch, (ns + 1) * sizeof(*ids));
            for (size_t k = 0; k < ns; k++)
                ids[k] = src[k]->id;
            if (!o->is_new)
                o->u->history = eg__cons_history_add(&r->batch, o->u->history, o->u->text, text,
                                                     now, item_str(it, "reason"), ids, ns);
            o->u->text = eg_arena_strdup(&r->batch, text);
            o->text_changed = true;
        }
        for (size_t k = 0; k < ns; k++)
            eg__cons_absorb(&r->batch, o->u, src[k]);
        o->u->updated_at = now;
        o->changed = true;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p->answer, "deletes"))
    {
        const char *id = item_str(it, "observation_id");
        lobs_t *o;

        if (!id || !shown(p, id) || (o = find_obs(p, id)) == NULL)
            continue;
        o->deleted = true;
    }
    for (ci = 0; ci < p->ncreates; ci++) {
        size_t ns = item_sources(r, c, p->citems[ci], src);
        lobs_t *o = p->cmerge[ci] ? find_obs(p, p->cmerge[ci]) : NULL;

        if (ns == 0)
            continue;
        if (o && !o->deleted) {
            /* Within 0.97 of an observation of the scope: the same statement; it gains the
             * sources and keeps its text. */
            const char **ids = eg_arena_alloc(&r->batch, (ns + 1) * sizeof(*ids));
            for (size_t k = 0; k < ns; k++)
                ids[k] = src[k]->id;
            if (!o->is_new)
                o->u->history =
                    eg__cons_history_add(&r->batch, o->u->history, o->u->text, o->u->text, now,
                                         "merged a near-identical new observation", ids, ns);
            for (size_t k = 0; k < ns; k++)
                eg__cons_absorb(&r->batch, o->u, src[k]);
            o->u->updated_at = now;
            o->changed = true;
            continue;
        }
        {
            eg_mem_unit_t u = {0};
            char *id = eg_arena_alloc(&r->batch, 37);

            eg_uuid_v4(id);
            u.id = id;
            u.text = p->ctexts[ci];
            u.context = "";
            u.type = EG_FACT_OBSERVATION;
            u.occurred_start = u.occurred_end = u.mentioned_at = EG_MEM_TIME_NONE;
            u.created_at = u.updated_at = now;
            u.tags = c->scope->tags;
            u.ntags = c->scope->ntags;
            u.invalidated_at = u.edited_at = EG_MEM_TIME_NONE;
            u.consolidated_at = u.consolidation_failed_at = EG_MEM_TIME_NONE;
            o = add_obs(r, p, &u, true, c->scope);
            o->changed = true;
            o->text_changed = true;
            o->vec = p->cvecs + ci * eg__cons_embedder()->dim;
            for (size_t k = 0; k < ns; k++)
                eg__cons_absorb(&r->batch, o->u, src[k]);
        }
    }
    p->cur++;
    next_call(r);
}

/* ---- merge check: creates near an observation of the scope -------------------------------------
 */

typedef struct mfilt_s {
    eg_mindex_t *ix;
    const uint32_t *tags;
    size_t ntags;
} mfilt_t;

static bool obs_filter(uint32_t slot, void *udata)
{
    const mfilt_t *f = udata;
    const eg_mindex_unit_t *u = eg_mindex_unit(f->ix, slot);

    return u && !u->invalidated && u->type == EG_FACT_OBSERVATION &&
           eg__cons_tags_exact(u, f->tags, f->ntags);
}

static void on_merge_records(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    eg__cons_run_t *r = udata;
    lpath_t *p = r->path;

    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (units[i] && units[i]->type == EG_FACT_OBSERVATION && !find_obs(p, units[i]->id))
            add_obs(r, p, units[i], false, p->calls[p->cur].scope);
    for (size_t i = 0; i < p->ncreates; i++)
        if (p->cmerge[i] && !find_obs(p, p->cmerge[i]))
            p->cmerge[i] = NULL; /* gone meanwhile */
    integrate(r);
}

static void on_merge_index(void *udata, int err, eg_mindex_t *ix)
{
    eg__cons_run_t *r = udata;
    lpath_t *p = r->path;
    const call_t *c = &p->calls[p->cur];
    eg_embedder_t *e = eg__cons_embedder();
    const char **fetch;
    size_t nf = 0;
    int rc;

    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    fetch = eg_arena_alloc(&r->batch, (p->ncreates + 1) * sizeof(*fetch));
    for (size_t i = 0; i < p->ncreates; i++) {
        mfilt_t f = {ix, eg__cons_scope_ids(&r->batch, ix, c->scope), c->scope->ntags};
        eg_vsearch_t q = {
            .k = 1, .min_score = EG_CONSOLIDATE_MERGE_MIN, .filter = obs_filter, .udata = &f};
        eg_vhit_t hit;

        float best = EG_CONSOLIDATE_MERGE_MIN;

        p->cmerge[i] = NULL;
        if (eg_mindex_dim(ix) == e->dim &&
            eg_vindex_search(eg_mindex_vectors(ix), p->cvecs + i * e->dim, &q, &hit) == 1) {
            p->cmerge[i] = eg_arena_strdup(&r->batch, eg_mindex_unit(ix, hit.slot)->id);
            best = hit.score;
        }
        /* Observations this batch created are not in the index yet. */
        for (size_t k = 0; k < p->nobs; k++) {
            const lobs_t *o = &p->obs[k];
            float d;

            if (!o->is_new || o->deleted || !o->vec || !eg__cons_same_scope(o->scope, c->scope))
                continue;
            d = eg_vec_dot(o->vec, p->cvecs + i * e->dim, e->dim);
            if (d >= best) {
                best = d;
                p->cmerge[i] = o->u->id;
            }
        }
        if (p->cmerge[i] && !find_obs(p, p->cmerge[i]))
            fetch[nf++] = p->cmerge[i];
    }
    if (nf == 0) {
        integrate(r);
        return;
    }
    rc = eg_mem_units_get(r->ws, r->bank, fetch, nf, on_merge_records, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static void on_creates_embedded(eg_embedder_t *e, int status, void *udata)
{
    eg__cons_run_t *r = udata;
    int rc;

    (void)e;
    if (status) {
        eg__cons_batch_done(r, status);
        return;
    }
    rc = eg_mindex_acquire(r->ws, r->bank, on_merge_index, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

/* ---- the model call ----------------------------------------------------------------------------
 */

static void call_failed(eg__cons_run_t *r, const char *why)
{
    lpath_t *p = r->path;
    const call_t *c = &p->calls[p->cur];
    const char *msg = eg_arena_strdup(&r->batch, why && why[0] ? why : "the model call failed");

    for (size_t i = 0; i < c->n; i++)
        r->facts[c->facts[i]].error = msg;
    if (!r->model_error)
        r->model_error = eg_arena_strdup(&r->arena, msg);
    eg_log_warn("consolidation: bank %s: the model failed on %zu facts: %s", r->bank, c->n, msg);
    p->cur++;
    next_call(r);
}

static void on_chat(void *udata, int err, const eg_llm_resp_t *resp)
{
    eg__cons_run_t *r = udata;
    lpath_t *p = r->path;
    eg_embedder_t *e = eg__cons_embedder();
    const cJSON *it;
    size_t n = 0;
    int rc;

    p->llm_call = NULL;
    if (err || !resp || !cJSON_IsObject(resp->json)) {
        call_failed(r, resp && resp->error ? resp->error : eg_strerror(err ? err : EG_EINVAL));
        return;
    }
    p->answer = cJSON_Duplicate(resp->json, true);
    eg_arena_defer(&r->batch, (void (*)(void *))cJSON_Delete, p->answer);
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p->answer, "creates"))
    {
        n++;
    }
    p->ctexts = eg_arena_alloc(&r->batch, (n + 1) * sizeof(*p->ctexts));
    p->citems = eg_arena_alloc(&r->batch, (n + 1) * sizeof(*p->citems));
    p->cmerge = eg_arena_calloc(&r->batch, (n + 1) * sizeof(*p->cmerge));
    p->ncreates = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p->answer, "creates"))
    {
        const char *t = item_str(it, "text");
        if (!t || !t[0])
            continue;
        p->ctexts[p->ncreates] = t;
        p->citems[p->ncreates++] = it;
    }
    if (p->ncreates == 0) {
        integrate(r);
        return;
    }
    p->cvecs = eg_arena_alloc(&r->batch, p->ncreates * e->dim * sizeof(float));
    rc = eg_embed_run(e, p->ctexts, p->ncreates, p->cvecs, on_creates_embedded, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static void on_related(void *udata, int err, const eg_recall_result_t *res)
{
    eg__cons_run_t *r = udata;
    lpath_t *p = r->path;
    const call_t *c = &p->calls[p->cur];
    cJSON *user, *facts, *obs, *tags;
    eg_llm_msg_t msgs[2];
    eg_llm_req_t req = {0};
    char *sys, *content;
    int rc;

    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    user = cJSON_CreateObject();
    tags = cJSON_AddArrayToObject(user, "scope_tags");
    for (size_t i = 0; i < c->scope->ntags; i++)
        cJSON_AddItemToArray(tags, cJSON_CreateString(c->scope->tags[i]));
    facts = cJSON_AddArrayToObject(user, "new_facts");
    for (size_t i = 0; i < c->n; i++) {
        const eg_mem_unit_t *u = r->facts[c->facts[i]].u;
        cJSON *f = cJSON_CreateObject();

        cJSON_AddStringToObject(f, "id", u->id);
        cJSON_AddStringToObject(f, "text", u->text);
        if (u->context && u->context[0])
            cJSON_AddStringToObject(f, "context", u->context);
        if (u->occurred_start != EG_MEM_TIME_NONE) {
            char iso[EG_TEXT_ISO_MAX];
            eg_text_format_iso(u->occurred_start, iso);
            cJSON_AddStringToObject(f, "occurred_start", iso);
        }
        cJSON_AddItemToArray(facts, f);
    }
    obs = cJSON_AddArrayToObject(user, "existing_observations");
    p->shown = eg_arena_alloc(&r->batch, (res->n + p->nobs + 1) * sizeof(*p->shown));
    p->nshown = 0;
    /* The batch's own observations of the scope first (the index does not have them yet). */
    for (size_t i = 0; i < p->nobs; i++) {
        lobs_t *o = &p->obs[i];
        cJSON *j;

        if (o->deleted || !o->is_new || !eg__cons_same_scope(o->scope, c->scope))
            continue;
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", o->u->id);
        cJSON_AddStringToObject(j, "text", o->u->text);
        cJSON_AddNumberToObject(j, "proof_count", o->u->proof_count);
        cJSON_AddItemToArray(obs, j);
        p->shown[p->nshown++] = o->u->id;
    }
    for (size_t i = 0; i < res->n; i++) {
        const eg_mem_unit_t *u = res->items[i].unit;
        lobs_t *o;
        cJSON *j;

        if (u->type != EG_FACT_OBSERVATION || u->invalidated)
            continue;
        if ((o = find_obs(p, u->id)) == NULL)
            o = add_obs(r, p, u, false, c->scope);
        if (o->deleted)
            continue;
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", o->u->id);
        cJSON_AddStringToObject(j, "text", o->u->text);
        cJSON_AddNumberToObject(j, "proof_count", o->u->proof_count);
        cJSON_AddItemToArray(obs, j);
        p->shown[p->nshown++] = o->u->id;
    }
    content = cJSON_PrintUnformatted(user);
    cJSON_Delete(user);
    sys = r->mission && r->mission[0]
              ? eg_arena_printf(&r->batch, "%s\n\nWhat this bank's observations are for: %s",
                                k_system, r->mission)
              : (char *)k_system;
    msgs[0] = (eg_llm_msg_t){.role = EG_LLM_SYSTEM, .content = sys};
    msgs[1] = (eg_llm_msg_t){.role = EG_LLM_USER, .content = eg_arena_strdup(&r->batch, content)};
    free(content);
    req.msgs = msgs;
    req.nmsgs = 2;
    req.schema = k_schema;
    req.schema_name = "consolidation";
    req.temperature = 0;
    req.scope = "consolidation";
    rc = eg_llm_chat(r->llm, &req, on_chat, r, &p->llm_call);
    if (rc)
        call_failed(r, eg_strerror(rc));
}

static void start_call(eg__cons_run_t *r)
{
    lpath_t *p = r->path;
    const call_t *c = &p->calls[p->cur];
    eg_recall_req_t q;
    eg_buf_t text = EG_BUF_INIT;
    size_t cut;
    int rc;

    for (size_t i = 0; i < c->n; i++)
        eg_buf_printf(&text, "%s%s", i ? "\n" : "", r->facts[c->facts[i]].u->text);
    eg_buf_puts(&text, "");
    cut = eg_recall_cut_tokens(text.data, text.len, QUERY_TOKENS);
    eg_recall_req_init(&q);
    q.query = eg_arena_strndup(&r->batch, text.data, cut);
    q.query_len = cut;
    eg_buf_free(&text);
    q.types = 1u << EG_FACT_OBSERVATION;
    q.budget = EG_RECALL_BUDGET_LOW;
    q.max_tokens = EG_CONSOLIDATE_RELATED;
    q.tags = c->scope->tags;
    q.ntags = c->scope->ntags;
    q.tags_match = EG_TAGS_EXACT;
    q.entities = false;
    q.chunks = false;
    if (q.query_len == 0) {
        q.query = "observation";
        q.query_len = strlen(q.query);
    }
    rc = eg_recall(r->ws, r->bank, &q, on_related, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

/* ---- the end of the batch
 * ------------------------------------------------------------------------ */

static void on_applied(void *udata, int err, int64_t facts, int64_t puts, int64_t dels)
{
    eg__cons_run_t *r = udata;
    lpath_t *p = r->path;

    (void)facts;
    (void)puts;
    if (err == 0) {
        for (size_t i = 0; i < p->nobs; i++)
            if (p->obs[i].changed && !p->obs[i].deleted) {
                if (p->obs[i].is_new)
                    r->created++;
                else
                    r->updated++;
            }
        r->deleted += (size_t)dels;
    }
    eg__cons_batch_done(r, err);
}

static void apply_all(eg__cons_run_t *r)
{
    lpath_t *p = r->path;
    eg_embedder_t *e = eg__cons_embedder();
    eg__cons_put_t *puts = eg_arena_alloc(&r->batch, (p->nobs + 1) * sizeof(*puts));
    const char **dels = eg_arena_alloc(&r->batch, (p->nobs + 1) * sizeof(*dels));
    eg__cons_apply_t ch = {0};
    size_t np = 0, nd = 0, k = 0;
    int rc;

    for (size_t i = 0; i < p->nobs; i++) {
        lobs_t *o = &p->obs[i];

        if (o->deleted) {
            if (!o->is_new)
                dels[nd++] = o->u->id;
            continue;
        }
        if (!o->changed)
            continue;
        puts[np] = (eg__cons_put_t){*o->u, NULL, o->is_new, o->expect};
        if (o->text_changed)
            puts[np].vec = p->vecs + (k++) * e->dim;
        np++;
    }
    eg__cons_mark_facts(r, eg_now_ms() * 1000, (const eg_mem_unit_t ***)&ch.facts, &ch.nfacts);
    ch.puts = puts;
    ch.nputs = np;
    ch.dels = dels;
    ch.ndels = nd;
    ch.dim = e->dim;
    rc = eg__cons_apply(r->ws, r->bank, &ch, on_applied, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static void on_final_embedded(eg_embedder_t *e, int status, void *udata)
{
    (void)e;
    if (status) {
        eg__cons_batch_done(udata, status);
        return;
    }
    apply_all(udata);
}

static void next_call(eg__cons_run_t *r)
{
    lpath_t *p = r->path;
    eg_embedder_t *e = eg__cons_embedder();
    const char **texts;
    size_t nt = 0;
    int rc;

    if (p->cur < p->ncalls) {
        start_call(r);
        return;
    }
    texts = eg_arena_alloc(&r->batch, (p->nobs + 1) * sizeof(*texts));
    for (size_t i = 0; i < p->nobs; i++)
        if (!p->obs[i].deleted && p->obs[i].changed && p->obs[i].text_changed)
            texts[nt++] = p->obs[i].u->text;
    if (nt == 0) {
        apply_all(r);
        return;
    }
    p->vecs = eg_arena_alloc(&r->batch, nt * e->dim * sizeof(float));
    p->nvecs = nt;
    rc = eg_embed_run(e, texts, nt, p->vecs, on_final_embedded, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

void eg__cons_llm_batch(eg__cons_run_t *r)
{
    lpath_t *p = eg_arena_calloc(&r->batch, sizeof(*p));
    size_t total = 0;

    r->path = p;
    for (size_t i = 0; i < r->nfacts; i++)
        total += r->facts[i].nscopes;
    p->calls = eg_arena_calloc(&r->batch, (total + 1) * sizeof(*p->calls));
    /* Scopes in order of first appearance; a scope's facts in batch order, 8 per call. */
    for (size_t i = 0; i < r->nfacts; i++) {
        for (size_t s = 0; s < r->facts[i].nscopes; s++) {
            const eg_obs_scope_t *sc = &r->facts[i].scopes[s];
            call_t *c = NULL;

            for (size_t k = p->ncalls; k-- > 0;) {
                if (eg__cons_same_scope(p->calls[k].scope, sc)) {
                    if (p->calls[k].n < EG_CONSOLIDATE_PER_CALL)
                        c = &p->calls[k];
                    break;
                }
            }
            if (c == NULL) {
                c = &p->calls[p->ncalls++];
                c->scope = sc;
            }
            c->facts[c->n++] = i;
        }
    }
    next_call(r);
}
