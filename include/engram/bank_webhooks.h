/* Bank events and bank webhooks: the endpoint kind that belongs to one memory bank of a
 * workspace (Hindsight's per-bank webhooks), and the one call every module uses to announce that
 * something finished in a bank (retain, consolidation, memory defense).
 *
 * A bank event is an ordinary event of the workspace's log (engram/events.h), so workspace
 * endpoints (/engram/v1/webhooks), live watchers and bank endpoints all receive it. Its entity is
 * {"id": operation_id, "bank_id", "operation_id", "status", "timestamp", "data"}.
 *
 * Bank endpoints are delivered by the one webhook engine (engram/webhooks.h): an event of the
 * workspace whose type is in an endpoint's event_types and whose entity's "bank_id" is the
 * endpoint's bank gets one queued delivery per endpoint. The request is Hindsight's: the compact
 * body of eg_bank_webhook_body, Content-Type, X-Hindsight-Event, the endpoint's own headers and,
 * only when a secret is set, X-Hindsight-Signature: sha256=<hex HMAC>; the endpoint's method
 * (GET sends no body), its params as the query string, its timeout; 6 attempts (the first, then
 * 5 s, 5 min, 30 min, 2 h, 5 h, times ENGRAM_WEBHOOK_RETRY_SCALE, ±10% jitter).
 *
 * Keys (docs/keyspace.md, "Webhooks"), in the workspace's slot {w:<ws_id>}: the bank's index
 * eg:{w:<ws>}:bwh:<bank_id> and, like workspace endpoints, eg:{w:<ws>}:wh:<id> and its
 * deliveries. */
#ifndef ENGRAM_BANK_WEBHOOKS_H
#define ENGRAM_BANK_WEBHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/buf.h"
#include "engram/events.h"
#include "engram/http.h"
#include "engram/webhooks.h"

#define EG_BANK_WEBHOOKS_MAX          100  /* endpoints per bank */
#define EG_BANK_WEBHOOK_ATTEMPTS      6    /* the first attempt + 5 retries */
#define EG_BANK_WEBHOOK_TIMEOUT       30   /* default timeout_seconds */
#define EG_BANK_WEBHOOK_TIMEOUT_MAX   300  /* most timeout_seconds accepted */
#define EG_BANK_WEBHOOK_KV_MAX        32   /* http_config headers, and params, per endpoint */
#define EG_BANK_WEBHOOK_KV_BYTES      4096 /* longest header or param value */
#define EG_BANK_WEBHOOK_LIMIT_MAX     200  /* deliveries per page */
#define EG_BANK_WEBHOOK_RESP_BODY_MAX 1024 /* response body bytes kept per attempt */

/* ---- pure helpers (no I/O; unit-tested) ------------------------------------------------ */

/* Is type one of the bank event types: "retain.completed", "consolidation.completed",
 * "memory_defense.triggered"? */
bool eg_bank_event_type_valid(const char *type);

/* The Hindsight delivery body of an event of this type from its entity: compact JSON
 * {"event","bank_id","operation_id","status","timestamp","data"} in that order, taken from the
 * entity's members of those names (strings; "data" an object, {} when absent), with null-valued
 * keys dropped at every depth. Returns a malloc'd string (caller frees), or NULL when entity is
 * not an object. */
char *eg_bank_webhook_body(const char *type, const cJSON *entity);

/* The request URL: url with params appended as a percent-encoded query string ("?" or "&"
 * depending on whether url already has a query; a fragment is dropped). Appends to out. */
void eg_bank_webhook_url(eg_buf_t *out, const char *url, const eg_kv_t *params, size_t nparams);

/* The request headers, in order: Content-Type: application/json, X-Hindsight-Event: type, each
 * of custom (one that names a header already present, case-insensitively, replaces its value in
 * place), then X-Hindsight-Signature: sig when sig is not NULL (replacing a custom one). out has
 * room for ncustom + 3 entries; returns how many were written. */
size_t eg_bank_webhook_headers(const char *type, const eg_kv_t *custom, size_t ncustom,
                               const char *sig, eg_kv_t *out);

/* ---- endpoints ------------------------------------------------------------------------- */

/* A bank endpoint as stored. Strings are valid during the callback only. The secret itself is
 * never handed out (Hindsight never returns it). */
typedef struct eg_bank_webhook_s {
    const char *id; /* UUID v4 */
    const char *bank_id;
    const char *url;
    bool has_secret;
    const char *const *event_types;
    size_t ntypes;
    bool enabled;
    const char *method; /* "POST" | "GET" */
    int timeout_seconds;
    const eg_kv_t *headers; /* http_config.headers, in the order given */
    size_t nheaders;
    const eg_kv_t *params; /* http_config.params */
    size_t nparams;
    const char *created_at, *updated_at; /* RFC 3339 (eg_time_iso8601) */
} eg_bank_webhook_t;

/* What to create or change. On update only the fields whose has_* flag is set change; an
 * http_config replaces the whole of the old one. On create, absent fields take their defaults:
 * no secret, event_types ["consolidation.completed"], enabled, POST, 30 s, no headers or params. */
typedef struct eg_bank_webhook_spec_s {
    const char *url;
    bool has_url;
    const char *secret; /* NULL (with has_secret) = no secret / clear it */
    bool has_secret;
    const char *const *event_types;
    size_t ntypes;
    bool has_types;
    bool enabled, has_enabled;
    bool has_http_config;
    const char *method;      /* "POST" or "GET" (any case); NULL = POST */
    int64_t timeout_seconds; /* 1..EG_BANK_WEBHOOK_TIMEOUT_MAX; 0 = the default */
    const eg_kv_t *headers;
    size_t nheaders;
    const eg_kv_t *params;
    size_t nparams;
} eg_bank_webhook_spec_t;

/* Check a spec: 0, or EG_EINVAL with *field naming the offending field ("url", "secret",
 * "event_types", "http_config"), *sub the member of http_config or NULL, and *why a sentence. */
int eg_bank_webhook_spec_check(const eg_bank_webhook_spec_t *spec, bool create, const char **field,
                               const char **sub, const char **why);

/* err 0 and the endpoint; EG_ENOTFOUND (unknown id, or one of another bank); or a storage
 * error (wh NULL). */
typedef void (*eg_bank_webhook_fn)(void *udata, int err, const eg_bank_webhook_t *wh);
/* err 0 and the bank's n endpoints (oldest first), or a storage error. */
typedef void (*eg_bank_webhook_list_fn)(void *udata, int err, const eg_bank_webhook_t *whs,
                                        size_t n);

/* Each returns 0 (cb will run), or EG_EINVAL (bad workspace, bank id or spec: run
 * eg_bank_webhook_spec_check for the message) / EG_ENOTFOUND (an id that is not a UUID) /
 * EG_EUNAVAIL, and cb is never called.
 *
 * create makes the bank if it does not exist (banks are created lazily on writes, as eg_bank_put
 * does), then the endpoint; cb gets EG_ECONFLICT when the bank already has
 * EG_BANK_WEBHOOKS_MAX endpoints. */
int eg_bank_webhook_create(const char *ws_id, const char *bank_id,
                           const eg_bank_webhook_spec_t *spec, eg_bank_webhook_fn cb, void *udata);
int eg_bank_webhook_update(const char *ws_id, const char *bank_id, const char *id,
                           const eg_bank_webhook_spec_t *spec, eg_bank_webhook_fn cb, void *udata);
/* A bank that does not exist has no endpoints (nothing is created). */
int eg_bank_webhook_list(const char *ws_id, const char *bank_id, eg_bank_webhook_list_fn cb,
                         void *udata);
/* cb gets 0 or EG_ENOTFOUND. Delivery records are left to expire. */
int eg_bank_webhook_delete(const char *ws_id, const char *bank_id, const char *id,
                           eg_webhook_done_fn cb, void *udata);

/* Remove every endpoint of a bank (call after eg_bank_delete; deleting a bank deletes its
 * webhooks). cb gets 0 (also when there were none) or a storage error. */
int eg_bank_webhooks_drop(const char *ws_id, const char *bank_id, eg_webhook_done_fn cb,
                          void *udata);

/* One page of an endpoint's deliveries, newest first, as eg_webhook_deliveries (each delivery
 * also carries the url it was made for). limit 1..EG_BANK_WEBHOOK_LIMIT_MAX. EG_ENOTFOUND
 * through cb for an unknown id or an endpoint of another bank. */
int eg_bank_webhook_deliveries(const char *ws_id, const char *bank_id, const char *id,
                               const char *cursor, int limit, eg_webhook_deliveries_fn cb,
                               void *udata);

/* ---- bank events ----------------------------------------------------------------------- */

/* Emit a bank event into ws_id's log: type one of eg_bank_event_type_valid, status "completed"
 * or "failed", operation_id the operation that finished (1..256 bytes), data an object or NULL
 * (copied; the caller keeps ownership). The entity is {"id": operation_id, "bank_id",
 * "operation_id", "status", "timestamp" (now, Python isoformat), "data"}. Returns 0 and done runs
 * once the event and its deliveries are durable (as eg_event_emit), or EG_EINVAL / EG_EUNAVAIL and
 * done is never called. e.g. retain: type "retain.completed", data {document_id?, tags?}. */
int eg_bank_event_emit(const char *ws_id, const char *bank_id, const char *type,
                       const char *operation_id, const char *status, const cJSON *data,
                       eg_event_done_fn done, void *udata);

#endif
