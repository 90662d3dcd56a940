/* WebSocket connections: an HTTP connection upgraded with eg_ws_accept. The codec (ws.c) parses
 * and encodes frames; this file ties it to the connection: replies to pings, the close
 * handshake, server pings with a dead-peer timeout, and the send-queue cap (a client that cannot
 * keep up is closed with 1013 instead of being buffered for without bound). */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/util.h"
#include "engram/ws.h"
#include "net_int.h"

struct eg_wsconn_s {
    eg_conn_t *conn;
    eg_ws_parser_t parser;
    const eg_ws_handler_t *h;
    void *udata;
    uint64_t last_rx_ms; /* loop time of the last frame from the client */
    int close_code;      /* received close code, 1006 until one arrives */
    unsigned close_sent : 1;
    unsigned notified : 1;
};

static uv_loop_t *ws_loop(eg_wsconn_t *ws)
{
    return ws->conn->tcp.loop;
}

static void ws_send_close(eg_wsconn_t *ws, int code, const char *reason)
{
    eg_conn_t *c = ws->conn;

    if (ws->close_sent || c->closing)
        return;
    ws->close_sent = 1;
    if (eg_ws_encode_close(&c->out, code, reason) != 0)
        eg_ws_encode_close(&c->out, 0, NULL);
    /* After our close frame only the peer's close (or EOF) is expected: the connection
     * half-closes once the frame is out and goes after a short linger. */
    c->close_after_flush = 1;
    eg__conn_mark_dirty(c);
}

static void on_message(void *udata, eg_ws_opcode_t op, const char *data, size_t len)
{
    eg_wsconn_t *ws = udata;

    if (ws->close_sent)
        return;
    if (ws->h->on_message)
        ws->h->on_message(ws, (int)op, data, len, ws->udata);
}

static void on_ping(void *udata, const char *data, size_t len)
{
    eg_wsconn_t *ws = udata;

    if (ws->close_sent)
        return;
    eg_ws_encode_pong(&ws->conn->out, data, len);
    eg__conn_mark_dirty(ws->conn);
}

static void on_pong(void *udata, const char *data, size_t len)
{
    (void)udata; /* last_rx_ms is updated for every frame in eg__ws_on_data */
}

static void on_close(void *udata, int code, const char *reason, size_t len)
{
    eg_wsconn_t *ws = udata;

    ws->close_code = code;
    /* Echo the peer's code (a close without a status is answered without one). */
    ws_send_close(ws, code == EG_WS_CLOSE_NO_STATUS ? 0 : code, NULL);
}

static const eg_ws_callbacks_t ws_callbacks = {
    .on_message = on_message,
    .on_ping = on_ping,
    .on_pong = on_pong,
    .on_close = on_close,
};

static const char *ws_header(void *udata, const char *name)
{
    return eg_req_header(udata, name);
}

eg_wsconn_t *eg_ws_accept(eg_req_t *req, const eg_ws_handler_t *h, void *udata)
{
    eg_conn_t *c = req->conn;
    eg_ws_hs_error_t hs;
    eg_wsconn_t *ws;

    if (req->gone) {
        eg_res_send(req, 499, NULL, NULL, 0);
        return NULL;
    }
    if (strcmp(req->method, "GET") != 0 || req->http10) {
        eg_res_error(req, EG_EINVAL, "a WebSocket upgrade must be an HTTP/1.1 GET request");
        return NULL;
    }
    if (eg_ws_handshake_check(ws_header, req, &hs) != 0) {
        if (hs.status == 426) {
            eg_res_header(req, "Upgrade", "websocket");
            eg_res_header(req, "Sec-WebSocket-Version", "13");
        }
        eg_res_error_status(req, hs.status, EG_EINVAL, "%s", hs.message);
        return NULL;
    }
    if (req != c->head || c->nqueued != 1) {
        eg_res_error(req, EG_EINVAL, "a WebSocket upgrade cannot follow pipelined requests");
        return NULL;
    }
    if (eg_ws_handshake_response(&c->out, eg_req_header(req, "Sec-WebSocket-Key"), NULL) != 0) {
        eg_res_error(req, EG_EINTERNAL, "cannot build the WebSocket handshake");
        return NULL;
    }
    ws = eg_xcalloc(1, sizeof(*ws));
    ws->conn = c;
    ws->h = h;
    ws->udata = udata;
    ws->close_code = EG_WS_CLOSE_ABNORMAL;
    ws->last_rx_ms = uv_now(c->tcp.loop);
    eg_ws_parser_init(&ws->parser, NULL, &ws_callbacks, ws);
    req->status = 101;
    eg__res_log(req);
    eg__conn_upgraded(req, ws);
    return ws;
}

void eg__ws_on_data(eg_wsconn_t *ws, const char *data, size_t len)
{
    const char *reason = NULL;
    int code;

    if (ws->conn->closing)
        return;
    ws->last_rx_ms = uv_now(ws_loop(ws));
    if (eg_ws_parser_feed(&ws->parser, data, len) == 0)
        return;
    code = eg_ws_parser_error(&ws->parser, &reason);
    eg_log_debug("websocket protocol error %d: %s", code, reason ? reason : "");
    ws->close_code = code;
    ws_send_close(ws, code ? code : EG_WS_CLOSE_PROTOCOL, reason);
}

void eg__ws_on_timer(eg_wsconn_t *ws)
{
    eg_conn_t *c = ws->conn;
    uint64_t interval = c->srv->cfg->ws_ping_ms;
    uint64_t now = uv_now(ws_loop(ws));

    if (c->closing)
        return;
    if (now - ws->last_rx_ms > interval * 5 / 2) {
        eg_log_info("websocket peer silent for %llu ms: closing",
                    (unsigned long long)(now - ws->last_rx_ms));
        eg__conn_close(c);
        return;
    }
    if (!ws->close_sent && now - ws->last_rx_ms >= interval / 2) {
        eg_ws_encode_ping(&c->out, "eg", 2);
        eg__conn_mark_dirty(c);
    }
    eg__conn_timer_start(c, interval);
}

void eg__ws_going_away(eg_wsconn_t *ws)
{
    ws_send_close(ws, EG_WS_CLOSE_GOING_AWAY, "server shutting down");
}

void eg__ws_closed(eg_wsconn_t *ws)
{
    if (ws->notified)
        return;
    ws->notified = 1;
    if (ws->h->on_close)
        ws->h->on_close(ws, ws->close_code, ws->udata);
}

void eg__ws_free(eg_wsconn_t *ws)
{
    eg_ws_parser_free(&ws->parser);
    free(ws);
}

/* The slow-consumer check of every message: a client that lets more than max_output_bytes pile up
 * is closed with 1013 rather than buffered for without bound. */
static int ws_send_check(eg_wsconn_t *ws)
{
    eg_conn_t *c = ws->conn;
    size_t buffered;

    if (c->closing || ws->close_sent)
        return EG_ENOTFOUND;
    buffered = eg__conn_buffered(c);
    if (buffered > c->srv->cfg->max_output_bytes) {
        eg_log_warn("websocket client too slow (%zu bytes unsent): closing with 1013", buffered);
        ws_send_close(ws, EG_WS_CLOSE_TRY_AGAIN, "send queue full");
        return EG_EBUSY;
    }
    return 0;
}

int eg_ws_send_text(eg_wsconn_t *ws, const char *data, size_t len)
{
    int rc = ws_send_check(ws);

    if (rc)
        return rc;
    eg_ws_encode_text(&ws->conn->out, data, len);
    eg__conn_mark_dirty(ws->conn);
    return 0;
}

int eg_ws_send_frame(eg_wsconn_t *ws, eg_ws_frame_t *frame)
{
    eg_conn_t *c = ws->conn;
    int rc = ws_send_check(ws);

    if (rc)
        return rc;
    /* By reference only at the head of the queue (an uv_write in flight goes first anyway):
     * behind other bytes, or behind another shared frame, it is copied to keep the order. */
    if (c->shared == NULL && c->out.len == 0)
        c->shared = eg_ws_frame_ref(frame);
    else
        eg_buf_append(&c->out, frame->data, frame->len);
    eg__conn_mark_dirty(c);
    return 0;
}

void eg_ws_close(eg_wsconn_t *ws, int code, const char *reason)
{
    ws_send_close(ws, code, reason);
}
