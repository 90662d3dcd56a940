/* Signed webhook delivery, built once in the core: endpoints per workspace, one queued delivery
 * per (event, matching endpoint), signing per convention (Standard Webhooks, Fency, Hindsight),
 * retries on the Standard Webhooks schedule, and an attempt log per delivery.
 *
 * How events reach deliveries: the event log calls the emit hook (eg_events_set_emit_hook) once
 * the event is durable and before the emitter hears of it; the hook writes the delivery records
 * and pushes their jobs, so an acknowledged event never loses its deliveries (see webhooks.c).
 *
 * Bank endpoints (engram/bank_webhooks.h) are a second kind, delivered by the same engine.
 *
 * Keys (docs/keyspace.md, "Webhooks"), all in the workspace's slot {w:<ws_id>}. */
#ifndef ENGRAM_WEBHOOKS_H
#define ENGRAM_WEBHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define EG_WEBHOOK_QUEUE        "webhooks"
#define EG_WEBHOOK_URL_MAX      2048
#define EG_WEBHOOK_DESC_MAX     1024
#define EG_WEBHOOK_SECRET_MAX   256
#define EG_WEBHOOK_TYPES_MAX    32                        /* event type patterns per endpoint */
#define EG_WEBHOOK_ENDPOINTS    100                       /* endpoints per workspace */
#define EG_WEBHOOK_ATTEMPTS     8                         /* first attempt + 7 retries */
#define EG_WEBHOOK_TIMEOUT_MS   15000                     /* per attempt */
#define EG_WEBHOOK_RETENTION_MS (30LL * 24 * 3600 * 1000) /* delivery records are kept */
#define EG_WEBHOOK_LIMIT_MAX    100                       /* deliveries per page */

typedef enum {
    EG_WEBHOOK_STANDARD = 0, /* webhook-id / webhook-timestamp / webhook-signature: v1,<b64> */
    EG_WEBHOOK_FENCY,        /* x-fency-signature: sha256=<hex> */
    EG_WEBHOOK_HINDSIGHT,    /* X-Hindsight-Signature: sha256=<hex> */
} eg_webhook_signing_t;

/* ---- pure helpers (no I/O; unit-tested) ------------------------------------------------ */

/* "standard" | "fency" | "hindsight" → 0 and *out, or EG_EINVAL. */
int eg_webhook_signing_parse(const char *s, eg_webhook_signing_t *out);
const char *eg_webhook_signing_name(eg_webhook_signing_t s);

/* A fresh secret: "whsec_" + base64 of 24 random bytes (standard), or 32 random base62
 * characters (fency, hindsight). out has at least 64 bytes. */
void eg_webhook_secret_new(eg_webhook_signing_t s, char out[64]);

/* Is secret acceptable for this convention? standard: "whsec_" + base64 of 16..64 bytes;
 * others: 8..EG_WEBHOOK_SECRET_MAX printable ASCII characters. */
bool eg_webhook_secret_valid(eg_webhook_signing_t s, const char *secret);

/* "sha256=" + lowercase hex HMAC-SHA256(key = secret bytes, msg = body): the Fency and Hindsight
 * header value (72 bytes with the NUL). */
void eg_webhook_sign_hex(const char *secret, const void *body, size_t len, char out[72]);

/* Standard Webhooks: "v1," + base64 HMAC-SHA256(base64-decoded secret after "whsec_",
 * "<msg_id>.<timestamp>.<body>"). out needs 64 bytes. 0, or EG_EINVAL for a bad secret. */
int eg_webhook_sign_standard(const char *secret, const char *msg_id, int64_t timestamp,
                             const void *body, size_t len, char out[64]);

/* Delay before the attempt after failed attempt number `attempt` (1-based) on the schedule
 * 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, times scale, with ±10% jitter from rnd (any 32-bit
 * value; 0x80000000 gives no jitter). -1 when attempt was the last one. */
int64_t eg_webhook_retry_delay_ms(unsigned attempt, double scale, uint32_t rnd);

/* ---- endpoints ------------------------------------------------------------------------- */

/* An endpoint as stored. Strings are valid during the callback only. */
typedef struct eg_webhook_s {
    const char *id; /* "wh_" + 24 base62 */
    const char *url;
    const char *const *event_types; /* patterns as in eg_event_filter_t; none = every event */
    size_t ntypes;
    eg_webhook_signing_t signing;
    const char *secret;        /* the whole secret: only in eg_webhook_create's answer, else NULL */
    const char *secret_prefix; /* enough to recognise it: "whsec_ab12…" */
    bool enabled;
    const char *description;     /* NULL when none */
    const char *disabled_reason; /* NULL unless the engine disabled it (e.g. on a 410) */
    const char *created_at, *updated_at;
} eg_webhook_t;

/* What to create or change. For an update, only the fields whose has_* flag is set change. */
typedef struct eg_webhook_spec_s {
    const char *url;
    bool has_url;
    const char *const *event_types;
    size_t ntypes;
    bool has_types;
    eg_webhook_signing_t signing; /* create only */
    const char *secret;           /* create only; NULL = generate one */
    bool enabled, has_enabled;
    const char *description; /* NULL with has_description = clear it */
    bool has_description;
} eg_webhook_spec_t;

/* Check a spec: 0, or EG_EINVAL with *field naming the offending field and *why a sentence. */
int eg_webhook_spec_check(const eg_webhook_spec_t *spec, bool create, const char **field,
                          const char **why);

/* err 0 and the endpoint; EG_ENOTFOUND; or a storage error (wh NULL). */
typedef void (*eg_webhook_fn)(void *udata, int err, const eg_webhook_t *wh);
/* err 0 and n endpoints (oldest first), or a storage error. */
typedef void (*eg_webhook_list_fn)(void *udata, int err, const eg_webhook_t *whs, size_t n);
/* err 0, EG_ENOTFOUND, EG_ECONFLICT, or a storage error. */
typedef void (*eg_webhook_done_fn)(void *udata, int err);

/* Each returns 0 (cb will run), or EG_EINVAL (bad spec/workspace; run eg_webhook_spec_check for
 * a message) / EG_ENOTFOUND (malformed id) / EG_EUNAVAIL, and cb is never called. create
 * answers EG_ECONFLICT through cb when the workspace already has EG_WEBHOOK_ENDPOINTS. */
int eg_webhook_create(const char *ws_id, const eg_webhook_spec_t *spec, eg_webhook_fn cb,
                      void *udata);
int eg_webhook_update(const char *ws_id, const char *id, const eg_webhook_spec_t *spec,
                      eg_webhook_fn cb, void *udata);
int eg_webhook_get(const char *ws_id, const char *id, eg_webhook_fn cb, void *udata);
int eg_webhook_list(const char *ws_id, eg_webhook_list_fn cb, void *udata);
int eg_webhook_delete(const char *ws_id, const char *id, eg_webhook_done_fn cb, void *udata);

/* ---- deliveries ------------------------------------------------------------------------ */

/* One delivery of one event to one endpoint. attempts[i] is one attempt as a JSON object
 * {at, status_code, latency_ms, response_headers, error} (a bank endpoint's also response_body,
 * its first 1 KiB), oldest first. */
typedef struct eg_webhook_delivery_s {
    const char *id; /* "msg_..." — also the Standard Webhooks webhook-id, stable across retries */
    const char *event_id, *event_type;
    const char *status;          /* pending | retrying | succeeded | failed */
    const char *next_attempt_at; /* NULL when none is scheduled */
    const char *created_at, *updated_at;
    const char *url; /* the URL it was made for (bank endpoints; NULL for workspace ones) */
    const char *const *attempts;
    size_t nattempts;
} eg_webhook_delivery_t;

/* err 0 and a page (newest first) with next_cursor (NULL on the last page), EG_ENOTFOUND for an
 * unknown endpoint, or a storage error. */
typedef void (*eg_webhook_deliveries_fn)(void *udata, int err, const eg_webhook_delivery_t *ds,
                                         size_t n, const char *next_cursor);

/* One page of an endpoint's deliveries. cursor: a next_cursor from an earlier page or NULL;
 * limit 1..EG_WEBHOOK_LIMIT_MAX. 0 or EG_EINVAL (bad cursor/limit) / EG_ENOTFOUND /
 * EG_EUNAVAIL (cb not called). */
int eg_webhook_deliveries(const char *ws_id, const char *id, const char *cursor, int limit,
                          eg_webhook_deliveries_fn cb, void *udata);

/* Re-queue a failed delivery by hand (a fresh retry schedule). cb gets 0, EG_ENOTFOUND, or
 * EG_ECONFLICT when the delivery is not failed. */
int eg_webhook_retry(const char *ws_id, const char *id, const char *delivery_id,
                     eg_webhook_done_fn cb, void *udata);

/* ---- the delivery engine --------------------------------------------------------------- */

/* Start delivering on loop (after eg_store_init): opens the "webhooks" queue, creates the
 * outbound client (ENGRAM_OUTBOUND_*), installs the event emit hook. Reads
 * ENGRAM_WEBHOOK_RETRY_SCALE (default 1.0) and ENGRAM_WEBHOOK_VISIBILITY (queue takeover
 * timeout, default 60s). 0, or EG_EINVAL with a log line for a bad setting. */
int eg_webhooks_start(uv_loop_t *loop);

/* Stop: remove the hook, let running attempts finish (up to a few seconds), close the queue and
 * the client, then done(udata). Call before eg_store_shutdown. */
void eg_webhooks_stop(void (*done)(void *), void *udata);

#endif
