/* LLM providers: chat completions (messages, tools, JSON-schema output, streaming) for the
 * operations that need a language model — retain's fact extraction, reflect, consolidation,
 * mental-model refresh — chosen per operation from ENGRAM_LLM_* / ENGRAM_<OP>_LLM_* settings.
 *
 * A provider is a small vtable, like an embedder (engram/embed.h). "openai" speaks the
 * OpenAI-compatible HTTP API through the outbound client (engram/httpc.h), on the loop, with
 * retries (429/5xx, Retry-After), timeouts and a concurrency cap. "builtin" is the offline default
 * and has no chat model: eg_llm_for() answers NULL for it, and each operation then takes its own
 * extractive path (and says so in its output).
 *
 * Everything a request points at is borrowed and must stay valid until done runs; the response
 * handed to done is valid only during that callback (copy what you keep). API keys are never
 * logged. */
#ifndef ENGRAM_LLM_H
#define ENGRAM_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <cjson/cJSON.h>
#include "engram/embed.h"
#include "engram/extract.h" /* eg_usage_t */

/* ---- configuration ---------------------------------------------------------------------------- */

/* The operations that may use their own model (ENGRAM_<OP>_LLM_* override ENGRAM_LLM_*). */
typedef enum {
    EG_LLM_OP_DEFAULT = 0, /* ENGRAM_LLM_* */
    EG_LLM_OP_RETAIN,      /* ENGRAM_RETAIN_LLM_*: fact extraction */
    EG_LLM_OP_REFLECT,     /* ENGRAM_REFLECT_LLM_*: reflect and mental-model refresh */
    EG_LLM_OP_CONSOLIDATION, /* ENGRAM_CONSOLIDATION_LLM_*: observations */
    EG_LLM_OP_AGENT,         /* ENGRAM_AGENT_LLM_*: Fency agent tasks */
    EG_LLM_OP_COUNT
} eg_llm_op_t;

/* Lower-case operation name ("default", "retain", "reflect", "consolidation", "agent"). */
const char *eg_llm_op_name(eg_llm_op_t op);

/* One provider's settings. Strings are owned by the config (eg_llm_config_free). */
typedef struct eg_llm_settings_s {
    char *provider; /* "builtin" (default) or "openai" */
    char *base_url; /* e.g. "https://api.openai.com/v1", "http://127.0.0.1:11434/v1" */
    char *api_key;  /* sent as "Authorization: Bearer <key>"; NULL or "" = none */
    char *model;    /* e.g. "gpt-4o-mini" */
} eg_llm_settings_t;

/* Process-wide LLM and embedding configuration. */
typedef struct eg_llm_config_s {
    eg_llm_settings_t op[EG_LLM_OP_COUNT]; /* op[DEFAULT] filled, the others inherit unset fields */
    eg_llm_settings_t embeddings;          /* ENGRAM_EMBEDDINGS_{PROVIDER,BASE_URL,API_KEY,MODEL} */
    size_t embeddings_dim;       /* ENGRAM_EMBEDDINGS_DIMENSIONS, default 384 (builtin) */
    uint64_t timeout_ms;         /* ENGRAM_LLM_TIMEOUT per attempt, default 120 s */
    int max_retries;             /* ENGRAM_LLM_MAX_RETRIES on 429/5xx/network errors, default 3 */
    int max_concurrency;         /* ENGRAM_LLM_MAX_CONCURRENCY calls in flight per provider, 8 */
} eg_llm_config_t;

/* Read the configuration from ENGRAM_LLM_*, ENGRAM_{RETAIN,REFLECT,CONSOLIDATION}_LLM_* and
 * ENGRAM_EMBEDDINGS_* (get = NULL uses getenv). Per-operation settings inherit each unset field
 * from ENGRAM_LLM_*. 0, or EG_EINVAL with errbuf naming the variable (an unknown provider, a
 * base URL that is not http(s), openai without a model, a bad number). */
int eg_llm_config_from_env(eg_llm_config_t *cfg, const char *(*get)(const char *name),
                           char *errbuf, size_t errlen);

/* Release the strings of cfg. */
void eg_llm_config_free(eg_llm_config_t *cfg);

/* ---- chat ------------------------------------------------------------------------------------- */

typedef enum { EG_LLM_SYSTEM = 0, EG_LLM_USER, EG_LLM_ASSISTANT, EG_LLM_TOOL } eg_llm_role_t;

/* A tool call the model made (or, in a request, one an assistant message carries). */
typedef struct eg_llm_tool_call_s {
    const char *id;        /* provider's call id, echoed in the tool result message */
    const char *name;      /* function name */
    const char *arguments; /* JSON text as the model wrote it (may be malformed) */
} eg_llm_tool_call_t;

typedef struct eg_llm_msg_s {
    eg_llm_role_t role;
    const char *content; /* NULL for an assistant message that only calls tools */
    const eg_llm_tool_call_t *tool_calls; /* assistant messages */
    size_t ntool_calls;
    const char *tool_call_id; /* EG_LLM_TOOL messages: the call this answers */
} eg_llm_msg_t;

/* A function tool offered to the model. */
typedef struct eg_llm_tool_s {
    const char *name;
    const char *description;
    const char *parameters; /* JSON Schema text of the arguments object */
} eg_llm_tool_t;

typedef enum {
    EG_LLM_TOOLS_AUTO = 0, /* the model decides (default when tools are given) */
    EG_LLM_TOOLS_NONE,     /* no tool calls */
    EG_LLM_TOOLS_REQUIRED, /* some tool call */
    EG_LLM_TOOLS_NAMED,    /* exactly tool_choice_name */
} eg_llm_tool_choice_t;

/* Streaming: each content delta as it arrives (not NUL-terminated). Return non-zero to abort the
 * call (done then gets EG_ECANCELED). */
typedef int (*eg_llm_delta_fn)(void *udata, const char *text, size_t len);

typedef struct eg_llm_req_s {
    const eg_llm_msg_t *msgs;
    size_t nmsgs;
    const eg_llm_tool_t *tools;
    size_t ntools;
    eg_llm_tool_choice_t tool_choice;
    const char *tool_choice_name; /* EG_LLM_TOOLS_NAMED */
    /* Structured output: a JSON Schema (text, an object) the answer must satisfy, sent as
     * response_format {type: json_schema, json_schema: {name, schema, strict: true}}. When the
     * server answers 400 about response_format / json_schema, the provider falls back to JSON
     * mode ({type: json_object}, the schema in the system message) for this call and every later
     * one. Either way the answer (code fences stripped) is parsed and validated against a JSON
     * Schema subset (type incl. arrays of types and "null", properties, required, items, enum,
     * const, anyOf, additionalProperties, minimum/maximum, minItems/maxItems,
     * minLength/maxLength), and an invalid one is sent back once with the validation error for
     * repair (that turn is not streamed); still invalid: EG_EINVAL. resp->json is then set —
     * unless the model answered with tool calls, which are returned unvalidated. */
    const char *schema;
    const char *schema_name; /* default "response" */
    double temperature;      /* < 0 = provider default */
    double top_p;            /* nucleus sampling in (0, 1]; <= 0 = provider default */
    int max_tokens;          /* 0 = unset */
    const char *scope;       /* what the call is for ("retain", "reflect", ...), for logs */
    eg_llm_delta_fn on_delta; /* optional: stream the answer (SSE), deltas to this */
    uint64_t timeout_ms;      /* 0 = the config's timeout */
} eg_llm_req_t;

typedef struct eg_llm_resp_s {
    const char *content; /* the answer text ("" when the model only called tools) */
    size_t content_len;
    const eg_llm_tool_call_t *tool_calls; /* in order */
    size_t ntool_calls;
    cJSON *json;               /* parsed and validated answer when req->schema was set */
    const char *finish_reason; /* "stop", "tool_calls", "length", ... or "" */
    const char *model;         /* model the server reports */
    eg_usage_t usage;          /* summed over every attempt of this call */
    int http_status;           /* last HTTP status (0 before a response) */
    int attempts;              /* HTTP requests made (retries and the repair included) */
    uint64_t elapsed_ms;
    const char *error; /* on failure, a one-line reason safe to show a user (no keys) */
} eg_llm_resp_t;

/* Completion: err 0, or EG_EUPSTREAM (5xx/429 after retries, an unparsable response, or a
 * stream that ended without finish_reason or [DONE]),
 * EG_ECONNECT / EG_EDNS / EG_ETLS (unreachable), EG_EUPTIMEOUT (network errors and timeouts are
 * retried too), EG_EAUTH (401/403), EG_EINVAL (400 and other 4xx, with the server's message; a
 * malformed request; an answer that stayed invalid after the repair), EG_ECANCELED. resp is never NULL;
 * resp->error says why. Called exactly once, from the loop. */
typedef void (*eg_llm_done_fn)(void *udata, int err, const eg_llm_resp_t *resp);

typedef struct eg_llm_s eg_llm_t;
typedef struct eg_llm_call_s eg_llm_call_t;

struct eg_llm_s {
    const char *provider; /* "openai" */
    const char *model;
    /* Start a call: 0 and done runs later (never inside chat), or a negative EG_E* code now. */
    int (*chat)(eg_llm_t *llm, const eg_llm_req_t *req, eg_llm_done_fn done, void *udata,
                eg_llm_call_t **out);
    void (*cancel)(eg_llm_call_t *call); /* done then gets EG_ECANCELED on a later turn */
    void (*destroy)(eg_llm_t *llm);
    void *impl;
};

/* ---- the process's providers ------------------------------------------------------------------ */

/* Build the providers of cfg on loop (one openai client per distinct base_url+key+model, shared by
 * the operations that use it) and the embedder. cfg is copied. 0, or EG_EINVAL (logged). */
int eg_llm_start(uv_loop_t *loop, const eg_llm_config_t *cfg);

/* Cancel every call and free the providers (run the loop afterwards). */
void eg_llm_shutdown(void);

/* The chat model for op, or NULL when op's provider is builtin (the operation then takes its
 * extractive, model-free path). */
eg_llm_t *eg_llm_for(eg_llm_op_t op);

/* The process's embedder: builtin (hashed lexical, dim from config) unless ENGRAM_EMBEDDINGS_*
 * select openai. Never NULL after eg_llm_start; before it, the builtin 384-dim embedder. */
eg_embedder_t *eg_llm_embedder(void);

/* Convenience over the vtable. */
int eg_llm_chat(eg_llm_t *llm, const eg_llm_req_t *req, eg_llm_done_fn done, void *udata,
                eg_llm_call_t **out);
void eg_llm_cancel(eg_llm_t *llm, eg_llm_call_t *call);

/* A fixed health probe of op's provider (one tiny chat call, no retries, at most 30 s): status
 * one of "connected", "not_configured" (builtin; cb runs before eg_llm_probe returns),
 * "auth_failed" (401/403), "timeout", "unreachable" (anything else: no connection, 5xx, an
 * unknown model); latency_ms of the probe. */
typedef void (*eg_llm_probe_fn)(void *udata, const char *status, uint64_t latency_ms);
void eg_llm_probe(eg_llm_op_t op, eg_llm_probe_fn cb, void *udata);

#endif
