/* Per-workspace event log (a Redis Stream kept 30 days) and live fan-out (Redis pub/sub).
 *
 * An event is {"id","type","createdAt","workspaceId","entity"}. Its id, "evt_<ms>_<seq>", is the
 * stream entry id <ms>-<seq> with a prefix, so it is also the event's cursor: ids of one
 * workspace sort in append order (compare them with eg_event_id_cmp). See docs/events.md.
 *
 * Live watchers and replay: subscribe first (eg_events_watch), then replay from the last cursor
 * the client saw (eg_events_read), and drop live events whose id is not after the last replayed
 * one. A watcher told to resync (pub/sub was down, messages may be lost) replays the same way. */
#ifndef ENGRAM_EVENTS_H
#define ENGRAM_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define EG_EVENTS_RETENTION_MS (30LL * 24 * 60 * 60 * 1000)
#define EG_EVENTS_LIMIT_MAX    1000 /* most events one eg_events_read page returns */
#define EG_EVENT_ID_MAX        48   /* "evt_" + two 20-digit numbers + "_" + NUL fits */
#define EG_EVENT_TYPE_MAX      128  /* longest event type, in bytes */
#define EG_EVENT_TYPES_MAX     32   /* most type patterns in a filter or a query */

/* One event. Strings are NUL-terminated and valid only during the callback that gets them. */
typedef struct eg_event_s {
    const char *id;   /* "evt_<ms>_<seq>": the public id and the cursor */
    const char *type; /* e.g. "memory.created" */
    const char *json; /* the whole serialized event (what the API and the watchers send) */
    size_t len;       /* strlen(json) */
    /* Live events handed to watchers: a number unique to this fan-out in the process, the same
     * for every watcher that gets the event, so work done once per event (an encoded frame) can
     * be shared under it. 0 for events from the log or an emit. */
    uint64_t seq;
} eg_event_t;

/* Which live events a watcher gets. Types are exact ("memory.created"), a prefix wildcard
 * ("memory.*": every type starting "memory.") or "*"; no types = all. entity_id, when set, keeps
 * only events whose entity has a string "id" field equal to it. Copied by eg_events_watch. */
typedef struct eg_event_filter_s {
    const char *const *types;
    size_t ntypes;
    const char *entity_id;
} eg_event_filter_t;

/* A page of the log for eg_events_read. */
typedef struct eg_event_query_s {
    const char *after;        /* exclusive cursor (an event id from an earlier page), or NULL */
    const char *const *types; /* type patterns as in eg_event_filter_t; none = all */
    size_t ntypes;
    int limit; /* 1..EG_EVENTS_LIMIT_MAX */
    bool desc; /* newest first (after = older than the cursor); else oldest first */
    /* Only events whose entity has a string "id" equal to this (1..256 bytes), as the watcher
     * filter does; NULL = any. */
    const char *entity_id;
} eg_event_query_t;

typedef struct eg_event_page_s {
    const eg_event_t *events;
    size_t n;
    /* Cursor for the next page (pass as query.after), NULL when has_more is false. A page may be
     * short, even empty, with has_more true when a type filter skipped many events. */
    const char *next_cursor;
    bool has_more;
} eg_event_page_t;

typedef struct eg_watch_s eg_watch_t;

/* eg_event_emit finished: err 0 and the new event's id once the event is stored, or an error
 * (EG_EUNAVAIL, EG_ESTORETIMEOUT, EG_EREDIS) and event_id NULL. */
typedef void (*eg_event_done_fn)(void *udata, int err, const char *event_id);

/* eg_event_emit_ev finished: like eg_event_done_fn with the whole stored event (NULL on error). */
typedef void (*eg_event_emitted_fn)(void *udata, int err, const eg_event_t *ev);

/* A live event for a watcher; or, with resync true and ev NULL, a notice that the pub/sub
 * connection came back after an outage and events may have been missed: replay from the log. */
typedef void (*eg_event_fn)(void *udata, const eg_event_t *ev, bool resync);

/* eg_events_read finished: err 0 and a page, or an error and page NULL. */
typedef void (*eg_event_page_fn)(void *udata, int err, const eg_event_page_t *page);

/* eg_events_get finished: err 0 and the event, EG_ENOTFOUND, or a storage error (ev NULL). */
typedef void (*eg_event_get_fn)(void *udata, int err, const eg_event_t *ev);

/* True when type matches ^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$ and is at most EG_EVENT_TYPE_MAX. */
bool eg_event_type_valid(const char *type);

/* True for a valid type, a valid type followed by ".*", or "*". */
bool eg_event_type_pattern_valid(const char *pattern);

/* Does type match pattern (exact, "prefix.*" or "*")? */
bool eg_event_type_match(const char *pattern, const char *type);

/* Parse an event id "evt_<ms>_<seq>" into its stream id parts. 0 or EG_EINVAL. */
int eg_event_id_parse(const char *id, uint64_t *ms, uint64_t *seq);

/* Order two event ids of one workspace (<0, 0, >0); an invalid id sorts before every valid one. */
int eg_event_id_cmp(const char *a, const char *b);

/* The XADD MINID threshold that keeps EG_EVENTS_RETENTION_MS before now_ms: "<ms>-0". */
void eg_events_minid(int64_t now_ms, char out[32]);

/* Append an event to ws_id's log (trimming entries older than the retention window) and publish
 * it to live watchers in every process, in one round trip. type must be eg_event_type_valid,
 * entity a JSON object (serialized before returning: the caller keeps ownership). Returns 0 and
 * done runs once the event is durable, or EG_EINVAL / EG_EUNAVAIL and done is never called. */
int eg_event_emit(const char *ws_id, const char *type, const cJSON *entity, eg_event_done_fn done,
                  void *udata);

/* Same, handing the stored event (its JSON as the API shows it) to done. */
int eg_event_emit_ev(const char *ws_id, const char *type, const cJSON *entity,
                     eg_event_emitted_fn done, void *udata);

/* The emit hook: called once per stored event, after it is durable and before its emitter's
 * callback, with the event (valid during the call only). The hook calls done(ctx, err) exactly
 * once, now or later; the emitter's callback then runs, with err when it is non-zero (the
 * event is stored, but what the hook had to do with it is not: the emitter should retry). The
 * webhook engine uses it to queue deliveries before an event is acknowledged. */
typedef void (*eg_events_hook_done_fn)(void *ctx, int err);
typedef void (*eg_events_emit_hook_fn)(const char *ws_id, const eg_event_t *ev,
                                       eg_events_hook_done_fn done, void *ctx);

/* Install (or, with NULL, remove) the emit hook; one per process. */
void eg_events_set_emit_hook(eg_events_emit_hook_fn fn);

/* Watch ws_id's live events. The first watcher of a workspace in this process subscribes to its
 * channel; the last one to leave unsubscribes. filter may be NULL (everything). Events arrive
 * once subscribed in Redis (not necessarily before the first emit after this call). NULL on bad
 * arguments or when the store is not initialised. */
eg_watch_t *eg_events_watch(const char *ws_id, const eg_event_filter_t *filter,
                            eg_event_fn on_event, void *udata);

/* Stop a watcher (NULL is a no-op). Safe inside its own or any other on_event callback: no
 * callback reaches a watcher after it was unwatched. */
void eg_events_unwatch(eg_watch_t *w);

/* Live watchers of ws_id in this process (for tests and metrics). */
size_t eg_events_watchers(const char *ws_id);

/* Drop every watcher without calling them (process exit, tests); unsubscribes their channels. */
void eg_events_shutdown(void);

/* Read one page of ws_id's log. 0 (cb will run), or EG_EINVAL (bad cursor, limit or type
 * pattern) / EG_EUNAVAIL and cb is never called. */
int eg_events_read(const char *ws_id, const eg_event_query_t *q, eg_event_page_fn cb, void *udata);

/* Fetch one event of ws_id by id; an id of another workspace gives EG_ENOTFOUND through cb.
 * 0 (cb will run), or EG_ENOTFOUND for a malformed id, EG_EINVAL for a bad ws_id, EG_EUNAVAIL;
 * then cb is never called. */
int eg_events_get(const char *ws_id, const char *id, eg_event_get_fn cb, void *udata);

#endif
