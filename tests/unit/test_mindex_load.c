/* The memory index against a real Redis: a bank written with eg_mem_write is fully visible after
 * the first acquire; later writes, deletions, tag changes, edits and clears made through the
 * store (as another engramd process would make them) are visible at the next acquire; a deleted
 * or re-created bank, a reset entry and a trimmed stream make it reload; a large bank loads in
 * slices while writes continue; Redis failing mid-round reaches the callback exactly once; the
 * registry evicts the least recently used banks over its cap and cancels rounds at shutdown.
 *
 * Every test runs its own uv loop and checks at the end that no handle leaked. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/mindex.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/util.h"

#include "redis_fixture.h"

#define DIM 4
#define T0  INT64_C(1714600000000000)

typedef struct {
    uv_loop_t loop;
    uv_timer_t tick;
    redisContext *sync;
    eg_arena_t a;
    char ws[64], bank[64];
    uint64_t deadline;
} env_t;

static env_t E;

static void on_tick(uv_timer_t *h)
{
    (void)h;
}

/* Run the loop until *done turns non-zero (10 s at most). */
static void wait_for(const int *done)
{
    E.deadline = uv_now(&E.loop) + 10000;
    while (!*done) {
        cr_assert(uv_now(&E.loop) < E.deadline, "timed out waiting for a callback");
        uv_run(&E.loop, UV_RUN_ONCE);
    }
}

static void wait_up(void)
{
    E.deadline = uv_now(&E.loop) + 10000;
    while (!eg_store_up()) {
        cr_assert(uv_now(&E.loop) < E.deadline, "store did not come up");
        uv_run(&E.loop, UV_RUN_ONCE);
    }
}

static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(E.sync, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r);
    cr_assert_neq(r->type, REDIS_REPLY_ERROR, "%s", r->str);
    eg_arena_defer(&E.a, (void (*)(void *))freeReplyObject, r);
    return r;
}

static const char *key(const char *bank, const char *suffix)
{
    const char *tag = eg_arena_printf(&E.a, "%s/%s", E.ws, bank);
    return eg_key(&E.a, "b", tag, "%s", suffix);
}

static void bank_done(void *udata, int err, const eg_bank_t *b, bool created)
{
    (void)b;
    (void)created;
    cr_assert_eq(err, 0, "bank: %s", eg_strerror(err));
    *(int *)udata = 1;
}

static void bank_put(const char *bank)
{
    int done = 0;
    cr_assert_eq(eg_bank_put(E.ws, bank, NULL, bank_done, &done), 0);
    wait_for(&done);
}

static void start(const char *url, size_t cap, uint64_t cmd_timeout_ms)
{
    eg_store_opts_t o = {url, 2, cmd_timeout_ms, 1000};
    eg_redis_url_t u;
    struct timeval tv = {2, 0};
    char r[9];

    memset(&E, 0, sizeof(E));
    eg_arena_init(&E.a);
    cr_assert_eq(uv_loop_init(&E.loop), 0);
    uv_timer_init(&E.loop, &E.tick);
    uv_timer_start(&E.tick, on_tick, 5, 5);
    cr_assert_eq(eg_store_init(&E.loop, &o), 0);
    cr_assert_eq(eg_mindex_init(&E.loop, cap), 0);
    wait_up();
    cr_assert_eq(eg_redis_url_parse(url, &u), 0);
    E.sync = redisConnectWithTimeout(u.host, u.port, tv);
    cr_assert(E.sync && E.sync->err == 0);
    if (u.db)
        cmd("SELECT %d", u.db);
    eg_random_base62(r, 8);
    snprintf(E.ws, sizeof(E.ws), "ws-%d-%s", (int)getpid(), r);
    snprintf(E.bank, sizeof(E.bank), "bank {x} %s", r);
    bank_put(E.bank);
}

static void set_flag(void *udata)
{
    *(int *)udata = 1;
}

static void stop(void)
{
    int done = 0;

    eg_mindex_shutdown();
    eg_store_shutdown(set_flag, &done);
    uv_close((uv_handle_t *)&E.tick, NULL);
    wait_for(&done);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    t_loop_close_checked(&E.loop);
    redisFree(E.sync);
    eg_arena_destroy(&E.a);
}

/* ---- writes through the store ------------------------------------------------------------- */

typedef struct {
    int done, err;
} res_t;

static void write_done(void *udata, int err, const eg_mem_write_result_t *r)
{
    res_t *x = udata;
    (void)r;
    x->err = err;
    x->done = 1;
}

static void deleted_done(void *udata, int err, bool existed, int64_t n)
{
    res_t *x = udata;
    (void)n;
    cr_assert(existed);
    x->err = err;
    x->done = 1;
}

static void count_done(void *udata, int err, int64_t n)
{
    res_t *x = udata;
    (void)n;
    x->err = err;
    x->done = 1;
}

static const char *uuid(void)
{
    char *s = eg_arena_alloc(&E.a, EG_MEM_UUID_LEN + 1);
    eg_uuid_v4(s);
    return s;
}

/* Write document doc to bank with n units whose ids go to ids[], each linked to the previous one
 * (semantic) and to link_to (causes) when given, all mentioning one entity named ent. */
static void write_doc(const char *bank, const char *doc, size_t n, const char **ids,
                      const char *link_to, const char *ent)
{
    eg_mem_new_unit_t *u = eg_arena_calloc(&E.a, n * sizeof(*u));
    eg_mem_link_t *l = eg_arena_calloc(&E.a, 2 * n * sizeof(*l));
    eg_mem_entity_ref_t ref = {
        .id = uuid(), .name = ent, .is_new = true, .mentions = (int64_t)n, .seen_at = T0};
    const char **eids = eg_arena_alloc(&E.a, sizeof(char *));
    static const char *tags[] = {"team"}, *chunks[] = {"chunk"};
    res_t res = {0};

    eids[0] = ref.id;
    for (size_t i = 0; i < n; i++) {
        float *v = eg_arena_alloc(&E.a, DIM * sizeof(float));
        size_t nl = 0;
        for (int k = 0; k < DIM; k++)
            v[k] = (float)((i + (size_t)k) % 3) + 0.5f;
        ids[i] = uuid();
        if (i > 0)
            l[2 * i + nl++] = (eg_mem_link_t){ids[i - 1], EG_LINK_SEMANTIC, 0.8f};
        if (link_to)
            l[2 * i + nl++] = (eg_mem_link_t){link_to, EG_LINK_CAUSES, 0.6f};
        u[i].unit = (eg_mem_unit_t){
            .id = ids[i],
            .text =
                eg_arena_printf(&E.a, "%s visited Lisbon number %zu with the orchestra", ent, i),
            .context = "travel",
            .type = EG_FACT_WORLD,
            .occurred_start = T0 + (int64_t)i * 1000000,
            .occurred_end = EG_MEM_TIME_NONE,
            .mentioned_at = T0 + (int64_t)i * 10000,
            .created_at = T0,
            .updated_at = T0,
            .tags = tags,
            .ntags = 1,
            .entity_ids = eids,
            .nentities = 1,
            .document_id = doc,
            .invalidated_at = EG_MEM_TIME_NONE,
            .edited_at = EG_MEM_TIME_NONE,
            .proof_count = 1,
        };
        u[i].vec = v;
        u[i].links = &l[2 * i];
        u[i].nlinks = nl;
    }
    eg_mem_write_t w = {
        .doc = {.id = doc,
                .original_text = "chunk",
                .created_at = T0,
                .updated_at = T0,
                .text_length = 5},
        .replace = true,
        .chunks = chunks,
        .nchunks = 1,
        .units = u,
        .nunits = n,
        .entities = &ref,
        .nentities = 1,
        .dim = DIM,
        .embed_model = "test",
    };
    cr_assert_eq(eg_mem_write(E.ws, bank, &w, write_done, &res), 0);
    wait_for(&res.done);
    cr_assert_eq(res.err, 0, "write: %s", eg_strerror(res.err));
}

/* ---- acquiring --------------------------------------------------------------------------- */

typedef struct {
    int calls, err;
    eg_mindex_t *ix;
} acq_t;

static void acquired(void *udata, int err, eg_mindex_t *ix)
{
    acq_t *a = udata;
    a->calls++;
    a->err = err;
    a->ix = ix;
    if (err)
        cr_assert_null(ix);
    else
        cr_assert_not_null(ix);
}

/* Acquire bank and wait; the index is valid until the loop runs again. */
static eg_mindex_t *acquire(const char *bank)
{
    acq_t a = {0};

    cr_assert_eq(eg_mindex_acquire(E.ws, bank, acquired, &a), 0);
    wait_for(&a.calls);
    cr_assert_eq(a.err, 0, "acquire: %s", eg_strerror(a.err));
    cr_assert_eq(a.calls, 1);
    return a.ix;
}

static uint32_t slot(eg_mindex_t *ix, const char *id)
{
    uint32_t s = EG_MINDEX_NONE;
    cr_assert_eq(eg_mindex_find(ix, id, &s), 0, "unit %s is not in the index", id);
    return s;
}

static const eg_mindex_link_t *link_to(eg_mindex_t *ix, const char *from, const char *to)
{
    const eg_mindex_unit_t *u = eg_mindex_unit(ix, slot(ix, from));
    uint32_t t = slot(ix, to);

    for (uint32_t i = 0; i < u->nlinks; i++)
        if (u->links[i].slot == t)
            return &u->links[i];
    return NULL;
}

static size_t bm25_hits(eg_mindex_t *ix, const char *term)
{
    eg_bm25_hit_t h[64];
    eg_bm25_query_t q = {.k = 64};
    return eg_bm25_search(eg_mindex_bm25(ix), &term, 1, &q, h);
}

TestSuite(mindex_load, .init = t_redis_setup, .fini = t_redis_teardown, .timeout = 60);

Test(mindex_load, first_acquire_sees_everything)
{
    const char *ids[3];
    eg_mindex_t *ix;
    uint32_t e, d;
    float v[DIM];
    acq_t a1 = {0}, a2 = {0};

    start(t_url(), 0, 2000);
    write_doc(E.bank, "doc-1", 3, ids, NULL, "Alice");
    /* Two acquires at once share one load. */
    cr_assert_eq(eg_mindex_acquire(E.ws, E.bank, acquired, &a1), 0);
    cr_assert_eq(eg_mindex_acquire(E.ws, E.bank, acquired, &a2), 0);
    wait_for(&a2.calls);
    wait_for(&a1.calls);
    cr_assert_eq(a1.err, 0);
    cr_assert_eq(a1.ix, a2.ix);
    ix = acquire(E.bank);
    cr_assert_eq(a1.calls + a2.calls, 2);
    cr_assert_eq(eg_mindex_count(ix), 3);
    cr_assert_eq(eg_mindex_dim(ix), DIM);
    cr_assert_eq(eg_mindex_unit(ix, slot(ix, ids[1]))->occurred_start, T0 + 1000000);
    cr_assert_eq(eg_vindex_get(eg_mindex_vectors(ix), slot(ix, ids[2]), v), 0);
    cr_assert_float_eq(v[0], 2.5f, 0.05f);
    /* Links on both sides. */
    cr_assert_not_null(link_to(ix, ids[1], ids[0]));
    cr_assert_not_null(link_to(ix, ids[0], ids[1]));
    cr_assert_eq(link_to(ix, ids[0], ids[1])->type, EG_LINK_SEMANTIC);
    cr_assert_null(link_to(ix, ids[0], ids[2]));
    /* The entity with its statistics and units; the document; tags; BM25 of text + context. */
    cr_assert_eq(eg_mindex_entity_by_folded(ix, "alice", &e), 0);
    cr_assert_eq(eg_mindex_entity(ix, e)->mention_count, 3);
    cr_assert_eq(eg_mindex_entity(ix, e)->nslots, 3);
    cr_assert_eq(eg_mindex_doc_by_id(ix, "doc-1", &d), 0);
    cr_assert_eq(eg_mindex_doc(ix, d)->nunits, 3);
    cr_assert_eq(eg_mindex_doc(ix, d)->text_length, 5);
    cr_assert_eq(eg_mindex_tag_units(ix, eg_mindex_tag(ix, "team")), 3);
    cr_assert_eq(bm25_hits(ix, "orchestra"), 3);
    cr_assert_eq(bm25_hits(ix, "travel"), 3);
    cr_assert_gt(eg_mindex_total_bytes(NULL), 0);
    stop();
}

Test(mindex_load, later_writes_are_caught_up)
{
    const char *a[3], *b[2], *c[1];
    eg_mindex_t *ix;
    res_t res = {0};
    uint32_t e;
    size_t nbanks;

    start(t_url(), 0, 2000);
    write_doc(E.bank, "doc-a", 3, a, NULL, "Alice");
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 3);

    /* Another writer: the next acquire sees it, with the reverse links on the old units. */
    write_doc(E.bank, "doc-b", 2, b, a[0], "Bob");
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 5);
    cr_assert_eq(link_to(ix, a[0], b[0])->type, EG_LINK_CAUSED_BY);
    cr_assert_eq(link_to(ix, b[1], a[0])->type, EG_LINK_CAUSES);
    cr_assert_eq(eg_mindex_entity_by_folded(ix, "bob", &e), 0);
    cr_assert_eq(eg_mindex_entity(ix, e)->nslots, 2);
    cr_assert_eq(eg_mindex_total_bytes(&nbanks), eg_mindex_bytes(ix));
    cr_assert_eq(nbanks, 1);

    /* A unit deleted: gone, and so are the links to it. */
    cr_assert_eq(eg_mem_units_delete(E.ws, E.bank, &b[0], 1, count_done, &res), 0);
    wait_for(&res.done);
    cr_assert_eq(res.err, 0);
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 4);
    cr_assert_eq(eg_mindex_find(ix, b[0], NULL), EG_ENOTFOUND);
    cr_assert_eq(eg_mindex_unit(ix, slot(ix, b[1]))->nlinks, 1); /* a[0] only */

    /* Document tags changed: the units follow. */
    res = (res_t){0};
    cr_assert_eq(
        eg_mem_doc_set_tags(E.ws, E.bank, "doc-a", (const char *[]){"moved"}, 1, count_done, &res),
        0);
    wait_for(&res.done);
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_tag_units(ix, eg_mindex_tag(ix, "moved")), 3);
    cr_assert_eq(eg_mindex_tag_units(ix, eg_mindex_tag(ix, "team")), 1);

    /* A document deleted with its units; the entity that only it mentioned goes too. */
    res = (res_t){0};
    cr_assert_eq(eg_mem_doc_delete(E.ws, E.bank, "doc-b", count_done, &res), 0);
    wait_for(&res.done);
    cr_assert_eq(res.err, 0);
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 3);
    cr_assert_eq(eg_mindex_doc_by_id(ix, "doc-b", NULL), EG_ENOTFOUND);
    cr_assert_eq(eg_mindex_entity_by_folded(ix, "bob", NULL), EG_ENOTFOUND);
    cr_assert_eq(eg_mindex_unit(ix, slot(ix, a[0]))->nlinks, 1);

    /* A new document again, then clear: a reset entry, so a reload to an empty index. */
    write_doc(E.bank, "doc-c", 1, c, NULL, "Carol");
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 4);
    res = (res_t){0};
    cr_assert_eq(eg_mem_clear(E.ws, E.bank, 7, count_done, &res), 0);
    wait_for(&res.done);
    cr_assert_eq(res.err, 0);
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 0);
    cr_assert_eq(eg_mindex_entity_by_folded(ix, "alice", NULL), EG_ENOTFOUND);
    cr_assert_eq(eg_mindex_doc_by_id(ix, "doc-a", NULL), EG_ENOTFOUND);
    stop();
}

Test(mindex_load, deleted_and_recreated_bank)
{
    const char *a[2], *b[1];
    eg_mindex_t *ix;
    res_t res = {0};

    start(t_url(), 0, 2000);
    /* A bank that does not exist is an empty index. */
    ix = acquire("no-such-bank");
    cr_assert_eq(eg_mindex_count(ix), 0);

    write_doc(E.bank, "doc-a", 2, a, NULL, "Alice");
    cr_assert_eq(eg_mindex_count(acquire(E.bank)), 2);
    cr_assert_eq(eg_bank_delete(E.ws, E.bank, deleted_done, &res), 0);
    wait_for(&res.done);
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 0);
    cr_assert_eq(eg_mindex_entity_by_folded(ix, "alice", NULL), EG_ENOTFOUND);

    /* Re-created, a different bank: only its own units. */
    usleep(2000); /* another created stamp (ms) */
    bank_put(E.bank);
    write_doc(E.bank, "doc-b", 1, b, NULL, "Bob");
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 1);
    slot(ix, b[0]);
    stop();
}

Test(mindex_load, reset_entry_and_trimmed_stream_reload)
{
    const char *a[3], *b[1];
    eg_mindex_t *ix;

    start(t_url(), 0, 2000);
    write_doc(E.bank, "doc-a", 3, a, NULL, "Alice");
    cr_assert_eq(eg_mindex_count(acquire(E.bank)), 3);

    /* A record removed behind the stream's back stays until something says reload. */
    cmd("HDEL %s %s", key(E.bank, "u"), a[2]);
    cr_assert_eq(eg_mindex_count(acquire(E.bank)), 3);
    cmd("XADD %s * reset 1", key(E.bank, "x"));
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 2);
    cr_assert_eq(eg_mindex_find(ix, a[2], NULL), EG_ENOTFOUND);

    /* Entries past our position trimmed away: reload. */
    write_doc(E.bank, "doc-b", 1, b, NULL, "Bob");
    cmd("HDEL %s %s", key(E.bank, "u"), a[1]);
    cmd("XTRIM %s MAXLEN 0", key(E.bank, "x"));
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 2);
    slot(ix, b[0]);
    slot(ix, a[0]);
    cr_assert_eq(eg_mindex_find(ix, a[1], NULL), EG_ENOTFOUND);

    /* An empty stream with nothing missed is no reason to reload. */
    cmd("HDEL %s %s", key(E.bank, "u"), a[0]);
    cr_assert_eq(eg_mindex_count(acquire(E.bank)), 2);
    stop();
}

Test(mindex_load, large_bank_loads_in_slices_while_writes_continue)
{
    enum { DOCS = 6, PER = 500 };
    const char **ids = malloc(DOCS * PER * sizeof(char *)), *late[2];
    acq_t a1 = {0}, a2 = {0};
    eg_mindex_t *ix;
    uint32_t e;

    start(t_url(), 0, 5000);
    for (int d = 0; d < DOCS; d++)
        write_doc(E.bank, eg_arena_printf(&E.a, "doc-%d", d), PER, ids + d * PER, NULL, "Alice");
    /* The load starts; a write lands while it runs; an acquire after that write sees it. */
    cr_assert_eq(eg_mindex_acquire(E.ws, E.bank, acquired, &a1), 0);
    write_doc(E.bank, "late", 2, late, ids[0], "Zed");
    cr_assert_eq(eg_mindex_acquire(E.ws, E.bank, acquired, &a2), 0);
    wait_for(&a2.calls);
    wait_for(&a1.calls);
    cr_assert_eq(a1.err, 0);
    cr_assert_eq(a2.err, 0);
    ix = a2.ix;
    cr_assert_eq(eg_mindex_count(ix), DOCS * PER + 2);
    cr_assert_eq(eg_mindex_entity_by_folded(ix, "alice", &e), 0);
    cr_assert_eq(eg_mindex_entity(ix, e)->nslots, DOCS * PER);
    cr_assert_eq(eg_mindex_entity(ix, e)->mention_count, DOCS * PER);
    cr_assert_eq(link_to(ix, ids[0], late[1])->type, EG_LINK_CAUSED_BY);
    cr_assert_not_null(link_to(ix, ids[PER - 1], ids[PER - 2]));
    cr_assert_eq(bm25_hits(ix, "orchestra"), 64);
    free(ids);
    stop();
}

Test(mindex_load, redis_failures_reach_the_callback_once)
{
    const char *a[2], *b[1];
    acq_t x = {0};
    eg_mindex_t *ix;
    int rc;

    start(t_private_url(), 0, 300);
    write_doc(E.bank, "doc-a", 2, a, NULL, "Alice");
    cr_assert_eq(eg_mindex_count(acquire(E.bank)), 2);

    /* Redis stops answering: the round times out and the acquire gets the error, once. */
    kill(t_own.pid, SIGSTOP);
    cr_assert_eq(eg_mindex_acquire(E.ws, E.bank, acquired, &x), 0);
    wait_for(&x.calls);
    cr_assert_eq(x.err, EG_ESTORETIMEOUT);
    kill(t_own.pid, SIGCONT);
    for (int i = 0; i < 30; i++)
        uv_run(&E.loop, UV_RUN_ONCE);
    cr_assert_eq(x.calls, 1);

    /* Back: the index is intact and catches up. */
    wait_up();
    write_doc(E.bank, "doc-b", 1, b, NULL, "Bob");
    ix = acquire(E.bank);
    cr_assert_eq(eg_mindex_count(ix), 3);

    /* Redis gone: an acquire fails now or through its callback, never both, never twice. */
    t_redis_kill(&t_own);
    x = (acq_t){0};
    rc = eg_mindex_acquire(E.ws, E.bank, acquired, &x);
    if (rc == 0) {
        wait_for(&x.calls);
        cr_assert_neq(x.err, 0);
    } else {
        cr_assert_eq(rc, EG_EUNAVAIL);
    }
    for (int i = 0; i < 20; i++)
        uv_run(&E.loop, UV_RUN_NOWAIT);
    cr_assert_eq(x.calls, rc == 0 ? 1 : 0);
    /* Once the store knows, acquires fail at once. */
    E.deadline = uv_now(&E.loop) + 10000;
    while (eg_store_up()) {
        cr_assert(uv_now(&E.loop) < E.deadline);
        uv_run(&E.loop, UV_RUN_ONCE);
    }
    cr_assert_eq(eg_mindex_acquire(E.ws, E.bank, acquired, &x), EG_EUNAVAIL);
    stop();
}

/* HSCAN calls the server has run: each full load makes some, a catch-up none. */
static long long hscans(void)
{
    const char *p = strstr(cmd("INFO commandstats")->str, "cmdstat_hscan:calls=");
    return p ? atoll(p + strlen("cmdstat_hscan:calls=")) : 0;
}

Test(mindex_load, lru_eviction_under_the_cap)
{
    const char *ids[3][20], *banks[3];
    eg_mindex_t *ix;
    size_t n, one;
    long long h;

    /* A cap of one byte: every bank but the one just served is evicted. */
    start(t_private_url(), 1, 2000);
    for (int i = 0; i < 3; i++) {
        banks[i] = eg_arena_printf(&E.a, "%s-%d", E.bank, i);
        bank_put(banks[i]);
        write_doc(banks[i], "d", 20, ids[i], NULL, "Alice");
    }
    ix = acquire(banks[0]);
    one = eg_mindex_total_bytes(&n);
    cr_assert_eq(n, 1);
    cr_assert_eq(one, eg_mindex_bytes(ix));
    ix = acquire(banks[1]);
    eg_mindex_total_bytes(&n);
    cr_assert_eq(n, 1);
    cr_assert_eq(eg_mindex_count(ix), 20);
    h = hscans();
    ix = acquire(banks[0]); /* evicted: loads again */
    cr_assert_gt(hscans(), h);
    cr_assert_eq(eg_mindex_count(ix), 20);
    eg_mindex_total_bytes(&n);
    cr_assert_eq(n, 1);
    eg_mindex_forget(E.ws, banks[0]);
    cr_assert_eq(eg_mindex_total_bytes(&n), 0);
    cr_assert_eq(n, 0);

    /* Room for two: the least recently acquired one goes. */
    eg_mindex_shutdown();
    cr_assert_eq(eg_mindex_init(&E.loop, one * 5 / 2), 0);
    acquire(banks[0]);
    acquire(banks[1]);
    acquire(banks[0]);
    acquire(banks[2]);
    eg_mindex_total_bytes(&n);
    cr_assert_eq(n, 2);
    h = hscans();
    acquire(banks[0]); /* kept: a catch-up only */
    acquire(banks[2]);
    cr_assert_eq(hscans(), h);
    acquire(banks[1]); /* evicted: a load, which evicts banks[0] */
    cr_assert_gt(hscans(), h);
    h = hscans();
    acquire(banks[2]);
    cr_assert_eq(hscans(), h);
    acquire(banks[0]);
    cr_assert_gt(hscans(), h);
    stop();
}

Test(mindex_load, shutdown_cancels_a_round_in_flight)
{
    const char *a[2];
    acq_t x = {0};

    start(t_url(), 0, 2000);
    write_doc(E.bank, "d", 2, a, NULL, "Alice");
    cr_assert_eq(eg_mindex_acquire(E.ws, E.bank, acquired, &x), 0);
    eg_mindex_shutdown();
    wait_for(&x.calls);
    cr_assert_eq(x.err, EG_ECANCELED);
    cr_assert_eq(eg_mindex_acquire(E.ws, E.bank, acquired, &x), EG_EUNAVAIL);
    cr_assert_eq(eg_mindex_init(&E.loop, 0), 0); /* stop() shuts the new one down */
    for (int i = 0; i < 20; i++)
        uv_run(&E.loop, UV_RUN_NOWAIT);
    cr_assert_eq(x.calls, 1);
    stop();
}
