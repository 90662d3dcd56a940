/* engram's live event routes: parse the query, hand the stream to the core feed. */
#include <string.h>

#include "engram/error.h"
#include "engram/events.h"
#include "engram/feed.h"
#include "engram/sse.h"
#include "engram/util.h"
#include "stream_api.h"

/* Parse the feed options shared by the SSE and WebSocket routes; answers the request and
 * returns false on bad input. */
static bool parse_opts(eg_req_t *req, const char **types, char *last_id, size_t last_id_cap,
                       eg_feed_opts_t *out)
{
    eg_feed_opts_t opts;
    const char *heartbeat;
    size_t ntypes;

    memset(&opts, 0, sizeof(opts));
    ntypes = eg_req_query_all(req, "type", types, EG_EVENT_TYPES_MAX);
    if (ntypes > EG_EVENT_TYPES_MAX) {
        eg_res_error(req, EG_EINVAL, "at most %d 'type' filters are allowed", EG_EVENT_TYPES_MAX);
        return false;
    }
    for (size_t i = 0; i < ntypes; i++) {
        if (!eg_event_type_pattern_valid(types[i])) {
            eg_res_error(req, EG_EINVAL,
                         "query parameter 'type' has an invalid event type pattern: %s", types[i]);
            return false;
        }
    }
    if (eg_sse_last_event_id(eg_req_header(req, "Last-Event-ID"), last_id, last_id_cap) != 0) {
        eg_res_error(req, EG_EINVAL, "header 'Last-Event-ID' is malformed");
        return false;
    }
    if (last_id[0] == '\0' && eg_req_query(req, "last_event_id"))
        snprintf(last_id, last_id_cap, "%s", eg_req_query(req, "last_event_id"));
    if (last_id[0]) {
        uint64_t ms, seq;
        if (eg_event_id_parse(last_id, &ms, &seq) != 0) {
            eg_res_error(req, EG_EINVAL, "'%s' is not an event id (expected evt_<ms>_<seq>)",
                         last_id);
            return false;
        }
    }
    heartbeat = eg_req_query(req, "heartbeat_ms");
    if (heartbeat) {
        int64_t v;
        if (eg_parse_int64(heartbeat, 100, 600000, &v) != 0) {
            eg_res_error(req, EG_EINVAL,
                         "query parameter 'heartbeat_ms' must be an integer from 100 to 600000");
            return false;
        }
        opts.heartbeat_ms = (uint64_t)v;
    }
    opts.types = types;
    opts.ntypes = ntypes;
    opts.entity_id = eg_req_query(req, "entity_id");
    opts.last_event_id = last_id[0] ? last_id : NULL;
    *out = opts;
    return true;
}

/* Both routes: parse, then hand the request to the feed (SSE or WebSocket). */
static void open_feed(eg_req_t *req, int (*feed)(eg_req_t *, const char *, const eg_feed_opts_t *))
{
    const char *types[EG_EVENT_TYPES_MAX];
    char last_id[EG_SSE_MAX_ID + 1];
    eg_feed_opts_t opts;
    int rc;

    if (!parse_opts(req, types, last_id, sizeof(last_id), &opts))
        return;
    rc = feed(req, req->auth.workspace_id, &opts);
    if (rc != 0)
        eg_res_error(req, rc, "cannot open the event feed: %s", eg_strerror(rc));
}

void eg__engram_events_stream(eg_req_t *req)
{
    open_feed(req, eg_feed_sse);
}

void eg__engram_events_ws(eg_req_t *req)
{
    open_feed(req, eg_feed_ws);
}
