/* Agent tasks: one request of the Fency browser SDK (memory search, memory chat, exploring
 * memories, streaming or structured chat completion) run as a durable core job.
 *
 * A task is created IN_PROGRESS (event agent.task.created), its run is a job on the queue
 * "agent_tasks" (crash-safe: a run interrupted by a crash is taken over and finishes), every
 * progress step is appended to the task's progress stream (engram/pstream.h) and to its archive,
 * and exactly one terminal step (Completed or Error) makes it SUCCEEDED or FAILED (event
 * agent.task.updated). Guard rails (the session's guardRails) are a library scope
 * (engram/library.h) passed on every read. Keys and shapes: docs/keyspace.md, docs/fency.md. */
#ifndef ENGRAM_TASKS_H
#define ENGRAM_TASKS_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "engram/zpage.h"

typedef enum eg_task_type_e {
    EG_TASK_MEMORY_CHAT,
    EG_TASK_MEMORY_SEARCH,
    EG_TASK_EXPLORE_MEMORIES,
    EG_TASK_STREAMING_CHAT_COMPLETION,
    EG_TASK_STRUCTURED_CHAT_COMPLETION,
    EG_TASK__COUNT
} eg_task_type_t;

#define EG_TASK_QUEUE "agent_tasks"

/* Validate a PubCreateAgentTaskRequest body: exactly one task key, model / language / temperature /
 * topP / messages / jsonSchema rules of fency.md §3. 0 and *type, or EG_EINVAL and *why. */
int eg_task_request_check(const cJSON *body, eg_task_type_t *type, const char **why);

typedef struct eg_task_spec_s {
    const char *ws_id;
    eg_task_type_t type;
    const cJSON *request;  /* the one task object, e.g. body.memorySearchTask */
    const cJSON *session;  /* the createAgentTask payload: metadata, conversationId, guardRails */
    const char *stream_id; /* progress goes there (NULL: archive only) */
} eg_task_spec_t;

/* Create the task IN_PROGRESS (emits agent.task.created) and queue its run; cb gets the stored
 * AgentTask JSON (valid during the call) or an error (EG_EINVAL bad spec, storage errors).
 * Returns 0 (cb will run) or EG_EINVAL / EG_EUNAVAIL (cb never runs). */
int eg_task_create(const eg_task_spec_t *spec, void (*cb)(void *, int, const cJSON *task),
                   void *udata);

/* "MEMORY_SEARCH" ... (NULL for an out-of-range value). */
const char *eg_task_type_name(eg_task_type_t t);
/* "memorySearchTask" ... (NULL for an out-of-range value). */
const char *eg_task_type_key(eg_task_type_t t);
/* "MemorySearch" ...: the taskType of the progress events (NULL for an out-of-range value). */
const char *eg_task_type_event_name(eg_task_type_t t);
/* Parse "MEMORY_SEARCH" ...: 0 or EG_EINVAL. */
int eg_task_type_parse(const char *name, eg_task_type_t *out);

/* Start the "agent_tasks" queue worker on loop (needs the store). 0 or EG_EUNAVAIL. */
int eg_tasks_start(uv_loop_t *loop);
/* Stop the worker (running runs finish or are taken over later); done(udata) when closed. */
void eg_tasks_stop(void (*done)(void *), void *udata);

/* One AgentTask by id: cb(udata, 0, task JSON) / EG_ENOTFOUND / storage error (task NULL). */
int eg_task_get(const char *ws, const char *id, void (*cb)(void *, int, const cJSON *task),
                void *udata);

/* A page of ws's tasks, newest first by default; conversation_id (or NULL) keeps that
 * conversation's tasks. q's zkey / hkey are filled here. Same contract as eg_zpage. */
int eg_task_list(const char *ws, const char *conversation_id, eg_zpage_req_t *q, eg_zpage_fn cb,
                 void *udata);

/* The archive for getAgentTaskResponse: the task's progress entries as a JSON array, and its query
 * text (NULL when the task type has none). EG_ENOTFOUND for an unknown task. */
int eg_task_archive(const char *ws, const char *id,
                    void (*cb)(void *, int, const char *json, const char *query), void *udata);

/* ---- conversations: a title and metadata that tasks may refer to ----------------------- */

/* Create a conversation {id, title, createdAt, metadata}; title and metadata may be NULL. */
int eg_conversation_create(const char *ws, const char *title, const cJSON *metadata,
                           void (*cb)(void *, int, const cJSON *cnv), void *udata);
/* One conversation by id: cb(udata, 0, JSON) / EG_ENOTFOUND / storage error. */
int eg_conversation_get(const char *ws, const char *id, void (*cb)(void *, int, const cJSON *cnv),
                        void *udata);
/* A page of conversations whose metadata has every pair of match (NULL = all); q as for
 * eg_task_list. The page holds only matching conversations. */
int eg_conversation_search(const char *ws, const cJSON *match, eg_zpage_req_t *q, eg_zpage_fn cb,
                           void *udata);

#endif
