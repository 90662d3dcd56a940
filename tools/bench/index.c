/* tools/bench/index: in-process benchmark of the memory engine's retrieval structures.
 *
 * Builds N synthetic facts from a fixed-seed generator, embeds them with the builtin provider,
 * inserts them into an int8 and a float32 vector index and a BM25 index, then times top-k queries
 * and reports embedding throughput, query latency percentiles, int8-vs-float32 top-10 overlap and
 * index memory per fact. No I/O, no Redis: this is the floor under recall's latency.
 *
 * Then it builds the whole per-bank memory index (engram/mindex.h) over the same facts, as the
 * loader would: entities (the fact's people and place), one tag in eight, a document per ten
 * facts, and semantic links as many as the corpus really has (the mean number of other facts at
 * cosine >= 0.7 among a facts's top 20, measured on a sample), and reports eg_mindex_bytes() per
 * fact, insert rate, and the time order and temporal-neighbour costs.
 *
 *   build-release/tools/bench/bench_index [facts (100000)] [queries (1000)] [links per fact]
 *
 * links per fact: semantic links each fact makes in the memory index (default: as measured).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bm25.h"
#include "engram/embed.h"
#include "engram/mindex.h"
#include "engram/util.h"
#include "engram/vindex.h"

#define MAX_TERMS 64

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
    /* splitmix64: fixed seed, so every run builds the same corpus. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Skewed pick in [0, n): low indices are much more frequent, as words are in real text. */
static size_t zipfish(size_t n)
{
    double u = (double)(rnd() >> 11) / 9007199254740992.0;
    return (size_t)(u * u * u * (double)n);
}

static const char *syll[] = {"ka", "ro", "mi",  "tan", "el",  "sor", "vi",  "len", "dra", "pe",
                             "lu", "ni", "gar", "to",  "bel", "sha", "qui", "mon", "ar",  "zu"};

/* A pronounceable pseudo-word for index i of a vocabulary (2-4 syllables). */
static void pseudo_word(size_t i, uint64_t salt, char *out)
{
    uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ULL ^ salt;
    int n = 2 + (int)(h % 3);

    out[0] = '\0';
    for (int k = 0; k < n; k++) {
        h = h * 6364136223846793005ULL + 1442695040888963407ULL;
        strcat(out, syll[(h >> 33) % EG_ARRAY_SIZE(syll)]);
    }
}

static const char *verbs[] = {"visited",   "moved to",    "works at", "loves",   "studied",
                              "bought",    "sold",        "repaired", "painted", "wrote about",
                              "met",       "called",      "hates",    "prefers", "recommended",
                              "borrowed",  "lent",        "cooked",   "ordered", "planned",
                              "cancelled", "rescheduled", "reviewed", "built",   "designed"};
static const char *times[] = {"yesterday",    "last May",  "in 2021",       "on Monday",
                              "every week",   "last year", "in the spring", "at night",
                              "this morning", ""};
static const char *adjs[] = {"old",    "new",       "red",    "small",  "expensive", "quiet",
                             "broken", "favourite", "shared", "rented", "local",     "remote"};

#define NNAMES  2000
#define NNOUNS  5000
#define NPLACES 800

/* One fact: "<Name> <verb> the <adj> <noun> in <Place> <time> with <Name2>." ents (optional)
 * gets the vocabulary indexes of name, name2 and place. */
static void gen_fact(char *out, size_t cap, size_t ents[3])
{
    char name[32], name2[32], noun[32], place[32];
    size_t n1 = zipfish(NNAMES), n2 = zipfish(NNAMES), no = zipfish(NNOUNS), pl = zipfish(NPLACES);

    if (ents) {
        ents[0] = n1;
        ents[1] = n2;
        ents[2] = NNAMES + pl;
    }
    pseudo_word(n1, 1, name);
    pseudo_word(n2, 1, name2);
    pseudo_word(no, 2, noun);
    pseudo_word(pl, 3, place);
    name[0] = (char)toupper((unsigned char)name[0]);
    name2[0] = (char)toupper((unsigned char)name2[0]);
    place[0] = (char)toupper((unsigned char)place[0]);
    snprintf(out, cap, "%s %s the %s %s in %s %s with %s.", name, verbs[rnd() % 25],
             adjs[rnd() % 12], noun, place, times[rnd() % 10], name2);
}

/* A query as a user would ask: a few of the words of some fact. */
static void gen_query(char *out, size_t cap)
{
    char name[32], noun[32], place[32];

    pseudo_word(zipfish(NNAMES), 1, name);
    pseudo_word(zipfish(NNOUNS), 2, noun);
    pseudo_word(zipfish(NPLACES), 3, place);
    switch (rnd() % 3) {
    case 0:
        snprintf(out, cap, "What did %s do with the %s?", name, noun);
        break;
    case 1:
        snprintf(out, cap, "Who %s something in %s?", verbs[rnd() % 25], place);
        break;
    default:
        snprintf(out, cap, "%s %s %s", name, noun, place);
    }
}

/* The bench's own tokenizer for BM25 (the engine will use text.h): lowercase alphanumeric runs. */
static size_t tokenize(const char *s, char *buf, const char **terms)
{
    size_t n = 0;
    char *w = buf;

    while (*s && n < MAX_TERMS) {
        while (*s && !isalnum((unsigned char)*s))
            s++;
        if (!*s)
            break;
        terms[n++] = w;
        while (isalnum((unsigned char)*s))
            *w++ = (char)tolower((unsigned char)*s++);
        *w++ = '\0';
    }
    return n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    printf("  %-38s p50 %8.3f ms   p99 %8.3f ms   max %8.3f ms\n", what, ns[n / 2] / 1e6,
           ns[n * 99 / 100] / 1e6, ns[n - 1] / 1e6);
}

static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * 4;
}

/* ---- the whole memory index ------------------------------------------------------------------ */

static const char *bench_uuid(char out[EG_MEM_UUID_LEN + 1], unsigned kind, size_t n)
{
    snprintf(out, EG_MEM_UUID_LEN + 1, "%08x-0000-4000-8000-%012u", kind,
             (unsigned)(n % 1000000000));
    return out;
}

/* Mean number of other facts at cosine >= 0.7 among each fact's top 20, over a sample: how many
 * semantic links retain gives a fact (each stored on both ends, so also the mean a fact holds). */
static double semantic_degree(const eg_vindex_t *vi, eg_embedder_t *emb, const char *const *texts,
                              size_t n)
{
    size_t sample = EG_MIN(n, (size_t)500), total = 0, dim = eg_vindex_dim(vi);
    float *v = eg_xmalloc(dim * sizeof(float));
    eg_vhit_t hits[21];

    for (size_t i = 0; i < sample; i++) {
        eg_vsearch_t o = EG_VSEARCH_INIT(21);
        size_t k = (i * 7919) % n;
        o.min_score = 0.7f;
        eg_embed_run(emb, &texts[k], 1, v, NULL, NULL);
        total += eg_vindex_search(vi, v, &o, hits) - 1; /* itself */
    }
    free(v);
    return sample ? (double)total / (double)sample : 0;
}

static void bench_mindex(eg_embedder_t *emb, const eg_vindex_t *vi8, const char *const *texts,
                         const size_t *ents, size_t n, long nlinks)
{
    const size_t dim = eg_vindex_dim(vi8), batch = 256;
    static const char *tags[] = {"work",  "family", "travel", "health",
                                 "money", "hobby",  "school", "home"};
    double degree = semantic_degree(vi8, emb, texts, n);
    size_t fwd = nlinks >= 0 ? (size_t)nlinks : (size_t)(degree / 2 + 0.5);
    size_t nents = NNAMES + NPLACES, ndone = 0;
    eg_mindex_t *ix = eg_mindex_new(dim);
    float *vecs = eg_xmalloc(batch * dim * sizeof(float));
    char(*ids)[EG_MEM_UUID_LEN + 1] = eg_xmalloc(n * sizeof(*ids));
    char(*eids)[EG_MEM_UUID_LEN + 1] = eg_xmalloc(nents * sizeof(*eids));
    uint64_t put_ns = 0, t0;
    size_t bytes, nt, count;
    long rss0 = rss_kib(), rss1;
    eg_mindex_link_t near[20];

    printf("memory index (engram/mindex.h) over the same %zu facts:\n", n);
    printf("  semantic degree (facts at cosine >= 0.7 in a fact's top 20, 500 sampled): %.2f -> "
           "%zu links made per fact%s, held on both ends\n",
           degree, fwd, nlinks >= 0 ? " (as asked)" : "");
    /* As the loader does: it knows the bank's size. */
    eg_mindex_reserve(ix, n);
    for (size_t e = 0; e < nents; e++) {
        char name[32];
        pseudo_word(e < NNAMES ? e : e - NNAMES, e < NNAMES ? 1 : 3, name);
        name[0] = (char)toupper((unsigned char)name[0]);
        eg_mem_entity_t x = {.id = bench_uuid(eids[e], 2, e),
                             .canonical_name = name,
                             .first_seen = EG_MEM_TIME_NONE,
                             .last_seen = EG_MEM_TIME_NONE};
        eg_mindex_put_entity(ix, &x);
    }
    for (size_t i = 0; i < n; i += batch) {
        size_t m = EG_MIN(batch, n - i);
        eg_embed_run(emb, texts + i, m, vecs, NULL, NULL);
        t0 = eg_mono_ns();
        for (size_t j = 0; j < m; j++) {
            size_t k = i + j;
            char doc[32];
            const char *eid[3] = {eids[ents[3 * k]], eids[ents[3 * k + 1]], eids[ents[3 * k + 2]]};
            eg_mem_link_t links[20];
            size_t nl = k ? EG_MIN(fwd, (size_t)20) : 0;
            snprintf(doc, sizeof(doc), "doc-%zu", k / 10);
            for (size_t l = 0; l < nl; l++) {
                size_t other = (size_t)(rnd() % k);
                links[l] = (eg_mem_link_t){ids[other], EG_LINK_SEMANTIC, 0.75f};
            }
            eg_mem_unit_t u = {
                .id = bench_uuid(ids[k], 1, k),
                .text = texts[k],
                .context = "",
                .type = (eg_fact_type_t)(k % 2),
                .occurred_start =
                    k % 3 ? INT64_C(1700000000000000) + (int64_t)k * 600000000 : EG_MEM_TIME_NONE,
                .occurred_end = EG_MEM_TIME_NONE,
                .mentioned_at = INT64_C(1700000000000000) + (int64_t)k * 10000,
                .created_at = INT64_C(1700000000000000) + (int64_t)k * 10000,
                .tags = &tags[k % 8],
                .ntags = k % 8 == 0 ? 1 : 0,
                .entity_ids = eid,
                .nentities = 3,
                .document_id = doc,
            };
            eg_mindex_put_unit(ix, &u, vecs + j * dim, links, nl);
        }
        put_ns += eg_mono_ns() - t0;
        ndone += m;
    }
    rss1 = rss_kib();
    count = eg_mindex_count(ix);
    bytes = eg_mindex_bytes(ix);
    printf("  put: %.2f us/fact (vector, BM25 terms, entities, tags, document, links)\n",
           put_ns / 1e3 / (double)ndone);
    printf("  eg_mindex_bytes: %.0f B/fact (%zu facts, %zu entities); process RSS growth while "
           "building it: %.0f B/fact\n",
           (double)bytes / (double)count, count, eg_mindex_entities(ix),
           (rss1 - rss0) * 1024.0 / (double)count);
    {
        size_t bv = eg_vindex_bytes(eg_mindex_vectors(ix)), bb = eg_bm25_bytes(eg_mindex_bm25(ix));
        printf("    of which vectors %.0f B, BM25 %.0f B, the rest (units, maps, entities, "
               "documents, tags, links) %.0f B\n",
               (double)bv / (double)count, (double)bb / (double)count,
               (double)(bytes - bv - bb) / (double)count);
    }
    t0 = eg_mono_ns();
    eg_mindex_by_time(ix, &nt);
    printf("  time order: first build %.2f ms (%zu units)", (eg_mono_ns() - t0) / 1e6, nt);
    {
        eg_mem_unit_t u = {.id = ids[n / 2],
                           .text = texts[n / 2],
                           .context = "",
                           .mentioned_at = INT64_C(1800000000000000),
                           .occurred_start = EG_MEM_TIME_NONE,
                           .occurred_end = EG_MEM_TIME_NONE,
                           .created_at = 0};
        eg_mindex_put_unit(ix, &u, NULL, NULL, 0);
        t0 = eg_mono_ns();
        eg_mindex_by_time(ix, &nt);
        printf(", rebuild after one change %.3f ms\n", (eg_mono_ns() - t0) / 1e6);
    }
    t0 = eg_mono_ns();
    size_t tn = 0;
    for (size_t q = 0; q < 1000; q++) {
        uint32_t s;
        if (eg_mindex_find(ix, ids[(q * 7919) % n], &s) == 0)
            tn += eg_mindex_time_near(ix, s, INT64_C(24) * 3600 * 1000000, 20, near);
    }
    printf("  time_near (24 h, 20): %.2f us/call, %.1f neighbours on average\n",
           (eg_mono_ns() - t0) / 1e3 / 1000, (double)tn / 1000);
    free(vecs);
    free(ids);
    free(eids);
    eg_mindex_free(ix);
}

int main(int argc, char **argv)
{
    size_t nfacts = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t nq = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    const size_t dim = EG_EMBED_DEFAULT_DIM, batch = 256;
    eg_embedder_t *emb = eg_embed_builtin_new(dim);
    eg_vindex_t *vi8 = eg_vindex_new(dim, EG_VINDEX_I8), *vf = eg_vindex_new(dim, EG_VINDEX_F32);
    eg_bm25_t *bm = eg_bm25_new();
    char **texts = eg_xmalloc(nfacts * sizeof(char *));
    size_t *ents = eg_xmalloc(3 * nfacts * sizeof(size_t));
    float *vecs = eg_xmalloc(batch * dim * sizeof(float)), *qv = eg_xmalloc(dim * sizeof(float));
    uint64_t *t_embed = eg_xmalloc(nq * sizeof(uint64_t)), *t_v8 = eg_xmalloc(nq * 8),
             *t_vf = eg_xmalloc(nq * 8), *t_v100 = eg_xmalloc(nq * 8), *t_bm = eg_xmalloc(nq * 8),
             *t_all = eg_xmalloc(nq * 8);
    eg_vhit_t h8[100], hf[100];
    eg_bm25_hit_t hb[100];
    char buf[512], tbuf[512];
    const char *terms[MAX_TERMS];
    uint64_t t0, embed_ns = 0, vins_ns = 0, bins_ns = 0;
    size_t overlap = 0, overlap_n = 0, bm_hits = 0;
    long rss0, rss1;

    printf("bench_index: %zu facts, %zu queries, %zu dims, builtin embedding\n", nfacts, nq, dim);
    for (size_t i = 0; i < nfacts; i++) {
        gen_fact(buf, sizeof(buf), ents + 3 * i);
        texts[i] = eg_xstrdup(buf);
    }
    printf("  sample fact: \"%s\"\n", texts[0]);

    /* As the bank loader will: it knows how many units it is about to load. */
    eg_vindex_reserve(vi8, nfacts);
    eg_vindex_reserve(vf, nfacts);
    rss0 = rss_kib();
    for (size_t i = 0; i < nfacts; i += batch) {
        size_t n = EG_MIN(batch, nfacts - i);
        uint32_t slot;

        t0 = eg_mono_ns();
        eg_embed_run(emb, (const char *const *)texts + i, n, vecs, NULL, NULL);
        embed_ns += eg_mono_ns() - t0;
        t0 = eg_mono_ns();
        for (size_t j = 0; j < n; j++)
            eg_vindex_add(vi8, vecs + j * dim, &slot);
        vins_ns += eg_mono_ns() - t0;
        t0 = eg_mono_ns();
        for (size_t j = 0; j < n; j++) {
            size_t nt = tokenize(texts[i + j], tbuf, terms);
            eg_bm25_add(bm, (uint32_t)(i + j), terms, nt);
        }
        bins_ns += eg_mono_ns() - t0;
    }
    rss1 = rss_kib();
    /* The float32 index, for comparison only, is filled after the RSS reading. */
    for (size_t i = 0; i < nfacts; i += batch) {
        size_t n = EG_MIN(batch, nfacts - i);
        uint32_t slot;

        eg_embed_run(emb, (const char *const *)texts + i, n, vecs, NULL, NULL);
        for (size_t j = 0; j < n; j++)
            eg_vindex_add(vf, vecs + j * dim, &slot);
    }
    printf("  embed: %.0f facts/s (%.2f us/fact); insert: vindex int8 %.2f us/fact, bm25 %.2f "
           "us/fact\n",
           nfacts / (embed_ns / 1e9), embed_ns / 1e3 / nfacts, vins_ns / 1e3 / nfacts,
           bins_ns / 1e3 / nfacts);

    for (size_t q = 0; q < nq; q++) {
        eg_vsearch_t o = EG_VSEARCH_INIT(10);
        eg_bm25_query_t bq = {.k = 10};
        size_t n8, nf, nt;

        gen_query(buf, sizeof(buf));
        uint64_t start = eg_mono_ns();
        eg_embed_builtin_vec(buf, strlen(buf), qv, dim);
        t_embed[q] = eg_mono_ns() - start;
        t0 = eg_mono_ns();
        n8 = eg_vindex_search(vi8, qv, &o, h8);
        t_v8[q] = eg_mono_ns() - t0;
        t0 = eg_mono_ns();
        nt = tokenize(buf, tbuf, terms);
        bm_hits += eg_bm25_search(bm, terms, nt, &bq, hb);
        t_bm[q] = eg_mono_ns() - t0;
        t_all[q] = eg_mono_ns() - start;

        t0 = eg_mono_ns();
        nf = eg_vindex_search(vf, qv, &o, hf);
        t_vf[q] = eg_mono_ns() - t0;
        for (size_t a = 0; a < nf; a++)
            for (size_t b = 0; b < n8; b++)
                overlap += hf[a].slot == h8[b].slot;
        overlap_n += nf;

        /* Recall's semantic arm: depth 100 at similarity >= 0.3. */
        o.k = 100;
        o.min_score = 0.3f;
        t0 = eg_mono_ns();
        eg_vindex_search(vi8, qv, &o, h8);
        t_v100[q] = eg_mono_ns() - t0;
    }
    printf("query latency over %zu queries:\n", nq);
    report("embed query (builtin)", t_embed, nq);
    report("vindex int8 top-10", t_v8, nq);
    report("vindex int8 top-100, score >= 0.3", t_v100, nq);
    report("vindex float32 top-10", t_vf, nq);
    report("bm25 top-10 (incl. tokenize)", t_bm, nq);
    report("embed + int8 top-10 + bm25 top-10", t_all, nq);
    printf("  int8 vs float32 top-10 overlap: %.4f; bm25 mean hits/query %.1f\n",
           overlap_n ? (double)overlap / overlap_n : 0.0, (double)bm_hits / nq);

    size_t b8 = eg_vindex_bytes(vi8), bf = eg_vindex_bytes(vf), bb = eg_bm25_bytes(bm);
    printf("memory per fact (index accounting):\n");
    printf("  vindex int8 %.0f B, vindex float32 %.0f B, bm25 %.0f B (%zu terms)\n",
           (double)b8 / nfacts, (double)bf / nfacts, (double)bb / nfacts, eg_bm25_terms(bm));
    printf("  default (int8 + bm25): %.0f B/fact; process RSS growth while building them "
           "(includes malloc overhead): %.0f B/fact\n",
           (double)(b8 + bb) / nfacts, (rss1 - rss0) * 1024.0 / nfacts);

    bench_mindex(emb, vi8, (const char *const *)texts, ents, nfacts,
                 argc > 3 ? strtol(argv[3], NULL, 10) : -1);

    for (size_t i = 0; i < nfacts; i++)
        free(texts[i]);
    free(texts);
    free(ents);
    free(vecs);
    free(qv);
    free(t_embed);
    free(t_v8);
    free(t_vf);
    free(t_v100);
    free(t_bm);
    free(t_all);
    eg_vindex_free(vi8);
    eg_vindex_free(vf);
    eg_bm25_free(bm);
    eg_embed_destroy(emb);
    return 0;
}
