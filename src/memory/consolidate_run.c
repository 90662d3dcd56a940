/* The "consolidation" queue's worker: runs and their batches.
 *
 * A run: the operation record is read (a final or deleted one drops the job and releases the
 * bank's run key), moved to processing, and then batches follow until no pending fact is left:
 * up to 50 pending facts of the run's scopes, oldest first, are taken from the index, their
 * records and their documents' observation_scopes read, and the batch goes through the model
 * (consolidate_llm.c) or the builtin path (consolidate_builtin.c); its outcome is one atomic apply.
 * A fact is taken up at most once per run (a fact whose mark lost a race with a curated edit waits
 * for the next run). Then the run key is released — or, when a request came in meanwhile (dirty),
 * the index is looked at once more — the record completed (failed, with the first model error, when
 * the model failed on some facts), and "consolidation.completed" emitted. Storage errors retry the
 * job with backoff; the record stays processing meanwhile, and a redelivered job resumes from the
 * facts still pending. The builtin path is in consolidate_builtin.c, the model path in
 * consolidate_llm.c. */
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/bank_webhooks.h"
#include "engram/bankops.h"
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
        eg__cons_builtin_batch(r);
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
    if (!s_w.q)
        return EG_EINVAL;
    eg_bankops_set_retry(EG_CONSOLIDATE_OP_KIND, eg__cons_retry);
    return 0;
}

bool eg__cons_worker_running(void)
{
    return s_w.q != NULL;
}

void eg__cons_worker_stop(void (*done)(void *), void *udata)
{
    eg_queue_t *q = s_w.q;

    eg_bankops_set_retry(EG_CONSOLIDATE_OP_KIND, NULL);
    s_w.q = NULL;
    if (!q) {
        if (done)
            done(udata);
        return;
    }
    eg_queue_close(q, done, udata);
}
