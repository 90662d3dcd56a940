/* Consolidation (engram/consolidate.h): the scopes of a fact, and against real Redis the state
 * machine (pending -> done, failed -> pending by recover, invalidated facts skipped), runs
 * (deduplicated requests, the worker) and the builtin path (repeated facts become an observation
 * with proof_count and sources, another scope's repeat does not, a later repeat joins it with a
 * history entry), scopes, and clearing one memory's observations. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engram/bank.h"
#include "engram/consolidate.h"
#include "engram/embed.h"
#include "engram/error.h"
#include "engram/memories.h"
#include "engram/mindex.h"
#include "engram/mstore.h"
#include "engram/ops.h"
#include "engram/store.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/consolidate_int.h"

#include "redis_fixture.h"

#define DIM EG_EMBED_DEFAULT_DIM /* the builtin embedder's, which observations are embedded with   \
                                  */

/* ---- scopes of a fact (pure) ---------------------------------------------------------------- */

static eg_arena_t g_a;

static void scopes_init(void)
{
    eg_arena_init(&g_a);
}

static void scopes_fini(void)
{
    eg_arena_destroy(&g_a);
}

static size_t scopes_of(const char *mode_json, const char *const *tags, size_t n,
                        eg_obs_scope_t *out)
{
    cJSON *mode = mode_json ? cJSON_Parse(mode_json) : NULL;
    size_t k = eg_consolidate_fact_scopes(&g_a, tags, n, mode, out);

    cJSON_Delete(mode);
    return k;
}

static void expect_scope(const eg_obs_scope_t *s, size_t n, ...)
{
    va_list ap;

    cr_assert_eq(s->ntags, n);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(s->tags[i], va_arg(ap, const char *));
    va_end(ap);
}

Test(scopes, modes, .init = scopes_init, .fini = scopes_fini)
{
    const char *tags[] = {"user:1", "proj:a", "user:1"};
    eg_obs_scope_t out[EG_CONSOLIDATE_SCOPES_MAX];

    /* Default and "combined": the whole tag set, sorted, duplicates dropped. */
    cr_assert_eq(scopes_of(NULL, tags, 3, out), 1);
    expect_scope(&out[0], 2, "proj:a", "user:1");
    cr_assert_eq(scopes_of("\"combined\"", tags, 2, out), 1);
    expect_scope(&out[0], 2, "proj:a", "user:1");
    cr_assert_eq(scopes_of("\"per_tag\"", tags, 3, out), 2);
    expect_scope(&out[0], 1, "user:1");
    expect_scope(&out[1], 1, "proj:a");
    cr_assert_eq(scopes_of("\"all_combinations\"", tags, 2, out), 3);
    expect_scope(&out[2], 2, "proj:a", "user:1");
    cr_assert_eq(scopes_of("\"shared\"", tags, 2, out), 1);
    expect_scope(&out[0], 0);
    cr_assert_eq(scopes_of("[[\"x\",\"a\"],[\"a\",\"x\"],[\"y\"]]", tags, 2, out), 2);
    expect_scope(&out[0], 2, "a", "x");
    expect_scope(&out[1], 1, "y");
    /* An untagged fact has the untagged scope. */
    cr_assert_eq(scopes_of("\"per_tag\"", NULL, 0, out), 1);
    expect_scope(&out[0], 0);
}

Test(scopes, request_validation)
{
    cJSON *ok = cJSON_Parse("[[\"a\"],[]]"), *bad1 = cJSON_Parse("[\"a\"]"),
          *bad2 = cJSON_Parse("[[1]]"), *bad3 = cJSON_Parse("{}");

    cr_assert(eg_consolidate_scopes_valid(NULL));
    cr_assert(eg_consolidate_scopes_valid(ok));
    cr_assert_not(eg_consolidate_scopes_valid(bad1));
    cr_assert_not(eg_consolidate_scopes_valid(bad2));
    cr_assert_not(eg_consolidate_scopes_valid(bad3));
    cJSON_Delete(ok);
    cJSON_Delete(bad1);
    cJSON_Delete(bad2);
    cJSON_Delete(bad3);
}

/* ---- against Redis ----------------------------------------------------------------------------
 */

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    eg_arena_t a;
    char ws[64], bank[64];
    int64_t now;
} E;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void wait_for(const int *done)
{
    uint64_t deadline = uv_now(&E.loop) + 20000;

    while (!*done) {
        cr_assert(uv_now(&E.loop) < deadline, "timed out");
        uv_run(&E.loop, UV_RUN_ONCE);
    }
}

static void bank_done(void *udata, int err, const eg_bank_t *b, bool created)
{
    (void)b;
    (void)created;
    cr_assert_eq(err, 0, "bank: %s", eg_strerror(err));
    *(int *)udata = 1;
}

static void setup(void)
{
    eg_store_opts_t o = {NULL, 2, 2000, 1000};
    char r[9];
    int done = 0;

    t_redis_setup();
    o.url = t_url();
    memset(&E, 0, sizeof(E));
    eg_arena_init(&E.a);
    cr_assert_eq(uv_loop_init(&E.loop), 0);
    uv_timer_init(&E.loop, &E.tick);
    uv_timer_start(&E.tick, on_tick, 5, 5);
    cr_assert_eq(eg_store_init(&E.loop, &o), 0);
    cr_assert_eq(eg_mindex_init(&E.loop, 0), 0);
    uint64_t deadline = uv_now(&E.loop) + 10000;
    while (!eg_store_up()) {
        cr_assert(uv_now(&E.loop) < deadline, "store did not come up");
        uv_run(&E.loop, UV_RUN_ONCE);
    }
    cr_assert_eq(eg_consolidate_start(&E.loop), 0);
    eg_random_base62(r, 8);
    snprintf(E.ws, sizeof(E.ws), "ws-%d-%s", (int)getpid(), r);
    snprintf(E.bank, sizeof(E.bank), "cons-%s", r);
    cr_assert_eq(eg_bank_put(E.ws, E.bank, NULL, bank_done, &done), 0);
    wait_for(&done);
    E.now = eg_now_ms() * 1000;
}

static void set_flag(void *udata)
{
    *(int *)udata = 1;
}

static void teardown(void)
{
    int done = 0, stopped = 0;

    eg_consolidate_stop(set_flag, &stopped);
    wait_for(&stopped);
    eg_mindex_shutdown();
    eg_store_shutdown(set_flag, &done);
    uv_close((uv_handle_t *)&E.tick, NULL);
    wait_for(&done);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    t_loop_close_checked(&E.loop);
    eg_arena_destroy(&E.a);
    t_redis_teardown();
}

static const char *uuid(void)
{
    char *s = eg_arena_alloc(&E.a, EG_MEM_UUID_LEN + 1);

    eg_uuid_v4(s);
    return s;
}

static void write_done(void *udata, int err, const eg_mem_write_result_t *r)
{
    (void)r;
    cr_assert_eq(err, 0, "write: %s", eg_strerror(err));
    *(int *)udata = 1;
}

/* Write one document holding one fact; returns the fact's id. */
static const char *fact(const char *text, const char *tag, int64_t mentioned, bool invalidated)
{
    const char *id = uuid(), *doc = uuid();
    const char **tags = eg_arena_alloc(&E.a, sizeof(*tags));
    float *v = eg_arena_alloc(&E.a, DIM * sizeof(float));
    eg_mem_new_unit_t nu;
    int done = 0;

    tags[0] = tag;
    eg_embed_builtin_vec(text, strlen(text), v, DIM);
    memset(&nu, 0, sizeof(nu));
    nu.unit = (eg_mem_unit_t){
        .id = id,
        .text = text,
        .context = "",
        .type = EG_FACT_WORLD,
        .occurred_start = EG_MEM_TIME_NONE,
        .occurred_end = EG_MEM_TIME_NONE,
        .mentioned_at = mentioned,
        .created_at = mentioned,
        .updated_at = mentioned,
        .tags = tags,
        .ntags = tag ? 1 : 0,
        .invalidated = invalidated,
        .invalidated_at = invalidated ? mentioned : EG_MEM_TIME_NONE,
        .edited_at = EG_MEM_TIME_NONE,
        .proof_count = 1,
    };
    nu.vec = v;
    eg_mem_write_t w = {
        .doc = {.id = doc, .created_at = mentioned, .updated_at = mentioned},
        .units = &nu,
        .nunits = 1,
        .dim = DIM,
        .embed_model = "builtin-hash-v1",
    };
    cr_assert_eq(eg_mem_write(E.ws, E.bank, &w, write_done, &done), 0);
    wait_for(&done);
    return id;
}

typedef struct {
    int done, err;
    char op[64];
    bool dedup;
} queued_t;

static void on_queued(void *udata, int err, const char *op_id, bool dedup)
{
    queued_t *q = udata;

    q->err = err;
    if (op_id)
        snprintf(q->op, sizeof(q->op), "%s", op_id);
    q->dedup = dedup;
    q->done = 1;
}

typedef struct {
    int done, err;
    eg_op_status_t status;
    char error[256];
} opst_t;

static void on_op(void *udata, int err, const eg_op_t *op)
{
    opst_t *s = udata;

    s->err = err;
    if (op) {
        s->status = op->status;
        snprintf(s->error, sizeof(s->error), "%s", op->error);
    }
    s->done = 1;
}

/* Run the loop until the operation is final; returns its status. */
static eg_op_status_t wait_op(const char *op)
{
    char scope[160];
    uint64_t deadline = uv_now(&E.loop) + 30000;

    snprintf(scope, sizeof(scope), "%s/%s", E.ws, E.bank);
    for (;;) {
        opst_t s = {0};

        cr_assert_eq(eg_op_get("b", scope, op, on_op, &s), 0);
        wait_for(&s.done);
        cr_assert_eq(s.err, 0);
        if (s.status == EG_OP_COMPLETED || s.status == EG_OP_FAILED || s.status == EG_OP_CANCELLED)
            return s.status;
        cr_assert(uv_now(&E.loop) < deadline, "operation %s did not finish", op);
        for (int i = 0; i < 20; i++)
            uv_run(&E.loop, UV_RUN_ONCE);
    }
}

static const char *run_once(void)
{
    queued_t q = {0};

    cr_assert_eq(eg_consolidate_enqueue(E.ws, E.bank, NULL, on_queued, &q), 0);
    wait_for(&q.done);
    cr_assert_eq(q.err, 0);
    cr_assert_eq(wait_op(q.op), EG_OP_COMPLETED);
    return eg_arena_strdup(&E.a, q.op);
}

static eg_mem_unit_t *unit_copy(eg_arena_t *a, const eg_mem_unit_t *u);

typedef struct {
    int done, err;
    size_t n, total;
    const eg_mem_unit_t *units[16];
    eg_arena_t a;
} lst_t;

static void on_list(void *udata, int err, const eg_memory_t *items, size_t n, size_t total)
{
    lst_t *l = udata;

    l->err = err;
    l->n = n;
    l->total = total;
    for (size_t i = 0; i < n && i < 16; i++) {
        l->units[i] = unit_copy(&l->a, items[i].unit);
    }
    l->done = 1;
}

/* A parsed copy of a unit that lives in a (printed and parsed back, as the store does). */
static eg_mem_unit_t *unit_copy(eg_arena_t *a, const eg_mem_unit_t *u)
{
    eg_mem_unit_t *c = eg_arena_alloc(a, sizeof(*c));
    cJSON *j = eg_mem_unit_json(u);
    char *s = cJSON_PrintUnformatted(j);

    cJSON_Delete(j);
    cr_assert_eq(eg_mem_unit_parse(a, s, strlen(s), c), 0);
    eg_arena_defer(a, free, s);
    return c;
}

static lst_t *list(unsigned types, eg_mem_consolidation_t cs, eg_mem_state_t state)
{
    lst_t *l = eg_arena_calloc(&E.a, sizeof(*l));
    eg_memories_query_t q = {.types = types, .consolidation = cs, .state = state, .limit = 16};

    eg_arena_init(&l->a);
    eg_arena_defer(&E.a, (void (*)(void *))eg_arena_destroy, &l->a);
    cr_assert_eq(eg_memories_list(E.ws, E.bank, &q, on_list, l), 0);
    wait_for(&l->done);
    cr_assert_eq(l->err, 0);
    return l;
}

#define FACTS ((1u << EG_FACT_WORLD) | (1u << EG_FACT_EXPERIENCE))
#define OBS   (1u << EG_FACT_OBSERVATION)

static bool has(const eg_mem_unit_t *u, const char *id)
{
    for (size_t i = 0; i < u->nsources; i++)
        if (strcmp(u->source_ids[i], id) == 0)
            return true;
    return false;
}

typedef struct {
    int done, err;
    int64_t n;
} cnt_t;

static void on_count(void *udata, int err, int64_t n)
{
    cnt_t *c = udata;

    c->err = err;
    c->n = n;
    c->done = 1;
}

typedef struct {
    int done, err;
    size_t n, counts[8], ntags[8];
    char first_tag[8][64];
} scopes_t;

static void on_scopes(void *udata, int err, const eg_obs_scope_t *s, size_t n)
{
    scopes_t *r = udata;

    r->err = err;
    r->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        r->counts[i] = s[i].count;
        r->ntags[i] = s[i].ntags;
        snprintf(r->first_tag[i], 64, "%s", s[i].ntags ? s[i].tags[0] : "");
    }
    r->done = 1;
}

static void on_stats(void *udata, int err, const eg_memstats_t *st)
{
    eg_memstats_t *out = udata;

    cr_assert_eq(err, 0);
    *out = *st;
    out->documents = 1; /* done marker (documents > 0 here anyway) */
}

Test(consolidate, builtin_runs, .init = setup, .fini = teardown, .timeout = 60)
{
    int64_t m = E.now - 3600 * EG_TEXT_US_PER_SEC;
    const char *f1 = fact("Alice likes green tea in the morning.", "user:1", m, false);
    const char *f2 = fact("Alice likes green tea in the morning.", "user:1", m + 10, false);
    const char *f3 = fact("Bob fixes the office printer on Fridays.", "user:1", m + 20, false);
    const char *f4 = fact("Alice likes green tea in the morning.", "user:2", m + 30, false);
    const char *f5 = fact("Alice likes green tea in the morning.", "user:1", m + 40, true);
    eg_memstats_t st = {0};
    lst_t *l;
    const eg_mem_unit_t *o;

    (void)f3;
    (void)f4;
    (void)f5;
    /* Everything valid is pending; the invalidated fact is not counted. */
    l = list(FACTS, EG_MEM_CONSOLIDATION_PENDING, EG_MEM_STATE_VALID);
    cr_assert_eq(l->total, 4);
    cr_assert_eq(eg_memories_stats(E.ws, E.bank, on_stats, &st), 0);
    wait_for((int *)&st.documents);
    cr_assert_eq(st.pending_consolidation, 4);
    cr_assert_eq(st.last_consolidated_ms, 0);

    run_once();

    cr_assert_eq(list(FACTS, EG_MEM_CONSOLIDATION_PENDING, EG_MEM_STATE_VALID)->total, 0);
    cr_assert_eq(list(FACTS, EG_MEM_CONSOLIDATION_DONE, EG_MEM_STATE_VALID)->total, 4);
    /* Invalidated facts are skipped: still pending. */
    cr_assert_eq(list(FACTS, EG_MEM_CONSOLIDATION_PENDING, EG_MEM_STATE_INVALIDATED)->total, 1);
    /* Only the repeat in user:1 made an observation: the earliest fact's text, two sources. */
    l = list(OBS, EG_MEM_CONSOLIDATION_ANY, EG_MEM_STATE_VALID);
    cr_assert_eq(l->total, 1);
    o = l->units[0];
    cr_assert_str_eq(o->text, "Alice likes green tea in the morning.");
    cr_assert_eq(o->proof_count, 2);
    cr_assert_eq(o->nsources, 2);
    cr_assert(has(o, f1) && has(o, f2));
    cr_assert_eq(o->ntags, 1);
    cr_assert_str_eq(o->tags[0], "user:1");
    cr_assert_null(o->history);
    memset(&st, 0, sizeof(st));
    cr_assert_eq(eg_memories_stats(E.ws, E.bank, on_stats, &st), 0);
    wait_for((int *)&st.documents);
    cr_assert_eq(st.pending_consolidation, 0);
    cr_assert_eq(st.units[EG_FACT_OBSERVATION], 1);
    cr_assert_gt(st.last_consolidated_ms, 0);

    /* A later repeat joins it: proof 3, one history entry. */
    const char *f6 = fact("Alice likes green tea in the morning.", "user:1", m + 50, false);
    run_once();
    l = list(OBS, EG_MEM_CONSOLIDATION_ANY, EG_MEM_STATE_VALID);
    cr_assert_eq(l->total, 1);
    o = l->units[0];
    cr_assert_eq(o->proof_count, 3);
    cr_assert(has(o, f6));
    cr_assert(cJSON_IsArray(o->history));
    cr_assert_eq(cJSON_GetArraySize(o->history), 1);

    /* Scopes: one observation under user:1. */
    scopes_t sc = {0};
    cr_assert_eq(eg_consolidate_scopes(E.ws, E.bank, on_scopes, &sc), 0);
    wait_for(&sc.done);
    cr_assert_eq(sc.n, 1);
    cr_assert_eq(sc.counts[0], 1);
    cr_assert_str_eq(sc.first_tag[0], "user:1");

    /* Clearing f2's observations deletes it and makes its sources pending again. */
    cnt_t c = {0};
    cr_assert_eq(eg_consolidate_clear_memory(E.ws, E.bank, f2, on_count, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.err, 0);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(list(OBS, EG_MEM_CONSOLIDATION_ANY, EG_MEM_STATE_VALID)->total, 0);
    cr_assert_eq(list(FACTS, EG_MEM_CONSOLIDATION_PENDING, EG_MEM_STATE_VALID)->total, 3);
    /* An unknown memory. */
    cnt_t c2 = {0};
    cr_assert_eq(eg_consolidate_clear_memory(E.ws, E.bank, uuid(), on_count, &c2), 0);
    wait_for(&c2.done);
    cr_assert_eq(c2.err, EG_ENOTFOUND);

    /* The next run rebuilds it from the three repeats. */
    run_once();
    l = list(OBS, EG_MEM_CONSOLIDATION_ANY, EG_MEM_STATE_VALID);
    cr_assert_eq(l->total, 1);
    cr_assert_eq(l->units[0]->proof_count, 3);

    /* Clear all: observations go, their sources are pending again. */
    cnt_t c3 = {0};
    cr_assert_eq(eg_consolidate_clear(E.ws, E.bank, on_count, &c3), 0);
    wait_for(&c3.done);
    cr_assert_eq(c3.n, 1);
    cr_assert_eq(list(FACTS, EG_MEM_CONSOLIDATION_PENDING, EG_MEM_STATE_VALID)->total, 3);
}

static void on_applied(void *udata, int err, int64_t facts, int64_t puts, int64_t dels)
{
    cnt_t *c = udata;

    (void)puts;
    (void)dels;
    c->err = err;
    c->n = facts;
    c->done = 1;
}

static void on_units(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    eg_mem_unit_t **out = udata;

    cr_assert_eq(err, 0);
    cr_assert_eq(n, 1);
    cr_assert_not_null(units[0]);
    *out = unit_copy(&E.a, units[0]);
}

Test(consolidate, failed_and_recover, .init = setup, .fini = teardown, .timeout = 60)
{
    int64_t m = E.now - 3600 * EG_TEXT_US_PER_SEC;
    const char *f1 = fact("Carol moved to Lisbon last spring.", NULL, m, false);
    eg_mem_unit_t *u = NULL;
    const eg_mem_unit_t *facts[1];
    eg__cons_apply_t ch = {0};
    cnt_t c = {0}, r = {0};
    const char *ids[1] = {f1};
    queued_t q1 = {0}, q2 = {0};

    /* Mark the fact failed the way a model error does. */
    cr_assert_eq(eg_mem_units_get(E.ws, E.bank, ids, 1, on_units, &u), 0);
    while (!u)
        uv_run(&E.loop, UV_RUN_ONCE);
    u->consolidation_failed_at = E.now;
    u->consolidation_error = "model unavailable";
    facts[0] = u;
    ch.facts = facts;
    ch.nfacts = 1;
    cr_assert_eq(eg__cons_apply(E.ws, E.bank, &ch, on_applied, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.err, 0);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(list(FACTS, EG_MEM_CONSOLIDATION_FAILED, EG_MEM_STATE_VALID)->total, 1);
    cr_assert_eq(list(FACTS, EG_MEM_CONSOLIDATION_PENDING, EG_MEM_STATE_VALID)->total, 0);
    lst_t *l = list(FACTS, EG_MEM_CONSOLIDATION_FAILED, EG_MEM_STATE_VALID);
    cr_assert_str_eq(l->units[0]->consolidation_error, "model unavailable");

    /* Two requests in a row share one run. */
    cr_assert_eq(eg_consolidate_enqueue(E.ws, E.bank, NULL, on_queued, &q1), 0);
    cr_assert_eq(eg_consolidate_enqueue(E.ws, E.bank, NULL, on_queued, &q2), 0);
    wait_for(&q1.done);
    wait_for(&q2.done);
    cr_assert_eq(q1.err, 0);
    cr_assert_eq(q2.err, 0);
    /* The two may reach Redis in either order (the store has two connections): one starts the
     * run, the other joins it. */
    cr_assert(q1.dedup != q2.dedup, "exactly one request is deduplicated");
    cr_assert_str_eq(q1.op, q2.op);
    cr_assert_eq(wait_op(q1.op), EG_OP_COMPLETED);
    /* A failed fact is not pending: the run left it failed. */
    cr_assert_eq(list(FACTS, EG_MEM_CONSOLIDATION_FAILED, EG_MEM_STATE_VALID)->total, 1);

    /* Recover: back to pending, and a run takes it in. */
    cr_assert_eq(eg_consolidate_recover(E.ws, E.bank, on_count, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.n, 1);
    uint64_t deadline = uv_now(&E.loop) + 20000;
    while (list(FACTS, EG_MEM_CONSOLIDATION_DONE, EG_MEM_STATE_VALID)->total != 1) {
        cr_assert(uv_now(&E.loop) < deadline, "the recovered fact was not consolidated");
        for (int i = 0; i < 20; i++)
            uv_run(&E.loop, UV_RUN_ONCE);
    }
    cr_assert_eq(list(FACTS, EG_MEM_CONSOLIDATION_FAILED, EG_MEM_STATE_VALID)->total, 0);
    /* After the run the next request starts a new one. */
    queued_t q3 = {0};
    run_once();
    cr_assert_eq(eg_consolidate_enqueue(E.ws, E.bank, NULL, on_queued, &q3), 0);
    wait_for(&q3.done);
    cr_assert_neq(strcmp(q3.op, q1.op), 0);
    cr_assert_eq(wait_op(q3.op), EG_OP_COMPLETED);
}
