/* Memory store: a bank's documents, chunks, memory units (facts), entities and links in Redis.
 *
 * Redis is the source of truth; every write below is one Lua script in the bank's slot
 * {b:<ws>/<bank>}, so it is atomic (and valid on Redis Cluster), and every write appends one entry
 * to the bank's change stream, which the per-process indexes (engram/mindex.h) tail. Keys
 * (docs/keyspace.md, "Memory"):
 *
 *   eg:{b:<ws>/<bank>}:u    hash  unit id -> unit record (JSON, eg_mem_unit_json)
 *   eg:{b:<ws>/<bank>}:v    hash  unit id -> embedding, dim float32 little-endian
 *   eg:{b:<ws>/<bank>}:l    hash  unit id -> the unit's links: entries
 *                                 "<other id> <type name> <weight>;" (eg_mem_links_parse);
 *                                 semantic and causal links on both units, temporal ones on
 *                                 their holder only (the unit that linked its time neighbours)
 *   eg:{b:<ws>/<bank>}:lr   hash  unit id -> temporal links units hold to it (link_count)
 *   eg:{b:<ws>/<bank>}:so   hash  fact id -> the observations made from it ("id,id,"), kept with them
 *   eg:{b:<ws>/<bank>}:d    hash  document id -> document record (JSON)
 *   eg:{b:<ws>/<bank>}:du   hash  document id -> its unit ids, each followed by ',' (a list a
 *                                 script can edit when one unit goes; not in the JSON)
 *   eg:{b:<ws>/<bank>}:c    hash  chunk id -> chunk record (JSON)
 *   eg:{b:<ws>/<bank>}:e    hash  entity id -> entity record (JSON: id, canonical_name, folded,
 *                                 metadata; an entity goes when its last mention does)
 *   eg:{b:<ws>/<bank>}:es   hash  "<entity id>:n|f|l" -> mention count, first seen, last seen (µs)
 *                                 (integers, updated with HINCRBY/HSET: Lua's cjson would round them)
 *   eg:{b:<ws>/<bank>}:en   hash  folded canonical name -> entity id
 *   eg:{b:<ws>/<bank>}:x    stream change log (MAXLEN ~ EG_MEM_CHANGES_MAX), one entry per write:
 *                                 fields u, e = comma-separated unit / entity ids, d =
 *                                 newline-separated document ids (document ids may hold commas)
 *                                 whose records changed (re-read them; a missing one was
 *                                 deleted; units' links changed with them: a new unit's links
 *                                 name units not listed, whose reverse entries were added), or
 *                                 reset = 1 (reload)
 *   eg:{b:<ws>/<bank>}:wk   zset  write_key -> ms: eg_mem_write keys done (kept 7 days)
 * plus the bank record's counters (fact_count, document_count, chunk_count, link_count,
 * last_document_at, last_write_at) and embedding (embed_dim, embed_model) kept by the same
 * scripts, and operation records (engram/ops.h,
 * scope "b", id "<ws>/<bank>").
 *
 * Times in this module are int64 microseconds since the epoch, UTC (engram/text.h), or
 * EG_MEM_TIME_NONE. Every callback runs exactly once per accepted call; records passed to it are
 * valid only during the callback. */
#ifndef ENGRAM_MSTORE_H
#define ENGRAM_MSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/arena.h"

#define EG_MEM_TIME_NONE   INT64_MIN
#define EG_MEM_UUID_LEN    36   /* unit, entity and operation ids are UUID v4 strings */
#define EG_MEM_DOC_ID_MAX  512  /* bytes of a caller's document id */
#define EG_MEM_TAG_MAX     256  /* bytes of one tag */
#define EG_MEM_TAGS_MAX    64   /* tags on one unit or document */
#define EG_MEM_ENTITIES_MAX 64  /* entities on one unit */
#define EG_MEM_CHANGES_MAX 100000 /* change stream entries kept (approximately) */

typedef enum {
    EG_FACT_WORLD = 0,
    EG_FACT_EXPERIENCE = 1,
    EG_FACT_OBSERVATION = 2,
    EG_FACT_NTYPES
} eg_fact_type_t;

/* "world" | "experience" | "observation". */
const char *eg_fact_type_name(eg_fact_type_t t);
/* Parse a fact type name; 0 or EG_EINVAL. */
int eg_fact_type_parse(const char *s, eg_fact_type_t *out);

typedef enum {
    EG_LINK_TEMPORAL = 0,
    EG_LINK_SEMANTIC,
    EG_LINK_CAUSES,    /* this unit causes the other */
    EG_LINK_CAUSED_BY, /* this unit was caused by the other */
    EG_LINK_ENABLES,
    EG_LINK_PREVENTS,
    EG_LINK_NTYPES
} eg_link_type_t;

/* "temporal", "semantic", "causes", "caused_by", "enables", "prevents". */
const char *eg_link_type_name(eg_link_type_t t);
/* The same link seen from the other end: causes <-> caused_by, the rest unchanged. */
eg_link_type_t eg_link_type_reverse(eg_link_type_t t);

/* A link from the unit holding it to other_id. */
typedef struct eg_mem_link_s {
    const char *other_id;
    eg_link_type_t type;
    float weight; /* 0..1 */
} eg_mem_link_t;

/* A memory unit (fact). */
typedef struct eg_mem_unit_s {
    const char *id;      /* UUID v4 */
    const char *text;    /* never NULL */
    const char *context; /* "" when none */
    eg_fact_type_t type;
    int64_t occurred_start, occurred_end; /* EG_MEM_TIME_NONE when the fact has no date */
    int64_t mentioned_at;                 /* the item timestamp (+ 0.01 s per fact); may be NONE */
    int64_t created_at, updated_at;
    const char *const *tags;
    size_t ntags;
    const cJSON *metadata; /* object of string values; NULL = {} */
    const char *const *entity_ids;
    size_t nentities;
    const char *document_id; /* NULL when none */
    const char *chunk_id;    /* NULL when none */
    bool invalidated;        /* state "invalidated" (hidden from recall, kept for listing) */
    const char *invalidation_reason; /* NULL when none */
    int64_t invalidated_at, edited_at; /* EG_MEM_TIME_NONE when never */
    int proof_count;                   /* 1 for facts; observations count their sources */
    const char *const *source_ids;     /* observations: the facts they were made from */
    size_t nsources;
    /* Consolidation (engram/consolidate.h). Facts: when consolidation took them in, or when it
     * last failed on them and why; both <= 0 (0 or EG_MEM_TIME_NONE) = pending. Observations:
     * their history, an array of {previous_text, new_text, changed_at, reason} objects (oldest
     * first, NULL = none). Absent from the stored record while unset. */
    int64_t consolidated_at, consolidation_failed_at;
    const char *consolidation_error; /* NULL when none */
    const cJSON *history;
} eg_mem_unit_t;

/* A document: the text one retained item (or several, with the same document_id) came from. */
typedef struct eg_mem_doc_s {
    const char *id;
    const char *original_text; /* NULL when not stored */
    const char *content_hash;  /* hex SHA-256 of original_text; NULL when not stored */
    int64_t created_at, updated_at;
    const char *const *tags;
    size_t ntags;
    const cJSON *metadata;      /* object; NULL = none */
    const cJSON *retain_params; /* object (context, timestamp, ...); NULL = none */
    const char *const *unit_ids; /* eg_mem_doc_get fills them from :du; not in the JSON */
    size_t nunits;
    size_t nchunks;
    size_t text_length; /* code points of original_text */
} eg_mem_doc_t;

/* A chunk: a piece of a document's text. Its id is "<bank_id>_<document_id>_<chunk_index>". */
typedef struct eg_mem_chunk_s {
    const char *id;
    const char *document_id;
    size_t chunk_index;
    const char *text;
    int64_t created_at;
} eg_mem_chunk_t;

/* An entity (a person, place, thing) that units mention. */
typedef struct eg_mem_entity_s {
    const char *id; /* UUID v4 */
    const char *canonical_name;
    int64_t mention_count;
    int64_t first_seen, last_seen; /* EG_MEM_TIME_NONE when unknown */
    const cJSON *metadata;         /* NULL = none */
} eg_mem_entity_t;

/* ---- codecs (pure; the loader of engram/mindex.h and the tests use them) ----------------------- */

/* The stored JSON of a unit / document / chunk / entity record (a new tree; caller deletes). */
cJSON *eg_mem_unit_json(const eg_mem_unit_t *u);
cJSON *eg_mem_doc_json(const eg_mem_doc_t *d);
cJSON *eg_mem_chunk_json(const eg_mem_chunk_t *c);
cJSON *eg_mem_entity_json(const eg_mem_entity_t *e);

/* Decode a stored record of len bytes into *out; strings and arrays are allocated in a (cJSON
 * values too: they live until the arena is reset). 0 or EG_EINVAL for a malformed record. */
int eg_mem_unit_parse(eg_arena_t *a, const char *json, size_t len, eg_mem_unit_t *out);
int eg_mem_doc_parse(eg_arena_t *a, const char *json, size_t len, eg_mem_doc_t *out);
int eg_mem_chunk_parse(eg_arena_t *a, const char *json, size_t len, eg_mem_chunk_t *out);
int eg_mem_entity_parse(eg_arena_t *a, const char *json, size_t len, eg_mem_entity_t *out);

/* Decode a unit's stored links ("<other id> <type> <weight>;" repeated) into an array in the
 * arena; 0 or EG_EINVAL. */
int eg_mem_links_parse(eg_arena_t *a, const char *s, size_t len, eg_mem_link_t **out, size_t *n);

/* The chunk id of a document's chunk: "<bank_id>_<document_id>_<index>" in the arena. */
char *eg_mem_chunk_id(eg_arena_t *a, const char *bank_id, const char *document_id, size_t index);

/* Fold an entity name for exact matching (eg_text tokens joined by one space: "Dr.  Alice
 * O'Neil" -> "dr alice oneil"), in the arena. */
char *eg_mem_entity_fold(eg_arena_t *a, const char *name);

/* ---- retain: one atomic write per document ------------------------------------------------- */

/* An entity a written batch refers to. */
typedef struct eg_mem_entity_ref_s {
    const char *id;   /* an existing entity's id, or a fresh UUID the caller made for a new one */
    const char *name; /* canonical name */
    bool is_new;      /* create it (unless its folded name exists by then: see eg_mem_write) */
    int64_t mentions; /* units of this batch that mention it (the store counts them from the
                       * units' entity_ids; a ref no unit names is ignored) */
    int64_t seen_at;  /* latest event time among them (last_seen; first_seen for a new one) */
} eg_mem_entity_ref_t;

/* A unit to write, with its vector and its links (to units already stored or to other units of
 * the same batch; links to units that no longer exist are dropped). The reverse side of every
 * link is stored too. */
typedef struct eg_mem_new_unit_s {
    eg_mem_unit_t unit; /* entity_ids refer to the batch's entity refs by id */
    const float *vec;   /* dim floats, L2-normalised */
    const eg_mem_link_t *links;
    size_t nlinks;
} eg_mem_new_unit_t;

typedef struct eg_mem_write_s {
    /* The document. replace: its previous units, chunks and their links go first (upsert);
     * without replace an existing document is EG_ECONFLICT. Units' document_id is doc.id. */
    eg_mem_doc_t doc; /* unit_ids/nunits/nchunks are filled by the store */
    bool replace;
    const char *const *chunks; /* chunk texts, index = position */
    size_t nchunks;
    eg_mem_new_unit_t *units;
    size_t nunits;
    const eg_mem_entity_ref_t *entities;
    size_t nentities;
    size_t dim;              /* floats per vector */
    const char *embed_model; /* the embedder's name, recorded on the bank */
    /* Optional idempotency key (an async retain job's operation id + item): when the bank
     * already recorded it, nothing is written and the callback reports replayed = true. */
    const char *write_key;
} eg_mem_write_t;

typedef struct eg_mem_write_result_s {
    bool replayed;            /* write_key was already done: nothing written */
    size_t units_written;     /* units stored */
    size_t units_replaced;    /* old units of the document removed first */
    size_t links_written;     /* links stored (each counted once) */
    size_t entities_created;  /* new entities */
    /* New entities whose folded name existed by the time of the write were merged into the
     * existing entity: the script rewrote the batch's references. id_map[i] = {new id, existing
     * id}, n_map pairs. */
    const char *const (*id_map)[2];
    size_t n_map;
} eg_mem_write_result_t;

typedef void (*eg_mem_write_fn)(void *udata, int err, const eg_mem_write_result_t *r);

/* Write one document's batch atomically: (replace) drop the old document's units, chunks and
 * links; store the document, chunks, units, vectors and links (semantic and causal ones on both
 * units, temporal ones on the unit that holds them, see the :l and :lr keys); create new
 * entities or add mentions to existing ones (first/last seen widened); update the bank counters
 * and last_write_at/last_document_at; append the change entry. The bank must exist
 * (EG_ENOTFOUND otherwise). A dim or model different from the bank's recorded one is
 * EG_ECONFLICT while the bank holds units. A unit id of the batch that exists already is
 * replaced (counted in units_replaced); links to the unit itself are ignored. EG_EINVAL: bad ids
 * or limits, a unit naming an entity that is not among the refs, two refs with one folded name.
 * Returns 0 (cb runs) or EG_EINVAL / EG_EUNAVAIL. */
int eg_mem_write(const char *ws_id, const char *bank_id, const eg_mem_write_t *w,
                 eg_mem_write_fn cb, void *udata);

/* ---- reads ----------------------------------------------------------------------------------- */

/* units[i] is the unit with ids[i], or NULL when it does not exist. */
typedef void (*eg_mem_units_fn)(void *udata, int err, const eg_mem_unit_t *const *units,
                                size_t n);
/* Fetch units by id in one round trip (HMGET). with_links: also their links (links[i], nlinks[i];
 * else NULL). */
typedef void (*eg_mem_units_links_fn)(void *udata, int err, const eg_mem_unit_t *const *units,
                                      const eg_mem_link_t *const *links, const size_t *nlinks,
                                      size_t n);
int eg_mem_units_get(const char *ws_id, const char *bank_id, const char *const *ids, size_t n,
                     eg_mem_units_fn cb, void *udata);
int eg_mem_units_get_links(const char *ws_id, const char *bank_id, const char *const *ids,
                           size_t n, eg_mem_units_links_fn cb, void *udata);

typedef void (*eg_mem_doc_fn)(void *udata, int err, const eg_mem_doc_t *doc);
/* One document; EG_ENOTFOUND when it does not exist. */
int eg_mem_doc_get(const char *ws_id, const char *bank_id, const char *doc_id, eg_mem_doc_fn cb,
                   void *udata);

typedef void (*eg_mem_chunks_fn)(void *udata, int err, const eg_mem_chunk_t *const *chunks,
                                 size_t n);
/* Chunks by id (NULL entries for missing ones). */
int eg_mem_chunks_get(const char *ws_id, const char *bank_id, const char *const *ids, size_t n,
                      eg_mem_chunks_fn cb, void *udata);

typedef void (*eg_mem_entities_fn)(void *udata, int err, const eg_mem_entity_t *const *ents,
                                   size_t n);
/* Entities by id (NULL entries for missing ones). */
int eg_mem_entities_get(const char *ws_id, const char *bank_id, const char *const *ids, size_t n,
                        eg_mem_entities_fn cb, void *udata);

/* ---- changes --------------------------------------------------------------------------------- */

typedef void (*eg_mem_count_fn)(void *udata, int err, int64_t n);

/* Replace a unit's record (a curated edit: text, context, dates, type, entities, tags, state).
 * vec: its new vector (NULL keeps the old one). The write happens only when the stored
 * updated_at still equals expect_updated_at (EG_ECONFLICT otherwise: re-read and retry);
 * entity mention counts follow the change of entity_ids. cb gets n = 1, or EG_ENOTFOUND, or
 * EG_EINVAL when an entity id does not exist or the document_id differs from the stored one. */
int eg_mem_unit_replace(const char *ws_id, const char *bank_id, const eg_mem_unit_t *u,
                        const float *vec, size_t dim, int64_t expect_updated_at,
                        eg_mem_count_fn cb, void *udata);

/* eg_mem_unit_replace that may also create entities: news[0..nnew) are entities the unit names
 * (by their fresh ids in u->entity_ids) that the bank does not have yet; each is created with its
 * seen_at as first and last seen, unless its folded name exists by the time of the write, in which
 * case the unit names that existing entity instead (mentions is ignored: the unit counts one). */
int eg_mem_unit_replace_ents(const char *ws_id, const char *bank_id, const eg_mem_unit_t *u,
                             const float *vec, size_t dim, int64_t expect_updated_at,
                             const eg_mem_entity_ref_t *news, size_t nnew, eg_mem_count_fn cb,
                             void *udata);

/* eg_mem_unit_replace_ents that, with detach, also drops the links the unit holds (semantic and
 * causal ones on both sides, the temporal ones it holds; those other units hold to it stay) and
 * removes it from the source_ids of every observation listing it (proof_count follows,
 * updated_at becomes now; an observation left with no source is deleted), in the same script:
 * a curated edit of a fact's text, or its invalidation. */
int eg_mem_unit_curate(const char *ws_id, const char *bank_id, const eg_mem_unit_t *u,
                       const float *vec, size_t dim, int64_t expect_updated_at,
                       const eg_mem_entity_ref_t *news, size_t nnew, bool detach,
                       eg_mem_count_fn cb, void *udata);

/* Delete units (their vectors, links both ways, entity mentions, document membership and the
 * counters); a deleted world or experience fact that consolidation took in is removed from the
 * source_ids of the observations listing it (proof_count follows; an observation left with no
 * source is deleted), in the same script — so too for eg_mem_doc_delete, eg_mem_clear and a
 * replacing eg_mem_write. cb gets the number that existed (observations deleted that way are
 * not counted). */
int eg_mem_units_delete(const char *ws_id, const char *bank_id, const char *const *ids, size_t n,
                        eg_mem_count_fn cb, void *udata);

/* Delete a document and everything made from it (units, chunks, links); cb gets the number of
 * units deleted, or EG_ENOTFOUND when there was no such document. */
int eg_mem_doc_delete(const char *ws_id, const char *bank_id, const char *doc_id,
                      eg_mem_count_fn cb, void *udata);

/* Set a document's tags, and the tags of every unit made from it (their updated_at becomes now);
 * cb gets the number of units updated, or EG_ENOTFOUND. */
int eg_mem_doc_set_tags(const char *ws_id, const char *bank_id, const char *doc_id,
                        const char *const *tags, size_t ntags, eg_mem_count_fn cb, void *udata);

/* Delete every unit whose type is in types_mask (bit 1 << eg_fact_type_t); with every type,
 * documents, chunks and entities go too. The bank record and config stay. cb gets the number of
 * units deleted, or EG_ENOTFOUND for a missing bank; the change entry is a reset. */
int eg_mem_clear(const char *ws_id, const char *bank_id, unsigned types_mask, eg_mem_count_fn cb,
                 void *udata);

/* The Redis keys of a bank's memory (u, v, l, d, c, e, es, en, x, du, wk) in the arena, for the
 * bank's delete script (engram/bank.h), which drops them with the bank record. *n gets the
 * count. */
const char **eg_mem_bank_keys(eg_arena_t *a, const char *ws_id, const char *bank_id, size_t *n);

#endif
