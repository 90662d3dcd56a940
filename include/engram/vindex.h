/* Vector index: N vectors of one dimension in contiguous memory, brute-force top-k by dot product.
 *
 * Vectors live in numbered slots (uint32). The caller keeps the slot ↔ memory-unit mapping and
 * shares the slot numbers with the BM25 index, so one allowed-slots bitmap filters both. Removed
 * slots are reused by later adds. Not thread-safe: one index belongs to one loop thread. */
#ifndef ENGRAM_VINDEX_H
#define ENGRAM_VINDEX_H

#include <float.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/topk.h"

typedef enum {
    /* int8 with one float scale per vector: 4x smaller and faster than float32; top-10 overlap
     * with float32 measured at 0.986 over 100k synthetic facts with builtin embeddings
     * (tools/bench/index) and 0.995 in test_vindex. The default. */
    EG_VINDEX_I8 = 0,
    EG_VINDEX_F32 = 1, /* exact float32 */
} eg_vindex_mode_t;

typedef struct eg_vindex_s eg_vindex_t;

/* A hit: .slot and .score, the dot product with the query (the cosine for normalised vectors);
 * the shared eg_hit_t of engram/topk.h. */
typedef eg_hit_t eg_vhit_t;

/* Return true to keep slot as a candidate. */
typedef bool (*eg_slot_filter_fn)(uint32_t slot, void *udata);

typedef struct {
    size_t k;                 /* at most this many hits */
    float min_score;          /* hits score >= min_score */
    const uint64_t *allow;    /* optional bitmap: slot s is a candidate iff bit s is set ... */
    size_t allow_nbits;       /* ... and s < allow_nbits */
    eg_slot_filter_fn filter; /* optional, asked after the bitmap */
    void *udata;
    /* Screen by sign sketches when the index keeps them and the candidates are many (see
     * eg_vindex_search); false: always the exact scan. */
    bool screen;
} eg_vsearch_t;

/* Search options with no threshold and no filter. */
#define EG_VSEARCH_INIT(k_)                                                                        \
    {                                                                                              \
        .k = (k_), .min_score = -FLT_MAX, .allow = NULL, .allow_nbits = 0, .filter = NULL,         \
        .udata = NULL, .screen = false                                                             \
    }

/* Test bit s of an allowed-slots bitmap of nbits bits. */
static inline bool eg_slot_allowed(const uint64_t *allow, size_t nbits, uint32_t s)
{
    return s < nbits && (allow[s >> 6] >> (s & 63)) & 1;
}

/* A new empty index for vectors of dim floats (dim > 0). */
eg_vindex_t *eg_vindex_new(size_t dim, eg_vindex_mode_t mode);

/* Free the index and every vector (NULL is a no-op). */
void eg_vindex_free(eg_vindex_t *vi);

/* Grow the slot storage to hold at least n vectors without reallocating (a loader that knows the
 * bank's size avoids the growth slack and the copies). Never shrinks. */
void eg_vindex_reserve(eg_vindex_t *vi, size_t n);

/* Store vec (dim floats) in a free slot, reusing removed slots first; its number in *slot. */
int eg_vindex_add(eg_vindex_t *vi, const float *vec, uint32_t *slot);

/* Replace the vector of a live slot; EG_ENOTFOUND if the slot is not live. */
int eg_vindex_update(eg_vindex_t *vi, uint32_t slot, const float *vec);

/* Remove a live slot (its number becomes reusable); EG_ENOTFOUND if it is not live. */
int eg_vindex_remove(eg_vindex_t *vi, uint32_t slot);

/* True if slot holds a vector. */
bool eg_vindex_live(const eg_vindex_t *vi, uint32_t slot);

/* Copy the vector of a live slot into out[dim] (dequantised in int8 mode); EG_ENOTFOUND if not
 * live. */
int eg_vindex_get(const eg_vindex_t *vi, uint32_t slot, float *out);

/* Live vectors, and one past the highest slot number ever used (the bitmap size to cover). */
size_t eg_vindex_count(const eg_vindex_t *vi);
size_t eg_vindex_slots(const eg_vindex_t *vi);
size_t eg_vindex_dim(const eg_vindex_t *vi);
eg_vindex_mode_t eg_vindex_mode(const eg_vindex_t *vi);

/* Brute-force top-k of query (dim floats) over the live candidate slots: writes up to opts->k hits
 * to out, best first (ties by lower slot), and returns how many. With opts->screen, an index that
 * keeps sketches and has many candidates first ranks them by sketch distance to the query and
 * scores exactly only the closest (a few thousand; docs/recall.md): the scores are exact, but a
 * slot the screen dropped is missing from the list even if it would have made the top k. A
 * screened search writes a scratch buffer the index keeps (a byte per slot). */
size_t eg_vindex_search(const eg_vindex_t *vi, const float *query, const eg_vsearch_t *opts,
                        eg_vhit_t *out);

/* Heap bytes the index holds (allocated capacity, not just live vectors). */
size_t eg_vindex_bytes(const eg_vindex_t *vi);

/* Dot product of two float vectors (vectorised; summation order differs from a naive loop). */
float eg_vec_dot(const float *a, const float *b, size_t n);

/* ---- many queries at a threshold, screened by sign sketches ---------------------------------- */

/* A sign sketch of a vector: the signs of EG_VINDEX_SKETCH_BITS of its coordinates after a fixed
 * random rotation (random signs, then a Walsh-Hadamard transform, in exact integer arithmetic on
 * the int8 vector). The Hamming distance of two sketches estimates the angle between the vectors
 * (SimHash): each bit differs with probability angle / pi. */
#define EG_VINDEX_SKETCH_BITS 384

/* Keep a sign sketch of every stored vector from now on (int8 indexes with dim >= 64; otherwise
 * nothing changes): computed now for the stored vectors (about a microsecond each) and by every
 * later add and update. 48 bytes a slot. An index turns them on by itself when an add first
 * uses slot EG_VINDEX_SKETCH_AUTO - 1 (screened searches need them). */
#define EG_VINDEX_SKETCH_AUTO 4096
void eg_vindex_sketch_enable(eg_vindex_t *vi);
bool eg_vindex_sketched(const eg_vindex_t *vi);

/* Queries prepared for eg_vbatch_scan: copied, quantised and sketched like stored vectors. */
typedef struct eg_vbatch_s eg_vbatch_t;

/* nq queries of vi's dimension (query q at queries + q * dim) for a scan at min_score; NULL on
 * bad arguments. */
eg_vbatch_t *eg_vbatch_new(const eg_vindex_t *vi, const float *queries, size_t nq, float min_score);
void eg_vbatch_free(eg_vbatch_t *b);

/* A pair found by a batch scan: the query's index, the slot and its score (the number
 * eg_vindex_search would give the pair). */
typedef void (*eg_vbatch_hit_fn)(void *udata, size_t query, uint32_t slot, float score);

/* Every pair of a query of b and a live slot in [from, to) whose score is >= min_score and whose
 * slot filter accepts (filter may be NULL; it is asked only about such pairs), through hit (for
 * each query by ascending slot). One pass over the vectors serves every query. With sketches on, a
 * pair is only scored when the Hamming distance of the two sketches is within a bound set from
 * min_score: a pair at exactly cosine min_score passes with probability above 1 - 1e-5 (in theory
 * and in test_vindex_batch), pairs above it more often, so a few pairs near the threshold may be
 * missed; without sketches every pair is scored (exact, and slower). Returns where the scan
 * stopped, min(to, eg_vindex_slots(vi)), so a caller can scan a large index in pieces. */
uint32_t eg_vbatch_scan(const eg_vindex_t *vi, const eg_vbatch_t *b, uint32_t from, uint32_t to,
                        eg_slot_filter_fn filter, void *fudata, eg_vbatch_hit_fn hit, void *hudata);

#endif
