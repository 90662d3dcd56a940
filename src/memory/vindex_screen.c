/* Vector index: top-k screened by sign sketches (eg_vindex_search with .screen, engram/vindex.h).
 *
 * Why: recall's semantic arm wants the best few hundred of up to 10^5 vectors, and the exact
 * int8 scan reads all of them (384 bytes each, ~38 MB at 100k: memory-bound, about half of
 * engramd's CPU per recall). The index already keeps a 384-bit sign sketch per vector (48 bytes,
 * vindex_sketch.c) whose Hamming distance to the query's estimates the angle. One pass over the
 * sketches ranks every allowed slot by that distance; only the closest candidates (a multiple of
 * k, at least a floor) are read and scored exactly. The hits carry exact scores; what can differ
 * from the exact scan is which slots are in the list: a slot whose sketch happened to land far
 * from the query's is never scored.
 *
 * The cut is a distance threshold found from a histogram of the distances (no sort), every slot
 * at the threshold distance included, so the candidate set does not depend on slot order. Then
 * the k-th exact score s_k of the candidates bounds what a missed slot would have to reach; if
 * a slot at exactly cosine s_k would land beyond the threshold with a probability above about
 * 1e-3 (binomial bound, 3 standard deviations), the candidates are widened to that bound (at
 * most once, and at most EXT_MAX more slots), so queries whose top k is spread thin get more
 * candidates instead of a worse list. */
#include <stdlib.h>
#include <string.h>

#include "engram/util.h"
#include "memory/vindex_int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define EG_SCREEN_AVX512 1
#endif

#define LANES     8
#define BLOCK_U64 (EG__SKETCH_WORDS * LANES)
#define EXCLUDED  255 /* distance byte of a slot the filter refused; real distances clamp to 254 */

static eg__vscreen_params_t params = EG__VSCREEN_DEFAULTS;
static _Thread_local eg__vscreen_stats_t last;

void eg__vindex_screen_set(const eg__vscreen_params_t *p)
{
    eg__vscreen_params_t d = EG__VSCREEN_DEFAULTS;

    params = p ? *p : d;
}

void eg__vindex_screen_last(eg__vscreen_stats_t *out)
{
    *out = last;
}

/* Distances of the 8 lanes of block blk to the query sketch qw, clamped to 254, EXCLUDED where
 * mask has no bit, into d[8]. */
static void block_dist_portable(const uint64_t *w, const uint64_t *qw, unsigned mask, uint8_t *d)
{
    for (unsigned l = 0; l < LANES; l++) {
        unsigned n = 0;
        for (size_t k = 0; k < EG__SKETCH_WORDS; k++)
            n += (unsigned)__builtin_popcountll(qw[k] ^ w[k * LANES + l]);
        d[l] = !(mask >> l & 1) ? EXCLUDED : n > 254 ? 254 : (uint8_t)n;
    }
}

#ifdef EG_SCREEN_AVX512
__attribute__((target("avx512f,avx512vpopcntdq"))) static void
block_dist_avx512(const uint64_t *w, const uint64_t *qw, unsigned mask, uint8_t *d)
{
#define EG_PC(k)                                                                                   \
    _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512((const void *)(w + (k)*LANES)),        \
                                         _mm512_set1_epi64((long long)qw[k])))
    __m512i a = _mm512_add_epi64(EG_PC(0), EG_PC(1));
    __m512i b = _mm512_add_epi64(EG_PC(2), EG_PC(3));
    __m512i c = _mm512_add_epi64(EG_PC(4), EG_PC(5));
#undef EG_PC
    __m512i acc =
        _mm512_min_epu64(_mm512_add_epi64(_mm512_add_epi64(a, b), c), _mm512_set1_epi64(254));
    acc = _mm512_mask_blend_epi64((__mmask8)mask, _mm512_set1_epi64(EXCLUDED), acc);
    _mm_storel_epi64((__m128i *)(void *)d, _mm512_cvtepi64_epi8(acc));
}
#endif

typedef void (*block_dist_fn)(const uint64_t *, const uint64_t *, unsigned, uint8_t *);

static block_dist_fn pick_block_dist(void)
{
#ifdef EG_SCREEN_AVX512
    static int avx = -1;
    if (avx < 0) {
        __builtin_cpu_init();
        avx = __builtin_cpu_supports("avx512vpopcntdq") ? 1 : 0;
    }
    if (avx && !params.portable)
        return block_dist_avx512;
#endif
    return block_dist_portable;
}

/* The allowed, live slots of bitmap word w. */
static inline uint64_t allowed_word(const eg_vindex_t *vi, const eg_vsearch_t *o, size_t w)
{
    uint64_t bits = vi->live[w];

    if (o->allow) {
        if (w * 64 >= o->allow_nbits)
            return 0;
        bits &= o->allow[w];
        if ((w + 1) * 64 > o->allow_nbits)
            bits &= (1ULL << (o->allow_nbits % 64)) - 1;
    }
    return bits;
}

/* The slots of bitmap word w whose distance byte is in [lo, hi] (bits is the word's allowed
 * slots). One compare of 64 bytes where AVX-512BW is present: only ~5% of the slots pass, so
 * walking every allowed bit would cost more than the scoring. */
static uint64_t in_range_portable(const uint8_t *d, uint64_t bits, unsigned lo, unsigned hi)
{
    uint64_t m = 0;

    while (bits) {
        unsigned i = (unsigned)__builtin_ctzll(bits);
        bits &= bits - 1;
        if (d[i] >= lo && d[i] <= hi)
            m |= 1ULL << i;
    }
    return m;
}

#ifdef EG_SCREEN_AVX512
__attribute__((target("avx512f,avx512bw"))) static uint64_t
in_range_avx512(const uint8_t *d, uint64_t bits, unsigned lo, unsigned hi)
{
    __m512i v = _mm512_loadu_si512((const void *)d);

    return bits & _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8((char)lo)) &
           _mm512_cmple_epu8_mask(v, _mm512_set1_epi8((char)hi));
}
#endif

typedef uint64_t (*in_range_fn)(const uint8_t *, uint64_t, unsigned, unsigned);

/* Score exactly, and offer to the top k, every allowed slot whose distance is in [lo, hi]. The
 * slots are listed first so that each vector can be prefetched a few slots ahead: they are
 * scattered over the index, each a few cache misses. */
static size_t rescore(const eg_vindex_t *vi, const eg_vsearch_t *o, const uint8_t *dist,
                      unsigned lo, unsigned hi, const int8_t *q, float qscale, eg_vhit_t *out,
                      size_t *n)
{
    enum { AHEAD = 8, CHUNK = 256 };
    size_t scored = 0, words = (vi->hiwater + 63) / 64, m = 0;
    uint32_t list[CHUNK];
    in_range_fn in_range = in_range_portable;

#ifdef EG_SCREEN_AVX512
    if (pick_block_dist() == block_dist_avx512 && __builtin_cpu_supports("avx512bw"))
        in_range = in_range_avx512;
#endif
    for (size_t w = 0; w <= words; w++) {
        uint64_t bits = w < words ? allowed_word(vi, o, w) : 0;
        if (bits)
            bits = in_range(dist + w * 64, bits, lo, hi);
        while (bits) {
            list[m++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
            bits &= bits - 1;
        }
        if (m + 64 <= CHUNK && w < words)
            continue;
        for (size_t i = 0; i < m; i++) {
            uint32_t s = list[i];
            float score;
            if (i + AHEAD < m) {
                const char *v = eg__vindex_slot_ptr(vi, list[i + AHEAD]);
                for (size_t off = 0; off < vi->dim; off += 64)
                    __builtin_prefetch(v + off);
                __builtin_prefetch(&vi->scale[list[i + AHEAD]]);
            }
            score = (float)eg__vec_dot_i8(q, eg__vindex_slot_ptr(vi, s), vi->dim) * qscale *
                    vi->scale[s];
            if (score >= o->min_score)
                eg_topk_offer(out, n, o->k, s, score);
        }
        scored += m;
        m = 0;
    }
    return scored;
}

size_t eg__vindex_search_screened(const eg_vindex_t *vi, const int8_t *q, float qscale,
                                  const eg_vsearch_t *o, eg_vhit_t *out)
{
    size_t words = (vi->hiwater + 63) / 64, nallowed = 0, want, cum = 0, n = 0;
    uint32_t hist[256] = {0}, hist4[4][256] = {{0}};
    uint64_t qw[EG__SKETCH_WORDS];
    unsigned cut, bound;
    uint8_t *dist;
    block_dist_fn block_dist;

    last = (eg__vscreen_stats_t){0};
    if (!vi->sketch || vi->mode != EG_VINDEX_I8 || o->k == 0)
        return SIZE_MAX;
    for (size_t w = 0; w < words; w++)
        nallowed += (size_t)__builtin_popcountll(allowed_word(vi, o, w));
    want = o->k * params.mult;
    if (want < params.floor_cands)
        want = params.floor_cands;
    /* Scoring a candidate found by the screen reads its vector out of order (a few cache misses
     * where the exact scan streams): below about 4 slots per candidate the exact scan is as
     * cheap, and a small bank is cheap either way. */
    if (nallowed <= params.min_cands || nallowed <= 4 * want)
        return SIZE_MAX;

    eg__vindex_sketch_of(q, vi->dim, qw);
    block_dist = pick_block_dist();
    dist = eg__vindex_screen_scratch((eg_vindex_t *)vi, words * 64);
    for (size_t w = 0; w < words; w++) {
        uint64_t all = allowed_word(vi, o, w), bits = all;
        if (!bits)
            continue;
        if (o->filter) {
            uint64_t b = bits;
            while (b) {
                unsigned i = (unsigned)__builtin_ctzll(b);
                b &= b - 1;
                if (!o->filter((uint32_t)(w * 64 + i), o->udata))
                    bits &= ~(1ULL << i);
            }
        }
        for (size_t j = 0; j < 64 / LANES; j++) {
            unsigned m = (unsigned)(bits >> (j * LANES)) & 0xFF;
            size_t blk = w * (64 / LANES) + j;
            uint8_t *d = dist + blk * LANES;
            /* Blocks with no allowed slot are skipped; the rescoring pass never looks at them. */
            if (!(all >> (j * LANES) & 0xFF))
                continue;
            block_dist(vi->sketch + blk * BLOCK_U64, qw, m, d);
            /* Every lane, excluded ones into the EXCLUDED bin: no branch per lane, and four
             * histograms so that equal distances in a row do not wait on each other's store. */
            for (unsigned l = 0; l < LANES; l++)
                hist4[l & 3][d[l]]++;
        }
    }
    for (unsigned h = 0; h < EXCLUDED; h++)
        hist[h] = hist4[0][h] + hist4[1][h] + hist4[2][h] + hist4[3][h];
    for (cut = 0; cut < EXCLUDED - 1; cut++)
        if ((cum += hist[cut]) >= want)
            break;
    last = (eg__vscreen_stats_t){.allowed = nallowed, .cut = cut};
    last.scored = rescore(vi, o, dist, 0, cut, q, qscale, out, &n);
    /* The k-th score (or the floor, short of k hits) is what a slot outside the candidates would
     * have to reach to change the list: widen the cut to where such a slot still lands with a
     * probability above about 1e-3, unless that would score too many more. */
    if (params.ext_z > 0) {
        float sk = n == o->k ? out[0].score : o->min_score;
        bound = eg__vindex_sketch_bound(sk, params.ext_z);
        if (bound > EXCLUDED - 1)
            bound = EXCLUDED - 1;
        if (bound > cut) {
            size_t more = 0;
            for (unsigned h = cut + 1; h <= bound; h++)
                more += hist[h];
            if (more <= params.ext_max) {
                last.extended = more;
                last.scored += rescore(vi, o, dist, cut + 1, bound, q, qscale, out, &n);
                last.cut = bound;
            } else {
                last.ext_refused = more;
            }
        }
    }
    eg_topk_sort(out, n);
    return n;
}
