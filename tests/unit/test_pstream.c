/* Progress streams: the SSE framing (id + one base64 data line of the JSON), ids and tokens, and
 * against a real redis-server: create and check (token, workspace, unknown, expired), append
 * (numbered, buffered under the stream's key, published on its channel with streamId and a
 * timestamp added, refused once the stream expired), and the confirmed subscription of the store
 * that SSE serving relies on.
 *
 * The SSE serving itself (replay, Last-Event-ID, live delivery across processes, expiry) is
 * tested over HTTP in tests/integration/fency_streams.test.mjs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <mbedtls/base64.h>
#include <uv.h>

#include "engram/error.h"
#include "engram/pstream.h"
#include "engram/store.h"
#include "engram/util.h"

#include "redis_fixture.h"

TestSuite(pstream, .init = t_redis_setup, .fini = t_redis_teardown, .timeout = 60);

/* ---- framing --------------------------------------------------------------------------------- */

/* Decode the one "data: " line of an encoded event. */
static void t_decode_data(const char *ev, char *out, size_t cap)
{
    const char *d = strstr(ev, "data: "), *nl;
    size_t olen = 0;

    cr_assert_not_null(d);
    d += 6;
    nl = strchr(d, '\n');
    cr_assert_not_null(nl);
    cr_assert_eq(mbedtls_base64_decode((unsigned char *)out, cap - 1, &olen,
                                       (const unsigned char *)d, (size_t)(nl - d)),
                 0);
    out[olen] = '\0';
}

Test(pstream, frame_is_id_and_one_base64_line)
{
    const char *json = "{\"type\":\"AGENT_TASK_PROGRESS_ITEM_UPDATED\",\"text\":\"bl\xc3\xa5"
                       "b\xc3\xa6"
                       "r\n"
                       "line two\"}";
    eg_buf_t b = EG_BUF_INIT;
    char dec[256], *s;

    eg_pstream_sse_encode(&b, 42, json, strlen(json));
    eg_buf_append(&b, "", 1);
    s = b.data;
    cr_assert(strncmp(s, "id: 42\ndata: ", 13) == 0, "%s", s);
    /* One data line, ended by the blank line; padding kept. */
    cr_assert_eq(strstr(s + 13, "\n"), s + strlen(s) - 2);
    cr_assert_str_eq(s + strlen(s) - 2, "\n\n");
    t_decode_data(s, dec, sizeof(dec));
    cr_assert_str_eq(dec, json);
    eg_buf_free(&b);
}

Test(pstream, frame_without_id_and_padding)
{
    eg_buf_t b = EG_BUF_INIT;

    eg_pstream_sse_encode(&b, 0, "{}", 2); /* "{}" → "e30=" */
    eg_buf_append(&b, "", 1);
    cr_assert_str_eq(b.data, "data: e30=\n\n");
    eg_buf_clear(&b);
    eg_pstream_sse_encode(&b, 1, "{\"a\":1}", 7); /* 7 bytes: one '=' */
    eg_buf_append(&b, "", 1);
    cr_assert_str_eq(b.data, "id: 1\ndata: eyJhIjoxfQ==\n\n");
    eg_buf_free(&b);
}

Test(pstream, ids)
{
    cr_assert(eg_pstream_id_valid("str_0123456789abcdef0123456789abcdef"));
    cr_assert_not(eg_pstream_id_valid("str_0123456789abcdef0123456789abcde"));
    cr_assert_not(eg_pstream_id_valid("str_0123456789abcdef0123456789abcdef0"));
    cr_assert_not(eg_pstream_id_valid("stream_0123456789abcdef0123456789abcdef"));
    cr_assert_not(eg_pstream_id_valid("str_0123456789ABCDEF0123456789abcdef"));
    cr_assert_not(eg_pstream_id_valid(NULL));
}

Test(pstream, ttl_default_and_env)
{
    cr_assert_eq(eg_pstream_ttl_ms(), EG_PSTREAM_TTL_MS);
}

Test(pstream, ttl_from_env)
{
    setenv("ENGRAM_FENCY_STREAM_TTL", "2s", 1);
    cr_assert_eq(eg_pstream_ttl_ms(), 2000);
}

/* ---- loop harness ---------------------------------------------------------------------------- */

static uv_loop_t t_loop;
static uv_timer_t t_tick;
static int t_closed;

static void t_tick_cb(uv_timer_t *h)
{
    (void)h;
}

static void t_until(int *count, int want)
{
    uint64_t end = uv_now(&t_loop) + 5000;

    while (*count < want) {
        cr_assert(uv_now(&t_loop) < end, "timed out waiting for %d callbacks", want);
        uv_run(&t_loop, UV_RUN_ONCE);
    }
}

static void t_sleep(uint64_t ms)
{
    uint64_t end = uv_now(&t_loop) + ms;

    while (uv_now(&t_loop) < end)
        uv_run(&t_loop, UV_RUN_ONCE);
}

static void t_start(void)
{
    eg_store_opts_t opts = {t_url(), 2, 3000, 2000};
    uint64_t end;

    cr_assert_eq(uv_loop_init(&t_loop), 0);
    cr_assert_eq(eg_store_init(&t_loop, &opts), 0);
    uv_timer_init(&t_loop, &t_tick);
    uv_timer_start(&t_tick, t_tick_cb, 5, 5);
    end = uv_now(&t_loop) + 5000;
    while (!eg_store_up()) {
        cr_assert(uv_now(&t_loop) < end, "store not up");
        uv_run(&t_loop, UV_RUN_ONCE);
    }
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

typedef struct {
    int done, err;
    char id[EG_PSTREAM_ID_MAX], token[EG_PSTREAM_TOKEN_MAX], ws[64];
    int64_t created_us, expires_us;
} t_stream_t;

static void t_got_stream(void *udata, int err, const eg_pstream_t *s)
{
    t_stream_t *r = udata;

    r->err = err;
    if (err == 0) {
        snprintf(r->id, sizeof(r->id), "%s", s->id);
        snprintf(r->token, sizeof(r->token), "%s", s->token);
        snprintf(r->ws, sizeof(r->ws), "%s", s->ws_id);
        r->created_us = s->created_us;
        r->expires_us = s->expires_us;
    } else {
        cr_assert_null(s);
    }
    r->done++;
}

static void t_create(const char *ws, t_stream_t *r)
{
    memset(r, 0, sizeof(*r));
    cr_assert_eq(eg_pstream_create(ws, t_got_stream, r), 0);
    t_until(&r->done, 1);
    cr_assert_eq(r->err, 0);
}

static int t_check(const char *ws, const char *id, const char *token, t_stream_t *out)
{
    t_stream_t r = {0};
    int rc = eg_pstream_check(ws, id, token, t_got_stream, &r);

    if (rc != 0)
        return rc;
    t_until(&r.done, 1);
    if (out != NULL)
        *out = r;
    return r.err;
}

typedef struct {
    int done, err;
} t_done_t;

static void t_appended(void *udata, int err)
{
    t_done_t *d = udata;

    d->err = err;
    d->done++;
}

static int t_append(const char *id, const char *json)
{
    t_done_t d = {0};
    cJSON *m = cJSON_Parse(json);
    int rc;

    cr_assert_not_null(m);
    rc = eg_pstream_append(id, m, t_appended, &d);
    cJSON_Delete(m);
    if (rc != 0)
        return rc;
    t_until(&d.done, 1);
    return d.err;
}

/* ---- create / check -------------------------------------------------------------------------- */

Test(pstream, create_and_check)
{
    char ws[64], other[64], bad[EG_PSTREAM_TOKEN_MAX];
    t_stream_t s, c;

    t_ws(ws, sizeof(ws), "ps");
    t_ws(other, sizeof(other), "ps2");
    t_start();
    t_create(ws, &s);
    cr_assert(eg_pstream_id_valid(s.id), "%s", s.id);
    /* The token names its stream: the id's hex, a dot, 43 base62 characters. */
    cr_assert_eq(strlen(s.token), 32 + 1 + 43);
    cr_assert(strncmp(s.token, s.id + 4, 32) == 0);
    cr_assert_eq(s.token[32], '.');
    cr_assert_eq(s.expires_us - s.created_us, (int64_t)EG_PSTREAM_TTL_MS * 1000);
    cr_assert_str_eq(s.ws, ws);

    cr_assert_eq(t_check(ws, s.id, s.token, &c), 0);
    cr_assert_str_eq(c.id, s.id);
    cr_assert_eq(c.created_us, s.created_us);
    cr_assert_eq(c.expires_us, s.expires_us);
    /* By token alone. */
    cr_assert_eq(t_check(ws, NULL, s.token, &c), 0);
    cr_assert_str_eq(c.id, s.id);
    /* Another workspace, a wrong token: unauthorized. */
    cr_assert_eq(t_check(other, s.id, s.token, NULL), EG_EAUTH);
    snprintf(bad, sizeof(bad), "%s", s.token);
    bad[40] = bad[40] == 'a' ? 'b' : 'a';
    cr_assert_eq(t_check(ws, s.id, bad, NULL), EG_EAUTH);
    cr_assert_eq(t_check(ws, NULL, "garbage", NULL), EG_EAUTH);
    /* Unknown or malformed ids: not found. */
    cr_assert_eq(t_check(ws, "str_00000000000000000000000000000000", s.token, NULL), EG_ENOTFOUND);
    cr_assert_eq(t_check(ws, "str_nope", s.token, NULL), EG_ENOTFOUND);
    t_stop();
}

/* ---- append ---------------------------------------------------------------------------------- */

typedef struct {
    int n;
    char last[1024];
} t_sub_t;

static void t_on_message(void *udata, const char *channel, const char *payload, size_t len)
{
    t_sub_t *s = udata;

    (void)channel;
    cr_assert_lt(len, sizeof(s->last));
    memcpy(s->last, payload, len);
    s->last[len] = '\0';
    s->n++;
}

static void t_on_confirmed(void *udata)
{
    (*(int *)udata)++;
}

static redisReply *t_sync(const char *fmt, const char *arg)
{
    eg_redis_url_t u;
    redisContext *c;
    redisReply *r;

    cr_assert_eq(eg_redis_url_parse(t_url(), &u), 0);
    c = redisConnect(u.host, u.port);
    cr_assert(c != NULL && c->err == 0);
    if (u.db)
        freeReplyObject(redisCommand(c, "SELECT %d", u.db));
    r = redisCommand(c, fmt, arg);
    redisFree(c);
    return r;
}

Test(pstream, append_buffers_and_publishes)
{
    char ws[64], chan[64], key[64];
    t_stream_t s;
    t_sub_t sub = {0};
    int confirmed = 0;
    cJSON *j;
    redisReply *r;

    t_ws(ws, sizeof(ws), "ap");
    t_start();
    t_create(ws, &s);
    snprintf(chan, sizeof(chan), "eg:fs:%s", s.id);
    /* The store's confirmed subscription calls back once Redis has confirmed it. */
    cr_assert_eq(eg_store_subscribe_confirmed(chan, t_on_message, t_on_confirmed, &confirmed), 0);
    t_until(&confirmed, 1);
    cr_assert_eq(eg_store_unsubscribe(chan, t_on_message, &confirmed), 0);
    cr_assert_eq(eg_store_subscribe(chan, t_on_message, NULL, &sub), 0);
    /* A second confirmed subscription to a channel already subscribed cannot be confirmed. */
    cr_assert_eq(eg_store_subscribe_confirmed(chan, t_on_message, t_on_confirmed, &confirmed),
                 EG_ECONFLICT);
    t_sleep(50); /* the plain subscription has no confirmation to wait for */

    cr_assert_eq(t_append(s.id, "{\"type\":\"AGENT_TASK_PROGRESS_ITEM_UPDATED\",\"n\":1,"
                                "\"streamId\":\"str_wrong\"}"),
                 0);
    t_until(&sub.n, 1);
    cr_assert(strncmp(sub.last, "1 {", 3) == 0, "%s", sub.last);
    j = cJSON_Parse(sub.last + 2);
    cr_assert_not_null(j);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "streamId")->valuestring, s.id);
    cr_assert_eq(strlen(cJSON_GetObjectItem(j, "timestamp")->valuestring),
                 strlen("2024-04-08T17:02:27.887295Z"));
    cr_assert_eq(cJSON_GetObjectItem(j, "n")->valueint, 1);
    cJSON_Delete(j);
    /* A timestamp given is kept. */
    cr_assert_eq(t_append(s.id, "{\"n\":2,\"timestamp\":\"2024-04-08T17:02:27.887295Z\"}"), 0);
    t_until(&sub.n, 2);
    cr_assert(strncmp(sub.last, "2 {", 3) == 0, "%s", sub.last);
    cr_assert_not_null(strstr(sub.last, "\"timestamp\":\"2024-04-08T17:02:27.887295Z\""));

    /* Buffered under the stream's key, numbered, expiring with the stream. */
    snprintf(key, sizeof(key), "eg:{fs:%s}:b", s.id);
    r = t_sync("XRANGE %s - +", key);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 2);
    cr_assert_str_eq(r->element[0]->element[0]->str, "1-1");
    cr_assert_str_eq(r->element[1]->element[0]->str, "2-1");
    cr_assert_str_eq(r->element[1]->element[1]->element[0]->str, "m");
    freeReplyObject(r);
    r = t_sync("PTTL %s", key);
    cr_assert(r->integer > 0 && r->integer <= EG_PSTREAM_TTL_MS, "%lld", r->integer);
    freeReplyObject(r);

    /* Only objects; unknown streams are gone. */
    j = cJSON_CreateArray();
    cr_assert_eq(eg_pstream_append(s.id, j, NULL, NULL), EG_EINVAL);
    cJSON_Delete(j);
    cr_assert_eq(t_append("str_bad", "{}"), EG_EINVAL);
    cr_assert_eq(t_append("str_00000000000000000000000000000000", "{}"), EG_ENOTFOUND);
    cr_assert_eq(eg_store_unsubscribe(chan, t_on_message, &sub), 0);
    t_stop();
}

Test(pstream, expires)
{
    char ws[64];
    t_stream_t s;

    setenv("ENGRAM_FENCY_STREAM_TTL", "200ms", 1);
    t_ws(ws, sizeof(ws), "ex");
    t_start();
    t_create(ws, &s);
    cr_assert_eq(s.expires_us - s.created_us, 200000);
    cr_assert_eq(t_check(ws, s.id, s.token, NULL), 0);
    cr_assert_eq(t_append(s.id, "{\"n\":1}"), 0);
    t_sleep(300);
    cr_assert_eq(t_check(ws, s.id, s.token, NULL), EG_ENOTFOUND);
    cr_assert_eq(t_append(s.id, "{\"n\":2}"), EG_ENOTFOUND);
    t_stop();
}
