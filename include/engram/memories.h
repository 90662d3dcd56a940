/* Memories: browsing and curating a bank's memory, usable by every face (no HTTP in here) — the
 * listing of memory units, one memory, curated edits, the memory graph, entities and their
 * co-occurrence graph, tags, documents and chunks, and the bank's statistics and time series.
 *
 * Selecting, sorting, counting and graph building run over the bank's in-memory index
 * (engram/mindex.h, acquired caught up with every write acknowledged before the call); only the
 * records of what is shown are then fetched from Redis by id (engram/mstore.h). A bank that does
 * not exist reads as an empty bank. Every callback runs exactly once per accepted call, later,
 * from the loop; what it is given is valid only during the callback. Times are int64
 * microseconds since the epoch, UTC, or EG_MEM_TIME_NONE.
 *
 * The implementation is split by concept: memories.c (selection, record fetches, the listing, one
 * memory), memories_patch.c (curated edits), memories_graph.c (the memory graph, the entity
 * graph), memories_stats.c (statistics, time series, tags, entities), memories_docs.c (documents
 * and chunks). */
#ifndef ENGRAM_MEMORIES_H
#define ENGRAM_MEMORIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/mstore.h"
#include "engram/ops.h"
#include "engram/recall.h"

#define EG_MEMORIES_FETCH_MAX   10000          /* records one listing or graph fetches at most */
#define EG_MEMORIES_PATCH_TRIES 5              /* read-modify-write attempts of a curated edit */
#define EG_MEMGRAPH_ENTITY      EG_LINK_NTYPES /* the graph's edge type for a shared entity */
#define EG_MEMGRAPH_NTYPES      (EG_LINK_NTYPES + 1)

/* A unit record with the canonical names of its entities (in the order of unit->entity_ids; an
 * entity whose record is gone is skipped). */
typedef struct eg_memory_s {
    const eg_mem_unit_t *unit;
    const char *const *entity_names;
    size_t nentity_names;
} eg_memory_t;

/* Curation state a selection keeps. */
typedef enum {
    EG_MEM_STATE_VALID = 0,   /* live memories only (the default) */
    EG_MEM_STATE_INVALIDATED, /* invalidated ones only */
    EG_MEM_STATE_ANY,
} eg_mem_state_t;

/* Consolidation state a selection keeps (world and experience facts only; engram/consolidate.h):
 * pending (neither consolidated nor failed), done (consolidated_at set) or failed. */
typedef enum {
    EG_MEM_CONSOLIDATION_ANY = 0,
    EG_MEM_CONSOLIDATION_PENDING,
    EG_MEM_CONSOLIDATION_DONE,
    EG_MEM_CONSOLIDATION_FAILED,
} eg_mem_consolidation_t;

/* What a listing or a graph selects; all zero selects every valid unit. */
typedef struct eg_memories_query_s {
    unsigned types; /* bit (1u << eg_fact_type_t); 0 = every type */
    bool none;      /* select nothing (e.g. an unknown type name was asked for) */
    /* Words that must all occur in text + context, matched as the keyword index's terms
     * (folded, stemmed; stopwords ignored, so a text of stopwords only selects everything). */
    const char *text;
    eg_mem_state_t state;
    eg_mem_consolidation_t consolidation;
    const char *document_id; /* NULL = any */
    const char *chunk_id;    /* "<bank>_<document>_<index>", NULL = any */
    const char *entity_id;   /* NULL = any */
    const char *const *tags; /* with tags_match (engram/recall.h) */
    size_t ntags;
    eg_tags_match_t tags_match;
    size_t limit, offset; /* the listing's page; the graph uses limit only */
} eg_memories_query_t;

/* ---- memory units ------------------------------------------------------------------------- */

/* items[0..n) is the page; total counts every selected unit. */
typedef void (*eg_memories_list_fn)(void *udata, int err, const eg_memory_t *items, size_t n,
                                    size_t total);

/* A page of the selected units, newest first: mentioned_at descending (units without it last),
 * then created_at descending. Returns 0 (cb runs) or EG_EINVAL / EG_EUNAVAIL. */
int eg_memories_list(const char *ws_id, const char *bank_id, const eg_memories_query_t *q,
                     eg_memories_list_fn cb, void *udata);

/* err 0 with the memory, EG_ENOTFOUND, or a store error. sources: an observation's source facts
 * that still exist (mentioned_at descending), else none. */
typedef void (*eg_memory_fn)(void *udata, int err, const eg_memory_t *m, const eg_memory_t *sources,
                             size_t nsources);

/* One memory unit (valid or invalidated) by id. */
int eg_memories_get(const char *ws_id, const char *bank_id, const char *unit_id, eg_memory_fn cb,
                    void *udata);

/* A curated edit; NULL / false leave a field as it is. */
typedef struct eg_memory_patch_s {
    const char *text;    /* new text (re-embedded, eg_llm_embedder); not "" */
    const char *context; /* "" clears */
    bool set_occurred_start, set_occurred_end;
    int64_t occurred_start, occurred_end; /* EG_MEM_TIME_NONE clears */
    bool set_type;
    eg_fact_type_t type; /* world or experience */
    /* Replace the entities by these names, resolved as retain resolves a fact's names
     * (eg_retain_resolve_mentions): a similar existing entity is reused when it scores above the
     * threshold; with literal_entities (Hindsight's resolve_entities: false) only a
     * case-insensitive name match is. Any other name creates a new entity. Duplicates count once;
     * [] detaches every entity. */
    bool set_entities;
    const char *const *entities;
    size_t nentities;
    bool literal_entities;
    bool set_state;
    bool invalidated;   /* true: invalidate (hidden from recall and the graph); false: revert */
    const char *reason; /* recorded when invalidating; NULL = none */
} eg_memory_patch_t;

/* err 0 with the edited memory; EG_ENOTFOUND; EG_EINVAL with why (an observation, which cannot
 * be curated); EG_ECONFLICT after EG_MEMORIES_PATCH_TRIES lost races; or a store error. */
typedef void (*eg_memory_patch_fn)(void *udata, int err, const char *why, const eg_memory_t *m);

/* Edit one world or experience fact: read it, apply p, write it back if nobody changed it
 * meanwhile (eg_mem_unit_replace with the read updated_at), retrying from the read otherwise.
 * updated_at becomes now; edited_at too when the content (text, context, dates, type, entities)
 * changed; invalidated_at is set on invalidation and cleared (with the reason) on revert. A new
 * text or a change of state also makes the fact pending for consolidation, drops the links it
 * holds and removes it from the observations made from it, in the same write (eg_mem_unit_curate);
 * a valid fact made pending queues a consolidation run (eg_consolidate_after_retain). */
int eg_memories_patch(const char *ws_id, const char *bank_id, const char *unit_id,
                      const eg_memory_patch_t *p, eg_memory_patch_fn cb, void *udata);

/* ---- the memory graph --------------------------------------------------------------------- */

/* An edge between items[from] and items[to] (from < to): a stored link (eg_link_type_t, as seen
 * from items[from]), a temporal neighbour, or EG_MEMGRAPH_ENTITY. */
typedef struct eg_memgraph_edge_s {
    uint32_t from, to;
    uint8_t type;
    float weight;
} eg_memgraph_edge_t;

/* "temporal", "semantic", "causes", ... or "entity". */
const char *eg_memgraph_type_name(unsigned type);

typedef void (*eg_memgraph_fn)(void *udata, int err, const eg_memory_t *items, size_t n,
                               const eg_memgraph_edge_t *edges, size_t nedges, size_t total);

/* The graph of the first q->limit selected units (newest first, as the listing; invalidated
 * units never show) and the edges among them: their semantic and causal links, temporal
 * neighbours (within 24 h, the 20 nearest of each, weight max(0.3, 1 - dh/24)), and units that
 * share an entity (each unit joined to the next one mentioning it, weight 1). total counts every
 * selected unit. */
int eg_memories_graph(const char *ws_id, const char *bank_id, const eg_memories_query_t *q,
                      eg_memgraph_fn cb, void *udata);

/* An entity of the co-occurrence graph. */
typedef struct eg_entgraph_node_s {
    const char *id, *name;
    int64_t mention_count;
} eg_entgraph_node_t;

/* Entities nodes[a] and nodes[b] (a's id sorts first) co-occur in count valid units, the latest
 * dated last (mentioned_at, else created_at; NONE when undated). */
typedef struct eg_entgraph_edge_s {
    uint32_t a, b;
    int64_t count;
    int64_t last;
} eg_entgraph_edge_t;

typedef void (*eg_entgraph_fn)(void *udata, int err, const eg_entgraph_node_t *nodes, size_t nnodes,
                               const eg_entgraph_edge_t *edges, size_t nedges);

/* The entity co-occurrence graph, computed from which valid units mention which entities: the
 * limit strongest edges of count >= min_count (count descending, then the latest first), and
 * the entities they join (in order of first appearance). */
int eg_memories_entity_graph(const char *ws_id, const char *bank_id, size_t limit,
                             int64_t min_count, eg_entgraph_fn cb, void *udata);

/* ---- entities and tags -------------------------------------------------------------------- */

typedef void (*eg_memories_entities_fn)(void *udata, int err, const eg_mem_entity_t *ents, size_t n,
                                        size_t total);

/* A page of the bank's entities by mention count descending (then last seen descending, then
 * id); their records are fetched for the page. */
int eg_memories_entities(const char *ws_id, const char *bank_id, size_t limit, size_t offset,
                         eg_memories_entities_fn cb, void *udata);

/* A tag and how many units carry it. */
typedef struct eg_tag_count_s {
    const char *tag;
    size_t count;
} eg_tag_count_t;

typedef void (*eg_memories_tags_fn)(void *udata, int err, const eg_tag_count_t *tags, size_t n,
                                    size_t total);

/* True when tag matches pattern: ASCII case-insensitive, '*' standing for any run of bytes
 * (none included); without a '*' the whole tag must match. */
bool eg_memories_tag_match(const char *pattern, const char *tag);

/* A page of the tags units carry (pattern NULL = all), by count descending then tag. */
int eg_memories_tags(const char *ws_id, const char *bank_id, const char *pattern, size_t limit,
                     size_t offset, eg_memories_tags_fn cb, void *udata);

/* ---- documents and chunks ----------------------------------------------------------------- */

/* A document as listed (from the index). */
typedef struct eg_doc_item_s {
    const char *id;
    int64_t created_at, updated_at;
    const char *const *tags;
    size_t ntags;
    size_t nunits, text_length;
    const char *content_hash; /* NULL when none */
} eg_doc_item_t;

typedef struct eg_docs_query_s {
    const char *q; /* case-insensitive substring of the id; NULL = any */
    const char *const *tags;
    size_t ntags;
    eg_tags_match_t tags_match;
    size_t limit, offset;
} eg_docs_query_t;

typedef void (*eg_memories_docs_fn)(void *udata, int err, const eg_doc_item_t *docs, size_t n,
                                    size_t total);

/* A page of the bank's documents, most recently written first (updated_at, then created_at,
 * descending, then id). */
int eg_memories_documents(const char *ws_id, const char *bank_id, const eg_docs_query_t *q,
                          eg_memories_docs_fn cb, void *udata);

/* err 0 with the record and its valid units per fact type; EG_ENOTFOUND. */
typedef void (*eg_memories_doc_fn)(void *udata, int err, const eg_mem_doc_t *doc,
                                   const size_t by_type[EG_FACT_NTYPES]);

int eg_memories_document(const char *ws_id, const char *bank_id, const char *doc_id,
                         eg_memories_doc_fn cb, void *udata);

/* chunks[0..n) is the page (chunk_index order); total is the document's chunk count. */
typedef void (*eg_memories_chunks_fn)(void *udata, int err, const eg_mem_chunk_t *const *chunks,
                                      size_t n, size_t total);

/* A page of a document's chunks; EG_ENOTFOUND when there is no such document. */
int eg_memories_chunks(const char *ws_id, const char *bank_id, const char *doc_id, size_t limit,
                       size_t offset, eg_memories_chunks_fn cb, void *udata);

typedef void (*eg_memories_chunk_fn)(void *udata, int err, const char *bank_id,
                                     const eg_mem_chunk_t *chunk);

/* Find a chunk of the workspace by its id alone. A chunk id is "<bank>_<document>_<index>" and
 * bank and document ids may hold '_' themselves, so the bank is found by trying the prefixes
 * that end before a '_' as bank ids, longest first, until one holds a chunk with exactly this id
 * (at most EG_MEMORIES_CHUNK_TRIES lookups, one round trip each); cb gets EG_ENOTFOUND when none
 * does. Returns 0 (cb runs later), EG_ENOTFOUND at once when chunk_id cannot be a chunk id, or
 * EG_EINVAL / EG_EUNAVAIL. */
#define EG_MEMORIES_CHUNK_TRIES 16
int eg_memories_chunk_find(const char *ws_id, const char *chunk_id, eg_memories_chunk_fn cb,
                           void *udata);

/* ---- statistics ---------------------------------------------------------------------------- */

typedef struct eg_memstats_s {
    size_t units[EG_FACT_NTYPES]; /* valid units by type */
    size_t invalidated;
    /* Links among valid units, each pair once, by type (EG_MEMGRAPH_NTYPES: stored links,
     * temporal neighbours, and entity links: the units naming an entity joined in a chain, k - 1
     * links for k units, as the memory graph draws them), and by the fact type of the pair's
     * first unit. */
    size_t links[EG_MEMGRAPH_NTYPES];
    size_t links_by_fact[EG_FACT_NTYPES][EG_MEMGRAPH_NTYPES];
    size_t documents, entities;
    size_t ops[5];         /* the bank's operations by eg_op_status_t (newest EG_OP_SCAN_MAX) */
    int64_t last_write_ms; /* from the bank record; 0 = never */
    /* Consolidation: valid world/experience facts pending / failed, and the last finished run
     * (bank record's last_consolidated_at, ms; 0 = never). */
    size_t pending_consolidation, failed_consolidation;
    int64_t last_consolidated_ms;
} eg_memstats_t;

typedef void (*eg_memstats_fn)(void *udata, int err, const eg_memstats_t *st);

/* The bank's statistics: the index's counts, the bank record's counters, the operations. */
int eg_memories_stats(const char *ws_id, const char *bank_id, eg_memstats_fn cb, void *udata);

/* Time series periods (Hindsight's): bucket count and width. */
typedef enum {
    EG_TS_1H = 0, /* 60 minutes */
    EG_TS_12H,    /* 12 hours */
    EG_TS_1D,     /* 24 hours */
    EG_TS_7D,     /* 7 days */
    EG_TS_30D,    /* 30 days */
    EG_TS_90D,    /* 90 days */
} eg_ts_period_t;

/* Which time of a unit places it in a bucket; mentioned_at and occurred_start fall back to
 * created_at for a unit without them. */
typedef enum { EG_TS_CREATED = 0, EG_TS_MENTIONED, EG_TS_OCCURRED } eg_ts_field_t;

/* "1h" ... "90d"; 0 or EG_EINVAL. */
int eg_ts_period_parse(const char *s, eg_ts_period_t *out);
const char *eg_ts_period_name(eg_ts_period_t p);
/* "created_at" | "mentioned_at" | "occurred_start"; 0 or EG_EINVAL. */
int eg_ts_field_parse(const char *s, eg_ts_field_t *out);
const char *eg_ts_field_name(eg_ts_field_t f);

/* The buckets of a period seen at now: *n of them, each width_us wide, the first starting at
 * *first (the last one holds now; starts are whole minutes, hours or UTC days); returns the
 * granularity: "minute", "hour" or "day". */
const char *eg_ts_buckets(eg_ts_period_t p, int64_t now_us, int64_t *first, int64_t *width_us,
                          size_t *n);

typedef struct eg_ts_bucket_s {
    int64_t start;
    size_t counts[EG_FACT_NTYPES];
} eg_ts_bucket_t;

typedef void (*eg_memories_ts_fn)(void *udata, int err, const char *trunc,
                                  const eg_ts_bucket_t *buckets, size_t n);

/* Valid units per bucket and fact type over the period ending at now_us (every bucket present,
 * empty ones too). */
int eg_memories_timeseries(const char *ws_id, const char *bank_id, eg_ts_period_t p,
                           eg_ts_field_t f, int64_t now_us, eg_memories_ts_fn cb, void *udata);

#endif
