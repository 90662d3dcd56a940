/* Redis store: shared async hiredis connections on the loop, Lua scripts, pub/sub. */
#ifndef ENGRAM_STORE_H
#define ENGRAM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "engram/arena.h"

/* Parsed redis://[user:password@]host[:port][/db] (also unix:///path/sock?db=N). */
typedef struct eg_redis_url_s {
    char host[256];
    int port;
    char unix_path[256]; /* non-empty for unix sockets */
    char user[128];
    char password[256];
    int db;
} eg_redis_url_t;

/* Parse a Redis URL. 0 or EG_EINVAL. */
int eg_redis_url_parse(const char *url, eg_redis_url_t *out);

typedef struct eg_store_opts_s {
    const char *url;             /* redis URL */
    int pool;                    /* shared command connections (>=1) */
    uint64_t cmd_timeout_ms;     /* per-command timeout; 0 = none */
    uint64_t connect_timeout_ms; /* per connect attempt */
} eg_store_opts_t;

/* Called exactly once per accepted command. err is 0 with a reply (which may be a Redis error
 * reply: check reply->type == REDIS_REPLY_ERROR), or EG_EUNAVAIL / EG_ESTORETIMEOUT with reply
 * NULL. The reply is freed after the callback returns: copy what you keep. */
typedef void (*eg_reply_fn)(void *udata, int err, redisReply *reply);

/* Called for every message on a subscribed channel (payload not NUL-terminated). */
typedef void (*eg_message_fn)(void *udata, const char *channel, const char *payload, size_t len);

/* Called when the pub/sub connection (re)subscribes after being down: caches may be stale. */
typedef void (*eg_resync_fn)(void *udata);

/* Start connecting (never blocks); connections retry with backoff forever. 0 or EG_EINVAL. */
int eg_store_init(uv_loop_t *loop, const eg_store_opts_t *opts);

/* Close every connection; pending commands get EG_EUNAVAIL. done(udata) runs once all handles
 * are closed (may be NULL). */
void eg_store_shutdown(void (*done)(void *), void *udata);

/* The loop the store runs on (NULL when not initialised), for modules built on the store. */
uv_loop_t *eg_store_loop(void);

/* True when at least one command connection is connected and ready. */
bool eg_store_up(void);

/* Last connection error text ("" when none), for /health. */
const char *eg_store_last_error(void);

/* Why a store call failed with err, for error messages: the last connection error when there is
 * one (e.g. "connect 127.0.0.1:6379: Connection refused"), else eg_strerror(err). */
const char *eg_store_error_text(int err);

/* Queue a command (hiredis printf-style format). Returns 0 (fn will be called) or EG_EUNAVAIL
 * immediately when no connection is ready (fn is NOT called). */
int eg_store_command(eg_reply_fn fn, void *udata, const char *fmt, ...);

/* Same with an argument vector (binary-safe). */
int eg_store_commandv(eg_reply_fn fn, void *udata, int argc, const char **argv, const size_t *lens);

/* A Lua script registered once (static storage), loaded with SCRIPT LOAD on every connection
 * and called with EVALSHA; a NOSCRIPT reply reloads it transparently. */
typedef struct eg_script_s {
    const char *name;
    const char *source;
    char sha[41]; /* filled by eg_store_eval on first use (SHA-1 of source) */
} eg_script_t;

/* EVALSHA script with nkeys keys followed by the remaining args (argv has argc entries, lens may
 * be NULL for NUL-terminated strings). Same return/callback contract as eg_store_command. */
int eg_store_eval(eg_script_t *script, eg_reply_fn fn, void *udata, int nkeys, int argc,
                  const char **argv, const size_t *lens);

/* Subscribe to a channel on the dedicated pub/sub connection (kept across reconnects). */
int eg_store_subscribe(const char *channel, eg_message_fn fn, eg_resync_fn resync, void *udata);

/* Subscribe like eg_store_subscribe, and also call resync once Redis has confirmed this first
 * subscription: from then on no message on the channel is missed, so a caller that reads state in
 * resync sees everything published after that state. EG_ECONFLICT when the channel is already
 * subscribed in this process (there would be no confirmation to wait for). */
int eg_store_subscribe_confirmed(const char *channel, eg_message_fn fn, eg_resync_fn resync,
                                 void *udata);

/* Remove the subscription made with the same (channel, fn, udata); the channel is unsubscribed
 * in Redis when nobody else in this process needs it. 0 or EG_ENOTFOUND. */
int eg_store_unsubscribe(const char *channel, eg_message_fn fn, void *udata);

/* Publish fire-and-forget on a command connection. 0 or EG_EUNAVAIL. */
int eg_store_publish(const char *channel, const char *payload, size_t len);

/* Ping Redis now; fn gets the PONG (or an error) like any command. */
int eg_store_ping(eg_reply_fn fn, void *udata);

/* Number of ready command connections and configured total, for /health. */
void eg_store_stats(int *ready, int *total);

/* A dedicated connection: one hiredis connection owned by one caller, for blocking commands
 * (XREADGROUP ... BLOCK, BLPOP) that must not stall the shared pool. It connects and reconnects
 * like the pool (same backoff, forever); commands on it time out after the store's command
 * timeout plus block_ms (none when the store has no command timeout). */
typedef struct eg_conn_s eg_store_conn_t;

/* Open one; ready(udata) runs each time it becomes (or becomes again) ready, which is when a
 * blocking loop should restart. NULL when the store is not initialised or is shutting down. */
eg_store_conn_t *eg_store_dedicated_open(uint64_t block_ms, void (*ready)(void *), void *udata);

/* True when the connection is ready for commands. */
bool eg_store_dedicated_up(const eg_store_conn_t *c);

/* Queue a command on it: same contract as eg_store_command (0 and fn called exactly once, or
 * EG_EUNAVAIL and fn not called when the connection is not ready). */
int eg_store_dedicated_command(eg_store_conn_t *c, eg_reply_fn fn, void *udata, const char *fmt,
                               ...);

/* Close it (pending commands get EG_EUNAVAIL, possibly from inside this call); c is invalid
 * afterwards. eg_store_shutdown closes the connection too, but its owner must still call this
 * (then it only frees); eg_store_shutdown's done runs without waiting for that. */
void eg_store_dedicated_close(eg_store_conn_t *c);

/* Keyspace: build "eg:{<scope>:<id>}:<suffix>" (or "eg:{<scope>}:<suffix>" when id is NULL) in
 * the arena. Every key carries the hash tag of its atomic scope so Lua scripts stay valid on
 * Redis Cluster (see docs/keyspace.md). */
char *eg_key(eg_arena_t *a, const char *scope, const char *id, const char *suffix_fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
