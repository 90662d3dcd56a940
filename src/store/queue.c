/* Durable job queues on Redis Streams (include/engram/queue.h has the contract and the keys).
 *
 * One open queue is: a dedicated connection blocked in XREADGROUP (a blocking read on the shared
 * pool would stall every command pipelined behind it), a housekeeping timer, and the list of
 * jobs its handler is running. Reads ask for at most the free slots (concurrency - in flight),
 * and no read is outstanding while the slots are full, so backpressure falls out of the loop:
 * undelivered jobs simply wait in the stream, where another process may take them.
 *
 * Every multi-key step is one Lua script (queue_scripts.h), so there is no client-side
 * multi-step flow to get half done: a push, a due-job promotion, a finish (ack, reschedule or
 * dead-letter) and a takeover are each atomic. The timer runs the steps that any process may
 * run: create the group if Redis lost it, promote due jobs, XAUTOCLAIM idle entries, and
 * heartbeat this process's running jobs (XCLAIM JUSTID resets their idle time, so a long job is
 * not mistaken for the job of a dead consumer).
 *
 * Lifetime: the queue is reference counted. The timer handle, every command in flight and every
 * delivered job hold a reference, so replies and late eg_job_done calls after eg_queue_close
 * always find valid memory; the struct is freed with the last reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "store/queue_scripts.h"

#define EG_QUEUE_GROUP         "workers"
#define EG_QUEUE_PROMOTE_BATCH 100

static eg_script_t eg_script_push = {"queue_push", eg_queue_lua_push, ""};
static eg_script_t eg_script_promote = {"queue_promote", eg_queue_lua_promote, ""};
static eg_script_t eg_script_finish = {"queue_finish", eg_queue_lua_finish, ""};
static eg_script_t eg_script_claim = {"queue_claim", eg_queue_lua_claim, ""};
static eg_script_t eg_script_stats = {"queue_stats", eg_queue_lua_stats, ""};

struct eg_queue_s {
    uv_loop_t *loop;
    eg_arena_t arena; /* names and keys */
    const char *name, *consumer;
    const char *k_stream, *k_delayed, *k_data, *k_dead;
    eg_queue_opts_t o;
    eg_store_conn_t *conn;
    uv_timer_t timer;
    int refs;
    eg_job_t *jobs; /* delivered and not finished durably yet */
    unsigned inflight;
    long long client_id; /* of the dedicated connection, to CLIENT UNBLOCK it on close */
    bool reading, group_ready, group_pending, promoting, claiming, beating;
    bool closing, closed;
    char cursor[48]; /* XAUTOCLAIM scan position */
    uint64_t next_claim, next_beat, close_deadline;
    void (*close_done)(void *);
    void *close_udata;
    uint64_t rng;
    eg_queue_counts_t counts;
};

struct eg_job_s {
    eg_queue_t *q;
    eg_job_t *prev, *next;
    char sid[48]; /* stream entry id */
    char *id, *payload;
    size_t len;
    unsigned attempt;
    bool finishing; /* one of the finishing calls was made */
    int mode;       /* what that call asked for, for the counters */
};

enum { EG_FINISH_ACK, EG_FINISH_RETRY, EG_FINISH_DEAD };

static void eg_queue_kick(eg_queue_t *q);
static void eg_queue_close_progress(eg_queue_t *q);

/* ---- small helpers ---------------------------------------------------------------------- */

static bool eg_queue_name_valid(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n == 0 || n > EG_QUEUE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static bool eg_job_id_valid(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > EG_QUEUE_JOB_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] >= 127)
            return false;
    return true;
}

static void eg_queue_unref(eg_queue_t *q)
{
    if (--q->refs > 0)
        return;
    eg_arena_destroy(&q->arena);
    free(q);
}

static uint64_t eg_queue_rand(eg_queue_t *q)
{
    /* xorshift64: jitter only has to spread retries of jobs that failed together. */
    q->rng ^= q->rng << 13;
    q->rng ^= q->rng >> 7;
    q->rng ^= q->rng << 17;
    return q->rng;
}

/* Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries
 * after a shared outage spread out but never come back sooner than base/2. */
static uint64_t eg_queue_backoff(eg_queue_t *q, unsigned attempt)
{
    uint64_t d = q->o.backoff_base_ms;

    for (unsigned i = 1; i < attempt && d < q->o.backoff_cap_ms; i++)
        d *= 2;
    if (d > q->o.backoff_cap_ms)
        d = q->o.backoff_cap_ms;
    return d / 2 + eg_queue_rand(q) % (d / 2 + 1);
}

static bool eg_reply_is_error(int err, const redisReply *r, const char *prefix)
{
    return err == 0 && r != NULL && r->type == REDIS_REPLY_ERROR && r->str != NULL &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

static const char *eg_reply_why(int err, const redisReply *r)
{
    if (err != 0)
        return eg_strerror(err);
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        return r->str;
    return "unexpected reply";
}

/* ---- push and stats (no open queue needed) ---------------------------------------------- */

typedef struct eg_push_s {
    eg_queue_push_fn cb;
    void *udata;
} eg_push_t;

static void eg_queue_push_cb(void *udata, int err, redisReply *r)
{
    eg_push_t *p = udata;

    if (err == 0 && (r == NULL || r->type != REDIS_REPLY_INTEGER)) {
        eg_log_warn("queue: push failed: %s", eg_reply_why(err, r));
        err = EG_EREDIS;
    }
    if (p->cb != NULL)
        p->cb(p->udata, err, err == 0 && r->integer == 1);
    free(p);
}

int eg_queue_push(const char *name, const char *job_id, const char *payload, size_t len,
                  uint64_t delay_ms, eg_queue_push_fn cb, void *udata)
{
    eg_arena_t a;
    eg_push_t *p = NULL;
    char rid[37], delay[24], dedupe[24];
    const char *argv[8];
    size_t lens[8];
    int rc = EG_EINVAL;

    eg_arena_init(&a);
    if (!eg_queue_name_valid(name) || (payload == NULL && len > 0) || len > EG_QUEUE_PAYLOAD_MAX)
        goto fail;
    if (job_id != NULL && !eg_job_id_valid(job_id))
        goto fail;
    if (job_id == NULL) {
        eg_uuid_v4(rid);
        job_id = rid;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        rc = EG_EUNAVAIL;
        goto fail;
    }
    p->cb = cb;
    p->udata = udata;
    snprintf(delay, sizeof(delay), "%llu", (unsigned long long)delay_ms);
    /* A generated id is unique already: no marker to write. */
    snprintf(dedupe, sizeof(dedupe), "%llu",
             job_id == rid ? 0ull : (unsigned long long)EG_QUEUE_DEDUPE_MS);
    argv[0] = eg_key(&a, "q", name, "stream");
    argv[1] = eg_key(&a, "q", name, "delayed");
    argv[2] = eg_key(&a, "q", name, "delayed_data");
    argv[3] = eg_key(&a, "q", name, "seen:%s", job_id);
    argv[4] = job_id;
    argv[5] = payload != NULL ? payload : "";
    argv[6] = delay;
    argv[7] = dedupe;
    for (int i = 0; i < 8; i++)
        lens[i] = i == 5 ? len : strlen(argv[i]);
    rc = eg_store_eval(&eg_script_push, eg_queue_push_cb, p, 4, 8, argv, lens);
fail:
    if (rc != 0)
        free(p); /* once sent, the reply callback frees it */
    eg_arena_destroy(&a);
    return rc;
}

typedef struct eg_stats_req_s {
    eg_queue_stats_fn cb;
    void *udata;
} eg_stats_req_t;

static void eg_queue_stats_cb(void *udata, int err, redisReply *r)
{
    eg_stats_req_t *req = udata;
    eg_queue_stats_t st = {0};
    bool ok = err == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 4;

    for (size_t i = 0; ok && i < 4; i++)
        ok = r->element[i]->type == REDIS_REPLY_INTEGER;
    if (ok) {
        st.running = r->element[1]->integer;
        st.waiting = r->element[0]->integer - st.running;
        st.delayed = r->element[2]->integer;
        st.dead = r->element[3]->integer;
    } else if (err == 0) {
        err = EG_EREDIS;
    }
    req->cb(req->udata, err, ok ? &st : NULL);
    free(req);
}

int eg_queue_stats(const char *name, eg_queue_stats_fn cb, void *udata)
{
    eg_arena_t a;
    eg_stats_req_t *req = NULL;
    const char *argv[3];
    int rc = EG_EINVAL;

    eg_arena_init(&a);
    if (!eg_queue_name_valid(name) || cb == NULL)
        goto fail;
    req = calloc(1, sizeof(*req));
    if (req == NULL) {
        rc = EG_EUNAVAIL;
        goto fail;
    }
    req->cb = cb;
    req->udata = udata;
    argv[0] = eg_key(&a, "q", name, "stream");
    argv[1] = eg_key(&a, "q", name, "delayed");
    argv[2] = eg_key(&a, "q", name, "dead");
    rc = eg_store_eval(&eg_script_stats, eg_queue_stats_cb, req, 3, 3, argv, NULL);
fail:
    if (rc != 0)
        free(req); /* once sent, the reply callback frees it */
    eg_arena_destroy(&a);
    return rc;
}

/* ---- jobs ------------------------------------------------------------------------------- */

const char *eg_job_queue(const eg_job_t *job)
{
    return job->q->name;
}

const char *eg_job_id(const eg_job_t *job)
{
    return job->id;
}

const char *eg_job_payload(const eg_job_t *job, size_t *len)
{
    if (len != NULL)
        *len = job->len;
    return job->payload;
}

unsigned eg_job_attempt(const eg_job_t *job)
{
    return job->attempt;
}

static bool eg_queue_running(const eg_queue_t *q, const char *sid)
{
    for (const eg_job_t *j = q->jobs; j != NULL; j = j->next)
        if (strcmp(j->sid, sid) == 0)
            return true;
    return false;
}

/* The finish script answered (or could not be sent): the job leaves this process. */
static void eg_job_release(eg_job_t *job, int err, redisReply *r)
{
    eg_queue_t *q = job->q;

    if (err != 0 || r == NULL || r->type != REDIS_REPLY_INTEGER) {
        /* The entry stays pending; after the visibility timeout someone takes it over and runs
         * it again, which is why jobs are idempotent. */
        eg_log_warn("queue %s: finishing job %s failed: %s", q->name, job->id,
                    eg_reply_why(err, r));
    } else if (r->integer == 0) {
        q->counts.stale++;
    } else if (job->mode == EG_FINISH_ACK) {
        q->counts.acked++;
    } else if (job->mode == EG_FINISH_RETRY) {
        q->counts.retried++;
    } else {
        q->counts.dead++;
    }
    if (job->prev != NULL)
        job->prev->next = job->next;
    else
        q->jobs = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    q->inflight--;
    free(job);
    eg_queue_kick(q);
    eg_queue_close_progress(q);
    eg_queue_unref(q);
}

static void eg_job_finish_cb(void *udata, int err, redisReply *r)
{
    eg_job_release(udata, err, r);
}

static void eg_job_finish(eg_job_t *job, int mode, uint64_t delay_ms, const char *reason)
{
    eg_queue_t *q = job->q;
    char attempts[16], delay[24], maxlen[24];
    const char *argv[12];
    size_t lens[12];
    int rc;

    if (job->finishing) {
        eg_log_error("queue %s: job %s finished twice", q->name, job->id);
        return;
    }
    job->finishing = true;
    job->mode = mode;
    /* Retries carry the attempts made so far; a retry that would exceed the budget dies. */
    if (mode == EG_FINISH_RETRY && job->attempt >= q->o.max_attempts)
        job->mode = mode = EG_FINISH_DEAD;
    if (mode == EG_FINISH_RETRY && delay_ms == 0)
        delay_ms = eg_queue_backoff(q, job->attempt);
    if (mode != EG_FINISH_ACK)
        eg_log_info("queue %s: job %s attempt %u failed (%s)%s", q->name, job->id, job->attempt,
                    reason, mode == EG_FINISH_DEAD ? ", dead-lettered" : "");
    snprintf(attempts, sizeof(attempts), "%u", job->attempt);
    snprintf(delay, sizeof(delay), "%llu", (unsigned long long)delay_ms);
    snprintf(maxlen, sizeof(maxlen), "%d", EG_QUEUE_DEAD_MAXLEN);
    argv[0] = q->k_stream;
    argv[1] = q->k_delayed;
    argv[2] = q->k_data;
    argv[3] = q->k_dead;
    argv[4] = job->sid;
    argv[5] = mode == EG_FINISH_ACK ? "ack" : mode == EG_FINISH_RETRY ? "retry" : "dead";
    argv[6] = job->id;
    argv[7] = job->payload;
    argv[8] = attempts;
    argv[9] = delay;
    argv[10] = reason != NULL ? reason : "";
    argv[11] = maxlen;
    for (int i = 0; i < 12; i++)
        lens[i] = i == 7 ? job->len : strlen(argv[i]);
    rc = eg_store_eval(&eg_script_finish, eg_job_finish_cb, job, 4, 12, argv, lens);
    if (rc != 0)
        eg_job_release(job, rc, NULL);
}

void eg_job_done(eg_job_t *job, int err)
{
    if (err == 0)
        eg_job_finish(job, EG_FINISH_ACK, 0, NULL);
    else
        eg_job_finish(job, EG_FINISH_RETRY, 0, eg_strerror(err));
}

void eg_job_retry(eg_job_t *job, uint64_t delay_ms, const char *reason)
{
    eg_job_finish(job, EG_FINISH_RETRY, delay_ms, reason != NULL ? reason : "retry");
}

void eg_job_fail(eg_job_t *job, const char *reason)
{
    eg_job_finish(job, EG_FINISH_DEAD, 0, reason != NULL ? reason : "failed");
}

/* Hand one stream entry [id, [field, value, ...]] to the handler. */
static void eg_queue_dispatch(eg_queue_t *q, const redisReply *e)
{
    const redisReply *f, *id = NULL, *n = NULL, *p = NULL;
    eg_job_t *job;
    char *o;

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= sizeof(job->sid))
        return;
    f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY)
        return;
    if (eg_queue_running(q, e->element[0]->str))
        return; /* our own entry came back through XAUTOCLAIM while it still runs */
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "id") == 0)
            id = v;
        else if (strcmp(k->str, "n") == 0)
            n = v;
        else if (strcmp(k->str, "p") == 0)
            p = v;
    }
    job = calloc(1, sizeof(*job) + (id != NULL ? id->len : 0) + 1 + (p != NULL ? p->len : 0) + 1);
    if (job == NULL)
        return; /* stays pending; taken over later */
    job->q = q;
    memcpy(job->sid, e->element[0]->str, e->element[0]->len);
    o = (char *)(job + 1);
    job->id = o;
    if (id != NULL)
        memcpy(o, id->str, id->len);
    o += (id != NULL ? id->len : 0) + 1;
    job->payload = o;
    job->len = p != NULL ? p->len : 0;
    if (p != NULL)
        memcpy(o, p->str, p->len);
    job->attempt = (n != NULL ? (unsigned)strtoul(n->str, NULL, 10) : 0) + 1;
    job->next = q->jobs;
    if (q->jobs != NULL)
        q->jobs->prev = job;
    q->jobs = job;
    q->inflight++;
    q->refs++;
    q->counts.delivered++;
    if (id == NULL || p == NULL) {
        /* Not written by eg_queue_push: it can never run. */
        eg_job_fail(job, "malformed queue entry");
        return;
    }
    q->o.handler(job, q->o.udata);
}

static void eg_queue_dispatch_all(eg_queue_t *q, const redisReply *entries)
{
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY)
        return;
    /* The handler may finish jobs or close the queue: each entry is read from the reply, which
     * stays valid for the whole callback. */
    for (size_t i = 0; i < entries->elements; i++)
        eg_queue_dispatch(q, entries->element[i]);
}

/* ---- the fetch loop --------------------------------------------------------------------- */

static void eg_queue_read_cb(void *udata, int err, redisReply *r)
{
    eg_queue_t *q = udata;

    q->reading = false;
    if (eg_reply_is_error(err, r, "NOGROUP")) {
        /* Redis lost the stream (restart without persistence, FLUSHALL): the timer recreates
         * the group, then reading resumes. */
        q->group_ready = false;
    } else if (err == 0 && r->type == REDIS_REPLY_ARRAY) {
        /* [[stream, [entry, ...]]] */
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *s = r->element[i];

            if (s->type == REDIS_REPLY_ARRAY && s->elements == 2)
                eg_queue_dispatch_all(q, s->element[1]);
        }
    } else if (err == 0 && r->type == REDIS_REPLY_ERROR) {
        eg_log_warn("queue %s: read failed: %s", q->name, r->str);
    }
    /* A NULL reply is a BLOCK timeout (or CLIENT UNBLOCK); a connection error waits for the
     * connection's ready callback. Either way, read again if there is room. */
    if (err == 0)
        eg_queue_kick(q);
    eg_queue_close_progress(q);
    eg_queue_unref(q);
}

/* Start a blocking read when there is room and nothing is reading yet. */
static void eg_queue_kick(eg_queue_t *q)
{
    unsigned room;

    if (q->closing || q->reading || !q->group_ready || q->inflight >= q->o.concurrency ||
        !eg_store_dedicated_up(q->conn))
        return;
    room = q->o.concurrency - q->inflight;
    if (eg_store_dedicated_command(
            q->conn, eg_queue_read_cb, q,
            "XREADGROUP GROUP " EG_QUEUE_GROUP " %s COUNT %u BLOCK %llu STREAMS %s >", q->consumer,
            room, (unsigned long long)q->o.block_ms, q->k_stream) != 0)
        return;
    q->reading = true;
    q->refs++;
}

static void eg_queue_client_id_cb(void *udata, int err, redisReply *r)
{
    eg_queue_t *q = udata;

    if (err == 0 && r->type == REDIS_REPLY_INTEGER)
        q->client_id = r->integer;
    eg_queue_unref(q);
}

/* The dedicated connection is (again) ready: learn its id, then read. */
static void eg_queue_conn_ready(void *udata)
{
    eg_queue_t *q = udata;

    q->client_id = 0;
    if (eg_store_dedicated_command(q->conn, eg_queue_client_id_cb, q, "CLIENT ID") == 0)
        q->refs++;
    eg_queue_kick(q);
}

/* ---- housekeeping ----------------------------------------------------------------------- */

static void eg_queue_group_cb(void *udata, int err, redisReply *r)
{
    eg_queue_t *q = udata;

    q->group_pending = false;
    if (err == 0 && (r->type == REDIS_REPLY_STATUS || eg_reply_is_error(err, r, "BUSYGROUP")))
        q->group_ready = true;
    else if (err == 0)
        eg_log_warn("queue %s: cannot create the consumer group: %s", q->name,
                    eg_reply_why(err, r));
    eg_queue_kick(q);
    eg_queue_unref(q);
}

static void eg_queue_promote_cb(void *udata, int err, redisReply *r)
{
    eg_queue_t *q = udata;

    q->promoting = false;
    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        eg_log_warn("queue %s: promoting delayed jobs failed: %s", q->name, r->str);
    eg_queue_unref(q);
}

static void eg_queue_claim_cb(void *udata, int err, redisReply *r)
{
    eg_queue_t *q = udata;
    uint64_t now = uv_now(q->loop);

    q->claiming = false;
    q->next_claim = now + q->o.claim_every_ms;
    if (eg_reply_is_error(err, r, "NOGROUP") ||
        (err == 0 && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOGROUP") != NULL)) {
        q->group_ready = false;
    } else if (err == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
               r->element[0]->type == REDIS_REPLY_STRING &&
               r->element[0]->len < sizeof(q->cursor)) {
        const redisReply *entries = r->element[1];

        memcpy(q->cursor, r->element[0]->str, r->element[0]->len + 1);
        /* A full batch or an unfinished scan: continue on the next tick. */
        if (strcmp(q->cursor, "0-0") != 0)
            q->next_claim = now;
        if (entries->type == REDIS_REPLY_ARRAY)
            q->counts.claimed += entries->elements;
        /* Claimed entries are ours now: run them even while closing (the close waits for
         * them), unless the close already gave up waiting. */
        if (!q->closed)
            eg_queue_dispatch_all(q, entries);
    } else if (err == 0) {
        eg_log_warn("queue %s: takeover failed: %s", q->name, eg_reply_why(err, r));
    }
    eg_queue_close_progress(q);
    eg_queue_unref(q);
}

static void eg_queue_beat_cb(void *udata, int err, redisReply *r)
{
    eg_queue_t *q = udata;

    q->beating = false;
    eg_queue_unref(q);
}

static void eg_queue_promote(eg_queue_t *q)
{
    const char *argv[4] = {q->k_stream, q->k_delayed, q->k_data, NULL};
    char limit[16];

    snprintf(limit, sizeof(limit), "%d", EG_QUEUE_PROMOTE_BATCH);
    argv[3] = limit;
    if (eg_store_eval(&eg_script_promote, eg_queue_promote_cb, q, 3, 4, argv, NULL) != 0)
        return;
    q->promoting = true;
    q->refs++;
}

static void eg_queue_claim(eg_queue_t *q)
{
    char idle[24], count[16], maxd[16], maxlen[16];
    const char *argv[8] = {q->k_stream, q->k_dead, q->consumer, idle,
                           q->cursor,   count,     maxd,        maxlen};

    snprintf(idle, sizeof(idle), "%llu", (unsigned long long)q->o.visibility_ms);
    snprintf(count, sizeof(count), "%u", q->o.concurrency - q->inflight);
    snprintf(maxd, sizeof(maxd), "%u", q->o.max_attempts);
    snprintf(maxlen, sizeof(maxlen), "%d", EG_QUEUE_DEAD_MAXLEN);
    if (eg_store_eval(&eg_script_claim, eg_queue_claim_cb, q, 2, 8, argv, NULL) != 0)
        return;
    q->claiming = true;
    q->refs++;
}

/* XCLAIM <our running ids> JUSTID: resets their idle time without counting a delivery. */
static void eg_queue_heartbeat(eg_queue_t *q)
{
    const char **argv = NULL;
    unsigned n = 0;

    argv = calloc(7 + (size_t)q->inflight, sizeof(*argv));
    if (argv == NULL)
        return;
    argv[n++] = "XCLAIM";
    argv[n++] = q->k_stream;
    argv[n++] = EG_QUEUE_GROUP;
    argv[n++] = q->consumer;
    argv[n++] = "0";
    for (const eg_job_t *j = q->jobs; j != NULL && n < 5 + q->inflight; j = j->next)
        argv[n++] = j->sid;
    argv[n++] = "JUSTID";
    if (eg_store_commandv(eg_queue_beat_cb, q, (int)n, argv, NULL) == 0) {
        q->beating = true;
        q->refs++;
    }
    free(argv);
}

static void eg_queue_tick(uv_timer_t *t)
{
    eg_queue_t *q = t->data;
    uint64_t now = uv_now(q->loop);

    if (q->closing) {
        eg_queue_close_progress(q);
        return;
    }
    if (!eg_store_up())
        return;
    if (!q->group_ready && !q->group_pending) {
        /* From 0, not $: jobs pushed before anyone consumed must not be skipped. */
        if (eg_store_command(eg_queue_group_cb, q, "XGROUP CREATE %s " EG_QUEUE_GROUP " 0 MKSTREAM",
                             q->k_stream) == 0) {
            q->group_pending = true;
            q->refs++;
        }
    }
    if (!q->promoting)
        eg_queue_promote(q);
    if (q->group_ready && !q->claiming && now >= q->next_claim && q->inflight < q->o.concurrency)
        eg_queue_claim(q);
    if (q->inflight > 0 && !q->beating && now >= q->next_beat) {
        q->next_beat = now + q->o.visibility_ms / 3;
        eg_queue_heartbeat(q);
    }
    eg_queue_kick(q);
}

/* ---- open / close ----------------------------------------------------------------------- */

eg_queue_t *eg_queue_open(const char *name, const eg_queue_opts_t *opts)
{
    eg_queue_t *q = NULL;
    uv_loop_t *loop = eg_store_loop();
    char host[64] = "", rnd[9];
    unsigned char seed[8];

    if (loop == NULL || !eg_queue_name_valid(name) || opts == NULL || opts->handler == NULL)
        goto fail;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        goto fail;
    eg_arena_init(&q->arena);
    q->loop = loop;
    q->o = *opts;
    if (q->o.concurrency == 0)
        q->o.concurrency = 4;
    if (q->o.max_attempts == 0)
        q->o.max_attempts = 5;
    if (q->o.backoff_base_ms == 0)
        q->o.backoff_base_ms = 1000;
    if (q->o.backoff_cap_ms == 0)
        q->o.backoff_cap_ms = 300000;
    if (q->o.backoff_cap_ms < q->o.backoff_base_ms)
        q->o.backoff_cap_ms = q->o.backoff_base_ms;
    if (q->o.visibility_ms == 0)
        q->o.visibility_ms = 60000;
    if (q->o.close_timeout_ms == 0)
        q->o.close_timeout_ms = 10000;
    if (q->o.block_ms == 0)
        q->o.block_ms = 1000;
    if (q->o.tick_ms == 0)
        q->o.tick_ms = 250;
    if (q->o.claim_every_ms == 0)
        q->o.claim_every_ms = q->o.visibility_ms / 2 < 5000 ? q->o.visibility_ms / 2 : 5000;
    if (q->o.claim_every_ms == 0)
        q->o.claim_every_ms = 1;

    gethostname(host, sizeof(host) - 1);
    for (char *c = host; *c; c++)
        if (*c == ' ' || *c == '{' || *c == '}')
            *c = '_';
    eg_random_base62(rnd, 8);
    eg_random_bytes(seed, sizeof(seed));
    memcpy(&q->rng, seed, sizeof(q->rng));
    q->rng |= 1;
    /* A fresh name per open: a restarted process never mistakes its predecessor's pending
     * entries for its own; it takes them over through XAUTOCLAIM like anyone else's. */
    q->consumer =
        eg_arena_printf(&q->arena, "%s-%d-%s", host[0] ? host : "engramd", (int)getpid(), rnd);
    q->name = eg_arena_strdup(&q->arena, name);
    q->k_stream = eg_key(&q->arena, "q", name, "stream");
    q->k_delayed = eg_key(&q->arena, "q", name, "delayed");
    q->k_data = eg_key(&q->arena, "q", name, "delayed_data");
    q->k_dead = eg_key(&q->arena, "q", name, "dead");
    snprintf(q->cursor, sizeof(q->cursor), "0-0");

    /* Commands on it may legitimately wait the whole BLOCK time before Redis answers. */
    q->conn = eg_store_dedicated_open(q->o.block_ms, eg_queue_conn_ready, q);
    if (q->conn == NULL)
        goto fail;
    uv_timer_init(loop, &q->timer);
    q->timer.data = q;
    q->refs = 1; /* the timer */
    uv_timer_start(&q->timer, eg_queue_tick, 0, q->o.tick_ms);
    return q;

fail:
    if (q != NULL) {
        eg_arena_destroy(&q->arena);
        free(q);
    }
    return NULL;
}

const char *eg_queue_consumer(const eg_queue_t *q)
{
    return q->consumer;
}

void eg_queue_counts(const eg_queue_t *q, eg_queue_counts_t *out)
{
    *out = q->counts;
    out->inflight = q->inflight;
}

static void eg_queue_timer_closed(uv_handle_t *h)
{
    eg_queue_t *q = h->data;

    if (q->close_done != NULL)
        q->close_done(q->close_udata);
    eg_queue_unref(q);
}

/* Finish closing once nothing runs and nothing reads, or when the deadline has passed. */
static void eg_queue_close_progress(eg_queue_t *q)
{
    eg_store_conn_t *conn;

    if (!q->closing || q->closed)
        return;
    if ((q->reading || q->inflight > 0 || q->claiming) && uv_now(q->loop) < q->close_deadline)
        return;
    if (q->inflight > 0)
        eg_log_warn("queue %s: closed with %u jobs still running", q->name, q->inflight);
    q->closed = true;
    conn = q->conn;
    q->conn = NULL;
    eg_store_dedicated_close(conn); /* a read still pending gets EG_EUNAVAIL now */
    uv_close((uv_handle_t *)&q->timer, eg_queue_timer_closed);
}

void eg_queue_close(eg_queue_t *q, void (*done)(void *), void *udata)
{
    if (q == NULL || q->closing)
        return;
    q->closing = true;
    q->close_done = done;
    q->close_udata = udata;
    q->close_deadline = uv_now(q->loop) + q->o.close_timeout_ms;
    /* The blocked read would otherwise hold the close for up to block_ms; an unblocked
     * XREADGROUP returns nil at once. */
    if (q->reading && q->client_id > 0)
        eg_store_command(NULL, NULL, "CLIENT UNBLOCK %lld", q->client_id);
    eg_queue_close_progress(q);
}
