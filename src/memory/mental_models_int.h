/* Mental models internals shared by mental_models.c (records, reads, edits),
 * mental_models_refresh.c (create, refresh operations and jobs) and mental_models_search.c. */
#ifndef ENGRAM_MENTAL_MODELS_INT_H
#define ENGRAM_MENTAL_MODELS_INT_H

#include <hiredis/hiredis.h>

#include "engram/arena.h"
#include "engram/mental_models.h"
#include "engram/store.h"

/* A model from an HGETALL reply (strings point into the reply; tags and JSON in the arena);
 * is_stale from the bank's last_write_at (ms). */
void eg__mm_parse(eg_arena_t *a, const redisReply *r, int64_t last_write_ms, eg_mm_t *m);

/* Read every model of the bank, newest first: fn gets {last_write_at, {records}} (keys built in
 * a, which must live until fn). Same contract as eg_store_eval. */
int eg__mm_read_all(const char *ws_id, const char *bank_id, eg_reply_fn fn, void *udata,
                    eg_arena_t *a);

#endif
