/* eg_recall end to end against real Redis: facts written through the memory store, the bank's
 * index acquired by the registry, ranking in memory, then the records, entities' observations and
 * chunks fetched back. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engram/bank.h"
#include "engram/embed.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/mindex.h"
#include "engram/mstore.h"
#include "engram/recall.h"
#include "engram/store.h"
#include "engram/text.h"
#include "engram/util.h"

#include "redis_fixture.h"

#define DIM EG_EMBED_DEFAULT_DIM

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    eg_arena_t a;
    char ws[64], bank[64];
    const char *id[8]; /* unit ids by fact number */
    int64_t t0;
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

typedef struct {
    const char *text;
    eg_fact_type_t type;
    int ents[3]; /* indexes into the entity table, -1 = none */
    const char *tag;
} fact_t;

/* What a few facts have besides: an observation's sources, an invalidated state. */
typedef struct {
    const char *const *sources;
    size_t nsources;
    bool invalidated;
} fact_extra_t;

static const char *const ENT_NAMES[] = {"Maya", "Lisbon", "Priya", "Amsterdam", "Subaru"};

/* Write a document with the given facts as one chunk (its text is the facts joined); x: NULL
 * or each fact's extras. */
static void write_doc_x(const char *doc, const fact_t *f, const fact_extra_t *x, size_t n,
                        size_t first_id, eg_mem_entity_ref_t *ents, size_t nents)
{
    eg_mem_new_unit_t *u = eg_arena_calloc(&E.a, n * sizeof(*u));
    const char **chunks = eg_arena_alloc(&E.a, sizeof(char *));
    char *text = eg_arena_strdup(&E.a, "");
    int done = 0;

    for (size_t i = 0; i < n; i++) {
        float *v = eg_arena_alloc(&E.a, DIM * sizeof(float));
        const char **eids = eg_arena_calloc(&E.a, 3 * sizeof(char *)), **tags = NULL;
        size_t ne = 0;

        text = eg_arena_printf(&E.a, "%s%s%s", text, i ? " " : "", f[i].text);
        eg_embed_builtin_vec(f[i].text, strlen(f[i].text), v, DIM);
        for (int k = 0; k < 3; k++)
            if (f[i].ents[k] >= 0)
                eids[ne++] = ents[f[i].ents[k]].id;
        if (f[i].tag) {
            tags = eg_arena_alloc(&E.a, sizeof(char *));
            tags[0] = f[i].tag;
        }
        E.id[first_id + i] = uuid();
        u[i].unit = (eg_mem_unit_t){
            .id = E.id[first_id + i],
            .text = f[i].text,
            .context = "",
            .type = f[i].type,
            .occurred_start = EG_MEM_TIME_NONE,
            .occurred_end = EG_MEM_TIME_NONE,
            .mentioned_at = E.t0 + (int64_t)(first_id + i) * EG_TEXT_US_PER_SEC,
            .created_at = E.t0,
            .updated_at = E.t0,
            .tags = tags,
            .ntags = tags ? 1 : 0,
            .entity_ids = eids,
            .nentities = ne,
            .document_id = doc,
            .chunk_id = eg_mem_chunk_id(&E.a, E.bank, doc, 0),
            .invalidated_at = EG_MEM_TIME_NONE,
            .edited_at = EG_MEM_TIME_NONE,
            .proof_count = x && x[i].nsources ? (int)x[i].nsources : 1,
            .source_ids = x ? x[i].sources : NULL,
            .nsources = x ? x[i].nsources : 0,
            .invalidated = x && x[i].invalidated,
        };
        u[i].vec = v;
    }
    chunks[0] = text;
    eg_mem_write_t w = {
        .doc = {.id = doc,
                .original_text = text,
                .created_at = E.t0,
                .updated_at = E.t0,
                .text_length = eg_text_codepoints(text, strlen(text))},
        .replace = true,
        .chunks = chunks,
        .nchunks = 1,
        .units = u,
        .nunits = n,
        .entities = ents,
        .nentities = nents,
        .dim = DIM,
        .embed_model = "builtin-hash-v1",
    };
    cr_assert_eq(eg_mem_write(E.ws, E.bank, &w, write_done, &done), 0);
    wait_for(&done);
    for (size_t i = 0; i < nents; i++)
        ents[i].is_new = false;
}

static void write_doc(const char *doc, const fact_t *f, size_t n, size_t first_id,
                      eg_mem_entity_ref_t *ents, size_t nents)
{
    write_doc_x(doc, f, NULL, n, first_id, ents, nents);
}

static void setup(void)
{
    eg_store_opts_t o = {NULL, 2, 2000, 1000};
    eg_mem_entity_ref_t *ents;
    char r[9];
    int done = 0;

    t_redis_setup();
    o.url = t_url();
    memset(&E, 0, sizeof(E));
    eg_arena_init(&E.a);
    E.t0 = eg_now_ms() * 1000 - 3600 * EG_TEXT_US_PER_SEC;
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
    snprintf(E.bank, sizeof(E.bank), "recall %s", r);
    cr_assert_eq(eg_bank_put(E.ws, E.bank, NULL, bank_done, &done), 0);
    wait_for(&done);

    ents = eg_arena_calloc(&E.a, EG_ARRAY_SIZE(ENT_NAMES) * sizeof(*ents));
    for (size_t i = 0; i < EG_ARRAY_SIZE(ENT_NAMES); i++)
        ents[i] = (eg_mem_entity_ref_t){
            .id = uuid(), .name = ENT_NAMES[i], .is_new = true, .mentions = 1, .seen_at = E.t0};
    static const fact_t trip[] = {
        {"Maya is flying to Lisbon on September 20 to visit her sister Priya.",
         EG_FACT_WORLD,
         {0, 1, 2},
         NULL},
        {"Maya's flight to Lisbon connects in Amsterdam on KLM.", EG_FACT_WORLD, {0, 1, 3}, NULL},
        {"Maya travels to Lisbon every autumn to see Priya.", EG_FACT_OBSERVATION, {0, 1, 2}, NULL},
    };
    static const fact_t car[] = {
        {"Maya drives a blue Subaru Outback.", EG_FACT_WORLD, {0, 4, -1}, "car"},
        {"The Subaru is due for an oil change at 95,000 miles.", EG_FACT_WORLD, {4, -1, -1}, "car"},
    };
    write_doc("trip", trip, 3, 0, ents, EG_ARRAY_SIZE(ENT_NAMES));
    write_doc("car", car, 2, 3, ents, EG_ARRAY_SIZE(ENT_NAMES));
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

TestSuite(recall_store, .init = setup, .fini = teardown, .timeout = 60);

/* ---- a recall, waited for, with what the callback saw copied out ----------------------------- */

typedef struct {
    int done, calls, err;
    size_t n, nents, nchunks, ncands;
    char ids[16][EG_MEM_UUID_LEN + 1];
    char texts[16][128];
    float final[16], semantic[16], keyword[16];
    char names[16][4][32];
    size_t nnames[16];
    char ent_names[8][32];
    size_t ent_obs[8];
    char ent_obs_text[8][128];
    char chunk_id[4][128], chunk_text[4][512];
    bool chunk_trunc[4];
    bool has_stats;
    eg_recall_stats_t stats;
    size_t nsources[16]; /* each result's source_ids */
    size_t nsrc;
    bool has_src; /* source_facts not NULL */
    char src_ids[8][EG_MEM_UUID_LEN + 1];
    char src_text[8][128];
    bool src_trunc;
} out_t;

static void recalled(void *udata, int err, const eg_recall_result_t *res)
{
    out_t *o = udata;

    o->calls++;
    o->err = err;
    o->done = 1;
    if (err) {
        cr_assert_null(res);
        return;
    }
    o->n = res->n;
    for (size_t i = 0; i < res->n && i < 16; i++) {
        const eg_recall_item_t *it = &res->items[i];
        snprintf(o->ids[i], sizeof(o->ids[i]), "%s", it->unit->id);
        snprintf(o->texts[i], sizeof(o->texts[i]), "%s", it->unit->text);
        o->final[i] = it->final;
        o->semantic[i] = it->semantic;
        o->keyword[i] = it->keyword;
        o->nnames[i] = it->nentity_names;
        for (size_t k = 0; k < it->nentity_names && k < 4; k++)
            snprintf(o->names[i][k], 32, "%s", it->entity_names[k]);
        o->nsources[i] = it->unit->nsources;
    }
    o->nsrc = res->nsource_facts;
    o->has_src = res->source_facts != NULL;
    o->src_trunc = res->source_facts_truncated;
    for (size_t i = 0; i < res->nsource_facts && i < 8; i++) {
        cr_assert_not(res->source_facts[i]->invalidated);
        snprintf(o->src_ids[i], sizeof(o->src_ids[i]), "%s", res->source_facts[i]->id);
        snprintf(o->src_text[i], sizeof(o->src_text[i]), "%s", res->source_facts[i]->text);
    }
    o->nents = res->nentities;
    for (size_t e = 0; e < res->nentities && e < 8; e++) {
        snprintf(o->ent_names[e], 32, "%s", res->entities[e].canonical_name);
        o->ent_obs[e] = res->entities[e].nobservations;
        if (res->entities[e].nobservations)
            snprintf(o->ent_obs_text[e], 128, "%s", res->entities[e].observations[0]->text);
    }
    o->nchunks = res->nchunks;
    for (size_t c = 0; c < res->nchunks && c < 4; c++) {
        snprintf(o->chunk_id[c], 128, "%s", res->chunks[c].id);
        snprintf(o->chunk_text[c], 512, "%s", res->chunks[c].text);
        o->chunk_trunc[c] = res->chunks[c].truncated;
    }
    o->has_stats = res->stats != NULL;
    if (res->stats)
        o->stats = *res->stats;
    o->ncands = res->ncandidates;
}

static void recall(const char *bank, eg_recall_req_t *req, const char *q, out_t *o)
{
    memset(o, 0, sizeof(*o));
    req->query = q;
    req->query_len = strlen(q);
    cr_assert_eq(eg_recall(E.ws, bank, req, recalled, o), 0);
    cr_assert_eq(o->calls, 0, "the callback never runs before eg_recall returns");
    wait_for(&o->done);
    cr_assert_eq(o->calls, 1);
    cr_assert_eq(o->err, 0, "recall: %s", eg_strerror(o->err));
}

static size_t find(const out_t *o, const char *id)
{
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->ids[i], id))
            return i;
    return SIZE_MAX;
}

static size_t find_entity(const out_t *o, const char *name)
{
    for (size_t i = 0; i < o->nents; i++)
        if (!strcmp(o->ent_names[i], name))
            return i;
    return SIZE_MAX;
}

Test(recall_store, records_scores_and_entities)
{
    eg_recall_req_t req;
    out_t o;
    size_t i, e;

    eg_recall_req_init(&req);
    recall(E.bank, &req, "When is Maya flying to Lisbon?", &o);
    cr_assert_geq(o.n, 3);
    i = find(&o, E.id[0]);
    cr_assert_lt(i, 3, "the flight fact is near the top");
    cr_assert_str_eq(o.texts[i],
                     "Maya is flying to Lisbon on September 20 to visit her sister Priya.");
    cr_assert(!isnan(o.semantic[i]) && o.semantic[i] >= 0.3f);
    cr_assert(!isnan(o.keyword[i]) && o.keyword[i] > 0);
    cr_assert_eq(o.nnames[i], 3);
    cr_assert_str_eq(o.names[i][1], "Lisbon");
    for (size_t k = 1; k < o.n; k++)
        cr_assert_geq(o.final[k - 1], o.final[k]);
    /* Entities are on by default: Lisbon carries the observation about it. */
    e = find_entity(&o, "Lisbon");
    cr_assert_neq(e, SIZE_MAX);
    cr_assert_eq(o.ent_obs[e], 1);
    cr_assert_str_eq(o.ent_obs_text[e], "Maya travels to Lisbon every autumn to see Priya.");
    cr_assert_neq(find_entity(&o, "Maya"), SIZE_MAX);
    cr_assert_eq(o.nchunks, 0, "chunks are opt-in");
    cr_assert_not(o.has_stats, "no trace unless asked");

    /* include.entities off; a tiny entity budget keeps only what fits, in order. */
    req.entities = false;
    recall(E.bank, &req, "When is Maya flying to Lisbon?", &o);
    cr_assert_eq(o.nents, 0);
    req.entities = true;
    req.entities_max_tokens = 1;
    recall(E.bank, &req, "When is Maya flying to Lisbon?", &o);
    cr_assert_eq(o.nents, 1);
}

Test(recall_store, filters_types_and_tags)
{
    eg_recall_req_t req;
    const char *car[] = {"car"};
    out_t o;

    eg_recall_req_init(&req);
    req.types = 1u << EG_FACT_OBSERVATION;
    recall(E.bank, &req, "Lisbon", &o);
    cr_assert_eq(o.n, 1);
    cr_assert_str_eq(o.ids[0], E.id[2]);

    eg_recall_req_init(&req);
    req.tags = car;
    req.ntags = 1;
    req.tags_match = EG_TAGS_ALL_STRICT;
    recall(E.bank, &req, "Maya", &o);
    cr_assert_geq(o.n, 1);
    for (size_t i = 0; i < o.n; i++)
        cr_assert(!strcmp(o.ids[i], E.id[3]) || !strcmp(o.ids[i], E.id[4]), "%s", o.texts[i]);
}

Test(recall_store, chunks_and_trace)
{
    eg_recall_req_t req;
    out_t o;

    eg_recall_req_init(&req);
    req.chunks = true;
    req.trace = true;
    req.types = 1u << EG_FACT_WORLD;
    recall(E.bank, &req, "Which airline is Maya taking to Lisbon?", &o);
    cr_assert_geq(o.nchunks, 1);
    cr_assert_str_eq(o.chunk_id[0], eg_mem_chunk_id(&E.a, E.bank, "trip", 0));
    cr_assert_not(o.chunk_trunc[0]);
    cr_assert_not_null(strstr(o.chunk_text[0], "connects in Amsterdam on KLM."));
    cr_assert(o.has_stats);
    cr_assert_eq(o.stats.kept, o.n);
    cr_assert_gt(o.stats.arm_hits[EG_RECALL_ARM_KEYWORD], 0);
    cr_assert_eq(o.stats.allowed, 4, "the world facts");
    cr_assert_gt(o.ncands, 0);
    cr_assert_geq(o.ncands, o.n);

    /* A budget of 6 tokens: the first chunk is cut at a word boundary and marked. */
    req.chunks_max_tokens = 6;
    recall(E.bank, &req, "Which airline is Maya taking to Lisbon?", &o);
    cr_assert_eq(o.nchunks, 1);
    cr_assert(o.chunk_trunc[0]);
    cr_assert_leq(eg_text_estimate_tokens(o.chunk_text[0], strlen(o.chunk_text[0])), 6);
    cr_assert_gt(strlen(o.chunk_text[0]), 0);
}

Test(recall_store, unknown_bank_and_bad_requests)
{
    eg_recall_req_t req;
    out_t o;

    eg_recall_req_init(&req);
    recall("no such bank", &req, "Lisbon", &o);
    cr_assert_eq(o.n, 0);
    cr_assert_eq(o.nents, 0);

    req.has_window = true;
    req.window_start = 10;
    req.window_end = 1;
    req.query = "x";
    req.query_len = 1;
    cr_assert_eq(eg_recall(E.ws, E.bank, &req, recalled, &o), EG_EINVAL);
    cr_assert_eq(eg_recall(NULL, E.bank, &req, recalled, &o), EG_EINVAL);
}

/* include.source_facts: an observation over three live facts, one fact that was invalidated and
 * an id that was never stored. */
Test(recall_store, source_facts_of_observations)
{
    static const fact_t old[] = {
        {"Maya once flew to Lisbon through Madrid.", EG_FACT_WORLD, {-1, -1, -1}, NULL},
    };
    static const fact_t obs[] = {
        {"Maya flies to Lisbon to see Priya.", EG_FACT_OBSERVATION, {-1, -1, -1}, NULL},
    };
    const fact_extra_t invalid = {NULL, 0, true};
    const char *srcs[5];
    const fact_extra_t sources = {srcs, 5, false};
    eg_recall_req_t req;
    size_t i, t0;
    out_t o;

    write_doc_x("old", old, &invalid, 1, 5, NULL, 0);
    srcs[0] = E.id[0];
    srcs[1] = E.id[1];
    srcs[2] = "00000000-0000-4000-8000-000000000000";
    srcs[3] = E.id[5];
    srcs[4] = E.id[3];
    write_doc_x("obs", obs, &sources, 1, 6, NULL, 0);

    /* Off by default. */
    eg_recall_req_init(&req);
    req.types = 1u << EG_FACT_OBSERVATION;
    recall(E.bank, &req, "Maya flies to Lisbon", &o);
    i = find(&o, E.id[6]);
    cr_assert_neq(i, SIZE_MAX);
    cr_assert_eq(o.nsources[i], 5, "the observation lists all its sources");
    cr_assert_eq(o.nsrc, 0);
    cr_assert_not(o.has_src);
    cr_assert_not(o.src_trunc);

    /* Unlimited: the three that exist, in their order; the invalidated and the missing one are
     * skipped without counting as a cut. */
    req.source_facts = true;
    req.source_facts_max_tokens = -1;
    recall(E.bank, &req, "Maya flies to Lisbon", &o);
    cr_assert_eq(o.nsrc, 3);
    cr_assert_str_eq(o.src_ids[0], E.id[0]);
    cr_assert_str_eq(o.src_ids[1], E.id[1]);
    cr_assert_str_eq(o.src_ids[2], E.id[3]);
    cr_assert_str_eq(o.src_text[2], "Maya drives a blue Subaru Outback.");
    cr_assert_not(o.src_trunc);
    /* The default 4096 holds them too. */
    req.source_facts_max_tokens = EG_RECALL_SOURCE_FACT_TOKENS;
    recall(E.bank, &req, "Maya flies to Lisbon", &o);
    cr_assert_eq(o.nsrc, 3);
    cr_assert_not(o.src_trunc);

    /* A total of exactly the first fact's tokens keeps only it, and says so. */
    t0 = eg_text_estimate_tokens(o.src_text[0], strlen(o.src_text[0]));
    req.source_facts_max_tokens = (int64_t)t0;
    recall(E.bank, &req, "Maya flies to Lisbon", &o);
    cr_assert_eq(o.nsrc, 1);
    cr_assert_str_eq(o.src_ids[0], E.id[0]);
    cr_assert(o.src_trunc);
    /* A per-observation budget replaces the total. */
    req.source_facts_max_tokens = 0;
    req.source_facts_max_tokens_per_observation = 1000;
    recall(E.bank, &req, "Maya flies to Lisbon", &o);
    cr_assert_eq(o.nsrc, 3);
    cr_assert_not(o.src_trunc);
    req.source_facts_max_tokens_per_observation = 0;
    recall(E.bank, &req, "Maya flies to Lisbon", &o);
    cr_assert_eq(o.nsrc, 0);
    cr_assert(o.has_src, "an empty map: the observation has sources, none fit");
    cr_assert(o.src_trunc);

    /* Facts among the results are sources too (their records are the results'). */
    eg_recall_req_init(&req);
    req.types = (1u << EG_FACT_OBSERVATION) | (1u << EG_FACT_WORLD);
    req.source_facts = true;
    recall(E.bank, &req, "Maya flies to Lisbon", &o);
    cr_assert_neq(find(&o, E.id[6]), SIZE_MAX);
    cr_assert_neq(find(&o, E.id[0]), SIZE_MAX);
    cr_assert_eq(o.nsrc, 3);
    cr_assert_str_eq(o.src_ids[0], E.id[0]);
    cr_assert_not(o.src_trunc);

    /* Only facts among the results: no world result is an observation, so no sources. */
    req.types = 1u << EG_FACT_WORLD;
    recall(E.bank, &req, "Maya flies to Lisbon", &o);
    cr_assert_gt(o.n, 0);
    cr_assert_eq(o.nsrc, 0);
    cr_assert_not(o.has_src);
    cr_assert_not(o.src_trunc);
}
