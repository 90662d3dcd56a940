/* Retain: store a batch of memory items in a bank — the write path of the memory engine, usable
 * by every face (no HTTP in here; the Hindsight face parses its RetainRequest into this).
 *
 * Per document (items sharing a document_id form one; items without one share one fresh UUID per
 * batch, as Hindsight groups them): chunk the text at the bank's retain_chunk_size (by structure
 * for conversations, engram/extract.h), extract facts, embed them, resolve their entities against
 * the bank index (engram/resolve.h), compute temporal, semantic and causal links
 * (engram/links.h), then write the document with one atomic store write (engram/mstore.h: an
 * existing document of that id is replaced). The bank is created on first write. After the writes
 * a "retain.completed" bank event is emitted (engram/bank_webhooks.h).
 *
 * Asynchronous retains are queued: an operation record (engram/ops.h, kind "retain", scope "b" +
 * "<ws>/<bank>") is created and a job pushed onto the queue "retain" (job id = operation id), and
 * the caller gets the operation id at once. A batch of more than EG_RETAIN_SUBBATCH_TOKENS
 * tokens is split into sub-batches (items of one document stay together), each its own operation
 * and job; the parent operation lists them in its meta ("children") and completes when they all
 * have. A caller's operation_id makes the request idempotent: the same id with the same payload
 * answers with the original operation(s), with another payload EG_ECONFLICT.
 *
 * Crash safety (a job re-run after kill -9 must not duplicate facts): an asynchronous retain
 * derives every id it creates — documents without a caller id, units, new entities — from
 * (operation id, item index, fact index / name) instead of drawing random UUIDs, and tags each
 * document write with the write key "<operation id>:<document index>", which the store records
 * atomically with the write and refuses to apply twice. A re-run therefore skips the documents
 * that were written and writes the others with the same ids the first run would have used. */
#ifndef ENGRAM_RETAIN_H
#define ENGRAM_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "engram/embed.h"
#include "engram/extract.h"
#include "engram/mindex.h"
#include "engram/resolve.h"

#define EG_RETAIN_QUEUE           "retain"
#define EG_RETAIN_OP_KIND         "retain"
#define EG_RETAIN_SUBBATCH_TOKENS 10000 /* tokens (eg_text_estimate_tokens) per sub-batch */
#define EG_RETAIN_TIME_NOW        (INT64_MIN + 1) /* an item timestamp of "now" (null/omitted) */

/* An entity the caller names on an item. */
typedef struct eg_retain_entity_s {
    const char *text;
    const char *type; /* NULL when not given; kept for the LLM extractor, unused by resolution */
} eg_retain_entity_t;

/* One memory item (Hindsight's MemoryItem). */
typedef struct eg_retain_item_s {
    const char *content; /* UTF-8, NUL-terminated */
    /* µs since the epoch; EG_RETAIN_TIME_NOW for "now" (resolved when the request is accepted);
     * EG_MEM_TIME_NONE for "unset" (facts get no mentioned_at and only absolute dates). */
    int64_t timestamp;
    const char *context;     /* NULL or "" when none */
    const cJSON *metadata;   /* object of string values, NULL = {} */
    const char *document_id; /* NULL: the batch's generated document */
    const eg_retain_entity_t *entities;
    size_t nentities;
    bool resolve_entities; /* false: the item's own entities match exact names only */
    const char *const *tags;
    size_t ntags;
    const cJSON *observation_scopes; /* kept on the document's retain_params; NULL = none */
    const char *strategy;            /* kept on retain_params; NULL = none */
    bool append;                     /* update_mode "append" (else "replace") */
} eg_retain_item_t;

typedef struct eg_retain_req_s {
    const eg_retain_item_t *items;
    size_t nitems;
    const char *const *document_tags; /* merged into every item's tags */
    size_t ndocument_tags;
    bool async;
    const char *operation_id; /* async only: the caller's idempotency key (a UUID), or NULL */
} eg_retain_req_t;

typedef struct eg_retain_result_s {
    size_t items_count;
    /* Sync: what was stored, and the model token usage (zero for the builtin providers). */
    eg_usage_t usage;
    size_t units, documents;
    /* Async: the operation, and the operations doing the work (the sub-batches; the operation
     * itself when the batch was not split). */
    const char *operation_id;
    const char *const *operation_ids;
    size_t noperation_ids;
    bool replayed;     /* async: an earlier request with this operation_id and payload */
    const char *error; /* on failure, when a provider gave one: a one-line reason for users */
} eg_retain_result_t;

/* err 0 with the result, or: EG_EINVAL (an append to a document without stored text, a bad
 * item), EG_ECONFLICT (operation_id used by another payload; a bank whose vectors have another
 * dimension or model), EG_ECANCELED (shutting down), EG_EUPSTREAM / EG_EUPTIMEOUT (the model
 * failed: res->error says why, nothing was written), or a store error. On failure res is NULL
 * or carries only error and usage. Valid during the call. */
typedef void (*eg_retain_fn)(void *udata, int err, const eg_retain_result_t *res);

/* Retain req into ws_id's bank bank_id (created if missing). Returns 0 (cb runs once, later) or
 * EG_EINVAL (no items, invalid ids) / EG_EUNAVAIL (not started). */
int eg_retain(const char *ws_id, const char *bank_id, const eg_retain_req_t *req, eg_retain_fn cb,
              void *udata);

/* Start the retain module on loop (after eg_store_init and eg_mindex_init): the extractor (the
 * LLM one while eg_llm_for(EG_LLM_OP_RETAIN) has a model, else the builtin one) and embedder,
 * the "retain" queue's worker (ENGRAM_RETAIN_CONCURRENCY jobs at once, taken over from a dead
 * process after ENGRAM_RETAIN_VISIBILITY) and the retry function of "retain" operations
 * (engram/bankops.h). 0 or EG_EINVAL (bad environment). */
int eg_retain_start(uv_loop_t *loop);

/* Stop taking jobs, let running ones finish (the queue's close timeout), then done(udata). */
void eg_retain_stop(void (*done)(void *), void *udata);

/* Replace the providers (NULL keeps the current one); the module owns them from then on. For the
 * LLM-backed providers of a later issue, and tests. */
void eg_retain_set_providers(eg_extractor_t *x, eg_embedder_t *e);

/* A dry run of extraction: what retain would extract from one text, storing nothing. */
typedef struct eg_retain_dry_req_s {
    const char *content; /* UTF-8, NUL-terminated */
    const char *context; /* NULL or "" when none */
    /* µs, EG_RETAIN_TIME_NOW, or EG_MEM_TIME_NONE (only absolute dates count) */
    int64_t timestamp;
    /* Overrides of the bank's configuration: NULL, -1 or 0 keep the bank's. */
    const char *mission;             /* retain_mission */
    const char *mode;                /* retain_extraction_mode (must parse) */
    const char *custom_instructions; /* retain_custom_instructions */
    const char *output_language;     /* llm_output_language */
    int causal_links;                /* retain_extract_causal_links: 0 or 1, -1 = the bank's */
    int free_form_entities;          /* entities_allow_free_form: 0 or 1, -1 = the bank's */
    size_t chunk_size;               /* retain_chunk_size in code points, 0 = the bank's */
} eg_retain_dry_req_t;

/* err 0 with the facts of every chunk in order (dates as extracted, without retain's per-fact
 * offset) and the model usage; or an error, with res carrying only error (a reason for users)
 * when the extractor gave one, else NULL. Valid during the call. */
typedef void (*eg_retain_dry_fn)(void *udata, int err, const eg_extract_result_t *res);

/* Chunk req->content as retain would (the bank's chunk sizes), run the module's extractor on
 * every chunk with the bank's configuration under req's overrides, and answer with the facts.
 * Nothing is written and a missing bank is not created (its defaults apply). Returns 0 (cb runs
 * once, maybe before this returns) or EG_EINVAL (no content, an invalid bank id or mode) /
 * EG_EUNAVAIL (not started). */
int eg_retain_dry_run(const char *ws_id, const char *bank_id, const eg_retain_dry_req_t *req,
                      eg_retain_dry_fn cb, void *udata);

/* ---- pieces, exposed for tests -------------------------------------------------------------- */

/* A UUID v4-shaped id derived from (a, b, c): hex of SHA-256 with the version and variant bits
 * set. Equal inputs give equal ids in every process. */
void eg_retain_derived_id(const char *a, const char *b, const char *c, char out[37]);

/* Entity resolution exactly as retain does it (Hindsight's scoring: candidates from the bank's
 * name dictionary, co-occurrence from the index), for mentions written outside retain, such as a
 * curated edit's entity names: out[n] and *news as eg_resolve_batch gives them, in a. */
void eg_retain_resolve_mentions(eg_arena_t *a, eg_mindex_t *ix, const eg_resolve_mention_t *m,
                                size_t n, eg_resolve_out_t *out, eg_resolve_new_t **news,
                                size_t *nnew);

/* Split items into sub-batches of at most max_tokens (eg_text_estimate_tokens of the contents),
 * keeping the items of one document_id together: order[0..nitems) gets the item indexes batch
 * after batch (a document's items at its first item's place, otherwise in request order),
 * starts[b] the position in order where batch b begins (room for nitems). A batch closes before a
 * group that would bring it past max_tokens; a group larger than that is a batch of its own.
 * Returns the number of batches (0 for no items). */
size_t eg_retain_split(const eg_retain_item_t *items, size_t nitems, size_t max_tokens,
                       size_t *order, size_t *starts);

/* Items as JSON (the job payload and the idempotency hash) and back: times as integers (µs;
 * null for unset), entities as {text, type}. eg_retain_items_parse allocates in a and returns 0
 * or EG_EINVAL. */
cJSON *eg_retain_items_json(const eg_retain_item_t *items, size_t nitems);
int eg_retain_items_parse(eg_arena_t *a, const cJSON *json, eg_retain_item_t **items,
                          size_t *nitems);

#endif
