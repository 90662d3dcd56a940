/* Vector index: slots, top-k against a naive reference, threshold, filters, int8 ranking. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/embed.h"
#include "engram/error.h"
#include "engram/vindex.h"

#define DIM 48

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void rand_unit(float *v, size_t dim)
{
    double n = 0;
    for (size_t i = 0; i < dim; i++) {
        v[i] = frand();
        n += (double)v[i] * v[i];
    }
    for (size_t i = 0; i < dim; i++)
        v[i] = (float)(v[i] / sqrt(n));
}

/* Reference: score every live slot with a plain double loop, sort, cut. */
typedef struct {
    uint32_t slot;
    double score;
} ref_t;

static int cmp_ref(const void *a, const void *b)
{
    const ref_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static size_t naive(const float *vecs, const bool *live, size_t n, const float *q, size_t k,
                    double min, ref_t *out)
{
    size_t m = 0;
    for (size_t s = 0; s < n; s++) {
        double d = 0;
        if (!live[s])
            continue;
        for (size_t i = 0; i < DIM; i++)
            d += (double)vecs[s * DIM + i] * q[i];
        if (d >= min)
            out[m++] = (ref_t){(uint32_t)s, d};
    }
    qsort(out, m, sizeof(*out), cmp_ref);
    return m < k ? m : k;
}

Test(vindex, dot_matches_naive)
{
    float a[37], b[37];
    double ref = 0;

    rand_unit(a, 37);
    rand_unit(b, 37);
    for (int i = 0; i < 37; i++)
        ref += (double)a[i] * b[i];
    cr_assert_float_eq(eg_vec_dot(a, b, 37), ref, 1e-6);
    cr_assert_float_eq(eg_vec_dot(a, b, 0), 0.0, 0);
}

Test(vindex, slots_add_remove_update)
{
    eg_vindex_t *vi = eg_vindex_new(DIM, EG_VINDEX_F32);
    float v[DIM], got[DIM];
    uint32_t s[5], r;

    cr_assert_null(eg_vindex_new(0, EG_VINDEX_F32));
    for (int i = 0; i < 5; i++) {
        rand_unit(v, DIM);
        cr_assert_eq(eg_vindex_add(vi, v, &s[i]), 0);
        cr_assert_eq(s[i], (uint32_t)i);
    }
    cr_assert_eq(eg_vindex_count(vi), 5);
    cr_assert_eq(eg_vindex_get(vi, 4, got), 0);
    cr_assert_eq(memcmp(v, got, sizeof(v)), 0);

    cr_assert_eq(eg_vindex_remove(vi, 1), 0);
    cr_assert_eq(eg_vindex_remove(vi, 3), 0);
    cr_assert_eq(eg_vindex_remove(vi, 3), EG_ENOTFOUND);
    cr_assert_eq(eg_vindex_remove(vi, 77), EG_ENOTFOUND);
    cr_assert_eq(eg_vindex_update(vi, 1, v), EG_ENOTFOUND);
    cr_assert_eq(eg_vindex_get(vi, 1, got), EG_ENOTFOUND);
    cr_assert_not(eg_vindex_live(vi, 1));
    cr_assert_eq(eg_vindex_count(vi), 3);
    cr_assert_eq(eg_vindex_slots(vi), 5);

    /* Removed slots are reused (last removed first) before the index grows. */
    cr_assert_eq(eg_vindex_add(vi, v, &r), 0);
    cr_assert_eq(r, 3);
    cr_assert_eq(eg_vindex_add(vi, v, &r), 0);
    cr_assert_eq(r, 1);
    cr_assert_eq(eg_vindex_add(vi, v, &r), 0);
    cr_assert_eq(r, 5);

    rand_unit(v, DIM);
    cr_assert_eq(eg_vindex_update(vi, 0, v), 0);
    cr_assert_eq(eg_vindex_get(vi, 0, got), 0);
    cr_assert_eq(memcmp(v, got, sizeof(v)), 0);
    cr_assert_geq(eg_vindex_bytes(vi), 6 * DIM * sizeof(float));
    /* Reserving keeps every vector and the slot numbering. */
    eg_vindex_reserve(vi, 1000);
    cr_assert_geq(eg_vindex_bytes(vi), 1000 * DIM * sizeof(float));
    cr_assert_eq(eg_vindex_get(vi, 0, got), 0);
    cr_assert_eq(memcmp(v, got, sizeof(v)), 0);
    cr_assert_eq(eg_vindex_add(vi, v, &r), 0);
    cr_assert_eq(r, 6);
    eg_vindex_free(vi);
    eg_vindex_free(NULL);
}

Test(vindex, int8_roundtrip)
{
    eg_vindex_t *vi = eg_vindex_new(DIM, EG_VINDEX_I8);
    float v[DIM], got[DIM], zero[DIM] = {0};
    uint32_t s;

    rand_unit(v, DIM);
    cr_assert_eq(eg_vindex_add(vi, v, &s), 0);
    cr_assert_eq(eg_vindex_get(vi, s, got), 0);
    for (int i = 0; i < DIM; i++)
        cr_assert_float_eq(got[i], v[i], 0.5f / 127);
    /* A zero vector quantises to zeros with scale 0 and scores 0. */
    cr_assert_eq(eg_vindex_add(vi, zero, &s), 0);
    eg_vhit_t hits[2];
    eg_vsearch_t o = EG_VSEARCH_INIT(2);
    cr_assert_eq(eg_vindex_search(vi, v, &o, hits), 2);
    cr_assert_float_eq(hits[0].score, 1.0f, 0.02f);
    cr_assert_eq(hits[1].slot, 1);
    cr_assert_float_eq(hits[1].score, 0.0f, 0);
    cr_assert_lt(eg_vindex_bytes(vi), 4096);
    eg_vindex_free(vi);
}

static bool even_only(uint32_t slot, void *udata)
{
    (*(int *)udata)++;
    return slot % 2 == 0;
}

#define NV 3000

/* Random add/remove/update churn, then every query is checked against the naive reference. */
Test(vindex, topk_matches_naive)
{
    float *vecs = malloc(sizeof(float) * NV * DIM), q[DIM];
    bool *live = calloc(NV, sizeof(bool));
    eg_vindex_t *vi = eg_vindex_new(DIM, EG_VINDEX_F32);
    ref_t *ref = malloc(sizeof(ref_t) * NV);
    eg_vhit_t hits[50];
    uint64_t allow[(NV + 63) / 64];
    size_t n = 0;

    for (int i = 0; i < NV; i++) {
        uint32_t s;
        rand_unit(q, DIM);
        cr_assert_eq(eg_vindex_add(vi, q, &s), 0);
        memcpy(vecs + s * DIM, q, sizeof(q));
        live[s] = true;
        n = s + 1 > n ? s + 1 : n;
        if (i % 5 == 4) { /* remove a pseudo-random earlier slot */
            uint32_t r = (uint32_t)(rng % n);
            if (live[r]) {
                cr_assert_eq(eg_vindex_remove(vi, r), 0);
                live[r] = false;
            }
        }
        if (i % 7 == 6) {
            uint32_t u = (uint32_t)(rng % n);
            rand_unit(q, DIM);
            cr_assert_eq(eg_vindex_update(vi, u, q) == 0, live[u]);
            if (live[u])
                memcpy(vecs + u * DIM, q, sizeof(q));
        }
    }
    cr_assert_eq(eg_vindex_slots(vi), n);

    for (int t = 0; t < 20; t++) {
        eg_vsearch_t o = EG_VSEARCH_INIT(t % 2 ? 10 : 50);
        size_t m, want;

        rand_unit(q, DIM);
        if (t % 3 == 1)
            o.min_score = 0.3f;
        want = naive(vecs, live, n, q, o.k, o.min_score, ref);
        m = eg_vindex_search(vi, q, &o, hits);
        cr_assert_eq(m, want, "query %d: %zu hits, want %zu", t, m, want);
        for (size_t i = 0; i < m; i++) {
            cr_assert_eq(hits[i].slot, ref[i].slot, "query %d rank %zu", t, i);
            cr_assert_float_eq(hits[i].score, ref[i].score, 1e-5);
            cr_assert_geq(hits[i].score, o.min_score);
        }
    }

    /* Filter callback: only even slots; the callback is asked only about live slots. */
    {
        eg_vsearch_t o = EG_VSEARCH_INIT(10);
        int asked = 0;
        bool *even = calloc(NV, sizeof(bool));
        for (size_t s = 0; s < n; s++)
            even[s] = live[s] && s % 2 == 0;
        o.filter = even_only;
        o.udata = &asked;
        size_t want = naive(vecs, even, n, q, 10, -1e30, ref);
        cr_assert_eq(eg_vindex_search(vi, q, &o, hits), want);
        cr_assert_eq((size_t)asked, eg_vindex_count(vi));
        for (size_t i = 0; i < want; i++)
            cr_assert_eq(hits[i].slot, ref[i].slot);
        free(even);
    }

    /* Bitmap: slots below 1000 divisible by 3. */
    {
        eg_vsearch_t o = EG_VSEARCH_INIT(10);
        bool *sel = calloc(NV, sizeof(bool));
        memset(allow, 0, sizeof(allow));
        for (size_t s = 0; s < n; s++) {
            if (s % 3 == 0)
                allow[s / 64] |= 1ULL << (s % 64);
            sel[s] = live[s] && s % 3 == 0 && s < 1000;
        }
        o.allow = allow;
        o.allow_nbits = 1000;
        size_t want = naive(vecs, sel, n, q, 10, -1e30, ref);
        cr_assert_eq(eg_vindex_search(vi, q, &o, hits), want);
        for (size_t i = 0; i < want; i++)
            cr_assert_eq(hits[i].slot, ref[i].slot);
        free(sel);
    }
    eg_vindex_free(vi);
    free(vecs);
    free(live);
    free(ref);
}

/* int8 must rank like float32 on what it will hold: builtin embeddings of short facts. */
Test(vindex, int8_ranking_overlap)
{
    static const char *who[] = {"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"};
    static const char *verb[] = {"visited",    "moved to",         "works in", "loves",
                                 "studied in", "bought a flat in", "hates",    "painted"};
    static const char *what[] = {"Paris", "Berlin", "Tokyo",  "Lima",  "Oslo",  "Cairo",
                                 "Quito", "Perth",  "Austin", "Kyoto", "Dakar", "Seoul"};
    static const char *when[] = {"in May", "last year", "in 2019", "on weekends", "yesterday", ""};
    const size_t D = EG_EMBED_DEFAULT_DIM, NF = 2000, NQ = 40, K = 10;
    eg_vindex_t *f = eg_vindex_new(D, EG_VINDEX_F32), *q8 = eg_vindex_new(D, EG_VINDEX_I8);
    float *v = malloc(sizeof(float) * D);
    char text[160];
    eg_vhit_t hf[10], hq[10];
    size_t overlap = 0, total = 0;
    uint32_t s;

    for (size_t i = 0; i < NF + NQ; i++) {
        uint64_t r = (i + 1) * 0x9e3779b97f4a7c15ULL;
        r ^= r >> 29;
        snprintf(text, sizeof(text), "%s %s %s %s with %s", who[r % 8], verb[(r >> 8) % 8],
                 what[(r >> 16) % 12], when[(r >> 24) % 6], who[(r >> 32) % 8]);
        eg_embed_builtin_vec(text, strlen(text), v, D);
        if (i < NF) {
            eg_vindex_add(f, v, &s);
            eg_vindex_add(q8, v, &s);
            continue;
        }
        eg_vsearch_t o = EG_VSEARCH_INIT(K);
        size_t nf = eg_vindex_search(f, v, &o, hf), nq = eg_vindex_search(q8, v, &o, hq);
        cr_assert_eq(nf, K);
        cr_assert_eq(nq, K);
        for (size_t a = 0; a < K; a++)
            for (size_t b = 0; b < K; b++)
                overlap += hf[a].slot == hq[b].slot;
        total += K;
    }
    cr_log_info("int8 top-10 overlap %.3f", (double)overlap / total);
    cr_assert_geq((double)overlap / total, 0.9);
    cr_assert_lt(eg_vindex_bytes(q8) * 3, eg_vindex_bytes(f));
    eg_vindex_free(f);
    eg_vindex_free(q8);
    free(v);
}
