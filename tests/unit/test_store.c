/* The Redis store against a real redis-server: commands, pipelining, scripts, pub/sub, and the
 * failure modes (refused, black hole, stopped server, killed and restarted server).
 *
 * Each test runs its own uv loop to completion and checks callback counts and that no handle
 * leaked. ENGRAM_TEST_REDIS_URL points at a shared server when the test script provides one;
 * otherwise each test starts its own. Tests that stop, kill or disconnect Redis always start
 * their own server (ENGRAM_REDIS_SERVER, default "redis-server" on PATH), so they never disturb
 * other tests running in parallel. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/metrics.h"
#include "engram/store.h"

#include "redis_fixture.h"

TestSuite(store, .init = t_redis_setup, .fini = t_redis_teardown, .timeout = 60);

/* ---- loop harness ----------------------------------------------------------------------- */

/* A test is a step function called every 10 ms (and from callbacks) until it says finished;
 * then the store is shut down and the loop must run dry. */
typedef struct t_ctx_s t_ctx_t;

struct t_ctx_s {
    uv_loop_t loop;
    uv_timer_t tick;
    int step;
    uint64_t step_at; /* loop time the current step began */
    uint64_t limit_ms;
    bool finished, shutdown_called;
    int shutdown_done;
    void (*run)(t_ctx_t *);
    /* counters the tests use */
    int ok, unavail, timeouts, errors, replies, messages, resyncs;
    long long last_int;
    bool in_order;
    char last_str[256];
    size_t last_len;
    char chan[64];
    size_t keylen;
    int port;
    void (*before)(t_ctx_t *); /* runs once the loop exists, before the store starts */
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
    t_ctx_t *t = udata;

    t->shutdown_done++;
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

/* Run the test to completion, then check that every handle was closed. */
static void t_run(t_ctx_t *t, const char *url, int pool, uint64_t cmd_timeout_ms,
                  uint64_t connect_timeout_ms, uint64_t limit_ms)
{
    eg_store_opts_t opts = {url, pool, cmd_timeout_ms, connect_timeout_ms};

    cr_assert_eq(uv_loop_init(&t->loop), 0);
    if (t->before != NULL)
        t->before(t);
    cr_assert_eq(eg_store_init(&t->loop, &opts), 0);
    t->limit_ms = uv_now(&t->loop) + limit_ms;
    t->step_at = uv_now(&t->loop);
    t->in_order = true;
    uv_timer_init(&t->loop, &t->tick);
    t->tick.data = t;
    uv_timer_start(&t->tick, t_tick_cb, 0, 10);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    cr_assert(t->finished);
    cr_assert_eq(t->shutdown_done, 1, "shutdown done called %d times", t->shutdown_done);
    t_loop_close_checked(&t->loop);
    cr_assert_not(eg_store_up());
}

/* Generic reply callback: classifies and remembers the last reply. */
static void t_reply(void *udata, int err, redisReply *r)
{
    t_ctx_t *t = udata;

    t->replies++;
    if (err == EG_EUNAVAIL) {
        t->unavail++;
        return;
    }
    if (err == EG_ESTORETIMEOUT) {
        t->timeouts++;
        return;
    }
    cr_assert_eq(err, 0);
    cr_assert_not_null(r);
    if (r->type == REDIS_REPLY_ERROR) {
        t->errors++;
        snprintf(t->last_str, sizeof(t->last_str), "%s", r->str);
        return;
    }
    t->ok++;
    if (r->type == REDIS_REPLY_INTEGER)
        t->last_int = r->integer;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        cr_assert(r->len < sizeof(t->last_str));
        memcpy(t->last_str, r->str, r->len);
        t->last_str[r->len] = '\0';
        t->last_len = r->len;
    }
}

/* ---- init contract ---------------------------------------------------------------------- */

Test(store, init_rejects_bad_options)
{
    uv_loop_t loop;
    eg_store_opts_t bad_url = {"http://x", 1, 0, 100};
    eg_store_opts_t no_pool = {"redis://127.0.0.1:1", 0, 0, 100};
    int ready = -1, total = -1;

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(eg_store_init(&loop, &bad_url), EG_EINVAL);
    cr_assert_eq(eg_store_init(&loop, &no_pool), EG_EINVAL);
    cr_assert_eq(eg_store_init(&loop, NULL), EG_EINVAL);
    cr_assert_eq(eg_store_init(NULL, &bad_url), EG_EINVAL);
    /* Not initialised: nothing is accepted and nothing crashes. */
    cr_assert_not(eg_store_up());
    cr_assert_eq(eg_store_command(t_reply, NULL, "PING"), EG_EUNAVAIL);
    cr_assert_eq(eg_store_publish("c", "x", 1), EG_EUNAVAIL);
    eg_store_stats(&ready, &total);
    cr_assert_eq(ready, 0);
    cr_assert_eq(total, 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- simple commands -------------------------------------------------------------------- */

static void run_simple(t_ctx_t *t)
{
    int ready, total;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        eg_store_stats(&ready, &total);
        if (ready < total)
            return; /* wait for the whole pool, to check stats and the gauge */
        cr_assert_eq(total, 2);
        cr_assert_str_empty(eg_store_last_error());
        snprintf(t->chan, sizeof(t->chan), "test:simple:%d", (int)getpid());
        cr_assert_eq(eg_store_command(t_reply, t, "SET %s %s", t->chan, "hello world"), 0);
        t_next(t);
        return;
    case 1:
        /* With a pool, only a finished command is ordered before the next one. */
        if (t->replies < 1)
            return;
        cr_assert_str_eq(t->last_str, "OK");
        cr_assert_eq(eg_store_command(t_reply, t, "GET %s", t->chan), 0);
        t_next(t);
        return;
    case 2:
        if (t->replies < 2)
            return;
        cr_assert_eq(t->ok, 2);
        cr_assert_str_eq(t->last_str, "hello world");
        cr_assert_eq(eg_store_ping(t_reply, t), 0);
        t_next(t);
        return;
    case 3:
        if (t->replies < 3)
            return;
        cr_assert_str_eq(t->last_str, "PONG");
        /* A Redis error reply is a reply: err 0, type ERROR. */
        cr_assert_eq(eg_store_command(t_reply, t, "INCR %s", t->chan), 0);
        t_next(t);
        return;
    case 4:
        if (t->replies < 4)
            return;
        cr_assert_eq(t->errors, 1);
        cr_assert(strncmp(t->last_str, "ERR", 3) == 0, "got %s", t->last_str);
        cr_assert_eq(eg_store_command(t_reply, t, "DEL %s", t->chan), 0);
        t_next(t);
        return;
    case 5:
        if (t->replies < 5)
            return;
        cr_assert_eq(t->last_int, 1);
        t->finished = true;
        return;
    }
}

Test(store, simple_commands)
{
    t_ctx_t t = {0};
    eg_buf_t out = EG_BUF_INIT;

    eg_metrics_reset();
    t.run = run_simple;
    t_run(&t, t_url(), 2, 2000, 2000, 10000);
    cr_assert_eq(t.replies, 5);
    cr_assert_eq(t.unavail + t.timeouts, 0);
    /* After shutdown the gauge reads 0 and every command was counted. */
    eg_metrics_render(&out);
    cr_assert_not_null(strstr(out.data, "engram_redis_connected 0\n"), "%s", out.data);
    cr_assert_not_null(strstr(out.data, "engram_redis_commands_total "));
    eg_buf_free(&out);
}

/* ---- pipelining ------------------------------------------------------------------------- */

#define T_N_INCR 1000

static void t_incr_reply(void *udata, int err, redisReply *r)
{
    t_ctx_t *t = udata;
    char *seen = t->extra;

    cr_assert_eq(err, 0);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    cr_assert(r->integer >= 1 && r->integer <= T_N_INCR);
    cr_assert_not(seen[r->integer - 1], "value %lld seen twice", r->integer);
    seen[r->integer - 1] = 1;
    if (r->integer != t->replies + 1)
        t->in_order = false;
    t->replies++;
}

static void run_incr(t_ctx_t *t)
{
    int ready, total;

    switch (t->step) {
    case 0:
        eg_store_stats(&ready, &total);
        if (ready < total)
            return;
        snprintf(t->chan, sizeof(t->chan), "test:incr:%d:%d", (int)getpid(), total);
        cr_assert_eq(eg_store_command(t_reply, t, "DEL %s", t->chan), 0);
        t_next(t);
        return;
    case 1:
        if (t->replies < 1)
            return;
        t->replies = 0;
        /* All in one loop turn: they pipeline on the connection(s). */
        for (int i = 0; i < T_N_INCR; i++)
            cr_assert_eq(eg_store_command(t_incr_reply, t, "INCR %s", t->chan), 0);
        t_next(t);
        return;
    case 2:
        if (t->replies < T_N_INCR)
            return;
        cr_assert_eq(eg_store_command(t_reply, t, "DEL %s", t->chan), 0);
        t_next(t);
        return;
    case 3:
        if (t->replies < T_N_INCR + 1)
            return;
        t->finished = true;
        return;
    }
}

Test(store, pipelined_incr_in_order)
{
    t_ctx_t t = {0};
    char seen[T_N_INCR] = {0};

    t.extra = seen;
    t.run = run_incr;
    t_run(&t, t_url(), 1, 5000, 2000, 20000);
    cr_assert_eq(t.replies, T_N_INCR + 1);
    /* One connection: replies come back in the order the commands were sent. */
    cr_assert(t.in_order);
}

Test(store, pipelined_incr_over_pool)
{
    t_ctx_t t = {0};
    char seen[T_N_INCR] = {0};

    t.extra = seen;
    t.run = run_incr;
    t_run(&t, t_url(), 4, 5000, 2000, 20000);
    cr_assert_eq(t.replies, T_N_INCR + 1);
    for (int i = 0; i < T_N_INCR; i++)
        cr_assert(seen[i], "value %d missing", i + 1);
}

/* ---- binary safety ---------------------------------------------------------------------- */

static const char t_bin_val[] = {'a', '\0', 'b', '\r', '\n', 'c', (char)0xff};

static void run_binary(t_ctx_t *t)
{
    const char *set[] = {"SET", t->chan, t_bin_val};
    size_t setl[] = {3, t->keylen, sizeof(t_bin_val)};
    const char *get[] = {"GET", t->chan};
    const char *del[] = {"DEL", t->chan};
    size_t keyl[] = {3, t->keylen};

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        /* The key carries a NUL, CR LF and a space too. */
        t->keylen = (size_t)snprintf(t->chan, sizeof(t->chan), "test:bin:%d:?\r\n x", getpid());
        *strchr(t->chan, '?') = '\0';
        setl[1] = keyl[1] = t->keylen;
        cr_assert_eq(eg_store_commandv(t_reply, t, 3, set, setl), 0);
        cr_assert_eq(eg_store_commandv(t_reply, t, 2, get, keyl), 0);
        t_next(t);
        return;
    case 1:
        if (t->replies < 2)
            return;
        cr_assert_eq(t->ok, 2);
        cr_assert_eq(t->last_len, sizeof(t_bin_val));
        cr_assert_eq(memcmp(t->last_str, t_bin_val, sizeof(t_bin_val)), 0);
        /* Deleting exactly one key proves the key round-tripped byte for byte. */
        cr_assert_eq(eg_store_commandv(t_reply, t, 2, del, keyl), 0);
        t_next(t);
        return;
    case 2:
        if (t->replies < 3)
            return;
        cr_assert_eq(t->last_int, 1);
        cr_assert_eq(eg_store_commandv(t_reply, t, 0, NULL, NULL), EG_EINVAL);
        t->finished = true;
        return;
    }
}

Test(store, binary_safe_commandv)
{
    t_ctx_t t = {0};

    t.run = run_binary;
    t_run(&t, t_url(), 1, 2000, 2000, 10000);
    cr_assert_eq(t.replies, 3);
}

/* ---- scripts ---------------------------------------------------------------------------- */

static eg_script_t t_script = {
    "echo_incr",
    "-- test_store echo_incr\nreturn {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}",
    "",
};

static void t_eval_reply(void *udata, int err, redisReply *r)
{
    t_ctx_t *t = udata;

    t->replies++;
    cr_assert_eq(err, 0);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "type %d: %s", r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    cr_assert_eq(r->elements, 3);
    cr_assert_str_eq(r->element[0]->str, "k");
    cr_assert_eq(r->element[1]->len, 3);
    cr_assert_eq(memcmp(r->element[1]->str, "a\0b", 3), 0);
    cr_assert_eq(r->element[2]->integer, 42);
    t->ok++;
}

static void t_eval(t_ctx_t *t)
{
    const char *argv[] = {"k", "a\0b", "41"};
    size_t lens[] = {1, 3, 2};

    cr_assert_eq(eg_store_eval(&t_script, t_eval_reply, t, 1, 3, argv, lens), 0);
}

static void run_eval(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t_eval(t);
        t_next(t);
        return;
    case 1:
        if (t->replies < 1)
            return;
        cr_assert_eq(strlen(t_script.sha), 40);
        cr_assert_eq(eg_store_command(t_reply, t, "SCRIPT FLUSH"), 0);
        t_next(t);
        return;
    case 2:
        if (t->replies < 2)
            return;
        /* The script is gone from Redis: EVALSHA gets NOSCRIPT, which we never see. */
        t_eval(t);
        t_eval(t);
        t_next(t);
        return;
    case 3:
        if (t->replies < 4)
            return;
        cr_assert_eq(eg_store_eval(&t_script, t_eval_reply, t, 4, 3, NULL, NULL), EG_EINVAL);
        t->finished = true;
        return;
    }
}

Test(store, eval_survives_script_flush)
{
    t_ctx_t t = {0};

    t.run = run_eval;
    t_run(&t, t_url(), 2, 2000, 2000, 10000);
    cr_assert_eq(t.ok, 3 + 1); /* three evals and the SCRIPT FLUSH */
    cr_assert_eq(t.errors, 0);
}

/* ---- pub/sub ---------------------------------------------------------------------------- */

static const char t_payload[] = {'h', 'i', '\0', 'x', '\n'};

static void t_on_message(void *udata, const char *channel, const char *payload, size_t len)
{
    t_ctx_t *t = udata;

    cr_assert_str_eq(channel, t->chan);
    cr_assert_eq(len, sizeof(t_payload));
    cr_assert_eq(memcmp(payload, t_payload, len), 0);
    t->messages++;
}

static void t_on_resync(void *udata)
{
    t_ctx_t *t = udata;

    t->resyncs++;
}

static void run_pubsub(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        snprintf(t->chan, sizeof(t->chan), "test:chan:%d", (int)getpid());
        /* Subscribing before Redis is even reachable is fine: it is remembered. */
        cr_assert_eq(eg_store_subscribe(t->chan, t_on_message, t_on_resync, t), 0);
        cr_assert_eq(eg_store_subscribe(NULL, t_on_message, NULL, t), EG_EINVAL);
        t_next(t);
        return;
    case 1:
        /* The subscription becomes active at some point: publish until a message arrives. */
        if (t->messages > 0) {
            t->finished = true;
            return;
        }
        if (eg_store_up() && t_in_step(t) % 50 < 10)
            eg_store_publish(t->chan, t_payload, sizeof(t_payload));
        return;
    }
}

Test(store, pubsub_roundtrip)
{
    t_ctx_t t = {0};

    t.run = run_pubsub;
    t_run(&t, t_url(), 1, 2000, 2000, 10000);
    cr_assert_geq(t.messages, 1);
    cr_assert_eq(t.resyncs, 0, "no resync on the first connect");
}

static void run_resync(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        snprintf(t->chan, sizeof(t->chan), "test:resync:%d", (int)getpid());
        cr_assert_eq(eg_store_subscribe(t->chan, t_on_message, t_on_resync, t), 0);
        t_next(t);
        return;
    case 1:
        if (t->messages == 0) {
            if (eg_store_up() && t_in_step(t) % 50 < 10)
                eg_store_publish(t->chan, t_payload, sizeof(t_payload));
            return;
        }
        cr_assert_eq(t->resyncs, 0);
        cr_assert_eq(eg_store_command(t_reply, t, "CLIENT KILL TYPE pubsub"), 0);
        t_next(t);
        return;
    case 2:
        if (t->replies < 1)
            return;
        cr_assert_eq(t->last_int, 1, "one pub/sub client killed");
        t_next(t);
        return;
    case 3:
        /* The pub/sub connection comes back by itself and tells us to resync. */
        if (t->resyncs == 0)
            return;
        t->messages = 0;
        t_next(t);
        return;
    case 4:
        if (t->messages > 0) {
            t->finished = true;
            return;
        }
        if (t_in_step(t) % 50 < 10)
            eg_store_publish(t->chan, t_payload, sizeof(t_payload));
        return;
    }
}

Test(store, pubsub_resync_after_disconnect)
{
    t_ctx_t t = {0};

    t.run = run_resync;
    t_run(&t, t_private_url(), 1, 2000, 2000, 15000);
    cr_assert_eq(t.resyncs, 1);
}

/* ---- failure modes ---------------------------------------------------------------------- */

static void run_unreachable(t_ctx_t *t)
{
    char expect[64];
    int ready, total;

    if (t_in_step(t) < 700)
        return;
    cr_assert_not(eg_store_up());
    eg_store_stats(&ready, &total);
    cr_assert_eq(ready, 0);
    cr_assert_eq(total, 2);
    cr_assert_eq(eg_store_command(t_reply, t, "PING"), EG_EUNAVAIL);
    cr_assert_eq(eg_store_ping(t_reply, t), EG_EUNAVAIL);
    cr_assert_eq(eg_store_publish("x", "y", 1), EG_EUNAVAIL);
    cr_assert_eq(eg_store_eval(&t_script, t_reply, t, 0, 0, NULL, NULL), EG_EUNAVAIL);
    snprintf(expect, sizeof(expect), "connect 127.0.0.1:%d: Connection refused", t->port);
    cr_assert_str_eq(eg_store_last_error(), expect);
    t->finished = true;
}

Test(store, unreachable_redis)
{
    t_ctx_t t = {0};
    char url[64];

    int fd = t_reserve_port(&t.port); /* bound, never listening: connects are refused */

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", t.port);
    t.run = run_unreachable;
    t_run(&t, url, 2, 1000, 1000, 10000);
    close(fd);
    cr_assert_eq(t.replies, 0, "no callback for a command that was not accepted");
}

/* A TCP server that accepts connections and never says a word. */
typedef struct {
    uv_tcp_t server;
    uv_tcp_t clients[64];
    int accepted;
    char url[64];
} t_blackhole_t;

static void t_bh_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static char scratch[4096];

    (void)h;
    (void)size;
    *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void t_bh_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)s;
    (void)n;
    (void)buf; /* swallow whatever the client sends */
}

static void t_bh_conn(uv_stream_t *server, int status)
{
    t_blackhole_t *bh = server->data;
    uv_tcp_t *c;

    cr_assert_eq(status, 0);
    cr_assert(bh->accepted < 64);
    c = &bh->clients[bh->accepted++];
    uv_tcp_init(server->loop, c);
    cr_assert_eq(uv_accept(server, (uv_stream_t *)c), 0);
    uv_read_start((uv_stream_t *)c, t_bh_alloc, t_bh_read);
}

static void run_blackhole(t_ctx_t *t)
{
    t_blackhole_t *bh = t->extra;

    if (t_in_step(t) < 900)
        return;
    /* Connected, but the PING never got an answer: never ready, and it keeps trying. */
    cr_assert_not(eg_store_up());
    cr_assert_geq(bh->accepted, 2, "accepted %d", bh->accepted);
    cr_assert_not_null(strstr(eg_store_last_error(), "handshake"), "%s", eg_store_last_error());
    cr_assert_not_null(strstr(eg_store_last_error(), "timed out"), "%s", eg_store_last_error());
    cr_assert_eq(eg_store_command(t_reply, t, "PING"), EG_EUNAVAIL);
    for (int i = 0; i < bh->accepted; i++)
        uv_close((uv_handle_t *)&bh->clients[i], NULL);
    uv_close((uv_handle_t *)&bh->server, NULL);
    t->finished = true;
}

/* Runs once the loop exists, before eg_store_init reads the URL. */
static void t_bh_listen(t_ctx_t *t)
{
    t_blackhole_t *bh = t->extra;
    struct sockaddr_in addr;
    int len = sizeof(addr);

    uv_tcp_init(&t->loop, &bh->server);
    bh->server.data = bh;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    cr_assert_eq(uv_tcp_bind(&bh->server, (const struct sockaddr *)&addr, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&bh->server, 64, t_bh_conn), 0);
    uv_tcp_getsockname(&bh->server, (struct sockaddr *)&addr, &len);
    snprintf(bh->url, sizeof(bh->url), "redis://127.0.0.1:%d", ntohs(addr.sin_port));
}

Test(store, black_hole_is_caught_by_handshake_timeout)
{
    t_ctx_t t = {0};
    t_blackhole_t bh = {0};

    t.extra = &bh;
    t.before = t_bh_listen;
    t.run = run_blackhole;
    t_run(&t, bh.url, 1, 500, 150, 10000);
    cr_assert_eq(t.replies, 0);
}

static void run_sigstop(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        cr_assert_eq(kill(t_own.pid, SIGSTOP), 0);
        for (int i = 0; i < 5; i++)
            cr_assert_eq(eg_store_command(t_reply, t, "PING"), 0);
        t_next(t);
        return;
    case 1:
        if (t->replies < 5)
            return;
        /* Every command timed out, once, and not before its deadline. */
        cr_assert_eq(t->timeouts, 5);
        cr_assert_geq(t_in_step(t), 280);
        t_next(t);
        return;
    case 2:
        /* The stuck connection was dropped; reconnects hang in the handshake. */
        if (eg_store_up())
            return;
        if (t_in_step(t) < 500)
            return;
        cr_assert_not(eg_store_up());
        cr_assert_eq(eg_store_command(t_reply, t, "PING"), EG_EUNAVAIL);
        cr_assert_eq(kill(t_own.pid, SIGCONT), 0);
        t_next(t);
        return;
    case 3:
        if (!eg_store_up())
            return;
        cr_assert_eq(eg_store_ping(t_reply, t), 0);
        t_next(t);
        return;
    case 4:
        if (t->replies < 6)
            return;
        cr_assert_eq(t->ok, 1);
        cr_assert_str_eq(t->last_str, "PONG");
        t->finished = true;
        return;
    }
}

Test(store, stopped_redis_times_out_then_recovers)
{
    t_ctx_t t = {0};

    t.run = run_sigstop;
    t_run(&t, t_private_url(), 1, 300, 300, 20000);
    cr_assert_eq(t.replies, 6);
    cr_assert_eq(t.unavail, 0);
}

static void t_exists_reply(void *udata, int err, redisReply *r)
{
    t_ctx_t *t = udata;

    t->replies++;
    cr_assert_eq(err, 0);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->element[0]->integer, 1, "script was not reloaded on reconnect");
}

static void run_restart(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t_eval(t); /* registers the script, to be reloaded on reconnect */
        t_next(t);
        return;
    case 1:
        if (t->replies < 1)
            return;
        t->port = t_own.port;
        t_redis_kill(&t_own);
        t_next(t);
        return;
    case 2:
        if (eg_store_up())
            return;
        cr_assert_eq(eg_store_command(t_reply, t, "PING"), EG_EUNAVAIL);
        if (t_in_step(t) < 300)
            return; /* let a few reconnects fail */
        cr_assert_not_null(strstr(eg_store_last_error(), "Connection refused"), "%s",
                           eg_store_last_error());
        t_redis_start(&t_own, t->port);
        t_next(t);
        return;
    case 3:
        if (!eg_store_up())
            return;
        /* A fresh server has no scripts; the store loaded ours when it got ready. */
        cr_assert_eq(eg_store_command(t_exists_reply, t, "SCRIPT EXISTS %s", t_script.sha), 0);
        t_eval(t);
        t_next(t);
        return;
    case 4:
        if (t->replies < 3)
            return;
        t->finished = true;
        return;
    }
}

Test(store, killed_and_restarted_redis_recovers)
{
    t_ctx_t t = {0};

    t.run = run_restart;
    t_run(&t, t_private_url(), 2, 1000, 500, 20000);
    cr_assert_eq(t.ok, 2); /* the two evals */
    cr_assert_eq(t.replies, 3);
}

/* ---- shutdown --------------------------------------------------------------------------- */

static void t_shutdown_in_reply(void *udata, int err, redisReply *r)
{
    t_ctx_t *t = udata;

    t_reply(udata, err, r);
    if (!t->shutdown_called) {
        /* Shutting down from inside a reply callback must be safe. */
        t->shutdown_called = true;
        eg_store_shutdown(t_shutdown_done, t);
        uv_close((uv_handle_t *)&t->tick, NULL);
        t->finished = true;
        cr_assert_eq(eg_store_command(t_reply, t, "PING"), EG_EUNAVAIL);
    }
}

static void run_shutdown_pending(t_ctx_t *t)
{
    int ready, total;

    if (t->step > 0)
        return;
    eg_store_stats(&ready, &total);
    if (ready < total)
        return;
    for (int i = 0; i < 100; i++)
        cr_assert_eq(eg_store_command(t_shutdown_in_reply, t, "PING"), 0);
    t_next(t);
}

Test(store, shutdown_fails_pending_commands_once)
{
    t_ctx_t t = {0};

    t.run = run_shutdown_pending;
    t_run(&t, t_url(), 2, 2000, 2000, 10000);
    /* Every accepted command got exactly one callback: some PONGs, the rest EG_EUNAVAIL. */
    cr_assert_eq(t.replies, 100);
    cr_assert_geq(t.ok, 1);
    cr_assert_eq(t.ok + t.unavail, 100);
}

static void run_shutdown_now(t_ctx_t *t)
{
    int ready, total;

    eg_store_stats(&ready, &total);
    if (ready < total)
        return;
    for (int i = 0; i < 50; i++)
        cr_assert_eq(eg_store_command(t_reply, t, "PING"), 0);
    /* Shut down in the same loop turn: nothing was even written yet. */
    t->finished = true;
}

Test(store, shutdown_right_after_sending)
{
    t_ctx_t t = {0};

    t.run = run_shutdown_now;
    t_run(&t, t_url(), 2, 2000, 2000, 10000);
    cr_assert_eq(t.replies, 50);
    cr_assert_eq(t.unavail, 50);
}

/* ---- AUTH, SELECT, unix sockets --------------------------------------------------------- */

static void t_client_info(void *udata, int err, redisReply *r)
{
    t_ctx_t *t = udata;

    t->replies++;
    cr_assert_eq(err, 0);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    cr_assert_not_null(strstr(r->str, t->chan), "want %s in %s", t->chan, r->str);
    t->ok++;
}

static void run_client_info(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        cr_assert_eq(eg_store_command(t_client_info, t, "CLIENT INFO"), 0);
        t_next(t);
        return;
    case 1:
        if (t->replies < 1)
            return;
        t->finished = true;
        return;
    }
}

Test(store, auth_with_user_and_select)
{
    t_ctx_t t = {0};
    char url[128];

    t_own.secure = true;
    t_private_url();
    snprintf(url, sizeof(url), "redis://alice:s3cret@127.0.0.1:%d/2", t_own.port);
    snprintf(t.chan, sizeof(t.chan), " db=2 ");
    t.run = run_client_info;
    t_run(&t, url, 1, 2000, 2000, 10000);
    cr_assert_eq(t.ok, 1);
}

Test(store, unix_socket_with_password_and_db)
{
    t_ctx_t t = {0};
    char url[128];

    t_own.secure = true;
    t_private_url();
    /* "p@ss word", percent-encoded; user "default" implied. */
    snprintf(url, sizeof(url), "unix://:p%%40ss%%20word@/tmp/engram-test-%d.sock?db=3", t_own.port);
    snprintf(t.chan, sizeof(t.chan), " db=3 ");
    t.run = run_client_info;
    t_run(&t, url, 1, 2000, 2000, 10000);
    cr_assert_eq(t.ok, 1);
}

static void run_wrong_password(t_ctx_t *t)
{
    char expect[64];

    if (t_in_step(t) < 400)
        return;
    cr_assert_not(eg_store_up());
    snprintf(expect, sizeof(expect), "auth 127.0.0.1:%d: WRONGPASS", t_own.port);
    cr_assert(strncmp(eg_store_last_error(), expect, strlen(expect)) == 0, "%s",
              eg_store_last_error());
    t->finished = true;
}

Test(store, wrong_password_is_reported)
{
    t_ctx_t t = {0};
    char url[128];

    t_own.secure = true;
    t_private_url();
    snprintf(url, sizeof(url), "redis://alice:nope@127.0.0.1:%d", t_own.port);
    t.run = run_wrong_password;
    t_run(&t, url, 1, 2000, 2000, 10000);
}

/* ---- name resolution -------------------------------------------------------------------- */

static void run_ping_once(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        cr_assert_eq(eg_store_ping(t_reply, t), 0);
        t_next(t);
        return;
    case 1:
        if (t->replies < 1)
            return;
        cr_assert_str_eq(t->last_str, "PONG");
        t->finished = true;
        return;
    }
}

Test(store, hostname_is_resolved)
{
    t_ctx_t t = {0};
    eg_redis_url_t u;
    char url[128];

    cr_assert_eq(eg_redis_url_parse(t_url(), &u), 0);
    if (strcmp(u.host, "127.0.0.1") != 0)
        cr_skip_test("needs a server on 127.0.0.1");
    /* "localhost" goes through uv_getaddrinfo (off the loop) and prefers 127.0.0.1. */
    snprintf(url, sizeof(url), "redis://localhost:%d/%d", u.port, u.db);
    t.run = run_ping_once;
    t_run(&t, url, 1, 2000, 2000, 10000);
    cr_assert_eq(t.ok, 1);
}
