/* Progress streams served as Server-Sent Events (engram/pstream.h).
 *
 * Each process holds one pub/sub subscription per stream that has SSE connections here (a
 * thousand streams cost a thousand channel subscriptions on the shared pub/sub connection, never
 * a Redis connection per client), and hands every message to the stream's connections.
 *
 * No gap, no duplicate: a connection replays the stream's buffer only once the subscription is
 * confirmed by Redis (eg_store_subscribe_confirmed), so every message appended after the replay's
 * read arrives live; live messages that come during a replay are held and sent after it, and
 * anything at or below the last sequence number sent is skipped. A live message that skips a
 * number (or a pub/sub outage: resync) starts another replay from the last number sent.
 *
 * Lifetime: a connection ends when its stream expires (STREAM_TIMEOUT first), when the client
 * goes, when it reads too slowly, or when the server drains; it is freed once its two timers have
 * closed and no buffer read is in flight. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/pstream.h"
#include "engram/sse.h"
#include "engram/store.h"
#include "engram/util.h"
#include "pstream_int.h"

#define PS_HEARTBEAT_MS 15000
#define PS_REPLAY_PAGE  256
#define PS_MAX_PENDING  10000
#define PS_SUB_BUCKETS  256 /* power of two */

typedef struct ps_sub_s ps_sub_t;

typedef struct ps_item_s {
    struct ps_item_s *next;
    uint64_t seq;
    size_t len;
    char json[]; /* NUL-terminated */
} ps_item_t;

typedef struct ps_conn_s {
    eg_req_t *req; /* NULL once the response ended */
    ps_sub_t *sub; /* NULL once unlinked */
    struct ps_conn_s *prev, *next;
    uv_timer_t heartbeat, expiry;
    int open_handles;
    int reads_inflight;
    uint64_t last_seq; /* last message sent (or the client's Last-Event-ID) */
    bool replaying, replay_again, stopped;
    ps_item_t *pending, **pending_tail;
    size_t npending;
    char id[EG_PSTREAM_ID_MAX];
    eg_buf_t scratch;
} ps_conn_t;

struct ps_sub_s {
    ps_sub_t *hnext;
    char id[EG_PSTREAM_ID_MAX];
    char channel[EG__PS_KEY_MAX];
    ps_conn_t *head;
    bool confirmed;  /* Redis confirmed the subscription: replays may start */
    int dispatching; /* inside a callback loop over head: release afterwards */
};

static ps_sub_t *g_subs[PS_SUB_BUCKETS];
static size_t g_conns;

/* ---- framing --------------------------------------------------------------------------------- */

void eg_pstream_sse_encode(eg_buf_t *out, uint64_t seq, const char *json, size_t len)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *b64 = eg_xmalloc(cap);
    size_t n = eg_base64_encode(json, len, b64);

    if (seq > 0)
        eg_buf_printf(out, "id: %" PRIu64 "\n", seq);
    eg_buf_puts(out, "data: ");
    eg_buf_append(out, b64, n);
    eg_buf_puts(out, "\n\n");
    free(b64);
}

/* {type, streamId, timestamp} as an SSE event without id. */
static void encode_notice(eg_buf_t *out, const char *type, const char *stream_id)
{
    char now[32];
    cJSON *j = cJSON_CreateObject();
    char *json;

    eg_time_iso_us(eg_now_ms() * 1000, now);
    cJSON_AddStringToObject(j, "type", type);
    cJSON_AddStringToObject(j, "streamId", stream_id);
    cJSON_AddStringToObject(j, "timestamp", now);
    json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (json != NULL)
        eg_pstream_sse_encode(out, 0, json, strlen(json));
    free(json);
}

/* ---- subscriptions --------------------------------------------------------------------------- */

static size_t sub_hash(const char *id)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *id; id++) {
        h ^= (unsigned char)*id;
        h *= 1099511628211ULL;
    }
    return (size_t)h & (PS_SUB_BUCKETS - 1);
}

static ps_sub_t **sub_slot(const char *id)
{
    ps_sub_t **p;

    for (p = &g_subs[sub_hash(id)]; *p; p = &(*p)->hnext)
        if (strcmp((*p)->id, id) == 0)
            return p;
    return NULL;
}

static void on_message(void *udata, const char *channel, const char *payload, size_t len);
static void on_resync(void *udata);

/* Drop a subscription whose last connection left (not while dispatching over it). */
static void sub_settle(ps_sub_t *sub)
{
    ps_sub_t **slot;

    if (sub->head != NULL || sub->dispatching > 0)
        return;
    eg_store_unsubscribe(sub->channel, on_message, sub); /* EG_ENOTFOUND after shutdown: fine */
    slot = sub_slot(sub->id);
    if (slot != NULL)
        *slot = sub->hnext;
    free(sub);
}

static ps_sub_t *sub_get(const char *id)
{
    ps_sub_t **slot = sub_slot(id), *sub;
    size_t b;

    if (slot != NULL)
        return *slot;
    sub = eg_xcalloc(1, sizeof(*sub));
    snprintf(sub->id, sizeof(sub->id), "%s", id);
    eg__ps_channel(id, sub->channel);
    if (eg_store_subscribe_confirmed(sub->channel, on_message, on_resync, sub) != 0) {
        free(sub);
        return NULL;
    }
    b = sub_hash(id);
    sub->hnext = g_subs[b];
    g_subs[b] = sub;
    return sub;
}

static void sub_unlink(ps_conn_t *c)
{
    ps_sub_t *sub = c->sub;

    if (sub == NULL)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        sub->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->sub = NULL;
    sub_settle(sub);
}

/* ---- connections ----------------------------------------------------------------------------- */

static void conn_maybe_free(ps_conn_t *c)
{
    if (!c->stopped || c->open_handles > 0 || c->reads_inflight > 0)
        return;
    while (c->pending) {
        ps_item_t *it = c->pending;
        c->pending = it->next;
        free(it);
    }
    eg_buf_free(&c->scratch);
    free(c);
    g_conns--;
}

static void on_timer_closed(uv_handle_t *h)
{
    ps_conn_t *c = h->data;

    c->open_handles--;
    conn_maybe_free(c);
}

static void conn_end(ps_conn_t *c)
{
    eg_req_t *req = c->req;

    if (c->stopped)
        return;
    c->stopped = true;
    c->req = NULL;
    sub_unlink(c);
    uv_timer_stop(&c->heartbeat);
    uv_timer_stop(&c->expiry);
    uv_close((uv_handle_t *)&c->heartbeat, on_timer_closed);
    uv_close((uv_handle_t *)&c->expiry, on_timer_closed);
    if (req != NULL) {
        req->on_stream_stop = NULL;
        eg_res_stream_end(req); /* may release req */
    }
}

/* Write buf; a client too slow to keep up, or gone, ends the connection. */
static void conn_write(ps_conn_t *c, const eg_buf_t *buf)
{
    int rc;

    if (c->stopped || buf->len == 0)
        return;
    rc = eg_res_stream_write(c->req, buf->data, buf->len);
    if (rc == EG_EBUSY)
        eg_log_warn("progress stream %s: client too slow, closing its SSE connection", c->id);
    if (rc != 0)
        conn_end(c);
}

/* Send message seq unless it was sent already; enc is its encoding when the caller has one. */
static void conn_send(ps_conn_t *c, uint64_t seq, const char *json, size_t len, const eg_buf_t *enc)
{
    if (c->stopped || seq <= c->last_seq)
        return;
    c->last_seq = seq;
    if (enc == NULL) {
        eg_buf_clear(&c->scratch);
        eg_pstream_sse_encode(&c->scratch, seq, json, len);
        enc = &c->scratch;
    }
    conn_write(c, enc);
}

static void replay(ps_conn_t *c);

static void send_pending(ps_conn_t *c)
{
    while (c->pending != NULL && !c->stopped) {
        ps_item_t *it = c->pending;

        c->pending = it->next;
        c->npending--;
        conn_send(c, it->seq, it->json, it->len, NULL);
        free(it);
    }
    if (c->pending == NULL)
        c->pending_tail = &c->pending;
}

static void hold(ps_conn_t *c, uint64_t seq, const char *json, size_t len)
{
    ps_item_t *it;

    if (c->npending >= PS_MAX_PENDING) {
        eg_log_warn("progress stream %s: too many messages during a replay", c->id);
        conn_end(c);
        return;
    }
    it = eg_xmalloc(sizeof(*it) + len + 1);
    it->next = NULL;
    it->seq = seq;
    it->len = len;
    memcpy(it->json, json, len);
    it->json[len] = '\0';
    *c->pending_tail = it;
    c->pending_tail = &it->next;
    c->npending++;
}

/* Entry id "<seq>-1" → seq (0 when malformed). */
static uint64_t entry_seq(const redisReply *id)
{
    uint64_t v = 0;
    size_t i = 0;

    if (id->type != REDIS_REPLY_STRING)
        return 0;
    for (; i < id->len && id->str[i] >= '0' && id->str[i] <= '9'; i++)
        v = v * 10 + (uint64_t)(id->str[i] - '0');
    return i > 0 && i < id->len && id->str[i] == '-' ? v : 0;
}

static void on_page(void *udata, int err, redisReply *reply)
{
    ps_conn_t *c = udata;
    size_t n = 0;

    c->reads_inflight--;
    if (c->stopped) {
        conn_maybe_free(c);
        return;
    }
    if (err == 0 && reply->type != REDIS_REPLY_ARRAY)
        err = EG_EREDIS;
    if (err != 0) {
        /* The client reconnects with Last-Event-ID and gets the rest then. */
        eg_log_warn("progress stream %s: replay failed: %s", c->id, eg_strerror(err));
        conn_end(c);
        return;
    }
    n = reply->elements;
    for (size_t i = 0; i < n && !c->stopped; i++) {
        const redisReply *e = reply->element[i], *f;
        uint64_t seq;

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
            continue;
        seq = entry_seq(e->element[0]);
        f = e->element[1];
        if (seq == 0 || f->type != REDIS_REPLY_ARRAY || f->elements < 2 ||
            f->element[1]->type != REDIS_REPLY_STRING)
            continue;
        conn_send(c, seq, f->element[1]->str, f->element[1]->len, NULL);
    }
    if (c->stopped)
        return;
    if (n == PS_REPLAY_PAGE || c->replay_again) {
        c->replay_again = false;
        replay(c);
        return;
    }
    c->replaying = false;
    send_pending(c);
}

/* Read the buffer after last_seq (one page; on_page continues). */
static void replay(ps_conn_t *c)
{
    char key[EG__PS_KEY_MAX], start[32];
    int rc;

    eg__ps_key(c->id, 'b', key);
    if (c->last_seq > 0)
        snprintf(start, sizeof(start), "(%" PRIu64 "-1", c->last_seq);
    else
        snprintf(start, sizeof(start), "-");
    c->replaying = true;
    rc = eg_store_command(on_page, c, "XRANGE %s %s + COUNT %d", key, start, PS_REPLAY_PAGE);
    if (rc != 0) {
        eg_log_warn("progress stream %s: replay failed: %s", c->id, eg_strerror(rc));
        conn_end(c);
        return;
    }
    c->reads_inflight++;
}

/* (Re)start a replay: now, or after the one running. */
static void conn_resync(ps_conn_t *c)
{
    if (c->stopped)
        return;
    if (c->replaying)
        c->replay_again = true;
    else
        replay(c);
}

static void on_message(void *udata, const char *channel, const char *payload, size_t len)
{
    ps_sub_t *sub = udata;
    const char *sp = memchr(payload, ' ', len);
    eg_buf_t enc = EG_BUF_INIT;
    uint64_t seq = 0;
    const char *json;
    size_t jlen;
    ps_conn_t *c, *next;

    (void)channel;
    for (const char *p = payload; sp != NULL && p < sp && *p >= '0' && *p <= '9'; p++)
        seq = seq * 10 + (uint64_t)(*p - '0');
    if (sp == NULL || seq == 0) {
        eg_log_warn("progress stream %s: ignoring a malformed message", sub->id);
        return;
    }
    json = sp + 1;
    jlen = len - (size_t)(json - payload);
    sub->dispatching++;
    for (c = sub->head; c; c = next) {
        next = c->next; /* c may end (and unlink) while being written to */
        if (c->stopped || seq <= c->last_seq)
            continue;
        if (c->replaying || !sub->confirmed) {
            hold(c, seq, json, jlen);
        } else if (seq > c->last_seq + 1) {
            /* A number was skipped (lost between processes?): the buffer has it. */
            hold(c, seq, json, jlen);
            replay(c);
        } else {
            /* Encoded once for every connection of the stream. */
            if (enc.len == 0)
                eg_pstream_sse_encode(&enc, seq, json, jlen);
            conn_send(c, seq, json, jlen, &enc);
        }
    }
    sub->dispatching--;
    eg_buf_free(&enc);
    sub_settle(sub);
}

/* The subscription is confirmed (first time) or back after an outage: every connection replays
 * from what it sent last. */
static void on_resync(void *udata)
{
    ps_sub_t *sub = udata;
    ps_conn_t *c, *next;

    sub->confirmed = true;
    sub->dispatching++;
    for (c = sub->head; c; c = next) {
        next = c->next;
        conn_resync(c);
    }
    sub->dispatching--;
    sub_settle(sub);
}

static void on_heartbeat(uv_timer_t *t)
{
    ps_conn_t *c = t->data;

    if (c->stopped)
        return;
    eg_buf_clear(&c->scratch);
    eg_sse_encode_comment(&c->scratch, "ping");
    conn_write(c, &c->scratch);
}

static void on_expiry(uv_timer_t *t)
{
    ps_conn_t *c = t->data;

    if (c->stopped)
        return;
    eg_buf_clear(&c->scratch);
    encode_notice(&c->scratch, "STREAM_TIMEOUT", c->id);
    conn_write(c, &c->scratch);
    conn_end(c);
}

static void on_stream_stop(eg_req_t *req)
{
    conn_end(req->udata);
}

/* Last-Event-ID as a sequence number (0 = from the start; anything else unusable too). */
static uint64_t parse_last_id(const char *value)
{
    char buf[EG_SSE_MAX_ID];
    int64_t v;

    if (value == NULL || eg_sse_last_event_id(value, buf, sizeof(buf)) != 0 || buf[0] == '\0' ||
        eg_parse_int64(buf, 0, INT64_MAX, &v) != 0)
        return 0;
    return (uint64_t)v;
}

static void begin(eg_req_t *req)
{
    eg_res_header(req, "Cache-Control", "no-cache");
    eg_res_header(req, "X-Accel-Buffering", "no");
    if (req->keep_alive && !req->http10)
        eg_res_header(req, "Connection", "keep-alive");
    eg_res_stream_begin(req, 200, EG_SSE_CONTENT_TYPE);
}

int eg_pstream_sse(eg_req_t *req, const eg_pstream_t *s, const eg_pstream_sse_opts_t *opts)
{
    uv_loop_t *loop = eg_server_loop(req->server);
    uint64_t hb = opts != NULL && opts->heartbeat_ms ? opts->heartbeat_ms : PS_HEARTBEAT_MS;
    int64_t left_ms = (s->expires_us - eg_now_ms() * 1000) / 1000;
    ps_sub_t *sub;
    ps_conn_t *c;

    if (!eg_pstream_id_valid(s->id))
        return EG_EINVAL;
    sub = sub_get(s->id);
    if (sub == NULL)
        return EG_EUNAVAIL;
    c = eg_xcalloc(1, sizeof(*c));
    g_conns++;
    c->pending_tail = &c->pending;
    snprintf(c->id, sizeof(c->id), "%s", s->id);
    c->last_seq = parse_last_id(opts != NULL ? opts->last_event_id : NULL);
    c->req = req;
    c->sub = sub;
    c->next = sub->head;
    if (sub->head)
        sub->head->prev = c;
    sub->head = c;
    uv_timer_init(loop, &c->heartbeat);
    uv_timer_init(loop, &c->expiry);
    c->heartbeat.data = c->expiry.data = c;
    c->open_handles = 2;
    req->udata = c;
    req->on_stream_stop = on_stream_stop;
    begin(req);
    uv_timer_start(&c->heartbeat, on_heartbeat, hb, hb);
    uv_timer_start(&c->expiry, on_expiry, left_ms > 0 ? (uint64_t)left_ms : 0, 0);
    if (sub->confirmed)
        replay(c); /* otherwise on_resync starts it */
    return 0;
}

void eg_pstream_sse_once(eg_req_t *req, const char *type, const char *stream_id)
{
    eg_buf_t b = EG_BUF_INIT;

    begin(req);
    encode_notice(&b, type, stream_id);
    (void)eg_res_stream_write(req, b.data, b.len);
    eg_buf_free(&b);
    eg_res_stream_end(req);
}

size_t eg_pstream_sse_count(void)
{
    return g_conns;
}
