/* Vector index: contiguous slots, int8 or float32, brute-force top-k.
 *
 * Brute force is deliberate: at the sizes one bank reaches (10^5 facts) a full scan of int8
 * vectors is a few milliseconds and memory-bandwidth bound, exact (no recall loss as with an
 * approximate graph index), needs no build step, and makes updates and removals trivial. The
 * scan is what matters, so the dot products are written for the vectoriser and cloned per ISA.
 * Retain's many-queries-at-a-threshold scan, screened by sign sketches, is vindex_sketch.c.
 *
 * int8 mode stores q[i] = round(x[i] / s) with s = max|x| / 127 per vector (symmetric, so -128 is
 * never used and an int8 product fits in int16). The query is quantised the same way and the
 * score is s_query * s_vec * sum(q_query[i] * q_vec[i]), computed in exact integer arithmetic. */
#include "engram/vindex.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/util.h"
#include "memory/vindex_int.h"

/* GCC vectorises an integer reduction only with the full cost model (-O3); and one binary must
 * run on any x86-64 while using AVX2/AVX-512 where present, hence the clones (ifunc picks one at
 * load time). Other compilers and architectures get the portable loop. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EG_VEC_FN                                                                                  \
    __attribute__((optimize("O3"), target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define EG_VEC_FN
#endif

EG_VEC_FN int32_t eg__vec_dot_i8(const int8_t *restrict a, const int8_t *restrict b, size_t n)
{
    int32_t s = 0;

    for (size_t i = 0; i < n; i++)
        s += (int16_t)a[i] * (int16_t)b[i];
    return s;
}

/* Float addition is not associative, so the compiler will not reorder a single running sum into
 * vector lanes; sixteen explicit partial sums give it independent lanes to vectorise. */
#define F_LANES 16

EG_VEC_FN float eg_vec_dot(const float *a, const float *b, size_t n)
{
    float acc[F_LANES] = {0};
    float s = 0;
    size_t i = 0;

    for (; i + F_LANES <= n; i += F_LANES)
        for (size_t j = 0; j < F_LANES; j++)
            acc[j] += a[i + j] * b[i + j];
    for (size_t j = 0; j < F_LANES; j++)
        s += acc[j];
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

float eg__vec_quantise(const float *x, int8_t *q, size_t dim)
{
    float maxabs = 0, s, inv;

    for (size_t i = 0; i < dim; i++)
        maxabs = fmaxf(maxabs, fabsf(x[i]));
    if (!(maxabs > 0) || !isfinite(maxabs)) {
        memset(q, 0, dim);
        return 0;
    }
    s = maxabs / 127.0f;
    inv = 127.0f / maxabs;
    for (size_t i = 0; i < dim; i++) {
        long v = lrintf(x[i] * inv);
        q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    return s;
}

static size_t elem_size(const eg_vindex_t *vi)
{
    return vi->mode == EG_VINDEX_F32 ? sizeof(float) : sizeof(int8_t);
}

void *eg__vindex_slot_ptr(const eg_vindex_t *vi, size_t slot)
{
    return (char *)vi->data + slot * vi->dim * elem_size(vi);
}

eg_vindex_t *eg_vindex_new(size_t dim, eg_vindex_mode_t mode)
{
    eg_vindex_t *vi;

    if (dim == 0 || (mode != EG_VINDEX_F32 && mode != EG_VINDEX_I8))
        return NULL;
    vi = eg_xcalloc(1, sizeof(*vi));
    vi->dim = dim;
    vi->mode = mode;
    return vi;
}

void eg_vindex_free(eg_vindex_t *vi)
{
    if (!vi)
        return;
    free(vi->data);
    free(vi->scale);
    free(vi->live);
    free(vi->freed);
    free(vi->sketch);
    free(vi->scratch);
    free(vi);
}

static void resize(eg_vindex_t *vi, size_t ncap)
{
    size_t owords = (vi->cap + 63) / 64, nwords = (ncap + 63) / 64;

    vi->data = eg_xrealloc(vi->data, ncap * vi->dim * elem_size(vi));
    if (vi->mode == EG_VINDEX_I8)
        vi->scale = eg_xrealloc(vi->scale, ncap * sizeof(float));
    vi->live = eg_xrealloc(vi->live, nwords * sizeof(uint64_t));
    memset(vi->live + owords, 0, (nwords - owords) * sizeof(uint64_t));
    if (vi->sketch)
        eg__vindex_sketch_resize(vi, ncap);
    vi->cap = ncap;
}

/* Grow by half again (not doubling): at 10^5 vectors a doubling would strand megabytes. */
static void grow(eg_vindex_t *vi)
{
    size_t ncap = vi->cap < 64 ? 64 : vi->cap + vi->cap / 2;

    resize(vi, ncap > UINT32_MAX ? UINT32_MAX : ncap);
}

void eg_vindex_reserve(eg_vindex_t *vi, size_t n)
{
    if (vi && n > vi->cap)
        resize(vi, n > UINT32_MAX ? UINT32_MAX : n);
}

static void store(eg_vindex_t *vi, uint32_t slot, const float *vec)
{
    if (vi->mode == EG_VINDEX_F32)
        memcpy(eg__vindex_slot_ptr(vi, slot), vec, vi->dim * sizeof(float));
    else
        vi->scale[slot] = eg__vec_quantise(vec, eg__vindex_slot_ptr(vi, slot), vi->dim);
    if (vi->sketch)
        eg__vindex_sketch_slot(vi, slot);
}

int eg_vindex_add(eg_vindex_t *vi, const float *vec, uint32_t *slot)
{
    uint32_t s;

    if (!vi || !vec || !slot)
        return EG_EINVAL;
    if (vi->nfreed) {
        s = vi->freed[--vi->nfreed];
    } else {
        if (vi->hiwater == vi->cap) {
            if (vi->cap == UINT32_MAX)
                return EG_ETOOBIG;
            grow(vi);
        }
        s = (uint32_t)vi->hiwater++;
    }
    store(vi, s, vec);
    vi->live[s >> 6] |= 1ULL << (s & 63);
    vi->count++;
    *slot = s;
    /* From this size on a screened search beats the exact scan: keep sketches (a one-time pass
     * of a few ms here, then about a microsecond per add). */
    if (!vi->sketch && vi->hiwater == EG_VINDEX_SKETCH_AUTO)
        eg_vindex_sketch_enable(vi);
    return 0;
}

bool eg_vindex_live(const eg_vindex_t *vi, uint32_t slot)
{
    return vi && eg_slot_allowed(vi->live, vi->hiwater, slot);
}

int eg_vindex_update(eg_vindex_t *vi, uint32_t slot, const float *vec)
{
    if (!vec)
        return EG_EINVAL;
    if (!eg_vindex_live(vi, slot))
        return EG_ENOTFOUND;
    store(vi, slot, vec);
    return 0;
}

int eg_vindex_remove(eg_vindex_t *vi, uint32_t slot)
{
    if (!eg_vindex_live(vi, slot))
        return EG_ENOTFOUND;
    vi->live[slot >> 6] &= ~(1ULL << (slot & 63));
    vi->count--;
    if (vi->nfreed == vi->freed_cap) {
        vi->freed_cap = vi->freed_cap ? vi->freed_cap * 2 : 64;
        vi->freed = eg_xrealloc(vi->freed, vi->freed_cap * sizeof(*vi->freed));
    }
    vi->freed[vi->nfreed++] = slot;
    return 0;
}

int eg_vindex_get(const eg_vindex_t *vi, uint32_t slot, float *out)
{
    if (!out)
        return EG_EINVAL;
    if (!eg_vindex_live(vi, slot))
        return EG_ENOTFOUND;
    if (vi->mode == EG_VINDEX_F32) {
        memcpy(out, eg__vindex_slot_ptr(vi, slot), vi->dim * sizeof(float));
    } else {
        const int8_t *q = eg__vindex_slot_ptr(vi, slot);
        for (size_t i = 0; i < vi->dim; i++)
            out[i] = q[i] * vi->scale[slot];
    }
    return 0;
}

size_t eg_vindex_count(const eg_vindex_t *vi)
{
    return vi ? vi->count : 0;
}

size_t eg_vindex_slots(const eg_vindex_t *vi)
{
    return vi ? vi->hiwater : 0;
}

size_t eg_vindex_dim(const eg_vindex_t *vi)
{
    return vi->dim;
}

eg_vindex_mode_t eg_vindex_mode(const eg_vindex_t *vi)
{
    return vi->mode;
}

size_t eg_vindex_bytes(const eg_vindex_t *vi)
{
    size_t n;

    if (!vi)
        return 0;
    n = sizeof(*vi) + vi->cap * vi->dim * elem_size(vi) + (vi->cap + 63) / 64 * sizeof(uint64_t) +
        vi->freed_cap * sizeof(uint32_t);
    if (vi->mode == EG_VINDEX_I8)
        n += vi->cap * sizeof(float);
    if (vi->sketch)
        n += eg__vindex_sketch_bytes(vi->cap);
    return n + vi->scratch_cap;
}

uint8_t *eg__vindex_screen_scratch(eg_vindex_t *vi, size_t n)
{
    if (n > vi->scratch_cap) {
        free(vi->scratch);
        vi->scratch_cap = n + n / 8; /* room for some growth of the bank */
        vi->scratch = eg_xmalloc(vi->scratch_cap);
    }
    return vi->scratch;
}

size_t eg_vindex_search(const eg_vindex_t *vi, const float *query, const eg_vsearch_t *opts,
                        eg_vhit_t *out)
{
    int8_t qbuf[1024], *q = NULL;
    float qscale = 0;
    size_t n = 0, k;

    if (!vi || !query || !opts || !out || opts->k == 0 || vi->count == 0)
        return 0;
    k = opts->k;
    if (vi->mode == EG_VINDEX_I8) {
        q = vi->dim <= sizeof(qbuf) ? qbuf : eg_xmalloc(vi->dim);
        qscale = eg__vec_quantise(query, q, vi->dim);
        if (opts->screen && (n = eg__vindex_search_screened(vi, q, qscale, opts, out)) != SIZE_MAX)
            goto done;
        n = 0;
    }
    for (size_t w = 0; w < (vi->hiwater + 63) / 64; w++) {
        uint64_t bits = vi->live[w];
        if (opts->allow)
            bits &= w < (opts->allow_nbits + 63) / 64 ? opts->allow[w] : 0;
        /* Walk set bits only: sparse filters skip whole words of slots. */
        while (bits) {
            uint32_t s = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
            float score;
            bits &= bits - 1;
            if (opts->allow && s >= opts->allow_nbits)
                break;
            if (opts->filter && !opts->filter(s, opts->udata))
                continue;
            if (q)
                score = (float)eg__vec_dot_i8(q, eg__vindex_slot_ptr(vi, s), vi->dim) * qscale *
                        vi->scale[s];
            else
                score = eg_vec_dot(query, eg__vindex_slot_ptr(vi, s), vi->dim);
            if (score >= opts->min_score)
                eg_topk_offer(out, &n, k, s, score);
        }
    }
    eg_topk_sort(out, n);
done:
    if (q != qbuf)
        free(q);
    return n;
}
