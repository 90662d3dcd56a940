/* engram's live event routes: /engram/v1/events/stream (SSE) and /engram/v1/events/ws. */
#ifndef ENGRAM_FACES_ENGRAM_STREAM_API_H
#define ENGRAM_FACES_ENGRAM_STREAM_API_H

#include "engram/http.h"

/* GET /engram/v1/events/stream: SSE feed of the caller's workspace (?type=, ?entity_id=,
 * Last-Event-ID or ?last_event_id=). */
void eg__engram_events_stream(eg_req_t *req);

/* GET /engram/v1/events/ws: the same feed over a WebSocket, one text message per event. */
void eg__engram_events_ws(eg_req_t *req);

#endif
