/* Memories (engram/memories.h): curated edits of one memory unit.
 *
 * A read-modify-write with compare-and-set: read the record, apply the edit, and write it back
 * with eg_mem_unit_replace only if its updated_at is still the one read; a concurrent writer
 * makes that EG_ECONFLICT, and the edit starts over from a fresh read (at most
 * EG_MEMORIES_PATCH_TRIES times). A new text is re-embedded with the process's embedder
 * (engram/llm.h; the builtin one at the dimension of the bank's vectors); entity names are resolved
 * as retain resolves them, against the bank's index, and names that match nothing become new
 * entities in the same write. The edited memory is read back for the answer.
 *
 * Consolidation (docs/consolidation.md, "Curated edits"). A new text, or a change of state, makes
 * the fact pending again and detaches it in the same script (eg_mem_unit_curate): the links it
 * holds are dropped and every observation listing it among its sources forgets it (proof_count
 * follows; one left with no source is deleted). Hindsight's "drops its derived observations":
 * what the observations drew from this fact goes, what they drew from other facts stays. A valid
 * fact made pending that way queues a consolidation run of the bank (deduplicated). */
#include <stdlib.h>
#include <string.h>

#include "engram/consolidate.h"
#include "engram/embed.h"
#include "engram/error.h"
#include "engram/llm.h"
#include "engram/retain.h"
#include "engram/util.h"
#include "memories_int.h"

typedef struct patch_req_s {
    eg__memreq_t r;
    char *unit_id;
    eg_memory_patch_t p; /* strings copied into the arena */
    eg_memory_patch_fn cb;
    int tries;
    eg_mem_unit_t *u;          /* the record being edited (arena) */
    int64_t expect;            /* its updated_at as read */
    float *vec;                /* new embedding, or NULL */
    const char *texts[1];      /* the new text, for a model embedder */
    eg_mem_entity_ref_t *news; /* entities the edit creates */
    size_t nnews;
    size_t dim;
    bool detach;  /* drop its links and its place in observations (text or state changed) */
    bool requeue; /* valid and pending after the edit: queue a consolidation run */
    char why[320];
} patch_req_t;

static void patch_done(patch_req_t *pr, int err, const eg_memory_t *m)
{
    pr->cb(pr->r.udata, err, err == EG_EINVAL && pr->why[0] ? pr->why : NULL, err ? NULL : m);
    eg__memreq_free(pr);
}

static int patch_read(patch_req_t *pr);

static void on_patch_reread(void *udata, int err, eg_memory_t *items, size_t n, const uint32_t *pos)
{
    patch_req_t *pr = udata;

    (void)pos;
    if (err == 0 && n == 0)
        err = EG_ENOTFOUND; /* deleted right after the edit */
    patch_done(pr, err, err ? NULL : &items[0]);
}

static void on_patch_written(void *udata, int err, int64_t n)
{
    patch_req_t *pr = udata;
    const char *ids[1];

    (void)n;
    if (err == EG_ECONFLICT && pr->tries < EG_MEMORIES_PATCH_TRIES) {
        err = patch_read(pr); /* somebody else wrote it in between: start over */
        if (err)
            patch_done(pr, err, NULL);
        return;
    }
    if (err == EG_EINVAL) /* an entity went away meanwhile, or the record moved */
        snprintf(pr->why, sizeof(pr->why), "Memory unit '%s' changed during the edit; retry",
                 pr->unit_id);
    if (err) {
        patch_done(pr, err, NULL);
        return;
    }
    if (pr->requeue)
        eg_consolidate_after_retain(pr->r.ws_id, pr->r.bank_id);
    ids[0] = pr->unit_id;
    err = eg__mem_fetch(&pr->r.arena, pr->r.ws_id, pr->r.bank_id, ids, 1, on_patch_reread, pr);
    if (err)
        patch_done(pr, err, NULL);
}

static void patch_write(patch_req_t *pr)
{
    int rc = eg_mem_unit_curate(pr->r.ws_id, pr->r.bank_id, pr->u, pr->vec, pr->dim, pr->expect,
                                pr->news, pr->nnews, pr->detach, on_patch_written, pr);

    if (rc)
        patch_done(pr, rc, NULL);
}

/* Entity names -> entity ids, as retain resolves a fact's names (engram/retain.h): with
 * resolve_entities a similar existing entity is reused when it scores above the threshold; with
 * literal names only a case-insensitive match is. Other names become new entities (pr->news),
 * unless the bank has the same folded name. Duplicates count once. */
static void resolve_entities(patch_req_t *pr, eg_mindex_t *ix)
{
    eg_arena_t *a = &pr->r.arena;
    const eg_mem_unit_t *u = pr->u;
    size_t n = pr->p.nentities, nids = 0, nnew = 0;
    const char **ids = eg_arena_alloc(a, (n ? n : 1) * sizeof(*ids));
    eg_resolve_mention_t *m = eg_arena_alloc(a, (n ? n : 1) * sizeof(*m));
    eg_resolve_out_t *out = eg_arena_alloc(a, (n ? n : 1) * sizeof(*out));
    int64_t ev = u->occurred_start != EG_MEM_TIME_NONE ? u->occurred_start : u->mentioned_at;
    size_t nm = 0;

    for (size_t i = 0; i < n; i++) {
        const char *folded = eg_mem_entity_fold(a, pr->p.entities[i]);
        if (folded == NULL || folded[0] == '\0')
            continue; /* a name with no letters or digits names nothing */
        m[nm++] = (eg_resolve_mention_t){
            pr->p.entities[i], 0, ev == EG_MEM_TIME_NONE ? INT64_MIN : ev, !pr->p.literal_entities};
    }
    eg_resolve_new_t *news = NULL;
    size_t nnews = 0;
    if (nm > 0)
        eg_retain_resolve_mentions(a, ix, m, nm, out, &news, &nnews);
    pr->news = eg_arena_alloc(a, (nnews ? nnews : 1) * sizeof(*pr->news));
    const char **new_ids = eg_arena_alloc(a, (nnews ? nnews : 1) * sizeof(*new_ids));
    for (size_t j = 0; j < nnews; j++) {
        uint32_t idx;
        char *folded = eg_mem_entity_fold(a, news[j].name);
        if (eg_mindex_entity_by_folded(ix, folded, &idx) == 0) {
            new_ids[j] = eg_arena_strdup(a, eg_mindex_entity(ix, idx)->id);
            continue;
        }
        char *id = eg_arena_alloc(a, EG_MEM_UUID_LEN + 1);
        eg_uuid_v4(id);
        new_ids[j] = id;
        pr->news[nnew++] = (eg_mem_entity_ref_t){
            .id = id, .name = news[j].name, .is_new = true, .mentions = 1, .seen_at = ev};
    }
    for (size_t k = 0; k < nm; k++) {
        const char *id = out[k].entity_id ? out[k].entity_id : new_ids[out[k].new_index];
        bool dup = false;
        for (size_t q = 0; q < nids && !dup; q++)
            dup = strcmp(ids[q], id) == 0;
        if (!dup && nids < EG_MEM_ENTITIES_MAX)
            ids[nids++] = eg_arena_strdup(a, id);
    }
    pr->nnews = 0;
    for (size_t j = 0; j < nnew; j++) { /* a new entity past the cap is not named: not created */
        bool named = false;
        for (size_t q = 0; q < nids && !named; q++)
            named = ids[q] == pr->news[j].id || strcmp(ids[q], pr->news[j].id) == 0;
        if (named)
            pr->news[pr->nnews++] = pr->news[j];
    }
    pr->u->entity_ids = ids;
    pr->u->nentities = nids;
}

/* The new text's vector from the configured embedder (a model): then the write. */
static void on_patch_vec(eg_embedder_t *e, int status, void *udata)
{
    patch_req_t *pr = udata;

    (void)e;
    if (status != 0) {
        patch_done(pr, status, NULL);
        return;
    }
    patch_write(pr);
}

static void on_patch_index(void *udata, int err, eg_mindex_t *ix)
{
    patch_req_t *pr = udata;

    if (err) {
        patch_done(pr, err, NULL);
        return;
    }
    pr->nnews = 0;
    if (pr->p.set_entities)
        resolve_entities(pr, ix);
    if (pr->p.text) {
        eg_embedder_t *e = eg_llm_embedder();

        if (!eg_embed_is_builtin(e)) {
            pr->dim = e->dim;
            pr->vec = eg_arena_alloc(&pr->r.arena, pr->dim * sizeof(float));
            pr->texts[0] = pr->u->text;
            if ((err = eg_embed_run(e, pr->texts, 1, pr->vec, on_patch_vec, pr)) != 0)
                patch_done(pr, err, NULL);
            return;
        }
        pr->dim = eg_mindex_dim(ix) ? eg_mindex_dim(ix) : e->dim;
        pr->vec = eg_arena_alloc(&pr->r.arena, pr->dim * sizeof(float));
        eg_embed_builtin_vec(pr->u->text, strlen(pr->u->text), pr->vec, pr->dim);
    }
    patch_write(pr);
}

/* Apply the edit to the record just read; true when its content changed. */
static bool apply(patch_req_t *pr, int64_t now)
{
    eg_mem_unit_t *u = pr->u;
    const eg_memory_patch_t *p = &pr->p;
    bool content = false, was_invalidated = u->invalidated;

    pr->detach = false;
    if (p->text && strcmp(p->text, u->text) != 0) {
        u->text = p->text;
        content = true;
        pr->detach = true;
    }
    if (p->context && strcmp(p->context, u->context) != 0) {
        u->context = p->context;
        content = true;
    }
    if (p->set_occurred_start && p->occurred_start != u->occurred_start) {
        u->occurred_start = p->occurred_start;
        content = true;
    }
    if (p->set_occurred_end && p->occurred_end != u->occurred_end) {
        u->occurred_end = p->occurred_end;
        content = true;
    }
    if (p->set_type && p->type != u->type) {
        u->type = p->type;
        content = true;
    }
    if (p->set_entities)
        content = true;
    if (p->set_state && p->invalidated) {
        if (!u->invalidated)
            u->invalidated_at = now;
        u->invalidated = true;
        u->invalidation_reason = p->reason;
    } else if (p->set_state) {
        u->invalidated = false;
        u->invalidation_reason = NULL;
        u->invalidated_at = EG_MEM_TIME_NONE;
    }
    if (p->set_state && u->invalidated != was_invalidated)
        pr->detach = true; /* invalidation prunes; a revert comes back pending */
    if (pr->detach) {
        u->consolidated_at = EG_MEM_TIME_NONE;
        u->consolidation_failed_at = EG_MEM_TIME_NONE;
        u->consolidation_error = NULL;
    }
    pr->requeue = pr->detach && !u->invalidated;
    if (content)
        u->edited_at = now;
    u->updated_at = now > u->updated_at ? now : u->updated_at + 1;
    return content;
}

static void on_patch_read(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    patch_req_t *pr = udata;
    int64_t now = eg_now_ms() * 1000;

    if (err == 0 && (n < 1 || units[0] == NULL))
        err = EG_ENOTFOUND;
    if (err) {
        patch_done(pr, err, NULL);
        return;
    }
    if (units[0]->type == EG_FACT_OBSERVATION) {
        snprintf(pr->why, sizeof(pr->why),
                 "Memory %s is a observation; only world/experience facts can be curated",
                 pr->unit_id);
        patch_done(pr, EG_EINVAL, NULL);
        return;
    }
    pr->u = eg__mem_unit_copy(&pr->r.arena, units[0]);
    pr->expect = units[0]->updated_at;
    pr->vec = NULL;
    pr->dim = 0;
    apply(pr, now);
    if (pr->p.text || pr->p.set_entities) {
        /* The index gives the vectors' dimension and the entities by name. */
        err = eg_mindex_acquire(pr->r.ws_id, pr->r.bank_id, on_patch_index, pr);
        if (err)
            patch_done(pr, err, NULL);
        return;
    }
    patch_write(pr);
}

static int patch_read(patch_req_t *pr)
{
    const char *ids[1] = {pr->unit_id};

    pr->tries++;
    return eg_mem_units_get(pr->r.ws_id, pr->r.bank_id, ids, 1, on_patch_read, pr);
}

int eg_memories_patch(const char *ws_id, const char *bank_id, const char *unit_id,
                      const eg_memory_patch_t *p, eg_memory_patch_fn cb, void *udata)
{
    patch_req_t *pr;
    eg_arena_t *a;
    int rc;

    if (ws_id == NULL || bank_id == NULL || unit_id == NULL || p == NULL || cb == NULL ||
        (p->text && p->text[0] == '\0') ||
        (p->set_type && p->type != EG_FACT_WORLD && p->type != EG_FACT_EXPERIENCE))
        return EG_EINVAL;
    pr = eg__memreq_new(sizeof(*pr), ws_id, bank_id, udata);
    a = &pr->r.arena;
    pr->unit_id = eg_arena_strdup(a, unit_id);
    pr->cb = cb;
    pr->p = *p;
    pr->p.text = eg_arena_strdup(a, p->text);
    pr->p.context = eg_arena_strdup(a, p->context);
    pr->p.reason = eg_arena_strdup(a, p->reason);
    if (p->set_entities && p->nentities) {
        const char **v = eg_arena_alloc(a, p->nentities * sizeof(*v));

        for (size_t i = 0; i < p->nentities; i++)
            v[i] = eg_arena_strdup(a, p->entities[i]);
        pr->p.entities = v;
    }
    rc = patch_read(pr);
    if (rc)
        eg__memreq_free(pr);
    return rc;
}
