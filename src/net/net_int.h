/* Private declarations shared by src/net/server.c and src/net/response.c. */
#ifndef ENGRAM_NET_INT_H
#define ENGRAM_NET_INT_H

#include <llhttp.h>

#include "engram/http.h"

typedef struct eg_cors_s {
    bool any;
    char **origins;
    size_t norigins;
} eg_cors_t;

struct eg_server_s {
    uv_loop_t *loop;
    const eg_config_t *cfg;
    eg_router_t *router;
    uv_tcp_t listener;
    uv_prepare_t flusher; /* writes every dirty connection once per loop turn */
    uv_timer_t drain_timer;
    llhttp_settings_t settings;
    eg_cors_t cors;

    eg_conn_t *conns; /* doubly linked list of open connections */
    size_t nconns;
    eg_conn_t *dirty; /* singly linked via conn->dirty_next */

    eg_req_t *free_reqs; /* recycled request structs */
    size_t nfree_reqs;

    int port;
    unsigned listening : 1;
    unsigned draining : 1;
    unsigned drain_done_called : 1;
    int open_handles; /* listener, flusher, drain timer */
    void (*drain_done)(void *);
    void *drain_udata;

    char date[64]; /* cached "Date: ...\r\n" */
    int64_t date_sec;
    char reqid_prefix[12];
    uint64_t reqid_seq;
};

struct eg_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    eg_server_t *srv;
    llhttp_t parser;
    eg_conn_t *prev, *next;
    eg_conn_t *dirty_next;

    eg_req_t *head, *tail; /* requests in arrival order, responses leave from head */
    eg_req_t *cur;         /* the request being parsed */
    size_t nqueued;        /* requests in the queue (done or pending) */
    size_t npending_gone;  /* handlers still running after the connection closed */

    eg_buf_t in; /* unparsed input kept while parsing is paused */
    /* A fan-out frame (eg_ws_send_frame) queued ahead of out by reference, sent without a copy
     * unless the kernel takes only part of it. */
    eg_ws_frame_t *shared;
    eg_buf_t out;      /* serialized responses not yet handed to the kernel */
    eg_buf_t inflight; /* bytes owned by an in-progress uv_write */
    uv_write_t wreq;

    /* header parse scratch */
    eg_buf_t url;
    eg_buf_t hname;
    eg_buf_t hval;
    eg_kv_t *hdrs;
    size_t nhdrs, caphdrs;
    size_t header_bytes;
    size_t body_max; /* body limit of the request being parsed (its route's, or the server's) */
    int parse_error; /* our own limit errors raised from parser callbacks */

    int handles_open;
    unsigned closing : 1;
    unsigned dirty_flag : 1;
    unsigned writing : 1;
    unsigned reading : 1;
    unsigned read_eof : 1;
    unsigned close_after_flush : 1;
    unsigned parse_paused : 1;
    unsigned in_message : 1;
    unsigned hval_open : 1;
    unsigned upgrade_wait : 1; /* an upgrade request awaits its handler's decision */
    eg_wsconn_t *ws;           /* set once the connection speaks WebSocket */
    unsigned lingering : 1;
};

/* Serialize req's response (status line, headers, body) into buf. */
void eg__res_serialize(eg_req_t *req, eg_buf_t *buf, const char *ctype, const void *body,
                       size_t len);

/* Hand a finished response to its connection: written in pipeline order, or dropped (and the
 * request freed) when the client is gone. */
void eg__conn_respond(eg_req_t *req, const char *ctype, const void *body, size_t len);

/* Streaming responses: the head (chunked), one body chunk, and the final chunk. write returns
 * 0, EG_EBUSY (client too slow) or EG_ENOTFOUND (client gone). */
void eg__conn_stream_begin(eg_req_t *req, const char *ctype);
int eg__conn_stream_write(eg_req_t *req, const void *data, size_t len);
void eg__conn_stream_end(eg_req_t *req);

/* Connection plumbing shared by server.c, parse.c and wsconn.c. */
eg_req_t *eg__conn_enqueue_new(eg_conn_t *c);
void eg__req_prepare_fatal(eg_conn_t *c, eg_req_t *req);
void eg__conn_arm_timer(eg_conn_t *c);

/* parse.c: llhttp settings for requests, and feeding bytes to a connection's parser. */
void eg__http_settings_init(llhttp_settings_t *st);
void eg__conn_execute(eg_conn_t *c, const char *data, size_t len);

void eg__conn_mark_dirty(eg_conn_t *c);
void eg__conn_close(eg_conn_t *c);
void eg__conn_start_reading(eg_conn_t *c);
void eg__conn_timer_start(eg_conn_t *c, uint64_t ms);

/* Output bytes queued and not yet taken by the kernel (shared frame, out, an uv_write). */
size_t eg__conn_buffered(const eg_conn_t *c);

/* Log and count a finished request (access log line, HTTP metrics). */
void eg__res_log(eg_req_t *req);

/* The 101 response is in c->out: retire the upgrade request and switch the connection to
 * WebSocket (feeding bytes that arrived after the request). */
void eg__conn_upgraded(eg_req_t *req, eg_wsconn_t *ws);

/* WebSocket side (wsconn.c): bytes read, the connection timer, a drain, the connection closing
 * (notify the handler) and its release. */
void eg__ws_on_data(eg_wsconn_t *ws, const char *data, size_t len);
void eg__ws_on_timer(eg_wsconn_t *ws);
void eg__ws_going_away(eg_wsconn_t *ws);
void eg__ws_closed(eg_wsconn_t *ws);
void eg__ws_free(eg_wsconn_t *ws);

/* Route a fully received request: CORS preflight, match, auth, then the handler. */
void eg__dispatch(eg_req_t *req);

/* Next request id ("<process prefix>-<sequence>") into out (72 bytes). */
void eg__request_id(eg_server_t *s, char *out);

/* CORS: the Access-Control-Allow-Origin value for an Origin header, or NULL when not allowed. */
const char *eg__cors_allow(const eg_server_t *s, const char *origin);

#endif
