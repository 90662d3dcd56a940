/* Reflect: answer a question from a bank's memories (Hindsight's POST B/reflect; also the engine
 * of a mental-model refresh). Usable by every face; no HTTP in here.
 *
 * With a chat model for EG_LLM_OP_REFLECT (engram/llm.h) it runs Hindsight's agent loop with
 * native tools: search_mental_models, search_observations, recall (world + experience), expand
 * and done. Every retrieval tool takes a `reason`. The first turns force the tools in the order
 * mental models -> observations -> recall; a budget allows 5 / 10 / 20 model turns (low / mid /
 * high), the last of which — or the next one once the conversation passes 100k estimated tokens
 * — is forced to call done. Directives (active, by priority, tag-scoped) open and close the
 * system prompt and done then carries directive_compliance; the bank's mission and disposition
 * shape it. A response_schema adds a final structured call over the answer (as Hindsight
 * does). Tool errors (malformed arguments, an unknown tool, unknown ids) go back to the model as
 * tool results. The whole run is bounded by a timeout (300 s, EG_EUPTIMEOUT).
 *
 * Under the builtin provider (no chat model) the answer is extractive: one recall for the query
 * (the request's budget and fact types), the best facts listed most relevant first, and a text
 * that says plainly it was produced without a language model; usage is zero.
 *
 * The split: reflect.c (the entry point, the loop, the builtin path), reflect_prompt.c (the
 * system prompt, tool definitions, argument parsing, turn schedule, the extractive text — pure),
 * reflect_tools.c (the tools over recall, the store and mental models). Runs on the loop. */
#ifndef ENGRAM_REFLECT_H
#define ENGRAM_REFLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/arena.h"
#include "engram/extract.h" /* eg_usage_t */
#include "engram/mental_models.h"
#include "engram/mstore.h"
#include "engram/recall.h"

/* ---- constants (Hindsight's, ../shared/faces/hindsight.md section 6) ------------------------ */

#define EG_REFLECT_MAX_TOKENS        4096   /* default max_tokens of the answer */
#define EG_REFLECT_ITERATIONS_BASE   10     /* model turns at budget mid (x0.5 low, x2 high) */
#define EG_REFLECT_CONTEXT_TOKENS    100000 /* past this estimate the next turn must call done */
#define EG_REFLECT_TIMEOUT_MS        300000 /* the whole run (ENGRAM_REFLECT_TIMEOUT overrides) */
#define EG_REFLECT_TEMPERATURE       0.9
#define EG_REFLECT_RECALL_TOKENS     2048 /* recall tool: default max_tokens */
#define EG_REFLECT_RECALL_CHUNKS     1000 /* recall tool: default max_chunk_tokens */
#define EG_REFLECT_OBS_TOKENS        5000 /* search_observations: default max_tokens */
#define EG_REFLECT_MM_RESULTS        5    /* search_mental_models: default max_results */
#define EG_REFLECT_BUILTIN_FACTS     10   /* facts the extractive answer lists at most */
#define EG_REFLECT_EXPAND_IDS_MAX    50   /* memory ids one expand call may name */
#define EG_REFLECT_EXPAND_DOC_TOKENS 8000 /* a document shown by expand is cut to this */

/* ---- the request ------------------------------------------------------------------------------
 */

/* Everything is borrowed: strings and arrays must stay valid until the callback has run. */
typedef struct eg_reflect_req_s {
    const char *query; /* the question (a face appends its deprecated context to it) */
    eg_recall_budget_t budget;
    size_t max_tokens; /* of the answer; 0 = EG_REFLECT_MAX_TOKENS */
    unsigned types;    /* fact types retrieval may see (bit 1u << eg_fact_type_t); 0 = all */
    const char *const *tags;
    size_t ntags;
    eg_tags_match_t tags_match;
    const eg_tag_group_t *tag_groups; /* AND-ed, as in recall */
    size_t ntag_groups;
    const char *response_schema;       /* JSON Schema text; NULL = none */
    bool apply_all_directives;         /* every active directive, whatever its tags */
    bool exclude_mental_models;        /* no search_mental_models tool */
    const char *const *exclude_mm_ids; /* mental models never shown to the agent */
    size_t nexclude_mm_ids;
    uint64_t timeout_ms; /* 0 = EG_REFLECT_TIMEOUT_MS, or ENGRAM_REFLECT_TIMEOUT when set */
} eg_reflect_req_t;

/* Defaults: budget low, max_tokens 4096, every fact type, tags_match any. */
void eg_reflect_req_init(eg_reflect_req_t *r);

/* ---- the result -------------------------------------------------------------------------------
 */

/* A memory (fact or observation) the answer is based on. */
typedef struct eg_reflect_fact_s {
    const char *id, *text, *context; /* context "" when none */
    eg_fact_type_t type;
    int64_t occurred_start, occurred_end, mentioned_at; /* EG_MEM_TIME_NONE when unknown */
} eg_reflect_fact_t;

/* A mental model the answer is based on. */
typedef struct eg_reflect_mm_s {
    const char *id, *name, *content;
} eg_reflect_mm_t;

/* A directive that was applied. */
typedef struct eg_reflect_directive_s {
    const char *id, *name, *content;
} eg_reflect_directive_t;

/* One tool call of the agent, for the trace. input is the parsed arguments (or {"raw": text}
 * when they did not parse), output what the model was sent back. */
typedef struct eg_reflect_tool_call_s {
    const char *tool;
    const char *reason; /* NULL when none */
    cJSON *input;
    cJSON *output;
    uint64_t duration_ms;
    int iteration;       /* 1-based model turn */
    size_t result_count; /* items the tool returned */
} eg_reflect_tool_call_t;

/* One model call, for the trace: scope "agent_<n>", "final" or "structured". */
typedef struct eg_reflect_llm_call_s {
    const char *scope;
    uint64_t duration_ms;
} eg_reflect_llm_call_t;

typedef struct eg_reflect_result_s {
    const char *text;               /* markdown answer */
    const cJSON *structured_output; /* NULL unless response_schema and a model */
    bool llm;                       /* false: the builtin extractive answer */
    /* based_on: the memories cited (model) or listed (builtin), mental models, directives. */
    const eg_reflect_fact_t *facts;
    size_t nfacts;
    const eg_reflect_mm_t *mental_models;
    size_t nmental_models;
    const eg_reflect_directive_t *directives;
    size_t ndirectives;
    eg_usage_t usage; /* summed over every model call */
    const eg_reflect_tool_call_t *tool_calls;
    size_t ntool_calls;
    const eg_reflect_llm_call_t *llm_calls;
    size_t nllm_calls;
    int iterations; /* model turns of the loop */
    /* Facts the tools returned and the answer used, by fact type (a refresh reports them). */
    size_t retrieved[EG_FACT_NTYPES], used[EG_FACT_NTYPES];
    uint64_t duration_ms;
} eg_reflect_result_t;

/* err 0 with the result (valid only during the callback), or EG_EUPTIMEOUT (the run's timeout),
 * a model error (EG_EUPSTREAM, EG_ECONNECT, EG_EAUTH, ...) or a store error. */
typedef void (*eg_reflect_fn)(void *udata, int err, const eg_reflect_result_t *res);

/* Reflect over bank bank_id of workspace ws_id: read the bank's profile (an unknown bank has
 * the defaults and no memories; it is not created), its directives and mental models, then run
 * the agent loop or the builtin path. Returns 0 (cb runs exactly once, later) or EG_EINVAL. */
int eg_reflect(const char *ws_id, const char *bank_id, const eg_reflect_req_t *req,
               eg_reflect_fn cb, void *udata);

/* ---- pieces, exposed for tests and for faces that explain a run ------------------------------ */

/* Model turns a budget allows: 5 / 10 / 20. */
int eg_reflect_max_iterations(eg_recall_budget_t b);

/* ---- mental-model refresh ----------------------------------------------------------------- */

typedef enum {
    EG_REFLECT_REFRESH_WRITTEN = 0, /* a new content */
    EG_REFLECT_REFRESH_UNCHANGED,   /* the same content as stored */
    EG_REFLECT_REFRESH_EMPTY,       /* reflect answered nothing: nothing is stored */
} eg_reflect_refresh_outcome_t;

/* The scope a refresh resolved (see reflect_refresh.c). */
typedef struct eg_reflect_refresh_scope_s {
    const char *const *tags; /* NULL when tag_groups replace them */
    size_t ntags;
    eg_tags_match_t tags_match;
    const cJSON *tag_groups; /* the trigger's, NULL when none */
    const cJSON *fact_types; /* the trigger's, NULL = every type */
    bool exclude_mental_models;
    const char *const *exclude_ids; /* always holds the model itself */
    size_t nexclude_ids;
} eg_reflect_refresh_scope_t;

typedef struct eg_reflect_refresh_s {
    const eg_mm_t *mm;                  /* the model as it was before */
    const eg_reflect_result_t *reflect; /* the run (NULL when the refresh saved) */
    const char *content;                /* the candidate content (the reflect answer) */
    const char *reflect_response;       /* JSON stored with it: {text, based_on by fact type} */
    eg_reflect_refresh_outcome_t outcome;
    bool requested_delta; /* trigger.mode "delta" (refreshed in full all the same) */
    bool saved;           /* eg_mm_save_refresh stored it */
    eg_reflect_refresh_scope_t scope;
    uint64_t duration_ms;
} eg_reflect_refresh_t;

/* err 0 with the refresh (valid only during the callback); EG_ENOTFOUND when the model does not
 * exist; a reflect or store error. */
typedef void (*eg_reflect_refresh_fn)(void *udata, int err, const eg_reflect_refresh_t *r);

/* Refresh mental model mm_id: reflect with its source_query in its scope (max_tokens from the
 * model, the model itself excluded), then, when save and the answer is not empty, store it with
 * eg_mm_save_refresh. save false is a dry run. 0 (cb runs later) or EG_EINVAL / EG_EUNAVAIL. */
int eg_reflect_mm_refresh(const char *ws_id, const char *bank_id, const char *mm_id, bool save,
                          eg_reflect_refresh_fn cb, void *udata);

/* A result's based_on keyed by fact type ({"world": [...], "observation": [...], ...}, plus
 * "mental_models" and "directives" when any): what a refresh stores under
 * reflect_response.based_on. A new tree. */
cJSON *eg_reflect_based_on_by_type(const eg_reflect_result_t *res);

/* A unified diff from one text to another, line by line ("" when equal), in the arena. */
char *eg_reflect_unified_diff(eg_arena_t *a, const char *from, const char *to);

/* Start the "mm_refresh" queue's worker (engram/mental_models.h, "Refresh seam"): each job
 * refreshes its model and completes or fails its operation. ENGRAM_MM_REFRESH_CONCURRENCY (1..16,
 * default 2) refreshes at a time; ENGRAM_MM_REFRESH_VISIBILITY (default 60s) before a crashed
 * process's job is taken over. 0 or EG_EINVAL. */
int eg_reflect_start(void);

/* Stop the worker (running refreshes finish or are left to be taken over), then done(udata). */
void eg_reflect_stop(void (*done)(void *), void *udata);

#endif
