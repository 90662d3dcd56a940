/* Durable job queues on Redis Streams: every asynchronous piece of work (retain, consolidation,
 * webhook deliveries, agent runs, URL/file ingestion) is a job on a named queue.
 *
 * Guarantees: a pushed job is in Redis when the push callback reports success; it is delivered
 * to one handler at a time in the fleet (at least once: a consumer that dies mid-job has its job
 * taken over after the visibility timeout, so handlers must be idempotent); a failed attempt is
 * retried with exponential backoff and jitter until max_attempts, then the job goes to the
 * queue's dead-letter stream with its last error. Pushing a job id that was already pushed within
 * the dedupe window (EG_QUEUE_DEDUPE_MS) is a successful no-op, so producers can retry pushes.
 *
 * Keys (docs/keyspace.md, "Queues"), all in the queue's slot {q:<name>}:
 *   eg:{q:<name>}:stream        stream of ready jobs (fields id, n = attempts so far, p = payload);
 *                               consumer group "workers", one consumer per open queue
 *   eg:{q:<name>}:delayed       zset job id -> due time (ms), delayed pushes and retries
 *   eg:{q:<name>}:delayed_data  hash job id -> "<n>:<payload>" while the job is delayed
 *   eg:{q:<name>}:dead          dead-letter stream (id, n, p, err, at), MAXLEN ~ 10000
 *   eg:{q:<name>}:seen:<job_id> push dedupe marker, expires after EG_QUEUE_DEDUPE_MS
 *
 * Every engramd process that opens a queue consumes it with XREADGROUP ... BLOCK on a dedicated
 * connection, at most `concurrency` jobs at a time, and runs the housekeeping anyone may run:
 * delayed jobs due now are moved into the stream, and entries idle for longer than the
 * visibility timeout are taken over with XAUTOCLAIM (heartbeats keep this process's running
 * jobs from looking idle). Everything runs on the store's loop. */
#ifndef ENGRAM_QUEUE_H
#define ENGRAM_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EG_QUEUE_NAME_MAX    64                    /* [A-Za-z0-9_.:-], not empty */
#define EG_QUEUE_JOB_ID_MAX  200                   /* printable ASCII, no spaces */
#define EG_QUEUE_DEDUPE_MS   (24ull * 3600 * 1000) /* push idempotency window */
#define EG_QUEUE_DEAD_MAXLEN 10000                 /* dead-letter entries kept (about) */
#define EG_QUEUE_PAYLOAD_MAX (16u * 1024 * 1024)   /* payloads go through Redis whole */

typedef struct eg_queue_s eg_queue_t;
typedef struct eg_job_s eg_job_t;

/* Runs on the loop for each delivered job. The handler owns the job until it calls exactly one
 * of eg_job_done / eg_job_retry / eg_job_fail, now or later (from any later callback). */
typedef void (*eg_job_fn)(eg_job_t *job, void *udata);

typedef struct eg_queue_opts_s {
    eg_job_fn handler; /* required */
    void *udata;
    unsigned concurrency;      /* jobs in flight in this process; 0 = 4 */
    unsigned max_attempts;     /* attempts before dead-lettering; 0 = 5 */
    uint64_t backoff_base_ms;  /* first retry delay; doubles per attempt; 0 = 1000 */
    uint64_t backoff_cap_ms;   /* longest retry delay; 0 = 300000 */
    uint64_t visibility_ms;    /* a job idle this long is taken over; 0 = 60000 */
    uint64_t close_timeout_ms; /* eg_queue_close waits this long for running jobs; 0 = 10000 */
    /* Tuning, mostly for tests (0 = default): */
    uint64_t block_ms;       /* XREADGROUP BLOCK; 1000 */
    uint64_t tick_ms;        /* delayed-job promotion and housekeeping period; 250 */
    uint64_t claim_every_ms; /* XAUTOCLAIM period; min(5000, visibility / 2) */
} eg_queue_opts_t;

/* Start consuming queue name (needs eg_store_init first; Redis may be down, it catches up).
 * NULL on invalid arguments or when the store is not initialised. */
eg_queue_t *eg_queue_open(const char *name, const eg_queue_opts_t *opts);

/* Stop fetching, wait (up to close_timeout_ms) for running jobs to be finished durably, close the
 * dedicated connection, then call done(udata) (may be NULL). Jobs still running after the
 * timeout stay valid and may still be finished. q may still be read inside done (e.g. for
 * eg_queue_counts), and not at all after it. */
void eg_queue_close(eg_queue_t *q, void (*done)(void *), void *udata);

/* The consumer name this queue reads as ("<host>-<pid>-<random>"). */
const char *eg_queue_consumer(const eg_queue_t *q);

/* Called once per accepted push: err 0 and queued true (new job) or false (duplicate job id,
 * nothing done), or err EG_EUNAVAIL / EG_ESTORETIMEOUT / EG_EREDIS. */
typedef void (*eg_queue_push_fn)(void *udata, int err, bool queued);

/* Push a job onto queue name. job_id makes the push idempotent (NULL: a random id, no dedupe);
 * delay_ms > 0 delivers it no earlier than that from now (Redis clock). Returns 0 (cb, which may
 * be NULL, will be called), EG_EINVAL, or EG_EUNAVAIL (cb not called). */
int eg_queue_push(const char *name, const char *job_id, const char *payload, size_t len,
                  uint64_t delay_ms, eg_queue_push_fn cb, void *udata);

/* ---- jobs (valid from the handler call until one of the finishing calls) ---------------- */

const char *eg_job_queue(const eg_job_t *job);
const char *eg_job_id(const eg_job_t *job);
/* The payload (NUL-terminated for convenience; len excludes the NUL). */
const char *eg_job_payload(const eg_job_t *job, size_t *len);
/* 1 for the first attempt, 2 for the first retry, ... */
unsigned eg_job_attempt(const eg_job_t *job);

/* Finish the job. err 0: done (XACK + XDEL, after which the job is gone). Otherwise like
 * eg_job_retry(job, 0, eg_strerror(err)). The job is invalid after this call. */
void eg_job_done(eg_job_t *job, int err);

/* The attempt failed: retry after delay_ms (0 = exponential backoff with jitter), or dead-letter
 * the job with reason when this was its last attempt. The job is invalid after this call. */
void eg_job_retry(eg_job_t *job, uint64_t delay_ms, const char *reason);

/* The job can never succeed: dead-letter it now with reason. Invalid after this call. */
void eg_job_fail(eg_job_t *job, const char *reason);

/* ---- observability ---------------------------------------------------------------------- */

/* What this process's queue has done since it was opened. */
typedef struct eg_queue_counts_s {
    uint64_t delivered; /* handler calls */
    uint64_t acked;     /* eg_job_done(job, 0) made durable */
    uint64_t retried;   /* attempts rescheduled */
    uint64_t dead;      /* jobs dead-lettered by this process */
    uint64_t stale;     /* finished jobs that someone else had already finished */
    uint64_t claimed;   /* entries taken over with XAUTOCLAIM */
    unsigned inflight;  /* running now */
} eg_queue_counts_t;

void eg_queue_counts(const eg_queue_t *q, eg_queue_counts_t *out);

typedef struct eg_queue_stats_s {
    int64_t waiting; /* in the stream, not delivered yet */
    int64_t running; /* delivered, not finished (pending entries) */
    int64_t delayed; /* scheduled or waiting for a retry */
    int64_t dead;    /* dead-letter stream length */
} eg_queue_stats_t;

typedef void (*eg_queue_stats_fn)(void *udata, int err, const eg_queue_stats_t *stats);

/* Fleet-wide numbers for queue name (one script, one round trip). 0 or EG_EINVAL/EG_EUNAVAIL. */
int eg_queue_stats(const char *name, eg_queue_stats_fn cb, void *udata);

#endif
