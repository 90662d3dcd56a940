/* zpage against a real redis-server: pages forward and backward in both display orders, the
 * cursors at either end, members whose record is gone, and bad requests. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/util.h"
#include "engram/zpage.h"

#include "redis_fixture.h"

#define N_RECORDS 25

typedef struct t_ctx_s {
    uv_loop_t loop;
    uv_timer_t tick;
    char zkey[64], hkey[64];
    int pending;
    /* the last page */
    int got;
    char ids[64][48];
    size_t n;
    char prev[128], next[128];
    bool has_prev, has_next;
} t_ctx_t;

static void on_cmd(void *udata, int err, redisReply *r)
{
    t_ctx_t *t = udata;

    cr_assert_eq(err, 0);
    cr_assert(r->type != REDIS_REPLY_ERROR, "%s", r->str);
    t->pending--;
}

static void on_page(void *udata, int err, const eg_zpage_t *p)
{
    t_ctx_t *t = udata;

    cr_assert_eq(err, 0);
    t->got++;
    t->n = p->n;
    for (size_t i = 0; i < p->n; i++) {
        snprintf(t->ids[i], sizeof(t->ids[i]), "%s", p->ids[i]);
        cr_assert(strstr(p->values[i], p->ids[i]) != NULL, "value of %s: %s", p->ids[i],
                  p->values[i]);
    }
    t->has_prev = p->prev != NULL;
    t->has_next = p->next != NULL;
    snprintf(t->prev, sizeof(t->prev), "%s", p->prev ? p->prev : "");
    snprintf(t->next, sizeof(t->next), "%s", p->next ? p->next : "");
}

static void run_until(t_ctx_t *t, bool (*done)(t_ctx_t *))
{
    for (int i = 0; i < 4000 && !done(t); i++)
        uv_run(&t->loop, UV_RUN_ONCE);
    cr_assert(done(t));
}

static bool store_up(t_ctx_t *t)
{
    (void)t;
    return eg_store_up();
}
static bool none_pending(t_ctx_t *t)
{
    return t->pending == 0;
}
static int want_pages;
static bool page_done(t_ctx_t *t)
{
    return t->got == want_pages;
}

static void on_tick(uv_timer_t *h)
{
    (void)h;
}

static void page(t_ctx_t *t, const char *cursor, bool backwards, size_t limit, bool asc)
{
    eg_zpage_req_t q = {.zkey = t->zkey, .hkey = t->hkey, .limit = limit, .asc = asc};
    char cur[128];

    if (cursor != NULL) {
        snprintf(cur, sizeof(cur), "%s", cursor);
        q.cursor = cur;
    }
    q.backwards = backwards;
    want_pages = t->got + 1;
    cr_assert_eq(eg_zpage(&q, on_page, t), 0);
    run_until(t, page_done);
}

/* ids of the last page are rec<first>, rec<first+step>, ... */
static void expect(t_ctx_t *t, int first, int step, size_t n, bool has_prev, bool has_next)
{
    cr_assert_eq(t->n, n, "page of %zu, want %zu", t->n, n);
    for (size_t i = 0; i < n; i++) {
        char want[48];
        snprintf(want, sizeof(want), "rec%02d", first + step * (int)i);
        cr_assert_str_eq(t->ids[i], want, "item %zu", i);
    }
    cr_assert_eq(t->has_prev, has_prev, "prev");
    cr_assert_eq(t->has_next, has_next, "next");
}

static void setup_ctx(t_ctx_t *t)
{
    eg_store_opts_t opts = {
        .url = t_url(), .pool = 1, .cmd_timeout_ms = 5000, .connect_timeout_ms = 1000};
    char rnd[9];

    memset(t, 0, sizeof(*t));
    eg_random_init();
    eg_random_base62(rnd, 8);
    rnd[8] = '\0';
    snprintf(t->zkey, sizeof(t->zkey), "t:{zp%s}:z", rnd);
    snprintf(t->hkey, sizeof(t->hkey), "t:{zp%s}:h", rnd);
    cr_assert_eq(uv_loop_init(&t->loop), 0);
    uv_timer_init(&t->loop, &t->tick);
    uv_timer_start(&t->tick, on_tick, 5, 5);
    cr_assert_eq(eg_store_init(&t->loop, &opts), 0);
    run_until(t, store_up);
    for (int i = 0; i < N_RECORDS; i++) {
        char id[16], member[64], value[64];
        snprintf(id, sizeof(id), "rec%02d", i);
        /* Two records share each timestamp: the id breaks the tie. */
        eg_zpage_member(1700000000000000LL + (i / 2) * 1000, id, member, sizeof(member));
        snprintf(value, sizeof(value), "{\"id\":\"%s\"}", id);
        t->pending += 2;
        cr_assert_eq(eg_store_command(on_cmd, t, "ZADD %s 0 %s", t->zkey, member), 0);
        cr_assert_eq(eg_store_command(on_cmd, t, "HSET %s %s %s", t->hkey, id, value), 0);
    }
    run_until(t, none_pending);
}

static void shutdown_cb(void *udata)
{
    *(int *)udata = 1;
}

static void teardown_ctx(t_ctx_t *t)
{
    int done = 0;

    t->pending = 2;
    eg_store_command(on_cmd, t, "DEL %s", t->zkey);
    eg_store_command(on_cmd, t, "DEL %s", t->hkey);
    run_until(t, none_pending);
    eg_store_shutdown(shutdown_cb, &done);
    uv_close((uv_handle_t *)&t->tick, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    cr_assert_eq(done, 1);
    t_loop_close_checked(&t->loop);
}

TestSuite(zpage, .init = t_redis_setup, .fini = t_redis_teardown);

Test(zpage, newest_first_forward_and_back)
{
    t_ctx_t t;
    char p3prev[128], p2next[128];

    setup_ctx(&t);
    page(&t, NULL, false, 10, false);
    expect(&t, 24, -1, 10, false, true);
    page(&t, t.next, false, 10, false);
    expect(&t, 14, -1, 10, true, true);
    snprintf(p2next, sizeof(p2next), "%s", t.next);
    page(&t, p2next, false, 10, false);
    expect(&t, 4, -1, 5, true, false);
    snprintf(p3prev, sizeof(p3prev), "%s", t.prev);
    /* Back from page 3 is page 2, then page 1 again. */
    page(&t, p3prev, true, 10, false);
    expect(&t, 14, -1, 10, true, true);
    page(&t, t.prev, true, 10, false);
    expect(&t, 24, -1, 10, false, true);
    teardown_ctx(&t);
}

Test(zpage, oldest_first_and_deleted_records)
{
    t_ctx_t t;

    setup_ctx(&t);
    page(&t, NULL, false, 20, true);
    expect(&t, 0, 1, 20, false, true);
    page(&t, t.next, false, 20, true);
    expect(&t, 20, 1, 5, true, false);
    page(&t, t.prev, true, 3, true);
    expect(&t, 17, 1, 3, true, true);
    /* A member whose record is gone is skipped. */
    t.pending = 1;
    cr_assert_eq(eg_store_command(on_cmd, &t, "HDEL %s rec01", t.hkey), 0);
    run_until(&t, none_pending);
    page(&t, NULL, false, 3, true);
    cr_assert_eq(t.n, 2);
    cr_assert_str_eq(t.ids[0], "rec00");
    cr_assert_str_eq(t.ids[1], "rec02");
    teardown_ctx(&t);
}

Test(zpage, bad_requests)
{
    eg_zpage_req_t q = {.zkey = "a", .hkey = "b", .limit = 10};

    q.cursor = "12:abc";
    cr_assert_eq(eg_zpage(&q, on_page, NULL), EG_EINVAL);
    q.cursor = "0000000000000001:has space";
    cr_assert_eq(eg_zpage(&q, on_page, NULL), EG_EINVAL);
    q.cursor = NULL;
    q.limit = 0;
    cr_assert_eq(eg_zpage(&q, on_page, NULL), EG_EINVAL);
    cr_assert(eg_zpage_member_valid("0000000000000001:mem_x"));
    cr_assert_not(eg_zpage_member_valid("0000000000000001:"));
}
