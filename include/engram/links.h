/* The links retain stores between a new unit and the units before it, with Hindsight's rules:
 *
 *   temporal   units whose event time (occurred_start, else mentioned_at) lies within 24 h of
 *              the new unit's, nearest first, at most 20, weight max(0.3, 1 - hours apart / 24);
 *   semantic   the 20 most similar units at cosine >= 0.7, weight = the cosine;
 *   caused_by  the facts the extractor says caused it, weight 1.0.
 *
 * "Before it" means units already stored (found through the caller's callbacks, typically over
 * the bank index) and the units earlier in the same batch, so each pair of a batch is linked at
 * most once, from the later unit; the store keeps the reverse side of semantic and causal links,
 * and a temporal link on its holder only (the index derives temporal neighbours from time order).
 * Entity links are never stored (recall derives them from shared entities). */
#ifndef ENGRAM_LINKS_H
#define ENGRAM_LINKS_H

#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"
#include "engram/mstore.h"

#define EG_LINKS_TEMPORAL_WINDOW_US (INT64_C(24) * 3600 * 1000000)
#define EG_LINKS_TEMPORAL_MAX       20
#define EG_LINKS_TEMPORAL_FLOOR     0.3f
#define EG_LINKS_SEMANTIC_MAX       20
#define EG_LINKS_SEMANTIC_MIN       0.7f
#define EG_LINKS_CAUSAL_WEIGHT      1.0f

/* max(0.3, 1 - |dt| in hours / 24): the weight of a temporal link between units dt_us apart. */
float eg_links_temporal_weight(int64_t dt_us);

/* The event time links use: occurred_start, else mentioned_at (EG_MEM_TIME_NONE when neither). */
int64_t eg_links_event_time(const eg_mem_unit_t *u);

/* A unit of the batch being written. */
typedef struct eg_links_unit_s {
    const char *id;
    int64_t t;        /* event time, or EG_MEM_TIME_NONE (no temporal links) */
    const float *vec; /* dim floats, L2-normalised; NULL: no semantic links */
} eg_links_unit_t;

/* A stored unit as a callback reports it: its time (temporal) or its cosine (semantic). */
typedef struct eg_links_stored_s {
    const char *id; /* valid until the helper returns */
    int64_t t;
    float score;
} eg_links_stored_t;

/* Stored units whose event time lies within window_us of t (nearest first if convenient; the
 * helper sorts), at most max; array in a. Returns the count. */
typedef size_t (*eg_links_time_fn)(void *ctx, eg_arena_t *a, int64_t t, int64_t window_us,
                                   size_t max, eg_links_stored_t **out);

/* The k stored units most similar to vec with cosine >= min (any order), array in a. Returns the
 * count. */
typedef size_t (*eg_links_search_fn)(void *ctx, eg_arena_t *a, const float *vec, size_t k,
                                     float min, eg_links_stored_t **out);

/* The links of batch[i]: temporal and semantic ones to stored units (callbacks may be NULL) and
 * to batch[0..i), then caused_by ones to batch[causes[k]] (indexes < i; others are ignored).
 * Returns the count, *out in a (other_id pointers into the batch or copies in a). */
size_t eg_links_for_unit(eg_arena_t *a, const eg_links_unit_t *batch, size_t i, size_t dim,
                         eg_links_time_fn near, eg_links_search_fn search, void *ctx,
                         const size_t *causes, size_t ncauses, eg_mem_link_t **out);

#endif
