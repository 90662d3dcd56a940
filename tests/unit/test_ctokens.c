/* Client tokens against a real redis-server: issue, peek, consume exactly once (also when two
 * uses race on two connections), workspace and purpose checks that do not consume, expiry, the
 * any-workspace peek of download links, and the TTL setting.
 *
 * Each test runs its own loop; t_until steps it until a condition holds (a 5 ms timer keeps it
 * turning) and fails the test after a deadline. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engram/ctokens.h"
#include "engram/error.h"
#include "engram/store.h"
#include "engram/util.h"

#include "redis_fixture.h"

TestSuite(ctokens, .init = t_redis_setup, .fini = t_redis_teardown, .timeout = 60);

static uv_loop_t t_loop;
static uv_timer_t t_tick;
static int t_closed;

static void t_tick_cb(uv_timer_t *h)
{
    (void)h;
}

static void t_until_fn(bool (*cond)(void *), void *arg, uint64_t ms)
{
    uint64_t end = uv_now(&t_loop) + ms;

    while (!cond(arg)) {
        cr_assert(uv_now(&t_loop) < end, "timed out");
        uv_run(&t_loop, UV_RUN_ONCE);
    }
}

static bool t_store_up(void *arg)
{
    (void)arg;
    return eg_store_up();
}

/* Step the loop until *count >= want. */
static void t_until(int *count, int want)
{
    uint64_t end = uv_now(&t_loop) + 5000;

    while (*count < want) {
        cr_assert(uv_now(&t_loop) < end, "timed out waiting for %d callbacks", want);
        uv_run(&t_loop, UV_RUN_ONCE);
    }
}

static void t_start(void)
{
    eg_store_opts_t opts = {t_url(), 2, 3000, 2000};

    cr_assert_eq(uv_loop_init(&t_loop), 0);
    cr_assert_eq(eg_store_init(&t_loop, &opts), 0);
    uv_timer_init(&t_loop, &t_tick);
    uv_timer_start(&t_tick, t_tick_cb, 5, 5);
    t_until_fn(t_store_up, NULL, 5000);
}

static void t_store_closed(void *udata)
{
    (void)udata;
    t_closed++;
}

static void t_stop(void)
{
    t_closed = 0;
    eg_store_shutdown(t_store_closed, NULL);
    uv_close((uv_handle_t *)&t_tick, NULL);
    uv_run(&t_loop, UV_RUN_DEFAULT);
    cr_assert_eq(t_closed, 1);
    t_loop_close_checked(&t_loop);
}

static void t_ws(char *out, size_t n, const char *tag)
{
    char r[9];

    eg_random_base62(r, 8);
    snprintf(out, n, "t-%s-%d-%s", tag, (int)getpid(), r);
}

/* ---- callbacks ------------------------------------------------------------------------------- */

typedef struct {
    int done, err;
    char token[EG_CTOKEN_LEN + 1];
    char payload[512];
} t_res_t;

static void t_issued(void *udata, int err, const char *token)
{
    t_res_t *r = udata;

    r->err = err;
    if (err == 0)
        snprintf(r->token, sizeof(r->token), "%s", token);
    r->done++;
}

static void t_used(void *udata, int err, const cJSON *payload)
{
    t_res_t *r = udata;
    char *s;

    r->err = err;
    r->payload[0] = '\0';
    if (err == 0) {
        cr_assert(cJSON_IsObject(payload));
        s = cJSON_PrintUnformatted(payload);
        snprintf(r->payload, sizeof(r->payload), "%s", s);
        free(s);
    } else {
        cr_assert_null(payload);
    }
    r->done++;
}

static void t_issue(const char *ws, eg_ctoken_purpose_t p, const char *payload, uint64_t ttl,
                    t_res_t *r)
{
    cJSON *j = payload ? cJSON_Parse(payload) : NULL;

    memset(r, 0, sizeof(*r));
    cr_assert_eq(eg_ctoken_issue(ws, p, j, "ses_x", ttl, t_issued, r), 0);
    cJSON_Delete(j);
    t_until(&r->done, 1);
    cr_assert_eq(r->err, 0);
    cr_assert(eg_ctoken_valid(r->token), "bad token %s", r->token);
}

static int t_use(const char *token, const char *ws, eg_ctoken_purpose_t p, bool consume,
                 char *payload_out)
{
    t_res_t r = {0};
    int rc = consume ? eg_ctoken_consume(token, ws, p, t_used, &r)
                     : eg_ctoken_peek(token, ws, p, t_used, &r);

    cr_assert_eq(rc, 0);
    t_until(&r.done, 1);
    if (payload_out)
        strcpy(payload_out, r.payload);
    return r.err;
}

/* ---- tests ----------------------------------------------------------------------------------- */

Test(ctokens, names_and_format)
{
    cr_assert_str_eq(eg_ctoken_purpose_name(EG_CTOKEN_CREATE_STREAM), "CREATE_STREAM");
    cr_assert_str_eq(eg_ctoken_purpose_name(EG_CTOKEN_CREATE_AGENT_TASK), "CREATE_AGENT_TASK");
    cr_assert_str_eq(eg_ctoken_purpose_name(EG_CTOKEN_CREATE_AGENT_TASK_FILE_DOWNLOAD),
                     "CREATE_AGENT_TASK_FILE_DOWNLOAD");
    cr_assert_str_eq(eg_ctoken_purpose_name(EG_CTOKEN_GET_AGENT_TASK_RESPONSE),
                     "GET_AGENT_TASK_RESPONSE");
    cr_assert_null(eg_ctoken_purpose_name(EG_CTOKEN__COUNT));
    cr_assert(eg_ctoken_valid("cf4fe6caa10b4009a8b103d2d5d64042"));
    cr_assert_not(eg_ctoken_valid("cf4fe6caa10b4009a8b103d2d5d6404"));   /* 31 */
    cr_assert_not(eg_ctoken_valid("cf4fe6caa10b4009a8b103d2d5d640421")); /* 33 */
    cr_assert_not(eg_ctoken_valid("CF4FE6CAA10B4009A8B103D2D5D64042"));  /* uppercase */
    cr_assert_not(eg_ctoken_valid("gf4fe6caa10b4009a8b103d2d5d64042"));
    cr_assert_not(eg_ctoken_valid(NULL));
}

Test(ctokens, ttl_default_and_env)
{
    cr_assert_eq(eg_ctoken_ttl_ms(), EG_CTOKEN_TTL_MS);
}

Test(ctokens, ttl_from_env)
{
    setenv("ENGRAM_FENCY_CLIENT_TOKEN_TTL", "1500ms", 1);
    cr_assert_eq(eg_ctoken_ttl_ms(), 1500);
}

Test(ctokens, ttl_invalid_env_keeps_default)
{
    setenv("ENGRAM_FENCY_CLIENT_TOKEN_TTL", "soon", 1);
    cr_assert_eq(eg_ctoken_ttl_ms(), EG_CTOKEN_TTL_MS);
}

Test(ctokens, bad_arguments)
{
    cJSON *arr = cJSON_CreateArray();

    cr_assert_eq(eg_ctoken_issue(NULL, EG_CTOKEN_CREATE_STREAM, NULL, NULL, 0, t_issued, NULL),
                 EG_EINVAL);
    cr_assert_eq(eg_ctoken_issue("w", EG_CTOKEN__COUNT, NULL, NULL, 0, t_issued, NULL), EG_EINVAL);
    cr_assert_eq(eg_ctoken_issue("w", EG_CTOKEN_CREATE_STREAM, arr, NULL, 0, t_issued, NULL),
                 EG_EINVAL);
    /* A malformed token is refused at once, like an unknown one. */
    cr_assert_eq(eg_ctoken_peek("nope", "w", EG_CTOKEN_CREATE_STREAM, t_used, NULL), EG_EAUTH);
    cr_assert_eq(eg_ctoken_consume("", "w", EG_CTOKEN_CREATE_STREAM, t_used, NULL), EG_EAUTH);
    /* Only download links may be looked at without a workspace, and never consumed so. */
    cr_assert_eq(eg_ctoken_peek("cf4fe6caa10b4009a8b103d2d5d64042", NULL, EG_CTOKEN_CREATE_STREAM,
                                t_used, NULL),
                 EG_EINVAL);
    cr_assert_eq(eg_ctoken_consume("cf4fe6caa10b4009a8b103d2d5d64042", NULL, EG_CTOKEN_DOWNLOAD,
                                   t_used, NULL),
                 EG_EINVAL);
    cJSON_Delete(arr);
}

Test(ctokens, issue_peek_consume_once)
{
    char ws[64], payload[512];
    t_res_t r;

    t_ws(ws, sizeof(ws), "ct");
    t_start();
    t_issue(ws, EG_CTOKEN_CREATE_AGENT_TASK,
            "{\"taskType\":\"MEMORY_SEARCH\",\"metadata\":{\"a\":1}}", 0, &r);
    /* Peeking does not consume, however often. */
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_CREATE_AGENT_TASK, false, payload), 0);
    cr_assert_str_eq(payload, "{\"taskType\":\"MEMORY_SEARCH\",\"metadata\":{\"a\":1}}");
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_CREATE_AGENT_TASK, false, NULL), 0);
    /* The first use wins and returns the payload; every later one finds nothing. */
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_CREATE_AGENT_TASK, true, payload), 0);
    cr_assert_str_eq(payload, "{\"taskType\":\"MEMORY_SEARCH\",\"metadata\":{\"a\":1}}");
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_CREATE_AGENT_TASK, true, NULL), EG_EAUTH);
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_CREATE_AGENT_TASK, false, NULL), EG_EAUTH);
    /* An unknown (well-formed) token is the same as a used one. */
    cr_assert_eq(t_use("00000000000000000000000000000000", ws, EG_CTOKEN_CREATE_STREAM, true, NULL),
                 EG_EAUTH);
    t_stop();
}

Test(ctokens, null_payload_is_empty_object)
{
    char ws[64], payload[512];
    t_res_t r;

    t_ws(ws, sizeof(ws), "ct");
    t_start();
    t_issue(ws, EG_CTOKEN_CREATE_STREAM, NULL, 0, &r);
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_CREATE_STREAM, true, payload), 0);
    cr_assert_str_eq(payload, "{}");
    t_stop();
}

Test(ctokens, wrong_workspace_or_purpose_does_not_consume)
{
    char ws[64], other[64];
    t_res_t r;

    t_ws(ws, sizeof(ws), "ct");
    t_ws(other, sizeof(other), "ct2");
    t_start();
    t_issue(ws, EG_CTOKEN_CREATE_STREAM, "{}", 0, &r);
    cr_assert_eq(t_use(r.token, other, EG_CTOKEN_CREATE_STREAM, true, NULL), EG_EFORBIDDEN);
    cr_assert_eq(t_use(r.token, other, EG_CTOKEN_CREATE_STREAM, false, NULL), EG_EFORBIDDEN);
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_CREATE_AGENT_TASK, true, NULL), EG_EFORBIDDEN);
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_GET_AGENT_TASK_RESPONSE, false, NULL), EG_EFORBIDDEN);
    /* Still good for its holder. */
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_CREATE_STREAM, true, NULL), 0);
    t_stop();
}

/* Two uses of one token in flight at once, on the pool's two connections: exactly one wins. */
Test(ctokens, racing_uses_one_wins)
{
    enum { N = 20 };
    char ws[64];
    t_res_t issued[N], a[N], b[N];
    int done = 0;

    t_ws(ws, sizeof(ws), "race");
    t_start();
    for (int i = 0; i < N; i++)
        t_issue(ws, EG_CTOKEN_CREATE_STREAM, "{}", 0, &issued[i]);
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(eg_ctoken_consume(issued[i].token, ws, EG_CTOKEN_CREATE_STREAM, t_used, &a[i]),
                     0);
        cr_assert_eq(eg_ctoken_consume(issued[i].token, ws, EG_CTOKEN_CREATE_STREAM, t_used, &b[i]),
                     0);
    }
    for (int i = 0; i < N; i++) {
        t_until(&a[i].done, 1);
        t_until(&b[i].done, 1);
        cr_assert((a[i].err == 0) != (b[i].err == 0), "token %d: %d and %d", i, a[i].err, b[i].err);
        cr_assert(a[i].err == EG_EAUTH || b[i].err == EG_EAUTH);
        done++;
    }
    cr_assert_eq(done, N);
    t_stop();
}

Test(ctokens, expires_unused)
{
    char ws[64];
    t_res_t r, keep;
    uint64_t until;

    t_ws(ws, sizeof(ws), "exp");
    t_start();
    t_issue(ws, EG_CTOKEN_CREATE_STREAM, "{}", 150, &r);
    t_issue(ws, EG_CTOKEN_CREATE_STREAM, "{}", 60000, &keep);
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_CREATE_STREAM, false, NULL), 0);
    until = uv_now(&t_loop) + 300;
    while (uv_now(&t_loop) < until)
        uv_run(&t_loop, UV_RUN_ONCE);
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_CREATE_STREAM, true, NULL), EG_EAUTH);
    cr_assert_eq(t_use(keep.token, ws, EG_CTOKEN_CREATE_STREAM, true, NULL), 0);
    t_stop();
}

Test(ctokens, download_links_peek_from_any_workspace)
{
    char ws[64], payload[512];
    t_res_t r;

    t_ws(ws, sizeof(ws), "dl");
    t_start();
    t_issue(ws, EG_CTOKEN_DOWNLOAD, "{\"agentTaskId\":\"ata_1\"}", 0, &r);
    cr_assert_eq(t_use(r.token, NULL, EG_CTOKEN_DOWNLOAD, false, payload), 0);
    cr_assert_str_eq(payload, "{\"agentTaskId\":\"ata_1\"}");
    /* Repeated GETs of a link work until it expires. */
    cr_assert_eq(t_use(r.token, NULL, EG_CTOKEN_DOWNLOAD, false, NULL), 0);
    /* It is no client token of any other purpose. */
    cr_assert_eq(t_use(r.token, ws, EG_CTOKEN_GET_AGENT_TASK_RESPONSE, true, NULL), EG_EFORBIDDEN);
    t_stop();
}
