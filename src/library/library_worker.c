/* The "library" queue: its worker (start, stop, one handler dispatching on the payload's kind),
 * pushing jobs, and purge jobs (removing a memory-engine document of the bank "fency" once the
 * memory it belongs to was deleted or moved on to another content version). The sync jobs are
 * library_sync.c, the bulk jobs library_jobs.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/mstore.h"
#include "engram/queue.h"
#include "engram/util.h"
#include "library_int.h"

eg__lib_worker_t eg__lib_w;
static eg_queue_t *s_q;

/* ---- pushing --------------------------------------------------------------------------------- */

typedef struct {
    void (*cb)(void *, int);
    void *udata;
} push_t;

static void on_pushed(void *udata, int err, bool queued)
{
    push_t *p = udata;

    (void)queued;
    if (p->cb)
        p->cb(p->udata, err);
    free(p);
}

int eg__lib_push(const char *job_id, const cJSON *payload, uint64_t delay_ms,
                 void (*cb)(void *, int), void *udata)
{
    char *txt = cJSON_PrintUnformatted(payload);
    push_t *p = eg_xmalloc(sizeof(*p));
    int rc;

    p->cb = cb;
    p->udata = udata;
    rc = strlen(txt) > EG_QUEUE_PAYLOAD_MAX
             ? EG_ETOOBIG
             : eg_queue_push(EG_LIB_QUEUE, job_id, txt, strlen(txt), delay_ms, on_pushed, p);
    if (rc != 0)
        free(p);
    free(txt);
    return rc;
}

static void on_wait_pushed(void *udata, int err)
{
    eg_job_t *job = udata;

    if (err != 0)
        eg_job_retry(job, EG__LIB_WAIT_MS, eg_strerror(err));
    else
        eg_job_done(job, 0);
}

void eg__lib_wait_again(eg_job_t *job, const char *job_id, cJSON *payload, int wait)
{
    uint64_t delay = EG__LIB_WAIT_MS;
    int rc;

    for (int i = 0; i < wait && delay < EG__LIB_WAIT_MAX_MS; i++)
        delay *= 2;
    cJSON_DeleteItemFromObjectCaseSensitive(payload, "w");
    cJSON_AddNumberToObject(payload, "w", wait + 1);
    rc = eg__lib_push(job_id, payload, delay, on_wait_pushed, job);
    if (rc != 0)
        eg_job_retry(job, EG__LIB_WAIT_MS, eg_strerror(rc));
}

int eg__lib_sync_push(const char *ws, const char *id, const char *sync, void (*cb)(void *, int),
                      void *udata)
{
    char job_id[EG_QUEUE_JOB_ID_MAX];
    cJSON *p = cJSON_CreateObject();
    int rc;

    snprintf(job_id, sizeof(job_id), "%s:%s:%s", ws, id, sync);
    cJSON_AddStringToObject(p, "k", "sync");
    cJSON_AddStringToObject(p, "ws", ws);
    cJSON_AddStringToObject(p, "id", id);
    cJSON_AddStringToObject(p, "n", sync);
    rc = eg__lib_push(job_id, p, 0, cb, udata);
    cJSON_Delete(p);
    return rc;
}

void eg__lib_purge_push(const char *ws, const char *doc)
{
    char job_id[EG_QUEUE_JOB_ID_MAX];
    cJSON *p = cJSON_CreateObject();

    /* A fresh job id each time: a document may be written again after an earlier purge (a sync
     * finishing late), and the queue drops a job id it saw within a day. */
    snprintf(job_id, sizeof(job_id), "%s:purge:%s:%lld", ws, doc, (long long)eg_now_us());
    cJSON_AddStringToObject(p, "k", "purge");
    cJSON_AddStringToObject(p, "ws", ws);
    cJSON_AddStringToObject(p, "doc", doc);
    if (eg__lib_push(job_id, p, 0, NULL, NULL) != 0)
        eg_log_warn("library: could not queue the removal of document %s", doc);
    cJSON_Delete(p);
}

/* ---- purge jobs ------------------------------------------------------------------------------ */

static void on_purged(void *udata, int err, int64_t n)
{
    eg_job_t *job = udata;

    (void)n;
    eg_job_done(job, err == EG_ENOTFOUND ? 0 : err);
}

static void run_purge(eg_job_t *job, const cJSON *p)
{
    const char *ws = eg__lib_jstr(p, "ws"), *doc = eg__lib_jstr(p, "doc");
    int rc;

    if (!ws || !doc) {
        eg_job_fail(job, "malformed payload");
        return;
    }
    rc = eg_mem_doc_delete(ws, EG_LIB_BANK, doc, on_purged, job);
    if (rc != 0)
        eg_job_done(job, rc == EG_EINVAL ? 0 : rc);
}

/* ---- the queue ------------------------------------------------------------------------------- */

static void on_job(eg_job_t *job, void *udata)
{
    size_t len;
    const char *payload = eg_job_payload(job, &len);
    cJSON *p = cJSON_ParseWithLength(payload, len);
    const char *k = eg__lib_jstr(p, "k");

    (void)udata;
    if (k && strcmp(k, "sync") == 0)
        eg__lib_sync_run(job, p);
    else if (k && strcmp(k, "purge") == 0)
        run_purge(job, p);
    else if (k && strcmp(k, "bulk") == 0)
        eg__lib_bulk_run(job, p);
    else {
        eg_log_error("library: job %s has a malformed payload; dead-lettered", eg_job_id(job));
        eg_job_fail(job, "malformed payload");
    }
    cJSON_Delete(p);
}

int eg_library_start(uv_loop_t *loop)
{
    const char *vis = getenv("ENGRAM_LIBRARY_VISIBILITY");
    const char *conc = getenv("ENGRAM_LIBRARY_CONCURRENCY");
    const char *umax = getenv("ENGRAM_LIBRARY_URL_MAX_BYTES");
    uint64_t vis_ms = 60000;
    int64_t c = 4;
    size_t url_max = 10u * 1024 * 1024;
    eg_queue_opts_t qo = {0};

    if (vis && vis[0] && (eg_parse_duration_ms(vis, &vis_ms) != 0 || vis_ms < 1000)) {
        eg_log_error("ENGRAM_LIBRARY_VISIBILITY must be a duration of at least 1s, not \"%s\"",
                     vis);
        return EG_EINVAL;
    }
    if (conc && conc[0] && eg_parse_int64(conc, 1, 64, &c) != 0) {
        eg_log_error("ENGRAM_LIBRARY_CONCURRENCY must be an integer from 1 to 64, not \"%s\"",
                     conc);
        return EG_EINVAL;
    }
    if (umax && umax[0] && (eg_parse_size(umax, &url_max) != 0 || url_max < 1024)) {
        eg_log_error("ENGRAM_LIBRARY_URL_MAX_BYTES must be a size of at least 1k, not \"%s\"",
                     umax);
        return EG_EINVAL;
    }
    eg__lib_w.loop = loop;
    eg__lib_w.url_max = url_max;
    eg__lib_w.http = eg_httpc_new(loop, NULL);
    if (!eg__lib_w.http)
        return EG_EINVAL;
    qo.handler = on_job;
    qo.concurrency = (unsigned)c;
    qo.max_attempts = EG__LIB_ATTEMPTS;
    qo.visibility_ms = vis_ms;
    s_q = eg_queue_open(EG_LIB_QUEUE, &qo);
    if (!s_q) {
        eg_httpc_free(eg__lib_w.http);
        eg__lib_w.http = NULL;
        return EG_EINVAL;
    }
    return 0;
}

typedef struct {
    void (*done)(void *);
    void *udata;
} stop_t;

static void on_closed(void *udata)
{
    stop_t *st = udata;

    if (eg__lib_w.http)
        eg_httpc_free(eg__lib_w.http);
    eg__lib_w.http = NULL;
    if (st->done)
        st->done(st->udata);
    free(st);
}

void eg_library_stop(void (*done)(void *), void *udata)
{
    eg_queue_t *q = s_q;
    stop_t *st = eg_xmalloc(sizeof(*st));

    st->done = done;
    st->udata = udata;
    s_q = NULL;
    if (!q) {
        on_closed(st);
        return;
    }
    eg_queue_close(q, on_closed, st);
}
