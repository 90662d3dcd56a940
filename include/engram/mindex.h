/* Memory index: each engramd process keeps, per active bank, an in-memory index of the bank's
 * units so that recall, listing and retain's entity resolution never scan Redis.
 *
 * One index holds: every unit in a numbered slot (uint32) with the metadata ranking and filtering
 * need (type, state, times, tags, entities, document, token count, semantic and causal links);
 * the vectors (engram/vindex.h, int8) and the BM25 index over text + context (engram/bm25.h)
 * under the same slot numbers; the entities (name, mentions, first/last seen, their units); the
 * documents (id, times, tags, unit count); interned tags; units ordered by time. Unit text is not
 * kept: callers rank here, then fetch the few records they show from Redis (engram/mstore.h).
 *
 * Freshness: eg_mindex_acquire loads a bank on first use (HSCAN of its hashes, on the loop in
 * slices, CPU-heavy parsing off the loop when large), remembering the change stream position read
 * before the scan; every later acquire first applies the change stream entries written since
 * (one round trip; the changed records are re-read), so a process sees every write acknowledged
 * anywhere before its acquire started. A deleted or re-created bank, a "reset" entry or a trimmed
 * gap in the stream makes it reload. Indexes are evicted least recently used when their total
 * size passes the cap (ENGRAM_INDEX_MEMORY).
 *
 * An index may change whenever control returns to the loop: use it synchronously inside the
 * acquire callback and copy out what must outlive it (ids, not slots). Not thread-safe. */
#ifndef ENGRAM_MINDEX_H
#define ENGRAM_MINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "engram/bm25.h"
#include "engram/mstore.h"
#include "engram/resolve.h"
#include "engram/text.h"
#include "engram/vindex.h"

#define EG_MINDEX_NONE UINT32_MAX /* no document / entity / slot */

/* Consolidation state of a unit (eg_mindex_unit_t.cstate), from its record's consolidated_at /
 * consolidation_failed_at; observations are always EG_MINDEX_CONS_PENDING (not applicable). */
#define EG_MINDEX_CONS_PENDING 0
#define EG_MINDEX_CONS_DONE    1
#define EG_MINDEX_CONS_FAILED  2

/* The tokenizer flags of the BM25 index: queries must be tokenised the same way (engram/text.h). */
#define EG_MINDEX_BM25_FLAGS (EG_TEXT_STOPWORDS | EG_TEXT_STEM)

/* A semantic or causal link as the index keeps it (temporal neighbours are derived from the time
 * order instead, see eg_mindex_time_near). */
typedef struct eg_mindex_link_s {
    uint32_t slot;
    float weight;
    uint8_t type; /* eg_link_type_t, from the holder's side */
} eg_mindex_link_t;

/* One unit's metadata. */
typedef struct eg_mindex_unit_s {
    char id[EG_MEM_UUID_LEN + 1];
    uint8_t type;        /* eg_fact_type_t */
    bool invalidated;    /* hidden from recall and the graph */
    uint8_t cstate;      /* consolidation of a fact: EG_MINDEX_CONS_* */
    uint16_t tokens;     /* eg_text_estimate_tokens(text), saturated at 65535 */
    int64_t occurred_start, occurred_end, mentioned_at, created_at; /* µs or EG_MEM_TIME_NONE */
    uint32_t doc;        /* document index or EG_MINDEX_NONE */
    uint32_t chunk;      /* chunk index within the document, or EG_MINDEX_NONE */
    uint16_t ntags, nents;
    uint32_t nlinks;
    uint32_t *tags;      /* interned tag ids, ascending */
    uint32_t *ents;      /* entity indexes */
    eg_mindex_link_t *links;
} eg_mindex_unit_t;

typedef struct eg_mindex_entity_s {
    char id[EG_MEM_UUID_LEN + 1];
    char *name;   /* canonical name */
    char *folded; /* eg_mem_entity_fold(name) */
    int64_t mention_count;
    int64_t first_seen, last_seen;
    uint32_t *slots; /* units that mention it */
    uint32_t nslots;
} eg_mindex_entity_t;

typedef struct eg_mindex_doc_s {
    char *id;
    int64_t created_at, updated_at;
    uint32_t *tags; /* interned, ascending */
    uint16_t ntags;
    uint32_t nunits;
    size_t text_length;
    char content_hash[65]; /* "" when none */
} eg_mindex_doc_t;

typedef struct eg_mindex_s eg_mindex_t;

/* ---- the registry of loaded banks (one per process) ---------------------------------------- */

/* Start the registry on loop (after eg_store_init): cap_bytes is the memory cap over all indexes
 * (0 = unlimited). */
int eg_mindex_init(uv_loop_t *loop, size_t cap_bytes);

/* Drop every index. */
void eg_mindex_shutdown(void);

/* err 0 with the bank's index (an empty index when the bank does not exist or holds nothing), or
 * a store error with ix NULL. */
typedef void (*eg_mindex_fn)(void *udata, int err, eg_mindex_t *ix);

/* Get the bank's index loaded and caught up with every write acknowledged before this call (see
 * above). cb always runs later, from the loop (catching up takes a round trip). Concurrent
 * acquires of one bank share one load. Returns 0 (cb runs once) or EG_EINVAL / EG_EUNAVAIL (not
 * initialised, or no Redis connection is ready). cb's error is a store error, or EG_ECANCELED
 * when eg_mindex_shutdown came first. */
int eg_mindex_acquire(const char *ws_id, const char *bank_id, eg_mindex_fn cb, void *udata);

/* Forget a bank's index in this process (after deleting the bank). */
void eg_mindex_forget(const char *ws_id, const char *bank_id);

/* Bytes held by all loaded indexes, and how many are loaded (for /metrics). */
size_t eg_mindex_total_bytes(size_t *nbanks);

/* ---- a detached index (tests, benchmarks, and the loader's building blocks) ------------------ */

/* A new empty index for vectors of dim floats (int8 vectors). */
eg_mindex_t *eg_mindex_new(size_t dim);
void eg_mindex_free(eg_mindex_t *ix);

/* Make room for n units without reallocating (a loader that knows the bank's size avoids the
 * growth slack). Never shrinks. */
void eg_mindex_reserve(eg_mindex_t *ix, size_t n);

/* Add or replace a unit: its metadata, vector, BM25 terms of text + context, tags, entities (which
 * must have been put first; unknown ids are skipped), document membership (the document is
 * created as a stub when absent, and dropped with its last unit while it has no record) and links
 * (to units not in the index yet they are kept pending and resolved when that unit arrives; the
 * reverse side is added too; temporal ones are skipped). Replacing a unit replaces its links on
 * both sides. vec NULL keeps the unit's vector (zeros for a new unit). 0 or EG_EINVAL. */
int eg_mindex_put_unit(eg_mindex_t *ix, const eg_mem_unit_t *u, const float *vec,
                       const eg_mem_link_t *links, size_t nlinks);

/* Remove a unit and its links (both sides), entity and document membership. 0 or EG_ENOTFOUND. */
int eg_mindex_remove_unit(eg_mindex_t *ix, const char *unit_id);

/* Add or replace an entity / a document record. Removing an entity takes it out of its units;
 * removing a document detaches its units (their doc and chunk become EG_MINDEX_NONE). */
int eg_mindex_put_entity(eg_mindex_t *ix, const eg_mem_entity_t *e);
int eg_mindex_remove_entity(eg_mindex_t *ix, const char *entity_id);
int eg_mindex_put_doc(eg_mindex_t *ix, const eg_mem_doc_t *d);
int eg_mindex_remove_doc(eg_mindex_t *ix, const char *doc_id);

/* ---- queries --------------------------------------------------------------------------------- */

size_t eg_mindex_dim(const eg_mindex_t *ix);
/* Live units, and one past the highest slot (the size of a slot bitmap). */
size_t eg_mindex_count(const eg_mindex_t *ix);
size_t eg_mindex_slots(const eg_mindex_t *ix);
/* The unit in slot, or NULL for a free slot. */
const eg_mindex_unit_t *eg_mindex_unit(const eg_mindex_t *ix, uint32_t slot);
/* Slot of a unit id; 0 or EG_ENOTFOUND. */
int eg_mindex_find(const eg_mindex_t *ix, const char *unit_id, uint32_t *slot);

/* The vector and keyword indexes (same slot numbers). Searching is fine; do not modify them. */
eg_vindex_t *eg_mindex_vectors(eg_mindex_t *ix);
eg_bm25_t *eg_mindex_bm25(eg_mindex_t *ix);

/* Turn on the vector index's sign sketches (eg_vindex_sketch_enable) for eg_vbatch_scan; they
 * stay on, kept current by later puts, for the index's life. */
void eg_mindex_sketch_vectors(eg_mindex_t *ix);

/* Entities: count (indexes 0..n-1 may include removed ones: eg_mindex_entity returns NULL for
 * those), by index, by id, by folded name. */
size_t eg_mindex_entities(const eg_mindex_t *ix);
const eg_mindex_entity_t *eg_mindex_entity(const eg_mindex_t *ix, uint32_t idx);
int eg_mindex_entity_by_id(const eg_mindex_t *ix, const char *id, uint32_t *idx);
int eg_mindex_entity_by_folded(const eg_mindex_t *ix, const char *folded, uint32_t *idx);

/* Entity resolution's candidates: up to max entities whose canonical name has trigram similarity
 * >= min_sim with name, most similar first, then by index (eg_resolve_dict_search; hit ids are
 * entity indexes). The name dictionary is built on the first call (a few µs an entity) and kept
 * current by every entity change after it. */
size_t eg_mindex_entity_search(eg_mindex_t *ix, const char *name, double min_sim,
                               eg_resolve_hit_t *out, size_t max);
bool eg_mindex_entity_names_built(const eg_mindex_t *ix);

/* Documents, the same way. */
size_t eg_mindex_docs(const eg_mindex_t *ix);
const eg_mindex_doc_t *eg_mindex_doc(const eg_mindex_t *ix, uint32_t idx);
int eg_mindex_doc_by_id(const eg_mindex_t *ix, const char *id, uint32_t *idx);
/* Live slots of a document's units (into out, at most max); returns the total. */
size_t eg_mindex_doc_units(const eg_mindex_t *ix, uint32_t doc, uint32_t *out, size_t max);

/* Tags: interned id of a tag (EG_MINDEX_NONE when no unit or document has it), its text, the
 * number of ids ever interned, and how many live units carry it. */
uint32_t eg_mindex_tag(const eg_mindex_t *ix, const char *tag);
const char *eg_mindex_tag_name(const eg_mindex_t *ix, uint32_t id);
size_t eg_mindex_ntags(const eg_mindex_t *ix);
uint32_t eg_mindex_tag_units(const eg_mindex_t *ix, uint32_t id);

/* Live slots ordered by mentioned_at ascending (units without it first, by created_at), ties by
 * slot; *n gets the count. Rebuilt lazily after changes; valid until the index changes. */
const uint32_t *eg_mindex_by_time(eg_mindex_t *ix, size_t *n);

/* Temporal neighbours of slot: live units whose event time (occurred_start, else mentioned_at)
 * lies within window_us of its own, nearest first, at most max, as links of type temporal with
 * weight max(0.3, 1 - dt/window_us) (1 - dh/24 for a 24 h window). Invalidated units and units
 * without an event time are skipped. Returns the count. */
size_t eg_mindex_time_near(eg_mindex_t *ix, uint32_t slot, int64_t window_us, size_t max,
                           eg_mindex_link_t *out);

/* A number that changes whenever the index does (units, vectors, entities, documents); no two
 * states of the process's indexes share one, so (ix, version) can key a cache of derived data. */
uint64_t eg_mindex_version(const eg_mindex_t *ix);

/* Units tied with the last of the max nearest that eg_mindex_time_near_at also returns, as a
 * multiple of max. */
#define EG_MINDEX_NEAR_TIES 4

/* The units nearest to time t (µs) by event time (occurred_start, else mentioned_at), within
 * window_us of it, that keep accepts (NULL: all; invalidated units are always skipped): the max
 * nearest, nearest first (on equal distance the earlier side first, then time order), followed by
 * the units at the same distance as the last of them (at most EG_MINDEX_NEAR_TIES * max), so a
 * caller that breaks ties its own way sees every tied unit. out has room for
 * (1 + EG_MINDEX_NEAR_TIES) * max slots. Returns the count. Unlike eg_mindex_time_near, t need
 * not be a unit's: retain asks for the neighbours of units it has not stored yet. */
size_t eg_mindex_time_near_at(eg_mindex_t *ix, int64_t t, int64_t window_us, size_t max,
                              eg_slot_filter_fn keep, void *udata, uint32_t *out);

/* Heap bytes the index holds (with malloc's per-allocation overhead for its small arrays). */
size_t eg_mindex_bytes(const eg_mindex_t *ix);

#endif
