/* HTTP/1.1 server on the loop: connections, requests, responses, routing, auth hand-off. */
#ifndef ENGRAM_HTTP_H
#define ENGRAM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "engram/arena.h"
#include "engram/buf.h"
#include "engram/config.h"
#include "engram/ws.h"

typedef struct eg_server_s eg_server_t;
typedef struct eg_conn_s eg_conn_t;
typedef struct eg_req_s eg_req_t;
typedef struct eg_route_s eg_route_t;
typedef struct eg_router_s eg_router_t;
typedef struct eg_face_s eg_face_t;

/* A name/value pair (headers, path params, query params); strings live in the request arena. */
typedef struct eg_kv_s {
    const char *name;
    const char *value;
} eg_kv_t;

typedef enum { EG_KEY_SECRET = 1, EG_KEY_PUBLISHABLE = 2 } eg_key_kind_t;

/* Who made an authenticated request. */
typedef struct eg_auth_s {
    char workspace_id[40];
    char key_id[40];
    eg_key_kind_t kind;
} eg_auth_t;

typedef void (*eg_handler_fn)(eg_req_t *req);

/* Route flags: who may call it. */
#define EG_ROUTE_PUBLIC   0u
#define EG_ROUTE_AUTH     1u /* secret key required */
#define EG_ROUTE_AUTH_PK  2u /* secret or publishable key */
#define EG_ROUTE_TOKEN_QS 4u /* also accept ?token=<key> (browser EventSource/WebSocket) */

/* A product face: where it is mounted and how it renders errors. */
struct eg_face_s {
    const char *name;
    char prefix[128]; /* "" = root */
    /* Write an error response in the vendor's shape (status from the error table). */
    void (*render_error)(eg_req_t *req, int status, int err, const char *message);
    /* Anonymous access (opt-in, e.g. ENGRAM_ANONYMOUS_WORKSPACE): when set, a request to an
     * authenticated route of this face that carries no key at all acts on this workspace
     * (name as configured; id once resolved at startup, "" until then → 503). NULL = off. */
    const char *anonymous_workspace;
    char anonymous_workspace_id[40];
};

struct eg_route_s {
    const char *method; /* "GET", ... */
    const char *tmpl;   /* full template including the mount prefix, e.g. /hindsight/v1/{bank} */
    eg_handler_fn handler;
    unsigned flags;
    const eg_face_t *face;
    size_t max_body; /* bytes a request body may have; 0 = the server's max_body_bytes */
};

struct eg_req_s {
    eg_arena_t arena;
    eg_conn_t *conn;
    eg_server_t *server;
    eg_req_t *next; /* pipeline order on the connection */

    const char *method; /* "GET", ... */
    const char *target; /* raw request target */
    const char *path;   /* raw path (not decoded); params are decoded */
    const char *query;  /* raw query string after '?', or NULL */
    eg_kv_t *headers;
    size_t nheaders;
    eg_kv_t *params;
    size_t nparams;
    eg_kv_t *qs;
    size_t nqs;
    eg_buf_t body;

    const eg_route_t *route;
    const eg_face_t *face; /* face by mount prefix (also for 404s) */
    eg_auth_t auth;        /* valid when route->flags & (EG_ROUTE_AUTH|EG_ROUTE_AUTH_PK) */
    char request_id[72];
    uint64_t start_ns;

    /* response */
    int status;
    eg_buf_t res_headers; /* extra "Name: value\r\n" lines */
    eg_buf_t res_out;     /* serialized response waiting behind earlier pipelined ones */
    size_t res_bytes;     /* body bytes, for the access log */
    unsigned is_head : 1;
    unsigned keep_alive : 1;
    unsigned done : 1;
    unsigned in_handler : 1;
    unsigned gone : 1;       /* client connection closed before the response */
    unsigned expect_100 : 1; /* client sent Expect: 100-continue */
    unsigned http10 : 1;     /* HTTP/1.0 request */
    unsigned streaming : 1;  /* eg_res_stream_begin was called */
    unsigned upgrade : 1;    /* the request asks for a protocol upgrade */
    void *udata;             /* handler state */
    /* Streams only: called once when the stream must stop before its owner ended it — the
     * client went away (req->gone set) or the server is draining. The owner stops producing
     * and calls eg_res_stream_end. */
    void (*on_stream_stop)(eg_req_t *req);
};

/* Case-insensitive header lookup; NULL when absent. */
const char *eg_req_header(const eg_req_t *req, const char *name);

/* Decoded path parameter by template name ("bank_id" for {bank_id}); NULL when absent. */
const char *eg_req_param(const eg_req_t *req, const char *name);

/* First decoded query parameter with that name; NULL when absent. */
const char *eg_req_query(const eg_req_t *req, const char *name);

/* Every value of a repeated query parameter; returns the count, fills up to max. */
size_t eg_req_query_all(const eg_req_t *req, const char *name, const char **out, size_t max);

/* Parse the body as JSON into a tree owned by the request arena. On failure renders a 400 in the
 * face's shape and returns NULL (the handler just returns). */
cJSON *eg_req_json(eg_req_t *req);

/* Add a response header (copied). */
void eg_res_header(eg_req_t *req, const char *name, const char *value);

/* Finish the request with a status, content type (NULL for none) and body. Exactly once. */
void eg_res_send(eg_req_t *req, int status, const char *content_type, const void *body, size_t len);

/* Start a streaming response (SSE, long-lived feeds): sends the status and headers now with
 * chunked transfer encoding; the body follows with eg_res_stream_write. */
void eg_res_stream_begin(eg_req_t *req, int status, const char *content_type);

/* Append one body chunk. 0, or EG_EBUSY when the client reads too slowly (its unsent output is
 * over the configured cap: the caller should end the stream), or EG_ENOTFOUND when it is gone. */
int eg_res_stream_write(eg_req_t *req, const void *data, size_t len);

/* End a streaming response (sends the last chunk, logs the request, releases it). */
void eg_res_stream_end(eg_req_t *req);

/* Finish with a JSON body; takes ownership of json (deleted). */
void eg_res_json(eg_req_t *req, int status, cJSON *json);

/* Finish with an error rendered in the face's shape; status from the error table. */
void eg_res_error(eg_req_t *req, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Finish with an error at an explicit HTTP status. */
void eg_res_error_status(eg_req_t *req, int status, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Render engram's own error shape {"error":{"code","message","request_id"}}. */
void eg_render_error_engram(eg_req_t *req, int status, int err, const char *message);

/* Routing table. */
eg_router_t *eg_router_new(void);
void eg_router_free(eg_router_t *r);

/* Add a route; tmpl is relative to the face prefix ("/v1/banks/{bank_id}"), joined at add time.
 * 0, or EG_EINVAL for a bad template or a duplicate (method, template). */
int eg_router_add(eg_router_t *r, const eg_face_t *face, const char *method, const char *tmpl,
                  eg_handler_fn handler, unsigned flags);

/* Give one route (added before) its own body limit instead of the server's max_body_bytes,
 * larger or smaller (file uploads). 0, or EG_ENOTFOUND when no such route. */
int eg_router_set_max_body(eg_router_t *r, const eg_face_t *face, const char *method,
                           const char *tmpl, size_t max);

/* The body limit of a request: its route's own limit, or dflt (also when no route matches).
 * target is the raw request target (query string and absolute form allowed). */
size_t eg_router_body_limit(const eg_router_t *r, const char *method, const char *target,
                            size_t dflt);

/* Match a raw path. Returns the route and fills decoded params in the arena; returns NULL when no
 * route matched: *allow gets the comma-separated allowed methods when the path exists (→ 405),
 * or "" (→ 404). Percent-decoding errors also give NULL with *bad_path = true. */
const eg_route_t *eg_router_match(const eg_router_t *r, const char *method, const char *path,
                                  eg_arena_t *a, eg_kv_t **params, size_t *nparams, char *allow,
                                  size_t allowlen, bool *bad_path);

/* The face whose mount prefix is the longest match for path (engram's own face when none). */
const eg_face_t *eg_router_face_for(const eg_router_t *r, const char *path);

/* Parse a query string into decoded pairs (repeated keys kept in order). 0 or EG_EINVAL. */
int eg_query_parse(eg_arena_t *a, const char *qs, eg_kv_t **out, size_t *n);

/* WebSocket connections (RFC 6455) made by upgrading a request with eg_ws_accept. */
typedef struct eg_wsconn_s eg_wsconn_t;

typedef struct eg_ws_handler_s {
    /* A complete text (op 1, valid UTF-8) or binary (op 2) message from the client. */
    void (*on_message)(eg_wsconn_t *ws, int op, const char *data, size_t len, void *udata);
    /* The connection is gone (close handshake, error, dead peer, drain): called exactly once;
     * the handle is invalid afterwards. code is the close code (1006 when none was received). */
    void (*on_close)(eg_wsconn_t *ws, int code, void *udata);
} eg_ws_handler_t;

/* Upgrade req to a WebSocket: checks the handshake headers, answers 101 and hands the connection
 * to h. Returns the connection, or NULL after answering the request with an error (400/426). */
eg_wsconn_t *eg_ws_accept(eg_req_t *req, const eg_ws_handler_t *h, void *udata);

/* Queue a text message. 0; EG_EBUSY when the client reads too slowly (the connection is closed
 * with 1013); EG_ENOTFOUND when it is closing. */
int eg_ws_send_text(eg_wsconn_t *ws, const char *data, size_t len);

/* Queue a frame shared with other connections (eg_ws_frame_new): the connection takes a
 * reference instead of a copy when nothing else is waiting to be sent. Same results as
 * eg_ws_send_text. */
int eg_ws_send_frame(eg_wsconn_t *ws, eg_ws_frame_t *frame);

/* Start the close handshake with a code and reason (the connection goes once it completes). */
void eg_ws_close(eg_wsconn_t *ws, int code, const char *reason);

/* engram's own face (root paths and /engram/v1). */
extern eg_face_t eg_face_engram;

/* Server lifecycle. */
eg_server_t *eg_server_new(uv_loop_t *loop, const eg_config_t *cfg, eg_router_t *router);

/* Bind and listen. 0 or a negative libuv error. */
int eg_server_listen(eg_server_t *s);

/* Stop accepting, let in-flight requests finish (bounded by drain_timeout_ms), close idle
 * connections; done(udata) runs when every connection is gone. */
void eg_server_drain(eg_server_t *s, void (*done)(void *), void *udata);

/* Free the server after drain completed. */
void eg_server_free(eg_server_t *s);

/* Number of open connections. */
size_t eg_server_conn_count(const eg_server_t *s);

/* Actual bound port (useful with port 0). */
int eg_server_port(const eg_server_t *s);

/* The loop the server runs on. */
uv_loop_t *eg_server_loop(const eg_server_t *s);

/* True once eg_server_drain has been called. */
bool eg_server_draining(const eg_server_t *s);

/* The configuration the server runs with. */
const eg_config_t *eg_server_config(const eg_server_t *s);

#endif
