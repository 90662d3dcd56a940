/* Job queues and operation records against a real redis-server: push, consume, ack, idempotent
 * pushes, the concurrency cap, retries with backoff, dead-lettering, delayed jobs, takeover of a
 * killed consumer's job, a Redis restart mid-run, close semantics, and op records.
 *
 * Each test runs its own uv loop to completion and checks callback counts and that no handle
 * leaked. ENGRAM_TEST_REDIS_URL points at a shared server when the test script provides one
 * (queue names are unique per test run); otherwise, and for the restart test, the test starts
 * its own server (ENGRAM_REDIS_SERVER, default "redis-server"). */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/ops.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"

#include "redis_fixture.h"

/* A synchronous side connection for assertions about what is in Redis. */
static redisReply *t_sync(const char *url, const char *fmt, ...)
{
    eg_redis_url_t u;
    struct timeval tv = {2, 0};
    redisContext *c;
    redisReply *r;
    va_list ap;

    cr_assert_eq(eg_redis_url_parse(url, &u), 0);
    c = redisConnectWithTimeout(u.host, u.port, tv);
    cr_assert(c != NULL && c->err == 0);
    if (u.db != 0)
        freeReplyObject(redisCommand(c, "SELECT %d", u.db));
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    cr_assert_not_null(r);
    return r;
}

static long long t_sync_int(const char *url, const char *fmt, const char *arg)
{
    redisReply *r = t_sync(url, fmt, arg);
    long long v;

    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s: type %d %s", fmt, r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* ---- loop harness ----------------------------------------------------------------------- */

#define T_HELD_MAX 64

typedef struct t_ctx_s t_ctx_t;

struct t_ctx_s {
    uv_loop_t loop;
    uv_timer_t tick;
    int step;
    uint64_t step_at, limit_ms;
    bool finished, shutdown_called;
    int shutdown_done;
    void (*run)(t_ctx_t *);
    const char *url;
    char qname[96];
    eg_queue_t *q;
    int closed; /* close done callbacks */
    /* handler behaviour */
    int fail_until; /* attempts below this fail with eg_job_done(job, EG_EUNAVAIL) */
    bool hold;      /* keep jobs in held[] instead of finishing them */
    bool always_retry;
    bool fail_hard; /* eg_job_fail */
    eg_job_t *held[T_HELD_MAX];
    int nheld, max_held;
    /* observations */
    int handled, pushed, dups, push_errs, attempts[8];
    uint64_t handled_ns[16];
    char last_payload[64];
    size_t last_len;
    unsigned last_attempt;
    uint64_t push_ns;
    eg_queue_stats_t stats;
    eg_queue_counts_t final; /* counts at close */
    int stats_done;
    int op_done, op_err;
    eg_op_t op;
    char op_error[64];
    int list_n;
    char list_ids[16][32];
    char cursor[64];
    void *extra;
};

static void t_next(t_ctx_t *t)
{
    t->step++;
    t->step_at = uv_now(&t->loop);
}

static uint64_t t_in_step(t_ctx_t *t)
{
    return uv_now(&t->loop) - t->step_at;
}

static void t_shutdown_done(void *udata)
{
    ((t_ctx_t *)udata)->shutdown_done++;
}

static void t_tick_cb(uv_timer_t *h)
{
    t_ctx_t *t = h->data;

    cr_assert(uv_now(&t->loop) < t->limit_ms, "test step %d did not finish in time", t->step);
    if (!t->finished)
        t->run(t);
    if (t->finished && !t->shutdown_called) {
        t->shutdown_called = true;
        eg_store_shutdown(t_shutdown_done, t);
        uv_close((uv_handle_t *)&t->tick, NULL);
    }
}

/* Run the test on queue qname (NULL: a fresh unique name) to completion, then check that every
 * handle was closed. */
static void t_run_named(t_ctx_t *t, const char *url, const char *qname, uint64_t limit_ms)
{
    eg_store_opts_t opts = {url, 2, 2000, 500};
    char rnd[9];

    t->url = url;
    eg_random_base62(rnd, 8);
    if (qname != NULL)
        snprintf(t->qname, sizeof(t->qname), "%s", qname);
    else
        snprintf(t->qname, sizeof(t->qname), "test-%d-%s", (int)getpid(), rnd);
    cr_assert_eq(uv_loop_init(&t->loop), 0);
    cr_assert_eq(eg_store_init(&t->loop, &opts), 0);
    t->limit_ms = uv_now(&t->loop) + limit_ms;
    t->step_at = uv_now(&t->loop);
    uv_timer_init(&t->loop, &t->tick);
    t->tick.data = t;
    uv_timer_start(&t->tick, t_tick_cb, 0, 10);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    cr_assert(t->finished);
    cr_assert_eq(t->shutdown_done, 1);
    t_loop_close_checked(&t->loop);
}

static void t_run(t_ctx_t *t, const char *url, uint64_t limit_ms)
{
    t_run_named(t, url, NULL, limit_ms);
}

static void t_handler(eg_job_t *job, void *udata)
{
    t_ctx_t *t = udata;
    size_t len;
    const char *p = eg_job_payload(job, &len);
    unsigned a = eg_job_attempt(job);

    cr_assert_str_eq(eg_job_queue(job), t->qname);
    if (t->handled < 16)
        t->handled_ns[t->handled] = uv_hrtime();
    t->handled++;
    if (a < 8)
        t->attempts[a]++;
    t->last_attempt = a;
    cr_assert(len < sizeof(t->last_payload));
    memcpy(t->last_payload, p, len);
    t->last_len = len;
    cr_assert_eq(p[len], '\0');
    if (t->hold) {
        cr_assert(t->nheld < T_HELD_MAX);
        t->held[t->nheld++] = job;
        if (t->nheld > t->max_held)
            t->max_held = t->nheld;
        return;
    }
    if (t->fail_hard)
        eg_job_fail(job, "cannot ever work");
    else if (t->always_retry)
        eg_job_retry(job, 0, "boom");
    else if ((int)a < t->fail_until)
        eg_job_done(job, EG_EUNAVAIL);
    else
        eg_job_done(job, 0);
}

/* Finish every held job with done(0). */
static void t_release_all(t_ctx_t *t)
{
    int n = t->nheld;

    t->nheld = 0;
    for (int i = 0; i < n; i++)
        eg_job_done(t->held[i], 0);
}

static void t_push_cb(void *udata, int err, bool queued)
{
    t_ctx_t *t = udata;

    if (err != 0)
        t->push_errs++;
    else if (queued)
        t->pushed++;
    else
        t->dups++;
}

static void t_push(t_ctx_t *t, const char *id, const char *payload, uint64_t delay_ms)
{
    cr_assert_eq(
        eg_queue_push(t->qname, id, payload, payload ? strlen(payload) : 0, delay_ms, t_push_cb, t),
        0);
}

/* The queue is still valid inside its close callback (and not after): snapshot its counts. */
static void t_close_done(void *udata)
{
    t_ctx_t *t = udata;

    t->closed++;
    if (t->q != NULL)
        eg_queue_counts(t->q, &t->final);
    t->q = NULL;
}

static void t_stats_cb(void *udata, int err, const eg_queue_stats_t *st)
{
    t_ctx_t *t = udata;

    cr_assert_eq(err, 0);
    t->stats = *st;
    t->stats_done++;
}

static eg_queue_t *t_open(t_ctx_t *t, eg_queue_opts_t o)
{
    eg_queue_t *q;

    o.handler = t_handler;
    o.udata = t;
    if (o.tick_ms == 0)
        o.tick_ms = 50;
    q = eg_queue_open(t->qname, &o);
    cr_assert_not_null(q);
    return q;
}

static void t_counts(t_ctx_t *t, eg_queue_counts_t *c)
{
    eg_queue_counts(t->q, c);
}

TestSuite(queue, .init = t_redis_setup, .fini = t_redis_teardown, .timeout = 90);

/* ---- argument checks -------------------------------------------------------------------- */

Test(queue, rejects_bad_arguments)
{
    eg_queue_opts_t o = {.handler = t_handler};

    /* No store: nothing opens, nothing is accepted. */
    cr_assert_null(eg_queue_open("q", &o));
    cr_assert_eq(eg_queue_push("q", "a", "x", 1, 0, NULL, NULL), EG_EUNAVAIL);
    cr_assert_eq(eg_queue_push("bad name", "a", "x", 1, 0, NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_queue_push("q{x}", "a", "x", 1, 0, NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_queue_push("q", "has space", "x", 1, 0, NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_queue_push("q", "", "x", 1, 0, NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_queue_push("q", "a", NULL, 3, 0, NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_op_create("b", "x", "bad id", "k", NULL, NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_op_update("b", "x", "op", 17, -1, NULL, NULL, NULL), EG_EINVAL);
    cr_assert_str_eq(eg_op_status_name(EG_OP_CANCELLED), "cancelled");
}

/* ---- push, consume, ack ----------------------------------------------------------------- */

static void run_basic(t_ctx_t *t)
{
    eg_queue_counts_t c;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->q = t_open(t, (eg_queue_opts_t){.concurrency = 4});
        /* Binary-safe payload (embedded NUL). */
        cr_assert_eq(eg_queue_push(t->qname, "job-bin", "a\0b", 3, 0, t_push_cb, t), 0);
        for (int i = 0; i < 4; i++) {
            char id[16], p[16];

            snprintf(id, sizeof(id), "job-%d", i);
            snprintf(p, sizeof(p), "payload %d", i);
            t_push(t, id, p, 0);
        }
        t_push(t, NULL, "no id", 0); /* generated id */
        t_next(t);
        return;
    case 1:
        t_counts(t, &c);
        if (c.acked < 6)
            return;
        cr_assert_eq(t->pushed, 6);
        cr_assert_eq(t->handled, 6);
        cr_assert_eq(c.delivered, 6);
        cr_assert_eq(c.inflight, 0);
        cr_assert_eq(t->attempts[1], 6);
        cr_assert_eq(eg_queue_stats(t->qname, t_stats_cb, t), 0);
        t_next(t);
        return;
    case 2:
        if (t->stats_done < 1)
            return;
        cr_assert_eq(t->stats.waiting, 0);
        cr_assert_eq(t->stats.running, 0);
        cr_assert_eq(t->stats.delayed, 0);
        cr_assert_eq(t->stats.dead, 0);
        eg_queue_close(t->q, t_close_done, t);
        t_next(t);
        return;
    case 3:
        if (t->closed < 1)
            return;
        t->finished = true;
        return;
    }
}

Test(queue, push_consume_ack)
{
    t_ctx_t t = {0};
    char key[160];

    t.run = run_basic;
    t_run(&t, t_url(), 20000);
    cr_assert_eq(t.closed, 1);
    /* Acked entries are deleted, not only acknowledged. */
    snprintf(key, sizeof(key), "eg:{q:%s}:stream", t.qname);
    cr_assert_eq(t_sync_int(t.url, "XLEN %s", key), 0);
}

/* Binary payload check, separately: the last handled payload of a single-job run. */
static void run_binary(t_ctx_t *t)
{
    eg_queue_counts_t c;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->q = t_open(t, (eg_queue_opts_t){0});
        cr_assert_eq(eg_queue_push(t->qname, "bin", "a\0b", 3, 0, t_push_cb, t), 0);
        t_next(t);
        return;
    case 1:
        t_counts(t, &c);
        if (c.acked < 1)
            return;
        cr_assert_eq(t->last_len, 3);
        cr_assert_eq(memcmp(t->last_payload, "a\0b", 3), 0);
        eg_queue_close(t->q, t_close_done, t);
        t_next(t);
        return;
    case 2:
        if (t->closed == 1)
            t->finished = true;
        return;
    }
}

Test(queue, binary_payload)
{
    t_ctx_t t = {0};

    t.run = run_binary;
    t_run(&t, t_url(), 20000);
}

/* ---- idempotent push -------------------------------------------------------------------- */

static void run_idempotent(t_ctx_t *t)
{
    eg_queue_counts_t c;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        /* Both before anyone consumes, and concurrently. */
        t_push(t, "same", "first", 0);
        t_push(t, "same", "second", 0);
        t_push(t, "other", "x", 0);
        t_next(t);
        return;
    case 1:
        if (t->pushed + t->dups < 3)
            return;
        cr_assert_eq(t->pushed, 2);
        cr_assert_eq(t->dups, 1);
        t->q = t_open(t, (eg_queue_opts_t){0});
        t_next(t);
        return;
    case 2:
        t_counts(t, &c);
        if (c.acked < 2)
            return;
        /* After processing the id is still known: a producer retrying its push is a no-op. */
        t_push(t, "same", "third", 0);
        t_push(t, "same", "fourth", 100);
        t_next(t);
        return;
    case 3:
        if (t->pushed + t->dups < 5 || t_in_step(t) < 500)
            return;
        cr_assert_eq(t->dups, 3);
        t_counts(t, &c);
        cr_assert_eq(c.delivered, 2);
        cr_assert_eq(t->handled, 2);
        eg_queue_close(t->q, t_close_done, t);
        t_next(t);
        return;
    case 4:
        if (t->closed == 1)
            t->finished = true;
        return;
    }
}

Test(queue, idempotent_push)
{
    t_ctx_t t = {0};

    t.run = run_idempotent;
    t_run(&t, t_url(), 20000);
}

/* ---- concurrency cap -------------------------------------------------------------------- */

static void run_concurrency(t_ctx_t *t)
{
    eg_queue_counts_t c;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->hold = true;
        t->q = t_open(t, (eg_queue_opts_t){.concurrency = 2, .block_ms = 200});
        for (int i = 0; i < 7; i++) {
            char id[16];

            snprintf(id, sizeof(id), "c%d", i);
            t_push(t, id, "x", 0);
        }
        t_next(t);
        return;
    case 1:
        if (t->nheld < 2)
            return;
        /* Hold them a while: nothing more may arrive while the slots are full. */
        if (t_in_step(t) < 400)
            return;
        cr_assert_eq(t->nheld, 2);
        cr_assert_eq(eg_queue_stats(t->qname, t_stats_cb, t), 0);
        t_next(t);
        return;
    case 2:
        if (t->stats_done < 1)
            return;
        cr_assert_eq(t->stats.running, 2);
        cr_assert_eq(t->stats.waiting, 5);
        t_next(t);
        return;
    case 3:
        /* Release what is held, one batch at a time, until all seven are done. */
        if (t->nheld > 0)
            t_release_all(t);
        t_counts(t, &c);
        cr_assert_leq(c.inflight, 2);
        if (c.acked < 7)
            return;
        cr_assert_eq(t->max_held, 2);
        cr_assert_eq(t->handled, 7);
        eg_queue_close(t->q, t_close_done, t);
        t_next(t);
        return;
    case 4:
        if (t->closed == 1)
            t->finished = true;
        return;
    }
}

Test(queue, concurrency_cap_respected)
{
    t_ctx_t t = {0};

    t.run = run_concurrency;
    t_run(&t, t_url(), 30000);
}

/* ---- retries ---------------------------------------------------------------------------- */

static void run_retry(t_ctx_t *t)
{
    eg_queue_counts_t c;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->fail_until = 3; /* attempts 1 and 2 fail */
        t->q = t_open(t, (eg_queue_opts_t){.backoff_base_ms = 200, .backoff_cap_ms = 1000});
        t_push(t, "flaky", "p", 0);
        t_next(t);
        return;
    case 1:
        t_counts(t, &c);
        if (c.acked < 1)
            return;
        cr_assert_eq(c.retried, 2);
        cr_assert_eq(t->handled, 3);
        cr_assert_eq(t->attempts[1], 1);
        cr_assert_eq(t->attempts[2], 1);
        cr_assert_eq(t->attempts[3], 1);
        /* Backoff: >= base/2 before the first retry, >= base (2*base/2) before the second. */
        cr_assert_geq((t->handled_ns[1] - t->handled_ns[0]) / 1000000, 100);
        cr_assert_geq((t->handled_ns[2] - t->handled_ns[1]) / 1000000, 200);
        cr_assert_eq(eg_queue_stats(t->qname, t_stats_cb, t), 0);
        t_next(t);
        return;
    case 2:
        if (t->stats_done < 1)
            return;
        cr_assert_eq(t->stats.delayed, 0);
        cr_assert_eq(t->stats.dead, 0);
        cr_assert_eq(t->stats.waiting + t->stats.running, 0);
        eg_queue_close(t->q, t_close_done, t);
        t_next(t);
        return;
    case 3:
        if (t->closed == 1)
            t->finished = true;
        return;
    }
}

Test(queue, retry_with_backoff_then_success)
{
    t_ctx_t t = {0};

    t.run = run_retry;
    t_run(&t, t_url(), 20000);
}

static void run_dead(t_ctx_t *t)
{
    eg_queue_counts_t c;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->always_retry = true;
        t->q = t_open(t, (eg_queue_opts_t){.max_attempts = 3, .backoff_base_ms = 40});
        t_push(t, "doomed", "payload-d", 0);
        t_next(t);
        return;
    case 1:
        t_counts(t, &c);
        if (c.dead < 1)
            return;
        cr_assert_eq(c.retried, 2);
        cr_assert_eq(t->handled, 3);
        /* A job that can never work goes straight to the dead letters. */
        t->always_retry = false;
        t->fail_hard = true;
        t_push(t, "hopeless", "payload-h", 0);
        t_next(t);
        return;
    case 2:
        t_counts(t, &c);
        if (c.dead < 2)
            return;
        cr_assert_eq(t->handled, 4);
        cr_assert_eq(eg_queue_stats(t->qname, t_stats_cb, t), 0);
        t_next(t);
        return;
    case 3:
        if (t->stats_done < 1)
            return;
        cr_assert_eq(t->stats.dead, 2);
        cr_assert_eq(t->stats.delayed, 0);
        cr_assert_eq(t->stats.waiting + t->stats.running, 0);
        eg_queue_close(t->q, t_close_done, t);
        t_next(t);
        return;
    case 4:
        if (t->closed == 1)
            t->finished = true;
        return;
    }
}

Test(queue, max_attempts_dead_letter_with_error)
{
    t_ctx_t t = {0};
    char key[160];
    redisReply *r;

    t.run = run_dead;
    t_run(&t, t_url(), 20000);
    snprintf(key, sizeof(key), "eg:{q:%s}:dead", t.qname);
    r = t_sync(t.url, "XRANGE %s - +", key);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 2);
    for (size_t i = 0; i < 2; i++) {
        const redisReply *f = r->element[i]->element[1];

        cr_assert_eq(f->elements, 10);
        cr_assert_str_eq(f->element[0]->str, "id");
        cr_assert_str_eq(f->element[1]->str, i == 0 ? "doomed" : "hopeless");
        cr_assert_str_eq(f->element[3]->str, i == 0 ? "3" : "1"); /* attempts made */
        cr_assert_str_eq(f->element[5]->str, i == 0 ? "payload-d" : "payload-h");
        cr_assert_str_eq(f->element[6]->str, "err");
        cr_assert_str_eq(f->element[7]->str, i == 0 ? "boom" : "cannot ever work");
    }
    freeReplyObject(r);
}

/* ---- delayed jobs ----------------------------------------------------------------------- */

static void run_delayed(t_ctx_t *t)
{
    eg_queue_counts_t c;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->q = t_open(t, (eg_queue_opts_t){0});
        t->push_ns = uv_hrtime();
        t_push(t, "later", "p", 700);
        t_next(t);
        return;
    case 1:
        if (t_in_step(t) < 400)
            return;
        cr_assert_eq(t->handled, 0, "delivered early");
        cr_assert_eq(eg_queue_stats(t->qname, t_stats_cb, t), 0);
        t_next(t);
        return;
    case 2:
        if (t->stats_done < 1)
            return;
        cr_assert_eq(t->stats.delayed, 1);
        t_next(t);
        return;
    case 3:
        t_counts(t, &c);
        if (c.acked < 1)
            return;
        cr_assert_geq((t->handled_ns[0] - t->push_ns) / 1000000, 690);
        cr_assert_leq((t->handled_ns[0] - t->push_ns) / 1000000, 2500);
        eg_queue_close(t->q, t_close_done, t);
        t_next(t);
        return;
    case 4:
        if (t->closed == 1)
            t->finished = true;
        return;
    }
}

Test(queue, delayed_job_not_early_and_on_time)
{
    t_ctx_t t = {0};

    t.run = run_delayed;
    t_run(&t, t_url(), 20000);
}

/* ---- crash recovery --------------------------------------------------------------------- */

static int child_pipe = -1;

/* In the child: report the job and never finish it. */
static void child_handler(eg_job_t *job, void *udata)
{
    (void)udata;
    if (write(child_pipe, "G", 1) != 1)
        _exit(3);
    (void)job;
}

static void child_push_cb(void *udata, int err, bool queued)
{
    if (err != 0 || !queued)
        _exit(4);
}

static void child_tick(uv_timer_t *h)
{
    int *pushed = h->data;

    if (*pushed || !eg_store_up())
        return;
    if (eg_queue_push(h->loop->data, "crash-job", "cp", 2, 0, child_push_cb, NULL) == 0)
        *pushed = 1;
}

/* A consumer in its own process that takes the job and is then killed with SIGKILL. */
static pid_t t_spawn_victim(const char *url, const char *qname, int *rfd)
{
    int fds[2];
    pid_t pid;

    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        uv_loop_t loop;
        uv_timer_t tick;
        eg_store_opts_t opts = {url, 1, 2000, 500};
        eg_queue_opts_t o = {.handler = child_handler, .tick_ms = 20};
        int pushed = 0;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(fds[0]);
        child_pipe = fds[1];
        if (uv_loop_init(&loop) != 0 || eg_store_init(&loop, &opts) != 0)
            _exit(2);
        loop.data = (void *)qname;
        if (eg_queue_open(qname, &o) == NULL)
            _exit(2);
        uv_timer_init(&loop, &tick);
        tick.data = &pushed;
        uv_timer_start(&tick, child_tick, 0, 10);
        uv_run(&loop, UV_RUN_DEFAULT);
        _exit(5);
    }
    close(fds[1]);
    *rfd = fds[0];
    return pid;
}

static void run_recover(t_ctx_t *t)
{
    eg_queue_counts_t c;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->q = t_open(t, (eg_queue_opts_t){.visibility_ms = 600, .claim_every_ms = 100});
        t_next(t);
        return;
    case 1:
        t_counts(t, &c);
        if (c.acked < 1)
            return;
        cr_assert_eq(c.claimed, 1);
        cr_assert_str_eq(t->last_payload, "cp");
        cr_assert_eq(t->last_attempt, 1); /* a crash is not a failed attempt */
        t_next(t);
        return;
    case 2:
        /* Give takeover and heartbeats time to misbehave: nothing more may arrive. */
        if (t_in_step(t) < 1000)
            return;
        t_counts(t, &c);
        cr_assert_eq(c.delivered, 1);
        cr_assert_eq(c.acked, 1);
        cr_assert_eq(c.stale, 0);
        cr_assert_eq(eg_queue_stats(t->qname, t_stats_cb, t), 0);
        t_next(t);
        return;
    case 3:
        if (t->stats_done < 1)
            return;
        cr_assert_eq(t->stats.running, 0);
        cr_assert_eq(t->stats.waiting, 0);
        cr_assert_eq(t->stats.dead, 0);
        eg_queue_close(t->q, t_close_done, t);
        t_next(t);
        return;
    case 4:
        if (t->closed == 1)
            t->finished = true;
        return;
    }
}

Test(queue, killed_consumer_job_taken_over_once)
{
    t_ctx_t t = {0};
    const char *url = t_url();
    char rnd[9], qname[96];
    struct pollfd pfd;
    pid_t pid;
    int fd, status;
    char ch = 0;

    /* The victim runs before our loop, on a queue name we pick here and reuse below. */
    eg_random_base62(rnd, 8);
    snprintf(qname, sizeof(qname), "crash-%d-%s", (int)getpid(), rnd);
    pid = t_spawn_victim(url, qname, &fd);
    pfd.fd = fd;
    pfd.events = POLLIN;
    cr_assert_eq(poll(&pfd, 1, 10000), 1, "the victim never got its job");
    cr_assert_eq(read(fd, &ch, 1), 1);
    cr_assert_eq(ch, 'G');
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status));
    close(fd);

    t.run = run_recover;
    t_run_named(&t, url, qname, 20000);
}

/* ---- Redis restart ---------------------------------------------------------------------- */

static void run_restart(t_ctx_t *t)
{
    eg_queue_counts_t c;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->q = t_open(t, (eg_queue_opts_t){.block_ms = 300});
        t_push(t, "r1", "x", 0);
        t_push(t, "r2", "x", 0);
        t_next(t);
        return;
    case 1:
        t_counts(t, &c);
        if (c.acked < 2)
            return;
        /* Lose Redis and everything in it (no persistence), then bring it back. */
        t_redis_kill(&t_own);
        t_next(t);
        return;
    case 2:
        if (t_in_step(t) < 300)
            return;
        cr_assert(t_redis_try_start(&t_own, t_own.port), "restart on port %d", t_own.port);
        t_next(t);
        return;
    case 3:
        if (!eg_store_up())
            return;
        if (eg_queue_push(t->qname, "r3", "y", 1, 0, t_push_cb, t) != 0)
            return;
        t_push(t, "r4", "y", 0);
        t_next(t);
        return;
    case 4:
        t_counts(t, &c);
        if (c.acked < 4)
            return;
        cr_assert_eq(t->handled, 4);
        eg_queue_close(t->q, t_close_done, t);
        t_next(t);
        return;
    case 5:
        if (t->closed == 1)
            t->finished = true;
        return;
    }
}

Test(queue, consumption_resumes_after_redis_restart)
{
    t_ctx_t t = {0};

    t.run = run_restart;
    t_run(&t, t_private_url(), 30000);
}

/* ---- close ------------------------------------------------------------------------------ */

static void run_close_waits(t_ctx_t *t)
{
    eg_queue_counts_t c;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->hold = true;
        t->q = t_open(t, (eg_queue_opts_t){.concurrency = 2});
        t_push(t, "w1", "x", 0);
        t_push(t, "w2", "x", 0);
        t_next(t);
        return;
    case 1:
        if (t->nheld < 2)
            return;
        eg_queue_close(t->q, t_close_done, t);
        t_push(t, "w3", "x", 0); /* must not be fetched any more */
        t_next(t);
        return;
    case 2:
        if (t_in_step(t) < 300)
            return;
        cr_assert_eq(t->closed, 0, "close did not wait for running jobs");
        t_counts(t, &c);
        cr_assert_eq(c.inflight, 2);
        t_release_all(t);
        t_next(t);
        return;
    case 3:
        if (t->closed < 1)
            return;
        cr_assert_eq(t->final.acked, 2); /* durable before close reported done */
        cr_assert_eq(t->final.inflight, 0);
        cr_assert_eq(t->handled, 2);
        t->finished = true;
        return;
    }
}

Test(queue, close_waits_for_running_jobs)
{
    t_ctx_t t = {0};
    char key[160];

    t.run = run_close_waits;
    t_run(&t, t_url(), 20000);
    snprintf(key, sizeof(key), "eg:{q:%s}:stream", t.qname);
    cr_assert_eq(t_sync_int(t.url, "XLEN %s", key), 1); /* w3 waits for another consumer */
}

static void run_close_timeout(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->hold = true;
        t->q = t_open(t, (eg_queue_opts_t){.close_timeout_ms = 300});
        t_push(t, "slow", "x", 0);
        t_next(t);
        return;
    case 1:
        if (t->nheld < 1)
            return;
        eg_queue_close(t->q, t_close_done, t);
        t->q = NULL;
        t_next(t);
        return;
    case 2:
        if (t->closed < 1)
            return;
        cr_assert_geq(t_in_step(t), 250);
        /* The job outlived its queue's close and can still be finished durably. */
        t_release_all(t);
        t_next(t);
        return;
    case 3:
        if (t_in_step(t) < 300)
            return;
        t->finished = true;
        return;
    }
}

Test(queue, close_gives_up_after_timeout_and_late_done_still_acks)
{
    t_ctx_t t = {0};
    char key[160];

    t.run = run_close_timeout;
    t_run(&t, t_url(), 20000);
    snprintf(key, sizeof(key), "eg:{q:%s}:stream", t.qname);
    cr_assert_eq(t_sync_int(t.url, "XLEN %s", key), 0);
}

/* The store goes first (a crash path in shutdown ordering): the queue still closes cleanly. */
static void run_store_first(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t->q = t_open(t, (eg_queue_opts_t){0});
        t_next(t);
        return;
    case 1:
        if (t_in_step(t) < 200)
            return;
        t->shutdown_called = true;
        eg_store_shutdown(t_shutdown_done, t);
        eg_queue_close(t->q, t_close_done, t);
        t_next(t);
        return;
    case 2:
        if (t->closed < 1 || t->shutdown_done < 1)
            return;
        t->finished = true;
        uv_close((uv_handle_t *)&t->tick, NULL);
        return;
    }
}

Test(queue, store_shutdown_before_queue_close)
{
    t_ctx_t t = {0};

    t.run = run_store_first;
    t_run(&t, t_url(), 20000);
    cr_assert_eq(t.closed, 1);
}

/* ---- operation records ------------------------------------------------------------------ */

static void t_op_cb(void *udata, int err, const eg_op_t *op)
{
    t_ctx_t *t = udata;

    t->op_done++;
    t->op_err = err;
    if (err == 0) {
        t->op = *op;
        snprintf(t->op_error, sizeof(t->op_error), "%s", op->error);
        t->op.id = t->op.kind = t->op.error = t->op.meta = NULL; /* reply memory is gone */
    }
}

static void t_list_cb(void *udata, int err, const eg_op_t *ops, size_t n, const char *next)
{
    t_ctx_t *t = udata;

    cr_assert_eq(err, 0);
    t->op_done++;
    for (size_t i = 0; i < n && t->list_n < 16; i++)
        snprintf(t->list_ids[t->list_n++], sizeof(t->list_ids[0]), "%s", ops[i].id);
    snprintf(t->cursor, sizeof(t->cursor), "%s", next);
}

static void run_ops(t_ctx_t *t)
{
    const char *sid = t->qname; /* unique per run: use it as the scope id */

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        cr_assert_eq(eg_op_create("b", sid, "op-1", "retain", "{\"n\":1}", t_op_cb, t), 0);
        t_next(t);
        return;
    case 1:
        if (t->op_done < 1)
            return;
        cr_assert_eq(t->op_err, 0);
        cr_assert_eq(t->op.status, EG_OP_PENDING);
        cr_assert_gt(t->op.created_ms, 0);
        cr_assert_eq(t->op.started_ms, 0);
        cr_assert_eq(eg_op_create("b", sid, "op-1", "retain", NULL, t_op_cb, t), 0);
        t_next(t);
        return;
    case 2:
        if (t->op_done < 2)
            return;
        cr_assert_eq(t->op_err, EG_ECONFLICT);
        cr_assert_eq(eg_op_update("b", sid, "op-1", EG_OP_PROCESSING, 0.5, NULL, t_op_cb, t), 0);
        t_next(t);
        return;
    case 3:
        if (t->op_done < 3)
            return;
        cr_assert_eq(t->op_err, 0);
        cr_assert_eq(t->op.status, EG_OP_PROCESSING);
        cr_assert_float_eq(t->op.progress, 0.5, 1e-9);
        cr_assert_gt(t->op.started_ms, 0);
        cr_assert_eq(eg_op_update("b", sid, "op-1", EG_OP_COMPLETED, -1, NULL, t_op_cb, t), 0);
        t_next(t);
        return;
    case 4:
        if (t->op_done < 4)
            return;
        cr_assert_eq(t->op.status, EG_OP_COMPLETED);
        cr_assert_float_eq(t->op.progress, 1.0, 1e-9);
        cr_assert_gt(t->op.finished_ms, 0);
        /* Final: a late worker cannot move it again. */
        cr_assert_eq(eg_op_update("b", sid, "op-1", EG_OP_FAILED, -1, "late", t_op_cb, t), 0);
        t_next(t);
        return;
    case 5:
        if (t->op_done < 5)
            return;
        cr_assert_eq(t->op_err, EG_ECONFLICT);
        cr_assert_eq(eg_op_get("b", sid, "op-1", t_op_cb, t), 0);
        t_next(t);
        return;
    case 6:
        if (t->op_done < 6)
            return;
        cr_assert_eq(t->op_err, 0);
        cr_assert_eq(t->op.status, EG_OP_COMPLETED);
        cr_assert_str_empty(t->op_error);
        cr_assert_eq(eg_op_get("b", sid, "nope", t_op_cb, t), 0);
        cr_assert_eq(eg_op_update("b", sid, "nope", EG_OP_FAILED, -1, NULL, t_op_cb, t), 0);
        t_next(t);
        return;
    case 7:
        if (t->op_done < 8)
            return;
        cr_assert_eq(t->op_err, EG_ENOTFOUND);
        /* op-2..op-6, created one after the other (newest first in listings). */
        for (int i = 2; i <= 6; i++) {
            char id[16];

            snprintf(id, sizeof(id), "op-%d", i);
            cr_assert_eq(eg_op_create("b", sid, id, "consolidate", NULL, NULL, NULL), 0);
        }
        cr_assert_eq(eg_op_update("b", sid, "op-3", EG_OP_FAILED, -1, "bad input", t_op_cb, t), 0);
        t_next(t);
        return;
    case 8:
        if (t->op_done < 9)
            return;
        cr_assert_eq(t->op.status, EG_OP_FAILED);
        cr_assert_str_eq(t->op_error, "bad input");
        cr_assert_eq(eg_op_update("b", sid, "op-5", EG_OP_COMPLETED, -1, NULL, t_op_cb, t), 0);
        t_next(t);
        return;
    case 9:
        if (t->op_done < 10)
            return;
        t->list_n = 0;
        cr_assert_eq(eg_op_list("b", sid, EG_OP_COMPLETED, NULL, 10, t_list_cb, t), 0);
        t_next(t);
        return;
    case 10:
        if (t->op_done < 11)
            return;
        cr_assert_eq(t->list_n, 2);
        cr_assert_str_eq(t->list_ids[0], "op-5");
        cr_assert_str_eq(t->list_ids[1], "op-1");
        cr_assert_str_empty(t->cursor);
        /* All six, two per page. */
        t->list_n = 0;
        cr_assert_eq(eg_op_list("b", sid, EG_OP_KEEP, NULL, 2, t_list_cb, t), 0);
        t_next(t);
        return;
    case 11:
        /* Follow the cursor page by page. */
        if (t->op_done < (int)(intptr_t)t->extra + 12)
            return;
        if (t->cursor[0] != '\0') {
            t->extra = (void *)((intptr_t)t->extra + 1);
            cr_assert_eq(eg_op_list("b", sid, EG_OP_KEEP, t->cursor, 2, t_list_cb, t), 0);
            return;
        }
        /* op-2..op-6 were created concurrently (any order within them), op-1 first. */
        cr_assert_eq(t->list_n, 6);
        cr_assert_eq((intptr_t)t->extra, 2); /* three pages */
        cr_assert_str_eq(t->list_ids[5], "op-1");
        for (int i = 2; i <= 6; i++) {
            char id[16];
            int seen = 0;

            snprintf(id, sizeof(id), "op-%d", i);
            for (int k = 0; k < 5; k++)
                seen += strcmp(t->list_ids[k], id) == 0;
            cr_assert_eq(seen, 1, "%s listed %d times", id, seen);
        }
        t->finished = true;
        return;
    }
}

Test(queue, op_records_create_update_get_list)
{
    t_ctx_t t = {0};

    t.run = run_ops;
    t_run(&t, t_url(), 20000);
}
