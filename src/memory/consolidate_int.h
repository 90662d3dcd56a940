/* Consolidation internals shared by consolidate.c (requests, the store script, maintenance),
 * consolidate_run.c (the worker and the builtin path) and consolidate_llm.c (the model path). */
#ifndef ENGRAM_CONSOLIDATE_INT_H
#define ENGRAM_CONSOLIDATE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"
#include "engram/consolidate.h"
#include "engram/mindex.h"
#include "engram/mstore.h"

/* An observation to store: a new one (created), or a new record of an existing one whose stored
 * updated_at must still be expect_updated_at. vec NULL keeps a stored vector. */
typedef struct eg__cons_put_s {
    eg_mem_unit_t unit;
    const float *vec;
    bool is_new;
    int64_t expect_updated_at;
} eg__cons_put_t;

/* One atomic change of a bank: facts' new records (written only while their stored updated_at
 * equals the record's: consolidation never changes it, so a curated edit in between wins and
 * the fact stays as the edit left it), observations stored, observations deleted (ids that are
 * not observations are left alone). */
typedef struct eg__cons_apply_s {
    const eg_mem_unit_t *const *facts;
    size_t nfacts;
    const eg__cons_put_t *puts;
    size_t nputs;
    const char *const *dels;
    size_t ndels;
    size_t dim; /* floats per vector of puts */
} eg__cons_apply_t;

/* facts: fact records written; puts: observations stored; dels: observations deleted. */
typedef void (*eg__cons_applied_fn)(void *udata, int err, int64_t facts, int64_t puts,
                                    int64_t dels);

/* Apply one change (one Lua script). 0 (cb runs) or EG_EINVAL / EG_EUNAVAIL. */
int eg__cons_apply(const char *ws_id, const char *bank_id, const eg__cons_apply_t *ch,
                   eg__cons_applied_fn cb, void *udata);

/* The end of a run: when the bank's run key still names op_id and is dirty, clear dirty and
 * answer again = true (look for pending facts once more); otherwise drop the key if it names
 * op_id (abort: whatever its state) and set the bank's last_consolidated_at (not on abort). */
typedef void (*eg__cons_finish_fn)(void *udata, int err, bool again);
int eg__cons_finish(const char *ws_id, const char *bank_id, const char *op_id, bool abort,
                    eg__cons_finish_fn cb, void *udata);

/* The run key's "all" flag (a request without scopes widened the run): cb gets it. */
typedef void (*eg__cons_flag_fn)(void *udata, int err, bool all);
int eg__cons_run_all(const char *ws_id, const char *bank_id, const char *op_id, eg__cons_flag_fn cb,
                     void *udata);

/* Small shared helpers (consolidate.c): a valid workspace and bank id; strcmp for qsort of
 * string pointers. */
bool eg__cons_bank_ok(const char *ws_id, const char *bank_id);
/* The bank's run key (eg:{b:<ws>/<bank>}:cj) in the arena. */
const char *eg__cons_run_key(eg_arena_t *a, const char *ws_id, const char *bank_id);
int eg__cons_cmp_str(const void *a, const void *b);

/* Failed facts back to pending, without queuing a run (the retry of an operation does that);
 * cb gets how many (consolidate_maint.c). */
int eg__cons_reset_failed(const char *ws_id, const char *bank_id, eg_consolidate_count_fn cb,
                          void *udata);

/* The retry of a failed consolidation operation (the operations API, engram/bankops.h): its
 * facts that failed go back to pending, the operation becomes the bank's run, and its job is
 * pushed again as "<op id>:r<retries>" (consolidate_maint.c). */
struct eg_op_s;
int eg__cons_retry(const char *ws_id, const char *bank_id, const struct eg_op_s *op,
                   void (*done)(void *done_udata, int err), void *done_udata);

/* The worker (consolidate_run.c). */
int eg__cons_worker_start(void);
void eg__cons_worker_stop(void (*done)(void *), void *udata);
bool eg__cons_worker_running(void);

/* Does a unit of the index with interned tags (ascending) carry exactly / at least the scope's
 * tags (ids[0..n), sorted ascending, EG_MINDEX_NONE marking a tag no unit has)? */
bool eg__cons_tags_exact(const eg_mindex_unit_t *u, const uint32_t *ids, size_t n);
bool eg__cons_tags_superset(const eg_mindex_unit_t *u, const uint32_t *ids, size_t n);
/* The interned ids of a scope's tags in ix, sorted; in the arena. */
uint32_t *eg__cons_scope_ids(eg_arena_t *a, eg_mindex_t *ix, const eg_obs_scope_t *s);

/* Two scopes with the same tags (both sorted). */
bool eg__cons_same_scope(const eg_obs_scope_t *a, const eg_obs_scope_t *b);
/* Whether observation o lists fact id among its sources. */
bool eg__cons_has_source(const eg_mem_unit_t *o, const char *id);
/* Add fact u as a source of observation o (sources, proof_count, the dates' span, mentioned_at,
 * entities), copying into a; nothing when u is a source already. */
void eg__cons_absorb(eg_arena_t *a, eg_mem_unit_t *o, const eg_mem_unit_t *u);

/* A history entry {previous_text, new_text, changed_at (µs), reason, source_memory_ids?} added to
 * a copy of history (kept to the last EG_CONSOLIDATE_HISTORY_MAX); the tree is deferred to the
 * arena. */
cJSON *eg__cons_history_add(eg_arena_t *a, const cJSON *history, const char *prev, const char *next,
                            int64_t at_us, const char *reason, const char *const *sources,
                            size_t nsources);

/* A pending fact of the batch: its record (a copy in the batch arena, marks applied to it) and
 * its observation scopes. */
typedef struct eg__cons_fact_s {
    eg_mem_unit_t *u;
    eg_obs_scope_t scopes[EG_CONSOLIDATE_SCOPES_MAX];
    size_t nscopes;
    const char *error; /* the model failed on it */
} eg__cons_fact_t;

/* One run (one delivery of a job). */
typedef struct eg__cons_run_s {
    eg_arena_t arena; /* the run's */
    eg_arena_t batch; /* one batch's, reset between batches */
    struct eg_job_s *job;
    char *ws, *bank, *scope, *op;
    cJSON *filter; /* the request's scopes (array of tag arrays), NULL = every fact */
    struct eg_llm_s *llm;
    const char *mission; /* observations_mission, "" when none */
    size_t created, updated, deleted, failed;
    char *model_error; /* the first model error of the run, NULL when none */
    uint64_t *seen;    /* hashes of the facts this run took up (open addressing, grows) */
    size_t nseen, seen_cap;
    eg__cons_fact_t *facts; /* the batch */
    size_t nfacts;
    void *path; /* the path's own state for the batch (in the batch arena) */
} eg__cons_run_t;

/* The batch's outcome was applied (or err, a storage error): take up the next batch. */
void eg__cons_batch_done(eg__cons_run_t *r, int err);

/* Mark the batch's facts (consolidated now, or failed with their error) into ch->facts. */
void eg__cons_mark_facts(eg__cons_run_t *r, int64_t now_us, const eg_mem_unit_t ***out, size_t *n);

/* The embedder observations are embedded with (retain's). */
struct eg_embedder_s *eg__cons_embedder(void);

/* The builtin path of one batch (consolidate_builtin.c); ends with eg__cons_batch_done. */
void eg__cons_builtin_batch(eg__cons_run_t *r);

/* The LLM path of one batch (consolidate_llm.c): every scope group of the batch through the model,
 * then one apply; ends with eg__cons_batch_done. Model errors mark the facts' error. */
void eg__cons_llm_batch(eg__cons_run_t *r);

#endif
