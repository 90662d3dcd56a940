/* Mental models: a bank's living documents. A model is a name and a source query; its content is
 * what reflect answers to that query, refreshed in the background and kept with its previous
 * versions. Usable by every face; no HTTP here.
 *
 * Keys (docs/keyspace.md, "Directives and mental models"), in the bank's slot {b:<ws>/<bank>}:
 *   eg:{b:<ws>/<bank>}:mms       zset  model id -> created_at (µs): the index
 *   eg:{b:<ws>/<bank>}:mm:<id>   hash  id, name, source_query, content, tags (JSON array text),
 *                                      max_tokens, trigger (JSON object text), reflect_response
 *                                      (JSON object text, "" = none), last_refreshed_at,
 *                                      last_memory_seen_at (µs, "" = never), created_at,
 *                                      updated_at (µs)
 *   eg:{b:<ws>/<bank>}:mmh:<id>  list  previous versions, newest first, at most
 *                                      EG_MM_HISTORY_MAX: JSON {"previous_content",
 *                                      "previous_refreshed_at" (µs or null), "changed_at" (µs)}
 * Every write is one Lua script. Deleting the bank drops them (eg_mm_bank_keys); clearing a
 * bank's memories keeps them, as Hindsight does.
 *
 * Staleness: is_stale is computed on read as "the bank was written (last_write_at) after
 * last_memory_seen_at", which a refresh sets to the bank's last_write_at when it saves. It does
 * not look at the model's tag scope (a write outside the scope also marks it stale) and a model
 * never refreshed is stale as soon as the bank holds a write.
 *
 * Refresh seam. eg_mm_create and eg_mm_refresh_enqueue create an operation record
 * (engram/ops.h) of kind EG_MM_OP_KIND in the bank's scope ("b", "<ws>/<bank>"; meta
 * {"mental_model_id":id,"payload":<the job payload>}) in the same script that checks or writes
 * the model, then push a job on queue EG_MM_QUEUE (engram/queue.h), job id = the operation id
 * (":r<n>" appended on the n-th retry of a failed operation), payload:
 *
 *     {"ws":"<workspace id>","bank":"<bank id>","id":"<mental model id>","op":"<operation id>"}
 *
 * The consumer of that queue (the reflect module's worker) loads the model with eg_mm_get, moves
 * the operation to processing (eg_op_update("b", "<ws>/<bank>", op, EG_OP_PROCESSING, ...)), runs
 * reflect with the model's source_query (its tags, max_tokens and trigger as the scope), stores
 * the answer with eg_mm_save_refresh, then completes or fails the operation with eg_op_update. A
 * model deleted meanwhile is EG_ENOTFOUND from eg_mm_get: fail the operation, finish the job.
 * Retrying a failed operation (engram/bankops.h) pushes the same payload again.
 *
 * Every callback runs exactly once per accepted call (return 0), later, from the loop; what it is
 * given is valid only during the callback. Functions return 0, EG_EINVAL (bad argument) or
 * EG_EUNAVAIL (store down, cb not called). */
#ifndef ENGRAM_MENTAL_MODELS_H
#define ENGRAM_MENTAL_MODELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/arena.h"
#include "engram/recall.h" /* eg_tags_match_t */

#define EG_MM_QUEUE          "mm_refresh"
#define EG_MM_OP_KIND        "refresh_mental_model"
#define EG_MM_ID_MAX         256 /* bytes of a caller's id (printable, no spaces) */
#define EG_MM_NAME_MAX       1024
#define EG_MM_QUERY_MAX      (16 * 1024)
#define EG_MM_CONTENT_MAX    (1024 * 1024)
#define EG_MM_MAX_TOKENS_MIN 256
#define EG_MM_MAX_TOKENS_MAX 8192
#define EG_MM_MAX_TOKENS_DEF 2048
#define EG_MM_HISTORY_MAX    50
#define EG_MM_MAX            1000 /* models one bank may hold */

/* A mental model as stored. Times are µs since the epoch (UTC), EG_MEM_TIME_NONE (INT64_MIN,
 * engram/mstore.h) when never. */
typedef struct eg_mm_s {
    const char *id;
    const char *name;
    const char *source_query;
    const char *content; /* "" before the first refresh or after a clear */
    const char *const *tags;
    size_t ntags;
    int64_t max_tokens;
    const cJSON *trigger;          /* object, {} by default */
    const cJSON *reflect_response; /* object, NULL when none */
    int64_t last_refreshed_at, last_memory_seen_at;
    int64_t created_at, updated_at;
    bool is_stale;
} eg_mm_t;

/* err 0 with the model; EG_ENOTFOUND; or a store error (m NULL). */
typedef void (*eg_mm_fn)(void *udata, int err, const eg_mm_t *m);

/* err 0 with ms[0..n); total counts every match (not just the page). */
typedef void (*eg_mms_fn)(void *udata, int err, const eg_mm_t *ms, size_t n, size_t total);

/* err 0 with the model's id and the refresh operation's id; EG_ECONFLICT when the id is taken. */
typedef void (*eg_mm_op_fn)(void *udata, int err, const char *id, const char *op_id);

/* A new model (Hindsight's CreateMentalModelRequest). */
typedef struct eg_mm_new_s {
    const char *id;                  /* NULL: a fresh UUID v4 */
    const char *name, *source_query; /* required (may be "") */
    const char *const *tags;
    size_t ntags;
    int64_t max_tokens;   /* EG_MM_MAX_TOKENS_MIN..MAX; 0 = EG_MM_MAX_TOKENS_DEF */
    const cJSON *trigger; /* object or NULL ({}) */
} eg_mm_new_t;

/* True when id (len bytes) can name a model: 1..EG_MM_ID_MAX bytes of printable ASCII without
 * spaces (job ids and keys carry it). */
bool eg_mm_id_valid(const char *id, size_t len);

/* Create a model with empty content, its refresh operation (one script; the bank is created if
 * missing), then push its refresh job. cb gets the ids; EG_ECONFLICT when the id exists or the
 * bank holds EG_MM_MAX models. */
int eg_mm_create(const char *ws_id, const char *bank_id, const eg_mm_new_t *m, eg_mm_op_fn cb,
                 void *udata);

/* One model; EG_ENOTFOUND when it (or the bank) does not exist. */
int eg_mm_get(const char *ws_id, const char *bank_id, const char *id, eg_mm_fn cb, void *udata);

typedef struct eg_mm_query_s {
    const char *const *tags; /* NULL / 0: every model */
    size_t ntags;
    eg_tags_match_t tags_match; /* any / all include untagged models, strict forms do not,
                                   exact wants the same tag set */
    size_t limit, offset;       /* limit 1..1000 */
} eg_mm_query_t;

/* A page of a bank's models, newest first (created_at desc, then id); none for an unknown bank. */
int eg_mm_list(const char *ws_id, const char *bank_id, const eg_mm_query_t *q, eg_mms_fn cb,
               void *udata);

/* A change: NULL / false leave a field alone. Content is only written by refreshes. */
typedef struct eg_mm_patch_s {
    const char *name, *source_query;
    int64_t max_tokens; /* 0 = keep */
    bool set_tags;
    const char *const *tags;
    size_t ntags;
    const cJSON *trigger; /* object, replaces the stored one */
} eg_mm_patch_t;

/* Apply p (updated_at becomes now); cb gets the model after it, or EG_ENOTFOUND. */
int eg_mm_patch(const char *ws_id, const char *bank_id, const char *id, const eg_mm_patch_t *p,
                eg_mm_fn cb, void *udata);

/* Delete a model and its history; cb gets the model as it was, or EG_ENOTFOUND. Its pending
 * refresh operations stay (a worker finds the model gone). */
int eg_mm_delete(const char *ws_id, const char *bank_id, const char *id, eg_mm_fn cb, void *udata);

/* Empty the content (and reflect_response) so the next refresh starts over; the previous content
 * goes to the history. cb gets the model after it, or EG_ENOTFOUND. */
int eg_mm_clear(const char *ws_id, const char *bank_id, const char *id, eg_mm_fn cb, void *udata);

/* One previous version. Times in µs; refreshed_at is EG_MEM_TIME_NONE when that version was
 * never refreshed. */
typedef struct eg_mm_version_s {
    const char *previous_content;
    int64_t previous_refreshed_at;
    int64_t changed_at;
} eg_mm_version_t;

/* err 0 with vs[0..n) newest first; EG_ENOTFOUND when the model does not exist. */
typedef void (*eg_mm_history_fn)(void *udata, int err, const eg_mm_version_t *vs, size_t n);

int eg_mm_history(const char *ws_id, const char *bank_id, const char *id, eg_mm_history_fn cb,
                  void *udata);

/* Store a refreshed content: the previous content goes to the history (capped at
 * EG_MM_HISTORY_MAX), content and reflect_response (a JSON object's text, NULL for none) are
 * set, last_refreshed_at becomes now and last_memory_seen_at the bank's last write (so the model
 * is no longer stale). One script. cb gets the model after it, or EG_ENOTFOUND. */
int eg_mm_save_refresh(const char *ws_id, const char *bank_id, const char *id, const char *content,
                       const char *reflect_response_json, eg_mm_fn cb, void *udata);

/* Create a refresh operation for an existing model (one script: EG_ENOTFOUND when it is
 * missing) and push its job (see the top of this file). cb gets the model id and op id. */
int eg_mm_refresh_enqueue(const char *ws_id, const char *bank_id, const char *id, eg_mm_op_fn cb,
                          void *udata);

/* What reflect's search_mental_models tool asks for. */
typedef struct eg_mm_search_s {
    const char *query;
    const char *const *tags; /* NULL / 0: no tag filter */
    size_t ntags;
    eg_tags_match_t tags_match;
    size_t max_results; /* 0 = 5 */
    const char *const *exclude_ids;
    size_t nexclude;
} eg_mm_search_t;

/* One search hit: the model and its score in [0, 1]. */
typedef struct eg_mm_hit_s {
    const eg_mm_t *mm;
    double score;
} eg_mm_hit_t;

typedef void (*eg_mm_hits_fn)(void *udata, int err, const eg_mm_hit_t *hits, size_t n);

/* The bank's models best matching s->query, at most max_results, best first, each with
 * score = 0.7 * max(0, cosine of the builtin embeddings (engram/embed.h, eg_embed_builtin_vec) of
 * the query and "name\nsource_query\ncontent") + 0.3 * (share of the query's distinct
 * non-stopword terms found in that text); models scoring 0 are left out. Models in exclude_ids
 * and those failing the tag filter are skipped; an unknown bank has none. */
int eg_mm_search(const char *ws_id, const char *bank_id, const eg_mm_search_t *s, eg_mm_hits_fn cb,
                 void *udata);

/* True when a model with tags mt[0..nmt) passes want[0..nwant) under m (see eg_mm_query_t; an
 * empty want passes everything except under exact, where it passes untagged models). Pure. */
bool eg_mm_tags_pass(const char *const *mt, size_t nmt, const char *const *want, size_t nwant,
                     eg_tags_match_t m);

/* A tag and how many of the bank's models carry it. */
typedef struct eg_mm_tag_count_s {
    const char *tag;
    size_t count;
} eg_mm_tag_count_t;

typedef void (*eg_mm_tags_fn)(void *udata, int err, const eg_mm_tag_count_t *tags, size_t n,
                              size_t total);

/* A page of the tags the bank's models carry, by count descending then tag; pattern (NULL = all)
 * as eg_memories_tag_match (engram/memories.h): case-insensitive, '*' for any run. */
int eg_mm_tags(const char *ws_id, const char *bank_id, const char *pattern, size_t limit,
               size_t offset, eg_mm_tags_fn cb, void *udata);

/* For the bank's delete script (engram/bank.h): *index is the index key (drop it too) and
 * prefixes[0..2) the per-model key prefixes (record, history) to which each member is appended. */
void eg_mm_bank_keys(eg_arena_t *a, const char *ws_id, const char *bank_id, const char **index,
                     const char *prefixes[2]);

/* Register the retry function of EG_MM_OP_KIND operations (engram/bankops.h); call at start-up. */
int eg_mm_init(void);

#endif
