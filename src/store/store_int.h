/* Private declarations shared by the files of src/store (not part of the public contract). */
#ifndef ENGRAM_STORE_INT_H
#define ENGRAM_STORE_INT_H

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/async.h>
#include <mbedtls/sha1.h>
#include "engram/error.h"
#include "engram/log.h"
#include "engram/metrics.h"
#include "engram/store.h"
#include <hiredis/async.h>
#include <uv.h>

/* Attach a hiredis async context to loop with engram's own uv_poll adapter (see redis_uv.c for
 * why we do not use hiredis's adapters/libuv.h). closed(arg) runs from the poll handle's close
 * callback once hiredis has cleaned the context up, so the owner can count live handles.
 * Returns 0, or -1 (nothing to close then). */
int eg__redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, void (*closed)(void *), void *arg);

/* ---- the store (redis.c, redis_cmd.c, redis_dedicated.c, redis_pubsub.c) ---------------- */

#define EG_BACKOFF_MIN_MS 100
#define EG_BACKOFF_MAX_MS 5000
#define EG_SWEEP_MAX_MS   100
#define EG_SWEEP_MIN_MS   10
#define EG_POOL_MAX       256

typedef enum {
    EG_CONN_IDLE = 0,
    EG_CONN_WAIT,
    EG_CONN_RESOLVING,
    EG_CONN_CONNECTING,
    EG_CONN_HANDSHAKE,
    EG_CONN_READY,
} eg_conn_state_t;

typedef struct eg_store_s eg_store_t;
typedef struct eg_cmd_s eg_cmd_t;

/* Commands waiting for a reply, in deadline order. */
typedef struct eg_cmd_list_s {
    eg_cmd_t *head, *tail;
} eg_cmd_list_t;

typedef struct eg_conn_s {
    eg_store_t *store;
    bool pubsub;
    /* Dedicated connections only: */
    bool dedicated;
    bool closing;             /* closed by its owner or by eg_store_shutdown */
    bool owner_closed;        /* eg_store_dedicated_close was called */
    int refs;                 /* open handles + the owner's reference */
    uint64_t timeout_ms;      /* per-command timeout on this connection; 0 = none */
    eg_cmd_list_t cmds;       /* its commands with a deadline */
    void (*on_ready)(void *); /* called each time it becomes ready */
    void *ready_udata;
    struct eg_conn_s *dnext, *dprev; /* the store's list of dedicated connections */
    eg_conn_state_t state;
    redisAsyncContext *ac; /* NULL when detached, even while hiredis is still freeing it */
    uint64_t gen;          /* bumped per context, so stale wrappers cannot drop a new one */
    uv_timer_t timer;      /* connect/handshake timeout, then backoff */
    uv_getaddrinfo_t gai;
    bool resolving;     /* gai callback still to come */
    bool gai_abandoned; /* attempt already failed; the gai callback schedules the retry */
    bool stuck;         /* a command timed out: drop after the sweep */
    bool was_ready;     /* has been READY before: the next READY is a reconnect */
    unsigned attempts;  /* consecutive failed attempts, for backoff */
    int hs_left;        /* handshake replies still expected */
    int hs_step;
    const char *hs_names[3];
} eg_conn_t;

/* One accepted command. */
struct eg_cmd_s {
    struct eg_cmd_s *prev, *next; /* deadline list (only when a timeout is configured) */
    eg_cmd_list_t *list;          /* the list it is linked on */
    eg_reply_fn fn;               /* NULL for fire-and-forget */
    void *udata;
    eg_conn_t *conn;
    uint64_t gen;
    uint64_t start_ns, deadline_ns;
    bool linked, timed_out, retried;
    /* eg_store_eval keeps its arguments to re-send EVAL after a NOSCRIPT reply. */
    eg_script_t *script;
    int argc;
    const char **argv;
    size_t *lens;
};

typedef struct eg_sub_s {
    char *channel;
    eg_message_fn fn;
    eg_resync_fn resync;
    void *udata;
    bool resync_armed; /* call resync when the channel's re-subscription is confirmed */
} eg_sub_t;

struct eg_store_s {
    uv_loop_t *loop;
    eg_redis_url_t url;
    char addr[300]; /* "host:port" or the socket path, for messages */
    int pool;
    uint64_t cmd_timeout_ms, connect_timeout_ms;
    eg_conn_t *conns; /* pool command connections, then the pub/sub connection */
    int ready;        /* READY command connections */
    int rr;
    uv_timer_t sweep;
    eg_cmd_list_t cmds;   /* pool commands with a deadline */
    eg_conn_t *dedicated; /* dedicated connections, open or still closing */
    eg_sub_t *subs;
    int nsubs, subs_cap;
    eg_script_t **scripts;
    int nscripts, scripts_cap;
    uint64_t rng;
    int live; /* open handles and in-flight requests that reference this struct */
    bool closing;
    void (*done)(void *);
    void *done_udata;
};

/* The process-wide store (NULL before eg_store_init) and the last connection error text. */
extern eg_store_t *eg__g_store;
extern char eg__g_last_error[512];

/* True when a pooled command connection is ready. */
bool eg__rs_store_any_ready(const eg_store_t *s);

/* Is this connection past retrying (its store or, for a dedicated one, its owner closed it)? */
bool eg__rs_conn_closing(const eg_conn_t *c);

/* True when commands may be sent on c now (ready, attached, not stuck). */
bool eg__rs_conn_usable(const eg_conn_t *c);

/* Free a dedicated connection once its owner let go and its last handle is closed. */
void eg__rs_conn_unref(eg_conn_t *c);

/* The current attempt or connection failed: record why, drop it and retry with backoff. */
void eg__rs_conn_fail(eg_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send SUBSCRIBE for channel on the pub/sub connection c. */
void eg__rs_pubsub_send_subscribe(eg_conn_t *c, const char *channel);

/* First subscription for its channel? (A channel is subscribed once, whatever the count.) */
bool eg__rs_sub_first(const eg_store_t *s, int i);

/* Start (or restart) a connection attempt: resolve, connect, handshake. */
void eg__rs_conn_start(eg_conn_t *c);

/* Close a dedicated connection's handles; its pending commands get EG_EUNAVAIL. */
void eg__rs_dconn_close_handles(eg_conn_t *c);

/* Wrap a command formatted by hiredis (len < 0: formatting failed) for fn and send it on the
 * dedicated connection c, or on any ready pooled connection when c is NULL. cmd stays the
 * caller's. */
int eg__rs_cmd_send_formatted(eg_conn_t *c, eg_reply_fn fn, void *udata, const char *cmd, int len);

/* Send a formatted command on connection c. On failure the caller still owns w. */
int eg__rs_cmd_send_on(eg_store_t *s, eg_conn_t *c, eg_cmd_t *w, const char *cmd, size_t len);

/* Send on any ready connection; frees w when it is not accepted. */
int eg__rs_cmd_submit(eg_cmd_t *w, const char *cmd, size_t len);

/* The periodic sweep: fail commands past their deadline and drop their stuck connections. */
void eg__rs_store_sweep_cb(uv_timer_t *t);

/* hiredis callback of every pub/sub reply: messages to subscribers, (re)subscribe confirmations. */
void eg__rs_pubsub_message_cb(redisAsyncContext *ac, void *r, void *privdata);

#endif
