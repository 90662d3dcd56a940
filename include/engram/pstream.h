/* Progress streams: short-lived channels that carry an agent task's progress messages to a
 * browser. A stream lives EG_PSTREAM_TTL_MS from creation; every message appended to it is kept
 * in a durable buffer in Redis (so any engramd process can serve the stream's SSE connection and
 * replay what was sent before it connected) and published live to the connections of the stream
 * in every process. */
#ifndef ENGRAM_PSTREAM_H
#define ENGRAM_PSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/http.h"

#define EG_PSTREAM_TTL_MS    (10 * 60 * 1000) /* default lifetime (ENGRAM_FENCY_STREAM_TTL) */
#define EG_PSTREAM_ID_MAX    40               /* "str_" + 32 hex + NUL */
#define EG_PSTREAM_TOKEN_MAX 80            /* "<32 hex of the id>." + 43 base62 characters + NUL */
#define EG_PSTREAM_MSG_MAX   (1024 * 1024) /* largest message accepted by eg_pstream_append */

/* A stream as created or resolved. Strings belong to the callee and are valid during the
 * callback only. */
typedef struct eg_pstream_s {
    const char *id, *token, *ws_id;
    int64_t created_us, expires_us;
} eg_pstream_t;

/* The lifetime of new streams in ms: ENGRAM_FENCY_STREAM_TTL (a duration, read once) or
 * EG_PSTREAM_TTL_MS. */
uint64_t eg_pstream_ttl_ms(void);

/* Is id "str_" + 32 lowercase hex characters? */
bool eg_pstream_id_valid(const char *id);

/* Create a stream of workspace ws_id with a fresh id and random token (the id's 32 hex digits, a
 * dot and 256 random bits in base62, so a token alone names its stream). cb(udata, err, stream):
 * 0 with the stream, or a store error. Returns 0 (cb will run) or an error (cb will not). */
int eg_pstream_create(const char *ws_id, void (*cb)(void *, int, const eg_pstream_t *),
                      void *udata);

/* Resolve id + token: err 0, EG_ENOTFOUND (unknown/expired), EG_EAUTH (wrong token or
 * workspace). id NULL: the stream the token names. Returns 0 (cb will run), EG_ENOTFOUND for a
 * malformed id or EG_EAUTH for a malformed token (checked at once), or EG_EINVAL / EG_EUNAVAIL (cb
 * will not). */
int eg_pstream_check(const char *ws_id, const char *id, const char *token,
                     void (*cb)(void *, int, const eg_pstream_t *), void *udata);

/* Append one message (a JSON object, e.g. the AGENT_TASK_PROGRESS_ITEM_UPDATED one): durable in
 * the stream's buffer and pushed to the live SSE connection(s) of that stream in any process.
 * cb(udata, err) may be NULL: EG_ENOTFOUND when the stream expired (the caller goes on), EG_EINVAL
 * for a message that is not an object or is over EG_PSTREAM_MSG_MAX, or a store error. Returns 0
 * (cb will run) or an error (cb will not). */
int eg_pstream_append(const char *id, const cJSON *msg, void (*cb)(void *, int), void *udata);

/* SSE options: how often the keep-alive comment is sent (0 = 15 s). */
typedef struct eg_pstream_sse_opts_s {
    uint64_t heartbeat_ms;
    const char *last_event_id; /* Last-Event-ID header value (a sequence number), or NULL */
} eg_pstream_sse_opts_t;

/* Answer req with the text/event-stream of stream s (already checked): replays the buffered
 * messages after Last-Event-ID, then live ones, each as "id: <seq>\ndata: <base64 of the
 * JSON>\n\n"; ": ping" comments in between; a STREAM_TIMEOUT message and the end of the response
 * when the stream expires; a client too slow to read is disconnected. Extra response headers
 * (CORS) must already be set on req. 0, or an error before anything was sent (the caller
 * answers). */
int eg_pstream_sse(eg_req_t *req, const eg_pstream_t *s, const eg_pstream_sse_opts_t *opts);

/* Answer req with a 200 text/event-stream holding one message {type, streamId, timestamp} (e.g.
 * "STREAM_NOT_FOUND") and end it. */
void eg_pstream_sse_once(eg_req_t *req, const char *type, const char *stream_id);

/* Encode one SSE event "id: <seq>\ndata: <base64 of json>\n\n" into out (sans I/O, for tests). */
void eg_pstream_sse_encode(eg_buf_t *out, uint64_t seq, const char *json, size_t len);

/* SSE connections of progress streams open in this process (tests, metrics). */
size_t eg_pstream_sse_count(void);

#endif
