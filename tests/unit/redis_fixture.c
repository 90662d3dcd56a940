/* A private redis-server per test and the end-of-loop leak check; see redis_fixture.h. */
#include "redis_fixture.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "engram/log.h"

t_redis_t t_own;
static char shared_url[256];

int t_reserve_port(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

int t_free_port(void)
{
    int port, fd = t_reserve_port(&port);

    close(fd);
    return port;
}

/* The unix socket a secure server listens on. */
static void t_redis_sock(char *out, size_t n, int port)
{
    snprintf(out, n, "/tmp/engram-test-%d.sock", port);
}

/* Is r's child the server answering on port? (Parallel tests may race for a port: the answer
 * must come from the process we started, not from a neighbour's server.) */
static bool t_redis_is(const t_redis_t *r, pid_t pid, int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *rep = NULL;
    char want[32];
    bool ok = false;

    if (c == NULL || c->err != 0)
        goto done;
    if (r->secure) {
        rep = redisCommand(c, "AUTH alice s3cret");
        if (rep != NULL)
            freeReplyObject(rep);
    }
    rep = redisCommand(c, "INFO server");
    snprintf(want, sizeof(want), "process_id:%d\r\n", (int)pid);
    ok = rep != NULL && rep->type == REDIS_REPLY_STRING && strstr(rep->str, want) != NULL;
    if (rep != NULL)
        freeReplyObject(rep);
done:
    if (c != NULL)
        redisFree(c);
    return ok;
}

bool t_redis_try_start(t_redis_t *r, int port)
{
    const char *bin = getenv("ENGRAM_REDIS_SERVER");
    char portstr[16], sock[64];
    pid_t pid;

    if (bin == NULL || bin[0] == '\0')
        bin = "redis-server";
    snprintf(portstr, sizeof(portstr), "%d", port);
    t_redis_sock(sock, sizeof(sock), port);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(devnull, 1);
        dup2(devnull, 2);
        if (r->secure)
            execlp(bin, bin, "--port", portstr, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                   "no", "--daemonize", "no", "--dir", "/tmp", "--unixsocket", sock,
                   "--unixsocketperm", "700", "--requirepass", "p@ss word", "--user", "alice", "on",
                   ">s3cret", "~*", "&*", "+@all", (char *)NULL);
        else
            execlp(bin, bin, "--port", portstr, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                   "no", "--daemonize", "no", "--dir", "/tmp", (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    r->port = port;
    snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d/0", port);
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            r->pid = 0; /* it exited: the port was taken */
            if (r->secure)
                unlink(sock);
            return false;
        }
        if (t_redis_is(r, pid, port))
            return true;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    r->pid = 0;
    if (r->secure)
        unlink(sock);
    return false;
}

void t_redis_start(t_redis_t *r, int port)
{
    cr_assert(t_redis_try_start(r, port), "redis-server did not start on port %d", port);
}

void t_redis_start_any(t_redis_t *r)
{
    for (int i = 0; i < 10; i++)
        if (t_redis_try_start(r, t_free_port()))
            return;
    cr_assert_fail("could not start redis-server");
}

void t_redis_kill(t_redis_t *r)
{
    char sock[64];

    if (r->pid <= 0)
        return;
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
    if (r->secure) {
        t_redis_sock(sock, sizeof(sock), r->port);
        unlink(sock); /* left behind by SIGKILL */
    }
}

void t_redis_setup(void)
{
    const char *env = getenv("ENGRAM_TEST_REDIS_URL");

    eg_log_set_level(EG_LOG_OFF);
    memset(&t_own, 0, sizeof(t_own));
    snprintf(shared_url, sizeof(shared_url), "%s", env != NULL ? env : "");
}

void t_redis_teardown(void)
{
    t_redis_kill(&t_own);
}

const char *t_url(void)
{
    if (shared_url[0] == '\0') {
        t_redis_start_any(&t_own);
        snprintf(shared_url, sizeof(shared_url), "%s", t_own.url);
    }
    return shared_url;
}

const char *t_private_url(void)
{
    t_redis_start_any(&t_own);
    return t_own.url;
}

static void t_count_handles(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(int *)arg)++;
}

void t_loop_close_checked(uv_loop_t *loop)
{
    int handles = 0;

    uv_walk(loop, t_count_handles, &handles);
    cr_assert_eq(handles, 0, "%d handles leaked", handles);
    cr_assert_eq(uv_loop_close(loop), 0);
}
