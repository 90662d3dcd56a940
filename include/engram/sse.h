/* Server-Sent Events (WHATWG HTML §9.2) encoding, sans I/O: events and comments into an eg_buf_t
 * that the HTTP server streams as the body of a text/event-stream response. */
#ifndef ENGRAM_SSE_H
#define ENGRAM_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "engram/buf.h"

#define EG_SSE_CONTENT_TYPE "text/event-stream"

/* Headers an SSE response should carry besides its Content-Type: no caching, and no buffering
 * by nginx-style proxies (which would hold events back). */
#define EG_SSE_HEADERS "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"

/* Longest Last-Event-ID value accepted from a client (ids engram sends are far shorter). */
#define EG_SSE_MAX_ID 256

/* One event. Every field is optional: id and event are NULL when absent, retry_ms < 0 when
 * absent, data NULL for an event without data (the client then only updates its last event id
 * and retry; it dispatches nothing). data may hold any newlines: it is split into one "data:"
 * line per line, on \n, \r\n and \r, so that the client's EventSource rebuilds it with \n. */
typedef struct eg_sse_event_s {
    const char *id;
    const char *event;
    const char *data;
    size_t data_len;
    int64_t retry_ms;
} eg_sse_event_t;

/* Append one event, ended by a blank line. EG_EINVAL (nothing appended) when id or event holds a
 * CR, LF or NUL (they would end the field early, or make the client ignore the id), or when
 * event is empty. */
int eg_sse_encode(eg_buf_t *out, const eg_sse_event_t *ev);

/* Convenience: an event with only a type (may be NULL) and data (NUL-terminated). */
int eg_sse_encode_data(eg_buf_t *out, const char *event, const char *data);

/* Append a comment, e.g. a heartbeat ": ping\n\n" for text "ping", which keeps proxies from
 * timing the stream out and is ignored by clients. Each line of text becomes its own comment
 * line; text NULL gives ":\n\n". */
void eg_sse_encode_comment(eg_buf_t *out, const char *text);

/* Parse a Last-Event-ID header value: trimmed of spaces and tabs into out (cap bytes, NUL
 * included). 0 with out "" when value is NULL or blank; EG_EINVAL when the trimmed value holds a
 * control character or does not fit in out (or in EG_SSE_MAX_ID bytes). */
int eg_sse_last_event_id(const char *value, char *out, size_t cap);

#endif
