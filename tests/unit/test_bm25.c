/* BM25 inverted index: scores against hand-computed values, stats under remove/update, filters. */
#include <criterion/criterion.h>
#include <string.h>

#include "engram/bm25.h"
#include "engram/error.h"

#define T(...) ((const char *const[]){__VA_ARGS__})

/* d0 "the cat sat" (3 terms), d1 "the dog sat on the mat" (6), d2 "cat cat dog" (3):
 * N = 3, avgdl = 12 / 3 = 4. */
static eg_bm25_t *corpus(void)
{
    eg_bm25_t *bm = eg_bm25_new();

    cr_assert_eq(eg_bm25_add(bm, 0, T("the", "cat", "sat"), 3), 0);
    cr_assert_eq(eg_bm25_add(bm, 1, T("the", "dog", "sat", "on", "the", "mat"), 6), 0);
    cr_assert_eq(eg_bm25_add(bm, 2, T("cat", "cat", "dog"), 3), 0);
    return bm;
}

Test(bm25, hand_computed_scores)
{
    eg_bm25_t *bm = corpus();
    eg_bm25_query_t q = {.k = 10};
    eg_bm25_hit_t hits[10];
    size_t n;

    cr_assert_eq(eg_bm25_count(bm), 3);
    cr_assert_float_eq(eg_bm25_avgdl(bm), 4.0, 1e-12);
    cr_assert_eq(eg_bm25_df(bm, "the"), 2);
    cr_assert_eq(eg_bm25_terms(bm), 6);

    /* "cat": df 2, idf = ln(1 + 1.5/2.5) = ln 1.6 = 0.470004.
     * d0: tf 1, dl 3: K = 1.2 (0.25 + 0.75 * 3/4) = 0.975; 0.470004 * 2.2 / 1.975 = 0.523548.
     * d2: tf 2, dl 3: 0.470004 * 4.4 / 2.975 = 0.695131. */
    n = eg_bm25_search(bm, T("cat"), 1, &q, hits);
    cr_assert_eq(n, 2);
    cr_assert_eq(hits[0].doc, 2);
    cr_assert_float_eq(hits[0].score, 0.695131f, 1e-5);
    cr_assert_eq(hits[1].doc, 0);
    cr_assert_float_eq(hits[1].score, 0.523548f, 1e-5);
    cr_assert_float_eq(eg_bm25_score(bm, 0, T("cat"), 1), 0.523548346501579, 1e-9);

    /* "dog mat" (+ a repeated term and an unknown one, which change nothing).
     * d1: dog (idf ln 1.6, K = 1.2 (0.25 + 0.75 * 6/4) = 1.65): 0.470004 * 2.2 / 2.65
     *     + mat (df 1, idf ln(1 + 2.5/1.5) = 0.980829): 0.980829 * 2.2 / 2.65 = 1.204465.
     * d2: dog, tf 1, dl 3: 0.523548. */
    n = eg_bm25_search(bm, T("dog", "mat", "dog", "zebra"), 4, &q, hits);
    cr_assert_eq(n, 2);
    cr_assert_eq(hits[0].doc, 1);
    cr_assert_float_eq(hits[0].score, 1.204465f, 1e-5);
    cr_assert_eq(hits[1].doc, 2);
    cr_assert_float_eq(hits[1].score, 0.523548f, 1e-5);

    cr_assert_eq(eg_bm25_search(bm, T("zebra"), 1, &q, hits), 0);
    q.k = 1;
    cr_assert_eq(eg_bm25_search(bm, T("cat"), 1, &q, hits), 1);
    cr_assert_eq(hits[0].doc, 2);
    eg_bm25_free(bm);
}

Test(bm25, remove_and_update_keep_stats)
{
    eg_bm25_t *bm = corpus();
    eg_bm25_query_t q = {.k = 10};
    eg_bm25_hit_t hits[10];

    cr_assert_eq(eg_bm25_add(bm, 1, T("x"), 1), EG_ECONFLICT);
    cr_assert_eq(eg_bm25_remove(bm, 2), 0);
    cr_assert_eq(eg_bm25_remove(bm, 2), EG_ENOTFOUND);
    cr_assert_eq(eg_bm25_remove(bm, 99), EG_ENOTFOUND);
    cr_assert_not(eg_bm25_has(bm, 2));
    cr_assert_eq(eg_bm25_count(bm), 2);
    cr_assert_float_eq(eg_bm25_avgdl(bm), 4.5, 1e-12);
    cr_assert_eq(eg_bm25_df(bm, "cat"), 1);
    cr_assert_eq(eg_bm25_df(bm, "dog"), 1);

    /* N 2, avgdl 4.5, cat df 1: ln(1 + 1.5/1.5) * 2.2 / (1 + 1.2 (0.25 + 0.75 * 3/4.5)). */
    cr_assert_eq(eg_bm25_search(bm, T("cat"), 1, &q, hits), 1);
    cr_assert_eq(hits[0].doc, 0);
    cr_assert_float_eq(hits[0].score, 0.802591f, 1e-5);

    /* Re-add d2, then replace d0 by "cat cat cat bird": N 3, total 6 + 3 + 4 = 13.
     * d0: ln 1.6 * 3 * 2.2 / (3 + 1.2 (0.25 + 0.75 * 4 / (13/3))) = 0.750956. */
    cr_assert_eq(eg_bm25_add(bm, 2, T("cat", "cat", "dog"), 3), 0);
    cr_assert_eq(eg_bm25_update(bm, 0, T("cat", "cat", "cat", "bird"), 4), 0);
    cr_assert_float_eq(eg_bm25_avgdl(bm), 13.0 / 3, 1e-12);
    cr_assert_eq(eg_bm25_df(bm, "the"), 1);
    cr_assert_eq(eg_bm25_df(bm, "bird"), 1);
    cr_assert_eq(eg_bm25_search(bm, T("cat"), 1, &q, hits), 2);
    cr_assert_eq(hits[0].doc, 0);
    cr_assert_float_eq(hits[0].score, 0.750956f, 1e-5);
    cr_assert_eq(hits[1].doc, 2);
    cr_assert_float_eq(hits[1].score, 0.707479f, 1e-5);

    /* Update of an absent doc adds it; removing everything empties the dictionary. */
    cr_assert_eq(eg_bm25_update(bm, 7, T("owl"), 1), 0);
    cr_assert_eq(eg_bm25_count(bm), 4);
    for (uint32_t d = 0; d < 8; d++)
        eg_bm25_remove(bm, d);
    cr_assert_eq(eg_bm25_count(bm), 0);
    cr_assert_eq(eg_bm25_terms(bm), 0);
    cr_assert_float_eq(eg_bm25_avgdl(bm), 0.0, 1e-12);
    cr_assert_eq(eg_bm25_search(bm, T("cat"), 1, &q, hits), 0);
    /* Terms freed above leave tombstones; re-adding must find and reuse cleanly. */
    cr_assert_eq(eg_bm25_add(bm, 3, T("cat", "owl", ""), 3), 0);
    cr_assert_eq(eg_bm25_df(bm, "cat"), 1);
    cr_assert_float_eq(eg_bm25_avgdl(bm), 2.0, 1e-12);
    eg_bm25_free(bm);
}

Test(bm25, allowed_bitmap)
{
    eg_bm25_t *bm = corpus();
    uint64_t allow = 1ULL << 0 | 1ULL << 1; /* not d2 */
    eg_bm25_query_t q = {.k = 10, .allow = &allow, .allow_nbits = 64};
    eg_bm25_hit_t hits[10];

    cr_assert_eq(eg_bm25_search(bm, T("cat", "dog"), 2, &q, hits), 2);
    cr_assert_eq(hits[0].doc, 0);
    cr_assert_eq(hits[1].doc, 1);
    q.allow_nbits = 1; /* only d0 is inside the bitmap */
    cr_assert_eq(eg_bm25_search(bm, T("cat", "dog"), 2, &q, hits), 1);
    cr_assert_eq(hits[0].doc, 0);
    /* Filtered searches leave no residue in the scratch accumulator. */
    q.allow = NULL;
    cr_assert_eq(eg_bm25_search(bm, T("cat"), 1, &q, hits), 2);
    cr_assert_float_eq(hits[1].score, 0.523548f, 1e-5);
    eg_bm25_free(bm);
}

/* Many documents with churn: stats and search stay consistent with a from-scratch rebuild. */
Test(bm25, churn_matches_rebuild)
{
    static const char *vocab[] = {"alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"};
    eg_bm25_t *a = eg_bm25_new(), *b = eg_bm25_new();
    const char *terms[6];
    eg_bm25_query_t q = {.k = 20};
    eg_bm25_hit_t ha[20], hb[20];
    uint64_t seed = 7;

    for (uint32_t d = 0; d < 2000; d++) {
        for (int i = 0; i < 6; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            terms[i] = vocab[(seed >> 33) % 8];
        }
        eg_bm25_add(a, d, terms, 1 + d % 6);
        if (d % 3 == 0)
            eg_bm25_add(b, d, terms, 1 + d % 6);
    }
    for (uint32_t d = 0; d < 2000; d++)
        if (d % 3 != 0)
            cr_assert_eq(eg_bm25_remove(a, d), 0);
    cr_assert_eq(eg_bm25_count(a), eg_bm25_count(b));
    cr_assert_float_eq(eg_bm25_avgdl(a), eg_bm25_avgdl(b), 1e-9);
    cr_assert_eq(eg_bm25_search(a, T("gamma", "eta"), 2, &q, ha), 20);
    cr_assert_eq(eg_bm25_search(b, T("gamma", "eta"), 2, &q, hb), 20);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(ha[i].doc, hb[i].doc);
        cr_assert_float_eq(ha[i].score, hb[i].score, 1e-6);
    }
    cr_assert_gt(eg_bm25_bytes(a), 2000 / 3 * 8);
    eg_bm25_free(a);
    eg_bm25_free(b);
}
