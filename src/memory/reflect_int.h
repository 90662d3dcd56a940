/* Reflect internals shared by reflect.c, reflect_prompt.c, reflect_tools.c and the mental-model
 * refresh worker; the pure parts are unit-tested (tests/unit/test_reflect.c). */
#ifndef ENGRAM_REFLECT_INT_H
#define ENGRAM_REFLECT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include <uv.h>

#include "engram/arena.h"
#include "engram/llm.h"
#include "engram/reflect.h"

/* The native tools. */
typedef enum {
    EG__RT_SEARCH_MENTAL_MODELS = 0,
    EG__RT_SEARCH_OBSERVATIONS,
    EG__RT_RECALL,
    EG__RT_EXPAND,
    EG__RT_DONE,
    EG__RT_NTOOLS,
    EG__RT_UNKNOWN = -1
} eg__rtool_t;

/* "search_mental_models", ... */
const char *eg__reflect_tool_name(eg__rtool_t t);

/* The tool a model named, tolerating the prefixes some models add ("functions.done",
 * "call=done", "done<|channel|>..."); EG__RT_UNKNOWN otherwise. */
eg__rtool_t eg__reflect_tool_parse(const char *name);

/* Parsed arguments of one tool call (strings in the arena). */
typedef struct eg__rargs_s {
    eg__rtool_t tool;
    const char *reason;
    const char *query;       /* search_* and recall */
    size_t max_tokens;       /* recall 2048, search_observations 5000 */
    size_t max_chunk_tokens; /* recall: 1000 */
    size_t max_results;      /* search_mental_models: 5 */
    const char **ids;        /* expand: memory_ids; done: memory_ids */
    size_t nids;
    bool document;                  /* expand: depth document (else chunk) */
    const char *answer;             /* done */
    const char **mm_ids, **obs_ids; /* done */
    size_t nmm_ids, nobs_ids;
    const char *directive_compliance; /* done; NULL when absent */
    cJSON *input; /* the arguments as parsed (owned by the arena), for the trace */
} eg__rargs_t;

/* Parse the arguments (JSON text as the model wrote it) of a call to tool name. directives:
 * whether done must carry directive_compliance. 0, or EG_EINVAL with a message for the model in
 * err ("Invalid JSON arguments ...", "Unknown tool: x", "recall requires 'query'", ...);
 * out->input is set either way ({"raw": text} when the JSON did not parse). */
int eg__reflect_parse_args(eg_arena_t *a, const char *name, const char *json, bool directives,
                           eg__rargs_t *out, char *err, size_t errlen);

/* What one model turn may do. */
typedef struct eg__rturn_s {
    eg_llm_tool_choice_t choice;
    eg__rtool_t named; /* EG_LLM_TOOLS_NAMED: the tool forced */
    bool final;        /* the turn must call done */
} eg__rturn_t;

/* The turn schedule: turn it (1-based) of max_iter. The last turn, or any turn once ctx_tokens
 * is past EG_REFLECT_CONTEXT_TOKENS, forces done; before that the first turns force
 * search_mental_models (when has_mm), search_observations and recall in that order; then the
 * model chooses. */
eg__rturn_t eg__reflect_turn(int it, int max_iter, bool has_mm, size_t ctx_tokens);

/* What the system prompt is made of. */
typedef struct eg__rprompt_s {
    const char *bank_name;
    const char *mission; /* "" or NULL when none */
    int skepticism, literalism, empathy;
    const eg_reflect_directive_t *directives;
    size_t ndirectives;
    bool has_mm;
    eg_recall_budget_t budget;
    int max_iter;
    size_t max_tokens;
} eg__rprompt_t;

/* The agent's system prompt: directives first (when any), the bank's identity with the line
 * "Disposition: skepticism=N, literalism=N, empathy=N", how to search and answer, and the
 * directives again last. */
char *eg__reflect_system_prompt(eg_arena_t *a, const eg__rprompt_t *p);

/* The tool definitions offered (JSON Schemas in the arena): search_mental_models when has_mm,
 * search_observations, recall, expand, done (with a required directive_compliance when
 * directives). Returns the count written to out (room for EG__RT_NTOOLS). */
size_t eg__reflect_tools(eg_arena_t *a, bool has_mm, bool directives, eg_llm_tool_t *out);

/* The user message of the structured-output call: the answer and the schema to fill. */
char *eg__reflect_structured_prompt(eg_arena_t *a, const char *answer, const char *schema);

/* The builtin (model-free) answer over facts[0..n) in rank order and mental models
 * mms[0..nmm): says it was produced without a language model, lists up to
 * EG_REFLECT_BUILTIN_FACTS facts (with their dates) while they fit max_tokens, and notes a
 * response_schema it could not fill. *shown gets how many facts were listed. */
char *eg__reflect_builtin_text(eg_arena_t *a, const char *query, const eg_reflect_fact_t *facts,
                               size_t n, const eg_reflect_mm_t *mms, size_t nmm, size_t max_tokens,
                               bool schema, size_t *shown);

/* The answer when the model ended without a usable done: says so and lists the memories it
 * found (up to EG_REFLECT_BUILTIN_FACTS, while they fit max_tokens). */
char *eg__reflect_fallback_text(eg_arena_t *a, const eg_reflect_fact_t *facts, size_t n,
                                size_t max_tokens);

/* The bank profile and scope reflect runs with. */
typedef struct eg__rbank_s {
    const char *name, *mission;
    int skepticism, literalism, empathy;
    bool graph, temporal; /* the bank's retrieval switches */
} eg__rbank_t;

/* A fact of a recall as reflect keeps it (strings copied into a). */
void eg__reflect_fact_from_unit(eg_arena_t *a, const eg_mem_unit_t *u, eg_reflect_fact_t *f);

/* A fact as a tool shows it to the model ({id, text, type, context?, occurred_start?, ...}). */
cJSON *eg__reflect_fact_json(const eg_reflect_fact_t *f);

/* ---- a run (reflect.c, reflect_tools.c) ------------------------------------------------------ */

/* A growing array of facts, deduplicated by id. */
typedef struct eg__rfacts_s {
    eg_reflect_fact_t *v;
    size_t n, cap;
} eg__rfacts_t;

/* Add f (already in the arena) unless its id is there; true when added. */
bool eg__rfacts_add(eg_arena_t *a, eg__rfacts_t *fs, const eg_reflect_fact_t *f);
/* The fact with id, or NULL. */
const eg_reflect_fact_t *eg__rfacts_find(const eg__rfacts_t *fs, const char *id);

typedef struct eg__reflect_s eg__reflect_t;

/* A tool finished: output (adopted) is what the model is sent back, count how many items it
 * held. */
typedef void (*eg__rtool_done_fn)(eg__reflect_t *s, cJSON *output, size_t count);
/* The builtin path's recall (facts in rank order) and mental models. */
typedef void (*eg__rrecall_fn)(eg__reflect_t *s, int err, const eg_reflect_fact_t *facts, size_t n);
typedef void (*eg__rmm_fn)(eg__reflect_t *s, const eg_reflect_mm_t *mms, size_t n);

struct eg__reflect_s {
    eg_arena_t arena;
    char *ws, *bank;
    eg_reflect_req_t req; /* borrowed strings and arrays */
    eg_reflect_fn cb;
    void *udata;
    eg__rbank_t profile;
    eg_reflect_directive_t *dirs;
    size_t ndirs;
    bool has_mm; /* search_mental_models is offered */
    eg_llm_t *llm;

    /* The conversation. */
    eg_llm_msg_t *msgs;
    size_t nmsgs, capmsgs;
    size_t ctx_tokens;
    eg_llm_tool_t tools[EG__RT_NTOOLS];
    size_t ntools;
    int it, max_iter;
    eg__rturn_t turn;

    /* The current turn's tool calls, answered one after the other. */
    eg_llm_tool_call_t *calls;
    size_t ncalls, icall;
    eg__rargs_t args;
    uint64_t tool_t0;
    eg__rtool_done_fn tool_done;
    void *tool_state; /* the running tool's own state (expand) */
    eg__rrecall_fn recall_cb;
    eg__rmm_fn mm_cb;

    /* Evidence: everything the tools returned (ids the answer may cite). */
    eg__rfacts_t seen_facts, seen_obs;
    eg_reflect_mm_t *seen_mm;
    size_t nseen_mm, capseen_mm;
    bool evidence;

    /* The answer. */
    const char *answer;
    eg__rfacts_t used;
    eg_reflect_mm_t *used_mm;
    size_t nused_mm;
    cJSON *structured;

    /* Trace and accounting. */
    eg_reflect_tool_call_t *tcalls;
    size_t ntcalls, captcalls;
    eg_reflect_llm_call_t *lcalls;
    size_t nlcalls, caplcalls;
    eg_usage_t usage;
    uint64_t t0, call_t0;
    const char *call_scope;

    uv_timer_t timer;
    eg_llm_call_t *call; /* in flight */
    bool busy;           /* an LLM call or a tool is in flight */
    bool answered;       /* cb has run (timeout or end) */
    bool closing;
};

/* Run the retrieval tool s->args names (search_mental_models, search_observations, recall,
 * expand); done runs later with the output. 0, or an error code (done not called). */
int eg__reflect_tool_run(eg__reflect_t *s, eg__rtool_done_fn done);

/* The builtin recall of the extractive path: cb gets the facts in rank order. */
int eg__reflect_builtin_recall(eg__reflect_t *s, eg__rrecall_fn cb);

/* The builtin path's mental models: the best for the query, cb gets them (none on error). */
int eg__reflect_builtin_mms(eg__reflect_t *s, eg__rmm_fn cb);

#endif
