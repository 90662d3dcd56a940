/* Agent tasks internals shared by src/runs/tasks*.c.
 *
 * A run (eg__trun_t) is one attempt at a task: the worker loads the task's spec, builds the guard-
 * rail scope, calls the runner of its type, and the runner reports progress items and finally
 * exactly one of eg__trun_complete / eg__trun_fail. Progress messages leave one at a time, in
 * order (a newer version of an item still waiting replaces the older one, which is how streamed
 * text is coalesced). */
#ifndef ENGRAM_TASKS_INT_H
#define ENGRAM_TASKS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/arena.h"
#include "engram/library.h"
#include "engram/llm.h"
#include "engram/tasks.h"

#define EG_TASK_MESSAGES_MAX    200 /* messages in one chat task */
#define EG_TASK_CHUNK_LIMIT_MAX 100 /* chunkLimit */
#define EG_TASK_SCAN_LIMIT_MAX  50  /* memoryScanLimit */
#define EG_TASK_CONTEXT_MAX     10  /* contextExpansion.before / after */
#define EG_TASK_QUERY_COUNT_MAX 5   /* queryExpansion.queryCount */
#define EG_TASK_ID_MAX          40  /* "ata_" + 32 hex + NUL */
#define EG_TASK_TIME_MAX        32  /* "2024-04-08T17:02:27.887295Z" + NUL */
#define EG_TASK_ITEMS_MAX       64  /* progress items of one run */

#define EG_TASK_NO_MODEL                                                                           \
    "no language model is configured (set ENGRAM_AGENT_LLM_* or ENGRAM_LLM_* to an openai-"        \
    "compatible provider)"

/* Is model one of the Fency model names (fency.md §3)? */
bool eg__task_model_valid(const char *model);

/* "SYSTEM" 0, "USER" 1, "ASSISTANT" 2, else -1. */
int eg__task_role_parse(const char *role);

/* ---- records (tasks.c) ------------------------------------------------------------------- */

/* Keys of ws in a: the task hash, its zset, a task's run hash and progress archive. */
char *eg__task_key(eg_arena_t *a, const char *ws, const char *suffix_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A fresh AgentTask IN_PROGRESS (metadata copied, {} when not an object). */
cJSON *eg__task_json_new(const char *id, int64_t created_us, eg_task_type_t type,
                         const cJSON *metadata);

/* Finish a task FAILED with message without a run (its run could not be queued). */
void eg__task_abandon(const char *ws, const char *id, const char *message);

/* ---- runs (tasks_run.c) ------------------------------------------------------------------ */

typedef struct eg__trun_s eg__trun_t;

struct eg__trun_s {
    eg_arena_t arena;
    char ws[64], id[EG_TASK_ID_MAX], stream[48];
    eg_task_type_t type;
    cJSON *spec;          /* {type, request, session, stream, cnv, query, created} */
    const cJSON *request; /* spec.request */
    eg_lib_scope_t scope; /* the session's guard rails */
    eg_llm_t *llm;        /* NULL: the offline path */
    const char *language; /* "en" or "no" */
    /* Private state of the runner. */
    void *runner;
};

/* A new progress item of the run: its number (ids are "<task id>-<n>"). */
int eg__trun_item(eg__trun_t *r);

/* Send (or update) progress item n with the inner event data ({taskType, eventType, ...} is
 * completed here from eventType); takes ownership of data. */
void eg__trun_progress(eg__trun_t *r, int item, const char *event_type, cJSON *data);

/* The run succeeded: the Completed event's data (ownership taken; taskType and eventType are
 * added) and the task's successResponse (ownership taken). Ends the run. */
void eg__trun_complete(eg__trun_t *r, cJSON *completed, cJSON *success);

/* The run failed: an Error event with message and failureResponse {message}. Ends the run. */
void eg__trun_fail(eg__trun_t *r, const char *message);

/* Messages of a chat task as LLM messages in r's arena; system is prepended when not NULL. */
eg_llm_msg_t *eg__trun_msgs(eg__trun_t *r, const cJSON *messages, const char *system, size_t *n);

/* A copy of the request messages plus one assistant message (content). */
cJSON *eg__trun_messages_with(const cJSON *messages, const char *content);

/* The text of the last USER message ("" when none). */
const char *eg__trun_last_user(const cJSON *messages);

/* An integer member of the request, or def when absent or null. */
int eg__trun_int(const cJSON *o, const char *name, int def);

/* The runners, one per type (tasks_chat.c, tasks_search.c). */
void eg__task_run_streaming(eg__trun_t *r);
void eg__task_run_structured(eg__trun_t *r);
void eg__task_run_memory_chat(eg__trun_t *r);
void eg__task_run_explore(eg__trun_t *r);
void eg__task_run_search(eg__trun_t *r);

/* A copy of n chunks (strings and pages) in a. */
eg_lib_chunk_t *eg__task_chunks_copy(eg_arena_t *a, const eg_lib_chunk_t *c, size_t n);

/* The MemorySearchResultItem of a hit, with its chunks ([] when none). */
cJSON *eg__task_search_item(const eg_lib_chunk_t *hit);
/* Sources {memoryId, memoryTitle, memoryTypeId, memoryTypeName, pageNumbers} of chunks, one per
 * memory in first-seen order. */
cJSON *eg__task_sources(const eg_lib_chunk_t *c, size_t n);

#endif
