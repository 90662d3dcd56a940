/* The library: memory types and source memories (TEXT, URL, FILE) of a workspace, the
 * synchronisation of their content (fetch or extract, chunk, index into the memory engine), bulk
 * METADATA upserts, and chunk search under guard-rail scopes. No HTTP in here: the Fency face
 * (src/faces/fency/memories.c) parses requests and renders what these functions return.
 *
 * Records are kept in the workspace's slot, under eg:{w:<ws>}:fy: (docs/keyspace.md, "Fency
 * library"). Memory and memory-type JSON is Fency's shape (../shared/faces/fency.md §2). Content
 * is chunked (1-based chunk numbers, the pages each chunk came from) and indexed as one unit per
 * chunk in the workspace's memory-engine bank "fency". Synchronisation runs as jobs on the durable
 * queue "library", so a crash mid-sync finishes after a restart.
 *
 * Every callback runs exactly once per accepted call, later, from the loop; what it is given is
 * valid only during the callback. */
#ifndef ENGRAM_LIBRARY_H
#define ENGRAM_LIBRARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "engram/arena.h"
#include "engram/zpage.h"

#define EG_LIB_BANK        "fency" /* the memory-engine bank of a workspace's library */
#define EG_LIB_QUEUE       "library"
#define EG_LIB_JOB_MAX     1000 /* memories one bulk job may carry */
#define EG_LIB_FIELDS_MAX  100  /* metadataFields of a memory type */
#define EG_LIB_SCOPE_MAX   100  /* memory types (and ids per type) in a guard-rail scope */
#define EG_LIB_SEARCH_MAX  100  /* hits eg_lib_search returns at most */
#define EG_LIB_MEMREFS_MAX 1000 /* memories eg_lib_memories returns at most */

/* ---- guard-rail scopes ------------------------------------------------------------------- */

/* A guard-rail scope: which memories a reader may see. ntypes 0 = every memory of the workspace. */
typedef struct eg_lib_scope_type_s {
    const char *type_id;
    const char *const *memory_ids; /* none = every memory of the type */
    size_t nmemory_ids;
    const cJSON *match; /* object: metadata key -> value, every pair must be equal; NULL = none */
    const char *const *hidden_keys; /* metadata keys the model must not see */
    size_t nhidden;
} eg_lib_scope_type_t;

typedef struct eg_lib_scope_s {
    const eg_lib_scope_type_t *types;
    size_t ntypes;
} eg_lib_scope_t;

/* Parse guardRails JSON ({"memoryTypes":[{memoryTypeId*, memoryIds?, match?, metadata?:[{key,
 * visible}]}]}) into a scope in a (NULL guard_rails = every memory); 0 or EG_EINVAL with *why. */
int eg_lib_scope_parse(eg_arena_t *a, const cJSON *guard_rails, eg_lib_scope_t *out,
                       const char **why);

/* Is a memory (its id, type id and metadata object) inside scope? */
bool eg_lib_scope_allows(const eg_lib_scope_t *scope, const char *memory_id, const char *type_id,
                         const cJSON *metadata);

/* The scope's entry for type_id (NULL when the scope does not list it; always NULL for an
 * unrestricted scope). */
const eg_lib_scope_type_t *eg_lib_scope_type(const eg_lib_scope_t *scope, const char *type_id);

/* A copy of metadata without the keys the scope hides for type_id (caller deletes it). */
cJSON *eg_lib_scope_visible(const eg_lib_scope_t *scope, const char *type_id,
                            const cJSON *metadata);

/* ---- reading content (agent tasks) ------------------------------------------------------- */

typedef struct eg_lib_chunk_s {
    const char *memory_id, *memory_title, *type_id, *type_name;
    int chunk_number; /* 1-based within the memory */
    const int *pages;
    size_t npages;
    const char *content;
    float score; /* 0..1, search hits only */
} eg_lib_chunk_t;

typedef void (*eg_lib_chunks_fn)(void *udata, int err, const eg_lib_chunk_t *c, size_t n);

/* Chunk search over SYNCHRONIZED memories inside scope, best first, at most limit hits.
 * Never returns a chunk outside scope (enforced here, not by callers). */
int eg_lib_search(const char *ws, const eg_lib_scope_t *scope, const char *query, size_t limit,
                  eg_lib_chunks_fn cb, void *udata);

/* Chunks first..last (1-based, inclusive, clipped) of one memory, if it is inside scope
 * (EG_ENOTFOUND otherwise, as for an unknown memory); none while it is not SYNCHRONIZED. */
int eg_lib_chunks(const char *ws, const eg_lib_scope_t *scope, const char *memory_id, int first,
                  int last, eg_lib_chunks_fn cb, void *udata);

/* Memories inside scope (id, title, type id/name, metadata without hidden keys), newest first. */
typedef struct eg_lib_memref_s {
    const char *id, *title, *type_id, *type_name;
    const cJSON *metadata;
    const char *content_status; /* "SYNCHRONIZED", ... */
} eg_lib_memref_t;

typedef void (*eg_lib_memrefs_fn)(void *udata, int err, const eg_lib_memref_t *m, size_t n);

int eg_lib_memories(const char *ws, const eg_lib_scope_t *scope, size_t limit, eg_lib_memrefs_fn cb,
                    void *udata);

/* ---- memories ---------------------------------------------------------------------------- */

/* Memory JSON (Fency shape) by id: err EG_ENOTFOUND when absent. */
int eg_lib_memory_get(const char *ws, const char *id, void (*cb)(void *, int, const cJSON *),
                      void *udata);

/* File content arrived (the upload route calls this after a valid upload): store the bytes
 * durably and queue extraction; the memory goes SYNCHRONIZING and later SYNCHRONIZED /
 * SYNCHRONIZATION_ERROR. EG_ENOTFOUND unknown memory, EG_EINVAL not a FILE memory. */
int eg_lib_memory_set_file(const char *ws, const char *id, const char *file_name, const char *mime,
                           const void *data, size_t len, void (*cb)(void *, int), void *udata);

/* err 0 and a Fency-shaped object (memory, memory type, job), or an error: EG_ENOTFOUND,
 * EG_EINVAL / EG_ECONFLICT with why (a sentence naming the field or the reason), store errors. */
typedef void (*eg_lib_json_fn)(void *udata, int err, const char *why, const cJSON *json);

/* A page of records: items (Fency shape; the callee keeps ownership) and the zpage cursors. */
typedef void (*eg_lib_page_fn)(void *udata, int err, const cJSON *items, const eg_zpage_t *page);

/* The calls below that take a body check it first: a malformed one returns EG_EINVAL with *why
 * naming the field, a malformed id EG_ENOTFOUND (with *why where there is one), and cb is not
 * called. Every other outcome reaches cb. The body must stay valid until cb runs.
 *
 * Create a memory from a POST /v1/memories body ({memoryTypeId*, sourceType* TEXT|URL|FILE,
 * title*, text* (TEXT only), url* (URL only), metadata?}). TEXT and URL start SYNCHRONIZING,
 * FILE EMPTY; emits memory.created. An unknown memory type reaches cb as EG_ENOTFOUND. */
int eg_lib_memory_create(const char *ws, const cJSON *body, const char **why, eg_lib_json_fn cb,
                         void *udata);

/* Apply a PATCH body ({title?, text? (TEXT), url? (URL), metadata?}): only given keys change,
 * metadata is replaced whole, new text / url re-synchronises; emits memory.updated. text on a
 * memory that is not TEXT (url: not URL) reaches cb as EG_EINVAL with why. */
int eg_lib_memory_patch(const char *ws, const char *id, const cJSON *body, const char **why,
                        eg_lib_json_fn cb, void *udata);

/* Delete a memory and its indexed content; cb gets the deleted memory; emits memory.deleted. */
int eg_lib_memory_delete(const char *ws, const char *id, eg_lib_json_fn cb, void *udata);

/* A page of memories (q's zkey / hkey are filled in here). */
int eg_lib_memory_page(const char *ws, const eg_zpage_req_t *q, eg_lib_page_fn cb, void *udata);

/* ---- memory types ------------------------------------------------------------------------ */

/* Create from a POST /v1/memory-types body ({name*, description*, type? SEMANTIC|METADATA,
 * identityKeyName?, updatedAtKeyName?, metadataFields?: [{name*, description?, fieldType?}]}). */
int eg_lib_type_create(const char *ws, const cJSON *body, const char **why, eg_lib_json_fn cb,
                       void *udata);

/* One memory type; EG_ENOTFOUND. */
int eg_lib_type_get(const char *ws, const char *id, eg_lib_json_fn cb, void *udata);

/* Delete a memory type; refused with EG_ECONFLICT (why says how many memories) while any
 * memory has it: no cascade. cb gets the deleted type. */
int eg_lib_type_delete(const char *ws, const char *id, eg_lib_json_fn cb, void *udata);

/* A page of memory types (q's zkey / hkey are filled in here). */
int eg_lib_type_page(const char *ws, const eg_zpage_req_t *q, eg_lib_page_fn cb, void *udata);

/* ---- bulk METADATA jobs ------------------------------------------------------------------ */

/* Queue a bulk upsert ({memoryTypeId*, memories:[{title*, metadata*}] (1..EG_LIB_JOB_MAX)});
 * cb gets {"jobId"}. An unknown type reaches cb as EG_ENOTFOUND, one that is not METADATA as
 * EG_EINVAL. */
int eg_lib_job_create(const char *ws, const cJSON *body, const char **why, eg_lib_json_fn cb,
                      void *udata);

/* {jobId, status PENDING|RUNNING|COMPLETED|FAILED, errorMessage, result:{created, updated,
 * skipped:[{identityValue, reason}]}}; EG_ENOTFOUND (jobs are kept 30 days). */
int eg_lib_job_get(const char *ws, const char *id, eg_lib_json_fn cb, void *udata);

/* ---- lifecycle --------------------------------------------------------------------------- */

/* Start the "library" queue's worker (after eg_store_init, eg_mindex_init and eg_retain_start):
 * ENGRAM_LIBRARY_CONCURRENCY, ENGRAM_LIBRARY_VISIBILITY, ENGRAM_LIBRARY_URL_MAX_BYTES. 0 or
 * EG_EINVAL (bad environment). */
int eg_library_start(uv_loop_t *loop);

/* Stop taking jobs, let running ones finish (the queue's close timeout), then done(udata). */
void eg_library_stop(void (*done)(void *), void *udata);

#endif
