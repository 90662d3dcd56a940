/* Retain's last steps: one atomic store write per document (engram/mstore.h), in order, then the
 * "retain.completed" bank event. A write's entity refs carry "create" only until a write of the
 * batch created the entity; an entity another writer created first under the same folded name is
 * adopted for the rest of the batch (the store's id_map). */
#include <stdlib.h>
#include <string.h>

#include "engram/bank_webhooks.h"
#include "engram/consolidate.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/ops.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/retain_int.h"

/* ---- write ---------------------------------------------------------------------------------- */

static void write_next(eg__run_t *r);

/* ---- event ---------------------------------------------------------------------------------- */

static void on_emitted(void *udata, int err, const char *event_id)
{
    eg__run_t *r = udata;

    (void)event_id;
    if (err != 0)
        eg_log_warn("retain: the retain.completed event of bank %s was not stored: %s", r->bank,
                    eg_strerror(err));
    eg__retain_finish(r, 0);
}

/* "retain.completed" with data {document_id (a batch of one document), tags (their union)}. The
 * writes are durable already; an event that cannot be stored is logged, not a failed retain. */
static void emit_event(eg__run_t *r)
{
    cJSON *data = cJSON_CreateObject();
    size_t cap = 0, n = 0;

    if (r->ndocs == 1)
        cJSON_AddStringToObject(data, "document_id", r->docs[0].id);
    for (size_t d = 0; d < r->ndocs; d++)
        cap += r->docs[d].ntags;
    if (cap > 0) {
        const char **tags = eg_arena_alloc(&r->arena, cap * sizeof(*tags));
        for (size_t d = 0; d < r->ndocs; d++)
            eg__retain_union(tags, &n, r->docs[d].tags, r->docs[d].ntags);
        cJSON *t = cJSON_AddArrayToObject(data, "tags");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(t, cJSON_CreateString(tags[i]));
    }
    int rc;

    if (r->units_written > 0)
        eg_consolidate_after_retain(r->ws, r->bank); /* queued when enable_observations */
    rc = eg_bank_event_emit(r->ws, r->bank, "retain.completed", r->event_op, "completed", data,
                            on_emitted, r);
    cJSON_Delete(data);
    if (rc != 0) {
        eg_log_warn("retain: cannot emit retain.completed for bank %s: %s", r->bank,
                    eg_strerror(rc));
        eg__retain_finish(r, 0);
    }
}

static cJSON *retain_params(eg__run_t *r, const eg__rdoc_t *doc)
{
    const eg__ritem_t *first = &r->items[doc->items[0]];
    cJSON *p = cJSON_CreateObject();

    if (first->it.context && first->it.context[0])
        cJSON_AddStringToObject(p, "context", first->it.context);
    if (first->ts != EG_MEM_TIME_NONE) {
        char iso[EG_TEXT_ISO_MAX];
        eg_text_format_iso(first->ts, iso);
        cJSON_AddStringToObject(p, "event_date", iso);
    }
    if (first->it.metadata)
        cJSON_AddItemToObject(p, "metadata", cJSON_Duplicate(first->it.metadata, true));
    if (first->it.observation_scopes)
        cJSON_AddItemToObject(p, "observation_scopes",
                              cJSON_Duplicate(first->it.observation_scopes, true));
    if (first->it.strategy)
        cJSON_AddStringToObject(p, "strategy", first->it.strategy);
    cJSON_AddStringToObject(p, "update_mode", doc->append ? "append" : "replace");
    eg_arena_defer(&r->arena, (void (*)(void *))cJSON_Delete, p);
    return p;
}

static void on_written(void *udata, int err, const eg_mem_write_result_t *res)
{
    eg__run_t *r = udata;
    eg__rdoc_t *doc = &r->docs[r->wdoc];

    if (err != 0) {
        eg_log_warn("retain: writing document %s of bank %s failed: %s", doc->id, r->bank,
                    eg_strerror(err));
        eg__retain_finish(r, err);
        return;
    }
    /* A new entity another writer created first (same folded name) was merged into theirs: later
     * documents of this batch refer to that one. */
    for (size_t i = 0; i < res->n_map; i++) {
        for (size_t e = 0; e < r->nents; e++) {
            if (strcmp(r->ents[e].id, res->id_map[i][0]) != 0)
                continue;
            snprintf(r->ents[e].id, sizeof(r->ents[e].id), "%s", res->id_map[i][1]);
            r->ents[e].created = true;
            for (size_t g = 0; g < r->nfacts; g++)
                for (size_t k = 0; k < r->facts[g].nentity_ids; k++)
                    if (strcmp(r->facts[g].entity_ids[k], res->id_map[i][0]) == 0)
                        r->facts[g].entity_ids[k] = r->ents[e].id;
        }
    }
    for (size_t g = 0; g < r->nfacts; g++) {
        if (r->facts[g].doc != r->wdoc)
            continue;
        for (size_t k = 0; k < r->facts[g].nentity_ids; k++)
            for (size_t e = 0; e < r->nents; e++)
                if (strcmp(r->ents[e].id, r->facts[g].entity_ids[k]) == 0)
                    r->ents[e].created = true;
    }
    r->units_written += doc->nunits;
    if (r->op_id && r->ndocs > 1)
        eg_op_update("b", eg__retain_scope_id(&r->arena, r->ws, r->bank), r->op_id, EG_OP_KEEP,
                     (double)(r->wdoc + 1) / (double)r->ndocs, NULL, NULL, NULL);
    r->wdoc++;
    write_next(r);
}

/* The entity refs of one document's units: each entity once, with how many of the document's
 * units mention it and the latest of their event times. */
static size_t doc_refs(eg__run_t *r, size_t d, eg_mem_entity_ref_t **out)
{
    eg_mem_entity_ref_t *refs = eg_arena_alloc(&r->arena, (r->nents + 1) * sizeof(*refs));
    size_t n = 0;

    for (size_t e = 0; e < r->nents; e++) {
        eg__rent_t *ent = &r->ents[e];
        int64_t mentions = 0, seen = EG_MEM_TIME_NONE;
        for (size_t g = 0; g < r->nfacts; g++) {
            eg__rfact_t *f = &r->facts[g];
            if (f->doc != d)
                continue;
            for (size_t k = 0; k < f->nentity_ids; k++) {
                if (strcmp(f->entity_ids[k], ent->id) != 0)
                    continue;
                mentions++;
                int64_t t =
                    f->x.occurred_start != EG_MEM_TIME_NONE ? f->x.occurred_start : f->mentioned_at;
                if (t != EG_MEM_TIME_NONE && (seen == EG_MEM_TIME_NONE || t > seen))
                    seen = t;
            }
        }
        if (mentions == 0)
            continue;
        refs[n++] =
            (eg_mem_entity_ref_t){ent->id, ent->name, ent->is_new && !ent->created, mentions, seen};
    }
    *out = refs;
    return n;
}

static void write_next(eg__run_t *r)
{
    if (r->wdoc >= r->ndocs) {
        emit_event(r);
        return;
    }
    eg__rdoc_t *doc = &r->docs[r->wdoc];
    const eg__ritem_t *first = &r->items[doc->items[0]];
    eg_mem_write_t w;
    char hash[65];

    memset(&w, 0, sizeof(w));
    eg_sha256_hex(doc->text, strlen(doc->text), hash);
    w.doc.id = doc->id;
    w.doc.original_text = doc->text;
    w.doc.content_hash = eg_arena_strdup(&r->arena, hash);
    w.doc.created_at = w.doc.updated_at = r->now_us;
    w.doc.tags = doc->tags;
    w.doc.ntags = doc->ntags;
    w.doc.metadata = first->it.metadata;
    w.doc.retain_params = retain_params(r, doc);
    w.doc.text_length = eg_text_codepoints(doc->text, strlen(doc->text));
    w.replace = true;
    w.chunks = doc->chunks;
    w.nchunks = doc->nchunks;
    w.units = eg_arena_calloc(&r->arena, (doc->nunits + 1) * sizeof(*w.units));
    for (size_t g = 0; g < r->nfacts; g++) {
        eg__rfact_t *f = &r->facts[g];
        if (f->doc != r->wdoc)
            continue;
        eg_mem_new_unit_t *nu = &w.units[w.nunits++];
        const eg__ritem_t *it = &r->items[f->item];
        nu->unit.id = f->id;
        nu->unit.text = f->x.text;
        nu->unit.context = it->it.context ? it->it.context : "";
        nu->unit.type = f->x.type;
        nu->unit.occurred_start = f->x.occurred_start;
        nu->unit.occurred_end = f->x.occurred_end;
        nu->unit.mentioned_at = f->mentioned_at;
        nu->unit.created_at = nu->unit.updated_at = r->now_us;
        nu->unit.tags = it->tags;
        nu->unit.ntags = it->ntags;
        nu->unit.metadata = it->it.metadata;
        nu->unit.entity_ids = f->entity_ids;
        nu->unit.nentities = f->nentity_ids;
        nu->unit.document_id = doc->id;
        nu->unit.chunk_id = eg_mem_chunk_id(&r->arena, r->bank, doc->id, f->chunk);
        nu->unit.invalidated_at = nu->unit.edited_at = EG_MEM_TIME_NONE;
        nu->unit.proof_count = 1;
        nu->vec = f->vec;
        nu->links = f->links;
        nu->nlinks = f->nlinks;
    }
    eg_mem_entity_ref_t *refs;
    w.nentities = doc_refs(r, r->wdoc, &refs);
    w.entities = refs;
    w.dim = r->dim;
    w.embed_model = eg__retain_embedder()->name;
    w.write_key = r->op_id ? eg_arena_printf(&r->arena, "%s:%zu", r->op_id, r->wdoc) : NULL;
    int rc = eg_mem_write(r->ws, r->bank, &w, on_written, r);
    if (rc != 0)
        eg__retain_finish(r, rc);
}

void eg__retain_write(eg__run_t *r)
{
    r->wdoc = 0;
    write_next(r);
}
