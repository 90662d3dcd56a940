/* Vector index: the sketch-screened top-k (eg_vindex_search with .screen).
 *
 * On a deterministic corpus of builtin embeddings of short templated facts (the shape of
 * tools/bench/recall's corpus), the screened list must hold only exact scores at or above the
 * floor, respect the bitmap and the filter, agree between the AVX-512 and portable screens, and
 * overlap the exact list by at least the stated fraction; small candidate sets must get the exact
 * scan itself; sketches must turn on by themselves once the index is large enough. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/embed.h"
#include "engram/vindex.h"
#include "memory/vindex_int.h"

#define DIM 384
#define N   24000
#define NQ  40
#define K   300

static const char *const first[] = {"Mara", "Tomas", "Ines", "Kofi",  "Yuki", "Lena",  "Ravi",
                                    "Olga", "Sami",  "Noor", "Pavel", "Ada",  "Bruno", "Chen"};
static const char *const last[] = {"Velkan", "Soriel",    "Tanaka", "Mbeki",  "Rossi", "Haddad",
                                   "Novak",  "Lindqvist", "Okafor", "Petrov", "Duarte"};
static const char *const act[] = {"reviewed the", "presented the", "fixed a bug in the",
                                  "signed the",   "moved the",     "cancelled the"};
static const char *const obj[] = {"budget", "roadmap", "service", "contract", "servers", "launch"};
static const char *const city[] = {"Lisbon", "Berlin", "Nairobi", "Osaka", "Lima",   "Toronto",
                                   "Oslo",   "Hanoi",  "Quito",   "Perth", "Dublin", "Seville"};
static const char *const syl[] = {"ka", "ro", "mi", "tan", "el", "sor", "vi", "len"};

static uint64_t rng = 0x853c49e6748fea9bULL;

static size_t rnd(size_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (size_t)((rng >> 11) % n);
}

#define PICK(v) (v)[rnd(sizeof(v) / sizeof((v)[0]))]

static void fact(char *out, size_t cap)
{
    snprintf(out, cap, "%s %s %s %s%s%s %s in %s on 202%zu-%02zu-%02zu.", PICK(first), PICK(last),
             PICK(act), PICK(syl), PICK(syl), PICK(syl), PICK(obj), PICK(city), rnd(5), 1 + rnd(12),
             1 + rnd(28));
}

/* A question about a fact of the corpus (its person, object word and city), as the HTTP
 * benchmark asks them: many facts share two of the three, so the list is long. */
static void question(char *out, size_t cap)
{
    snprintf(out, cap, "What did %s %s do with the %s%s %s in %s?", PICK(first), PICK(last),
             PICK(syl), PICK(syl), PICK(obj), PICK(city));
}

static eg_vindex_t *corpus(size_t n)
{
    eg_vindex_t *vi = eg_vindex_new(DIM, EG_VINDEX_I8);
    float v[DIM];
    char text[200];
    uint32_t slot;

    rng = 0x853c49e6748fea9bULL;
    for (size_t i = 0; i < n; i++) {
        fact(text, sizeof(text));
        eg_embed_builtin_vec(text, strlen(text), v, DIM);
        cr_assert_eq(eg_vindex_add(vi, v, &slot), 0);
    }
    return vi;
}

static size_t common(const eg_vhit_t *a, size_t na, const eg_vhit_t *b, size_t nb)
{
    size_t c = 0;

    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (a[i].slot == b[j].slot) {
                c++;
                break;
            }
    return c;
}

static bool odd_slot(uint32_t slot, void *ud)
{
    (void)ud;
    return slot % 2 == 1;
}

Test(vindex_screen, sketches_turn_on_by_themselves)
{
    eg_vindex_t *vi = corpus(EG_VINDEX_SKETCH_AUTO - 1);
    float v[DIM];
    uint32_t slot;

    cr_assert(!eg_vindex_sketched(vi));
    eg_embed_builtin_vec("one more", 8, v, DIM);
    eg_vindex_add(vi, v, &slot);
    cr_assert(eg_vindex_sketched(vi));
    eg_vindex_free(vi);
}

Test(vindex_screen, overlap_with_exact, .timeout = 120)
{
    eg_vindex_t *vi = corpus(N);
    eg_vhit_t ex[K], sc[K], pt[K];
    uint64_t allow[(N + 63) / 64];
    size_t same = 0, total = 0, seeds_same = 0, seeds = 0, scored = 0;
    float q[DIM];
    char text[200];

    cr_assert(eg_vindex_sketched(vi));
    for (size_t s = 0; s < N; s++)
        if (s % 3)
            allow[s / 64] |= 1ULL << (s % 64);
        else
            allow[s / 64] &= ~(1ULL << (s % 64));
    for (size_t i = 0; i < NQ; i++) {
        eg_vsearch_t o = EG_VSEARCH_INIT(K);
        eg__vscreen_stats_t st;
        eg__vscreen_params_t portable = EG__VSCREEN_DEFAULTS;
        size_t ne, ns, np;

        question(text, sizeof(text));
        eg_embed_builtin_vec(text, strlen(text), q, DIM);
        o.min_score = 0.3f;
        ne = eg_vindex_search(vi, q, &o, ex);
        o.screen = true;
        ns = eg_vindex_search(vi, q, &o, sc);
        eg__vindex_screen_last(&st);
        cr_assert_eq(st.allowed, N, "the screen ran");
        cr_assert_lt(st.scored, N, "and did not score every slot (%zu)", st.scored);
        scored += st.scored;
        for (size_t j = 0; j < ns; j++) {
            float ref = -2;
            cr_assert_geq(sc[j].score, 0.3f);
            if (j)
                cr_assert_geq(sc[j - 1].score, sc[j].score);
            for (size_t m = 0; m < ne; m++)
                if (ex[m].slot == sc[j].slot)
                    ref = ex[m].score;
            if (ref > -2)
                cr_assert_eq(sc[j].score, ref, "screened scores are exact");
            else
                cr_assert_leq(sc[j].score, ex[ne - 1].score, "a slot beyond the exact list");
        }
        same += common(ex, ne, sc, ns);
        total += ne;
        seeds_same += common(ex, ne < 20 ? ne : 20, sc, ns);
        seeds += ne < 20 ? ne : 20;

        portable.portable = true;
        eg__vindex_screen_set(&portable);
        np = eg_vindex_search(vi, q, &o, pt);
        eg__vindex_screen_set(NULL);
        cr_assert_eq(np, ns, "portable screen agrees");
        for (size_t j = 0; j < np; j++)
            cr_assert(pt[j].slot == sc[j].slot && pt[j].score == sc[j].score);

        /* Bitmap and filter: never a slot they exclude. */
        o.allow = allow;
        o.allow_nbits = N - 5;
        o.filter = odd_slot;
        ns = eg_vindex_search(vi, q, &o, sc);
        for (size_t j = 0; j < ns; j++)
            cr_assert(sc[j].slot % 3 && sc[j].slot % 2 == 1 && sc[j].slot < N - 5);
    }
    cr_log_info("screened vs exact: %.1f exact hits a query, top-%d overlap %.4f, top-20 %.4f, "
                "%.0f of %d slots scored",
                (double)total / NQ, K, (double)same / (double)total,
                (double)seeds_same / (double)seeds, (double)scored / NQ, N);
    cr_assert_geq((double)same / (double)total, 0.95, "top-%d overlap %.4f", K,
                  (double)same / (double)total);
    cr_assert_geq((double)seeds_same / (double)seeds, 0.99, "top-20 overlap %.4f",
                  (double)seeds_same / (double)seeds);
    eg_vindex_free(vi);
}

Test(vindex_screen, small_sets_scan_exactly)
{
    eg_vindex_t *vi = corpus(N);
    eg_vhit_t ex[K], sc[K];
    uint64_t allow[(N + 63) / 64] = {0};
    float q[DIM];
    char text[200];
    eg__vscreen_stats_t st;

    for (size_t s = 0; s < N; s += 4) /* 6,000 candidates: fewer than 4 per wanted one */
        allow[s / 64] |= 1ULL << (s % 64);
    question(text, sizeof(text));
    eg_embed_builtin_vec(text, strlen(text), q, DIM);
    eg_vsearch_t o = {.k = K, .min_score = 0.3f, .allow = allow, .allow_nbits = N};
    size_t ne = eg_vindex_search(vi, q, &o, ex);
    o.screen = true;
    cr_assert_eq(eg_vindex_search(vi, q, &o, sc), ne);
    eg__vindex_screen_last(&st);
    cr_assert_eq(st.allowed, 0, "no screen");
    for (size_t j = 0; j < ne; j++)
        cr_assert(ex[j].slot == sc[j].slot && ex[j].score == sc[j].score);
    eg_vindex_free(vi);
}
