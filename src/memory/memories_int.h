/* Private helpers shared by the memories files (engram/memories.h). */
#ifndef ENGRAM_MEMORIES_INT_H
#define ENGRAM_MEMORIES_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"
#include "engram/memories.h"
#include "engram/mindex.h"

/* The common head of every asynchronous call: the call's arena (everything it keeps lives there)
 * and copies of the ids it was given. Allocated with eg__memreq_new(size of the containing
 * struct, which starts with this head), released with eg__memreq_free. */
typedef struct eg__memreq_s {
    eg_arena_t arena;
    char *ws_id, *bank_id;
    void *udata;
} eg__memreq_t;

void *eg__memreq_new(size_t size, const char *ws_id, const char *bank_id, void *udata);
void eg__memreq_free(void *req);

/* A deep copy of a unit record into the arena. */
eg_mem_unit_t *eg__mem_unit_copy(eg_arena_t *a, const eg_mem_unit_t *u);

/* The slots q selects over ix (of bank bank_id), newest first: mentioned_at descending with the
 * undated last, then created_at descending. Returns the count; *out in the arena. */
size_t eg__mem_select(eg_arena_t *a, eg_mindex_t *ix, const char *bank_id,
                      const eg_memories_query_t *q, uint32_t **out);

/* A copy of q into the arena (its strings and tags too). */
eg_memories_query_t *eg__mem_query_copy(eg_arena_t *a, const eg_memories_query_t *q);

/* The ids of slots (the units must be in ix) as strings in the arena. */
const char **eg__mem_slot_ids(eg_arena_t *a, eg_mindex_t *ix, const uint32_t *slots, size_t n);

/* items[0..n): the records of the ids that still exist, in the order asked; pos[i] is the item
 * index of ids[i], or UINT32_MAX when it is gone. Everything is in the caller's arena. */
typedef void (*eg__mem_fetch_fn)(void *udata, int err, eg_memory_t *items, size_t n,
                                 const uint32_t *pos);

/* Fetch unit records by id and then the canonical names of their entities (two round trips;
 * one when no unit mentions an entity). n must be > 0. Returns 0 (cb runs later) or an error
 * (cb does not run). */
int eg__mem_fetch(eg_arena_t *a, const char *ws_id, const char *bank_id, const char *const *ids,
                  size_t n, eg__mem_fetch_fn cb, void *udata);

/* A set of 64-bit keys in an arena (open addressing; the table doubles as it fills, old tables
 * stay in the arena). UINT64_MAX is not a valid key. */
typedef struct eg__u64set_s {
    eg_arena_t *a;
    uint64_t *keys;
    size_t mask, n;
} eg__u64set_t;

void eg__u64set_init(eg__u64set_t *s, eg_arena_t *a, size_t expect);
/* Add key; true when it was not there yet. */
bool eg__u64set_add(eg__u64set_t *s, uint64_t key);

/* A bitmap of nbits bits in the arena, all clear. */
uint64_t *eg__bitmap_new(eg_arena_t *a, size_t nbits);
static inline bool eg__bit(const uint64_t *b, uint32_t i)
{
    return (b[i >> 6] >> (i & 63)) & 1u;
}
static inline void eg__bit_set(uint64_t *b, uint32_t i)
{
    b[i >> 6] |= UINT64_C(1) << (i & 63);
}

/* The scope id of a bank's records ("<ws>/<bank>") in the arena. */
char *eg__mem_scope_id(eg_arena_t *a, const char *ws_id, const char *bank_id);

#endif
