/* Client tokens: one-action credentials a backend hands to a browser. A token is 32 lowercase
 * hex characters, bound to a workspace and a purpose, carries a JSON payload (what the backend
 * asked for, e.g. the createAgentTask session), expires EG_CTOKEN_TTL_MS after it was issued if
 * unused, and is consumed atomically by its first successful use: of two processes racing to use
 * one token, exactly one wins. Keys: eg:{ct:<token>} (docs/keyspace.md). */
#ifndef ENGRAM_CTOKENS_H
#define ENGRAM_CTOKENS_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define EG_CTOKEN_LEN         32               /* hex characters */
#define EG_CTOKEN_TTL_MS      (10 * 60 * 1000) /* default (ENGRAM_FENCY_CLIENT_TOKEN_TTL) */
#define EG_CTOKEN_PAYLOAD_MAX (256 * 1024)     /* largest payload JSON */

typedef enum eg_ctoken_purpose_e {
    EG_CTOKEN_CREATE_STREAM,
    EG_CTOKEN_CREATE_AGENT_TASK,
    EG_CTOKEN_CREATE_AGENT_TASK_FILE_DOWNLOAD,
    EG_CTOKEN_GET_AGENT_TASK_RESPONSE,
    /* Not a session type: the capability behind a short-lived download link (read with
     * eg_ctoken_peek until it expires, so a retried GET works). */
    EG_CTOKEN_DOWNLOAD,
    EG_CTOKEN__COUNT
} eg_ctoken_purpose_t;

/* "CREATE_STREAM", ... (NULL for an out-of-range value). */
const char *eg_ctoken_purpose_name(eg_ctoken_purpose_t p);

/* The lifetime of new tokens in ms: ENGRAM_FENCY_CLIENT_TOKEN_TTL (a duration such as "10m" or
 * "500ms", read once; an invalid value logs an error and keeps the default) or EG_CTOKEN_TTL_MS. */
uint64_t eg_ctoken_ttl_ms(void);

/* Is s a well-formed token (32 lowercase hex characters)? */
bool eg_ctoken_valid(const char *s);

/* Issue a token of workspace ws for purpose p with payload (an object, copied; NULL = {}), noted
 * with the session id sid (may be NULL), living ttl_ms (0 = eg_ctoken_ttl_ms()). cb(udata, err,
 * token): 0 and the token, or a store error. Returns 0 (cb will run) or EG_EINVAL / EG_EUNAVAIL
 * (cb will not). */
int eg_ctoken_issue(const char *ws, eg_ctoken_purpose_t p, const cJSON *payload, const char *sid,
                    uint64_t ttl_ms, void (*cb)(void *, int, const char *token), void *udata);

/* The result of peeking at or using a token: payload is valid during the callback only. */
typedef void (*eg_ctoken_fn)(void *udata, int err, const cJSON *payload);

/* Look at token without consuming it, as presented by workspace ws for purpose p (ws NULL, for
 * EG_CTOKEN_DOWNLOAD only: any workspace, the payload says which): err 0 with the payload; EG_EAUTH
 * when the token is unknown, expired or already used; EG_EFORBIDDEN when it belongs to another
 * workspace or another purpose; or a store error. Returns 0 (cb will run), EG_EAUTH for a malformed
 * token, or EG_EINVAL / EG_EUNAVAIL (cb will not run). */
int eg_ctoken_peek(const char *token, const char *ws, eg_ctoken_purpose_t p, eg_ctoken_fn cb,
                   void *udata);

/* Consume token atomically with the same checks as eg_ctoken_peek (one round trip): err 0 with
 * the payload when this call used it; EG_EAUTH when it is gone (another use won); EG_EFORBIDDEN
 * (not consumed) for the wrong workspace or purpose. */
int eg_ctoken_consume(const char *token, const char *ws, eg_ctoken_purpose_t p, eg_ctoken_fn cb,
                      void *udata);

#endif
