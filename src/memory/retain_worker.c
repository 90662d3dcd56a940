/* The "retain" queue's worker: runs queued batches and keeps their operation records current.
 *
 * A job's life: its record is read (a cancelled, completed or deleted operation drops the job),
 * moved to processing (with the parent, for a sub-batch), the batch runs (retain_run.c, with the
 * operation's derived ids and write keys, so a re-run after a crash writes nothing twice), and
 * the record is completed — or, on a storage error, the job is retried with backoff while
 * attempts remain, and otherwise failed (with a "retain.completed" event of status failed, as
 * Hindsight sends). A sub-batch that finishes completes its parent once every sibling has
 * finished. The record is final before the job is acknowledged, so a job delivered again after
 * a crash finds it final and is dropped. */
#include <stdlib.h>
#include <string.h>

#include "engram/bank_webhooks.h"
#include "engram/bankops.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/ops.h"
#include "engram/queue.h"
#include "engram/util.h"
#include "memory/retain_int.h"

#define MAX_ATTEMPTS 5

static struct {
    eg_queue_t *q;
} s_w;

typedef struct {
    eg_arena_t arena;
    eg_job_t *job;
    char *ws, *bank, *scope, *op, *parent;
    eg_retain_item_t *items;
    size_t *indexes, nitems;
    const char *const *dtags;
    size_t ndtags;
    int err;
    const char *errmsg; /* the operation's error_message: the run's reason, else the code's */
} wjob_t;

static void wjob_free(wjob_t *w)
{
    eg_arena_destroy(&w->arena);
    free(w);
}

static bool transient(int err)
{
    return err == EG_EUNAVAIL || err == EG_ESTORETIMEOUT || err == EG_EREDIS ||
           err == EG_ECANCELED || err == EG_EBUSY;
}

/* ---- finishing ------------------------------------------------------------------------------ */

static void end_job(wjob_t *w)
{
    if (w->err == 0)
        eg_job_done(w->job, 0);
    else
        eg_job_fail(w->job, eg_strerror(w->err));
    wjob_free(w);
}

/* A parent completes when all its sub-batches are final: failed if one failed or was cancelled. */
static void on_parent_read(void *udata, int err, const eg_bankop_t *op, const eg_bankop_t *children,
                           size_t n)
{
    wjob_t *w = udata;

    if (err == 0 && op->rec.status != EG_OP_COMPLETED && op->rec.status != EG_OP_FAILED &&
        op->rec.status != EG_OP_CANCELLED) {
        bool all = true, failed = false;
        const char *why = NULL;
        for (size_t i = 0; i < n; i++) {
            eg_op_status_t st = children[i].rec.status;
            all &= st == EG_OP_COMPLETED || st == EG_OP_FAILED || st == EG_OP_CANCELLED;
            if (st == EG_OP_FAILED || st == EG_OP_CANCELLED) {
                failed = true;
                if (!why && children[i].rec.error[0])
                    why = eg_arena_strdup(&w->arena, children[i].rec.error);
            }
        }
        if (all)
            eg_op_update("b", w->scope, w->parent, failed ? EG_OP_FAILED : EG_OP_COMPLETED, -1,
                         failed ? (why ? why : "a sub-batch failed") : NULL, NULL, NULL);
    }
    end_job(w);
}

static void check_parent(wjob_t *w)
{
    if (!w->parent || eg_bankops_get(w->ws, w->bank, w->parent, on_parent_read, w) != 0)
        end_job(w);
}

static void on_failed_event(void *udata, int err, const char *event_id)
{
    wjob_t *w = udata;

    (void)err;
    (void)event_id;
    check_parent(w);
}

static void on_final(void *udata, int err, const eg_op_t *op)
{
    wjob_t *w = udata;

    (void)op;
    if (err != 0 && err != EG_ECONFLICT && err != EG_ENOTFOUND && transient(err)) {
        /* The record could not be finalised: run the job again later (its writes replay). */
        eg_job_retry(w->job, 0, eg_strerror(err));
        wjob_free(w);
        return;
    }
    if (w->err == 0) {
        check_parent(w);
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "error_message", w->errmsg);
    if (eg_bank_event_emit(w->ws, w->bank, "retain.completed", w->op, "failed", data,
                           on_failed_event, w) != 0)
        check_parent(w);
    cJSON_Delete(data);
}

static void on_run_done(eg__run_t *r, int err, void *udata)
{
    wjob_t *w = udata;

    (void)r;
    if (err != 0 && transient(err) && eg_job_attempt(w->job) < MAX_ATTEMPTS) {
        eg_log_warn("retain: operation %s attempt %u failed (%s); retrying", w->op,
                    eg_job_attempt(w->job), eg_strerror(err));
        eg_op_update("b", w->scope, w->op, EG_OP_KEEP, -1, eg_strerror(err), NULL, NULL);
        eg_job_retry(w->job, 0, eg_strerror(err));
        wjob_free(w);
        return;
    }
    w->err = err;
    w->errmsg = r && r->errmsg ? eg_arena_strdup(&w->arena, r->errmsg) : eg_strerror(err);
    if (err != 0)
        eg_log_warn("retain: operation %s failed: %s", w->op, w->errmsg);
    if (eg_op_update("b", w->scope, w->op, err ? EG_OP_FAILED : EG_OP_COMPLETED, -1,
                     err ? w->errmsg : NULL, on_final, w) != 0) {
        eg_job_retry(w->job, 0, "operation record unavailable");
        wjob_free(w);
    }
}

/* ---- starting ------------------------------------------------------------------------------- */

static void on_processing(void *udata, int err, const eg_op_t *op)
{
    wjob_t *w = udata;

    (void)op;
    if (err == EG_ECONFLICT || err == EG_ENOTFOUND) {
        /* Cancelled (or deleted) meanwhile. */
        eg_job_done(w->job, 0);
        wjob_free(w);
        return;
    }
    if (err != 0) {
        eg_job_retry(w->job, 0, eg_strerror(err));
        wjob_free(w);
        return;
    }
    if (w->parent)
        eg_op_update("b", w->scope, w->parent, EG_OP_PROCESSING, -1, NULL, NULL, NULL);
    int rc = eg__retain_run(w->ws, w->bank, w->items, w->indexes, w->nitems, w->dtags, w->ndtags,
                            w->op, eg__retain_now_us(), on_run_done, w);
    if (rc != 0)
        on_run_done(NULL, rc, w);
}

static void on_record(void *udata, int err, const eg_op_t *op)
{
    wjob_t *w = udata;

    if (err == EG_ENOTFOUND ||
        (err == 0 && (op->status == EG_OP_COMPLETED || op->status == EG_OP_CANCELLED ||
                      op->status == EG_OP_FAILED))) {
        /* Nothing to do: finished already (a redelivery after a crash), cancelled, deleted. */
        if (err == 0 && op->status == EG_OP_COMPLETED && w->parent) {
            check_parent(w); /* the crash may have come before the parent was completed */
            return;
        }
        eg_job_done(w->job, 0);
        wjob_free(w);
        return;
    }
    if (err != 0) {
        eg_job_retry(w->job, 0, eg_strerror(err));
        wjob_free(w);
        return;
    }
    if (eg_op_update("b", w->scope, w->op, EG_OP_PROCESSING, -1, NULL, on_processing, w) != 0) {
        eg_job_retry(w->job, 0, "operation record unavailable");
        wjob_free(w);
    }
}

static const char *jstr(eg_arena_t *a, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? eg_arena_strdup(a, v->valuestring) : NULL;
}

/* Parse a job payload (see retain.c's plan()); 0 or EG_EINVAL. */
static int parse_payload(wjob_t *w, const char *p, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(p, len);
    const cJSON *idx, *v;
    int rc = EG_EINVAL;

    if (!j)
        return EG_EINVAL;
    eg_arena_defer(&w->arena, (void (*)(void *))cJSON_Delete, j);
    w->ws = (char *)jstr(&w->arena, j, "ws");
    w->bank = (char *)jstr(&w->arena, j, "bank");
    w->op = (char *)jstr(&w->arena, j, "op");
    w->parent = (char *)jstr(&w->arena, j, "parent");
    if (!w->ws || !w->bank || !w->op ||
        eg_retain_items_parse(&w->arena, cJSON_GetObjectItemCaseSensitive(j, "items"), &w->items,
                              &w->nitems) != 0 ||
        w->nitems == 0)
        return rc;
    idx = cJSON_GetObjectItemCaseSensitive(j, "indexes");
    if (!cJSON_IsArray(idx) || (size_t)cJSON_GetArraySize(idx) != w->nitems)
        return rc;
    w->indexes = eg_arena_alloc(&w->arena, w->nitems * sizeof(*w->indexes));
    size_t k = 0;
    cJSON_ArrayForEach(v, idx)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0)
            return rc;
        w->indexes[k++] = (size_t)v->valuedouble;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "document_tags");
    const char **tags =
        eg_arena_alloc(&w->arena, ((size_t)cJSON_GetArraySize(dt) + 1) * sizeof(*tags));
    cJSON_ArrayForEach(v, dt)
    {
        if (cJSON_IsString(v))
            tags[w->ndtags++] = eg_arena_strdup(&w->arena, v->valuestring);
    }
    w->dtags = tags;
    w->scope = eg__retain_scope_id(&w->arena, w->ws, w->bank);
    return 0;
}

static void on_job(eg_job_t *job, void *udata)
{
    wjob_t *w = eg_xcalloc(1, sizeof(*w));
    size_t len;
    const char *p = eg_job_payload(job, &len);

    (void)udata;
    eg_arena_init(&w->arena);
    w->job = job;
    if (parse_payload(w, p, len) != 0) {
        eg_log_error("retain: job %s has a malformed payload; dead-lettered", eg_job_id(job));
        eg_job_fail(job, "malformed payload");
        wjob_free(w);
        return;
    }
    if (eg_op_get("b", w->scope, w->op, on_record, w) != 0) {
        eg_job_retry(job, 0, "operation record unavailable");
        wjob_free(w);
    }
}

/* ---- pushing and retrying ------------------------------------------------------------------- */

int eg__retain_push(const char *job_id, const char *payload, size_t len,
                    void (*cb)(void *, int, bool), void *udata)
{
    return eg_queue_push(EG_RETAIN_QUEUE, job_id, payload, len, 0, cb, udata);
}

typedef struct {
    eg_arena_t arena;
    char *ws, *bank, *scope;
    eg_bankops_retry_done_fn done;
    void *done_udata;
    size_t pending;
    int err;
} retry_t;

static void retry_settle(retry_t *rt)
{
    if (--rt->pending > 0)
        return;
    rt->done(rt->done_udata, rt->err);
    eg_arena_destroy(&rt->arena);
    free(rt);
}

static void on_retry_pushed(void *udata, int err, bool queued)
{
    retry_t *rt = udata;

    (void)queued;
    if (err != 0 && rt->err == 0)
        rt->err = err;
    retry_settle(rt);
}

/* Re-queue the job kept in an operation's meta ("payload") under a job id that names the retry,
 * so the queue's push dedupe does not take it for the original. */
static int repush(retry_t *rt, const eg_op_t *op)
{
    cJSON *meta = cJSON_Parse(op->meta);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(meta, "payload");
    int rc = EG_EINVAL;

    if (cJSON_IsObject(p)) {
        char *txt = cJSON_PrintUnformatted(p);
        char *job_id = eg_arena_printf(&rt->arena, "%s:r%lld", op->id, (long long)op->retries);
        rt->pending++;
        rc = eg__retain_push(job_id, txt, strlen(txt), on_retry_pushed, rt);
        if (rc != 0)
            rt->pending--;
        free(txt);
    }
    cJSON_Delete(meta);
    return rc;
}

static void on_child_requeued(void *udata, int err, const eg_op_t *op)
{
    retry_t *rt = udata;

    if (err == 0) {
        int rc = repush(rt, op);
        if (rc != 0 && rt->err == 0)
            rt->err = rc;
    } else if (rt->err == 0) {
        rt->err = err;
    }
    retry_settle(rt);
}

static void on_parent_for_retry(void *udata, int err, const eg_bankop_t *op,
                                const eg_bankop_t *children, size_t n)
{
    retry_t *rt = udata;

    (void)op;
    if (err != 0) {
        rt->err = err;
    } else {
        for (size_t i = 0; i < n; i++) {
            if (children[i].rec.status != EG_OP_FAILED && children[i].rec.status != EG_OP_CANCELLED)
                continue;
            rt->pending++;
            if (eg_op_requeue("b", rt->scope, children[i].rec.id, on_child_requeued, rt) != 0)
                rt->pending--;
        }
    }
    retry_settle(rt);
}

/* bankops' retry of a "retain" operation (already moved back to pending): a batch operation's
 * job is pushed again from its meta; a parent's failed sub-batches are moved back to pending and
 * theirs pushed. */
static int retry_fn(const char *ws_id, const char *bank_id, const eg_op_t *op,
                    eg_bankops_retry_done_fn done, void *done_udata)
{
    retry_t *rt = eg_xcalloc(1, sizeof(*rt));
    int rc;

    eg_arena_init(&rt->arena);
    rt->ws = eg_arena_strdup(&rt->arena, ws_id);
    rt->bank = eg_arena_strdup(&rt->arena, bank_id);
    rt->scope = eg__retain_scope_id(&rt->arena, ws_id, bank_id);
    rt->done = done;
    rt->done_udata = done_udata;
    rt->pending = 1;

    cJSON *meta = cJSON_Parse(op->meta);
    bool parent = cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(meta, "children"));
    cJSON_Delete(meta);
    if (parent) {
        rc = eg_bankops_get(ws_id, bank_id, op->id, on_parent_for_retry, rt);
        if (rc == 0)
            return 0;
    } else {
        rc = repush(rt, op);
        if (rc == 0) {
            retry_settle(rt); /* drop the hold: on_retry_pushed finishes */
            return 0;
        }
    }
    eg_arena_destroy(&rt->arena);
    free(rt);
    return rc;
}

/* ---- the queue ------------------------------------------------------------------------------ */

int eg__retain_worker_start(void)
{
    const char *vis = getenv("ENGRAM_RETAIN_VISIBILITY");
    const char *conc = getenv("ENGRAM_RETAIN_CONCURRENCY");
    uint64_t vis_ms = 60000;
    int64_t c = 2;
    eg_queue_opts_t qo = {0};

    if (vis && vis[0] && (eg_parse_duration_ms(vis, &vis_ms) != 0 || vis_ms < 1000)) {
        eg_log_error("ENGRAM_RETAIN_VISIBILITY must be a duration of at least 1s, not \"%s\"", vis);
        return EG_EINVAL;
    }
    if (conc && conc[0] && eg_parse_int64(conc, 1, 64, &c) != 0) {
        eg_log_error("ENGRAM_RETAIN_CONCURRENCY must be an integer from 1 to 64, not \"%s\"", conc);
        return EG_EINVAL;
    }
    qo.handler = on_job;
    qo.concurrency = (unsigned)c;
    qo.max_attempts = MAX_ATTEMPTS;
    qo.visibility_ms = vis_ms;
    s_w.q = eg_queue_open(EG_RETAIN_QUEUE, &qo);
    if (!s_w.q)
        return EG_EINVAL;
    eg_bankops_set_retry(EG_RETAIN_OP_KIND, retry_fn);
    return 0;
}

void eg__retain_worker_stop(void (*done)(void *), void *udata)
{
    eg_queue_t *q = s_w.q;

    eg_bankops_set_retry(EG_RETAIN_OP_KIND, NULL);
    s_w.q = NULL;
    if (!q) {
        if (done)
            done(udata);
        return;
    }
    eg_queue_close(q, done, udata);
}
