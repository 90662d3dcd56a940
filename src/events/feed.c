/* SSE feeds of a workspace's events.
 *
 * Order of operations avoids both gaps and duplicates: the watcher is registered first, then the
 * log is replayed from the client's cursor; live events that arrive during the replay are held
 * and sent afterwards, skipping any the replay already covered (ids are ordered cursors). A
 * resync notice (pub/sub was down) starts another replay from the last id sent.
 *
 * Lifetime: the feed outlives its request until its heartbeat timer has closed and no log read
 * is in flight; `stopped` guards every callback after the stream ended.
 *
 * Fan-out: a live event goes to every feed of its workspace in one dispatch, so it is encoded
 * once — one WebSocket frame that each connection queues by reference, one SSE event that each
 * stream copies — and not once per client. */
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "engram/error.h"
#include "engram/events.h"
#include "engram/feed.h"
#include "engram/log.h"
#include "engram/sse.h"
#include "engram/util.h"
#include "engram/ws.h"

#define FEED_REPLAY_PAGE 500
#define FEED_MAX_PENDING 10000

typedef struct feed_item_s {
    struct feed_item_s *next;
    char id[EG_EVENT_ID_MAX];
    char *type;
    char *json;
    size_t len;
} feed_item_t;

typedef struct feed_s {
    eg_req_t *req;     /* SSE: NULL once the stream ended */
    eg_wsconn_t *conn; /* WebSocket: NULL once the connection is gone */
    eg_watch_t *watch;
    uv_timer_t heartbeat;
    char ws_id[40];
    char last_id[EG_EVENT_ID_MAX]; /* last event sent (or the client's cursor) */
    char *types[EG_EVENT_TYPES_MAX];
    size_t ntypes;
    char *entity_id; /* entity filter, or NULL */
    bool replaying;
    bool replay_again;
    feed_item_t *pending, **pending_tail;
    size_t npending;
    int reads_inflight;
    bool stopped;
    bool timer_closed;
    eg_buf_t scratch;
} feed_t;

static size_t g_feeds;

/* The live event being fanned out (eg_event_t.seq), encoded by the first feed that needs each
 * form; replaced by the next live event, released with the last feed. */
static struct {
    uint64_t seq;
    eg_ws_frame_t *ws; /* its WebSocket text frame, or NULL */
    eg_buf_t sse;      /* its SSE event, or empty */
} g_live;

static void live_reset(uint64_t seq)
{
    eg_ws_frame_unref(g_live.ws); /* connections still sending it hold their own reference */
    g_live.ws = NULL;
    eg_buf_clear(&g_live.sse);
    g_live.seq = seq;
}

static eg_ws_frame_t *live_ws_frame(uint64_t seq, const char *json, size_t len)
{
    if (g_live.seq != seq)
        live_reset(seq);
    if (g_live.ws == NULL)
        g_live.ws = eg_ws_frame_new(EG_WS_OP_TEXT, json, len);
    return g_live.ws;
}

/* NULL when the event cannot be encoded (a bad id or type: no feed can send it). */
static const eg_buf_t *live_sse(uint64_t seq, const eg_sse_event_t *ev)
{
    if (g_live.seq != seq)
        live_reset(seq);
    if (g_live.sse.len == 0 && eg_sse_encode(&g_live.sse, ev) != 0)
        return NULL;
    return &g_live.sse;
}

static void feed_end(feed_t *f);

static void feed_maybe_free(feed_t *f)
{
    if (!f->stopped || f->reads_inflight > 0 || !f->timer_closed)
        return;
    while (f->pending) {
        feed_item_t *it = f->pending;
        f->pending = it->next;
        free(it->type);
        free(it->json);
        free(it);
    }
    for (size_t i = 0; i < f->ntypes; i++)
        free(f->types[i]);
    free(f->entity_id);
    eg_buf_free(&f->scratch);
    free(f);
    if (--g_feeds == 0) {
        live_reset(0);
        eg_buf_free(&g_live.sse);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    feed_t *f = h->data;
    f->timer_closed = true;
    feed_maybe_free(f);
}

/* After a write: a client too slow to keep up, or gone, ends the feed. */
static void feed_wrote(feed_t *f, int rc)
{
    if (rc == EG_EBUSY) {
        eg_log_warn("event feed for workspace %s: client too slow, closing the stream", f->ws_id);
        feed_end(f);
    } else if (rc != 0) {
        feed_end(f);
    }
}

/* Write what was encoded into scratch (SSE only). */
static void feed_write(feed_t *f)
{
    int rc = eg_res_stream_write(f->req, f->scratch.data, f->scratch.len);

    eg_buf_clear(&f->scratch);
    feed_wrote(f, rc);
}

/* Send one event unless the replay already did; seq is the live event's (0 for the log's). */
static void feed_send(feed_t *f, const char *id, const char *type, const char *json, size_t len,
                      uint64_t seq)
{
    eg_sse_event_t ev = {.id = id, .event = type, .data = json, .data_len = len, .retry_ms = -1};
    const eg_buf_t *sse = NULL;
    size_t idlen;
    int rc;

    if (f->stopped)
        return;
    if (f->last_id[0] && eg_event_id_cmp(id, f->last_id) <= 0)
        return; /* already sent by the replay */
    if (f->req) {
        /* SSE: the live event's shared encoding, or this feed's own for an event from the log. */
        if (seq)
            sse = live_sse(seq, &ev);
        else if (eg_sse_encode(&f->scratch, &ev) == 0)
            sse = &f->scratch;
        if (sse == NULL)
            return;
    }
    idlen = strnlen(id, sizeof(f->last_id) - 1);
    memcpy(f->last_id, id, idlen);
    f->last_id[idlen] = '\0';
    if (f->conn) /* one text message per event */
        rc = seq ? eg_ws_send_frame(f->conn, live_ws_frame(seq, json, len))
                 : eg_ws_send_text(f->conn, json, len);
    else
        rc = eg_res_stream_write(f->req, sse->data, sse->len);
    eg_buf_clear(&f->scratch);
    feed_wrote(f, rc);
}

static void replay_next(feed_t *f);

static void send_pending(feed_t *f)
{
    while (f->pending && !f->stopped) {
        feed_item_t *it = f->pending;
        f->pending = it->next;
        f->npending--;
        feed_send(f, it->id, it->type, it->json, it->len, 0);
        free(it->type);
        free(it->json);
        free(it);
    }
    if (f->pending == NULL)
        f->pending_tail = &f->pending;
}

static void on_page(void *udata, int err, const eg_event_page_t *page)
{
    feed_t *f = udata;

    f->reads_inflight--;
    if (f->stopped) {
        feed_maybe_free(f);
        return;
    }
    if (err) {
        /* The client reconnects with Last-Event-ID and gets the rest then. */
        eg_log_warn("event feed replay for workspace %s failed: %s", f->ws_id, eg_strerror(err));
        feed_end(f);
        return;
    }
    for (size_t i = 0; i < page->n && !f->stopped; i++)
        feed_send(f, page->events[i].id, page->events[i].type, page->events[i].json,
                  page->events[i].len, 0);
    if (f->stopped)
        return;
    if (page->has_more && page->next_cursor) {
        /* Type filters can skip events: move the cursor past them too. */
        if (eg_event_id_cmp(page->next_cursor, f->last_id) > 0)
            snprintf(f->last_id, sizeof(f->last_id), "%s", page->next_cursor);
        replay_next(f);
        return;
    }
    if (f->replay_again) {
        f->replay_again = false;
        replay_next(f);
        return;
    }
    f->replaying = false;
    send_pending(f);
}

static void replay_next(feed_t *f)
{
    eg_event_query_t q = {
        .after = f->last_id[0] ? f->last_id : NULL,
        .types = (const char *const *)f->types,
        .ntypes = f->ntypes,
        .limit = FEED_REPLAY_PAGE,
        .desc = false,
        .entity_id = f->entity_id,
    };
    int rc;

    f->replaying = true;
    rc = eg_events_read(f->ws_id, &q, on_page, f);
    if (rc != 0) {
        eg_log_warn("event feed replay for workspace %s failed: %s", f->ws_id, eg_strerror(rc));
        feed_end(f);
        return;
    }
    f->reads_inflight++;
}

static void on_event(void *udata, const eg_event_t *ev, bool resync)
{
    feed_t *f = udata;

    if (f->stopped)
        return;
    if (resync) {
        if (f->replaying)
            f->replay_again = true;
        else if (f->last_id[0])
            replay_next(f);
        return;
    }
    if (!f->replaying) {
        feed_send(f, ev->id, ev->type, ev->json, ev->len, ev->seq);
        return;
    }
    if (f->npending >= FEED_MAX_PENDING) {
        eg_log_warn("event feed for workspace %s: too many events during replay", f->ws_id);
        feed_end(f);
        return;
    }
    feed_item_t *it = eg_xcalloc(1, sizeof(*it));
    snprintf(it->id, sizeof(it->id), "%s", ev->id);
    it->type = eg_xstrdup(ev->type);
    it->json = eg_xstrndup(ev->json, ev->len);
    it->len = ev->len;
    *f->pending_tail = it;
    f->pending_tail = &it->next;
    f->npending++;
}

static void on_heartbeat(uv_timer_t *t)
{
    feed_t *f = t->data;

    if (f->stopped || f->conn)
        return; /* WebSocket connections have protocol pings */
    eg_sse_encode_comment(&f->scratch, "ping");
    feed_write(f);
}

static void feed_end(feed_t *f)
{
    eg_req_t *req = f->req;
    eg_wsconn_t *ws = f->conn;

    if (f->stopped)
        return;
    f->stopped = true;
    f->req = NULL;
    f->conn = NULL;
    if (ws)
        eg_ws_close(ws, EG_WS_CLOSE_TRY_AGAIN, "event feed ended");
    eg_events_unwatch(f->watch);
    f->watch = NULL;
    uv_timer_stop(&f->heartbeat);
    uv_close((uv_handle_t *)&f->heartbeat, on_timer_closed);
    if (req)
        eg_res_stream_end(req); /* may release req */
}

static void on_stream_stop(eg_req_t *req)
{
    feed_end(req->udata);
}

static int feed_check(const eg_feed_opts_t *opts)
{
    uint64_t ms, seq;

    if (opts->ntypes > EG_EVENT_TYPES_MAX)
        return EG_EINVAL;
    for (size_t i = 0; i < opts->ntypes; i++)
        if (!eg_event_type_pattern_valid(opts->types[i]))
            return EG_EINVAL;
    if (opts->last_event_id && opts->last_event_id[0] &&
        eg_event_id_parse(opts->last_event_id, &ms, &seq) != 0)
        return EG_EINVAL;
    return 0;
}

/* A feed watching ws_id, not yet attached to a client; NULL when the store is down. */
static feed_t *feed_new(uv_loop_t *loop, const char *ws_id, const eg_feed_opts_t *opts)
{
    feed_t *f = eg_xcalloc(1, sizeof(*f));

    g_feeds++;
    f->pending_tail = &f->pending;
    snprintf(f->ws_id, sizeof(f->ws_id), "%s", ws_id);
    for (size_t i = 0; i < opts->ntypes; i++)
        f->types[f->ntypes++] = eg_xstrdup(opts->types[i]);
    if (opts->last_event_id && opts->last_event_id[0])
        snprintf(f->last_id, sizeof(f->last_id), "%s", opts->last_event_id);
    if (opts->entity_id)
        f->entity_id = eg_xstrdup(opts->entity_id);

    eg_event_filter_t filter = {
        .types = (const char *const *)f->types,
        .ntypes = f->ntypes,
        .entity_id = opts->entity_id,
    };
    /* Watch before replaying, so nothing emitted in between is missed. */
    f->watch = eg_events_watch(ws_id, &filter, on_event, f);
    if (f->watch == NULL) {
        f->stopped = true;
        f->timer_closed = true;
        feed_maybe_free(f);
        return NULL;
    }
    uv_timer_init(loop, &f->heartbeat);
    f->heartbeat.data = f;
    return f;
}

/* Attached: start heartbeats and the replay. */
static void feed_go(feed_t *f, const eg_feed_opts_t *opts)
{
    uint64_t hb = opts->heartbeat_ms ? opts->heartbeat_ms : EG_FEED_HEARTBEAT_MS;

    if (f->stopped)
        return;
    if (f->req)
        uv_timer_start(&f->heartbeat, on_heartbeat, hb, hb);
    if (f->last_id[0])
        replay_next(f);
}

int eg_feed_sse(eg_req_t *req, const char *ws_id, const eg_feed_opts_t *opts)
{
    feed_t *f;
    int rc = feed_check(opts);

    if (rc)
        return rc;
    f = feed_new(eg_server_loop(req->server), ws_id, opts);
    if (f == NULL)
        return EG_EUNAVAIL;
    f->req = req;
    req->udata = f;
    req->on_stream_stop = on_stream_stop;
    eg_res_header(req, "Cache-Control", "no-cache");
    eg_res_header(req, "X-Accel-Buffering", "no");
    eg_res_stream_begin(req, 200, EG_SSE_CONTENT_TYPE);
    eg_sse_encode_comment(&f->scratch, "connected");
    feed_write(f);
    feed_go(f, opts);
    return 0;
}

static void on_ws_message(eg_wsconn_t *ws, int op, const char *data, size_t len, void *udata)
{
    /* The feed is one-way: client messages are accepted and ignored (keepalives, acks). */
}

static void on_ws_close(eg_wsconn_t *ws, int code, void *udata)
{
    feed_t *f = udata;

    f->conn = NULL; /* gone: feed_end must not touch it */
    feed_end(f);
}

static const eg_ws_handler_t feed_ws_handler = {
    .on_message = on_ws_message,
    .on_close = on_ws_close,
};

int eg_feed_ws(eg_req_t *req, const char *ws_id, const eg_feed_opts_t *opts)
{
    eg_server_t *srv = req->server;
    feed_t *f;
    int rc = feed_check(opts);

    if (rc)
        return rc;
    f = feed_new(eg_server_loop(srv), ws_id, opts);
    if (f == NULL)
        return EG_EUNAVAIL;
    f->conn = eg_ws_accept(req, &feed_ws_handler, f);
    if (f->conn == NULL) {
        /* eg_ws_accept answered the request (bad handshake): drop the feed quietly. */
        feed_end(f);
        return 0;
    }
    feed_go(f, opts);
    return 0;
}

size_t eg_feed_count(void)
{
    return g_feeds;
}
