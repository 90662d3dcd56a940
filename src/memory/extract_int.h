/* Private helpers shared by the extraction files (extract_conv.c, extract_builtin.c,
 * extract_chunk.c): reading conversation-shaped text as messages. */
#ifndef ENGRAM_MEMORY_EXTRACT_INT_H
#define ENGRAM_MEMORY_EXTRACT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"

typedef enum {
    EG__CONV_NONE = 0, /* plain text */
    EG__CONV_JSON,     /* a JSON array of objects */
    EG__CONV_JSONL,    /* JSON lines, each an object */
    EG__CONV_LINES,    /* "Name: text" lines */
} eg__conv_kind_t;

/* Speaker classes. */
typedef enum {
    EG__SPK_NONE = 0,  /* no speaker (plain text, or a message without one) */
    EG__SPK_USER,      /* a role word for the human side: user, human, customer */
    EG__SPK_ASSISTANT, /* a role word for the agent side: assistant, ai, bot, agent, model */
    EG__SPK_SYSTEM,    /* system / developer messages: skipped by extraction */
    EG__SPK_NAMED,     /* a person's name ("Alice") */
} eg__spk_class_t;

/* One message (turn) of a conversation. */
typedef struct eg__msg_s {
    size_t off, span;    /* the turn's bytes in the input (a JSON element, a line, speaker lines) */
    const char *speaker; /* display form ("User", "Alice"), NUL-terminated; NULL when none */
    eg__spk_class_t cls;
    const char *text; /* the content, NUL-terminated (in the arena or the input) */
    size_t len;
    int64_t time; /* the message's own time (µs), or EG_MEM_TIME_NONE */
} eg__msg_t;

/* Read text as a conversation: JSON array of objects, JSON lines, or "Name: text" lines (see
 * eg_extract_builtin_run for the rules). Returns the kind (EG__CONV_NONE: plain text, *out NULL,
 * *n 0), the messages in order in the arena. A JSON element or line without a recognisable
 * content field becomes a message whose text lists its scalar fields ("key: value, ..."). */
eg__conv_kind_t eg__conv_parse(eg_arena_t *a, const char *text, size_t len, eg__msg_t **out,
                               size_t *n);

/* Classify a speaker name (len bytes): role words case-insensitively, else a name. */
eg__spk_class_t eg__conv_speaker_class(const char *s, size_t len);

#endif
