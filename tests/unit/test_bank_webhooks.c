/* Bank webhooks and bank events: the Hindsight delivery body (nulls dropped, field order), the
 * request URL with params, the header set, the spec checks, the stored forms of headers and
 * params, and eg_bank_event_emit against a real Redis (the event as a reader gets it).
 *
 * The Redis test follows tests/unit/test_events.c: its own uv loop, stepped every 10 ms, then a
 * check that no handle leaked. ENGRAM_TEST_REDIS_URL names a shared server, else a private
 * redis-server is started. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engram/arena.h"
#include "engram/bank_webhooks.h"
#include "engram/error.h"
#include "engram/events.h"
#include "engram/store.h"
#include "engram/text.h"
#include "engram/util.h"
#include "events/webhooks_int.h"

#include "redis_fixture.h"

TestSuite(bank_webhooks, .init = t_redis_setup, .fini = t_redis_teardown, .timeout = 60);

/* ---- the body ---------------------------------------------------------------------------- */

static char *body_of(const char *type, const char *entity_json)
{
    cJSON *e = cJSON_Parse(entity_json);
    char *s;

    cr_assert_not_null(e, "bad test JSON %s", entity_json);
    s = eg_bank_webhook_body(type, e);
    cJSON_Delete(e);
    return s;
}

Test(bank_webhooks, event_types)
{
    cr_assert(eg_bank_event_type_valid("retain.completed"));
    cr_assert(eg_bank_event_type_valid("consolidation.completed"));
    cr_assert(eg_bank_event_type_valid("memory_defense.triggered"));
    cr_assert_not(eg_bank_event_type_valid("retain.*"));
    cr_assert_not(eg_bank_event_type_valid("memory.created"));
    cr_assert_not(eg_bank_event_type_valid(""));
    cr_assert_not(eg_bank_event_type_valid(NULL));
}

Test(bank_webhooks, body_is_compact_ordered_and_drops_nulls)
{
    char *s =
        body_of("retain.completed",
                "{\"id\":\"op-1\",\"data\":{\"document_id\":\"d1\",\"tags\":null,"
                "\"x\":{\"y\":null,\"z\":[1,null]}},\"timestamp\":\"2024-01-15T10:30:00+00:00\","
                "\"status\":\"completed\",\"operation_id\":\"op-1\",\"bank_id\":\"b é\","
                "\"other\":true}");

    cr_assert_str_eq(s, "{\"event\":\"retain.completed\",\"bank_id\":\"b é\",\"operation_id\":"
                        "\"op-1\",\"status\":\"completed\",\"timestamp\":\"2024-01-15T10:30:00+00:"
                        "00\",\"data\":{\"document_id\":\"d1\",\"x\":{\"z\":[1,null]}}}");
    free(s);
}

Test(bank_webhooks, body_fills_data_and_drops_absent_fields)
{
    char *s = body_of("consolidation.completed", "{\"bank_id\":\"b\",\"status\":null}");

    cr_assert_str_eq(s, "{\"event\":\"consolidation.completed\",\"bank_id\":\"b\",\"data\":{}}");
    free(s);
    s = body_of("retain.completed", "{\"bank_id\":\"b\",\"data\":null}");
    cr_assert_str_eq(s, "{\"event\":\"retain.completed\",\"bank_id\":\"b\",\"data\":{}}");
    free(s);
    cr_assert_null(body_of("retain.completed", "[1]"));
    cr_assert_null(eg_bank_webhook_body("retain.completed", NULL));
}

/* ---- URL and headers --------------------------------------------------------------------- */

static char *url_of(const char *url, const eg_kv_t *p, size_t n)
{
    eg_buf_t b = EG_BUF_INIT;
    char *s;

    eg_bank_webhook_url(&b, url, p, n);
    s = strndup(b.data != NULL ? b.data : "", b.len);
    eg_buf_free(&b);
    return s;
}

Test(bank_webhooks, url_with_params)
{
    const eg_kv_t p[] = {{"a", "1"}, {"sp ace", "x&y=z/é"}};
    char *s;

    s = url_of("http://h/hook", NULL, 0);
    cr_assert_str_eq(s, "http://h/hook");
    free(s);
    s = url_of("http://h/hook", p, 2);
    cr_assert_str_eq(s, "http://h/hook?a=1&sp+ace=x%26y%3Dz%2F%C3%A9");
    free(s);
    s = url_of("http://h/hook?k=v#frag", p, 1);
    cr_assert_str_eq(s, "http://h/hook?k=v&a=1");
    free(s);
    s = url_of("http://h/hook?", p, 1);
    cr_assert_str_eq(s, "http://h/hook?a=1");
    free(s);
    s = url_of("http://h/hook#frag", NULL, 0);
    cr_assert_str_eq(s, "http://h/hook");
    free(s);
}

Test(bank_webhooks, header_set)
{
    const eg_kv_t custom[] = {{"X-Team", "a"},
                              {"content-type", "application/vnd+json"},
                              {"x-hindsight-signature", "forged"}};
    eg_kv_t out[6];
    size_t n;

    n = eg_bank_webhook_headers("retain.completed", NULL, 0, NULL, out);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(out[0].name, "Content-Type");
    cr_assert_str_eq(out[0].value, "application/json");
    cr_assert_str_eq(out[1].name, "X-Hindsight-Event");
    cr_assert_str_eq(out[1].value, "retain.completed");

    /* No secret: no signature of ours (a custom header of that name is the owner's business). */
    n = eg_bank_webhook_headers("retain.completed", custom, 3, NULL, out);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(out[0].name, "Content-Type");
    cr_assert_str_eq(out[0].value, "application/vnd+json");
    cr_assert_str_eq(out[2].name, "X-Team");
    cr_assert_str_eq(out[3].value, "forged");

    /* With a secret the signature is last and replaces any custom one. */
    n = eg_bank_webhook_headers("retain.completed", custom, 3, "sha256=ab", out);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(out[3].name, "X-Hindsight-Signature");
    cr_assert_str_eq(out[3].value, "sha256=ab");
    n = eg_bank_webhook_headers("retain.completed", custom, 2, "sha256=ab", out);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(out[3].name, "X-Hindsight-Signature");
}

/* ---- spec checks ------------------------------------------------------------------------- */

static void bad(const eg_bank_webhook_spec_t *s, bool create, const char *field, const char *sub)
{
    const char *f, *u, *why;

    cr_assert_eq(eg_bank_webhook_spec_check(s, create, &f, &u, &why), EG_EINVAL);
    cr_assert_str_eq(f, field);
    if (sub != NULL)
        cr_assert_str_eq(u, sub);
    else
        cr_assert_null(u);
    cr_assert_not_null(why);
}

Test(bank_webhooks, spec_check_names_the_field)
{
    const char *types[] = {"retain.completed", "memory.created"};
    const eg_kv_t crlf[] = {{"X-A", "1\r\nX-Evil: 1"}}, host[] = {{"host", "x"}},
                  sp[] = {{"X A", "1"}}, noname[] = {{"", "v"}};
    eg_bank_webhook_spec_t s = {.url = "http://127.0.0.1/x", .has_url = true};
    const char *f, *u, *why;

    cr_assert_eq(eg_bank_webhook_spec_check(&s, true, &f, &u, &why), 0);
    bad(&(eg_bank_webhook_spec_t){0}, true, "url", NULL);
    cr_assert_eq(eg_bank_webhook_spec_check(&(eg_bank_webhook_spec_t){0}, false, &f, &u, &why), 0);
    s.url = "ftp://example.com/x";
    bad(&s, true, "url", NULL);
    s.url = "http://user:pw@example.com/x";
    bad(&s, true, "url", NULL);
    s.url = "not a url";
    bad(&s, false, "url", NULL);
    s.url = "https://example.com/hook";

    s.has_types = true;
    s.event_types = types;
    s.ntypes = 1;
    cr_assert_eq(eg_bank_webhook_spec_check(&s, true, &f, &u, &why), 0);
    s.ntypes = 2;
    bad(&s, true, "event_types", NULL);
    s.ntypes = 0; /* an empty list is allowed: it matches nothing */
    cr_assert_eq(eg_bank_webhook_spec_check(&s, true, &f, &u, &why), 0);

    s.has_http_config = true;
    s.method = "get";
    cr_assert_eq(eg_bank_webhook_spec_check(&s, true, &f, &u, &why), 0);
    s.method = "PUT";
    bad(&s, true, "http_config", "method");
    s.method = NULL;
    s.timeout_seconds = 301;
    bad(&s, true, "http_config", "timeout_seconds");
    s.timeout_seconds = 300;
    s.headers = crlf;
    s.nheaders = 1;
    bad(&s, true, "http_config", "headers");
    s.headers = host;
    bad(&s, true, "http_config", "headers");
    s.headers = sp;
    bad(&s, true, "http_config", "headers");
    s.nheaders = 0;
    s.params = noname;
    s.nparams = 1;
    bad(&s, true, "http_config", "params");
    s.nparams = 0;
    cr_assert_eq(eg_bank_webhook_spec_check(&s, true, &f, &u, &why), 0);
}

/* ---- stored forms ------------------------------------------------------------------------ */

Test(bank_webhooks, kv_round_trip_and_job_ids)
{
    const eg_kv_t in[] = {{"X-B", "2"}, {"X-A", "é \"q\""}};
    eg_arena_t a;
    eg_kv_t *out;
    size_t n;
    char *json = eg__bwh_kv_json(in, 2), *ws, *ep, *did, *p;

    eg_arena_init(&a);
    cr_assert(eg__bwh_kv_parse(&a, json, &out, &n));
    cr_assert_eq(n, 2);
    cr_assert_str_eq(out[0].name, "X-B");
    cr_assert_str_eq(out[1].value, "é \"q\"");
    cr_assert(eg__bwh_kv_parse(&a, "", &out, &n));
    cr_assert_eq(n, 0);
    cr_assert_not(eg__bwh_kv_parse(&a, "[1]", &out, &n));
    free(json);

    /* A bank endpoint's id is a UUID: the job payload carries either kind. */
    p = eg__wh_job_payload(&a, "ws-1", "0b5e4ac6-6d2f-4c1e-9f6a-3b1d2c4e5f60", "msg_01");
    cr_assert(eg__wh_job_parse(&a, p, &ws, &ep, &did));
    cr_assert_str_eq(ep, "0b5e4ac6-6d2f-4c1e-9f6a-3b1d2c4e5f60");
    cr_assert(eg__wh_ep_valid("wh_abc"));
    cr_assert_not(eg__wh_ep_valid("0b5e4ac6-6d2f-4c1e-9f6a-3b1d2c4e5f6"));
    cr_assert_not(eg__wh_ep_valid("../x"));
    eg_arena_destroy(&a);
}

/* ---- eg_bank_event_emit against Redis ---------------------------------------------------- */

Test(bank_webhooks, emit_rejects_bad_arguments)
{
    cJSON *arr = cJSON_CreateArray();

    cr_assert_eq(
        eg_bank_event_emit("ws", "b", "memory.created", "op", "completed", NULL, NULL, NULL),
        EG_EINVAL);
    cr_assert_eq(eg_bank_event_emit("ws", "b", "retain.completed", "op", "done", NULL, NULL, NULL),
                 EG_EINVAL);
    cr_assert_eq(eg_bank_event_emit("ws", "b", "retain.completed", "", "failed", NULL, NULL, NULL),
                 EG_EINVAL);
    cr_assert_eq(eg_bank_event_emit("ws", "", "retain.completed", "op", "failed", NULL, NULL, NULL),
                 EG_EINVAL);
    cr_assert_eq(
        eg_bank_event_emit("bad ws", "b", "retain.completed", "op", "failed", NULL, NULL, NULL),
        EG_EINVAL);
    cr_assert_eq(eg_bank_event_emit("ws", "b", "retain.completed", "op", "failed", arr, NULL, NULL),
                 EG_EINVAL);
    cJSON_Delete(arr);
}

typedef struct {
    uv_loop_t loop;
    uv_timer_t tick;
    int step, shutdown_done;
    bool finished, shutdown_called;
    uint64_t limit_ms;
    char ws[64], id[EG_EVENT_ID_MAX];
    int emitted, got;
    char json[2048];
} t_emit_t;

static void t_shutdown_done(void *udata)
{
    ((t_emit_t *)udata)->shutdown_done++;
}

static void t_emitted(void *udata, int err, const char *event_id)
{
    t_emit_t *t = udata;

    cr_assert_eq(err, 0, "emit failed: %s", eg_strerror(err));
    snprintf(t->id, sizeof(t->id), "%s", event_id);
    t->emitted++;
}

static void t_got(void *udata, int err, const eg_event_t *ev)
{
    t_emit_t *t = udata;

    cr_assert_eq(err, 0, "get failed: %s", eg_strerror(err));
    snprintf(t->json, sizeof(t->json), "%s", ev->json);
    t->got++;
}

static void t_check_event(const char *json, const char *id)
{
    cJSON *ev = cJSON_Parse(json), *e;
    const char *ts;
    char *data;
    int64_t us;

    cr_assert_not_null(ev);
    cr_assert_str_eq(cJSON_GetObjectItem(ev, "id")->valuestring, id);
    cr_assert_str_eq(cJSON_GetObjectItem(ev, "type")->valuestring, "retain.completed");
    e = cJSON_GetObjectItem(ev, "entity");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "id")->valuestring, "op-1");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "operation_id")->valuestring, "op-1");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "bank_id")->valuestring, "bank one");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "status")->valuestring, "completed");
    ts = cJSON_GetObjectItem(e, "timestamp")->valuestring;
    cr_assert_eq(eg_text_parse_iso(ts, strlen(ts), &us), 0, "timestamp %s", ts);
    cr_assert(strstr(ts, "+00:00") != NULL, "timestamp %s", ts);
    data = cJSON_PrintUnformatted(cJSON_GetObjectItem(e, "data"));
    cr_assert_str_eq(data, "{\"document_id\":\"d1\",\"tags\":[\"t\"]}");
    free(data);
    cJSON_Delete(ev);
}

static void t_tick(uv_timer_t *h)
{
    t_emit_t *t = h->data;
    cJSON *data;

    cr_assert(uv_now(&t->loop) < t->limit_ms, "step %d did not finish in time", t->step);
    switch (t->step) {
    case 0:
        if (!eg_store_up())
            return;
        data = cJSON_Parse("{\"document_id\":\"d1\",\"tags\":[\"t\"]}");
        cr_assert_eq(eg_bank_event_emit(t->ws, "bank one", "retain.completed", "op-1", "completed",
                                        data, t_emitted, t),
                     0);
        cJSON_Delete(data);
        t->step++;
        return;
    case 1:
        if (t->emitted == 0)
            return;
        cr_assert_eq(eg_events_get(t->ws, t->id, t_got, t), 0);
        t->step++;
        return;
    case 2:
        if (t->got == 0)
            return;
        t_check_event(t->json, t->id);
        t->finished = true;
        break;
    }
    if (t->finished && !t->shutdown_called) {
        t->shutdown_called = true;
        eg_events_shutdown();
        eg_store_shutdown(t_shutdown_done, t);
        uv_close((uv_handle_t *)&t->tick, NULL);
    }
}

Test(bank_webhooks, emit_puts_the_event_in_the_log)
{
    eg_store_opts_t opts = {t_url(), 2, 3000, 2000};
    t_emit_t t = {0};
    char r[9];

    eg_random_base62(r, 8);
    snprintf(t.ws, sizeof(t.ws), "t-bwh-%d-%s", (int)getpid(), r);
    cr_assert_eq(uv_loop_init(&t.loop), 0);
    cr_assert_eq(eg_store_init(&t.loop, &opts), 0);
    t.limit_ms = uv_now(&t.loop) + 15000;
    uv_timer_init(&t.loop, &t.tick);
    t.tick.data = &t;
    uv_timer_start(&t.tick, t_tick, 0, 10);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    cr_assert(t.finished);
    cr_assert_eq(t.shutdown_done, 1);
    t_loop_close_checked(&t.loop);
}
