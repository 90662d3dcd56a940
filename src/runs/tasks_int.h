/* Agent tasks internals shared by src/runs/tasks*.c. */
#ifndef ENGRAM_TASKS_INT_H
#define ENGRAM_TASKS_INT_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "engram/tasks.h"

#define EG_TASK_MESSAGES_MAX    200 /* messages in one chat task */
#define EG_TASK_CHUNK_LIMIT_MAX 100 /* chunkLimit */
#define EG_TASK_SCAN_LIMIT_MAX  50  /* memoryScanLimit */
#define EG_TASK_CONTEXT_MAX     10  /* contextExpansion.before / after */
#define EG_TASK_QUERY_COUNT_MAX 5   /* queryExpansion.queryCount */

/* Is model one of the Fency model names (fency.md §3)? */
bool eg__task_model_valid(const char *model);

/* "SYSTEM" 0, "USER" 1, "ASSISTANT" 2, else -1. */
int eg__task_role_parse(const char *role);

#endif
