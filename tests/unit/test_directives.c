/* Directives (engram/directives.h) against a real Redis: create / get / patch / delete, list
 * order (priority desc, then newest first), list filters (tags any / all / exact with untagged
 * ones always included, active_only, paging), the reflect selection (untagged always, tagged on
 * a shared tag or apply_all, inactive never), another workspace seeing nothing, a memory clear
 * keeping them and a bank delete dropping their keys. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engram/bank.h"
#include "engram/directives.h"
#include "engram/error.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/util.h"

#include "redis_fixture.h"

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    char ws[64], bank[64];
} E;

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

static void setup(void)
{
    eg_store_opts_t o = {NULL, 2, 2000, 1000};
    char r[9];

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
    snprintf(E.bank, sizeof(E.bank), "dir {bank} %s", r);
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

TestSuite(directives, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers --------------------------------------------------------------------------------- */

typedef struct {
    int done, err;
    char id[40], name[64], content[64], tags[128];
    int64_t priority, created_at, updated_at;
    bool is_active;
} one_t;

static void join_tags(char *out, size_t cap, const char *const *tags, size_t n)
{
    out[0] = 0;
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "", tags[i]);
}

static void on_one(void *udata, int err, const eg_directive_t *d)
{
    one_t *o = udata;

    o->err = err;
    if (d) {
        snprintf(o->id, sizeof(o->id), "%s", d->id);
        snprintf(o->name, sizeof(o->name), "%s", d->name);
        snprintf(o->content, sizeof(o->content), "%s", d->content);
        join_tags(o->tags, sizeof(o->tags), d->tags, d->ntags);
        o->priority = d->priority;
        o->is_active = d->is_active;
        o->created_at = d->created_at;
        o->updated_at = d->updated_at;
    }
    o->done++;
}

typedef struct {
    int done, err;
    size_t n, total;
    char names[64][32]; /* in order */
} many_t;

static void on_many(void *udata, int err, const eg_directive_t *ds, size_t n, size_t total)
{
    many_t *m = udata;

    m->err = err;
    m->n = n;
    m->total = total;
    for (size_t i = 0; i < n && i < 64; i++)
        snprintf(m->names[i], sizeof(m->names[i]), "%s", ds[i].name);
    m->done++;
}

static void create(const char *ws, const char *name, int64_t prio, bool active,
                   const char *const *tags, size_t ntags, one_t *o)
{
    eg_directive_new_t d = {.name = name,
                            .content = "be brief",
                            .priority = prio,
                            .is_active = active,
                            .tags = tags,
                            .ntags = ntags};

    memset(o, 0, sizeof(*o));
    cr_assert_eq(eg_directive_create(ws, E.bank, &d, on_one, o), 0);
    wait_for(&o->done);
    cr_assert_eq(o->err, 0, "create %s: %d", name, o->err);
    usleep(2000); /* created_at orders ties of priority */
}

static void list(const eg_directives_query_t *q, many_t *m)
{
    memset(m, 0, sizeof(*m));
    cr_assert_eq(eg_directives_list(E.ws, E.bank, q, on_many, m), 0);
    wait_for(&m->done);
    cr_assert_eq(m->err, 0);
}

static void reflect(const char *const *tags, size_t ntags, bool all, many_t *m)
{
    memset(m, 0, sizeof(*m));
    cr_assert_eq(eg_directives_for_reflect(E.ws, E.bank, tags, ntags, all, on_many, m), 0);
    wait_for(&m->done);
    cr_assert_eq(m->err, 0);
}

static void names_are(const many_t *m, const char *expect)
{
    char got[512] = "";

    for (size_t i = 0; i < m->n; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "", m->names[i]);
    cr_assert_str_eq(got, expect);
}

static const char *const T_A[] = {"a"}, *const T_B[] = {"b"}, *const T_AB[] = {"a", "b"};

/* g1 (prio 0, untagged), g2 (prio 5, untagged), ta (prio 1, [a]), tab (prio 1, [a,b]), tb (prio
 * 9, [b], inactive), in creation order. */
static void seed(void)
{
    one_t o;

    create(E.ws, "g1", 0, true, NULL, 0, &o);
    create(E.ws, "g2", 5, true, NULL, 0, &o);
    create(E.ws, "ta", 1, true, T_A, 1, &o);
    create(E.ws, "tab", 1, true, T_AB, 2, &o);
    create(E.ws, "tb", 9, false, T_B, 1, &o);
}

/* ---- tests ----------------------------------------------------------------------------------- */

Test(directives, crud)
{
    const char *tags[] = {"user:1", "x"};
    eg_directive_patch_t p = {0};
    one_t o, g;

    create(E.ws, "French", 3, true, tags, 2, &o);
    cr_assert(eg_uuid_valid(o.id));
    cr_assert_eq(o.priority, 3);
    cr_assert(o.is_active);
    cr_assert_str_eq(o.tags, "user:1,x");
    cr_assert_eq(o.created_at, o.updated_at);

    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_directive_get(E.ws, E.bank, o.id, on_one, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, 0);
    cr_assert_str_eq(g.name, "French");
    cr_assert_str_eq(g.content, "be brief");

    p.content = "answer in French";
    p.set_priority = true;
    p.priority = -2;
    p.set_active = true;
    p.is_active = false;
    p.set_tags = true;
    p.ntags = 0;
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_directive_patch(E.ws, E.bank, o.id, &p, on_one, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, 0);
    cr_assert_str_eq(g.name, "French");
    cr_assert_str_eq(g.content, "answer in French");
    cr_assert_eq(g.priority, -2);
    cr_assert_not(g.is_active);
    cr_assert_str_eq(g.tags, "");
    cr_assert_eq(g.created_at, o.created_at);
    cr_assert_geq(g.updated_at, o.updated_at);

    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_directive_delete(E.ws, E.bank, o.id, on_one, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, 0);
    cr_assert_str_eq(g.content, "answer in French");
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_directive_get(E.ws, E.bank, o.id, on_one, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, EG_ENOTFOUND);
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_directive_patch(E.ws, E.bank, o.id, &p, on_one, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, EG_ENOTFOUND);
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_directive_delete(E.ws, E.bank, o.id, on_one, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, EG_ENOTFOUND);
}

typedef struct {
    int done, err;
} bank_t;

static void on_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    bank_t *b = udata;

    (void)bank;
    (void)created;
    b->err = err;
    b->done = 1;
}

Test(directives, create_makes_the_bank)
{
    bank_t b = {0, -1};
    one_t o;

    create(E.ws, "x", 0, true, NULL, 0, &o);
    cr_assert_eq(eg_bank_get(E.ws, E.bank, on_bank, &b), 0);
    wait_for(&b.done);
    cr_assert_eq(b.err, 0);
}

Test(directives, list_order_and_filters)
{
    eg_directives_query_t q = {.limit = 100};
    many_t m;

    seed();
    list(&q, &m); /* active_only false: all of them */
    cr_assert_eq(m.total, 5);
    names_are(&m, "tb g2 tab ta g1");
    q.active_only = true;
    list(&q, &m);
    names_are(&m, "g2 tab ta g1");

    q.tags = T_A;
    q.ntags = 1;
    q.tags_match = EG_TAGS_ANY;
    list(&q, &m);
    names_are(&m, "g2 tab ta g1");
    q.tags = T_B;
    list(&q, &m);
    names_are(&m, "g2 tab g1");
    q.tags = T_AB;
    q.ntags = 2;
    q.tags_match = EG_TAGS_ALL;
    list(&q, &m);
    names_are(&m, "g2 tab g1");
    q.tags = T_A;
    q.ntags = 1;
    q.tags_match = EG_TAGS_EXACT;
    list(&q, &m);
    names_are(&m, "g2 ta g1");

    /* Paging keeps the total of every match. */
    q.tags = NULL;
    q.ntags = 0;
    q.limit = 2;
    q.offset = 1;
    list(&q, &m);
    cr_assert_eq(m.total, 4);
    names_are(&m, "tab ta");
    q.offset = 10;
    list(&q, &m);
    cr_assert_eq(m.total, 4);
    cr_assert_eq(m.n, 0);
}

Test(directives, reflect_selection)
{
    const char *const other[] = {"zzz"};
    many_t m;

    seed();
    reflect(NULL, 0, false, &m);
    names_are(&m, "g2 g1");
    reflect(T_A, 1, false, &m);
    names_are(&m, "g2 tab ta g1");
    reflect(T_B, 1, false, &m); /* tb shares b but is inactive */
    names_are(&m, "g2 tab g1");
    reflect(other, 1, false, &m);
    names_are(&m, "g2 g1");
    reflect(NULL, 0, true, &m);
    names_are(&m, "g2 tab ta g1");
    cr_assert_eq(m.total, 4);
}

Test(directives, other_workspace_sees_nothing)
{
    eg_directives_query_t q = {.limit = 100};
    char other[80];
    many_t m;
    one_t o, g;

    create(E.ws, "mine", 0, true, NULL, 0, &o);
    snprintf(other, sizeof(other), "%s-other", E.ws);
    memset(&m, 0, sizeof(m));
    cr_assert_eq(eg_directives_list(other, E.bank, &q, on_many, &m), 0);
    wait_for(&m.done);
    cr_assert_eq(m.err, 0);
    cr_assert_eq(m.total, 0);
    memset(&m, 0, sizeof(m));
    cr_assert_eq(eg_directives_for_reflect(other, E.bank, NULL, 0, true, on_many, &m), 0);
    wait_for(&m.done);
    cr_assert_eq(m.total, 0);
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_directive_get(other, E.bank, o.id, on_one, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, EG_ENOTFOUND);
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_directive_delete(other, E.bank, o.id, on_one, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, EG_ENOTFOUND);
    /* Still there for its owner. */
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_directive_get(E.ws, E.bank, o.id, on_one, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, 0);
}

typedef struct {
    int done, err;
    long long n;
} count_t;

static void on_count(void *udata, int err, int64_t n)
{
    count_t *c = udata;

    c->err = err;
    c->n = n;
    c->done++;
}

static void on_deleted(void *udata, int err, bool existed, int64_t deleted)
{
    count_t *c = udata;

    (void)deleted;
    c->err = err;
    c->n = existed;
    c->done++;
}

static void on_reply(void *udata, int err, redisReply *r)
{
    count_t *c = udata;

    c->err = err;
    c->n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    c->done++;
}

static long long exists(const char *key)
{
    count_t c = {0};

    cr_assert_eq(eg_store_command(on_reply, &c, "EXISTS %s", key), 0);
    wait_for(&c.done);
    return c.n;
}

Test(directives, clear_keeps_delete_drops)
{
    eg_arena_t a;
    const char *index, *prefix, *rec;
    count_t c = {0};
    one_t o, g;

    eg_arena_init(&a);
    create(E.ws, "keep", 0, true, NULL, 0, &o);
    eg_directives_bank_keys(&a, E.ws, E.bank, &index, &prefix);
    rec = eg_arena_printf(&a, "%s%s", prefix, o.id);
    cr_assert_eq(exists(index), 1);
    cr_assert_eq(exists(rec), 1);

    cr_assert_eq(eg_mem_clear(E.ws, E.bank, (1u << EG_FACT_NTYPES) - 1, on_count, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.err, 0);
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_directive_get(E.ws, E.bank, o.id, on_one, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, 0);

    memset(&c, 0, sizeof(c));
    cr_assert_eq(eg_bank_delete(E.ws, E.bank, on_deleted, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.err, 0);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(exists(index), 0);
    cr_assert_eq(exists(rec), 0);
    eg_arena_destroy(&a);
}

Test(directives, bad_arguments)
{
    eg_directive_new_t d = {.name = "n", .content = "c"};
    const char *bad_tags[] = {""};
    char big[EG_DIRECTIVE_NAME_MAX + 2];
    one_t o;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    cr_assert_eq(eg_directive_create(E.ws, "", &d, on_one, &o), EG_EINVAL);
    d.tags = bad_tags;
    d.ntags = 1;
    cr_assert_eq(eg_directive_create(E.ws, E.bank, &d, on_one, &o), EG_EINVAL);
    d.ntags = 0;
    d.name = big;
    cr_assert_eq(eg_directive_create(E.ws, E.bank, &d, on_one, &o), EG_EINVAL);
    d.name = NULL;
    cr_assert_eq(eg_directive_create(E.ws, E.bank, &d, on_one, &o), EG_EINVAL);
    cr_assert_eq(eg_directive_get(E.ws, E.bank, "", on_one, &o), EG_EINVAL);
}

Test(directives, tags_pass)
{
    cr_assert(eg_directive_tags_pass(NULL, 0, T_A, 1, EG_TAGS_EXACT)); /* global */
    cr_assert(eg_directive_tags_pass(T_B, 1, NULL, 0, EG_TAGS_EXACT)); /* no filter */
    cr_assert(eg_directive_tags_pass(T_AB, 2, T_A, 1, EG_TAGS_ANY));
    cr_assert_not(eg_directive_tags_pass(T_B, 1, T_A, 1, EG_TAGS_ANY));
    cr_assert(eg_directive_tags_pass(T_AB, 2, T_AB, 2, EG_TAGS_ALL));
    cr_assert_not(eg_directive_tags_pass(T_A, 1, T_AB, 2, EG_TAGS_ALL));
    cr_assert_not(eg_directive_tags_pass(T_AB, 2, T_A, 1, EG_TAGS_EXACT));
    cr_assert(eg_directive_tags_pass(T_AB, 2, T_AB, 2, EG_TAGS_EXACT));
}
