/* Shared fixture of the memories tests (test_memories.c, test_memories_views.c): a loop with
 * the store and the index registry, and a bank with two documents written through the memory
 * store — d1: A (world, Alice, tags user:1 + team), B (experience, Alice Bob Paris, user:2), C
 * (world, Bob, untagged), A semantic B, A causes C; d2: D (an observation of Alice, undated, from
 * A) — plus the listing helpers. Functions are static inline so each file uses what it needs. */
#ifndef ENGRAM_TESTS_MEMORIES_FIXTURE_H
#define ENGRAM_TESTS_MEMORIES_FIXTURE_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engram/bank.h"
#include "engram/buf.h"
#include "engram/embed.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/memories.h"
#include "engram/mindex.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/text.h"
#include "engram/util.h"

#include "redis_fixture.h"

#define DIM 32

/* ---- a bank in Redis ------------------------------------------------------------------------- */

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    eg_arena_t a;
    char ws[64], bank[96];
    int64_t now, m; /* now, and the base mentioned_at */
    const char *A, *B, *C, *D;
    const char *alice, *bob, *paris;
} E;

static inline void on_tick(uv_timer_t *t)
{
    (void)t;
}

static inline void wait_for(const int *done)
{
    uint64_t deadline = uv_now(&E.loop) + 10000;

    while (!*done) {
        cr_assert(uv_now(&E.loop) < deadline, "timed out");
        uv_run(&E.loop, UV_RUN_ONCE);
    }
}

static inline void bank_done(void *udata, int err, const eg_bank_t *b, bool created)
{
    (void)b;
    (void)created;
    cr_assert_eq(err, 0, "bank: %s", eg_strerror(err));
    *(int *)udata = 1;
}

static inline void write_done(void *udata, int err, const eg_mem_write_result_t *r)
{
    (void)r;
    cr_assert_eq(err, 0, "write: %s", eg_strerror(err));
    *(int *)udata = 1;
}

static inline const char *uuid(void)
{
    char *s = eg_arena_alloc(&E.a, EG_MEM_UUID_LEN + 1);

    eg_uuid_v4(s);
    return s;
}

static inline const char **strs(int n, ...)
{
    const char **v = eg_arena_calloc(&E.a, (size_t)(n + 1) * sizeof(*v));
    va_list ap;

    va_start(ap, n);
    for (int i = 0; i < n; i++)
        v[i] = va_arg(ap, const char *);
    va_end(ap);
    return v;
}

static inline void unit(eg_mem_new_unit_t *nu, const char *id, const char *text,
                        eg_fact_type_t type, const char **ents, size_t nents, const char **tags,
                        size_t ntags, int64_t mentioned, int64_t created, const char *doc,
                        int chunk)
{
    float *v = eg_arena_alloc(&E.a, DIM * sizeof(float));

    eg_embed_builtin_vec(text, strlen(text), v, DIM);
    memset(nu, 0, sizeof(*nu));
    nu->unit = (eg_mem_unit_t){
        .id = id,
        .text = text,
        .context = "",
        .type = type,
        .occurred_start = EG_MEM_TIME_NONE,
        .occurred_end = EG_MEM_TIME_NONE,
        .mentioned_at = mentioned,
        .created_at = created,
        .updated_at = created,
        .tags = tags,
        .ntags = ntags,
        .entity_ids = ents,
        .nentities = nents,
        .document_id = doc,
        .chunk_id = chunk >= 0 ? eg_mem_chunk_id(&E.a, E.bank, doc, (size_t)chunk) : NULL,
        .invalidated_at = EG_MEM_TIME_NONE,
        .edited_at = EG_MEM_TIME_NONE,
        .proof_count = 1,
    };
    nu->vec = v;
}

static inline void write_doc(const char *doc, eg_mem_new_unit_t *u, size_t n,
                             eg_mem_entity_ref_t *ents, size_t nents, int64_t updated,
                             const char **tags, size_t ntags)
{
    static const char *chunks[] = {"Alice likes green tea. Alice and Bob hike in Paris.",
                                   "Bob fixes the printer."};
    int done = 0;
    eg_mem_write_t w = {
        .doc = {.id = doc,
                .original_text = "Alice likes green tea. Alice and Bob hike in Paris. Bob fixes "
                                 "the printer.",
                .content_hash = "abc123",
                .created_at = updated,
                .updated_at = updated,
                .tags = tags,
                .ntags = ntags,
                .text_length = 74},
        .replace = true,
        .chunks = chunks,
        .nchunks = 2,
        .units = u,
        .nunits = n,
        .entities = ents,
        .nentities = nents,
        .dim = DIM,
        .embed_model = "builtin-hash-v1",
    };

    cr_assert_eq(eg_mem_write(E.ws, E.bank, &w, write_done, &done), 0);
    wait_for(&done);
}

/* d1: A (world, Alice, tags user:1 + team), B (experience, Alice Bob Paris, user:2), C (world,
 * Bob, untagged); A semantic B, A causes C. d2: D (observation of Alice, undated, from A). */
static inline void setup(void)
{
    eg_store_opts_t o = {NULL, 2, 2000, 1000};
    eg_mem_new_unit_t *u;
    eg_mem_entity_ref_t refs[3];
    eg_mem_link_t *la;
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
    eg_random_base62(r, 8);
    snprintf(E.ws, sizeof(E.ws), "ws-%d-%s", (int)getpid(), r);
    snprintf(E.bank, sizeof(E.bank), "mem_x_%s",
             r); /* '_' in the bank id: chunk ids are ambiguous */
    cr_assert_eq(eg_bank_put(E.ws, E.bank, NULL, bank_done, &done), 0);
    wait_for(&done);
    E.now = eg_now_ms() * 1000;
    E.m = E.now - 3600 * EG_TEXT_US_PER_SEC;
    E.A = uuid(), E.B = uuid(), E.C = uuid(), E.D = uuid();
    E.alice = uuid(), E.bob = uuid(), E.paris = uuid();
    refs[0] = (eg_mem_entity_ref_t){E.alice, "Alice", true, 2, E.m};
    refs[1] = (eg_mem_entity_ref_t){E.bob, "Bob", true, 2, E.m};
    refs[2] = (eg_mem_entity_ref_t){E.paris, "Paris", true, 1, E.m};
    u = eg_arena_calloc(&E.a, 3 * sizeof(*u));
    unit(&u[0], E.A, "Alice likes green tea.", EG_FACT_WORLD, strs(1, E.alice), 1,
         strs(2, "user:1", "team"), 2, E.m + 2 * EG_TEXT_US_PER_SEC, E.now - 1800000000LL, "d1", 0);
    unit(&u[1], E.B, "Alice and Bob hike in Paris.", EG_FACT_EXPERIENCE,
         strs(3, E.alice, E.bob, E.paris), 3, strs(1, "user:2"), 1, E.m + EG_TEXT_US_PER_SEC,
         E.now - 1800000000LL, "d1", 0);
    unit(&u[2], E.C, "Bob fixes the printer.", EG_FACT_WORLD, strs(1, E.bob), 1, NULL, 0,
         E.m + 3 * EG_TEXT_US_PER_SEC, E.now - 1800000000LL, "d1", 1);
    la = eg_arena_alloc(&E.a, 2 * sizeof(*la));
    la[0] = (eg_mem_link_t){E.B, EG_LINK_SEMANTIC, 0.8f};
    la[1] = (eg_mem_link_t){E.C, EG_LINK_CAUSES, 1.0f};
    u[0].links = la;
    u[0].nlinks = 2;
    write_doc("d1", u, 3, refs, 3, E.now - 3600 * EG_TEXT_US_PER_SEC, strs(1, "team"), 1);
    refs[0].is_new = false;
    refs[0].mentions = 1;
    u = eg_arena_calloc(&E.a, sizeof(*u));
    unit(&u[0], E.D, "Alice prefers tea to coffee.", EG_FACT_OBSERVATION, strs(1, E.alice), 1, NULL,
         0, EG_MEM_TIME_NONE, E.now - 2 * EG_TEXT_US_PER_DAY, "d2", -1);
    u[0].unit.source_ids = strs(1, E.A);
    u[0].unit.nsources = 1;
    u[0].unit.proof_count = 1;
    write_doc("d2", u, 1, refs, 1, E.now - 600 * EG_TEXT_US_PER_SEC, NULL, 0);
}

static inline void set_flag(void *udata)
{
    *(int *)udata = 1;
}

static inline void teardown(void)
{
    int done = 0;

    eg_mindex_shutdown();
    eg_store_shutdown(set_flag, &done);
    uv_close((uv_handle_t *)&E.tick, NULL);
    wait_for(&done);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    t_loop_close_checked(&E.loop);
    eg_arena_destroy(&E.a);
    t_redis_teardown();
}

/* ---- the listing ----------------------------------------------------------------------------- */

typedef struct {
    int done, err;
    size_t n, total;
    const char *ids[8];
    const char *names[8];
    const char *state_reason;
} lst_t;

static inline void on_list(void *udata, int err, const eg_memory_t *items, size_t n, size_t total)
{
    lst_t *l = udata;

    l->err = err;
    l->n = n;
    l->total = total;
    for (size_t i = 0; i < n && i < 8; i++) {
        eg_buf_t b = EG_BUF_INIT;

        l->ids[i] = eg_arena_strdup(&E.a, items[i].unit->id);
        for (size_t k = 0; k < items[i].nentity_names; k++)
            eg_buf_printf(&b, "%s%s", k ? "," : "", items[i].entity_names[k]);
        eg_buf_puts(&b, "");
        l->names[i] = eg_arena_strdup(&E.a, b.data ? b.data : "");
        eg_buf_free(&b);
    }
    l->done = 1;
}

static inline lst_t list(eg_memories_query_t q)
{
    lst_t l = {0};

    if (q.limit == 0)
        q.limit = 100;
    cr_assert_eq(eg_memories_list(E.ws, E.bank, &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.err, 0, "%s", eg_strerror(l.err));
    return l;
}

/* The listed ids as a string of fixture letters ("CABD"). */
static inline const char *letters(lst_t l)
{
    char *s = eg_arena_calloc(&E.a, 16);

    for (size_t i = 0; i < l.n && i < 8; i++)
        s[i] = strcmp(l.ids[i], E.A) == 0   ? 'A'
               : strcmp(l.ids[i], E.B) == 0 ? 'B'
               : strcmp(l.ids[i], E.C) == 0 ? 'C'
               : strcmp(l.ids[i], E.D) == 0 ? 'D'
                                            : '?';
    return s;
}

#endif
