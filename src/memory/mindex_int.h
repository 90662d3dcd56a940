/* Private parts of the memory index (engram/mindex.h), shared by mindex*.c:
 *
 *   mindex.c        the index object, id maps, tags, units (put/replace/remove), queries, bytes
 *   mindex_graph.c  links (both sides), pending links, entities, documents
 *   mindex_time.c   the two time orders and eg_mindex_time_near(_at)
 *   mindex_retain.c the entity-name dictionary and vector sketches retain searches
 *   mindex_load.c   loading a bank from Redis and catching up with its change stream
 *   mindex_registry.c  the per-process registry of loaded banks (LRU under a memory cap) */
#ifndef ENGRAM_MINDEX_INT_H
#define ENGRAM_MINDEX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"
#include "engram/mindex.h"

/* An open-addressing map from a string key to a uint32 value (an index into one of the index's
 * tables). The map stores values and their keys' hashes; keys are read back from the table through
 * keyfn only to confirm a hash match, so an entry costs 8 bytes. Linear probing with
 * backward-shift deletion (no tombstones). */
typedef const char *(*eg__mx_key_fn)(const eg_mindex_t *ix, uint32_t v);

typedef struct eg__smap_ent_s {
    uint32_t v; /* EG_MINDEX_NONE = empty */
    uint32_t h; /* the key's hash (low 32 bits) */
} eg__smap_ent_t;

typedef struct eg__smap_s {
    eg__smap_ent_t *t;
    uint32_t cap, n;
    eg__mx_key_fn key;
} eg__smap_t;

/* A sorted set of slots with its capacity (entity and document memberships). */
typedef struct eg__slots_s {
    uint32_t *a;
    uint32_t n, cap;
} eg__slots_t;

/* An entity as the index keeps it: the public part, then its capacity. */
typedef struct eg__ent_s {
    eg_mindex_entity_t pub;
    uint32_t cap; /* of pub.slots */
    bool live;
} eg__ent_t;

typedef struct eg__doc_s {
    eg_mindex_doc_t pub;
    eg__slots_t units;
    bool live;
    bool stub; /* created for a unit's document_id; its record has not been seen */
} eg__doc_t;

typedef struct eg__tag_s {
    char *name;
    uint32_t nunits, ndocs;
} eg__tag_t;

/* A link waiting for its target unit to arrive. */
typedef struct eg__pend_s {
    char target[EG_MEM_UUID_LEN + 1]; /* "" when the entry is free */
    uint32_t holder;
    uint32_t next; /* next entry with the same target, or the next free entry */
    float weight;
    uint8_t type;
} eg__pend_t;

/* Live slots in one time order, rebuilt lazily: changes since the last build are recorded as
 * touched slots, and a rebuild merges the sorted touched ones into the untouched rest. */
typedef struct eg__torder_s {
    uint32_t *a;
    size_t n, cap;
    uint32_t *touched;
    size_t ntouched, touched_cap;
    uint64_t *tbits; /* bitmap of touched slots */
    size_t tbits_words;
    bool built;
} eg__torder_t;

struct eg_mindex_s {
    size_t dim;
    eg_vindex_t *vec;
    eg_bm25_t *bm;
    size_t heap; /* bytes of everything below but vec and bm (eg__mx_alloc accounting) */

    eg_mindex_unit_t *units; /* by slot; id[0] == '\0' for a free slot */
    size_t units_cap, nslots, count;
    eg__smap_t by_id;

    eg__ent_t *ents;
    size_t nents, ents_cap;
    uint32_t *ent_free;
    size_t nent_free, ent_free_cap;
    eg__smap_t ent_by_id, ent_by_folded;

    eg__doc_t *docs;
    size_t ndocs, docs_cap;
    uint32_t *doc_free;
    size_t ndoc_free, doc_free_cap;
    eg__smap_t doc_by_id;

    eg__tag_t *tags;
    size_t ntags, tags_cap;
    eg__smap_t tag_by_name;

    eg__pend_t *pend;
    size_t npend_alloc, pend_cap, npend;
    uint32_t pend_free;        /* head of the free list */
    eg__smap_t pend_by_target; /* target id -> first entry */
    uint64_t *has_pend;        /* bitmap of slots holding pending links */
    size_t has_pend_words;

    eg__torder_t by_time;  /* mentioned_at, then created_at */
    eg__torder_t by_event; /* occurred_start, else mentioned_at */

    eg_arena_t scratch; /* per-call temporaries (tokens, folded names) */
    uint64_t version;   /* eg_mindex_version: bumped by eg__mx_changed */

    struct eg_resolve_dict_s *names; /* entity names by entity index, built on first search */
};

/* Record a change of ix (a new, process-wide unique version). */
void eg__mx_changed(eg_mindex_t *ix);

/* Allocation with byte accounting (ix->heap counts what malloc really hands out, per chunk). */
void *eg__mx_alloc(eg_mindex_t *ix, size_t n);
void *eg__mx_realloc(eg_mindex_t *ix, void *p, size_t old_n, size_t n);
void eg__mx_free(eg_mindex_t *ix, void *p, size_t n);
char *eg__mx_strdup(eg_mindex_t *ix, const char *s);
void eg__mx_strfree(eg_mindex_t *ix, char *s);

/* String maps (mindex.c). */
void eg__smap_init(eg__smap_t *m, eg__mx_key_fn key);
void eg__smap_free(eg_mindex_t *ix, eg__smap_t *m);
uint32_t eg__smap_get(const eg_mindex_t *ix, const eg__smap_t *m, const char *key);
void eg__smap_put(eg_mindex_t *ix, eg__smap_t *m, uint32_t v);
void eg__smap_del(eg_mindex_t *ix, eg__smap_t *m, uint32_t v);
void eg__smap_reserve(eg_mindex_t *ix, eg__smap_t *m, size_t n);

/* Sorted slot sets (mindex_graph.c). */
void eg__slots_add(eg_mindex_t *ix, uint32_t **a, uint32_t *n, uint32_t *cap, uint32_t s);
void eg__slots_del(eg_mindex_t *ix, uint32_t **a, uint32_t *n, uint32_t *cap, uint32_t s);

/* Links (mindex_graph.c). Replace slot's links with links[0..n) (temporal ones are skipped; the
 * reverse side is added to every target; missing targets are kept pending). */
void eg__mx_links_set(eg_mindex_t *ix, uint32_t slot, const eg_mem_link_t *links, size_t n);
/* Drop every link of slot, on both sides, and its pending links. */
void eg__mx_links_clear(eg_mindex_t *ix, uint32_t slot);
/* A unit arrived in slot: resolve the links other units keep pending for it. */
void eg__mx_pending_resolve(eg_mindex_t *ix, uint32_t slot);
void eg__mx_graph_free(eg_mindex_t *ix);

/* Memberships (mindex_graph.c). */
void eg__mx_unit_attach(eg_mindex_t *ix, uint32_t slot);
void eg__mx_unit_detach(eg_mindex_t *ix, uint32_t slot);
/* The document index of id, created as a stub when absent. */
uint32_t eg__mx_doc_ensure(eg_mindex_t *ix, const char *id);
/* Intern a tag (mindex.c); add delta to its unit or document count. */
uint32_t eg__mx_tag_intern(eg_mindex_t *ix, const char *tag);
void eg__mx_tag_count(eg_mindex_t *ix, uint32_t id, bool doc, int delta);
/* The interned, sorted, de-duplicated ids of tags[0..n) (at most EG_MEM_TAGS_MAX) into out;
 * returns the count. */
uint16_t eg__mx_tags_intern(eg_mindex_t *ix, const char *const *tags, size_t n, uint32_t *out);

/* The entity-name dictionary (mindex_retain.c): follow entity idx after it was added or renamed,
 * before it is removed or renamed (its current name is the one in the dictionary); free; bytes. */
void eg__mx_names_add(eg_mindex_t *ix, uint32_t idx);
void eg__mx_names_remove(eg_mindex_t *ix, uint32_t idx);
void eg__mx_names_free(eg_mindex_t *ix);
size_t eg__mx_names_bytes(const eg_mindex_t *ix);

/* Time orders (mindex_time.c): record a change; build both orders now (a loader does this off
 * the loop, on an index nothing else sees yet). */
void eg__mx_time_touch(eg_mindex_t *ix, uint32_t slot);
void eg__mx_time_build(eg_mindex_t *ix);
void eg__mx_time_free(eg_mindex_t *ix);

/* Loader building blocks (mindex.c): set a live unit's vector (NULL = zeros); set an entity's
 * statistics (field 'n', 'f' or 'l' of the :es hash). */
int eg__mx_set_vector(eg_mindex_t *ix, uint32_t slot, const float *vec);
int eg__mx_entity_stat(eg_mindex_t *ix, const char *entity_id, char field, int64_t v);

/* 64-bit FNV-1a over a string (the maps' and the registry's hash). */
uint64_t eg__mx_hash(const char *s, size_t n);

/* ---- loaded banks (mindex_load.c, mindex_registry.c) ----------------------------------------- */

typedef struct eg__mx_load_s eg__mx_load_t;

/* An acquire waiting for a round: it is served by the first round whose sync was sent after it
 * arrived (need = the sequence number that sync will get). */
typedef struct eg__mx_waiter_s {
    eg_mindex_fn cb;
    void *udata;
    uint64_t need;
    struct eg__mx_waiter_s *next;
} eg__mx_waiter_t;

/* The Redis keys of a bank that the loader reads. */
enum {
    EG__MXK_BANK,
    EG__MXK_X,
    EG__MXK_U,
    EG__MXK_V,
    EG__MXK_L,
    EG__MXK_E,
    EG__MXK_ES,
    EG__MXK_D,
    EG__MXK_N
};

typedef struct eg__mx_bank_s {
    char *tag; /* "<ws>/<bank>": the registry key and the Redis hash tag */
    const char *keys[EG__MXK_N];
    eg_arena_t arena;                          /* tag and keys */
    struct eg__mx_bank_s *hnext;               /* registry bucket */
    struct eg__mx_bank_s *lru_prev, *lru_next; /* most recently acquired first */
    eg_mindex_t *ix;                           /* NULL until the first load completes */
    size_t bytes;                              /* eg_mindex_bytes(ix) when it last changed */
    char created[32]; /* the bank record's created stamp; "" when the bank did not exist */
    char last_id[48]; /* change stream position applied */
    int64_t last_ord; /* its ordinal: entries added to the stream up to and including it */
    eg__mx_waiter_t *waiters;
    uint64_t sent_seq;   /* syncs sent so far */
    uint64_t round_seq;  /* the last sync sent */
    eg__mx_load_t *load; /* a full load in progress */
    bool busy;           /* a round (load or sync) is running */
    bool inflight;       /* a Redis command of the round is out */
    bool forgotten;      /* no longer in the registry: freed once settled */
    bool cancel;         /* shutting down: fail the round at its next step */
    bool dirty;          /* ix changed since bytes was measured */
    int pins;            /* callbacks running: do not free */
} eg__mx_bank_t;

/* Start a round for b (a sync, or a full load when b has no index yet): 0, or an error when the
 * first command could not be sent (nothing started). */
int eg__mx_round(eg__mx_bank_t *b);
/* Drop a load in progress (its partial index and queued slices). */
void eg__mx_load_drop(eg__mx_bank_t *b);
/* Apply queued scan slices until deadline (eg_mono_ns); true while work remains. */
bool eg__mx_load_tick(uint64_t deadline_ns);

/* From the loader to the registry: the round ended (err, or success covering the waiters whose
 * need is at most seq); the idle processing is wanted. */
void eg__mx_settled(eg__mx_bank_t *b, int err, uint64_t seq);
void eg__mx_wake(void);

#endif
