/* Shared by directives.c and mental_models*.c: tag lists stored as JSON text, the tag filter,
 * reading HGETALL replies and the scripts' error replies. */
#ifndef ENGRAM_DIRMM_INT_H
#define ENGRAM_DIRMM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "engram/arena.h"
#include "engram/recall.h"

/* The bank's slot id "<ws>/<bank>" and its key "eg:{b:<ws>/<bank>}:<suffix>" in the arena. */
const char *eg__dirmm_scope(eg_arena_t *a, const char *ws_id, const char *bank_id);
const char *eg__dirmm_key(eg_arena_t *a, const char *ws_id, const char *bank_id,
                          const char *suffix);

/* True when tags[0..n) can be stored: at most EG_MEM_TAGS_MAX tags of 1..EG_MEM_TAG_MAX bytes
 * without control characters. */
bool eg__dirmm_tags_valid(const char *const *tags, size_t n);

/* tags as a JSON array's text, in the arena. */
char *eg__dirmm_tags_json(eg_arena_t *a, const char *const *tags, size_t n);

/* Decode a stored JSON array of strings into the arena (non-strings skipped); the count. */
size_t eg__dirmm_tags_parse(eg_arena_t *a, const char *json, const char *const **out);

/* The tag filter (engram/mental_models.h eg_mm_tags_pass): an empty want passes everything but
 * under exact; untagged items pass any / all (and every mode when untagged_pass is set). */
bool eg__dirmm_tags_pass(const char *const *it, size_t nit, const char *const *want, size_t nwant,
                         eg_tags_match_t m, bool untagged_pass);

/* The value of field in an HGETALL reply (flat array), NULL when absent. */
const char *eg__dirmm_hget(const redisReply *r, const char *field);

/* An integer field (def when absent or not an integer). */
int64_t eg__dirmm_hget_int(const redisReply *r, const char *field, int64_t def);

/* A script's reply to an error code: "EG_NOTFOUND" -> EG_ENOTFOUND, "EG_CONFLICT" / "EG_FULL" ->
 * EG_ECONFLICT, anything else EG_EREDIS (logged). */
int eg__dirmm_reply_error(const redisReply *r);

/* Current time in µs since the epoch. */
int64_t eg__dirmm_now_us(void);

#endif
