/* Private helpers shared by the recall files. */
#ifndef ENGRAM_RECALL_INT_H
#define ENGRAM_RECALL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"
#include "engram/mindex.h"
#include "engram/mstore.h"
#include "engram/topk.h"

/* An open-addressing map from slot numbers to small indexes (uint32), in an arena. It grows by
 * doubling (the old table stays in the arena until it is reset), so callers need not know how
 * many keys they will add. UINT32_MAX is not a valid key. */
typedef struct eg__slotmap_s {
    eg_arena_t *a;
    uint32_t *keys;
    uint32_t *vals;
    size_t mask, n;
} eg__slotmap_t;

void eg__slotmap_init(eg__slotmap_t *m, eg_arena_t *a, size_t expect);

/* The value of key, or NULL. */
uint32_t *eg__slotmap_get(const eg__slotmap_t *m, uint32_t key);

/* The value of key, inserted as val (and *added = true) when absent. */
uint32_t *eg__slotmap_put(eg__slotmap_t *m, uint32_t key, uint32_t val, bool *added);

/* Live, valid units of a fact type in ix (from the filter bitmaps recall keeps per index
 * version, recall.c). */
size_t eg__recall_type_count(eg_mindex_t *ix, eg_fact_type_t type);

/* Decode a stored unit record like eg_mem_unit_parse (engram/mstore.h), without a cJSON tree for
 * the common shape (recall_record.c). 0 or EG_EINVAL. */
int eg__recall_unit_decode(eg_arena_t *a, const char *json, size_t len, eg_mem_unit_t *out);

/* Sort hits best first: score descending, ties by lower slot. */
void eg__hits_sort(eg_hit_t *h, size_t n);

#endif
