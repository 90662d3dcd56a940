/* tools/bench/index: in-process benchmark of the memory engine's retrieval structures.
 *
 * Builds N synthetic facts from a fixed-seed generator, embeds them with the builtin provider,
 * inserts them into an int8 and a float32 vector index and a BM25 index, then times top-k queries
 * and reports embedding throughput, query latency percentiles, int8-vs-float32 top-10 overlap and
 * index memory per fact. No I/O, no Redis: this is the floor under recall's latency.
 *
 *   build-release/tools/bench/bench_index [facts (100000)] [queries (1000)]
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bm25.h"
#include "engram/embed.h"
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

/* One fact: "<Name> <verb> the <adj> <noun> in <Place> <time> with <Name2>." */
static void gen_fact(char *out, size_t cap)
{
    char name[32], name2[32], noun[32], place[32];

    pseudo_word(zipfish(NNAMES), 1, name);
    pseudo_word(zipfish(NNAMES), 1, name2);
    pseudo_word(zipfish(NNOUNS), 2, noun);
    pseudo_word(zipfish(NPLACES), 3, place);
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

int main(int argc, char **argv)
{
    size_t nfacts = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t nq = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    const size_t dim = EG_EMBED_DEFAULT_DIM, batch = 256;
    eg_embedder_t *emb = eg_embed_builtin_new(dim);
    eg_vindex_t *vi8 = eg_vindex_new(dim, EG_VINDEX_I8), *vf = eg_vindex_new(dim, EG_VINDEX_F32);
    eg_bm25_t *bm = eg_bm25_new();
    char **texts = eg_xmalloc(nfacts * sizeof(char *));
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
        gen_fact(buf, sizeof(buf));
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

    for (size_t i = 0; i < nfacts; i++)
        free(texts[i]);
    free(texts);
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
