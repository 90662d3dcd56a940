/* Recall over an in-memory index (no Redis): the labelled set of tests/data/recall_quality.json
 * loaded the way retain stores facts (builtin embeddings, recognised entities, dates resolved
 * against the item time, semantic links at cosine >= 0.7), then the top-5 hit rate of its
 * questions, and the request's filters, floors and fills over the same bank. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engram/embed.h"
#include "engram/error.h"
#include "engram/mindex.h"
#include "engram/recall.h"
#include "engram/text.h"
#include "engram/util.h"

#define DIM     EG_EMBED_DEFAULT_DIM
#define MAXF    256
#define MAXENTS 512

/* The loaded bank. */
typedef struct {
    cJSON *json;
    eg_mindex_t *ix;
    size_t n;
    const char *fid[MAXF]; /* the data set's fact ids */
    char uid[MAXF][37];    /* their unit ids */
    const char *text[MAXF];
    int64_t qts;             /* default query_timestamp */
    char *ent_name[MAXENTS]; /* lowercased names of the entities made so far */
    char ent_id[MAXENTS][37];
    size_t nents;
} bank_t;

static bank_t B;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n;
    char *s;

    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = eg_xmalloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static int64_t iso(const char *s)
{
    int64_t us = 0;
    cr_assert_eq(eg_text_parse_iso(s, strlen(s), &us), 0, "bad date %s", s);
    return us;
}

/* The entity id of a recognised name, made on first sight (case-insensitively unique). */
static const char *entity_for(const char *name, int64_t seen)
{
    char low[256];
    size_t i;

    for (i = 0; name[i] && i < sizeof(low) - 1; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[i] = '\0';
    for (i = 0; i < B.nents; i++)
        if (!strcmp(B.ent_name[i], low))
            return B.ent_id[i];
    cr_assert_lt(B.nents, MAXENTS);
    B.ent_name[B.nents] = eg_xstrdup(low);
    eg_uuid_v4(B.ent_id[B.nents]);
    eg_mem_entity_t e = {.id = B.ent_id[B.nents],
                         .canonical_name = name,
                         .mention_count = 1,
                         .first_seen = seen,
                         .last_seen = seen};
    cr_assert_eq(eg_mindex_put_entity(B.ix, &e), 0);
    return B.ent_id[B.nents++];
}

/* Load the facts in file order, or reversed (slot numbers then run the other way). */
static void load_bank(bool reverse)
{
    char *s = read_file(EG_TEST_DATA_DIR "/recall_quality.json");
    cJSON *facts, *f, *order[MAXF];
    float *vecs;
    eg_arena_t a;
    size_t nf = 0;

    memset(&B, 0, sizeof(B));
    B.json = cJSON_Parse(s);
    free(s);
    cr_assert_not_null(B.json);
    B.qts = iso(cJSON_GetObjectItem(B.json, "query_timestamp")->valuestring);
    B.ix = eg_mindex_new(DIM);
    facts = cJSON_GetObjectItem(B.json, "facts");
    vecs = eg_xcalloc((size_t)cJSON_GetArraySize(facts) * DIM, sizeof(float));
    eg_arena_init(&a);
    cJSON_ArrayForEach(f, facts)
    {
        cr_assert_lt(nf, MAXF);
        order[nf++] = f;
    }
    for (size_t oi = 0; oi < nf; oi++) {
        size_t i = B.n++;
        cJSON *fact = order[reverse ? nf - 1 - oi : oi];
        const char *text = cJSON_GetObjectItem(fact, "text")->valuestring;
        const cJSON *type = cJSON_GetObjectItem(fact, "type"),
                    *tags = cJSON_GetObjectItem(fact, "tags");
        int64_t at = iso(cJSON_GetObjectItem(fact, "date")->valuestring);
        eg_text_entity_t *ents;
        eg_text_date_t d;
        size_t ne = eg_text_entities(&a, text, strlen(text), &ents);
        const char *eids[32], *tagv[8];
        size_t ntags = 0, nlinks = 0;
        eg_mem_link_t links[20];
        char chunk[64];

        B.fid[i] = cJSON_GetObjectItem(fact, "id")->valuestring;
        B.text[i] = text;
        eg_uuid_v4(B.uid[i]);
        for (size_t j = 0; j < ne && j < 32; j++)
            eids[j] = entity_for(ents[j].text, at);
        for (const cJSON *t = tags ? tags->child : NULL; t && ntags < 8; t = t->next)
            tagv[ntags++] = t->valuestring;
        eg_embed_builtin_vec(text, strlen(text), vecs + i * DIM, DIM);
        /* Semantic links to the earlier facts at cosine >= 0.7 (the index adds the reverse). */
        for (size_t j = 0; j < i && nlinks < 20; j++) {
            float c = eg_vec_dot(vecs + i * DIM, vecs + j * DIM, DIM);
            if (c >= 0.7f)
                links[nlinks++] = (eg_mem_link_t){B.uid[j], EG_LINK_SEMANTIC, c};
        }
        snprintf(chunk, sizeof(chunk), "bank_%s_0", B.fid[i]);
        eg_mem_unit_t u = {
            .id = B.uid[i],
            .text = text,
            .context = cJSON_GetObjectItem(fact, "context")->valuestring,
            .type = type && !strcmp(type->valuestring, "experience") ? EG_FACT_EXPERIENCE
                                                                     : EG_FACT_WORLD,
            .occurred_start = EG_MEM_TIME_NONE,
            .occurred_end = EG_MEM_TIME_NONE,
            .mentioned_at = at,
            .created_at = at,
            .updated_at = at,
            .tags = tagv,
            .ntags = ntags,
            .entity_ids = eids,
            .nentities = ne < 32 ? ne : 32,
            .document_id = B.fid[i],
            .chunk_id = chunk,
            .invalidated_at = EG_MEM_TIME_NONE,
            .edited_at = EG_MEM_TIME_NONE,
            .proof_count = 1,
        };
        if (eg_text_find_date(text, strlen(text), 0, at, &d)) {
            u.occurred_start = d.start_us;
            u.occurred_end = d.end_us;
        }
        cr_assert_eq(eg_mindex_put_unit(B.ix, &u, vecs + i * DIM, links, nlinks), 0, "%s",
                     B.fid[i]);
        eg_arena_reset(&a);
    }
    eg_arena_destroy(&a);
    free(vecs);
    cr_assert_eq(eg_mindex_count(B.ix), B.n);
}

static void load(void)
{
    load_bank(false);
}

static void unload(void)
{
    for (size_t i = 0; i < B.nents; i++)
        free(B.ent_name[i]);
    eg_mindex_free(B.ix);
    cJSON_Delete(B.json);
}

TestSuite(recall_quality, .init = load, .fini = unload);

/* The data set's id of the fact in slot. */
static const char *fact_of(uint32_t slot)
{
    const eg_mindex_unit_t *u = eg_mindex_unit(B.ix, slot);

    for (size_t i = 0; u && i < B.n; i++)
        if (!strcmp(B.uid[i], u->id))
            return B.fid[i];
    return "?";
}

static size_t index_of(const char *fid)
{
    for (size_t i = 0; i < B.n; i++)
        if (!strcmp(B.fid[i], fid))
            return i;
    cr_assert_fail("no fact %s", fid);
    return 0;
}

static bool in_top(const eg_recall_ranked_t *r, const char *fid, size_t k)
{
    for (size_t i = 0; i < r->n && i < k; i++)
        if (!strcmp(fact_of(r->results[i].slot), fid))
            return true;
    return false;
}

static void rank(eg_arena_t *a, eg_recall_req_t *req, const char *q, eg_recall_ranked_t *r)
{
    req->query = q;
    req->query_len = strlen(q);
    if (req->query_timestamp == EG_MEM_TIME_NONE)
        req->query_timestamp = B.qts;
    cr_assert_eq(eg_recall_rank(a, B.ix, req, B.qts, r), 0);
}

/* Ask every question of the data set; returns the top-5 hits, *mrr the mean reciprocal rank. */
static size_t measure(const char *label, size_t *nq_out, double *mrr_out)
{
    cJSON *qs = cJSON_GetObjectItem(B.json, "questions"), *q;
    size_t nq = 0, hits = 0;
    double mrr = 0;
    eg_arena_t a;

    eg_arena_init(&a);
    cJSON_ArrayForEach(q, qs)
    {
        eg_recall_req_t req;
        eg_recall_ranked_t r;
        const char *text = cJSON_GetObjectItem(q, "q")->valuestring;
        const cJSON *ts = cJSON_GetObjectItem(q, "query_timestamp"), *e;
        size_t rank_of = SIZE_MAX;

        eg_recall_req_init(&req);
        if (ts)
            req.query_timestamp = iso(ts->valuestring);
        rank(&a, &req, text, &r);
        for (size_t i = 0; i < r.n && rank_of == SIZE_MAX; i++)
            cJSON_ArrayForEach(
                e, cJSON_GetObjectItem(q, "expect")) if (!strcmp(fact_of(r.results[i].slot),
                                                                 e->valuestring)) rank_of = i;
        nq++;
        if (rank_of < 5)
            hits++;
        if (rank_of != SIZE_MAX)
            mrr += 1.0 / (double)(rank_of + 1);
        if (rank_of >= 5) {
            fprintf(stderr, "recall_quality (%s): miss, rank %s%zu, \"%s\"; top 3:", label,
                    rank_of == SIZE_MAX ? "none " : "", rank_of == SIZE_MAX ? 0 : rank_of + 1,
                    text);
            for (size_t i = 0; i < r.n && i < 3; i++)
                fprintf(stderr, " %s", fact_of(r.results[i].slot));
            fprintf(stderr, "\n");
        }
        eg_arena_reset(&a);
    }
    eg_arena_destroy(&a);
    *nq_out = nq;
    *mrr_out = mrr / (double)nq;
    fprintf(stderr,
            "recall_quality (%s): top-5 hit rate %zu/%zu = %.1f%%, MRR %.3f, over %zu facts with "
            "builtin embeddings\n",
            label, hits, nq, 100.0 * (double)hits / (double)nq, *mrr_out, B.n);
    return hits;
}

Test(recall_quality, top5_hit_rate)
{
    size_t nq, nq2, hits, hits2;
    double mrr, mrr2;

    hits = measure("file order", &nq, &mrr);
    cr_assert_geq(nq, 40);
    cr_assert_geq((double)hits / (double)nq, 0.90, "top-5 hit rate %zu/%zu", hits, nq);

    /* The ranking must not depend on the order facts were stored in (slot numbers): ties are
     * ranked by their evidence, not their position. Reload the bank the other way round. */
    unload();
    load_bank(true);
    hits2 = measure("reversed", &nq2, &mrr2);
    cr_assert_eq(hits2, hits);
    cr_assert_float_eq(mrr2, mrr, 0.02);
}

Test(recall_quality, scores_arms_and_trace)
{
    eg_recall_req_t req;
    eg_recall_ranked_t r;
    eg_arena_t a;
    bool any_sem = false, any_kw = false;

    eg_arena_init(&a);
    eg_recall_req_init(&req);
    req.trace = true;
    rank(&a, &req, "Which conference did Maya go to in March 2024?", &r);
    cr_assert_gt(r.n, 5);
    cr_assert(in_top(&r, "f089", 5));
    /* The query names a month: the temporal arm ran over March 2024. */
    cr_assert(r.stats.has_window);
    cr_assert_eq(r.stats.window_start, iso("2024-03-01"));
    cr_assert_gt(r.stats.arm_hits[EG_RECALL_ARM_TEMPORAL], 0);
    cr_assert_gt(r.stats.arm_hits[EG_RECALL_ARM_SEMANTIC], 0);
    cr_assert_gt(r.stats.arm_hits[EG_RECALL_ARM_KEYWORD], 0);
    cr_assert_gt(r.stats.arm_hits[EG_RECALL_ARM_GRAPH], 0);
    cr_assert_eq(r.stats.allowed, B.n);
    cr_assert_eq(r.stats.now, B.qts);
    for (size_t i = 0; i < r.n; i++) {
        const eg_recall_cand_t *c = &r.results[i];
        float sem = c->arm[EG_RECALL_ARM_SEMANTIC], kw = c->arm[EG_RECALL_ARM_KEYWORD];

        if (i)
            cr_assert_geq(r.results[i - 1].final, c->final);
        cr_assert(isnan(sem) || (sem >= 0.3f && sem <= 1.0001f), "semantic %f", sem);
        cr_assert(isnan(kw) || kw > 0, "keyword %f", kw);
        any_sem |= !isnan(sem);
        any_kw |= !isnan(kw);
        cr_assert(c->final > 0 && c->final <= 1.2f);
    }
    cr_assert(any_sem && any_kw);
    /* The trace keeps every fused candidate; the results are among them. */
    cr_assert_not_null(r.scored);
    cr_assert_eq(r.nscored, r.stats.fused);
    cr_assert_geq(r.nscored, r.n);
    cr_assert_leq(r.nscored, EG_RECALL_CANDIDATES);

    /* Without a date in the query nor a window, no temporal arm; the graph arm can be off. */
    eg_recall_req_init(&req);
    req.graph = false;
    rank(&a, &req, "What car does Maya drive?", &r);
    cr_assert_not(r.stats.has_window);
    cr_assert_eq(r.stats.arm_hits[EG_RECALL_ARM_TEMPORAL], 0);
    cr_assert_eq(r.stats.arm_hits[EG_RECALL_ARM_GRAPH], 0);
    cr_assert_null(r.scored);
    cr_assert(in_top(&r, "f058", 5));
    eg_arena_destroy(&a);
}

Test(recall_quality, types_state_and_tags)
{
    eg_recall_req_t req;
    eg_recall_ranked_t r;
    eg_arena_t a;
    const char *tag[] = {"project:dagster"};
    eg_mem_unit_t u;
    size_t i58 = index_of("f058");

    eg_arena_init(&a);
    /* Only experiences: the assistant's own actions. */
    eg_recall_req_init(&req);
    req.types = 1u << EG_FACT_EXPERIENCE;
    rank(&a, &req, "What did I do for Maya?", &r);
    cr_assert_gt(r.n, 0);
    for (size_t i = 0; i < r.n; i++)
        cr_assert_eq(eg_mindex_unit(B.ix, r.results[i].slot)->type, EG_FACT_EXPERIENCE);
    /* "opinion" alone: nothing. */
    req.types = 0;
    rank(&a, &req, "What did I do for Maya?", &r);
    cr_assert_eq(r.n, 0);
    cr_assert_eq(r.stats.allowed, 0);

    /* Tags: any_strict keeps only the tagged fact; any keeps the untagged too. */
    eg_recall_req_init(&req);
    req.tags = tag;
    req.ntags = 1;
    req.tags_match = EG_TAGS_ANY_STRICT;
    rank(&a, &req, "Dagster pipeline", &r);
    cr_assert_eq(r.stats.allowed, 1);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(fact_of(r.results[0].slot), "f101");
    req.tags_match = EG_TAGS_ANY;
    rank(&a, &req, "Dagster pipeline", &r);
    cr_assert_eq(r.stats.allowed, B.n);

    /* An invalidated unit is never recalled, by any arm. */
    eg_recall_req_init(&req);
    rank(&a, &req, "What car does Maya drive?", &r);
    cr_assert(in_top(&r, "f058", 5));
    memset(&u, 0, sizeof(u));
    u.id = B.uid[i58];
    u.text = B.text[i58];
    u.context = "car";
    u.type = EG_FACT_WORLD;
    u.occurred_start = u.occurred_end = u.invalidated_at = u.edited_at = EG_MEM_TIME_NONE;
    u.mentioned_at = u.created_at = u.updated_at = iso("2024-01-10T17:00:00Z");
    u.invalidated = true;
    cr_assert_eq(eg_mindex_put_unit(B.ix, &u, NULL, NULL, 0), 0);
    eg_recall_req_init(&req);
    rank(&a, &req, "What car does Maya drive?", &r);
    cr_assert_eq(r.stats.allowed, B.n - 1);
    for (size_t i = 0; i < r.n; i++)
        cr_assert_str_neq(fact_of(r.results[i].slot), "f058");
    eg_arena_destroy(&a);
}

Test(recall_quality, floors_budget_and_token_fill)
{
    eg_recall_req_t req;
    eg_recall_ranked_t r;
    eg_arena_t a;
    size_t sum = 0, all;

    eg_arena_init(&a);
    eg_recall_req_init(&req);
    rank(&a, &req, "Maya", &r);
    all = r.n;
    cr_assert_gt(all, 20);
    cr_assert_leq(r.stats.tokens, 4096);

    /* max_tokens: the kept results' tokens add up to at most it, and the next one would not
     * have fit (the fill stops at the first misfit). */
    req.max_tokens = 60;
    rank(&a, &req, "Maya", &r);
    cr_assert_gt(r.n, 0);
    cr_assert_lt(r.n, all);
    for (size_t i = 0; i < r.n; i++)
        sum += eg_mindex_unit(B.ix, r.results[i].slot)->tokens;
    cr_assert_eq(sum, r.stats.tokens);
    cr_assert_leq(sum, 60);
    cr_assert_lt(r.n, r.stats.after_floor);
    cr_assert_gt(sum + eg_mindex_unit(B.ix, r.results[r.n].slot)->tokens, 60);

    /* A semantic floor of 0.99 leaves the semantic arm (and so the graph seeds) empty. */
    eg_recall_req_init(&req);
    req.min_semantic = 0.99f;
    rank(&a, &req, "What car does Maya drive?", &r);
    cr_assert_eq(r.stats.arm_hits[EG_RECALL_ARM_SEMANTIC], 0);
    cr_assert_eq(r.stats.arm_hits[EG_RECALL_ARM_GRAPH], 0);
    cr_assert_gt(r.n, 0, "the keyword arm still answers");
    /* A final floor drops the weaker results. */
    eg_recall_req_init(&req);
    req.min_final = 0.5f;
    rank(&a, &req, "What car does Maya drive?", &r);
    cr_assert_gt(r.n, 0);
    for (size_t i = 0; i < r.n; i++)
        cr_assert_geq(r.results[i].final, 0.5f);
    cr_assert_lt(r.stats.after_floor, r.stats.fused);

    /* Budget low: at most 100 per arm per type and 2 x 100 results. */
    eg_recall_req_init(&req);
    req.budget = EG_RECALL_BUDGET_LOW;
    rank(&a, &req, "Maya", &r);
    cr_assert_leq(r.n, 200);
    cr_assert_leq(r.stats.arm_hits[EG_RECALL_ARM_SEMANTIC], 100 * 2);

    /* A query vector of the wrong dimension is refused. */
    float v[8] = {1};
    eg_recall_req_init(&req);
    req.query = "x";
    req.query_len = 1;
    req.query_vec = v;
    req.query_dim = 8;
    cr_assert_eq(eg_recall_rank(&a, B.ix, &req, B.qts, &r), EG_EINVAL);
    eg_arena_destroy(&a);
}

Test(recall_quality, empty_index)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    eg_recall_req_t req;
    eg_recall_ranked_t r;
    eg_arena_t a;

    eg_arena_init(&a);
    eg_recall_req_init(&req);
    req.query = "anything at all";
    req.query_len = strlen(req.query);
    cr_assert_eq(eg_recall_rank(&a, ix, &req, B.qts, &r), 0);
    cr_assert_eq(r.n, 0);
    cr_assert_eq(r.stats.allowed, 0);
    eg_arena_destroy(&a);
    eg_mindex_free(ix);
}
