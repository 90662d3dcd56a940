/* Consolidation: turning a bank's world and experience facts into observations — memory units of
 * fact_type "observation" that state what several facts support, with proof_count (how many
 * facts back it), source_ids (which) and a history of their changes. Usable by every face; no
 * HTTP in here.
 *
 * State. A valid world or experience fact is pending until consolidation took it in (its record's
 * consolidated_at) or failed on it (consolidation_failed_at and consolidation_error); the
 * per-process index mirrors this (eg_mindex_unit_t.cstate), so listing and counting the pending
 * ones never scans Redis. Invalidated facts are skipped. Every change a run makes to a batch —
 * observations created, updated or deleted and the batch's facts marked — is one Lua script in
 * the bank's slot, written through the memory store's shared Lua (counters, change stream), so
 * the index sees it and a crash leaves either all of it or none.
 *
 * Runs. One operation record (engram/ops.h, kind "consolidation", scope "b" + "<ws>/<bank>") and
 * one job on the queue "consolidation" (job id = operation id) per run. A bank has at most one
 * run pending or processing, named by the key eg:{b:<ws>/<bank>}:cj (hash op, dirty, all): asking
 * again while it exists reuses it (deduplicated) and sets dirty, which makes the run look for
 * pending facts once more before it finishes, so facts written while it ran are never left
 * behind. A job delivered again after a crash resumes from the facts still pending. The job is
 * pushed again on every request, so a run whose push was lost is picked up by the next request.
 * When it ends the bank record's last_consolidated_at is set and a "consolidation.completed" bank
 * event is emitted (data {observations_created, observations_updated, observations_deleted,
 * error_message?}).
 *
 * With a chat model (eg_llm_for(EG_LLM_OP_CONSOLIDATION)), pending facts are loaded 50 at a time,
 * grouped by observation scope, and sent 8 per call (temperature 0, structured output
 * {creates, updates, deletes}) with the scope's related observations from an internal recall; a
 * create within cosine 0.97 of an existing observation of the scope is merged into it. Model errors
 * mark the call's facts failed and fail the operation. Without one (the builtin provider), facts
 * are marked consolidated and only repeated evidence makes observations: a fact within builtin
 * cosine 0.9 of an observation of its scope joins it; one within 0.9 of other facts of its scope
 * that no observation holds yet starts an observation with them, whose text is the earliest fact's
 * text (docs/consolidation.md). */
#ifndef ENGRAM_CONSOLIDATE_H
#define ENGRAM_CONSOLIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "engram/arena.h"

#define EG_CONSOLIDATE_QUEUE       "consolidation"
#define EG_CONSOLIDATE_OP_KIND     "consolidation"
#define EG_CONSOLIDATE_BATCH       50    /* pending facts loaded per batch */
#define EG_CONSOLIDATE_PER_CALL    8     /* facts per LLM call */
#define EG_CONSOLIDATE_MERGE_MIN   0.97f /* a create this close to an observation merges into it */
#define EG_CONSOLIDATE_DUP_MIN     0.9f  /* builtin: facts this close repeat each other */
#define EG_CONSOLIDATE_HISTORY_MAX 50    /* history entries an observation keeps */
#define EG_CONSOLIDATE_RELATED     512   /* tokens of related observations per LLM call */
#define EG_CONSOLIDATE_SCOPES_MAX  64    /* observation scopes of one fact */

/* Start the "consolidation" queue's worker on loop (after eg_store_init, eg_mindex_init and
 * eg_retain_start, whose embedder it shares). 0 or EG_EINVAL. */
int eg_consolidate_start(uv_loop_t *loop);

/* Stop taking jobs, let running ones finish (the queue's close timeout), then done(udata). */
void eg_consolidate_stop(void (*done)(void *), void *udata);

/* err 0 with the operation that will consolidate the bank and whether it was an existing one. */
typedef void (*eg_consolidate_queued_fn)(void *udata, int err, const char *op_id,
                                         bool deduplicated);

/* Queue a consolidation run of a bank (or reuse the one pending or running). scopes: NULL for
 * every pending fact, or an array of arrays of tag strings: only facts whose tags contain every
 * tag of one of them (Hindsight's ConsolidationRequest). A request without scopes widens a
 * reused run to every fact. cb may be NULL. Returns 0 (cb runs later) or EG_EINVAL / EG_EUNAVAIL.
 */
int eg_consolidate_enqueue(const char *ws_id, const char *bank_id, const cJSON *scopes,
                           eg_consolidate_queued_fn cb, void *udata);

/* Is scopes (NULL allowed) a valid argument of eg_consolidate_enqueue? */
bool eg_consolidate_scopes_valid(const cJSON *scopes);

/* Queue a run after a retain that wrote facts (or a curated edit that made a fact pending again,
 * engram/memories.h) when the bank's enable_observations is true (bank record read here) and the
 * worker is started in this process; errors are logged. */
void eg_consolidate_after_retain(const char *ws_id, const char *bank_id);

typedef void (*eg_consolidate_count_fn)(void *udata, int err, int64_t n);

/* Move the bank's failed facts back to pending and queue a run; cb gets how many were moved. */
int eg_consolidate_recover(const char *ws_id, const char *bank_id, eg_consolidate_count_fn cb,
                           void *udata);

/* Delete every observation of the bank; the facts they were made from become pending again
 * (consolidated facts that made none stay consolidated). cb gets the observations deleted. */
int eg_consolidate_clear(const char *ws_id, const char *bank_id, eg_consolidate_count_fn cb,
                         void *udata);

/* Delete the observations made from one memory (a fact) and make that fact pending again; cb
 * gets the observations deleted, or EG_ENOTFOUND when the bank holds no such memory. */
int eg_consolidate_clear_memory(const char *ws_id, const char *bank_id, const char *unit_id,
                                eg_consolidate_count_fn cb, void *udata);

/* An observation scope: an exact tag set (sorted) and how many valid observations carry it. */
typedef struct eg_obs_scope_s {
    const char *const *tags;
    size_t ntags;
    size_t count;
} eg_obs_scope_t;

typedef void (*eg_obs_scopes_fn)(void *udata, int err, const eg_obs_scope_t *scopes, size_t n);

/* The bank's observation scopes, most populous first (then by tags). */
int eg_consolidate_scopes(const char *ws_id, const char *bank_id, eg_obs_scopes_fn cb, void *udata);

/* ---- pieces, exposed for tests ------------------------------------------------------------ */

/* The observation scopes of a fact with tags[0..ntags) under a retain item's observation_scopes
 * value (NULL or "combined": its whole tag set; "per_tag": one per tag; "all_combinations":
 * every non-empty subset, up to 6 tags, else per_tag plus the whole set; "shared": the untagged
 * scope; an array of tag arrays: those). An untagged fact has the untagged scope. Scopes are
 * sorted tag sets without duplicates, written to out (room for EG_CONSOLIDATE_SCOPES_MAX), in the
 * arena; returns the count. */
size_t eg_consolidate_fact_scopes(eg_arena_t *a, const char *const *tags, size_t ntags,
                                  const cJSON *mode, eg_obs_scope_t *out);

#endif
