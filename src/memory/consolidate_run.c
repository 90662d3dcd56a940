/* The "consolidation" queue's worker and the builtin (model-free) path.
 *
 * A run: the operation record is read (a final or deleted one drops the job and releases the
 * bank's run key), moved to processing, and then batches follow until no pending fact is left:
 * up to 50 pending facts of the run's scopes, oldest first, are taken from the index, their
 * records and their documents' observation_scopes read, and the batch goes through the model
 * (consolidate_llm.c) or the builtin path below; its outcome is one atomic apply. A fact is taken
 * up at most once per run (a fact whose mark lost a race with a curated edit waits for the next
 * run). Then the run key is released — or, when a request came in meanwhile (dirty), the index is
 * looked at once more — the record completed (failed, with the first model error, when the model
 * failed on some facts), and "consolidation.completed" emitted. Storage errors retry the job with
 * backoff; the record stays processing meanwhile, and a redelivered job resumes from the facts
 * still pending.
 *
 * The builtin path makes no text of its own: a fact within cosine 0.9 (the index's vectors) of
 * an observation of one of its scopes joins it (proof_count = its sources); one within 0.9 of
 * facts of the scope (tags containing the scope's) of which none is a source of an observation
 * there starts one with them, its text the earliest fact's. Every source of an observation is
 * within 0.9 of it (it joined that way, or the observation is the text of a fact within 0.9), so
 * the observations holding a fact that repeats the new one are found among the observations near
 * that fact. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/bank_webhooks.h"
#include "engram/embed.h"
#include "engram/error.h"
#include "engram/llm.h"
#include "engram/log.h"
#include "engram/ops.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "memory/consolidate_int.h"
#include "memory/memories_int.h"
#include "memory/mstore_int.h"
#include "memory/retain_int.h"

#define MAX_ATTEMPTS 8
#define NEAR_K       16 /* neighbours looked at per fact and scope */

static struct {
    eg_queue_t *q;
} s_w;

eg_embedder_t *eg__cons_embedder(void)
{
    return eg__retain_embedder();
}

static bool transient(int err)
{
    return err == EG_EUNAVAIL || err == EG_ESTORETIMEOUT || err == EG_EREDIS ||
           err == EG_ECANCELED || err == EG_EBUSY;
}

/* ---- the run's set of facts taken up ------------------------------------------------------------
 */

static uint64_t id_hash(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h == 0 ? 1 : h;
}

static bool seen_has(const eg__cons_run_t *r, uint64_t h)
{
    if (r->seen_cap == 0)
        return false;
    for (size_t i = h & (r->seen_cap - 1); r->seen[i]; i = (i + 1) & (r->seen_cap - 1))
        if (r->seen[i] == h)
            return true;
    return false;
}

static void seen_add(eg__cons_run_t *r, uint64_t h)
{
    if ((r->nseen + 1) * 2 > r->seen_cap) {
        uint64_t *old = r->seen;
        size_t oc = r->seen_cap;

        r->seen_cap = oc ? oc * 2 : 256;
        r->seen = eg_xcalloc(r->seen_cap, sizeof(*r->seen));
        r->nseen = 0;
        for (size_t i = 0; i < oc; i++)
            if (old[i])
                seen_add(r, old[i]);
        free(old);
    }
    if (seen_has(r, h))
        return;
    for (size_t i = h & (r->seen_cap - 1);; i = (i + 1) & (r->seen_cap - 1)) {
        if (!r->seen[i]) {
            r->seen[i] = h;
            r->nseen++;
            return;
        }
    }
}

/* ---- ending -------------------------------------------------------------------------------------
 */

static void run_free(eg__cons_run_t *r)
{
    eg_arena_destroy(&r->batch);
    eg_arena_destroy(&r->arena);
    free(r->seen);
    free(r);
}

static void give_up(eg__cons_run_t *r, int err);

static void run_retry(eg__cons_run_t *r, int err)
{
    if (eg_job_attempt(r->job) >= MAX_ATTEMPTS) {
        give_up(r, err);
        return;
    }
    eg_log_warn("consolidation: operation %s (bank %s) attempt %u: %s; retrying", r->op, r->bank,
                eg_job_attempt(r->job), eg_strerror(err));
    eg_job_retry(r->job, 0, eg_strerror(err));
    run_free(r);
}

static void on_event(void *udata, int err, const char *event_id)
{
    eg__cons_run_t *r = udata;

    (void)event_id;
    if (err)
        eg_log_warn("consolidation: the consolidation.completed event of bank %s was not stored: "
                    "%s",
                    r->bank, eg_strerror(err));
    eg_job_done(r->job, 0);
    run_free(r);
}

static void emit(eg__cons_run_t *r, bool failed)
{
    cJSON *data = cJSON_CreateObject();
    int rc;

    cJSON_AddNumberToObject(data, "observations_created", (double)r->created);
    cJSON_AddNumberToObject(data, "observations_updated", (double)r->updated);
    cJSON_AddNumberToObject(data, "observations_deleted", (double)r->deleted);
    if (failed)
        cJSON_AddStringToObject(data, "error_message", r->model_error);
    rc = eg_bank_event_emit(r->ws, r->bank, "consolidation.completed", r->op,
                            failed ? "failed" : "completed", data, on_event, r);
    cJSON_Delete(data);
    if (rc)
        on_event(r, rc, NULL);
}

static void on_final(void *udata, int err, const eg_op_t *op)
{
    eg__cons_run_t *r = udata;

    (void)op;
    if (err && transient(err) && eg_job_attempt(r->job) < MAX_ATTEMPTS) {
        run_retry(r, err);
        return;
    }
    eg_log_info("consolidation: bank %s operation %s: %zu created, %zu updated, %zu deleted, %zu "
                "facts failed",
                r->bank, r->op, r->created, r->updated, r->deleted, r->failed);
    emit(r, r->model_error != NULL);
}

static void complete(eg__cons_run_t *r)
{
    bool failed = r->model_error != NULL;
    int rc = eg_op_update("b", r->scope, r->op, failed ? EG_OP_FAILED : EG_OP_COMPLETED, -1,
                          failed ? r->model_error : NULL, on_final, r);

    if (rc)
        run_retry(r, rc);
}

static void next_batch(eg__cons_run_t *r);

static void on_finished(void *udata, int err, bool again)
{
    eg__cons_run_t *r = udata;

    if (err) {
        run_retry(r, err);
        return;
    }
    if (again)
        next_batch(r);
    else
        complete(r);
}

/* Drop the job without touching the record (it is final, gone, or was never ours). */
static void on_dropped(void *udata, int err, bool again)
{
    eg__cons_run_t *r = udata;

    (void)again;
    if (err && transient(err) && eg_job_attempt(r->job) < MAX_ATTEMPTS) {
        run_retry(r, err);
        return;
    }
    eg_job_done(r->job, 0);
    run_free(r);
}

static void drop(eg__cons_run_t *r)
{
    if (eg__cons_finish(r->ws, r->bank, r->op, true, on_dropped, r) != 0) {
        eg_job_done(r->job, 0);
        run_free(r);
    }
}

/* A storage error on the last attempt: fail the record and release the run key, so the next
 * request starts a new run instead of waiting for this one. */
static void on_abort_final(void *udata, int err, const eg_op_t *op)
{
    (void)err;
    (void)op;
    drop(udata);
}

void eg__cons_batch_done(eg__cons_run_t *r, int err)
{
    if (err == 0) {
        eg_arena_destroy(&r->batch);
        eg_arena_init(&r->batch);
        r->facts = NULL;
        r->nfacts = 0;
        r->path = NULL;
        /* Touch the record: updated shows the run is alive (see the enqueue script). */
        eg_op_update("b", r->scope, r->op, EG_OP_KEEP, -1, NULL, NULL, NULL);
        next_batch(r);
        return;
    }
    if (transient(err) && eg_job_attempt(r->job) < MAX_ATTEMPTS) {
        run_retry(r, err);
        return;
    }
    give_up(r, err);
}

static void give_up(eg__cons_run_t *r, int err)
{
    eg_log_warn("consolidation: operation %s (bank %s) gives up: %s", r->op, r->bank,
                eg_strerror(err));
    if (eg_op_update("b", r->scope, r->op, EG_OP_FAILED, -1, eg_strerror(err), on_abort_final, r) !=
        0)
        drop(r);
}

/* ---- marking ------------------------------------------------------------------------------------
 */

void eg__cons_mark_facts(eg__cons_run_t *r, int64_t now_us, const eg_mem_unit_t ***out, size_t *n)
{
    const eg_mem_unit_t **v = eg_arena_alloc(&r->batch, (r->nfacts + 1) * sizeof(*v));

    for (size_t i = 0; i < r->nfacts; i++) {
        eg_mem_unit_t *u = r->facts[i].u;

        if (r->facts[i].error) {
            u->consolidated_at = EG_MEM_TIME_NONE;
            u->consolidation_failed_at = now_us;
            u->consolidation_error = r->facts[i].error;
            r->failed++;
        } else {
            u->consolidated_at = now_us;
            u->consolidation_failed_at = EG_MEM_TIME_NONE;
            u->consolidation_error = NULL;
        }
        v[i] = u;
    }
    *out = v;
    *n = r->nfacts;
}

/* ---- the builtin path
 * ----------------------------------------------------------------------------- */

/* What the index says about one (fact, scope): observations of the scope near the fact (direct)
 * or near a fact that repeats it, and the facts of the scope that repeat it. */
typedef struct near_s {
    size_t f, s;
    const char **obs;
    float *score;
    bool *direct;
    size_t nobs;
    const char **facts;
    size_t nfacts;
} near_t;

/* An observation the batch creates or changes. */
typedef struct tobs_s {
    eg_mem_unit_t *u;
    bool is_new, changed;
    int64_t expect;
    size_t f, s; /* the scope: facts[f].scopes[s] */
} tobs_t;

typedef struct builtin_s {
    near_t *near;
    size_t nnear;
    const char **fetch; /* candidate records to read */
    size_t nfetch;
    const eg_mem_unit_t **recs; /* their records (copies), NULL when gone */
    tobs_t *obs;
    size_t nobs, cap;
    float *vecs;
} builtin_t;

typedef struct filt_s {
    eg_mindex_t *ix;
    uint32_t self;
    const uint32_t *tags;
    size_t ntags;
    bool facts; /* facts of the scope too, not only its observations */
} filt_t;

static bool near_filter(uint32_t slot, void *udata)
{
    const filt_t *f = udata;
    const eg_mindex_unit_t *u = eg_mindex_unit(f->ix, slot);

    if (u == NULL || u->invalidated || slot == f->self)
        return false;
    if (u->type == EG_FACT_OBSERVATION)
        return eg__cons_tags_exact(u, f->tags, f->ntags);
    return f->facts && eg__cons_tags_superset(u, f->tags, f->ntags);
}

static void fetch_add(eg__cons_run_t *r, builtin_t *b, const char *id)
{
    for (size_t i = 0; i < b->nfetch; i++)
        if (strcmp(b->fetch[i], id) == 0)
            return;
    for (size_t i = 0; i < r->nfacts; i++)
        if (strcmp(r->facts[i].u->id, id) == 0)
            return;
    b->fetch[b->nfetch++] = eg_arena_strdup(&r->batch, id);
}

static void near_obs_add(eg_arena_t *a, near_t *nr, const char *id, float score, bool direct)
{
    for (size_t i = 0; i < nr->nobs; i++) {
        if (strcmp(nr->obs[i], id) == 0) {
            if (direct && (!nr->direct[i] || score > nr->score[i])) {
                nr->direct[i] = true;
                nr->score[i] = score;
            }
            return;
        }
    }
    nr->obs[nr->nobs] = eg_arena_strdup(a, id);
    nr->score[nr->nobs] = score;
    nr->direct[nr->nobs] = direct;
    nr->nobs++;
}

static void builtin_records(void *udata, int err, const eg_mem_unit_t *const *units, size_t n);

static void on_builtin_index(void *udata, int err, eg_mindex_t *ix)
{
    eg__cons_run_t *r = udata;
    builtin_t *b = r->path;
    size_t dim, total = 0;
    float *v, *gv;
    eg_vhit_t hits[NEAR_K], ohits[4];
    int rc;

    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    dim = eg_mindex_dim(ix);
    v = eg_arena_alloc(&r->batch, (dim + 1) * sizeof(float));
    gv = eg_arena_alloc(&r->batch, (dim + 1) * sizeof(float));
    for (size_t i = 0; i < r->nfacts; i++)
        total += r->facts[i].nscopes;
    b->near = eg_arena_calloc(&r->batch, (total + 1) * sizeof(*b->near));
    b->fetch = eg_arena_alloc(&r->batch, (total * NEAR_K * 5 + 1) * sizeof(*b->fetch));
    for (size_t i = 0; i < r->nfacts; i++) {
        uint32_t slot;

        if (eg_mindex_find(ix, r->facts[i].u->id, &slot) != 0 ||
            eg_vindex_get(eg_mindex_vectors(ix), slot, v) != 0)
            continue;
        for (size_t s = 0; s < r->facts[i].nscopes; s++) {
            near_t *nr = &b->near[b->nnear++];
            filt_t flt = {ix, slot, eg__cons_scope_ids(&r->batch, ix, &r->facts[i].scopes[s]),
                          r->facts[i].scopes[s].ntags, true};
            eg_vsearch_t q = {.k = NEAR_K,
                              .min_score = EG_CONSOLIDATE_DUP_MIN,
                              .filter = near_filter,
                              .udata = &flt};
            size_t nh = eg_vindex_search(eg_mindex_vectors(ix), v, &q, hits);

            nr->f = i;
            nr->s = s;
            nr->obs = eg_arena_alloc(&r->batch, (NEAR_K * 5 + 1) * sizeof(*nr->obs));
            nr->score = eg_arena_alloc(&r->batch, (NEAR_K * 5 + 1) * sizeof(*nr->score));
            nr->direct = eg_arena_alloc(&r->batch, (NEAR_K * 5 + 1) * sizeof(*nr->direct));
            nr->facts = eg_arena_alloc(&r->batch, (NEAR_K + 1) * sizeof(*nr->facts));
            for (size_t h = 0; h < nh; h++) {
                const eg_mindex_unit_t *u = eg_mindex_unit(ix, hits[h].slot);

                if (u->type == EG_FACT_OBSERVATION) {
                    near_obs_add(&r->batch, nr, u->id, hits[h].score, true);
                    fetch_add(r, b, u->id);
                    continue;
                }
                nr->facts[nr->nfacts++] = eg_arena_strdup(&r->batch, u->id);
                fetch_add(r, b, u->id);
                /* The observations near that fact: one of them may hold it. */
                if (eg_vindex_get(eg_mindex_vectors(ix), hits[h].slot, gv) == 0) {
                    filt_t of = flt;
                    eg_vsearch_t oq = q;
                    size_t no;

                    of.self = hits[h].slot;
                    of.facts = false;
                    oq.k = 4;
                    oq.udata = &of;
                    no = eg_vindex_search(eg_mindex_vectors(ix), gv, &oq, ohits);
                    for (size_t k = 0; k < no; k++) {
                        const eg_mindex_unit_t *o = eg_mindex_unit(ix, ohits[k].slot);
                        near_obs_add(&r->batch, nr, o->id, ohits[k].score, false);
                        fetch_add(r, b, o->id);
                    }
                }
            }
        }
    }
    rc = eg_mem_units_get(r->ws, r->bank, b->fetch, b->nfetch, builtin_records, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

/* A record by id: the batch's facts, then the fetched candidates. */
static const eg_mem_unit_t *rec_of(eg__cons_run_t *r, builtin_t *b, const char *id)
{
    for (size_t i = 0; i < r->nfacts; i++)
        if (strcmp(r->facts[i].u->id, id) == 0)
            return r->facts[i].u;
    for (size_t i = 0; i < b->nfetch; i++)
        if (b->recs[i] && strcmp(b->fetch[i], id) == 0)
            return b->recs[i];
    return NULL;
}

static bool same_scope(const eg_obs_scope_t *a, const eg_obs_scope_t *b)
{
    if (a->ntags != b->ntags)
        return false;
    for (size_t i = 0; i < a->ntags; i++)
        if (strcmp(a->tags[i], b->tags[i]) != 0)
            return false;
    return true;
}

static bool has_source(const eg_mem_unit_t *o, const char *id)
{
    for (size_t i = 0; i < o->nsources; i++)
        if (strcmp(o->source_ids[i], id) == 0)
            return true;
    return false;
}

static const eg_obs_scope_t *tobs_scope(eg__cons_run_t *r, const tobs_t *t)
{
    return &r->facts[t->f].scopes[t->s];
}

/* The touched observation with this id (loaded on first touch), or NULL when unknown. */
static tobs_t *touch(eg__cons_run_t *r, builtin_t *b, const char *id, size_t f, size_t s)
{
    const eg_mem_unit_t *o;

    for (size_t i = 0; i < b->nobs; i++)
        if (strcmp(b->obs[i].u->id, id) == 0)
            return &b->obs[i];
    o = rec_of(r, b, id);
    if (o == NULL || o->type != EG_FACT_OBSERVATION || o->invalidated)
        return NULL;
    b->obs[b->nobs] = (tobs_t){eg__mem_unit_copy(&r->batch, o), false, false, o->updated_at, f, s};
    return &b->obs[b->nobs++];
}

static int64_t when_of(const eg_mem_unit_t *u)
{
    return u->mentioned_at != EG_MEM_TIME_NONE ? u->mentioned_at : u->created_at;
}

/* Add source u to observation o: sources, proof, dates, entities. */
static void obs_absorb(eg_arena_t *a, eg_mem_unit_t *o, const eg_mem_unit_t *u)
{
    const char **src, **ents;
    size_t ne = 0;

    if (has_source(o, u->id))
        return;
    src = eg_arena_alloc(a, (o->nsources + 1) * sizeof(*src));
    for (size_t i = 0; i < o->nsources; i++)
        src[i] = o->source_ids[i];
    src[o->nsources] = eg_arena_strdup(a, u->id);
    o->source_ids = src;
    o->nsources++;
    o->proof_count = (int)o->nsources;
    if (u->occurred_start != EG_MEM_TIME_NONE &&
        (o->occurred_start == EG_MEM_TIME_NONE || u->occurred_start < o->occurred_start))
        o->occurred_start = u->occurred_start;
    if (u->occurred_end != EG_MEM_TIME_NONE &&
        (o->occurred_end == EG_MEM_TIME_NONE || u->occurred_end > o->occurred_end))
        o->occurred_end = u->occurred_end;
    if (u->mentioned_at != EG_MEM_TIME_NONE &&
        (o->mentioned_at == EG_MEM_TIME_NONE || u->mentioned_at > o->mentioned_at))
        o->mentioned_at = u->mentioned_at;
    ents = eg_arena_alloc(a, (o->nentities + u->nentities + 1) * sizeof(*ents));
    for (size_t i = 0; i < o->nentities; i++)
        ents[ne++] = o->entity_ids[i];
    for (size_t i = 0; i < u->nentities && ne < EG_MEM_ENTITIES_MAX; i++) {
        bool dup = false;
        for (size_t k = 0; k < ne && !dup; k++)
            dup = strcmp(ents[k], u->entity_ids[i]) == 0;
        if (!dup)
            ents[ne++] = eg_arena_strdup(a, u->entity_ids[i]);
    }
    o->entity_ids = ents;
    o->nentities = ne;
}

static tobs_t *new_obs(eg__cons_run_t *r, builtin_t *b, size_t f, size_t s, int64_t now)
{
    eg_mem_unit_t *o = eg_arena_calloc(&r->batch, sizeof(*o));
    char *id = eg_arena_alloc(&r->batch, 37);
    const eg_obs_scope_t *sc = &r->facts[f].scopes[s];

    eg_uuid_v4(id);
    o->id = id;
    o->text = "";
    o->context = "";
    o->type = EG_FACT_OBSERVATION;
    o->occurred_start = o->occurred_end = o->mentioned_at = EG_MEM_TIME_NONE;
    o->created_at = o->updated_at = now;
    o->tags = sc->tags;
    o->ntags = sc->ntags;
    o->invalidated_at = o->edited_at = EG_MEM_TIME_NONE;
    o->consolidated_at = o->consolidation_failed_at = EG_MEM_TIME_NONE;
    b->obs[b->nobs] = (tobs_t){o, true, true, EG_MEM_TIME_NONE, f, s};
    return &b->obs[b->nobs++];
}

static void builtin_decide(eg__cons_run_t *r, builtin_t *b, int64_t now)
{
    for (size_t n = 0; n < b->nnear; n++) {
        near_t *nr = &b->near[n];
        const eg_mem_unit_t *f = r->facts[nr->f].u;
        const eg_obs_scope_t *sc = &r->facts[nr->f].scopes[nr->s];
        tobs_t *target = NULL;
        float best = -FLT_MAX;
        bool already = false;

        /* Already taken in by an observation of this scope (as a repeat of an earlier fact)? */
        for (size_t i = 0; i < b->nobs && !already; i++)
            already = same_scope(tobs_scope(r, &b->obs[i]), sc) && has_source(b->obs[i].u, f->id);
        if (already)
            continue;
        /* An observation of the scope near the fact itself. */
        for (size_t i = 0; i < nr->nobs; i++) {
            tobs_t *t;
            if (!nr->direct[i] || nr->score[i] <= best)
                continue;
            if ((t = touch(r, b, nr->obs[i], nr->f, nr->s)) != NULL) {
                target = t;
                best = nr->score[i];
            }
        }
        /* One that holds a fact repeating it (fetched, or made by this batch). */
        for (size_t g = 0; !target && g < nr->nfacts; g++) {
            for (size_t i = 0; !target && i < nr->nobs; i++) {
                const eg_mem_unit_t *o = rec_of(r, b, nr->obs[i]);
                if (o && has_source(o, nr->facts[g]))
                    target = touch(r, b, nr->obs[i], nr->f, nr->s);
            }
            for (size_t i = 0; !target && i < b->nobs; i++)
                if (same_scope(tobs_scope(r, &b->obs[i]), sc) &&
                    has_source(b->obs[i].u, nr->facts[g]))
                    target = &b->obs[i];
        }
        if (target) {
            if (!has_source(target->u, f->id)) {
                const char *src[1] = {f->id};
                if (!target->is_new)
                    target->u->history = eg__cons_history_add(&r->batch, target->u->history,
                                                              target->u->text, target->u->text, now,
                                                              "repeated by another fact", src, 1);
                obs_absorb(&r->batch, target->u, f);
                target->u->updated_at = now;
                target->changed = true;
            }
            continue;
        }
        if (nr->nfacts == 0)
            continue;
        /* A new observation: this fact and the repeats no observation of the scope holds. */
        {
            tobs_t *t = new_obs(r, b, nr->f, nr->s, now);
            const eg_mem_unit_t *earliest = f;

            obs_absorb(&r->batch, t->u, f);
            for (size_t g = 0; g < nr->nfacts; g++) {
                const eg_mem_unit_t *gu = rec_of(r, b, nr->facts[g]);
                bool held = false;

                if (gu == NULL || gu->invalidated || gu->type == EG_FACT_OBSERVATION)
                    continue;
                for (size_t i = 0; i < nr->nobs && !held; i++) {
                    const eg_mem_unit_t *o = rec_of(r, b, nr->obs[i]);
                    held = o && o->type == EG_FACT_OBSERVATION && has_source(o, gu->id);
                }
                if (held)
                    continue;
                obs_absorb(&r->batch, t->u, gu);
                if (when_of(gu) < when_of(earliest) ||
                    (when_of(gu) == when_of(earliest) && gu->created_at < earliest->created_at))
                    earliest = gu;
            }
            t->u->text = eg_arena_strdup(&r->batch, earliest->text);
        }
    }
}

static void on_builtin_applied(void *udata, int err, int64_t facts, int64_t puts, int64_t dels)
{
    eg__cons_run_t *r = udata;
    builtin_t *b = r->path;

    (void)facts;
    (void)puts;
    (void)dels;
    if (err == 0)
        for (size_t i = 0; i < b->nobs; i++)
            if (b->obs[i].changed) {
                if (b->obs[i].is_new)
                    r->created++;
                else
                    r->updated++;
            }
    eg__cons_batch_done(r, err);
}

static void builtin_apply(eg__cons_run_t *r)
{
    builtin_t *b = r->path;
    eg__cons_put_t *puts = eg_arena_alloc(&r->batch, (b->nobs + 1) * sizeof(*puts));
    eg__cons_apply_t ch = {0};
    eg_embedder_t *e = eg__cons_embedder();
    size_t np = 0, k = 0;
    int rc;

    for (size_t i = 0; i < b->nobs; i++) {
        if (!b->obs[i].changed)
            continue;
        puts[np] = (eg__cons_put_t){*b->obs[i].u, NULL, b->obs[i].is_new, b->obs[i].expect};
        if (b->obs[i].is_new)
            puts[np].vec = b->vecs + (k++) * e->dim;
        np++;
    }
    eg__cons_mark_facts(r, eg_now_ms() * 1000, (const eg_mem_unit_t ***)&ch.facts, &ch.nfacts);
    ch.puts = puts;
    ch.nputs = np;
    ch.dim = e->dim;
    rc = eg__cons_apply(r->ws, r->bank, &ch, on_builtin_applied, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static void on_builtin_embedded(eg_embedder_t *e, int status, void *udata)
{
    eg__cons_run_t *r = udata;

    (void)e;
    if (status) {
        eg__cons_batch_done(r, status);
        return;
    }
    builtin_apply(r);
}

static void builtin_records(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    eg__cons_run_t *r = udata;
    builtin_t *b = r->path;
    eg_embedder_t *e = eg__cons_embedder();
    const char **texts;
    size_t nt = 0;
    int rc;

    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    b->recs = eg_arena_calloc(&r->batch, (n + 1) * sizeof(*b->recs));
    for (size_t i = 0; i < n; i++)
        if (units[i])
            b->recs[i] = eg__mem_unit_copy(&r->batch, units[i]);
    b->cap = b->nnear + b->nfetch + 1;
    b->obs = eg_arena_calloc(&r->batch, b->cap * sizeof(*b->obs));
    builtin_decide(r, b, eg_now_ms() * 1000);
    texts = eg_arena_alloc(&r->batch, (b->nobs + 1) * sizeof(*texts));
    for (size_t i = 0; i < b->nobs; i++)
        if (b->obs[i].is_new)
            texts[nt++] = b->obs[i].u->text;
    if (nt == 0) {
        builtin_apply(r);
        return;
    }
    b->vecs = eg_arena_alloc(&r->batch, nt * e->dim * sizeof(float));
    rc = eg_embed_run(e, texts, nt, b->vecs, on_builtin_embedded, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static void builtin_batch(eg__cons_run_t *r)
{
    int rc;

    r->path = eg_arena_calloc(&r->batch, sizeof(builtin_t));
    rc = eg_mindex_acquire(r->ws, r->bank, on_builtin_index, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

/* ---- a batch: pending facts, their records and scopes ------------------------------------------
 */

static void on_docs(void *udata, int err, redisReply *rep)
{
    eg__cons_run_t *r = udata;
    const char **dids = r->path;

    if (err == 0 && rep->type != REDIS_REPLY_ARRAY)
        err = EG_EREDIS;
    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    for (size_t i = 0; i < r->nfacts; i++) {
        eg__cons_fact_t *f = &r->facts[i];
        const cJSON *mode = NULL;

        for (size_t d = 0; f->u->document_id && d < rep->elements; d++) {
            eg_mem_doc_t doc;
            const redisReply *e = rep->element[d];

            if (strcmp(dids[d], f->u->document_id) != 0 || e->type != REDIS_REPLY_STRING)
                continue;
            if (eg_mem_doc_parse(&r->batch, e->str, e->len, &doc) == 0 && doc.retain_params)
                mode = cJSON_GetObjectItemCaseSensitive(doc.retain_params, "observation_scopes");
            break;
        }
        f->nscopes =
            eg_consolidate_fact_scopes(&r->batch, f->u->tags, f->u->ntags, mode, f->scopes);
    }
    r->path = NULL;
    if (r->llm)
        eg__cons_llm_batch(r);
    else
        builtin_batch(r);
}

static void on_pending_records(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    eg__cons_run_t *r = udata;
    const char **argv, **dids;
    size_t nd = 0;
    int rc;

    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    r->facts = eg_arena_calloc(&r->batch, (n + 1) * sizeof(*r->facts));
    r->nfacts = 0;
    for (size_t i = 0; i < n; i++) {
        const eg_mem_unit_t *u = units[i];

        if (u == NULL || u->type == EG_FACT_OBSERVATION || u->invalidated ||
            u->consolidated_at > 0 || u->consolidation_failed_at > 0)
            continue;
        r->facts[r->nfacts++].u = eg__mem_unit_copy(&r->batch, u);
    }
    if (r->nfacts == 0) {
        eg__cons_batch_done(r, 0);
        return;
    }
    argv = eg_arena_alloc(&r->batch, (r->nfacts + 2) * sizeof(*argv));
    dids = eg_arena_alloc(&r->batch, (r->nfacts + 1) * sizeof(*dids));
    for (size_t i = 0; i < r->nfacts; i++) {
        const char *d = r->facts[i].u->document_id;
        bool dup = false;

        for (size_t k = 0; d && k < nd && !dup; k++)
            dup = strcmp(dids[k], d) == 0;
        if (d && !dup)
            dids[nd++] = d;
    }
    {
        const char *keys[EG__MEM_KEYS];
        eg__mem_keys(&r->batch, r->ws, r->bank, keys);
        argv[0] = nd ? "HMGET" : "HLEN";
        argv[1] = keys[EG__MK_D];
    }
    for (size_t i = 0; i < nd; i++)
        argv[2 + i] = dids[i];
    r->path = dids;
    rc = eg_store_commandv(on_docs, r, (int)(nd + 2), argv, NULL);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static bool filter_pass(const eg_mindex_unit_t *u, uint32_t **ftags, const size_t *fn, size_t nf)
{
    if (nf == 0)
        return true;
    for (size_t i = 0; i < nf; i++)
        if (eg__cons_tags_superset(u, ftags[i], fn[i]))
            return true;
    return false;
}

static void on_pending_index(void *udata, int err, eg_mindex_t *ix)
{
    eg__cons_run_t *r = udata;
    const uint32_t *order;
    size_t norder = 0, n = 0, nf = 0;
    const char **ids;
    uint32_t **ftags = NULL;
    size_t *fn = NULL;
    int rc;

    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    if (cJSON_IsArray(r->filter)) {
        const cJSON *sc;
        size_t cap = (size_t)cJSON_GetArraySize(r->filter) + 1;

        ftags = eg_arena_alloc(&r->batch, cap * sizeof(*ftags));
        fn = eg_arena_alloc(&r->batch, cap * sizeof(*fn));
        cJSON_ArrayForEach(sc, r->filter)
        {
            const char *tags[EG_MEM_TAGS_MAX];
            eg_obs_scope_t s = {tags, 0, 0};
            const cJSON *t;

            cJSON_ArrayForEach(t, sc)
            {
                if (cJSON_IsString(t) && s.ntags < EG_MEM_TAGS_MAX)
                    tags[s.ntags++] = t->valuestring;
            }
            ftags[nf] = eg__cons_scope_ids(&r->batch, ix, &s);
            fn[nf++] = s.ntags;
        }
    }
    order = eg_mindex_by_time(ix, &norder);
    ids = eg_arena_alloc(&r->batch, (EG_CONSOLIDATE_BATCH + 1) * sizeof(*ids));
    for (size_t i = 0; i < norder && n < EG_CONSOLIDATE_BATCH; i++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, order[i]);
        uint64_t h;

        if (u == NULL || u->type == EG_FACT_OBSERVATION || u->invalidated ||
            u->cstate != EG_MINDEX_CONS_PENDING || !filter_pass(u, ftags, fn, nf))
            continue;
        h = id_hash(u->id);
        if (seen_has(r, h))
            continue;
        seen_add(r, h);
        ids[n++] = eg_arena_strdup(&r->batch, u->id);
    }
    if (n == 0) {
        rc = eg__cons_finish(r->ws, r->bank, r->op, false, on_finished, r);
        if (rc)
            run_retry(r, rc);
        return;
    }
    rc = eg_mem_units_get(r->ws, r->bank, ids, n, on_pending_records, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static void on_all(void *udata, int err, bool all)
{
    eg__cons_run_t *r = udata;
    int rc;

    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    if (all)
        r->filter = NULL; /* a request without scopes widened the run */
    rc = eg_mindex_acquire(r->ws, r->bank, on_pending_index, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static void next_batch(eg__cons_run_t *r)
{
    int rc = eg__cons_run_all(r->ws, r->bank, r->op, on_all, r);

    if (rc)
        eg__cons_batch_done(r, rc);
}

/* ---- starting
 * ------------------------------------------------------------------------------------ */

static void on_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    eg__cons_run_t *r = udata;

    (void)created;
    if (err && err != EG_ENOTFOUND) {
        eg__cons_batch_done(r, err);
        return;
    }
    r->mission = "";
    if (err == 0) {
        cJSON *cfg = eg_bank_config_resolved(bank);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "observations_mission");

        if (cJSON_IsString(v))
            r->mission = eg_arena_strdup(&r->arena, v->valuestring);
        cJSON_Delete(cfg);
    }
    r->llm = eg_llm_for(EG_LLM_OP_CONSOLIDATION);
    next_batch(r);
}

static void on_processing(void *udata, int err, const eg_op_t *op)
{
    eg__cons_run_t *r = udata;
    int rc;

    (void)op;
    if (err == EG_ECONFLICT || err == EG_ENOTFOUND) {
        drop(r); /* cancelled or deleted meanwhile */
        return;
    }
    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    rc = eg_bank_get(r->ws, r->bank, on_bank, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static void on_op(void *udata, int err, const eg_op_t *op)
{
    eg__cons_run_t *r = udata;
    cJSON *meta;
    int rc;

    if (err == EG_ENOTFOUND) {
        drop(r);
        return;
    }
    if (err) {
        eg__cons_batch_done(r, err);
        return;
    }
    if (op->status == EG_OP_COMPLETED || op->status == EG_OP_FAILED ||
        op->status == EG_OP_CANCELLED) {
        drop(r);
        return;
    }
    meta = cJSON_Parse(op->meta);
    if (meta) {
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(meta, "observation_scopes");
        if (cJSON_IsArray(sc) && eg_consolidate_scopes_valid(sc)) {
            r->filter = cJSON_Duplicate(sc, true);
            eg_arena_defer(&r->arena, (void (*)(void *))cJSON_Delete, r->filter);
        }
        cJSON_Delete(meta);
    }
    rc = eg_op_update("b", r->scope, r->op, EG_OP_PROCESSING, -1, NULL, on_processing, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

static void on_job(eg_job_t *job, void *udata)
{
    size_t len;
    const char *payload = eg_job_payload(job, &len);
    cJSON *p = cJSON_ParseWithLength(payload, len);
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(p, "ws");
    const cJSON *bank = cJSON_GetObjectItemCaseSensitive(p, "bank");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(p, "op");
    eg__cons_run_t *r;
    int rc;

    (void)udata;
    if (!cJSON_IsString(ws) || !cJSON_IsString(bank) || !cJSON_IsString(op) ||
        !eg_bank_id_valid(bank->valuestring, strlen(bank->valuestring))) {
        cJSON_Delete(p);
        eg_job_fail(job, "malformed consolidation job");
        return;
    }
    r = eg_xcalloc(1, sizeof(*r));
    eg_arena_init(&r->arena);
    eg_arena_init(&r->batch);
    r->job = job;
    r->ws = eg_arena_strdup(&r->arena, ws->valuestring);
    r->bank = eg_arena_strdup(&r->arena, bank->valuestring);
    r->op = eg_arena_strdup(&r->arena, op->valuestring);
    r->scope = eg_arena_printf(&r->arena, "%s/%s", r->ws, r->bank);
    cJSON_Delete(p);
    rc = eg_op_get("b", r->scope, r->op, on_op, r);
    if (rc)
        eg__cons_batch_done(r, rc);
}

/* ---- the queue
 * ------------------------------------------------------------------------------------ */

int eg__cons_worker_start(void)
{
    eg_queue_opts_t qo = {0};
    const char *vis = getenv("ENGRAM_CONSOLIDATION_VISIBILITY");
    uint64_t vis_ms = 60000;

    if (vis && vis[0] && (eg_parse_duration_ms(vis, &vis_ms) != 0 || vis_ms < 1000)) {
        eg_log_error("ENGRAM_CONSOLIDATION_VISIBILITY must be a duration of at least 1s, not "
                     "\"%s\"",
                     vis);
        return EG_EINVAL;
    }
    qo.handler = on_job;
    qo.concurrency = 2;
    qo.max_attempts = MAX_ATTEMPTS;
    qo.visibility_ms = vis_ms;
    s_w.q = eg_queue_open(EG_CONSOLIDATE_QUEUE, &qo);
    return s_w.q ? 0 : EG_EINVAL;
}

bool eg__cons_worker_running(void)
{
    return s_w.q != NULL;
}

void eg__cons_worker_stop(void (*done)(void *), void *udata)
{
    eg_queue_t *q = s_w.q;

    s_w.q = NULL;
    if (!q) {
        if (done)
            done(udata);
        return;
    }
    eg_queue_close(q, done, udata);
}
