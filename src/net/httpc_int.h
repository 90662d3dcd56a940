/* Internals of the outbound HTTP client shared by its files: httpc.c (calls, pools, API),
 * httpc_conn.c (connections and response parsing), httpc_url.c (options and URLs). */
#ifndef ENGRAM_HTTPC_INT_H
#define ENGRAM_HTTPC_INT_H

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <llhttp.h>
#include "engram/arena.h"
#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/ssrf.h"
#include "engram/util.h"
#include "tls_int.h"

#define EG_HTTPC_READ_BUF  65536
#define EG_HTTPC_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

typedef struct eg_hc_origin_s eg_hc_origin_t;
typedef struct eg_hc_conn_s eg_hc_conn_t;

typedef struct eg_url_s {
    bool tls;
    int port;
    char *host;     /* lowercase, IPv6 without brackets */
    char *hostport; /* Host header value */
    char *target;   /* path and query, at least "/" */
    char *href;     /* the whole URL, fragment dropped */
} eg_url_t;

struct eg_httpc_s {
    uv_loop_t *loop;
    eg_httpc_opts_t opts;
    char *user_agent;
    eg_ssrf_t *ssrf;
    eg_tls_ctx_t *tls;
    llhttp_settings_t settings;
    eg_hc_origin_t *origins;
    eg_hc_conn_t *conns; /* every connection not yet freed */
    eg_httpc_call_t *calls;
    size_t nopen; /* connections not closing */
    size_t refs;  /* calls and connections not yet freed */
    unsigned freeing : 1;
};

struct eg_hc_origin_s {
    eg_hc_origin_t *next;
    bool tls;
    int port;
    char *host;
    eg_hc_conn_t *idle; /* most recently used first */
    int nidle;
    int nconns;
    eg_httpc_call_t *wait_head, *wait_tail;
};

typedef enum {
    CONN_RESOLVING,
    CONN_CONNECTING,
    CONN_HANDSHAKE,
    CONN_BUSY,
    CONN_IDLE,
    CONN_CLOSING
} eg_conn_state_t;

struct eg_hc_conn_s {
    eg_httpc_t *c;
    eg_hc_origin_t *origin;
    eg_hc_conn_t *prev, *next; /* client list */
    eg_hc_conn_t *idle_next;
    eg_httpc_call_t *call;
    eg_conn_state_t state;
    uv_timer_t timer; /* idle expiry */
    uv_tcp_t *tcp;
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    struct addrinfo *ai;
    struct addrinfo *ai_next; /* next address to try */
    llhttp_t parser;
    eg_tls_t tls;
    int handles; /* open handles (timer, tcp) */
    int last_connect_err;
    char addr[64]; /* address being tried, for messages */
    unsigned gai_pending : 1;
    unsigned reused : 1; /* served a response before */
};

typedef enum { CALL_QUEUED, CALL_CONNECTING, CALL_WAIT_HEADERS, CALL_BODY } eg_call_phase_t;

struct eg_httpc_call_s {
    eg_httpc_t *c;
    eg_httpc_call_t *prev, *next; /* client list */
    eg_httpc_call_t *wait_next;
    eg_hc_origin_t *waiting; /* origin whose queue holds the call */
    eg_hc_conn_t *conn;
    uv_timer_t timer;
    eg_arena_t arena;
    eg_httpc_done_fn done;
    eg_httpc_headers_fn on_headers;
    eg_httpc_data_fn on_data;
    void *udata;

    const char *method;
    eg_kv_t *headers; /* request headers, arena */
    size_t nheaders;
    eg_buf_t body;
    eg_url_t url;

    uint64_t connect_timeout_ms, header_timeout_ms;
    uint64_t total_deadline, phase_deadline; /* uv_now() milliseconds */
    uint64_t start_ns;
    size_t max_response_bytes;
    int max_redirects;
    eg_call_phase_t phase;

    /* response being parsed */
    eg_httpc_resp_t resp;
    size_t hcap;
    eg_buf_t hname, hval;
    size_t header_bytes;
    size_t body_bytes;
    const char *location;

    int err;
    char errmsg[256];
    unsigned finished : 1;  /* outcome decided, done pending */
    unsigned complete : 1;  /* message complete seen */
    unsigned redirect : 1;  /* the response being parsed is a redirect to follow */
    unsigned interim : 1;   /* a 1xx response is being parsed */
    unsigned got_bytes : 1; /* any response byte on this hop */
    unsigned retried : 1;   /* already re-sent once after a stale keep-alive connection */
};

/* Parse an absolute http(s) URL into u (strings in a). Fragments are dropped. Anything but a
 * plain ASCII URL is refused: the request line must not carry bytes the server would read
 * differently from us. */
int eg__hc_url_parse(const char *s, eg_url_t *u, eg_arena_t *a);

/* Resolve a Location value against the URL it came from (RFC 3986 §5.2, without dot-segment
 * removal, which the server that sent the reference can handle itself). */
char *eg__hc_url_resolve(const eg_url_t *base, const char *loc, eg_arena_t *a);

/* RFC 6761 §6.4: ".invalid" names never resolve, and resolvers should say so without asking
 * anyone; answering here keeps such lookups (tests use them) off the network. */
bool eg__hc_host_is_invalid_tld(const char *host);

/* Free the client once eg_httpc_free was called and its last call and connection are gone. */
void eg__hc_client_maybe_free(eg_httpc_t *c);

/* The pool of u's origin (scheme, host, port), created on first use. */
eg_hc_origin_t *eg__hc_origin_get(eg_httpc_t *c, const eg_url_t *u);

/* Origins come and go with tenants' URLs; keep only those with connections or waiters. */
void eg__hc_origin_maybe_free(eg_httpc_t *c, eg_hc_origin_t *o);

/* Decide the call's outcome (first decision wins) and schedule done for the next loop turn. A
 * connection still attached is mid-exchange and cannot be reused, so it is closed. */
void eg__hc_call_finish(eg_httpc_call_t *call, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One timer per call: the earlier of the total deadline and the current phase's deadline. */
void eg__hc_call_arm(eg_httpc_call_t *call);

/* Enter a phase of the call and re-arm its timer for that phase's deadline. */
void eg__hc_call_set_phase(eg_httpc_call_t *call, eg_call_phase_t phase);

/* Forget the response of a hop (redirect or retry). */
void eg__hc_call_reset_response(eg_httpc_call_t *call);

/* True for methods that may be re-sent after a stale keep-alive connection. */
bool eg__hc_method_idempotent(const char *m);

/* Follow the redirect the last response asked for: resolve, vet and dispatch again. */
void eg__hc_call_redirect(eg_httpc_call_t *call);

/* Close a connection; any call still on it must have been detached or finished first. Its slot
 * in the origin frees at once, so a queued call can open a new connection. */
void eg__hc_conn_close(eg_hc_conn_t *conn);

/* Put a call on its way: an idle connection, a new one, or the origin's queue. */
void eg__hc_dispatch(eg_httpc_call_t *call);

/* Install the response parser callbacks (httpc_conn.c) into s. */
void eg__hc_parser_settings(llhttp_settings_t *s);

#endif
