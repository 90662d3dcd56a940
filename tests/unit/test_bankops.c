/* Bank operations (engram/bankops.h) and the operation record moves they use (engram/ops.h:
 * eg_op_page, eg_op_cancel, eg_op_requeue, eg_op_delete) against a real Redis: listing with
 * status, kind and parent filters, offset paging and totals, one operation with its children,
 * cancel (children too), retry through a kind's registered retry function (and its failure
 * putting the record back to failed), delete of finished operations only, and another
 * workspace's bank seeing none of it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engram/bankops.h"
#include "engram/error.h"
#include "engram/ops.h"
#include "engram/store.h"
#include "engram/util.h"

#include "redis_fixture.h"

#define ID_LEN 36 /* a UUID v4 string */

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    char ws[64], bank[64], scope[140];
    char id[8][ID_LEN + 1];
} E;

#define P  0 /* parent (pending, children c1 c2) */
#define C1 1
#define C2 2
#define R  3 /* retain, failed */
#define K  4 /* consolidation, completed */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void wait_for(const int *done)
{
    uint64_t deadline = uv_now(&E.loop) + 10000;

    while (!*done) {
        cr_assert(uv_now(&E.loop) < deadline, "timed out");
        uv_run(&E.loop, UV_RUN_ONCE);
    }
}

typedef struct {
    int done, err;
    eg_op_status_t status;
    int64_t retries;
    char error[128];
} rec_t;

static void on_rec(void *udata, int err, const eg_op_t *op)
{
    rec_t *r = udata;

    r->err = err;
    if (op) {
        r->status = op->status;
        r->retries = op->retries;
        snprintf(r->error, sizeof(r->error), "%s", op->error);
    }
    r->done++;
}

static void create(int i, const char *kind, const char *meta)
{
    rec_t r = {0};

    cr_assert_eq(eg_op_create("b", E.scope, E.id[i], kind, meta, on_rec, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
    usleep(3000); /* listing order is creation time (ms): keep them apart */
}

static void update(int i, eg_op_status_t st, const char *error)
{
    rec_t r = {0};

    cr_assert_eq(eg_op_update("b", E.scope, E.id[i], st, -1, error, on_rec, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
}

static rec_t get_rec(int i)
{
    rec_t r = {0};

    cr_assert_eq(eg_op_get("b", E.scope, E.id[i], on_rec, &r), 0);
    wait_for(&r.done);
    return r;
}

static void setup(void)
{
    eg_store_opts_t o = {NULL, 2, 2000, 1000};
    char r[9], meta[256];

    t_redis_setup();
    o.url = t_url();
    memset(&E, 0, sizeof(E));
    cr_assert_eq(uv_loop_init(&E.loop), 0);
    uv_timer_init(&E.loop, &E.tick);
    uv_timer_start(&E.tick, on_tick, 5, 5);
    cr_assert_eq(eg_store_init(&E.loop, &o), 0);
    uint64_t deadline = uv_now(&E.loop) + 10000;
    while (!eg_store_up()) {
        cr_assert(uv_now(&E.loop) < deadline, "store did not come up");
        uv_run(&E.loop, UV_RUN_ONCE);
    }
    eg_random_base62(r, 8);
    snprintf(E.ws, sizeof(E.ws), "ws-%d-%s", (int)getpid(), r);
    snprintf(E.bank, sizeof(E.bank), "ops %s", r);
    snprintf(E.scope, sizeof(E.scope), "%s/%s", E.ws, E.bank);
    for (int i = 0; i < 8; i++)
        eg_uuid_v4(E.id[i]);
    /* Created oldest first: K, R, C2, C1, P (so P is the newest). */
    create(K, "consolidation", NULL);
    update(K, EG_OP_COMPLETED, NULL);
    create(R, "retain", "{\"items_count\":3,\"document_id\":\"doc\",\"payload\":{\"x\":1}}");
    update(R, EG_OP_FAILED, "boom");
    snprintf(meta, sizeof(meta), "{\"parent\":\"%s\",\"sub_batch_index\":1,\"items_count\":1}",
             E.id[P]);
    create(C2, "retain", meta);
    snprintf(meta, sizeof(meta), "{\"parent\":\"%s\",\"sub_batch_index\":0,\"items_count\":2}",
             E.id[P]);
    create(C1, "retain", meta);
    snprintf(meta, sizeof(meta), "{\"items_count\":3,\"children\":[\"%s\",\"%s\",\"gone\"]}",
             E.id[C1], E.id[C2]);
    create(P, "retain", meta);
}

static void set_flag(void *udata)
{
    *(int *)udata = 1;
}

static void teardown(void)
{
    int done = 0;

    eg_store_shutdown(set_flag, &done);
    uv_close((uv_handle_t *)&E.tick, NULL);
    wait_for(&done);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    t_loop_close_checked(&E.loop);
    t_redis_teardown();
}

TestSuite(bankops, .init = setup, .fini = teardown, .timeout = 60);

/* ---- listing --------------------------------------------------------------------------------- */

typedef struct {
    int done, err;
    size_t n, total;
    char ids[8][ID_LEN + 1];
    int64_t items[8];
} lst_t;

static void on_list(void *udata, int err, const eg_bankop_t *ops, size_t n, size_t total)
{
    lst_t *l = udata;

    l->err = err;
    l->n = n;
    l->total = total;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(l->ids[i], sizeof(l->ids[i]), "%s", ops[i].rec.id);
        l->items[i] = eg_bankop_meta_int(&ops[i], "items_count");
    }
    l->done = 1;
}

static lst_t list_q(const char *ws, eg_bankops_query_t q)
{
    lst_t l = {0};

    if (q.limit == 0)
        q.limit = 20;
    if (q.status == -2) /* the tests' shorthand for "any status" (0 is pending) */
        q.status = EG_OP_KEEP;
    cr_assert_eq(eg_bankops_list(ws, E.bank, &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.err, 0);
    return l;
}

#define list(ws, ...) list_q(ws, (eg_bankops_query_t)__VA_ARGS__)

Test(bankops, list_filters_and_pages)
{
    lst_t l = list(E.ws, {.status = -2});

    cr_assert_eq(l.total, 5);
    cr_assert_eq(l.n, 5);
    cr_assert_str_eq(l.ids[0], E.id[P], "newest first");
    cr_assert_str_eq(l.ids[4], E.id[K]);
    cr_assert_eq(l.items[0], 3);
    l = list(E.ws, {.status = -2, .limit = 2, .offset = 1});
    cr_assert_eq(l.total, 5);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(l.ids[0], E.id[C1]);
    l = list(E.ws, {.status = EG_OP_FAILED});
    cr_assert_eq(l.total, 1);
    cr_assert_str_eq(l.ids[0], E.id[R]);
    l = list(E.ws, {.status = -2, .kind = "consolidation"});
    cr_assert_eq(l.total, 1);
    l = list(E.ws, {.status = -2, .kind = "retain", .exclude_parents = true, .limit = 1});
    cr_assert_eq(l.total, 3, "the parent is left out");
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.ids[0], E.id[C1]);
    l = list(E.ws, {.status = EG_OP_PENDING, .offset = 1});
    cr_assert_eq(l.total, 3);
    cr_assert_eq(l.n, 2);
    l = list(E.ws, {.none = true, .status = EG_OP_KEEP});
    cr_assert_eq(l.total, 0);
    l = list("another-workspace", {.status = -2});
    cr_assert_eq(l.total, 0, "another workspace's bank has no operations");
    cr_assert_eq(eg_bankops_list(E.ws, E.bank, &(eg_bankops_query_t){.limit = 0}, on_list, &l),
                 EG_EINVAL);
}

typedef struct {
    int done;
    size_t counts[5], total;
} counts_t;

static void on_counts(void *udata, int err, const eg_op_t *ops, size_t n, size_t total,
                      const size_t counts[5])
{
    counts_t *c = udata;

    cr_assert_eq(err, 0);
    cr_assert_eq(n, 0);
    (void)ops;
    c->total = total;
    memcpy(c->counts, counts, sizeof(c->counts));
    c->done = 1;
}

Test(bankops, counts_by_status)
{
    counts_t c = {0};
    eg_op_filter_t f = {.status = EG_OP_KEEP, .counts = true};

    cr_assert_eq(eg_op_page("b", E.scope, &f, 0, 0, on_counts, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.counts[EG_OP_PENDING], 3);
    cr_assert_eq(c.counts[EG_OP_FAILED], 1);
    cr_assert_eq(c.counts[EG_OP_COMPLETED], 1);
    cr_assert_eq(c.total, 5);
}

/* ---- one operation --------------------------------------------------------------------------- */

typedef struct {
    int done, err;
    char id[64];
    size_t nchildren;
    char children[4][ID_LEN + 1];
    int64_t sbi[4];
} one_t;

static void on_get(void *udata, int err, const eg_bankop_t *op, const eg_bankop_t *children,
                   size_t n)
{
    one_t *o = udata;

    o->err = err;
    if (op)
        snprintf(o->id, sizeof(o->id), "%s", op->rec.id);
    o->nchildren = n;
    for (size_t i = 0; i < n && i < 4; i++) {
        snprintf(o->children[i], sizeof(o->children[i]), "%s", children[i].rec.id);
        o->sbi[i] = eg_bankop_meta_int(&children[i], "sub_batch_index");
    }
    o->done = 1;
}

Test(bankops, get_with_children)
{
    one_t o = {0};
    char missing[ID_LEN + 1];

    cr_assert_eq(eg_bankops_get(E.ws, E.bank, E.id[P], on_get, &o), 0);
    wait_for(&o.done);
    cr_assert_eq(o.err, 0);
    cr_assert_eq(o.nchildren, 2, "the child that does not exist is left out");
    cr_assert_str_eq(o.children[0], E.id[C1]);
    cr_assert_eq(o.sbi[1], 1);
    memset(&o, 0, sizeof(o));
    cr_assert_eq(eg_bankops_get(E.ws, E.bank, E.id[R], on_get, &o), 0);
    wait_for(&o.done);
    cr_assert_eq(o.err, 0);
    cr_assert_eq(o.nchildren, 0);
    eg_uuid_v4(missing);
    memset(&o, 0, sizeof(o));
    cr_assert_eq(eg_bankops_get(E.ws, E.bank, missing, on_get, &o), 0);
    wait_for(&o.done);
    cr_assert_eq(o.err, EG_ENOTFOUND);
}

/* ---- moves ----------------------------------------------------------------------------------- */

static rec_t move(int (*fn)(const char *, const char *, const char *, eg_bankop_move_fn, void *),
                  int i)
{
    rec_t r = {0};

    cr_assert_eq(fn(E.ws, E.bank, E.id[i], on_rec, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.done, 1);
    return r;
}

Test(bankops, cancel_pending_only)
{
    rec_t r = move(eg_bankops_cancel, P);

    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.status, EG_OP_CANCELLED);
    /* The children were cancelled too (best effort, after the answer: wait for them). */
    for (int tries = 0; tries < 200 && get_rec(C2).status != EG_OP_CANCELLED; tries++)
        uv_run(&E.loop, UV_RUN_ONCE);
    cr_assert_eq(get_rec(C1).status, EG_OP_CANCELLED);
    cr_assert_eq(get_rec(C2).status, EG_OP_CANCELLED);
    r = move(eg_bankops_cancel, P);
    cr_assert_eq(r.err, EG_ECONFLICT);
    cr_assert_eq(r.status, EG_OP_CANCELLED, "the record as it is comes back");
    r = move(eg_bankops_cancel, R);
    cr_assert_eq(r.err, EG_ECONFLICT);
    cr_assert_eq(r.status, EG_OP_FAILED);
    r = move(eg_bankops_cancel, 7);
    cr_assert_eq(r.err, EG_ENOTFOUND);
}

Test(bankops, delete_finished_only)
{
    lst_t l;
    rec_t r = move(eg_bankops_delete, C1);

    cr_assert_eq(r.err, EG_ECONFLICT, "a pending operation stays");
    cr_assert_eq(r.status, EG_OP_PENDING);
    r = move(eg_bankops_delete, K);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.status, EG_OP_COMPLETED);
    cr_assert_eq(get_rec(K).err, EG_ENOTFOUND);
    l = list(E.ws, {.status = -2});
    cr_assert_eq(l.total, 4, "and its listing entry");
    cr_assert_eq(move(eg_bankops_delete, K).err, EG_ENOTFOUND);
    cr_assert_eq(move(eg_bankops_delete, R).err, 0, "failed is final too");
}

static struct {
    int calls, fail;
    int64_t retries;
    char kind[32];
} retried;

static int retry_ok(const char *ws_id, const char *bank_id, const eg_op_t *op,
                    eg_bankops_retry_done_fn done, void *done_udata)
{
    cr_assert_str_eq(ws_id, E.ws);
    cr_assert_str_eq(bank_id, E.bank);
    cr_assert_eq(op->status, EG_OP_PENDING, "called after the record went back to pending");
    retried.calls++;
    retried.retries = op->retries;
    snprintf(retried.kind, sizeof(retried.kind), "%s", op->kind);
    done(done_udata, retried.fail);
    return 0;
}

Test(bankops, retry_through_the_kind)
{
    rec_t r;

    r = move(eg_bankops_retry, R);
    cr_assert_eq(r.err, EG_ENOTIMPL, "no retry function for retain yet");
    cr_assert_eq(get_rec(R).status, EG_OP_FAILED);

    cr_assert_eq(eg_bankops_set_retry("retain", retry_ok), 0);
    r = move(eg_bankops_retry, R);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.status, EG_OP_PENDING);
    cr_assert_eq(retried.calls, 1);
    cr_assert_eq(retried.retries, 1);
    cr_assert_str_eq(retried.kind, "retain");
    r = get_rec(R);
    cr_assert_eq(r.status, EG_OP_PENDING);
    cr_assert_str_empty(r.error);
    cr_assert_eq(r.retries, 1);

    r = move(eg_bankops_retry, R);
    cr_assert_eq(r.err, EG_ECONFLICT, "only a failed operation is retried");
    cr_assert_eq(retried.calls, 1);

    /* A retry whose job cannot be queued leaves the operation failed, with the reason. */
    update(R, EG_OP_FAILED, "again");
    retried.fail = EG_EUNAVAIL;
    r = move(eg_bankops_retry, R);
    cr_assert_eq(r.err, EG_EUNAVAIL);
    r = get_rec(R);
    cr_assert_eq(r.status, EG_OP_FAILED);
    cr_assert(strstr(r.error, "retry could not be queued") != NULL, "%s", r.error);
    cr_assert_eq(r.retries, 2);
    cr_assert_eq(move(eg_bankops_retry, 7).err, EG_ENOTFOUND);
}

Test(bankops, retry_registry)
{
    cr_assert_eq(eg_bankops_set_retry("", retry_ok), EG_EINVAL);
    cr_assert_eq(eg_bankops_set_retry(NULL, retry_ok), EG_EINVAL);
    for (int i = 0; i < EG_BANKOPS_KINDS_MAX; i++) {
        char k[16];

        snprintf(k, sizeof(k), "k%d", i);
        cr_assert_eq(eg_bankops_set_retry(k, retry_ok), 0);
    }
    cr_assert_eq(eg_bankops_set_retry("one-too-many", retry_ok), EG_EINVAL);
    cr_assert_eq(eg_bankops_set_retry("k3", NULL), 0);
    cr_assert_eq(eg_bankops_set_retry("now-fits", retry_ok), 0);
}
