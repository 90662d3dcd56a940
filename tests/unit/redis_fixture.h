/* A private redis-server per test, for the unit tests that run against real Redis
 * (test_store.c, test_queue.c, test_events.c), and the end-of-loop leak check they share.
 *
 * ENGRAM_TEST_REDIS_URL names a shared server when the test script provides one; otherwise, and
 * for tests that stop, kill or disconnect Redis, a test starts its own server
 * (ENGRAM_REDIS_SERVER, default "redis-server" on PATH) on a free loopback port. */
#ifndef ENGRAM_TESTS_REDIS_FIXTURE_H
#define ENGRAM_TESTS_REDIS_FIXTURE_H

#include <stdbool.h>
#include <sys/types.h>

#include <uv.h>

typedef struct {
    pid_t pid; /* 0 when not running */
    int port;
    char url[64];
    bool secure; /* start with a password, an ACL user and a unix socket (see redis_fixture.c) */
} t_redis_t;

/* The server this test started (t_private_url, t_url), killed in t_redis_teardown. */
extern t_redis_t t_own;

/* Binds a loopback TCP socket to a kernel-chosen port; returns the fd, the port in *port. */
int t_reserve_port(int *port);
/* Returns a loopback port that was free a moment ago. */
int t_free_port(void);
/* Starts redis-server on port and waits until it answers; false if it could not (port taken). */
bool t_redis_try_start(t_redis_t *r, int port);
/* Starts redis-server on port or fails the test. */
void t_redis_start(t_redis_t *r, int port);
/* Starts redis-server on some free port or fails the test. */
void t_redis_start_any(t_redis_t *r);
/* Kills r's server (if running) and waits for it. */
void t_redis_kill(t_redis_t *r);
/* Suite .init: silences logging, forgets t_own, reads ENGRAM_TEST_REDIS_URL. */
void t_redis_setup(void);
/* Suite .fini: kills t_own's server. */
void t_redis_teardown(void);
/* A server for tests that only need a working Redis: the shared one, else t_own. */
const char *t_url(void);
/* A server this test may stop, kill or disconnect clients of: t_own, started now. */
const char *t_private_url(void);
/* Asserts that no handle is left on the finished loop and closes it. */
void t_loop_close_checked(uv_loop_t *loop);

#endif
