/* Vector index: sign sketches and the batch threshold scan (see engram/vindex.h).
 *
 * Why: retain links every new fact to the stored facts at cosine >= 0.7, and a brute-force int8
 * scan per fact costs the whole bank (100k x 384 multiply-adds) per fact, while in practice
 * almost no stored fact is that close. A 384-bit sketch per vector (48 bytes) lets one pass over
 * the index compare every query of a batch with every slot in a few instructions per pair, and
 * only the pairs whose sketches are close enough get the exact int8 dot product.
 *
 * The sketch is SimHash with a structured rotation: multiply by fixed random signs, apply a
 * Walsh-Hadamard transform (the vector zero-padded to a power of two, integer arithmetic so every
 * process computes the same bits), keep the signs of the first 384 outputs. For vectors at angle
 * t each bit differs with probability t / pi, as with independent random hyperplanes (measured on
 * builtin embeddings; the Hadamard rows are orthogonal, which only narrows the spread). The
 * screening bound for threshold c is the mean 384 * acos(c) / pi plus 4.5 standard deviations of
 * the binomial count, so a pair at exactly cosine c is dropped with probability below 1e-5.
 *
 * The scan walks slots in blocks of 8 whose sketch words are interleaved, so on x86-64 with
 * AVX-512 VPOPCNTDQ one register holds a word of 8 slots and a query is screened against the
 * block with six XOR + POPCNT + ADD; elsewhere a scalar loop does the same. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/util.h"
#include "memory/vindex_int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define EG_SKETCH_AVX512 1
#endif

#define LANES     8
#define BLOCK_U64 (EG__SKETCH_WORDS * LANES) /* words of one block of 8 slots */
#define MIN_DIM   64 /* below this the rotation mixes too few coordinates to trust the bound */
#define SCREEN_Z  4.5
#define PI        3.14159265358979323846
#define STACK_PAD 2048 /* rotations up to this size use a stack buffer */

struct eg_vbatch_s {
    size_t dim, nq;
    eg_vindex_mode_t mode;
    float min_score;
    unsigned bound;  /* screen: Hamming distance <= bound; > EG_VINDEX_SKETCH_BITS: no screen */
    float *fq;       /* float32 mode: the queries */
    int8_t *q;       /* int8 mode: the quantised queries, nq * dim */
    float *qscale;   /* their scales */
    uint64_t *words; /* their sketches, nq * EG__SKETCH_WORDS */
};

/* ---- the rotation ------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The random sign of coordinate i: fixed forever (sketches are compared across processes). The
 * first SIGNS_TABLE come from a table filled once. */
#define SIGNS_TABLE 4096
static int32_t signs[SIGNS_TABLE];

static int32_t sign_of(size_t i)
{
    return (mix64(0x656e6772616d5348ULL ^ (uint64_t)i) >> 63) ? -1 : 1;
}

static const int32_t *sign_table(void)
{
    if (signs[0] == 0)
        for (size_t i = SIGNS_TABLE; i-- > 0;)
            signs[i] = sign_of(i); /* signs[0] last: it marks the table as filled */
    return signs;
}

static size_t pad_of(size_t dim)
{
    size_t p = 1;

    while (p < dim || p < EG_VINDEX_SKETCH_BITS)
        p *= 2;
    return p;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EG_SK_FN __attribute__((optimize("O3"), target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define EG_SK_FN
#endif

/* In-place Walsh-Hadamard transform of p (a power of two >= 8) int32s. The first three stages
 * are done per group of 8; later stages run over contiguous halves, which vectorise. */
EG_SK_FN static void fwht(int32_t *restrict a, size_t p)
{
    for (size_t i = 0; i < p; i += 8) {
        int32_t *x = a + i, t[8];
        for (int k = 0; k < 8; k += 2) {
            t[k] = x[k] + x[k + 1];
            t[k + 1] = x[k] - x[k + 1];
        }
        for (int k = 0; k < 8; k += 4) {
            x[k] = t[k] + t[k + 2];
            x[k + 1] = t[k + 1] + t[k + 3];
            x[k + 2] = t[k] - t[k + 2];
            x[k + 3] = t[k + 1] - t[k + 3];
        }
        for (int k = 0; k < 4; k++) {
            int32_t u = x[k], v = x[k + 4];
            x[k] = u + v;
            x[k + 4] = u - v;
        }
    }
    for (size_t h = 8; h < p; h *= 2)
        for (size_t i = 0; i < p; i += 2 * h) {
            int32_t *restrict lo = a + i, *restrict hi = a + i + h;
            for (size_t j = 0; j < h; j++) {
                int32_t u = lo[j], v = hi[j];
                lo[j] = u + v;
                hi[j] = u - v;
            }
        }
}

/* Sketch of an int8 vector into out[EG__SKETCH_WORDS] (contiguous words). buf has pad_of(dim)
 * int32s. |values| <= 127 * 2^16 for dim <= 65536, so int32 never overflows. */
static void sketch_of(const int8_t *q, size_t dim, int32_t *buf, uint64_t *out)
{
    size_t p = pad_of(dim), n = dim < SIGNS_TABLE ? dim : SIGNS_TABLE;
    const int32_t *sg = sign_table();

    for (size_t i = 0; i < n; i++)
        buf[i] = sg[i] * (int32_t)q[i];
    for (size_t i = n; i < dim; i++)
        buf[i] = sign_of(i) * (int32_t)q[i];
    memset(buf + dim, 0, (p - dim) * sizeof(*buf));
    fwht(buf, p);
    for (size_t k = 0; k < EG__SKETCH_WORDS; k++) {
        uint64_t w = 0;
        for (size_t b = 0; b < 64; b++)
            w |= (uint64_t)(buf[k * 64 + b] > 0) << b;
        out[k] = w;
    }
}

void eg__vindex_sketch_of(const int8_t *q, size_t dim, uint64_t *out)
{
    int32_t sbuf[STACK_PAD];
    int32_t *buf = pad_of(dim) <= STACK_PAD ? sbuf : eg_xmalloc(pad_of(dim) * sizeof(*buf));

    sketch_of(q, dim, buf, out);
    if (buf != sbuf)
        free(buf);
}

static bool sketchable(const eg_vindex_t *vi)
{
    return vi->mode == EG_VINDEX_I8 && vi->dim >= MIN_DIM;
}

/* ---- upkeep -------------------------------------------------------------------------------- */

size_t eg__vindex_sketch_bytes(size_t cap)
{
    return (cap + LANES - 1) / LANES * BLOCK_U64 * sizeof(uint64_t);
}

void eg__vindex_sketch_resize(eg_vindex_t *vi, size_t ncap)
{
    size_t old = eg__vindex_sketch_bytes(vi->cap), n = eg__vindex_sketch_bytes(ncap);

    vi->sketch = eg_xrealloc(vi->sketch, n);
    if (n > old)
        memset((char *)vi->sketch + old, 0, n - old);
}

static void put_words(eg_vindex_t *vi, uint32_t slot, const uint64_t *w)
{
    uint64_t *blk = vi->sketch + (size_t)(slot / LANES) * BLOCK_U64;

    for (size_t k = 0; k < EG__SKETCH_WORDS; k++)
        blk[k * LANES + slot % LANES] = w[k];
}

void eg__vindex_sketch_slot(eg_vindex_t *vi, uint32_t slot)
{
    uint64_t w[EG__SKETCH_WORDS];
    int32_t sbuf[STACK_PAD];
    int32_t *buf = pad_of(vi->dim) <= STACK_PAD ? sbuf : eg_xmalloc(pad_of(vi->dim) * sizeof(*buf));

    sketch_of(eg__vindex_slot_ptr(vi, slot), vi->dim, buf, w);
    put_words(vi, slot, w);
    if (buf != sbuf)
        free(buf);
}

void eg_vindex_sketch_enable(eg_vindex_t *vi)
{
    int32_t *buf;

    if (!vi || vi->sketch || !sketchable(vi))
        return;
    vi->sketch = eg_xcalloc(1, eg__vindex_sketch_bytes(vi->cap ? vi->cap : 1));
    buf = eg_xmalloc(pad_of(vi->dim) * sizeof(*buf));
    for (size_t s = 0; s < vi->hiwater; s++) {
        uint64_t w[EG__SKETCH_WORDS];
        if (!eg_vindex_live(vi, (uint32_t)s))
            continue;
        sketch_of(eg__vindex_slot_ptr(vi, s), vi->dim, buf, w);
        put_words(vi, (uint32_t)s, w);
    }
    free(buf);
}

bool eg_vindex_sketched(const eg_vindex_t *vi)
{
    return vi && vi->sketch;
}

/* ---- batches ------------------------------------------------------------------------------- */

/* Mean plus z standard deviations of Binomial(bits, acos(c) / pi). */
unsigned eg__vindex_sketch_bound(float min_score, double z)
{
    double c = min_score, p, mean, sd;

    if (!(c > -1.0))
        return EG_VINDEX_SKETCH_BITS + 1;
    if (c > 1.0)
        c = 1.0;
    p = acos(c) / PI;
    mean = EG_VINDEX_SKETCH_BITS * p;
    sd = sqrt(EG_VINDEX_SKETCH_BITS * p * (1.0 - p));
    return (unsigned)floor(mean + z * sd);
}

static unsigned screen_bound(float min_score)
{
    return eg__vindex_sketch_bound(min_score, SCREEN_Z);
}

eg_vbatch_t *eg_vbatch_new(const eg_vindex_t *vi, const float *queries, size_t nq, float min_score)
{
    eg_vbatch_t *b;

    if (!vi || (nq > 0 && !queries))
        return NULL;
    b = eg_xcalloc(1, sizeof(*b));
    b->dim = vi->dim;
    b->nq = nq;
    b->mode = vi->mode;
    b->min_score = min_score;
    b->bound = screen_bound(min_score);
    if (vi->mode == EG_VINDEX_F32) {
        b->fq = eg_xmalloc((nq ? nq : 1) * vi->dim * sizeof(float));
        memcpy(b->fq, queries, nq * vi->dim * sizeof(float));
        return b;
    }
    b->q = eg_xmalloc((nq ? nq : 1) * vi->dim);
    b->qscale = eg_xmalloc((nq ? nq : 1) * sizeof(float));
    b->words = eg_xmalloc((nq ? nq : 1) * EG__SKETCH_WORDS * sizeof(uint64_t));
    int32_t *buf = eg_xmalloc(pad_of(vi->dim) * sizeof(*buf));
    for (size_t i = 0; i < nq; i++) {
        b->qscale[i] = eg__vec_quantise(queries + i * vi->dim, b->q + i * vi->dim, vi->dim);
        sketch_of(b->q + i * vi->dim, vi->dim, buf, b->words + i * EG__SKETCH_WORDS);
    }
    free(buf);
    return b;
}

void eg_vbatch_free(eg_vbatch_t *b)
{
    if (!b)
        return;
    free(b->fq);
    free(b->q);
    free(b->qscale);
    free(b->words);
    free(b);
}

/* ---- the scan ------------------------------------------------------------------------------ */

typedef struct {
    const eg_vindex_t *vi;
    const eg_vbatch_t *b;
    eg_slot_filter_fn filter;
    void *fudata;
    eg_vbatch_hit_fn hit;
    void *hudata;
} scan_t;

/* Score the pair exactly and report it. */
static void check(const scan_t *sc, size_t qi, uint32_t s)
{
    const eg_vindex_t *vi = sc->vi;
    const eg_vbatch_t *b = sc->b;
    float score;

    if (b->mode == EG_VINDEX_F32)
        score = eg_vec_dot(b->fq + qi * b->dim, eg__vindex_slot_ptr(vi, s), b->dim);
    else
        score = (float)eg__vec_dot_i8(b->q + qi * b->dim, eg__vindex_slot_ptr(vi, s), b->dim) *
                b->qscale[qi] * vi->scale[s];
    if (score >= b->min_score && (!sc->filter || sc->filter(s, sc->fudata)))
        sc->hit(sc->hudata, qi, s, score);
}

/* The lanes of block blk that are live and in [from, to). */
static unsigned lanes_of(const eg_vindex_t *vi, size_t blk, uint32_t from, uint32_t to)
{
    unsigned m = (unsigned)(vi->live[blk / 8] >> (blk % 8 * LANES)) & 0xFF;

    for (unsigned l = 0; l < LANES; l++) {
        size_t s = blk * LANES + l;
        if (s < from || s >= to)
            m &= ~(1u << l);
    }
    return m;
}

/* Report, for query qi, the lanes of mask in block blk, by ascending slot. */
static void report(const scan_t *sc, size_t blk, size_t qi, unsigned mask)
{
    while (mask) {
        unsigned l = (unsigned)__builtin_ctz(mask);
        mask &= mask - 1;
        check(sc, qi, (uint32_t)(blk * LANES + l));
    }
}

static void screen_portable(const scan_t *sc, size_t blk, unsigned live)
{
    const uint64_t *w = sc->vi->sketch + blk * BLOCK_U64;

    for (size_t qi = 0; qi < sc->b->nq; qi++) {
        const uint64_t *qw = sc->b->words + qi * EG__SKETCH_WORDS;
        unsigned mask = 0;
        for (unsigned l = 0; l < LANES; l++) {
            unsigned d = 0;
            if (!(live >> l & 1))
                continue;
            for (size_t k = 0; k < EG__SKETCH_WORDS; k++)
                d += (unsigned)__builtin_popcountll(qw[k] ^ w[k * LANES + l]);
            if (d <= sc->b->bound)
                mask |= 1u << l;
        }
        report(sc, blk, qi, mask);
    }
}

#ifdef EG_SKETCH_AVX512
/* Start loading the vectors (and scales) of the lanes in mask: they are scored one block later,
 * so the loads overlap the next block's screening instead of stalling the dot products (the
 * vectors that pass are scattered over the index: each is a few cache misses). */
static void prefetch_lanes(const scan_t *sc, size_t blk, unsigned mask)
{
    const eg_vindex_t *vi = sc->vi;

    while (mask) {
        unsigned l = (unsigned)__builtin_ctz(mask);
        const char *v = eg__vindex_slot_ptr(vi, blk * LANES + l);
        mask &= mask - 1;
        for (size_t off = 0; off < vi->dim; off += 64)
            __builtin_prefetch(v + off);
    }
}

/* Blocks [b0, b1): the six words of a block stay in registers while every query is screened
 * against them (the per-word counts summed as a tree, independent adds); the pairs that pass
 * are scored after the next block is screened. */
__attribute__((target("avx512f,avx512vpopcntdq"))) static void
screen_avx512(const scan_t *sc, size_t b0, size_t b1, uint32_t from, uint32_t to)
{
    const __m512i bound = _mm512_set1_epi64((long long)sc->b->bound);
    const uint64_t *qw = sc->b->words;
    size_t nq = sc->b->nq, prev_blk = 0;
    uint8_t small[2][256], *cur = nq <= 256 ? small[0] : eg_xmalloc(2 * nq), *prev;
    unsigned prev_any = 0;

    prev = nq <= 256 ? small[1] : cur + nq;
    for (size_t blk = b0; blk <= b1; blk++) {
        unsigned any = 0, live = blk < b1 ? lanes_of(sc->vi, blk, from, to) : 0;
        if (live) {
            const uint64_t *w = sc->vi->sketch + blk * BLOCK_U64;
            __m512i s0 = _mm512_loadu_si512((const void *)(w + 0 * LANES));
            __m512i s1 = _mm512_loadu_si512((const void *)(w + 1 * LANES));
            __m512i s2 = _mm512_loadu_si512((const void *)(w + 2 * LANES));
            __m512i s3 = _mm512_loadu_si512((const void *)(w + 3 * LANES));
            __m512i s4 = _mm512_loadu_si512((const void *)(w + 4 * LANES));
            __m512i s5 = _mm512_loadu_si512((const void *)(w + 5 * LANES));
            for (size_t qi = 0; qi < nq; qi++) {
                const uint64_t *q = qw + qi * EG__SKETCH_WORDS;
#define EG_PC(k, sk) _mm512_popcnt_epi64(_mm512_xor_si512(sk, _mm512_set1_epi64((long long)q[k])))
                __m512i a = _mm512_add_epi64(EG_PC(0, s0), EG_PC(1, s1));
                __m512i c = _mm512_add_epi64(EG_PC(2, s2), EG_PC(3, s3));
                __m512i d = _mm512_add_epi64(EG_PC(4, s4), EG_PC(5, s5));
#undef EG_PC
                __m512i acc = _mm512_add_epi64(_mm512_add_epi64(a, c), d);
                cur[qi] = (uint8_t)_mm512_mask_cmple_epu64_mask((__mmask8)live, acc, bound);
                any |= cur[qi];
            }
            if (any)
                prefetch_lanes(sc, blk, any);
        }
        if (prev_any)
            for (size_t qi = 0; qi < nq; qi++)
                if (prev[qi])
                    report(sc, prev_blk, qi, prev[qi]);
        uint8_t *t = prev;
        prev = cur;
        cur = t;
        prev_blk = blk;
        prev_any = any;
    }
    if (nq > 256)
        free(cur < prev ? cur : prev);
}
#endif

static bool force_portable;

void eg__vindex_sketch_portable(bool on)
{
    force_portable = on;
}

uint32_t eg_vbatch_scan(const eg_vindex_t *vi, const eg_vbatch_t *b, uint32_t from, uint32_t to,
                        eg_slot_filter_fn filter, void *fudata, eg_vbatch_hit_fn hit, void *hudata)
{
    scan_t sc = {vi, b, filter, fudata, hit, hudata};
    bool screen;

    if (!vi || !b || !hit)
        return to;
    if (to > vi->hiwater)
        to = (uint32_t)vi->hiwater;
    if (from >= to || b->nq == 0 || b->dim != vi->dim || b->mode != vi->mode)
        return to;
    screen = vi->sketch && b->words && b->bound < EG_VINDEX_SKETCH_BITS;
#ifdef EG_SKETCH_AVX512
    static int avx = -1;
    if (avx < 0) {
        __builtin_cpu_init();
        avx = __builtin_cpu_supports("avx512vpopcntdq") ? 1 : 0;
    }
#endif
#ifdef EG_SKETCH_AVX512
    if (screen && avx && !force_portable) {
        screen_avx512(&sc, from / LANES, (to + LANES - 1) / LANES, from, to);
        return to;
    }
#endif
    for (size_t blk = from / LANES; blk * LANES < to; blk++) {
        unsigned live = lanes_of(vi, blk, from, to);
        if (!live)
            continue;
        if (!screen) {
            for (size_t qi = 0; qi < b->nq; qi++)
                report(&sc, blk, qi, live);
            continue;
        }
        screen_portable(&sc, blk, live);
    }
    return to;
}
