/* The "mm_refresh" queue's worker: refreshes mental models (engram/mental_models.h, "Refresh
 * seam") and keeps their operation records current.
 *
 * A job's life, as retain's: its record is read (a completed, failed, cancelled or deleted
 * operation drops the job), moved to processing, the model is refreshed and saved
 * (eg_reflect_mm_refresh), and the record is completed — or, on a storage or model error, the job
 * is retried with backoff while attempts remain, and otherwise the record is failed. A model
 * deleted meanwhile fails the operation at once. The record is final before the job is
 * acknowledged, so a job delivered again after a crash finds it final and is dropped; a crash
 * between the save and the record's completion runs the refresh again, which stores the same
 * kind of content once more (the previous one goes to the history). */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/ops.h"
#include "engram/queue.h"
#include "engram/util.h"
#include "memory/reflect_int.h"

#define MAX_ATTEMPTS 5

static struct {
    eg_queue_t *q;
} s_w;

typedef struct {
    eg_arena_t arena;
    eg_job_t *job;
    char *ws, *bank, *id, *op, *scope;
    int err;
} wjob_t;

static void wjob_free(wjob_t *w)
{
    eg_arena_destroy(&w->arena);
    free(w);
}

static bool transient(int err)
{
    return err == EG_EUNAVAIL || err == EG_ESTORETIMEOUT || err == EG_EREDIS ||
           err == EG_ECANCELED || err == EG_EBUSY || err == EG_EUPSTREAM || err == EG_EUPTIMEOUT ||
           err == EG_ECONNECT || err == EG_EDNS;
}

static void retry(wjob_t *w, int err)
{
    eg_job_retry(w->job, 0, eg_strerror(err));
    wjob_free(w);
}

static void on_final(void *udata, int err, const eg_op_t *op)
{
    wjob_t *w = udata;

    (void)op;
    if (err != 0 && err != EG_ECONFLICT && err != EG_ENOTFOUND && transient(err)) {
        retry(w, err); /* the record could not be finalised: run again later */
        return;
    }
    eg_job_done(w->job, 0);
    wjob_free(w);
}

static void finish(wjob_t *w, int err, const char *why)
{
    if (err)
        eg_log_warn("mm_refresh: operation %s (model %s) failed: %s", w->op, w->id, why);
    if (eg_op_update("b", w->scope, w->op, err ? EG_OP_FAILED : EG_OP_COMPLETED, -1,
                     err ? why : NULL, on_final, w) != 0)
        retry(w, EG_EUNAVAIL);
}

static void on_refreshed(void *udata, int err, const eg_reflect_refresh_t *r)
{
    wjob_t *w = udata;

    if (err == EG_ENOTFOUND) {
        finish(w, err, "mental model not found");
        return;
    }
    if (err && transient(err) && eg_job_attempt(w->job) < MAX_ATTEMPTS) {
        eg_log_warn("mm_refresh: operation %s attempt %u failed (%s); retrying", w->op,
                    eg_job_attempt(w->job), eg_strerror(err));
        eg_op_update("b", w->scope, w->op, EG_OP_KEEP, -1, eg_strerror(err), NULL, NULL);
        retry(w, err);
        return;
    }
    if (err) {
        finish(w, err, eg_strerror(err));
        return;
    }
    if (r->outcome == EG_REFLECT_REFRESH_EMPTY) {
        finish(w, EG_EUPSTREAM, "reflect produced an empty answer; the content was kept");
        return;
    }
    finish(w, 0, NULL);
}

static void on_processing(void *udata, int err, const eg_op_t *op)
{
    wjob_t *w = udata;
    int rc;

    (void)op;
    if (err == EG_ECONFLICT || err == EG_ENOTFOUND) {
        eg_job_done(w->job, 0); /* cancelled or deleted meanwhile */
        wjob_free(w);
        return;
    }
    if (err) {
        retry(w, err);
        return;
    }
    rc = eg_reflect_mm_refresh(w->ws, w->bank, w->id, true, on_refreshed, w);
    if (rc)
        on_refreshed(w, rc, NULL);
}

static void on_record(void *udata, int err, const eg_op_t *op)
{
    wjob_t *w = udata;

    if (err == EG_ENOTFOUND ||
        (err == 0 && (op->status == EG_OP_COMPLETED || op->status == EG_OP_CANCELLED ||
                      op->status == EG_OP_FAILED))) {
        /* Finished already (a redelivery after a crash), cancelled or deleted. */
        eg_job_done(w->job, 0);
        wjob_free(w);
        return;
    }
    if (err) {
        retry(w, err);
        return;
    }
    if (eg_op_update("b", w->scope, w->op, EG_OP_PROCESSING, -1, NULL, on_processing, w) != 0)
        retry(w, EG_EUNAVAIL);
}

static char *jstr(eg_arena_t *a, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) && v->valuestring[0] ? eg_arena_strdup(a, v->valuestring) : NULL;
}

static void on_job(eg_job_t *job, void *udata)
{
    wjob_t *w = eg_xcalloc(1, sizeof(*w));
    size_t len;
    const char *p = eg_job_payload(job, &len);
    cJSON *j = cJSON_ParseWithLength(p, len);

    (void)udata;
    eg_arena_init(&w->arena);
    w->job = job;
    if (j) {
        w->ws = jstr(&w->arena, j, "ws");
        w->bank = jstr(&w->arena, j, "bank");
        w->id = jstr(&w->arena, j, "id");
        w->op = jstr(&w->arena, j, "op");
        cJSON_Delete(j);
    }
    if (!w->ws || !w->bank || !w->id || !w->op) {
        eg_log_error("mm_refresh: job %s has a malformed payload; dead-lettered", eg_job_id(job));
        eg_job_fail(job, "malformed payload");
        wjob_free(w);
        return;
    }
    w->scope = eg_arena_printf(&w->arena, "%s/%s", w->ws, w->bank);
    if (eg_op_get("b", w->scope, w->op, on_record, w) != 0)
        retry(w, EG_EUNAVAIL);
}

int eg_reflect_start(void)
{
    const char *conc = getenv("ENGRAM_MM_REFRESH_CONCURRENCY");
    const char *vis = getenv("ENGRAM_MM_REFRESH_VISIBILITY");
    uint64_t vis_ms = 60000;
    int64_t c = 2;
    eg_queue_opts_t qo = {0};

    if (vis && vis[0] && (eg_parse_duration_ms(vis, &vis_ms) != 0 || vis_ms < 1000)) {
        eg_log_error("ENGRAM_MM_REFRESH_VISIBILITY must be a duration of at least 1s, not \"%s\"",
                     vis);
        return EG_EINVAL;
    }

    if (conc && conc[0] && eg_parse_int64(conc, 1, 16, &c) != 0) {
        eg_log_error("ENGRAM_MM_REFRESH_CONCURRENCY must be an integer from 1 to 16, not \"%s\"",
                     conc);
        return EG_EINVAL;
    }
    qo.handler = on_job;
    qo.concurrency = (unsigned)c;
    qo.max_attempts = MAX_ATTEMPTS;
    /* A refresh may run for the whole reflect timeout (300 s): heartbeats keep it ours, and a
     * crashed process's job is taken over after the visibility timeout (a minute). */
    qo.visibility_ms = vis_ms;
    s_w.q = eg_queue_open(EG_MM_QUEUE, &qo);
    return s_w.q ? 0 : EG_EINVAL;
}

void eg_reflect_stop(void (*done)(void *), void *udata)
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
