/* Agent task records and conversations against a real redis-server: a created task's shape (nulls
 * emitted, metadata copied), its event, listing (all, per conversation), an unknown conversation,
 * the archive of a fresh task, a task finished without a run (two finishes racing: exactly one
 * wins), conversation search with a metadata filter over several pages, and the worker failing a
 * task whose run was interrupted on every attempt. The runs themselves are covered by
 * tests/integration/fency_tasks.test.mjs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "engram/error.h"
#include "engram/events.h"
#include "engram/store.h"
#include "engram/tasks.h"
#include "engram/util.h"
#include "runs/tasks_int.h"

#include "redis_fixture.h"

typedef struct t_ctx_s {
    uv_loop_t loop;
    uv_timer_t tick;
    char ws[40];
    int calls, err;
    cJSON *json; /* the last record */
    char ids[16][48];
    size_t n;
    char next[128], prev[128];
    char *archive, *query;
} t_ctx_t;

static t_ctx_t T;

static void on_tick(uv_timer_t *h)
{
    (void)h;
}

static void run_calls(int want)
{
    for (int i = 0; i < 4000 && T.calls < want; i++)
        uv_run(&T.loop, UV_RUN_ONCE);
    cr_assert_eq(T.calls, want, "callbacks ran");
}

static bool store_up(void)
{
    for (int i = 0; i < 4000 && !eg_store_up(); i++)
        uv_run(&T.loop, UV_RUN_ONCE);
    return eg_store_up();
}

static void on_json(void *udata, int err, const cJSON *j)
{
    (void)udata;
    T.calls++;
    T.err = err;
    cJSON_Delete(T.json);
    T.json = j ? cJSON_Duplicate(j, true) : NULL;
}

static void on_page(void *udata, int err, const eg_zpage_t *p)
{
    (void)udata;
    T.calls++;
    T.err = err;
    T.n = 0;
    if (err != 0)
        return;
    for (size_t i = 0; i < p->n && i < 16; i++)
        snprintf(T.ids[T.n++], sizeof(T.ids[0]), "%s", p->ids[i]);
    snprintf(T.next, sizeof(T.next), "%s", p->next ? p->next : "");
    snprintf(T.prev, sizeof(T.prev), "%s", p->prev ? p->prev : "");
}

static void on_archive(void *udata, int err, const char *json, const char *query)
{
    (void)udata;
    T.calls++;
    T.err = err;
    free(T.archive);
    free(T.query);
    T.archive = json ? eg_xstrdup(json) : NULL;
    T.query = query ? eg_xstrdup(query) : NULL;
}

static void setup(void)
{
    eg_store_opts_t opts = {.pool = 2, .cmd_timeout_ms = 5000, .connect_timeout_ms = 1000};
    unsigned char rnd[8];
    char hex[17];

    t_redis_setup(); /* first: it resets what t_url() answers */
    /* Its own server: the tasks created here push jobs onto the "agent_tasks" queue, which every
     * engramd on a shared server would take and run. */
    opts.url = t_private_url();
    memset(&T, 0, sizeof(T));
    eg_random_init();
    eg_random_bytes(rnd, sizeof(rnd));
    eg_hex_encode(rnd, sizeof(rnd), hex);
    snprintf(T.ws, sizeof(T.ws), "tws%s", hex);
    cr_assert_eq(uv_loop_init(&T.loop), 0);
    uv_timer_init(&T.loop, &T.tick);
    uv_timer_start(&T.tick, on_tick, 5, 5);
    cr_assert_eq(eg_store_init(&T.loop, &opts), 0);
    cr_assert(store_up());
}

static void on_shutdown(void *udata)
{
    *(int *)udata = 1;
}

static void teardown(void)
{
    int done = 0;

    cJSON_Delete(T.json);
    free(T.archive);
    free(T.query);
    eg_events_shutdown();
    eg_store_shutdown(on_shutdown, &done);
    uv_close((uv_handle_t *)&T.tick, NULL);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    cr_assert_eq(done, 1);
    t_loop_close_checked(&T.loop);
    t_redis_teardown();
}

TestSuite(tasks_store, .init = setup, .fini = teardown);

static const char *str(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void create_cnv(const char *title, const char *meta_json, char out[48])
{
    cJSON *meta = meta_json ? cJSON_Parse(meta_json) : NULL;
    int calls = T.calls;

    cr_assert_eq(eg_conversation_create(T.ws, title, meta, on_json, NULL), 0);
    cJSON_Delete(meta);
    run_calls(calls + 1);
    cr_assert_eq(T.err, 0);
    snprintf(out, 48, "%s", str(T.json, "id"));
}

static void create_task(const char *session_json, char out[48])
{
    cJSON *req = cJSON_Parse("{\"query\":\"what about holidays\",\"model\":\"openai/gpt-4.1\"}");
    cJSON *session = session_json ? cJSON_Parse(session_json) : NULL;
    eg_task_spec_t spec = {
        .ws_id = T.ws, .type = EG_TASK_MEMORY_SEARCH, .request = req, .session = session};
    int calls = T.calls;

    cr_assert_eq(eg_task_create(&spec, on_json, NULL), 0);
    run_calls(calls + 1);
    cJSON_Delete(req);
    cJSON_Delete(session);
    if (T.err == 0)
        snprintf(out, 48, "%s", str(T.json, "id"));
}

Test(tasks_store, task_create_get_list_archive)
{
    static const char *keys[] = {
        "id",          "createdAt",       "updatedAt", "status",          "taskType",
        "succeededAt", "successResponse", "failedAt",  "failureResponse", "metadata"};
    char cnv[48], t1[48], t2[48], t3[48];
    eg_zpage_req_t q = {.limit = 10};
    char *s;

    create_cnv(NULL, "{\"userId\":\"u1\"}", cnv);
    cr_assert_null(str(T.json, "title"));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(T.json, "title")));

    char session[200];
    snprintf(
        session, sizeof(session),
        "{\"taskType\":\"MEMORY_SEARCH\",\"metadata\":{\"k\":[1,true]},\"conversationId\":\"%s\"}",
        cnv);
    create_task(session, t1);
    cr_assert_eq(T.err, 0);
    /* The shape: every field present, nulls emitted, metadata copied. */
    cr_assert_eq(cJSON_GetArraySize(T.json), 10);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(T.json, keys[i]), "%s", keys[i]);
    cr_assert_str_eq(str(T.json, "status"), "IN_PROGRESS");
    cr_assert_str_eq(str(T.json, "taskType"), "MEMORY_SEARCH");
    cr_assert_str_eq(str(T.json, "createdAt"), str(T.json, "updatedAt"));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(T.json, "successResponse")));
    s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(T.json, "metadata"));
    cr_assert_str_eq(s, "{\"k\":[1,true]}");
    free(s);
    create_task(session, t2);
    create_task(NULL, t3);
    cr_assert_eq(T.err, 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(T.json, "metadata")), 0);

    /* An unknown conversation is refused; a malformed one is invalid. */
    create_task("{\"conversationId\":\"cnv_00000000000000000000000000000000\"}", NULL);
    cr_assert_eq(T.err, EG_ENOTFOUND);
    {
        cJSON *req = cJSON_Parse("{\"query\":\"q\"}"), *ses = cJSON_Parse("{\"conversationId\":7}");
        eg_task_spec_t spec = {
            .ws_id = T.ws, .type = EG_TASK_MEMORY_SEARCH, .request = req, .session = ses};
        cr_assert_eq(eg_task_create(&spec, on_json, NULL), EG_EINVAL);
        cJSON_Delete(ses);
        ses = cJSON_Parse("{\"guardRails\":{\"memoryTypes\":\"all\"}}");
        spec.session = ses;
        cr_assert_eq(eg_task_create(&spec, on_json, NULL), EG_EINVAL);
        cJSON_Delete(ses);
        cJSON_Delete(req);
    }

    /* get */
    cr_assert_eq(eg_task_get(T.ws, t1, on_json, NULL), 0);
    run_calls(T.calls + 1);
    cr_assert_eq(T.err, 0);
    cr_assert_str_eq(str(T.json, "id"), t1);
    cr_assert_eq(eg_task_get(T.ws, "ata_nope", on_json, NULL), EG_ENOTFOUND);
    cr_assert_eq(eg_task_get(T.ws, "ata_0123456789abcdef0123456789abcdef", on_json, NULL), 0);
    run_calls(T.calls + 1);
    cr_assert_eq(T.err, EG_ENOTFOUND);

    /* list: newest first; the conversation's own list */
    cr_assert_eq(eg_task_list(T.ws, NULL, &q, on_page, NULL), 0);
    run_calls(T.calls + 1);
    cr_assert_eq(T.n, 3);
    cr_assert_str_eq(T.ids[0], t3);
    cr_assert_str_eq(T.ids[2], t1);
    cr_assert_eq(eg_task_list(T.ws, cnv, &q, on_page, NULL), 0);
    run_calls(T.calls + 1);
    cr_assert_eq(T.n, 2);
    cr_assert_str_eq(T.ids[0], t2);
    cr_assert_str_eq(T.ids[1], t1);
    cr_assert_eq(eg_task_list(T.ws, "cnv_x", &q, on_page, NULL), EG_EINVAL);

    /* The archive of a task that has not run: empty, with its query. */
    cr_assert_eq(eg_task_archive(T.ws, t1, on_archive, NULL), 0);
    run_calls(T.calls + 1);
    cr_assert_eq(T.err, 0);
    cr_assert_str_eq(T.archive, "[]");
    cr_assert_str_eq(T.query, "what about holidays");
    cr_assert_eq(eg_task_archive(T.ws, "ata_0123456789abcdef0123456789abcdef", on_archive, NULL),
                 0);
    run_calls(T.calls + 1);
    cr_assert_eq(T.err, EG_ENOTFOUND);
}

Test(tasks_store, finished_once)
{
    char t1[48];
    cJSON *arch;
    const cJSON *e;

    create_task(NULL, t1);
    cr_assert_eq(T.err, 0);
    eg__task_abandon(T.ws, t1, "could not be queued");
    /* Two finishes at once: the script lets exactly one of them through. */
    eg__task_abandon(T.ws, t1, "second");
    for (int i = 0; i < 200; i++)
        uv_run(&T.loop, UV_RUN_NOWAIT);
    for (int i = 0; i < 4000; i++) {
        int calls = T.calls;

        cr_assert_eq(eg_task_get(T.ws, t1, on_json, NULL), 0);
        run_calls(calls + 1);
        if (strcmp(str(T.json, "status"), "IN_PROGRESS") != 0)
            break;
    }
    cr_assert_str_eq(str(T.json, "status"), "FAILED");
    /* The two finishes race (two store connections): either may win, exactly one does. */
    char won[64];
    snprintf(won, sizeof(won), "%s",
             str(cJSON_GetObjectItemCaseSensitive(T.json, "failureResponse"), "message"));
    cr_assert(strcmp(won, "could not be queued") == 0 || strcmp(won, "second") == 0, "%s", won);
    cr_assert_not_null(str(T.json, "failedAt"));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(T.json, "succeededAt")));
    for (int i = 0; i < 200; i++)
        uv_run(&T.loop, UV_RUN_NOWAIT);
    cr_assert_eq(eg_task_archive(T.ws, t1, on_archive, NULL), 0);
    run_calls(T.calls + 1);
    arch = cJSON_Parse(T.archive);
    cr_assert_eq(cJSON_GetArraySize(arch), 1, "one terminal entry: %s", T.archive);
    e = cJSON_GetArrayItem(arch, 0);
    cr_assert_str_eq(str(e, "type"), "AGENT_TASK_PROGRESS_ITEM_UPDATED");
    cr_assert_str_eq(str(e, "agentTaskId"), t1);
    cJSON *data = cJSON_Parse(str(e, "data"));
    cr_assert_str_eq(str(data, "taskType"), "MemorySearch");
    cr_assert_str_eq(str(data, "eventType"), "Error");
    cr_assert_str_eq(str(data, "message"), won, "the archive agrees with the task");
    cJSON_Delete(data);
    cJSON_Delete(arch);
}

Test(tasks_store, conversation_search_pages)
{
    char ids[7][48], got[7][48];
    eg_zpage_req_t q = {.limit = 2};
    cJSON *match = cJSON_Parse("{\"team\":\"a\",\"n\":[1]}");
    size_t ngot = 0;

    for (int i = 0; i < 7; i++) {
        char meta[96];
        snprintf(meta, sizeof(meta), "{\"team\":\"%s\",\"n\":[1],\"i\":%d}", i % 2 ? "b" : "a", i);
        create_cnv(i == 0 ? "first" : NULL, meta, ids[i]);
    }
    cr_assert_eq(eg_conversation_get(T.ws, ids[0], on_json, NULL), 0);
    run_calls(T.calls + 1);
    cr_assert_str_eq(str(T.json, "title"), "first");
    cr_assert_eq(eg_conversation_get(T.ws, "cnv_0123456789abcdef0123456789abcdef", on_json, NULL),
                 0);
    run_calls(T.calls + 1);
    cr_assert_eq(T.err, EG_ENOTFOUND);

    /* Team a is 0, 2, 4, 6: newest first in pages of two. */
    for (int page = 0; page < 3; page++) {
        cr_assert_eq(eg_conversation_search(T.ws, match, &q, on_page, NULL), 0);
        run_calls(T.calls + 1);
        cr_assert_eq(T.err, 0);
        for (size_t i = 0; i < T.n; i++)
            snprintf(got[ngot++], 48, "%s", T.ids[i]);
        if (T.next[0] == '\0')
            break;
        q.cursor = eg_xstrdup(T.next);
    }
    cr_assert_eq(ngot, 4);
    cr_assert_str_eq(got[0], ids[6]);
    cr_assert_str_eq(got[1], ids[4]);
    cr_assert_str_eq(got[2], ids[2]);
    cr_assert_str_eq(got[3], ids[0]);
    free((char *)q.cursor);
    /* A value compared as JSON: "1" is not 1. */
    cJSON_Delete(match);
    match = cJSON_Parse("{\"i\":\"1\"}");
    q = (eg_zpage_req_t){.limit = 10};
    cr_assert_eq(eg_conversation_search(T.ws, match, &q, on_page, NULL), 0);
    run_calls(T.calls + 1);
    cr_assert_eq(T.n, 0);
    cJSON_Delete(match);
    /* No filter: everything, oldest first on request. */
    q = (eg_zpage_req_t){.limit = 10, .asc = true};
    cr_assert_eq(eg_conversation_search(T.ws, NULL, &q, on_page, NULL), 0);
    run_calls(T.calls + 1);
    cr_assert_eq(T.n, 7);
    cr_assert_str_eq(T.ids[0], ids[0]);
    cr_assert_eq(eg_conversation_search(T.ws, NULL, &(eg_zpage_req_t){.limit = 0}, on_page, NULL),
                 EG_EINVAL);
}

/* ---- the worker: a run interrupted on every attempt ends FAILED ------------------------------ */

static void setup_private(void)
{
    eg_store_opts_t opts = {.pool = 2, .cmd_timeout_ms = 5000, .connect_timeout_ms = 1000};

    t_redis_setup();
    /* Its own server: no other test's jobs on the agent_tasks queue. */
    opts.url = t_private_url();
    memset(&T, 0, sizeof(T));
    eg_random_init();
    snprintf(T.ws, sizeof(T.ws), "twsworker");
    cr_assert_eq(uv_loop_init(&T.loop), 0);
    uv_timer_init(&T.loop, &T.tick);
    uv_timer_start(&T.tick, on_tick, 5, 5);
    cr_assert_eq(eg_store_init(&T.loop, &opts), 0);
    cr_assert(store_up());
}

static void on_cmd(void *udata, int err, redisReply *r)
{
    (void)udata;
    cr_assert_eq(err, 0);
    cr_assert(r->type != REDIS_REPLY_ERROR, "%s", r->str);
    T.calls++;
}

static void on_stopped(void *udata)
{
    *(int *)udata = 1;
}

TestSuite(tasks_worker, .init = setup_private, .fini = teardown);

Test(tasks_worker, interrupted_too_often)
{
    char id[48], payload[128];
    int stopped = 0;

    create_task(NULL, id);
    cr_assert_eq(T.err, 0);
    /* Replace its queued job by one that was delivered four times already. */
    snprintf(payload, sizeof(payload), "%s %s", T.ws, id);
    cr_assert_eq(eg_store_command(on_cmd, NULL, "DEL eg:{q:" EG_TASK_QUEUE "}:stream"), 0);
    cr_assert_eq(eg_store_command(on_cmd, NULL,
                                  "XADD eg:{q:" EG_TASK_QUEUE "}:stream * id %s n 4 p %s", id,
                                  payload),
                 0);
    run_calls(T.calls + 2);
    cr_assert_eq(eg_tasks_start(&T.loop), 0);
    for (int i = 0; i < 400; i++) {
        int calls = T.calls;

        cr_assert_eq(eg_task_get(T.ws, id, on_json, NULL), 0);
        run_calls(calls + 1);
        if (strcmp(str(T.json, "status"), "IN_PROGRESS") != 0)
            break;
        for (int k = 0; k < 10; k++)
            uv_run(&T.loop, UV_RUN_ONCE);
    }
    cr_assert_str_eq(str(T.json, "status"), "FAILED");
    cr_assert_str_eq(str(cJSON_GetObjectItemCaseSensitive(T.json, "failureResponse"), "message"),
                     "the task's run was interrupted too many times");
    eg_tasks_stop(on_stopped, &stopped);
    for (int i = 0; i < 4000 && !stopped; i++)
        uv_run(&T.loop, UV_RUN_ONCE);
    cr_assert_eq(stopped, 1);
}
