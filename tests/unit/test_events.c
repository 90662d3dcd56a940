/* The event log and live watchers against a real redis-server: emit is durable before done, the
 * watchers of this process hear it with the same bytes a reader gets, filters, subscription
 * refcounting, workspace isolation, paging, get by id, resync after the pub/sub connection was
 * killed, and the pure helpers (types, ids, the MINID trim threshold).
 *
 * Loop tests follow tests/unit/test_store.c: each runs its own uv loop to completion, stepping a
 * state machine every 10 ms, and checks that no handle leaked. ENGRAM_TEST_REDIS_URL names a
 * shared server; without it, or for the test that kills connections, a private redis-server
 * (ENGRAM_REDIS_SERVER, default "redis-server") is started on a free port. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "engram/error.h"
#include "engram/events.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/util.h"

#include "redis_fixture.h"

TestSuite(events, .init = t_redis_setup, .fini = t_redis_teardown, .timeout = 60);

/* ---- loop harness ----------------------------------------------------------------------- */

#define T_MAX_EVENTS 64

typedef struct t_ctx_s t_ctx_t;

/* What one watcher saw. */
typedef struct {
    t_ctx_t *t;
    eg_watch_t *w;
    int events, resyncs;
    char ids[T_MAX_EVENTS][EG_EVENT_ID_MAX];
    char types[T_MAX_EVENTS][EG_EVENT_TYPE_MAX + 1];
    char last_json[1024];
    void (*also)(void *self, const eg_event_t *ev); /* test-specific extra action */
} t_watcher_t;

struct t_ctx_s {
    uv_loop_t loop;
    uv_timer_t tick;
    int step;
    uint64_t step_at, limit_ms;
    bool finished, shutdown_called;
    int shutdown_done;
    void (*run)(t_ctx_t *);
    char ws[64], ws2[64], chan[96];
    /* replies */
    int replies, emitted, pages, gets;
    long long numsub;
    int numsub_at; /* replies count that answers the pending PUBSUB NUMSUB, 0 = none */
    int last_err;
    char ids[T_MAX_EVENTS][EG_EVENT_ID_MAX];
    char got_json[1024];
    /* the last page */
    char page_ids[16][EG_EVENT_ID_MAX];
    size_t page_n;
    bool page_more;
    char page_next[EG_EVENT_ID_MAX];
    t_watcher_t w[3];
    int xrange_hits;
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
        cr_assert_eq(eg_events_watchers(t->ws), 0, "a watcher was left behind");
        eg_events_shutdown();
        eg_store_shutdown(t_shutdown_done, t);
        uv_close((uv_handle_t *)&t->tick, NULL);
    }
}

/* Unique workspace ids per test, so tests can share one Redis. */
static void t_ws(char *out, size_t n, const char *tag)
{
    char r[9];

    eg_random_base62(r, 8);
    snprintf(out, n, "t-%s-%d-%s", tag, (int)getpid(), r);
}

static void t_run(t_ctx_t *t, const char *url, uint64_t limit_ms)
{
    eg_store_opts_t opts = {url, 2, 3000, 2000};

    for (size_t i = 0; i < EG_ARRAY_SIZE(t->w); i++)
        t->w[i].t = t;
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

/* ---- callbacks -------------------------------------------------------------------------- */

static void t_on_event(void *udata, const eg_event_t *ev, bool resync)
{
    t_watcher_t *w = udata;

    if (resync) {
        cr_assert_null(ev);
        w->resyncs++;
        return;
    }
    cr_assert_not_null(ev);
    cr_assert_lt(w->events, T_MAX_EVENTS);
    cr_assert_eq(strlen(ev->json), ev->len);
    snprintf(w->ids[w->events], EG_EVENT_ID_MAX, "%s", ev->id);
    snprintf(w->types[w->events], sizeof(w->types[0]), "%s", ev->type);
    snprintf(w->last_json, sizeof(w->last_json), "%s", ev->json);
    w->events++;
    if (w->also != NULL)
        w->also(w, ev);
}

static void t_emitted(void *udata, int err, const char *event_id)
{
    t_ctx_t *t = udata;

    cr_assert_eq(err, 0, "emit failed: %s", eg_strerror(err));
    cr_assert_not_null(event_id);
    cr_assert_eq(eg_event_id_parse(event_id, NULL, NULL), 0, "bad id %s", event_id);
    cr_assert_lt(t->emitted, T_MAX_EVENTS);
    snprintf(t->ids[t->emitted++], EG_EVENT_ID_MAX, "%s", event_id);
}

static void t_emit(t_ctx_t *t, const char *ws, const char *type, const char *entity_json)
{
    cJSON *e = cJSON_Parse(entity_json);

    cr_assert_not_null(e);
    cr_assert_eq(eg_event_emit(ws, type, e, t_emitted, t), 0);
    cJSON_Delete(e);
}

static void t_numsub_reply(void *udata, int err, redisReply *r)
{
    t_ctx_t *t = udata;

    t->replies++;
    cr_assert_eq(err, 0);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 2);
    t->numsub = r->element[1]->integer;
}

/* Ask Redis how many subscribers the workspace channel has (answer in t->numsub). */
static void t_numsub(t_ctx_t *t, const char *ws)
{
    snprintf(t->chan, sizeof(t->chan), "eg:events:%s", ws);
    cr_assert_eq(eg_store_command(t_numsub_reply, t, "PUBSUB NUMSUB %s", t->chan), 0);
}

/* Poll until the channel has want subscribers; true once it has. */
static bool t_wait_numsub(t_ctx_t *t, const char *ws, long long want)
{
    if (!eg_store_up())
        return false;
    if (t->numsub_at > 0 && t->replies >= t->numsub_at) {
        t->numsub_at = 0; /* answered */
        if (t->numsub == want)
            return true;
    }
    if (t->numsub_at == 0) {
        t->numsub_at = t->replies + 1;
        t_numsub(t, ws);
    }
    return false;
}

static void t_page(void *udata, int err, const eg_event_page_t *p)
{
    t_ctx_t *t = udata;

    cr_assert_eq(err, 0, "read failed: %s", eg_strerror(err));
    cr_assert_not_null(p);
    cr_assert_leq(p->n, EG_ARRAY_SIZE(t->page_ids));
    t->page_n = p->n;
    for (size_t i = 0; i < p->n; i++) {
        cr_assert_eq(strlen(p->events[i].json), p->events[i].len);
        cr_assert_eq(strncmp(p->events[i].json, "{\"id\":\"", 7), 0);
        snprintf(t->page_ids[i], EG_EVENT_ID_MAX, "%s", p->events[i].id);
    }
    t->page_more = p->has_more;
    cr_assert_eq(p->has_more, p->next_cursor != NULL);
    snprintf(t->page_next, sizeof(t->page_next), "%s", p->next_cursor ? p->next_cursor : "");
    t->pages++;
}

static void t_got(void *udata, int err, const eg_event_t *ev)
{
    t_ctx_t *t = udata;

    t->gets++;
    t->last_err = err;
    t->got_json[0] = '\0';
    if (err == 0) {
        cr_assert_not_null(ev);
        snprintf(t->got_json, sizeof(t->got_json), "%s", ev->json);
    } else {
        cr_assert_null(ev);
    }
}

/* ---- pure helpers ----------------------------------------------------------------------- */

Test(events, types)
{
    cr_assert(eg_event_type_valid("memory.created"));
    cr_assert(eg_event_type_valid("activation_completed"));
    cr_assert(eg_event_type_valid("agent.task.updated"));
    cr_assert(eg_event_type_valid("a.1.b_2"));
    cr_assert_not(eg_event_type_valid(""));
    cr_assert_not(eg_event_type_valid(NULL));
    cr_assert_not(eg_event_type_valid("Memory.created"));
    cr_assert_not(eg_event_type_valid("1abc"));
    cr_assert_not(eg_event_type_valid("_abc"));
    cr_assert_not(eg_event_type_valid("memory."));
    cr_assert_not(eg_event_type_valid("memory..x"));
    cr_assert_not(eg_event_type_valid(".memory"));
    cr_assert_not(eg_event_type_valid("memory.*"));
    cr_assert_not(eg_event_type_valid("memory created"));
    cr_assert_not(eg_event_type_valid("memory-created"));
    cr_assert_not(eg_event_type_valid("a\"b"));

    char longest[EG_EVENT_TYPE_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    longest[EG_EVENT_TYPE_MAX] = '\0';
    cr_assert(eg_event_type_valid(longest));
    longest[EG_EVENT_TYPE_MAX] = 'a';
    longest[EG_EVENT_TYPE_MAX + 1] = '\0';
    cr_assert_not(eg_event_type_valid(longest));

    cr_assert(eg_event_type_pattern_valid("*"));
    cr_assert(eg_event_type_pattern_valid("memory.*"));
    cr_assert(eg_event_type_pattern_valid("objective_event.*"));
    cr_assert(eg_event_type_pattern_valid("agent.task.*"));
    cr_assert(eg_event_type_pattern_valid("memory.created"));
    cr_assert_not(eg_event_type_pattern_valid("memory*"));
    cr_assert_not(eg_event_type_pattern_valid(".*"));
    cr_assert_not(eg_event_type_pattern_valid("memory.*.x"));
    cr_assert_not(eg_event_type_pattern_valid("memory.**"));
    cr_assert_not(eg_event_type_pattern_valid("**"));
    cr_assert_not(eg_event_type_pattern_valid(""));

    cr_assert(eg_event_type_match("*", "memory.created"));
    cr_assert(eg_event_type_match("memory.created", "memory.created"));
    cr_assert(eg_event_type_match("memory.*", "memory.created"));
    cr_assert(eg_event_type_match("memory.*", "memory.a.b"));
    cr_assert(eg_event_type_match("agent.task.*", "agent.task.updated"));
    cr_assert_not(eg_event_type_match("memory.*", "memory"));
    cr_assert_not(eg_event_type_match("memory.*", "memoryx.created"));
    cr_assert_not(eg_event_type_match("memory.created", "memory.created2"));
    cr_assert_not(eg_event_type_match("agent.task.*", "agent.other"));
}

Test(events, ids)
{
    uint64_t ms = 0, seq = 0;

    cr_assert_eq(eg_event_id_parse("evt_1700000000000_0", &ms, &seq), 0);
    cr_assert_eq(ms, 1700000000000ULL);
    cr_assert_eq(seq, 0);
    cr_assert_eq(eg_event_id_parse("evt_18446744073709551615_18446744073709551615", &ms, &seq), 0);
    cr_assert_eq(ms, UINT64_MAX);
    cr_assert_eq(seq, UINT64_MAX);
    cr_assert_lt(strlen("evt_18446744073709551615_18446744073709551615"), EG_EVENT_ID_MAX);
    cr_assert_eq(eg_event_id_parse("evt_18446744073709551616_0", NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_id_parse("evt_1-0", NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_id_parse("1700000000000-0", NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_id_parse("evt_1_", NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_id_parse("evt__1", NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_id_parse("evt_01_1", NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_id_parse("evt_1_1x", NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_id_parse("evt_+1_1", NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_id_parse("", NULL, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_id_parse(NULL, NULL, NULL), EG_EINVAL);

    cr_assert_lt(eg_event_id_cmp("evt_5_9", "evt_10_0"), 0); /* numeric, not lexical */
    cr_assert_lt(eg_event_id_cmp("evt_10_2", "evt_10_10"), 0);
    cr_assert_gt(eg_event_id_cmp("evt_11_0", "evt_10_10"), 0);
    cr_assert_eq(eg_event_id_cmp("evt_10_1", "evt_10_1"), 0);
    cr_assert_lt(eg_event_id_cmp("garbage", "evt_0_0"), 0);
    cr_assert_gt(eg_event_id_cmp("evt_0_0", NULL), 0);
}

Test(events, minid_keeps_thirty_days)
{
    char out[32];
    int64_t now = 1760000000123LL;

    eg_events_minid(now, out);
    cr_assert_str_eq(out, "1757408000123-0"); /* now - 2,592,000,000 ms */
    cr_assert_eq(EG_EVENTS_RETENTION_MS, 2592000000LL);
    eg_events_minid(EG_EVENTS_RETENTION_MS, out);
    cr_assert_str_eq(out, "0-0");
    eg_events_minid(1000, out); /* a clock near the epoch never goes negative */
    cr_assert_str_eq(out, "0-0");
}

Test(events, bad_arguments_without_a_store)
{
    cJSON *obj = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    const char *bad_types[] = {"Memory"};
    eg_event_filter_t bad_filter = {bad_types, 1, NULL};
    eg_event_query_t q = {.limit = 10};

    cr_assert_eq(eg_event_emit("ws", "Bad Type", obj, t_emitted, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_emit("ws", "a.b", arr, t_emitted, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_emit("ws", "a.b", NULL, t_emitted, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_emit("w{s}", "a.b", obj, t_emitted, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_emit("", "a.b", obj, t_emitted, NULL), EG_EINVAL);
    cr_assert_eq(eg_event_emit("ws", "a.b", obj, NULL, NULL), EG_EINVAL);
    /* Valid, but no store: refused at once, and done is never called. */
    cr_assert_eq(eg_event_emit("ws", "a.b", obj, t_emitted, NULL), EG_EUNAVAIL);
    cr_assert_null(eg_events_watch("ws", &bad_filter, t_on_event, NULL));
    cr_assert_null(eg_events_watch("ws", NULL, NULL, NULL));
    cr_assert_null(eg_events_watch("ws", NULL, t_on_event, NULL)); /* no store */
    cr_assert_eq(eg_events_watchers("ws"), 0);
    eg_events_unwatch(NULL);

    cr_assert_eq(eg_events_read("ws", &q, t_page, NULL), EG_EUNAVAIL);
    q.after = "1-0";
    cr_assert_eq(eg_events_read("ws", &q, t_page, NULL), EG_EINVAL);
    q.after = NULL;
    q.limit = 0;
    cr_assert_eq(eg_events_read("ws", &q, t_page, NULL), EG_EINVAL);
    q.limit = EG_EVENTS_LIMIT_MAX + 1;
    cr_assert_eq(eg_events_read("ws", &q, t_page, NULL), EG_EINVAL);
    q.limit = 1;
    q.types = bad_types;
    q.ntypes = 1;
    cr_assert_eq(eg_events_read("ws", &q, t_page, NULL), EG_EINVAL);
    cr_assert_eq(eg_events_get("ws", "nope", t_got, NULL), EG_ENOTFOUND);
    cr_assert_eq(eg_events_get("w}", "evt_1_0", t_got, NULL), EG_EINVAL);
    cr_assert_eq(eg_events_get("ws", "evt_1_0", t_got, NULL), EG_EUNAVAIL);
    cJSON_Delete(obj);
    cJSON_Delete(arr);
}

/* ---- emit: durable, then live, same bytes as a read -------------------------------------- */

static void t_xrange_reply(void *udata, int err, redisReply *r)
{
    t_ctx_t *t = udata;

    cr_assert_eq(err, 0);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 1, "XRANGE found %zu entries", r->elements);
    t->xrange_hits++;
}

/* done runs only once XADD was acknowledged: the entry is there for anyone to read. */
static void t_emitted_check_durable(void *udata, int err, const char *event_id)
{
    t_ctx_t *t = udata;
    uint64_t ms, seq;

    t_emitted(udata, err, event_id);
    cr_assert_eq(eg_event_id_parse(event_id, &ms, &seq), 0);
    cr_assert_eq(eg_store_command(t_xrange_reply, t,
                                  "XRANGE eg:{w:%s}:events %" PRIu64 "-%" PRIu64 " %" PRIu64
                                  "-%" PRIu64,
                                  t->ws, ms, seq, ms, seq),
                 0);
}

static void run_emit(t_ctx_t *t)
{
    cJSON *e;

    switch (t->step) {
    case 0:
        t_ws(t->ws, sizeof(t->ws), "emit");
        t->w[0].w = eg_events_watch(t->ws, NULL, t_on_event, &t->w[0]);
        cr_assert_not_null(t->w[0].w);
        cr_assert_eq(eg_events_watchers(t->ws), 1);
        t_next(t);
        return;
    case 1:
        if (!t_wait_numsub(t, t->ws, 1))
            return;
        e = cJSON_Parse("{\"id\":\"mem_1\",\"text\":\"caf\\u00e9 \\\"q\\\"\",\"n\":[1,2]}");
        cr_assert_eq(eg_event_emit(t->ws, "memory.created", e, t_emitted_check_durable, t), 0);
        cJSON_Delete(e);
        t_next(t);
        return;
    case 2:
        if (t->xrange_hits < 1 || t->w[0].events < 1)
            return;
        cr_assert_eq(t->w[0].events, 1);
        cr_assert_str_eq(t->w[0].ids[0], t->ids[0]);
        cr_assert_str_eq(t->w[0].types[0], "memory.created");
        cr_assert_eq(eg_events_get(t->ws, t->ids[0], t_got, t), 0);
        t_next(t);
        return;
    case 3:
        if (t->gets < 1)
            return;
        cr_assert_eq(t->last_err, 0);
        /* A watcher and a reader see the same bytes. */
        cr_assert_str_eq(t->got_json, t->w[0].last_json);
        {
            cJSON *j = cJSON_Parse(t->got_json);
            const cJSON *ent;

            cr_assert_not_null(j);
            cr_assert_str_eq(cJSON_GetObjectItem(j, "id")->valuestring, t->ids[0]);
            cr_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "memory.created");
            cr_assert_str_eq(cJSON_GetObjectItem(j, "workspaceId")->valuestring, t->ws);
            cr_assert_eq(strlen(cJSON_GetObjectItem(j, "createdAt")->valuestring), 24);
            ent = cJSON_GetObjectItem(j, "entity");
            cr_assert_str_eq(cJSON_GetObjectItem(ent, "text")->valuestring, "caf\xc3\xa9 \"q\"");
            cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ent, "n")), 2);
            cJSON_Delete(j);
        }
        eg_events_unwatch(t->w[0].w);
        t->finished = true;
        return;
    }
}

Test(events, emit_is_durable_then_live)
{
    t_ctx_t t = {0};

    t.run = run_emit;
    t_run(&t, t_url(), 15000);
    cr_assert_eq(t.emitted, 1);
    cr_assert_eq(t.xrange_hits, 1);
}

/* ---- filters ------------------------------------------------------------------------------ */

static bool t_saw(const t_watcher_t *w, const char *type)
{
    for (int i = 0; i < w->events; i++)
        if (strcmp(w->types[i], type) == 0)
            return true;
    return false;
}

static void run_filters(t_ctx_t *t)
{
    const char *mem[] = {"memory.*"};
    const char *task[] = {"agent.task.updated", "objective_event.*"};
    eg_event_filter_t f_mem = {mem, 1, NULL}, f_task = {task, 2, "e1"};

    switch (t->step) {
    case 0:
        t_ws(t->ws, sizeof(t->ws), "filt");
        t->w[0].w = eg_events_watch(t->ws, &f_mem, t_on_event, &t->w[0]);
        t->w[1].w = eg_events_watch(t->ws, &f_task, t_on_event, &t->w[1]);
        t->w[2].w = eg_events_watch(t->ws, NULL, t_on_event, &t->w[2]);
        cr_assert(t->w[0].w && t->w[1].w && t->w[2].w);
        cr_assert_eq(eg_events_watchers(t->ws), 3);
        t_next(t);
        return;
    case 1:
        /* Three watchers, one subscription. */
        if (!t_wait_numsub(t, t->ws, 1))
            return;
        t_emit(t, t->ws, "memory.created", "{\"id\":\"e1\"}");
        t_emit(t, t->ws, "memory", "{\"id\":\"e1\"}");
        t_emit(t, t->ws, "agent.task.updated", "{\"id\":\"e2\"}");
        t_emit(t, t->ws, "agent.task.updated", "{\"id\":\"e1\"}");
        t_emit(t, t->ws, "objective_event.tool_call", "{\"id\":\"e1\",\"x\":{\"id\":\"e2\"}}");
        t_emit(t, t->ws, "objective_event.tool_call", "{\"id\":7}");
        t_emit(t, t->ws, "memory.deleted", "{}");
        t_next(t);
        return;
    case 2:
        if (t->w[2].events < 7)
            return;
        cr_assert_eq(t->w[2].events, 7);
        /* Two connections in the pool: the order between the emits is not fixed. */
        cr_assert_eq(t->w[0].events, 2);
        cr_assert(t_saw(&t->w[0], "memory.created"));
        cr_assert(t_saw(&t->w[0], "memory.deleted"));
        cr_assert_eq(t->w[1].events, 2);
        cr_assert(t_saw(&t->w[1], "agent.task.updated"));
        cr_assert(t_saw(&t->w[1], "objective_event.tool_call"));
        for (int i = 0; i < 3; i++)
            eg_events_unwatch(t->w[i].w);
        t->finished = true;
        return;
    }
}

Test(events, filters_by_type_and_entity)
{
    t_ctx_t t = {0};

    t.run = run_filters;
    t_run(&t, t_url(), 15000);
    cr_assert_eq(t.emitted, 7);
}

/* ---- refcounted subscription, unwatch inside callbacks ------------------------------------ */

/* Unwatches itself and the other watcher while the fan-out loop is running. */
static void t_unwatch_both(void *self, const eg_event_t *ev)
{
    t_watcher_t *w = self;
    t_ctx_t *t = w->t;

    (void)ev;
    eg_events_unwatch(t->w[0].w);
    eg_events_unwatch(t->w[1].w);
    eg_events_unwatch(t->w[1].w); /* twice is harmless */
    /* A watcher added from a callback does not get the event being delivered. */
    t->w[2].w = eg_events_watch(t->ws, NULL, t_on_event, &t->w[2]);
    cr_assert_not_null(t->w[2].w);
    cr_assert_eq(eg_events_watchers(t->ws), 1);
}

static void run_refcount(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        t_ws(t->ws, sizeof(t->ws), "ref");
        t->w[0].w = eg_events_watch(t->ws, NULL, t_on_event, &t->w[0]);
        t->w[1].w = eg_events_watch(t->ws, NULL, t_on_event, &t->w[1]);
        cr_assert_eq(eg_events_watchers(t->ws), 2);
        t_next(t);
        return;
    case 1:
        if (!t_wait_numsub(t, t->ws, 1))
            return;
        eg_events_unwatch(t->w[1].w);
        cr_assert_eq(eg_events_watchers(t->ws), 1);
        t_next(t);
        return;
    case 2:
        /* One watcher left: still subscribed. */
        if (t_in_step(t) < 100)
            return;
        if (!t_wait_numsub(t, t->ws, 1))
            return;
        eg_events_unwatch(t->w[0].w);
        cr_assert_eq(eg_events_watchers(t->ws), 0);
        t_next(t);
        return;
    case 3:
        /* The last one left: the channel is gone from Redis. */
        if (!t_wait_numsub(t, t->ws, 0))
            return;
        /* Again, with unwatching from inside the callback. */
        memset(t->w, 0, sizeof(t->w));
        for (size_t i = 0; i < EG_ARRAY_SIZE(t->w); i++)
            t->w[i].t = t;
        t->w[0].also = t_unwatch_both;
        t->w[1].also = t_unwatch_both;
        t->w[0].w = eg_events_watch(t->ws, NULL, t_on_event, &t->w[0]);
        t->w[1].w = eg_events_watch(t->ws, NULL, t_on_event, &t->w[1]);
        t_next(t);
        return;
    case 4:
        if (!t_wait_numsub(t, t->ws, 1))
            return;
        t_emit(t, t->ws, "a.first", "{}");
        t_next(t);
        return;
    case 5:
        if (t->emitted < 1 || t->w[0].events + t->w[1].events < 1)
            return;
        if (t_in_step(t) < 100)
            return; /* let a wrong second delivery show */
        /* Exactly one of the two got it: the other was unwatched before its turn. */
        cr_assert_eq(t->w[0].events + t->w[1].events, 1);
        cr_assert_eq(t->w[2].events, 0);
        t_emit(t, t->ws, "a.second", "{}");
        t_next(t);
        return;
    case 6:
        if (t->w[2].events < 1)
            return;
        cr_assert_str_eq(t->w[2].types[0], "a.second");
        cr_assert_eq(t->w[0].events + t->w[1].events, 1);
        eg_events_unwatch(t->w[2].w);
        t_next(t);
        return;
    case 7:
        if (!t_wait_numsub(t, t->ws, 0))
            return;
        t->finished = true;
        return;
    }
}

Test(events, unwatch_unsubscribes_with_the_last_watcher)
{
    t_ctx_t t = {0};

    t.run = run_refcount;
    t_run(&t, t_url(), 15000);
}

/* ---- isolation ---------------------------------------------------------------------------- */

static void run_isolation(t_ctx_t *t)
{
    eg_event_query_t q = {.limit = 10, .desc = true};

    switch (t->step) {
    case 0:
        t_ws(t->ws, sizeof(t->ws), "isoA");
        t_ws(t->ws2, sizeof(t->ws2), "isoB");
        t->w[0].w = eg_events_watch(t->ws2, NULL, t_on_event, &t->w[0]);
        t->w[1].w = eg_events_watch(t->ws, NULL, t_on_event, &t->w[1]);
        t_next(t);
        return;
    case 1:
        if (!t_wait_numsub(t, t->ws2, 1))
            return;
        t_next(t);
        return;
    case 2:
        if (!t_wait_numsub(t, t->ws, 1))
            return;
        t_emit(t, t->ws, "secret.thing", "{\"id\":\"s1\"}");
        t_next(t);
        return;
    case 3:
        if (t->emitted < 1 || t->w[1].events < 1)
            return;
        /* B's id space does not contain A's event. */
        cr_assert_eq(eg_events_get(t->ws2, t->ids[0], t_got, t), 0);
        cr_assert_eq(eg_events_read(t->ws2, &q, t_page, t), 0);
        t_next(t);
        return;
    case 4:
        if (t->gets < 1 || t->pages < 1)
            return;
        cr_assert_eq(t->last_err, EG_ENOTFOUND);
        cr_assert_eq(t->page_n, 0);
        cr_assert_not(t->page_more);
        cr_assert_eq(t->w[0].events, 0, "B's watcher saw A's event");
        eg_events_unwatch(t->w[0].w);
        eg_events_unwatch(t->w[1].w);
        cr_assert_eq(eg_events_watchers(t->ws2), 0);
        t->finished = true;
        return;
    }
}

Test(events, workspaces_are_isolated)
{
    t_ctx_t t = {0};

    t.run = run_isolation;
    t_run(&t, t_url(), 15000);
}

/* ---- paging and get ----------------------------------------------------------------------- */

#define T_N_PAGE 7

static void t_read(t_ctx_t *t, const char *after, int limit, bool desc, const char *type)
{
    const char *types[] = {type};
    eg_event_query_t q = {after, types, type ? 1 : 0, limit, desc, NULL};

    cr_assert_eq(eg_events_read(t->ws, &q, t_page, t), 0);
}

static void run_paging(t_ctx_t *t)
{
    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t_ws(t->ws, sizeof(t->ws), "page");
        /* Sequential emits (each after the last is stored) so ids[] is in log order. */
        t_emit(t, t->ws, t->emitted % 2 ? "b.odd" : "a.even",
               t->emitted % 2 ? "{\"id\":\"odd\"}" : "{\"id\":7}");
        t_next(t);
        return;
    case 1:
        if (t->emitted < T_N_PAGE) {
            if (t->emitted > t->replies) {
                t->replies = t->emitted;
                t_emit(t, t->ws, t->emitted % 2 ? "b.odd" : "a.even",
                       t->emitted % 2 ? "{\"id\":\"odd\"}" : "{\"id\":7}");
            }
            return;
        }
        for (int i = 1; i < T_N_PAGE; i++)
            cr_assert_lt(eg_event_id_cmp(t->ids[i - 1], t->ids[i]), 0);
        t_read(t, NULL, 3, false, NULL);
        t_next(t);
        return;
    case 2: /* asc: 0 1 2 */
        if (t->pages < 1)
            return;
        cr_assert_eq(t->page_n, 3);
        for (int i = 0; i < 3; i++)
            cr_assert_str_eq(t->page_ids[i], t->ids[i]);
        cr_assert(t->page_more);
        cr_assert_str_eq(t->page_next, t->ids[2]);
        t_read(t, t->page_next, 3, false, NULL);
        t_next(t);
        return;
    case 3: /* asc: 3 4 5 */
        if (t->pages < 2)
            return;
        cr_assert_eq(t->page_n, 3);
        cr_assert_str_eq(t->page_ids[0], t->ids[3]);
        cr_assert_str_eq(t->page_ids[2], t->ids[5]);
        cr_assert(t->page_more);
        t_read(t, t->page_next, 3, false, NULL);
        t_next(t);
        return;
    case 4: /* asc: 6, end */
        if (t->pages < 3)
            return;
        cr_assert_eq(t->page_n, 1);
        cr_assert_str_eq(t->page_ids[0], t->ids[6]);
        cr_assert_not(t->page_more);
        cr_assert_str_empty(t->page_next);
        t_read(t, NULL, 4, true, NULL);
        t_next(t);
        return;
    case 5: /* desc: 6 5 4 3 */
        if (t->pages < 4)
            return;
        cr_assert_eq(t->page_n, 4);
        for (int i = 0; i < 4; i++)
            cr_assert_str_eq(t->page_ids[i], t->ids[6 - i]);
        cr_assert(t->page_more);
        t_read(t, t->page_next, 4, true, NULL);
        t_next(t);
        return;
    case 6: /* desc: 2 1 0, end */
        if (t->pages < 5)
            return;
        cr_assert_eq(t->page_n, 3);
        cr_assert_str_eq(t->page_ids[0], t->ids[2]);
        cr_assert_str_eq(t->page_ids[2], t->ids[0]);
        cr_assert_not(t->page_more);
        t_read(t, NULL, 2, false, "b.*");
        t_next(t);
        return;
    case 7: /* type filter asc: odd ones 1 3 | 5 */
        if (t->pages < 6)
            return;
        cr_assert_eq(t->page_n, 2);
        cr_assert_str_eq(t->page_ids[0], t->ids[1]);
        cr_assert_str_eq(t->page_ids[1], t->ids[3]);
        cr_assert(t->page_more);
        cr_assert_str_eq(t->page_next, t->ids[3]);
        t_read(t, t->page_next, 2, false, "b.*");
        t_next(t);
        return;
    case 8:
        if (t->pages < 7)
            return;
        cr_assert_eq(t->page_n, 1);
        cr_assert_str_eq(t->page_ids[0], t->ids[5]);
        cr_assert_not(t->page_more);
        t_read(t, NULL, 10, true, "a.even");
        t_next(t);
        return;
    case 9: /* exact type, desc: 6 4 2 0 */
        if (t->pages < 8)
            return;
        cr_assert_eq(t->page_n, 4);
        cr_assert_str_eq(t->page_ids[0], t->ids[6]);
        cr_assert_str_eq(t->page_ids[3], t->ids[0]);
        cr_assert_not(t->page_more);
        t_read(t, t->ids[6], 10, false, NULL); /* after the newest: nothing */
        t_next(t);
        return;
    case 10:
        if (t->pages < 9)
            return;
        cr_assert_eq(t->page_n, 0);
        cr_assert_not(t->page_more);
        cr_assert_eq(eg_events_get(t->ws, t->ids[4], t_got, t), 0);
        t_next(t);
        return;
    case 11:
        if (t->gets < 1)
            return;
        cr_assert_eq(t->last_err, 0);
        cr_assert_not_null(strstr(t->got_json, t->ids[4]));
        cr_assert_not_null(strstr(t->got_json, "\"type\":\"a.even\""));
        /* Well-formed, but no such entry. */
        cr_assert_eq(eg_events_get(t->ws, "evt_1_0", t_got, t), 0);
        t_next(t);
        return;
    case 12:
        if (t->gets < 2)
            return;
        cr_assert_eq(t->last_err, EG_ENOTFOUND);
        {
            eg_event_query_t q = {.limit = 2, .entity_id = "odd"};

            cr_assert_eq(eg_events_read(t->ws, &q, t_page, t), 0);
        }
        t_next(t);
        return;
    case 13: /* by entity id: 1 3 | (5) */
        if (t->pages < 10)
            return;
        cr_assert_eq(t->page_n, 2);
        cr_assert_str_eq(t->page_ids[0], t->ids[1]);
        cr_assert_str_eq(t->page_ids[1], t->ids[3]);
        cr_assert(t->page_more);
        {
            /* Numeric ids never match: entity ids are strings. */
            eg_event_query_t q = {.limit = 10, .entity_id = "7"};

            cr_assert_eq(eg_events_read(t->ws, &q, t_page, t), 0);
        }
        t_next(t);
        return;
    case 14:
        if (t->pages < 11)
            return;
        cr_assert_eq(t->page_n, 0);
        cr_assert_not(t->page_more);
        t->finished = true;
        return;
    }
}

Test(events, read_pages_and_get)
{
    t_ctx_t t = {0};

    t.run = run_paging;
    t_run(&t, t_url(), 15000);
    cr_assert_eq(t.pages, 11);
}

/* ---- a type filter over a long log comes back in bounded pieces ---------------------------- */

#define T_N_NOISE 4500

static void t_emitted_count(void *udata, int err, const char *event_id)
{
    t_ctx_t *t = udata;

    cr_assert_eq(err, 0);
    cr_assert_not_null(event_id);
    t->replies++;
}

static void run_scan_cap(t_ctx_t *t)
{
    cJSON *e;

    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        t_ws(t->ws, sizeof(t->ws), "cap");
        t_emit(t, t->ws, "wanted.first", "{}");
        t_next(t);
        return;
    case 1:
        if (t->emitted < 1)
            return;
        e = cJSON_CreateObject();
        for (int i = 0; i < T_N_NOISE; i++)
            cr_assert_eq(eg_event_emit(t->ws, "noise.tick", e, t_emitted_count, t), 0);
        cJSON_Delete(e);
        t_next(t);
        return;
    case 2:
        if (t->replies < T_N_NOISE)
            return;
        t_emit(t, t->ws, "wanted.last", "{}");
        t_next(t);
        return;
    case 3:
        if (t->emitted < 2)
            return;
        t_read(t, NULL, 10, false, "wanted.*");
        t_next(t);
        return;
    case 4:
        /* The script stopped after its scan budget: a short page that says there is more. */
        if (t->pages < 1)
            return;
        cr_assert_eq(t->page_n, 1);
        cr_assert_str_eq(t->page_ids[0], t->ids[0]);
        cr_assert(t->page_more);
        cr_assert_gt(eg_event_id_cmp(t->page_next, t->ids[0]), 0);
        cr_assert_lt(eg_event_id_cmp(t->page_next, t->ids[1]), 0);
        t_read(t, t->page_next, 10, false, "wanted.*");
        t_next(t);
        return;
    case 5:
        if (t->pages < 2)
            return;
        cr_assert_eq(t->page_n, 1);
        cr_assert_str_eq(t->page_ids[0], t->ids[1]);
        cr_assert_not(t->page_more);
        t->finished = true;
        return;
    }
}

Test(events, filtered_read_is_bounded)
{
    t_ctx_t t = {0};

    t.run = run_scan_cap;
    t_run(&t, t_url(), 30000);
}

/* ---- resync after the pub/sub connection was killed ------------------------------------- */

static void t_kill_reply(void *udata, int err, redisReply *r)
{
    t_ctx_t *t = udata;

    cr_assert_eq(err, 0);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    cr_assert_eq(r->integer, 1, "one pub/sub client killed");
    t->gets++;
}

static void run_resync(t_ctx_t *t)
{
    const char *only[] = {"x.*"};
    eg_event_filter_t f = {only, 1, NULL};

    switch (t->step) {
    case 0:
        t_ws(t->ws, sizeof(t->ws), "resync");
        t->w[0].w = eg_events_watch(t->ws, NULL, t_on_event, &t->w[0]);
        t->w[1].w = eg_events_watch(t->ws, &f, t_on_event, &t->w[1]);
        t_next(t);
        return;
    case 1:
        if (!t_wait_numsub(t, t->ws, 1))
            return;
        cr_assert_eq(eg_store_command(t_kill_reply, t, "CLIENT KILL TYPE pubsub"), 0);
        t_next(t);
        return;
    case 2:
        /* Every watcher hears of the gap, whatever its filter. */
        if (t->w[0].resyncs < 1 || t->w[1].resyncs < 1)
            return;
        cr_assert_eq(t->gets, 1);
        cr_assert_eq(t->w[0].resyncs, 1);
        cr_assert_eq(t->w[1].resyncs, 1);
        cr_assert_eq(t->w[0].events, 0);
        t_emit(t, t->ws, "x.after", "{}");
        t_next(t);
        return;
    case 3:
        /* And the subscription works again. */
        if (t->w[0].events < 1 || t->w[1].events < 1)
            return;
        cr_assert_str_eq(t->w[1].ids[0], t->ids[0]);
        eg_events_unwatch(t->w[0].w);
        eg_events_unwatch(t->w[1].w);
        t->finished = true;
        return;
    }
}

Test(events, resync_after_pubsub_connection_killed)
{
    t_ctx_t t = {0};

    t.run = run_resync;
    t_run(&t, t_private_url(), 15000);
}
