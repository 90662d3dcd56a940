/* One retain batch from items to stored units, as a step machine on the loop:
 *
 *   bank      create the bank if missing, read its retain configuration
 *   docs      read the stored text of documents an item appends to
 *   extract   chunk each item, run the extractor on every chunk (in item order)
 *   embed     embed every fact's text
 *   index     resolve entities and compute links against the bank index (retain_index.c)
 *   write     one atomic store write per document, in order (retain_write.c)
 *   event     "retain.completed" for the batch (retain_write.c)
 *
 * Providers may answer synchronously (the builtin ones do) or later; each provider call is made
 * from a loop that continues in place when the callback already ran, so a batch of thousands of
 * chunks never recurses. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/retain_int.h"

enum { S_BANK, S_DOCS, S_EXTRACT, S_EMBED, S_INDEX, S_WRITE, S_DONE };

void eg__retain_finish(eg__run_t *r, int err)
{
    if (r->step == S_DONE)
        return;
    r->step = S_DONE;
    r->err = err;
    r->done(r, err, r->udata);
    eg__retain_run_free(r);
}

void eg__retain_run_free(eg__run_t *r)
{
    if (!r)
        return;
    eg_arena_destroy(&r->arena);
    free(r);
}

/* ---- copying the request -------------------------------------------------------------------- */

static const cJSON *keep_json(eg_arena_t *a, const cJSON *v)
{
    if (!v)
        return NULL;
    cJSON *c = cJSON_Duplicate(v, true);
    eg_arena_defer(a, (void (*)(void *))cJSON_Delete, c);
    return c;
}

static const char *const *copy_strs(eg_arena_t *a, const char *const *v, size_t n)
{
    const char **out = eg_arena_alloc(a, (n + 1) * sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = eg_arena_strdup(a, v[i]);
    return out;
}

static void copy_item(eg_arena_t *a, const eg_retain_item_t *in, eg_retain_item_t *out)
{
    *out = *in;
    out->content = eg_arena_strdup(a, in->content ? in->content : "");
    out->context = eg_arena_strdup(a, in->context ? in->context : "");
    out->metadata = keep_json(a, in->metadata);
    out->document_id = in->document_id ? eg_arena_strdup(a, in->document_id) : NULL;
    eg_retain_entity_t *ev = eg_arena_calloc(a, (in->nentities + 1) * sizeof(*ev));
    for (size_t k = 0; k < in->nentities; k++) {
        ev[k].text = eg_arena_strdup(a, in->entities[k].text);
        ev[k].type = in->entities[k].type ? eg_arena_strdup(a, in->entities[k].type) : NULL;
    }
    out->entities = ev;
    out->tags = copy_strs(a, in->tags, in->ntags);
    out->observation_scopes = keep_json(a, in->observation_scopes);
    out->strategy = in->strategy ? eg_arena_strdup(a, in->strategy) : NULL;
}

/* Append the strings of v not in out yet (out has room). */
void eg__retain_union(const char **out, size_t *n, const char *const *v, size_t nv)
{
    for (size_t i = 0; i < nv; i++) {
        bool dup = false;
        for (size_t k = 0; k < *n && !dup; k++)
            dup = strcmp(out[k], v[i]) == 0;
        if (!dup)
            out[(*n)++] = v[i];
    }
}

/* Items sharing a document_id form one document; items without one share a fresh one (derived
 * from the operation for asynchronous retains). */
static void group_documents(eg__run_t *r)
{
    r->docs = eg_arena_calloc(&r->arena, (r->nitems + 1) * sizeof(*r->docs));
    for (size_t i = 0; i < r->nitems; i++) {
        const char *id = r->items[i].it.document_id;
        size_t d;
        for (d = 0; d < r->ndocs; d++) {
            eg__rdoc_t *doc = &r->docs[d];
            if (id ? (doc->caller_id && strcmp(doc->id, id) == 0) : !doc->caller_id)
                break;
        }
        if (d == r->ndocs) {
            eg__rdoc_t *doc = &r->docs[r->ndocs++];
            doc->caller_id = id != NULL;
            doc->append = r->items[i].it.append;
            if (id) {
                doc->id = eg_arena_strdup(&r->arena, id);
            } else {
                doc->id = eg_arena_alloc(&r->arena, EG_MEM_UUID_LEN + 1);
                if (r->op_id)
                    eg_retain_derived_id(r->op_id, "d",
                                         eg_arena_printf(&r->arena, "%zu", r->items[i].gindex),
                                         doc->id);
                else
                    eg_uuid_v4(doc->id);
            }
            doc->items = eg_arena_alloc(&r->arena, r->nitems * sizeof(*doc->items));
        }
        r->docs[d].items[r->docs[d].nitems++] = i;
        r->items[i].doc = d;
    }
    for (size_t d = 0; d < r->ndocs; d++) {
        eg__rdoc_t *doc = &r->docs[d];
        size_t cap = 0;
        for (size_t k = 0; k < doc->nitems; k++)
            cap += r->items[doc->items[k]].ntags;
        doc->tags = eg_arena_alloc(&r->arena, (cap + 1) * sizeof(*doc->tags));
        for (size_t k = 0; k < doc->nitems; k++)
            eg__retain_union(doc->tags, &doc->ntags, r->items[doc->items[k]].tags,
                             r->items[doc->items[k]].ntags);
    }
}

/* ---- bank ----------------------------------------------------------------------------------- */

void eg__retain_read_config(eg_arena_t *a, const eg_bank_t *bank, eg_extract_config_t *x,
                            size_t *chunk_cp, size_t *structured_cp)
{
    cJSON *cfg = eg_bank_config_resolved(bank);
    const cJSON *v;

    memset(x, 0, sizeof(*x));
    *chunk_cp = EG_TEXT_CHUNK_DEFAULT;
    *structured_cp = 0;
    x->mode = EG_EXTRACT_CONCISE;
    x->causal_links = true;
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "retain_chunk_size")) && cJSON_IsNumber(v) &&
        v->valuedouble >= 1)
        *chunk_cp = (size_t)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "retain_structured_chunk_size")) &&
        cJSON_IsNumber(v) && v->valuedouble >= 1)
        *structured_cp = (size_t)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "retain_extraction_mode")) && cJSON_IsString(v))
        eg_extract_mode_parse(v->valuestring, &x->mode);
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "retain_mission")) && cJSON_IsString(v))
        x->mission = eg_arena_strdup(a, v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "retain_custom_instructions")) &&
        cJSON_IsString(v))
        x->custom_instructions = eg_arena_strdup(a, v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "retain_extract_causal_links")))
        x->causal_links = !cJSON_IsFalse(v);
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "llm_output_language")) && cJSON_IsString(v) &&
        v->valuestring[0])
        x->output_language = eg_arena_strdup(a, v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "entities_allow_free_form")))
        x->no_free_form_entities = cJSON_IsFalse(v);
    cJSON_Delete(cfg);
}

static void read_config(eg__run_t *r, const eg_bank_t *bank)
{
    eg__retain_read_config(&r->arena, bank, &r->xcfg, &r->chunk_cp, &r->structured_cp);
}

static void start_docs(eg__run_t *r);

static void on_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    eg__run_t *r = udata;

    (void)created;
    if (err != 0) {
        eg__retain_finish(r, err);
        return;
    }
    read_config(r, bank);
    start_docs(r);
}

/* ---- docs: the stored text an append extends ------------------------------------------------ */

typedef struct {
    eg__run_t *r;
    size_t doc;
} doc_read_t;

static void start_extract(eg__run_t *r);
static void start_processing(eg__run_t *r);

static void on_doc(void *udata, int err, const eg_mem_doc_t *d)
{
    doc_read_t *dr = udata;
    eg__run_t *r = dr->r;
    eg__rdoc_t *doc = &r->docs[dr->doc];

    if (err == 0 && d->original_text == NULL)
        err = EG_EINVAL; /* Hindsight: 400, the document's text is not stored */
    if (err == 0)
        doc->text = eg_arena_strdup(&r->arena, d->original_text);
    else if (err == EG_ENOTFOUND)
        err = 0;
    if (err != 0 && r->err == 0)
        r->err = err;
    if (--r->pending == 0) {
        if (r->err != 0)
            eg__retain_finish(r, r->err);
        else
            start_processing(r);
    }
}

static void start_docs(eg__run_t *r)
{
    r->step = S_DOCS;
    r->pending = 1; /* held until every read is issued */
    for (size_t d = 0; d < r->ndocs; d++) {
        if (!r->docs[d].caller_id || !r->docs[d].append)
            continue;
        doc_read_t *dr = eg_arena_alloc(&r->arena, sizeof(*dr));
        dr->r = r;
        dr->doc = d;
        r->pending++;
        int rc = eg_mem_doc_get(r->ws, r->bank, r->docs[d].id, on_doc, dr);
        if (rc != 0) {
            r->pending--;
            r->err = rc;
            break;
        }
    }
    if (--r->pending == 0) {
        if (r->err != 0)
            eg__retain_finish(r, r->err);
        else
            start_processing(r);
    }
}

/* ---- chunks --------------------------------------------------------------------------------- */

/* The document's original text and chunks. An append re-reads the stored text followed by the
 * new contents as the first item's content (Hindsight concatenates and reprocesses). */
static void chunk_documents(eg__run_t *r)
{
    for (size_t d = 0; d < r->ndocs; d++) {
        eg__rdoc_t *doc = &r->docs[d];
        size_t total = doc->text ? strlen(doc->text) + 1 : 0;
        for (size_t k = 0; k < doc->nitems; k++)
            total += strlen(r->items[doc->items[k]].it.content) + 1;
        char *text = eg_arena_alloc(&r->arena, total + 1), *w = text;
        if (doc->text) {
            w = stpcpy(w, doc->text);
        }
        for (size_t k = 0; k < doc->nitems; k++) {
            if (w != text)
                *w++ = '\n';
            w = stpcpy(w, r->items[doc->items[k]].it.content);
        }
        *w = '\0';
        bool combined = doc->text != NULL;
        doc->text = text;

        size_t cap = 8, n = 0;
        doc->chunks = eg_arena_alloc(&r->arena, cap * sizeof(*doc->chunks));
        doc->chunk_item = eg_arena_alloc(&r->arena, cap * sizeof(*doc->chunk_item));
        for (size_t k = 0; k < doc->nitems; k++) {
            eg__ritem_t *it = &r->items[doc->items[k]];
            if (combined) {
                if (k > 0)
                    break;
                it->content = text;
            }
            eg_extract_chunk_t *c;
            size_t nc = eg_extract_chunks(&r->arena, it->content, strlen(it->content), r->chunk_cp,
                                          r->structured_cp, &c);
            if (n + nc > cap) {
                size_t ncap = (n + nc) * 2;
                const char **v = eg_arena_alloc(&r->arena, ncap * sizeof(*v));
                size_t *vi = eg_arena_alloc(&r->arena, ncap * sizeof(*vi));
                memcpy(v, doc->chunks, n * sizeof(*v));
                memcpy(vi, doc->chunk_item, n * sizeof(*vi));
                doc->chunks = v;
                doc->chunk_item = vi;
                cap = ncap;
            }
            for (size_t q = 0; q < nc; q++) {
                doc->chunks[n] = c[q].text;
                doc->chunk_item[n++] = doc->items[k];
            }
        }
        doc->nchunks = n;
    }
}

/* ---- extract -------------------------------------------------------------------------------- */

static bool has_name(const char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v[i], name) == 0)
            return true;
    return false;
}

static eg__rfact_t *fact_push(eg__run_t *r)
{
    if (r->nfacts == r->cap_facts) {
        size_t cap = r->cap_facts ? r->cap_facts * 2 : 64;
        eg__rfact_t *v = eg_arena_alloc(&r->arena, cap * sizeof(*v));
        if (r->nfacts)
            memcpy(v, r->facts, r->nfacts * sizeof(*v));
        r->facts = v;
        r->cap_facts = cap;
    }
    eg__rfact_t *f = &r->facts[r->nfacts++];
    memset(f, 0, sizeof(*f));
    return f;
}

/* The facts of one chunk: the extractor's entities, then the item's own (Hindsight merges them
 * into every fact of the item), unique case-insensitively. */
static void consume(eg__run_t *r, const eg_extract_result_t *res)
{
    eg__rdoc_t *doc = &r->docs[r->xdoc];
    size_t item = doc->chunk_item[r->xchunk], base = r->nfacts;
    const eg_retain_item_t *it = &r->items[item].it;

    eg_usage_add(&r->usage, &res->usage);
    for (size_t i = 0; i < res->nfacts; i++) {
        const eg_extract_fact_t *x = &res->facts[i];
        if (!x->text || !x->text[0])
            continue;
        eg__rfact_t *f = fact_push(r);
        f->item = item;
        f->doc = r->xdoc;
        f->chunk = r->xchunk;
        f->x = *x;
        f->x.text = eg_arena_strdup(&r->arena, x->text);
        f->names =
            eg_arena_alloc(&r->arena, (x->nentities + it->nentities + 1) * sizeof(*f->names));
        f->resolve =
            eg_arena_alloc(&r->arena, (x->nentities + it->nentities + 1) * sizeof(*f->resolve));
        for (size_t k = 0; k < x->nentities && f->nnames < EG_MEM_ENTITIES_MAX; k++) {
            const char *name = x->entities[k];
            if (!name || !name[0] || has_name(f->names, f->nnames, name))
                continue;
            f->names[f->nnames] = eg_arena_strdup(&r->arena, name);
            f->resolve[f->nnames++] = true;
        }
        for (size_t k = 0; k < it->nentities && f->nnames < EG_MEM_ENTITIES_MAX; k++) {
            const char *name = it->entities[k].text;
            if (!name || !name[0] || has_name(f->names, f->nnames, name))
                continue;
            f->names[f->nnames] = name;
            f->resolve[f->nnames++] = it->resolve_entities;
        }
        f->ncauses = 0;
        for (size_t k = 0; k < x->ncauses && k < EG_EXTRACT_CAUSES_MAX; k++)
            if (x->causes[k] < i && r->xcfg.causal_links)
                f->causes[f->ncauses++] = base + x->causes[k];
    }
    doc->nunits += r->nfacts - base;
}

static void after_extract(eg__run_t *r);

/* One extraction call of the run: chunk `chunk` of document `doc`, and its result until it is
 * consumed (results are consumed in chunk order, whatever order they arrive in). */
struct eg__rxcall_s {
    eg__run_t *r;
    size_t doc, chunk;
    int state; /* X_PENDING, X_DONE, X_FAILED */
    eg_extract_input_t in;
    eg_extract_result_t res;
};

enum { X_PENDING = 0, X_DONE, X_FAILED };

static void pump_extract(eg__run_t *r);

static void on_extracted(eg_extractor_t *x, int status, const eg_extract_result_t *res, void *udata)
{
    struct eg__rxcall_s *c = udata;
    eg__run_t *r = c->r;

    (void)x;
    r->xoutstanding--;
    if (status != 0) {
        /* Nothing of the batch is written: extraction precedes every store write. */
        c->state = X_FAILED;
        if (r->cb_err == 0) {
            r->cb_err = status;
            if (res && res->error)
                r->errmsg = eg_arena_strdup(&r->arena, res->error);
        }
        if (res)
            eg_usage_add(&r->usage, &res->usage);
    } else {
        c->state = X_DONE;
        c->res = *res;
    }
    pump_extract(r);
}

/* Start the call of r->xcalls[i]. */
static int issue(eg__run_t *r, size_t i)
{
    struct eg__rxcall_s *c = &r->xcalls[i];
    eg__rdoc_t *doc = &r->docs[c->doc];
    eg__ritem_t *it = &r->items[doc->chunk_item[c->chunk]];
    const char **given = eg_arena_alloc(&r->arena, (it->it.nentities + 1) * sizeof(*given));

    for (size_t k = 0; k < it->it.nentities; k++)
        given[k] = it->it.entities[k].text;
    c->r = r;
    c->in = (eg_extract_input_t){
        .text = doc->chunks[c->chunk],
        .len = strlen(doc->chunks[c->chunk]),
        .chunk_index = c->chunk,
        .nchunks = doc->nchunks,
        .context = it->it.context,
        .timestamp = it->ts,
        .cfg = &r->xcfg,
        .entities = given,
        .nentities = it->it.nentities,
        .metadata = it->it.metadata,
    };
    r->xoutstanding++;
    int rc = eg_extract_run(eg__retain_extractor(), &r->arena, &c->in, on_extracted, c);
    if (rc != 0)
        r->xoutstanding--;
    return rc;
}

/* Keep up to EG__RETAIN_EXTRACT_WINDOW calls in flight (a model extracts chunks in parallel, as
 * Hindsight does; the provider caps its own concurrency), consume finished results in chunk
 * order (so fact indexes and causal targets are those of a sequential run), and move on once
 * every chunk is consumed — or, after a failure, once no call is left in flight. Providers that
 * answer synchronously re-enter here; the flag turns that into another turn of this loop. */
static void pump_extract(eg__run_t *r)
{
    if (r->xpumping) {
        r->xagain = true;
        return;
    }
    r->xpumping = true;
    do {
        r->xagain = false;
        while (r->cb_err == 0 && r->xconsumed < r->nxcalls &&
               r->xcalls[r->xconsumed].state == X_DONE) {
            struct eg__rxcall_s *c = &r->xcalls[r->xconsumed++];
            r->xdoc = c->doc;
            r->xchunk = c->chunk;
            consume(r, &c->res);
        }
        while (r->cb_err == 0 && r->xissued < r->nxcalls &&
               r->xoutstanding < EG__RETAIN_EXTRACT_WINDOW) {
            int rc = issue(r, r->xissued++);
            if (rc != 0)
                r->cb_err = rc;
        }
    } while (r->xagain);
    r->xpumping = false;
    if (r->xoutstanding > 0)
        return; /* a later on_extracted continues */
    if (r->cb_err != 0)
        eg__retain_finish(r, r->cb_err);
    else if (r->xconsumed == r->nxcalls)
        after_extract(r);
}

/* Extract every chunk, in item order (items are grouped by document, so the order is the
 * documents' chunks by the position of their items). */
static void start_extract(eg__run_t *r)
{
    size_t n = 0;

    r->step = S_EXTRACT;
    chunk_documents(r);
    for (size_t d = 0; d < r->ndocs; d++)
        n += r->docs[d].nchunks;
    r->xcalls = eg_arena_calloc(&r->arena, (n + 1) * sizeof(*r->xcalls));
    for (size_t d = 0; d < r->ndocs; d++)
        for (size_t k = 0; k < r->docs[d].nchunks; k++) {
            r->xcalls[r->nxcalls].doc = d;
            r->xcalls[r->nxcalls++].chunk = k;
        }
    pump_extract(r);
}

/* Ids, times and order: fact g of the batch is 0.01 s after fact g - 1 (mentioned_at and, when
 * set, occurred_start/end), Hindsight's way of keeping a batch's facts in order. */
static void finish_facts(eg__run_t *r)
{
    size_t *per_item = eg_arena_calloc(&r->arena, (r->nitems + 1) * sizeof(*per_item));

    for (size_t g = 0; g < r->nfacts; g++) {
        eg__rfact_t *f = &r->facts[g];
        int64_t off = (int64_t)g * EG_EXTRACT_FACT_OFFSET_US, ts = r->items[f->item].ts;
        f->mentioned_at = ts == EG_MEM_TIME_NONE ? EG_MEM_TIME_NONE : ts + off;
        if (f->x.occurred_start != EG_MEM_TIME_NONE)
            f->x.occurred_start += off;
        if (f->x.occurred_end != EG_MEM_TIME_NONE)
            f->x.occurred_end += off;
        size_t k = per_item[f->item]++;
        if (r->op_id)
            eg_retain_derived_id(r->op_id, "u",
                                 eg_arena_printf(&r->arena, "%zu:%zu", r->items[f->item].gindex, k),
                                 f->id);
        else
            eg_uuid_v4(f->id);
    }
}

/* ---- embed ---------------------------------------------------------------------------------- */

static void start_index(eg__run_t *r);

static void on_embedded(eg_embedder_t *e, int status, void *udata)
{
    eg__run_t *r = udata;

    (void)e;
    r->called_back = true;
    r->cb_err = status;
    if (!r->in_call) {
        if (status != 0)
            eg__retain_finish(r, status);
        else
            start_index(r);
    }
}

static void after_extract(eg__run_t *r)
{
    eg_embedder_t *e = eg__retain_embedder();

    finish_facts(r);
    r->step = S_EMBED;
    r->dim = e->dim;
    if (r->nfacts == 0) {
        start_index(r);
        return;
    }
    r->texts = eg_arena_alloc(&r->arena, r->nfacts * sizeof(*r->texts));
    r->vecs = eg_arena_alloc(&r->arena, r->nfacts * r->dim * sizeof(*r->vecs));
    for (size_t g = 0; g < r->nfacts; g++) {
        r->texts[g] = r->facts[g].x.text;
        r->facts[g].vec = r->vecs + g * r->dim;
    }
    r->in_call = true;
    r->called_back = false;
    int rc = eg_embed_run(e, r->texts, r->nfacts, r->vecs, on_embedded, r);
    r->in_call = false;
    if (rc != 0) {
        eg__retain_finish(r, rc);
        return;
    }
    if (!r->called_back)
        return;
    if (r->cb_err != 0)
        eg__retain_finish(r, r->cb_err);
    else
        start_index(r);
}

/* ---- the builtin providers on the thread pool ------------------------------------------------ */

/* Chunking, extraction and embedding touch nothing but the run (the builtin providers are pure
 * functions), so a large batch does them on the thread pool and the loop stays responsive. Ids
 * are drawn on the loop afterwards (the random generator is not thread-safe). */
static void work_cb(uv_work_t *w)
{
    eg__run_t *r = w->data;

    r->step = S_EXTRACT;
    chunk_documents(r);
    for (r->xdoc = 0; r->xdoc < r->ndocs; r->xdoc++) {
        eg__rdoc_t *doc = &r->docs[r->xdoc];
        for (r->xchunk = 0; r->xchunk < doc->nchunks; r->xchunk++) {
            eg__ritem_t *it = &r->items[doc->chunk_item[r->xchunk]];
            const char **given = eg_arena_alloc(&r->arena, (it->it.nentities + 1) * sizeof(*given));
            for (size_t k = 0; k < it->it.nentities; k++)
                given[k] = it->it.entities[k].text;
            eg_extract_input_t in = {
                .text = doc->chunks[r->xchunk],
                .len = strlen(doc->chunks[r->xchunk]),
                .chunk_index = r->xchunk,
                .nchunks = doc->nchunks,
                .context = it->it.context,
                .timestamp = it->ts,
                .cfg = &r->xcfg,
                .entities = given,
                .nentities = it->it.nentities,
            };
            eg_extract_result_t res;
            eg_extract_builtin_run(&r->arena, &in, &res);
            consume(r, &res);
        }
    }
    if (r->nfacts == 0)
        return;
    r->vecs = eg_arena_alloc(&r->arena, r->nfacts * r->dim * sizeof(*r->vecs));
    for (size_t g = 0; g < r->nfacts; g++) {
        r->facts[g].vec = r->vecs + g * r->dim;
        eg_embed_builtin_vec(r->facts[g].x.text, strlen(r->facts[g].x.text), r->vecs + g * r->dim,
                             r->dim);
    }
}

static void after_work_cb(uv_work_t *w, int status)
{
    eg__run_t *r = w->data;

    if (status != 0) {
        eg__retain_finish(r, EG_ECANCELED);
        return;
    }
    finish_facts(r);
    start_index(r);
}

static void start_processing(eg__run_t *r)
{
    eg_embedder_t *e = eg__retain_embedder();

    r->dim = e->dim;
    /* The worker-thread path embeds with the builtin function itself: only for that embedder. */
    if (eg__retain_builtin() && strncmp(e->name, "builtin", 7) == 0 && eg__retain_loop()) {
        r->work.data = r;
        if (uv_queue_work(eg__retain_loop(), &r->work, work_cb, after_work_cb) == 0)
            return;
    }
    start_extract(r);
}

/* ---- index ---------------------------------------------------------------------------------- */

static void on_index(void *udata, int err, eg_mindex_t *ix)
{
    eg__run_t *r = udata;

    if (err != 0) {
        eg__retain_finish(r, err);
        return;
    }
    if (eg__retain_index_slice(r, ix)) {
        r->step = S_WRITE;
        eg__retain_write(r);
        return;
    }
    /* The next slice after a loop turn, against the index as it is then. */
    int rc = eg_mindex_acquire(r->ws, r->bank, on_index, r);
    if (rc != 0)
        eg__retain_finish(r, rc);
}

static void start_index(eg__run_t *r)
{
    r->step = S_INDEX;
    if (r->nfacts == 0) {
        r->step = S_WRITE;
        eg__retain_write(r);
        return;
    }
    int rc = eg_mindex_acquire(r->ws, r->bank, on_index, r);
    if (rc != 0)
        eg__retain_finish(r, rc);
}

int eg__retain_run(const char *ws, const char *bank, const eg_retain_item_t *items,
                   const size_t *gindex, size_t nitems, const char *const *document_tags,
                   size_t ndocument_tags, const char *op_id, int64_t now_us, eg__run_fn done,
                   void *udata)
{
    eg__run_t *r = eg_xcalloc(1, sizeof(*r));
    eg_arena_t *a = &r->arena;

    eg_arena_init(a);
    r->ws = eg_arena_strdup(a, ws);
    r->bank = eg_arena_strdup(a, bank);
    r->op_id = op_id ? eg_arena_strdup(a, op_id) : NULL;
    if (op_id) {
        r->event_op = r->op_id;
    } else {
        char *id = eg_arena_alloc(a, EG_MEM_UUID_LEN + 1);
        eg_uuid_v4(id);
        r->event_op = id;
    }
    r->now_us = now_us;
    r->done = done;
    r->udata = udata;
    r->document_tags = copy_strs(a, document_tags, ndocument_tags);
    r->ndocument_tags = ndocument_tags;
    r->nitems = nitems;
    r->items = eg_arena_calloc(a, (nitems + 1) * sizeof(*r->items));
    for (size_t i = 0; i < nitems; i++) {
        eg__ritem_t *ri = &r->items[i];
        copy_item(a, &items[i], &ri->it);
        ri->gindex = gindex ? gindex[i] : i;
        ri->ts = ri->it.timestamp == EG_RETAIN_TIME_NOW ? now_us : ri->it.timestamp;
        ri->content = ri->it.content;
        ri->tags = eg_arena_alloc(a, (ri->it.ntags + ndocument_tags + 1) * sizeof(*ri->tags));
        eg__retain_union(ri->tags, &ri->ntags, ri->it.tags, ri->it.ntags);
        eg__retain_union(ri->tags, &ri->ntags, r->document_tags, ndocument_tags);
    }
    group_documents(r);
    r->step = S_BANK;
    int rc = eg_bank_put(r->ws, r->bank, NULL, on_bank, r);
    if (rc != 0) {
        eg__retain_run_free(r);
        return rc;
    }
    return 0;
}
