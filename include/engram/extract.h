/* Fact extraction: turn one chunk of a retained item into facts (text, type, dates, entities,
 * causal relations), and split an item's text into the chunks extraction works on.
 *
 * An extractor is a small vtable, like an embedder (engram/embed.h), so that retain does not care
 * whether facts come from the builtin rule-based extractor (in-process, no I/O) or from an LLM
 * (one structured-output call per chunk, a later provider). Results live in the caller's arena.
 *
 * What retain does around an extractor (engram/retain.h), so extractors do not repeat it: the
 * item's own entities are merged into every fact (case-insensitively), each fact's mentioned_at is
 * the item timestamp plus 0.01 s per fact of the batch (EG_EXTRACT_FACT_OFFSET_US, which also
 * shifts occurred_start/end, as Hindsight does to keep facts ordered), and the item's context,
 * tags and metadata are copied onto every unit. */
#ifndef ENGRAM_EXTRACT_H
#define ENGRAM_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/arena.h"
#include "engram/mstore.h"

/* Each fact of a retain batch is moved 0.01 s later than the one before it. */
#define EG_EXTRACT_FACT_OFFSET_US INT64_C(10000)

/* At most this many causal relations per fact (Hindsight's limit). */
#define EG_EXTRACT_CAUSES_MAX 2

/* Token usage of model calls, summed (all zero for the builtin providers). */
typedef struct eg_usage_s {
    int64_t input_tokens, output_tokens, total_tokens, cached_tokens, thoughts_tokens;
} eg_usage_t;

/* dst += src, field by field. */
void eg_usage_add(eg_usage_t *dst, const eg_usage_t *src);

/* Extraction modes (the bank's retain_extraction_mode). */
typedef enum {
    EG_EXTRACT_CONCISE = 0, /* selective facts (the default) */
    EG_EXTRACT_VERBOSE,     /* detailed facts */
    EG_EXTRACT_CUSTOM,      /* guided by custom_instructions */
    EG_EXTRACT_VERBATIM,    /* one fact per chunk, its text as given; entities and dates found */
    EG_EXTRACT_CHUNKS,      /* one fact per chunk, nothing extracted */
} eg_extract_mode_t;

/* Parse a mode name ("concise", ...); 0 or EG_EINVAL. NULL or "" is concise. */
int eg_extract_mode_parse(const char *s, eg_extract_mode_t *out);

/* The bank configuration extraction follows (strings may be NULL = unset). */
typedef struct eg_extract_config_s {
    eg_extract_mode_t mode;
    const char *mission;             /* retain_mission: what this bank should retain */
    const char *custom_instructions; /* retain_custom_instructions (mode custom) */
    bool causal_links;               /* retain_extract_causal_links */
    const char *output_language;     /* llm_output_language (NULL: the input's language) */
    bool no_free_form_entities;      /* entities_allow_free_form false: no model entities */
} eg_extract_config_t;

/* One chunk to extract from. */
typedef struct eg_extract_input_s {
    const char *text; /* the chunk (UTF-8, len bytes) */
    size_t len;
    size_t chunk_index, nchunks; /* position of the chunk in its item */
    const char *context;         /* the item's context, "" or NULL when none */
    int64_t timestamp;           /* the item's timestamp (µs), or EG_MEM_TIME_NONE ("unset") */
    const eg_extract_config_t *cfg;
    /* The item's own entity names: hints (an LLM is told about them); retain merges them into
     * every fact itself, so an extractor need not return them. */
    const char *const *entities;
    size_t nentities;
    const cJSON *metadata; /* the item's metadata (an object of strings), or NULL */
} eg_extract_input_t;

/* One extracted fact. */
typedef struct eg_extract_fact_s {
    const char *text;
    eg_fact_type_t type; /* world or experience (an LLM's "assistant" maps to experience) */
    int64_t occurred_start, occurred_end; /* µs, or EG_MEM_TIME_NONE when the fact has no date */
    const char **entities;                /* names, unique case-insensitively */
    size_t nentities;
    /* caused_by relations: indexes of earlier facts of the same result (each < own index), at
     * most EG_EXTRACT_CAUSES_MAX; always empty when the config's causal_links is off. */
    size_t causes[EG_EXTRACT_CAUSES_MAX];
    size_t ncauses;
} eg_extract_fact_t;

typedef struct eg_extract_result_s {
    eg_extract_fact_t *facts; /* in the arena given to the extractor */
    size_t nfacts;
    eg_usage_t usage;
    const char *error; /* on failure only: a one-line reason safe to show a user, or NULL */
} eg_extract_result_t;

typedef struct eg_extractor_s eg_extractor_t;

/* Completion of an extraction: status 0 with the result, or a negative EG_E* code with res NULL
 * or carrying only error (and the usage spent). Runs exactly once per accepted request. */
typedef void (*eg_extract_cb)(eg_extractor_t *x, int status, const eg_extract_result_t *res,
                              void *udata);

struct eg_extractor_s {
    const char *name; /* stable identifier, e.g. "builtin-rules-v1" */
    /* Extract facts from in (valid until cb), allocating the result in a (valid until the caller
     * resets it). Returns 0 when accepted (cb runs exactly once, possibly before this returns) or
     * a negative EG_E* code (cb does not run). */
    int (*extract)(eg_extractor_t *x, eg_arena_t *a, const eg_extract_input_t *in, eg_extract_cb cb,
                   void *udata);
    void (*destroy)(eg_extractor_t *x);
    void *impl;
};

/* Convenience wrappers over the vtable. eg_extract_destroy(NULL) is a no-op. */
int eg_extract_run(eg_extractor_t *x, eg_arena_t *a, const eg_extract_input_t *in, eg_extract_cb cb,
                   void *udata);
void eg_extract_destroy(eg_extractor_t *x);

/* ---- the builtin extractor (extract_builtin.c) ----------------------------------------------- */

/* The builtin rule-based extractor. Its extract() completes synchronously (cb runs before it
 * returns, with status 0) and reports zero usage. */
eg_extractor_t *eg_extract_builtin_new(void);

/* The builtin extraction of one chunk, without the vtable: fills *out (facts in a).
 *
 * Modes concise, verbose and custom: one fact per sentence-level statement (eg_text_sentences).
 * Social filler (eg_text_is_filler), questions and one-word sentences are skipped; a leading
 * list marker ("- ", "1. ") is dropped. Conversation-shaped chunks are
 * read message by message: a JSON array (or JSON lines) of objects with a speaker ("name", else
 * "role", "speaker" or "author") and "content" (a string, or a list of {"text"} parts; "text" or
 * "message" also accepted), and optional "timestamp"/"created_at"; or "Name: text" lines, where
 * a name may carry a time, "Alice (2024-03-15T09:00:00Z): ..." (at least two such lines, or one
 * whose speaker is a role word such as User or Assistant); lines without a speaker continue the
 * message before them. System messages are skipped. A message's facts read
 * "<Speaker>: <sentence>" (role names capitalised: "User: ..."), and a named speaker is one of
 * their entities.
 *   type: experience for the assistant's first-person statements in a conversation, and for
 *     first-person statements (I, my, we, ...) of plain text, whose writer is taken to be the
 *     agent; world otherwise (a user's or named speaker's statements included).
 *   entities: the recogniser's (eg_text_entities) over the sentence, plus the speaker's name.
 *   dates: the first date expression of the sentence (eg_text_find_date) resolved against the
 *     message's own time, else the item timestamp; with no timestamp ("unset") only absolute
 *     dates count. No date: occurred_start/end are EG_MEM_TIME_NONE.
 *   causes: a sentence opening with a consequence marker (So, Therefore, As a result, Because of
 *     this/that, That's why, Consequently, Thus, Hence) is caused_by the fact before it, when
 *     causal links are on.
 * Mode verbatim: one fact, the whole chunk, with its entities and first date; mode chunks: one
 * fact, the whole chunk, nothing else. The mission and custom instructions are not used (they
 * steer an LLM). */
void eg_extract_builtin_run(eg_arena_t *a, const eg_extract_input_t *in, eg_extract_result_t *out);

/* ---- the LLM extractor (extract_llm.c) ------------------------------------------------------- */

struct eg_llm_s; /* engram/llm.h */

/* An extractor over a chat model (borrowed: it must outlive the extractor), as Hindsight
 * extracts: one structured-output call per chunk (the fact schema of the mode, temperature 0.1,
 * the mode's system prompt with the bank's retain mission, the chunk with its position, the
 * item's timestamp as "Event Date" so relative dates resolve, its context and entity names).
 * Mode chunks makes no call (one world fact per chunk, as given); mode verbatim asks the model
 * for the chunk's metadata only (entities, dates, type) and keeps the chunk's text as the fact.
 * An answer cut at the output limit (finish_reason "length") splits the chunk at a sentence end
 * near its middle and extracts each half, down to three halvings (Hindsight's auto-split).
 * A failed call completes with EG_EUPSTREAM (EG_EUPTIMEOUT, EG_ECANCELED kept) and res->error
 * "fact extraction failed: <the provider's reason>". */
eg_extractor_t *eg_extract_llm_new(struct eg_llm_s *llm);

/* Pieces of the LLM extractor, exposed for tests. */

/* The system prompt for cfg (in a). */
char *eg_extract_llm_system_prompt(eg_arena_t *a, const eg_extract_config_t *cfg);

/* The user message for one chunk: position, Event Date ("Monday, June 10, 2024 (ISO)" or
 * "Unknown"), context ("none" when empty), the item's metadata ("  key: value" lines) and
 * entity names, then the text (in a). */
char *eg_extract_llm_user_message(eg_arena_t *a, const eg_extract_input_t *in);

/* The JSON Schema (text, in a) of the answer for cfg: {facts: [fact]}, where a fact has what,
 * when, where, who, why, fact_kind, occurred_start, occurred_end, fact_type (world|assistant),
 * entities ([string]) and, when causal links are on, causal_relations ([{target_index,
 * relation_type: caused_by}]); mode verbatim has no what, why or causal_relations. */
char *eg_extract_llm_schema(eg_arena_t *a, const eg_extract_config_t *cfg);

/* Read a model's answer leniently into *out (in a), as Hindsight does: a fact without a
 * non-empty what is skipped, "N/A" and empty values are absent, text = what | When: when |
 * Involving: who | why (the parts present), "assistant" is experience and anything else world,
 * occurred_start/end only for fact_kind "event" (ISO parsed, else the first date expression of
 * the value or, failing that, of the fact's text resolved against in->timestamp; an end
 * defaults to the start), entities (strings or {text}) unique case-insensitively (none when
 * cfg->no_free_form_entities), caused_by relations to earlier kept facts only, at most
 * EG_EXTRACT_CAUSES_MAX (none when causal links are off). Mode verbatim: one fact, the chunk's
 * text, with the first entry's type and dates and every entry's entities. usage is left zero.
 * Returns 0, or EG_EUPSTREAM when answer is not an object with a facts array. */
int eg_extract_llm_parse(eg_arena_t *a, const eg_extract_input_t *in, const cJSON *answer,
                         eg_extract_result_t *out);

/* ---- chunking by structure (extract_chunk.c) ------------------------------------------------- */

typedef struct eg_extract_chunk_s {
    const char *text; /* NUL-terminated: the input itself or a copy in the arena */
    size_t len;
} eg_extract_chunk_t;

/* Split an item's text into the chunks extraction works on, as Hindsight does. Text of at most
 * chunk_cp code points is one chunk, unchanged. Longer text is chunked by structure when it has
 * one, packing whole turns greedily up to structured_cp code points (0 = chunk_cp; a single turn
 * over the limit makes a chunk of its own):
 *   a JSON array of objects (a conversation): chunks are JSON arrays "[t1, t2, ...]" of the
 *     original turns' text (a turn counts its code points + 1, the array 2, like Hindsight's
 *     len(json.dumps(turn)) + 1);
 *   JSON lines (every non-empty line an object): chunks are runs of whole lines;
 *   "Name: text" lines (as eg_extract_builtin_run recognises them): runs of whole turns, a turn
 *     being a speaker line and the lines that continue it.
 * Other text goes to eg_text_chunks(chunk_cp) (sentence boundaries). chunk_cp 0 is
 * EG_TEXT_CHUNK_DEFAULT. Returns the count (at least 1, even for empty text), *out in a. */
size_t eg_extract_chunks(eg_arena_t *a, const char *text, size_t len, size_t chunk_cp,
                         size_t structured_cp, eg_extract_chunk_t **out);

#endif
