/* Internals of the LLM providers shared by their files: llm.c (the process's providers),
 * llm_config.c (settings), openai.c (the call state machine), openai_wire.c (request bodies and
 * response / SSE parsing as pure functions), embed_openai.c (embeddings), jsonschema.c (the
 * JSON Schema subset answers are checked against). */
#ifndef ENGRAM_LLM_INT_H
#define ENGRAM_LLM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/buf.h"
#include "engram/llm.h"

/* ---- jsonschema.c -----------------------------------------------------------------------------
 */

/* Check v against schema, a JSON Schema subset: type (a name or an array of names, "integer" and
 * "null" included), properties, required, items, enum, const, additionalProperties (false or a
 * schema), minimum/maximum, minItems/maxItems, minLength/maxLength, anyOf. Anything else in the
 * schema is ignored. 0, or EG_EINVAL with err naming the first violation and its path
 * ("$.facts[2].what: expected string, got number"). */
int eg__jschema_validate(const cJSON *schema, const cJSON *v, char *err, size_t errlen);

/* ---- openai_wire.c ----------------------------------------------------------------------------
 */

/* How one chat request is rendered beyond what eg_llm_req_t says. */
typedef struct eg__oai_body_opts_s {
    const char *model;
    bool stream;         /* "stream": true plus stream_options.include_usage */
    bool json_mode;      /* {type: json_object} and the schema in the system message */
    const cJSON *schema; /* parsed req->schema, or NULL */
    /* The repair turn: the previous answer and why it was refused (both NULL otherwise). */
    const char *repair_answer;
    const char *repair_error;
} eg__oai_body_opts_t;

/* The JSON body of POST {base}/chat/completions for req (malloc'd, NUL-terminated), or NULL with
 * err set when a tool's parameters are not a JSON object or a message is malformed. */
char *eg__oai_chat_body(const eg_llm_req_t *req, const eg__oai_body_opts_t *o, char *err,
                        size_t errlen);

/* One tool call of a response, owned. */
typedef struct eg__oai_tc_s {
    char *id;
    char *name;
    eg_buf_t args;
} eg__oai_tc_t;

/* A parsed chat response (whole or accumulated from a stream), owned. */
typedef struct eg__oai_result_s {
    eg_buf_t content;
    eg__oai_tc_t *tcs;
    size_t ntcs;
    char *finish_reason; /* NULL until seen */
    char *model;
    eg_usage_t usage;
} eg__oai_result_t;

/* Release everything r holds and zero it. */
void eg__oai_result_reset(eg__oai_result_t *r);

/* Parse a non-streamed chat completion body into r (reset first). 0, or EG_EUPSTREAM with err. */
int eg__oai_parse_response(const char *body, size_t len, eg__oai_result_t *r, char *err,
                           size_t errlen);

/* Read the usage object of a response or stream chunk into u (prompt_tokens, completion_tokens,
 * total_tokens, prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens).
 */
void eg__oai_parse_usage(const cJSON *usage, eg_usage_t *u);

/* Incremental parser of a streamed chat completion (Server-Sent Events of chunk objects). */
typedef struct eg__oai_sse_s {
    eg_buf_t line;            /* the current line, until its end arrives */
    eg_buf_t data;            /* data lines of the current event */
    eg__oai_result_t *res;    /* accumulates content, tool calls, finish_reason, usage */
    eg_llm_delta_fn on_delta; /* content deltas, optional */
    void *udata;
    bool done;     /* "data: [DONE]" seen */
    bool deltas;   /* on_delta was called at least once */
    char err[256]; /* why feed or end failed */
} eg__oai_sse_t;

/* Start parsing into res (which is reset). */
void eg__oai_sse_init(eg__oai_sse_t *p, eg__oai_result_t *res, eg_llm_delta_fn on_delta,
                      void *udata);

/* Feed bytes as they arrive (any split). 0; EG_EUPSTREAM for a chunk that is not JSON or an error
 * event; EG_ECANCELED when on_delta asked to stop. */
int eg__oai_sse_feed(eg__oai_sse_t *p, const char *data, size_t len);

/* The stream ended: 0 when it was complete ([DONE] or a finish_reason seen), EG_EUPSTREAM
 * otherwise (a truncated stream). */
int eg__oai_sse_end(eg__oai_sse_t *p);

/* Free the parser's buffers (not res). */
void eg__oai_sse_free(eg__oai_sse_t *p);

/* The server's error message from an error response body: error.message, a string error, or
 * message; else the start of the body, sanitised to one printable line. */
void eg__oai_error_message(const char *body, size_t len, char *out, size_t outlen);

/* True if a 400's message says the server does not support response_format json_schema. */
bool eg__oai_schema_unsupported(const char *msg);

/* A Retry-After value (delta-seconds, fractional allowed, or an HTTP-date) as milliseconds from
 * now_ms (0 for a date in the past), or -1 when it does not parse. */
int64_t eg__oai_retry_after_ms(const char *v, int64_t now_ms);

/* The JSON text inside a model's answer: surrounding whitespace and a ``` / ```json fence
 * removed. */
void eg__oai_strip_fences(const char *s, size_t len, const char **out, size_t *outlen);

/* The JSON body of POST {base}/embeddings (malloc'd); dim 0 leaves out "dimensions". */
char *eg__oai_embed_body(const char *model, const char *const *texts, size_t n, size_t dim);

/* Parse an embeddings response of n inputs into out (n * dim floats, by each item's index),
 * L2-normalising each vector. 0, or EG_EUPSTREAM with err (missing items, a vector of another
 * length than dim). */
int eg__oai_embed_parse(const char *body, size_t len, size_t n, size_t dim, float *out, char *err,
                        size_t errlen);

/* ---- openai.c ---------------------------------------------------------------------------------
 */

/* Retry waits start at this many milliseconds and double per retry (tests lower it). */
extern uint64_t eg__llm_backoff_base_ms;

/* Longest wait a Retry-After may ask for before a retry. */
#define EG_LLM_RETRY_AFTER_CAP_MS 60000

/* The wait before retry number n (0 = first): Retry-After when the server sent one (capped),
 * else exponential backoff with jitter, capped at 30 s. */
uint64_t eg__llm_retry_wait_ms(int n, const char *retry_after);

/* Limits of one provider client. */
typedef struct eg__oai_limits_s {
    uint64_t timeout_ms;
    int max_retries;
    int max_concurrency;
} eg__oai_limits_t;

/* An openai chat provider on loop for s (copied). NULL on a bad URL (logged). */
eg_llm_t *eg__oai_new(uv_loop_t *loop, const eg_llm_settings_t *s, const eg__oai_limits_t *lim);

/* eg_llm_t.chat with the retries overridden (the probe makes one attempt). */
int eg__oai_chat_ex(eg_llm_t *llm, const eg_llm_req_t *req, int max_retries, eg_llm_done_fn done,
                    void *udata, eg_llm_call_t **out);

/* Calls of a provider currently holding one of its concurrency slots, and waiting for one. */
int eg__oai_in_flight(const eg_llm_t *llm);
int eg__oai_queued(const eg_llm_t *llm);

/* Whether the provider has fallen back to JSON mode for structured output. */
bool eg__oai_json_mode(const eg_llm_t *llm);

/* The SSRF allow-list of a client reaching base_url: its host, plus ENGRAM_OUTBOUND_ALLOW
 * (malloc'd). */
char *eg__llm_allow_list(const char *base_url);

/* ---- embed_openai.c ---------------------------------------------------------------------------
 */

#define EG_LLM_EMBED_BATCH 96 /* inputs per embeddings request */

/* An embedder calling {base}/embeddings for s, dim floats per vector. NULL on a bad URL. */
eg_embedder_t *eg__embed_openai_new(uv_loop_t *loop, const eg_llm_settings_t *s, size_t dim,
                                    const eg__oai_limits_t *lim);

#endif
