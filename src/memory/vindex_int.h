/* Private parts of the vector index (engram/vindex.h), shared by vindex.c (slots, exact search)
 * and vindex_sketch.c (sign sketches and the batch threshold scan). */
#ifndef ENGRAM_MEMORY_VINDEX_INT_H
#define ENGRAM_MEMORY_VINDEX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/vindex.h"

struct eg_vindex_s {
    size_t dim;
    eg_vindex_mode_t mode;
    size_t cap;      /* slots allocated */
    size_t hiwater;  /* slots ever used: the scan stops here */
    size_t count;    /* live slots */
    void *data;      /* cap * dim floats or int8s */
    float *scale;    /* int8 mode: per-slot scale (cap) */
    uint64_t *live;  /* bitmap of live slots (cap bits, rounded up) */
    uint32_t *freed; /* stack of removed slot numbers, reused LIFO */
    size_t nfreed, freed_cap;
    /* Sign sketches (eg_vindex_sketch_enable), NULL until enabled: blocks of 8 slots, each
     * EG__SKETCH_WORDS words of 8 lanes (word w of slot s at [(s / 8) * WORDS * 8 + w * 8 + s % 8])
     * so one vector register holds word w of 8 neighbouring slots. */
    uint64_t *sketch;
    /* Scratch of a screened search (a distance byte per slot), kept between searches: a fresh
     * 100 KB block per search cost more in malloc than the screen's arithmetic. */
    uint8_t *scratch;
    size_t scratch_cap;
};

/* The sketch: EG_VINDEX_SKETCH_BITS bits in 64-bit words. */
#define EG__SKETCH_WORDS (EG_VINDEX_SKETCH_BITS / 64)

/* Address of a slot's vector (dim floats or int8s). */
void *eg__vindex_slot_ptr(const eg_vindex_t *vi, size_t slot);

/* Quantise x[dim] to int8 (symmetric, per-vector scale returned; 0 for a zero or non-finite
 * vector), and the exact integer dot product of two int8 vectors. */
float eg__vec_quantise(const float *x, int8_t *q, size_t dim);
int32_t eg__vec_dot_i8(const int8_t *a, const int8_t *b, size_t n);

/* Sketch upkeep (vindex_sketch.c), called by vindex.c once sketches are on: recompute slot's
 * sketch from its stored int8 vector; grow the sketch array to ncap slots; its bytes. */
void eg__vindex_sketch_slot(eg_vindex_t *vi, uint32_t slot);
void eg__vindex_sketch_resize(eg_vindex_t *vi, size_t ncap);
size_t eg__vindex_sketch_bytes(size_t cap);

/* The sketch of an int8 vector (EG__SKETCH_WORDS contiguous words), and the Hamming distance
 * below which a pair at exactly cosine c stays with probability about Phi(z): the binomial mean
 * plus z standard deviations. */
void eg__vindex_sketch_of(const int8_t *q, size_t dim, uint64_t *out);
unsigned eg__vindex_sketch_bound(float c, double z);

/* The index's scratch, grown to at least n bytes (searching writes it: one thread per index). */
uint8_t *eg__vindex_screen_scratch(eg_vindex_t *vi, size_t n);

/* The screened top-k of eg_vindex_search (vindex_screen.c) for the quantised query q; SIZE_MAX
 * when it does not apply (no sketches, or too few candidates to be worth screening). */
size_t eg__vindex_search_screened(const eg_vindex_t *vi, const int8_t *q, float qscale,
                                  const eg_vsearch_t *o, eg_vhit_t *out);

/* Its tuning, settable by tests and benchmarks (NULL restores the defaults): screen only above
 * min_cands allowed slots and 4 per candidate; score the closest max(floor_cands, mult * k) by
 * sketch distance (with every slot at the cut's distance);
 * then widen to the distance a slot at the k-th score reaches with z = ext_z (0: never) if that
 * adds at most ext_max slots. portable: no AVX-512. */
typedef struct {
    size_t min_cands, floor_cands, mult;
    double ext_z;
    size_t ext_max;
    bool portable;
} eg__vscreen_params_t;
#define EG__VSCREEN_DEFAULTS                                                                       \
    {                                                                                              \
        .min_cands = 8192, .floor_cands = 4096, .mult = 16, .ext_z = 3.0, .ext_max = 8192          \
    }
void eg__vindex_screen_set(const eg__vscreen_params_t *p);

/* What the calling thread's last screened search did: allowed slots, the distance cut, slots
 * scored exactly, slots added by the widening, or refused for being too many. */
typedef struct {
    size_t allowed, scored, extended, ext_refused;
    unsigned cut;
} eg__vscreen_stats_t;
void eg__vindex_screen_last(eg__vscreen_stats_t *out);

/* Tests: make eg_vbatch_scan use its portable screening loop even where AVX-512 is present. */
void eg__vindex_sketch_portable(bool on);

#endif
