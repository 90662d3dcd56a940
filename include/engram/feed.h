/* Live event feeds for watchers: a workspace's events streamed to an SSE response (and, through
 * the same replay-then-live logic, to WebSocket connections), resumable from a cursor. */
#ifndef ENGRAM_FEED_H
#define ENGRAM_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "engram/http.h"

#define EG_FEED_HEARTBEAT_MS 15000

typedef struct eg_feed_opts_s {
    const char *const *types; /* type patterns (see eg_event_filter_t); none = all */
    size_t ntypes;
    const char *entity_id;     /* only events whose entity id matches, or NULL */
    const char *last_event_id; /* replay events after this id before going live, or NULL */
    uint64_t heartbeat_ms;     /* comment line interval; 0 = EG_FEED_HEARTBEAT_MS */
} eg_feed_opts_t;

/* Answer req with a text/event-stream of ws_id's events: first those after last_event_id (from
 * the log, oldest first), then live ones, each as "id: <event id>\nevent: <type>\ndata: <event
 * JSON>". Heartbeat comments keep proxies from closing the stream; a client too slow to keep up is
 * disconnected rather than buffered without bound; a pub/sub outage is bridged by replaying from
 * the log. Returns 0, or an error (EG_EINVAL for a bad option) after which the caller answers. */
int eg_feed_sse(eg_req_t *req, const char *ws_id, const eg_feed_opts_t *opts);

/* The same feed over a WebSocket: upgrades req (answering it with an error when the handshake
 * is bad) and sends each event's JSON as one text message. Returns 0 (the request is answered
 * either way), or EG_EINVAL / EG_EUNAVAIL before anything was sent. */
int eg_feed_ws(eg_req_t *req, const char *ws_id, const eg_feed_opts_t *opts);

/* Feeds open in this process (tests, metrics). */
size_t eg_feed_count(void);

#endif
