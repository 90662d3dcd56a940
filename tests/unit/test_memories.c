/* Memories (engram/memories.h) against a real Redis and the real index: a bank with two documents
 * written through the memory store, then the listing (order, paging, every filter), one memory,
 * curated edits (re-embedding, entities, invalidation and revert, observations refused, two
 * concurrent edits both applied through the compare-and-set retry), the memory graph, the entity
 * graph, statistics, the time series, tags, entities, documents and chunks (by id alone too).
 * The pure helpers (tag patterns, time buckets) are tested without Redis. */
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

/* ---- pure helpers -----------------------------------------------------------------------------
 */

Test(memories_pure, tag_patterns)
{
    cr_assert(eg_memories_tag_match("user:*", "user:alice"));
    cr_assert(eg_memories_tag_match("USER:*", "user:Alice"));
    cr_assert(eg_memories_tag_match("*-fred", "role-fred"));
    cr_assert(eg_memories_tag_match("tag*-2", "tag-x-y-2"));
    cr_assert(eg_memories_tag_match("*", "anything"));
    cr_assert(eg_memories_tag_match("a**b", "ab"));
    cr_assert(eg_memories_tag_match("team", "TEAM"));
    cr_assert_not(eg_memories_tag_match("team", "teams"), "without '*' the whole tag matches");
    cr_assert_not(eg_memories_tag_match("user:*", "admin:user:x"));
    cr_assert_not(eg_memories_tag_match("*-fred", "fred-x"));
    cr_assert_not(eg_memories_tag_match("a*b*c", "acb"));
}

Test(memories_pure, time_buckets)
{
    /* 2024-05-01T13:47:30.5Z */
    int64_t now = eg_text_days_from_civil(2024, 5, 1) * EG_TEXT_US_PER_DAY +
                  (13 * 3600 + 47 * 60 + 30) * EG_TEXT_US_PER_SEC + 500000;
    int64_t first, width;
    size_t n;
    eg_ts_period_t p;
    eg_ts_field_t f;

    cr_assert_str_eq(eg_ts_buckets(EG_TS_7D, now, &first, &width, &n), "day");
    cr_assert_eq(n, 7);
    cr_assert_eq(width, EG_TEXT_US_PER_DAY);
    cr_assert_eq(first, eg_text_days_from_civil(2024, 4, 25) * EG_TEXT_US_PER_DAY);
    cr_assert(first + 6 * width <= now && now < first + 7 * width, "the last bucket holds now");
    cr_assert_str_eq(eg_ts_buckets(EG_TS_1D, now, &first, &width, &n), "hour");
    cr_assert_eq(n, 24);
    cr_assert_eq(first + 23 * width, now - (47 * 60 + 30) * EG_TEXT_US_PER_SEC - 500000);
    cr_assert_str_eq(eg_ts_buckets(EG_TS_1H, now, &first, &width, &n), "minute");
    cr_assert_eq(n, 60);
    cr_assert_eq(first % (60 * EG_TEXT_US_PER_SEC), 0);
    cr_assert_str_eq(eg_ts_buckets(EG_TS_12H, now, &first, &width, &n), "hour");
    cr_assert_eq(n, 12);
    cr_assert_str_eq(eg_ts_buckets(EG_TS_90D, now, &first, &width, &n), "day");
    cr_assert_eq(n, 90);
    cr_assert_eq(eg_ts_period_parse("30d", &p), 0);
    cr_assert_eq(p, EG_TS_30D);
    cr_assert_str_eq(eg_ts_period_name(p), "30d");
    cr_assert_eq(eg_ts_period_parse("2w", &p), EG_EINVAL);
    cr_assert_eq(eg_ts_field_parse("occurred_start", &f), 0);
    cr_assert_eq(f, EG_TS_OCCURRED);
    cr_assert_eq(eg_ts_field_parse("updated_at", &f), EG_EINVAL);
    cr_assert_str_eq(eg_memgraph_type_name(EG_MEMGRAPH_ENTITY), "entity");
    cr_assert_str_eq(eg_memgraph_type_name(EG_LINK_CAUSED_BY), "caused_by");
}

/* ---- a bank in Redis --------------------------------------------------------------------------
 */

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    eg_arena_t a;
    char ws[64], bank[96];
    int64_t now, m; /* now, and the base mentioned_at */
    const char *A, *B, *C, *D;
    const char *alice, *bob, *paris;
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

static void bank_done(void *udata, int err, const eg_bank_t *b, bool created)
{
    (void)b;
    (void)created;
    cr_assert_eq(err, 0, "bank: %s", eg_strerror(err));
    *(int *)udata = 1;
}

static void write_done(void *udata, int err, const eg_mem_write_result_t *r)
{
    (void)r;
    cr_assert_eq(err, 0, "write: %s", eg_strerror(err));
    *(int *)udata = 1;
}

static const char *uuid(void)
{
    char *s = eg_arena_alloc(&E.a, EG_MEM_UUID_LEN + 1);

    eg_uuid_v4(s);
    return s;
}

static const char **strs(int n, ...)
{
    const char **v = eg_arena_calloc(&E.a, (size_t)(n + 1) * sizeof(*v));
    va_list ap;

    va_start(ap, n);
    for (int i = 0; i < n; i++)
        v[i] = va_arg(ap, const char *);
    va_end(ap);
    return v;
}

static void unit(eg_mem_new_unit_t *nu, const char *id, const char *text, eg_fact_type_t type,
                 const char **ents, size_t nents, const char **tags, size_t ntags,
                 int64_t mentioned, int64_t created, const char *doc, int chunk)
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

static void write_doc(const char *doc, eg_mem_new_unit_t *u, size_t n, eg_mem_entity_ref_t *ents,
                      size_t nents, int64_t updated, const char **tags, size_t ntags)
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
static void setup(void)
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

static void set_flag(void *udata)
{
    *(int *)udata = 1;
}

static void teardown(void)
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

TestSuite(memories, .init = setup, .fini = teardown, .timeout = 60);

/* ---- the listing ------------------------------------------------------------------------------
 */

typedef struct {
    int done, err;
    size_t n, total;
    const char *ids[8];
    const char *names[8];
    const char *state_reason;
} lst_t;

static void on_list(void *udata, int err, const eg_memory_t *items, size_t n, size_t total)
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

static lst_t list(eg_memories_query_t q)
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
static const char *letters(lst_t l)
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

Test(memories, list_order_paging_and_filters)
{
    lst_t l = list((eg_memories_query_t){0});

    cr_assert_str_eq(letters(l), "CABD", "mentioned_at descending, the undated last");
    cr_assert_eq(l.total, 4);
    cr_assert_str_eq(l.names[2], "Alice,Bob,Paris");
    l = list((eg_memories_query_t){.limit = 2, .offset = 1});
    cr_assert_str_eq(letters(l), "AB");
    cr_assert_eq(l.total, 4);
    l = list((eg_memories_query_t){.limit = 5, .offset = 9});
    cr_assert_eq(l.n, 0);
    cr_assert_eq(l.total, 4);

    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.types = 1u << EG_FACT_WORLD}))),
                     "CA");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.none = true}))), "");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "TEA"}))), "AD");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "bob hiking"}))), "B",
                     "every word, stemmed");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "the"}))), "CABD",
                     "stopwords only filter nothing");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "zebra"}))), "");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.document_id = "d2"}))), "D");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.document_id = "nope"}))), "");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.entity_id = E.bob}))), "CB");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.entity_id = uuid()}))), "");
    cr_assert_str_eq(
        letters((l = list((eg_memories_query_t){.consolidation = EG_MEM_CONSOLIDATION_PENDING}))),
        "CAB");
    cr_assert_str_eq(
        letters((l = list((eg_memories_query_t){.consolidation = EG_MEM_CONSOLIDATION_DONE}))), "");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){
                                  .chunk_id = eg_mem_chunk_id(&E.a, E.bank, "d1", 0)}))),
                     "AB");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.chunk_id = "other_d1_0"}))), "");
}

Test(memories, list_tag_filters)
{
    const char *u1[] = {"user:1"}, *both[] = {"user:1", "team"}, *none[] = {"nobody"};
    lst_t l;

    l = list((eg_memories_query_t){.tags = u1, .ntags = 1, .tags_match = EG_TAGS_ANY_STRICT});
    cr_assert_str_eq(letters(l), "A");
    l = list((eg_memories_query_t){.tags = u1, .ntags = 1, .tags_match = EG_TAGS_ANY});
    cr_assert_str_eq(letters(l), "CAD", "any includes the untagged");
    l = list((eg_memories_query_t){.tags = both, .ntags = 2, .tags_match = EG_TAGS_ALL_STRICT});
    cr_assert_str_eq(letters(l), "A");
    l = list((eg_memories_query_t){.tags = none, .ntags = 1, .tags_match = EG_TAGS_ANY_STRICT});
    cr_assert_str_eq(letters(l), "");
    l = list((eg_memories_query_t){.tags_match = EG_TAGS_EXACT});
    cr_assert_str_eq(letters(l), "CD", "exact with no tags: the untagged");
}

/* ---- one memory and curated edits -------------------------------------------------------------
 */

typedef struct {
    int done, err;
    char why[320];
    const char *id, *text, *reason;
    eg_fact_type_t type;
    bool invalidated;
    int64_t edited, invalidated_at, occurred_start;
    size_t nsources;
    const char *names;
} one_t;

static void keep(one_t *o, const eg_memory_t *m, size_t nsources)
{
    eg_buf_t b = EG_BUF_INIT;

    o->id = eg_arena_strdup(&E.a, m->unit->id);
    o->text = eg_arena_strdup(&E.a, m->unit->text);
    o->reason = eg_arena_strdup(&E.a, m->unit->invalidation_reason);
    o->type = m->unit->type;
    o->invalidated = m->unit->invalidated;
    o->edited = m->unit->edited_at;
    o->invalidated_at = m->unit->invalidated_at;
    o->occurred_start = m->unit->occurred_start;
    o->nsources = nsources;
    for (size_t k = 0; k < m->nentity_names; k++)
        eg_buf_printf(&b, "%s%s", k ? "," : "", m->entity_names[k]);
    eg_buf_puts(&b, "");
    o->names = eg_arena_strdup(&E.a, b.data);
    eg_buf_free(&b);
}

static void on_get(void *udata, int err, const eg_memory_t *m, const eg_memory_t *sources,
                   size_t nsources)
{
    one_t *o = udata;

    o->err = err;
    if (err == 0) {
        keep(o, m, nsources);
        if (nsources)
            cr_assert_str_eq(sources[0].unit->id, E.A);
    }
    o->done = 1;
}

static one_t get(const char *id)
{
    one_t o = {0};

    cr_assert_eq(eg_memories_get(E.ws, E.bank, id, on_get, &o), 0);
    wait_for(&o.done);
    return o;
}

static void on_patch(void *udata, int err, const char *why, const eg_memory_t *m)
{
    one_t *o = udata;

    o->err = err;
    snprintf(o->why, sizeof(o->why), "%s", why ? why : "");
    if (err == 0)
        keep(o, m, 0);
    o->done++;
}

static one_t patch(const char *id, eg_memory_patch_t p)
{
    one_t o = {0};

    cr_assert_eq(eg_memories_patch(E.ws, E.bank, id, &p, on_patch, &o), 0);
    wait_for(&o.done);
    return o;
}

Test(memories, get_one)
{
    one_t o = get(E.B);

    cr_assert_eq(o.err, 0);
    cr_assert_str_eq(o.names, "Alice,Bob,Paris");
    cr_assert_eq(o.type, EG_FACT_EXPERIENCE);
    o = get(E.D);
    cr_assert_eq(o.err, 0);
    cr_assert_eq(o.nsources, 1, "an observation comes with its source facts");
    cr_assert_eq(get(uuid()).err, EG_ENOTFOUND);
}

Test(memories, patch_edits_and_curation)
{
    const char *paris[] = {"  PARIS!! ", "paris"}, *ghost[] = {"Nobody Known"};
    one_t o;
    lst_t l;

    o = patch(E.C, (eg_memory_patch_t){.text = "Bob repairs the laser printer.",
                                       .set_occurred_start = true,
                                       .occurred_start = E.m,
                                       .set_type = true,
                                       .type = EG_FACT_EXPERIENCE});
    cr_assert_eq(o.err, 0, "%s %s", eg_strerror(o.err), o.why);
    cr_assert_str_eq(o.text, "Bob repairs the laser printer.");
    cr_assert_eq(o.type, EG_FACT_EXPERIENCE);
    cr_assert_eq(o.occurred_start, E.m);
    cr_assert_neq(o.edited, EG_MEM_TIME_NONE);
    /* The new text is what the keyword index now finds. */
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "laser"}))), "C");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "fixes"}))), "");

    o = patch(E.C, (eg_memory_patch_t){.set_entities = true, .entities = paris, .nentities = 2});
    cr_assert_eq(o.err, 0, "%s", o.why);
    cr_assert_str_eq(o.names, "Paris", "folded names, duplicates once");
    o = patch(E.C, (eg_memory_patch_t){.set_entities = true, .entities = ghost, .nentities = 1});
    cr_assert_eq(o.err, EG_EINVAL);
    cr_assert(strstr(o.why, "Nobody Known") != NULL, "%s", o.why);

    o = patch(E.A, (eg_memory_patch_t){.set_state = true, .invalidated = true, .reason = "old"});
    cr_assert_eq(o.err, 0);
    cr_assert(o.invalidated);
    cr_assert_str_eq(o.reason, "old");
    cr_assert_neq(o.invalidated_at, EG_MEM_TIME_NONE);
    cr_assert_eq(o.edited, EG_MEM_TIME_NONE, "a state change is no content edit");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){0}))), "CBD");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.state = EG_MEM_STATE_INVALIDATED}))),
                     "A");
    o = patch(E.A, (eg_memory_patch_t){.set_state = true, .invalidated = false});
    cr_assert_eq(o.err, 0);
    cr_assert_not(o.invalidated);
    cr_assert_null(o.reason);
    cr_assert_eq(o.invalidated_at, EG_MEM_TIME_NONE);

    o = patch(E.D, (eg_memory_patch_t){.context = "x"});
    cr_assert_eq(o.err, EG_EINVAL);
    cr_assert(strstr(o.why, "only world/experience facts can be curated") != NULL, "%s", o.why);
    cr_assert_eq(patch(uuid(), (eg_memory_patch_t){.context = "x"}).err, EG_ENOTFOUND);
    cr_assert_eq(
        eg_memories_patch(E.ws, E.bank, E.A, &(eg_memory_patch_t){.text = ""}, on_patch, &o),
        EG_EINVAL);
}

Test(memories, concurrent_edits_both_land)
{
    one_t x = {0}, y = {0};
    eg_memory_patch_t px = {.context = "zanzibar"};
    eg_memory_patch_t py = {.set_state = true, .invalidated = true, .reason = "from y"};
    lst_t l;

    /* Both read the same updated_at; the second write conflicts and is redone on a fresh read. */
    cr_assert_eq(eg_memories_patch(E.ws, E.bank, E.B, &px, on_patch, &x), 0);
    cr_assert_eq(eg_memories_patch(E.ws, E.bank, E.B, &py, on_patch, &y), 0);
    wait_for(&x.done);
    wait_for(&y.done);
    cr_assert_eq(x.err, 0, "%s", eg_strerror(x.err));
    cr_assert_eq(y.err, 0, "%s", eg_strerror(y.err));
    l = list((eg_memories_query_t){.state = EG_MEM_STATE_INVALIDATED, .text = "zanzibar"});
    cr_assert_str_eq(letters(l), "B", "the context of one edit and the state of the other");
}

/* ---- graphs ------------------------------------------------------------------------------------
 */

typedef struct {
    int done, err;
    size_t n, total, nedges;
    char edges[32][64]; /* "XY type" with X, Y fixture letters */
} graph_t;

static char letter(const char *id)
{
    return strcmp(id, E.A) == 0   ? 'A'
           : strcmp(id, E.B) == 0 ? 'B'
           : strcmp(id, E.C) == 0 ? 'C'
                                  : 'D';
}

static void on_graph(void *udata, int err, const eg_memory_t *items, size_t n,
                     const eg_memgraph_edge_t *edges, size_t nedges, size_t total)
{
    graph_t *g = udata;

    g->err = err;
    g->n = n;
    g->total = total;
    g->nedges = nedges;
    for (size_t i = 0; i < nedges && i < 32; i++)
        snprintf(g->edges[i], sizeof(g->edges[i]), "%c%c %s", letter(items[edges[i].from].unit->id),
                 letter(items[edges[i].to].unit->id), eg_memgraph_type_name(edges[i].type));
    g->done = 1;
}

static bool has_edge(const graph_t *g, const char *e)
{
    for (size_t i = 0; i < g->nedges && i < 32; i++)
        if (strcmp(g->edges[i], e) == 0)
            return true;
    return false;
}

Test(memories, memory_graph)
{
    graph_t g = {0};
    eg_memories_query_t q = {.limit = 1000};

    cr_assert_eq(eg_memories_graph(E.ws, E.bank, &q, on_graph, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, 0);
    cr_assert_eq(g.n, 4);
    cr_assert_eq(g.total, 4);
    /* Order C A B D: C-A is A's "causes" seen from C; units sharing an entity are chained. */
    cr_assert(has_edge(&g, "AB semantic"));
    cr_assert(has_edge(&g, "CA caused_by"));
    cr_assert(has_edge(&g, "CA temporal") && has_edge(&g, "CB temporal") &&
              has_edge(&g, "AB temporal"));
    cr_assert(has_edge(&g, "AB entity") && has_edge(&g, "BD entity") && has_edge(&g, "CB entity"));
    cr_assert_not(has_edge(&g, "AD entity"), "a chain, not a clique");
    cr_assert_eq(g.nedges, 8);

    memset(&g, 0, sizeof(g));
    q = (eg_memories_query_t){.limit = 2, .types = 1u << EG_FACT_WORLD};
    cr_assert_eq(eg_memories_graph(E.ws, E.bank, &q, on_graph, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.n, 2);
    cr_assert_eq(g.total, 2);
    cr_assert(has_edge(&g, "CA caused_by"));
}

typedef struct {
    int done, err;
    size_t nnodes, nedges;
    int64_t count[8], last[8];
    char pair[8][32];
} egraph_t;

static void on_egraph(void *udata, int err, const eg_entgraph_node_t *nodes, size_t nnodes,
                      const eg_entgraph_edge_t *edges, size_t nedges)
{
    egraph_t *g = udata;

    g->err = err;
    g->nnodes = nnodes;
    g->nedges = nedges;
    for (size_t i = 0; i < nedges && i < 8; i++) {
        g->count[i] = edges[i].count;
        g->last[i] = edges[i].last;
        cr_assert_lt(strcmp(nodes[edges[i].a].id, nodes[edges[i].b].id), 0);
        snprintf(g->pair[i], sizeof(g->pair[i]), "%s", nodes[edges[i].a].name);
    }
    g->done = 1;
}

Test(memories, entity_graph)
{
    egraph_t g = {0};

    cr_assert_eq(eg_memories_entity_graph(E.ws, E.bank, 1000, 1, on_egraph, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.err, 0);
    cr_assert_eq(g.nedges, 3, "B names Alice, Bob and Paris: three pairs");
    cr_assert_eq(g.nnodes, 3);
    cr_assert_eq(g.count[0], 1);
    cr_assert_eq(g.last[0], E.m + EG_TEXT_US_PER_SEC);
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_memories_entity_graph(E.ws, E.bank, 2, 1, on_egraph, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.nedges, 2, "limit counts edges");
    memset(&g, 0, sizeof(g));
    cr_assert_eq(eg_memories_entity_graph(E.ws, E.bank, 1000, 2, on_egraph, &g), 0);
    wait_for(&g.done);
    cr_assert_eq(g.nedges, 0);
    cr_assert_eq(g.nnodes, 0);
}

/* ---- statistics, time series, tags, entities ---------------------------------------------------
 */

typedef struct {
    int done, err;
    eg_memstats_t st;
} stats_t;

static void on_stats(void *udata, int err, const eg_memstats_t *st)
{
    stats_t *s = udata;

    s->err = err;
    if (st)
        s->st = *st;
    s->done = 1;
}

Test(memories, stats)
{
    stats_t s = {0};

    cr_assert_eq(eg_memories_stats(E.ws, E.bank, on_stats, &s), 0);
    wait_for(&s.done);
    cr_assert_eq(s.err, 0);
    cr_assert_eq(s.st.units[EG_FACT_WORLD], 2);
    cr_assert_eq(s.st.units[EG_FACT_EXPERIENCE], 1);
    cr_assert_eq(s.st.units[EG_FACT_OBSERVATION], 1);
    cr_assert_eq(s.st.links[EG_LINK_SEMANTIC], 1);
    cr_assert_eq(s.st.links[EG_LINK_CAUSES] + s.st.links[EG_LINK_CAUSED_BY], 1);
    cr_assert_eq(s.st.links[EG_LINK_TEMPORAL], 3, "A, B and C within a day of each other");
    cr_assert_eq(s.st.links[EG_MEMGRAPH_ENTITY], 4, "Alice: A B D (3 pairs), Bob: B C (1)");
    cr_assert_eq(s.st.documents, 2);
    cr_assert_eq(s.st.entities, 3);
    cr_assert_gt(s.st.last_write_ms, 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(s.st.ops[i], 0);
}

typedef struct {
    int done, err;
    size_t n, sum[EG_FACT_NTYPES], last_total;
    char trunc[16];
} ts_t;

static void on_ts(void *udata, int err, const char *trunc, const eg_ts_bucket_t *b, size_t n)
{
    ts_t *t = udata;

    t->err = err;
    t->n = n;
    snprintf(t->trunc, sizeof(t->trunc), "%s", trunc);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < EG_FACT_NTYPES; k++)
            t->sum[k] += b[i].counts[k];
    for (int k = 0; n && k < EG_FACT_NTYPES; k++)
        t->last_total += b[n - 1].counts[k];
    t->done = 1;
}

static ts_t timeseries(eg_ts_period_t p, eg_ts_field_t f)
{
    ts_t t = {0};

    cr_assert_eq(eg_memories_timeseries(E.ws, E.bank, p, f, E.now, on_ts, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    return t;
}

Test(memories, timeseries)
{
    ts_t t = timeseries(EG_TS_1D, EG_TS_CREATED);

    cr_assert_eq(t.n, 24);
    cr_assert_str_eq(t.trunc, "hour");
    cr_assert_eq(t.sum[EG_FACT_WORLD], 2);
    cr_assert_eq(t.sum[EG_FACT_EXPERIENCE], 1);
    cr_assert_eq(t.sum[EG_FACT_OBSERVATION], 0, "D was created two days ago");
    t = timeseries(EG_TS_7D, EG_TS_CREATED);
    cr_assert_eq(t.n, 7);
    cr_assert_eq(t.sum[EG_FACT_OBSERVATION], 1);
    /* D has no mentioned_at: it falls back to its created_at. */
    t = timeseries(EG_TS_7D, EG_TS_MENTIONED);
    cr_assert_eq(t.sum[0] + t.sum[1] + t.sum[2], 4);
    t = timeseries(EG_TS_1H, EG_TS_CREATED);
    cr_assert_eq(t.n, 60);
    cr_assert_eq(t.sum[0] + t.sum[1] + t.sum[2], 3, "created half an hour ago");
}

typedef struct {
    int done, err;
    size_t n, total;
    char tags[8][32];
    size_t counts[8];
} tags_t;

static void on_tags(void *udata, int err, const eg_tag_count_t *tags, size_t n, size_t total)
{
    tags_t *t = udata;

    t->err = err;
    t->n = n;
    t->total = total;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(t->tags[i], sizeof(t->tags[i]), "%s", tags[i].tag);
        t->counts[i] = tags[i].count;
    }
    t->done = 1;
}

static tags_t tags(const char *pattern, size_t limit, size_t offset)
{
    tags_t t = {0};

    cr_assert_eq(eg_memories_tags(E.ws, E.bank, pattern, limit, offset, on_tags, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    return t;
}

Test(memories, tags)
{
    tags_t t = tags(NULL, 100, 0);

    cr_assert_eq(t.total, 3);
    cr_assert_str_eq(t.tags[0], "team");
    cr_assert_str_eq(t.tags[1], "user:1");
    cr_assert_str_eq(t.tags[2], "user:2");
    cr_assert_eq(t.counts[0], 1);
    t = tags("USER:*", 100, 0);
    cr_assert_eq(t.total, 2);
    t = tags("user:*", 1, 1);
    cr_assert_eq(t.n, 1);
    cr_assert_str_eq(t.tags[0], "user:2");
    cr_assert_eq(tags("nothing*", 100, 0).total, 0);
}

typedef struct {
    int done, err;
    size_t n, total;
    char names[8][32];
    int64_t mentions[8];
} ents_t;

static void on_ents(void *udata, int err, const eg_mem_entity_t *e, size_t n, size_t total)
{
    ents_t *t = udata;

    t->err = err;
    t->n = n;
    t->total = total;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(t->names[i], sizeof(t->names[i]), "%s", e[i].canonical_name);
        t->mentions[i] = e[i].mention_count;
    }
    t->done = 1;
}

Test(memories, entities_by_mentions)
{
    ents_t t = {0};

    cr_assert_eq(eg_memories_entities(E.ws, E.bank, 100, 0, on_ents, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    cr_assert_eq(t.total, 3);
    cr_assert_str_eq(t.names[0], "Alice");
    cr_assert_eq(t.mentions[0], 3);
    cr_assert_str_eq(t.names[1], "Bob");
    cr_assert_str_eq(t.names[2], "Paris");
    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_entities(E.ws, E.bank, 1, 2, on_ents, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.n, 1);
    cr_assert_str_eq(t.names[0], "Paris");
}

/* ---- documents and chunks ----------------------------------------------------------------------
 */

typedef struct {
    int done, err;
    size_t n, total;
    char ids[8][32];
    size_t nunits[8];
    size_t by_type[EG_FACT_NTYPES];
    char bank[128], chunk_text[128];
    size_t chunk_index;
} docs_t;

static void on_docs(void *udata, int err, const eg_doc_item_t *d, size_t n, size_t total)
{
    docs_t *t = udata;

    t->err = err;
    t->n = n;
    t->total = total;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(t->ids[i], sizeof(t->ids[i]), "%s", d[i].id);
        t->nunits[i] = d[i].nunits;
    }
    t->done = 1;
}

static docs_t docs(eg_docs_query_t q)
{
    docs_t t = {0};

    if (q.limit == 0)
        q.limit = 100;
    cr_assert_eq(eg_memories_documents(E.ws, E.bank, &q, on_docs, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    return t;
}

static void on_doc(void *udata, int err, const eg_mem_doc_t *d, const size_t by_type[3])
{
    docs_t *t = udata;

    t->err = err;
    if (d) {
        snprintf(t->ids[0], sizeof(t->ids[0]), "%s", d->id);
        memcpy(t->by_type, by_type, sizeof(t->by_type));
    }
    t->done = 1;
}

static void on_chunks(void *udata, int err, const eg_mem_chunk_t *const *c, size_t n, size_t total)
{
    docs_t *t = udata;

    t->err = err;
    t->n = n;
    t->total = total;
    if (n) {
        snprintf(t->chunk_text, sizeof(t->chunk_text), "%s", c[0]->text);
        t->chunk_index = c[0]->chunk_index;
    }
    t->done = 1;
}

static void on_chunk(void *udata, int err, const char *bank, const eg_mem_chunk_t *c)
{
    docs_t *t = udata;

    t->err = err;
    if (c) {
        snprintf(t->bank, sizeof(t->bank), "%s", bank);
        snprintf(t->chunk_text, sizeof(t->chunk_text), "%s", c->text);
    }
    t->done = 1;
}

Test(memories, documents_and_chunks)
{
    const char *team[] = {"team"};
    docs_t t = docs((eg_docs_query_t){0});
    char *cid;

    cr_assert_eq(t.total, 2);
    cr_assert_str_eq(t.ids[0], "d2", "most recently written first");
    cr_assert_eq(t.nunits[1], 3);
    t = docs((eg_docs_query_t){.q = "D1"});
    cr_assert_eq(t.total, 1);
    cr_assert_str_eq(t.ids[0], "d1");
    t = docs((eg_docs_query_t){.tags = team, .ntags = 1, .tags_match = EG_TAGS_ANY_STRICT});
    cr_assert_eq(t.total, 1);
    t = docs((eg_docs_query_t){.limit = 1, .offset = 1});
    cr_assert_eq(t.n, 1);
    cr_assert_str_eq(t.ids[0], "d1");

    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_document(E.ws, E.bank, "d1", on_doc, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    cr_assert_eq(t.by_type[EG_FACT_WORLD], 2);
    cr_assert_eq(t.by_type[EG_FACT_EXPERIENCE], 1);
    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_document(E.ws, E.bank, "nope", on_doc, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, EG_ENOTFOUND);

    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_chunks(E.ws, E.bank, "d1", 1, 1, on_chunks, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    cr_assert_eq(t.total, 2);
    cr_assert_eq(t.n, 1);
    cr_assert_eq(t.chunk_index, 1);
    cr_assert_str_eq(t.chunk_text, "Bob fixes the printer.");
    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_chunks(E.ws, E.bank, "nope", 10, 0, on_chunks, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, EG_ENOTFOUND);

    /* By id alone: the bank is the longest prefix that holds the chunk. */
    cid = eg_mem_chunk_id(&E.a, E.bank, "d1", 1);
    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_chunk_find(E.ws, cid, on_chunk, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, 0);
    cr_assert_str_eq(t.bank, E.bank);
    cr_assert_str_eq(t.chunk_text, "Bob fixes the printer.");
    memset(&t, 0, sizeof(t));
    cr_assert_eq(eg_memories_chunk_find("another-workspace", cid, on_chunk, &t), 0);
    wait_for(&t.done);
    cr_assert_eq(t.err, EG_ENOTFOUND, "another workspace's bank is another bank");
    cr_assert_eq(eg_memories_chunk_find(E.ws, "nochunkid", on_chunk, &t), EG_ENOTFOUND);
    cr_assert_eq(eg_memories_chunk_find(E.ws, "a_b_x", on_chunk, &t), EG_ENOTFOUND);
}

Test(memories, unknown_bank_reads_empty)
{
    lst_t l = {0};
    eg_memories_query_t q = {.limit = 10};

    cr_assert_eq(eg_memories_list(E.ws, "no such bank", &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.err, 0);
    cr_assert_eq(l.total, 0);
    memset(&l, 0, sizeof(l));
    cr_assert_eq(eg_memories_list("other-ws", E.bank, &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.total, 0, "another workspace's bank of the same name is another bank");
}
