/* LLM providers, part two: the real openai provider and embedder on a loop against
 * tools/mock-llm (a node process per test, scripted through its control API): plain and
 * streamed chat, tool calls, json_schema output, the JSON-mode fallback, the repair turn,
 * retries (429 + Retry-After, 5xx), auth failures, timeouts, cancel, the concurrency cap,
 * embeddings in batches, and the probe. Every test runs its loop until no handle is left. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <uv.h>

#include "engram/error.h"
#include "engram/llm.h"
#include "engram/log.h"
#include "engram/util.h"
#include "llm/llm_int.h"

#define API_KEY "sk-test-secret"

/* ---- the mock server --------------------------------------------------------------------------
 */

static pid_t mock_pid;
static int mock_port;
static char mock_base[64];

static void mock_start(const char *api_key)
{
    int fds[2];
    char line[256];
    size_t n = 0;

    cr_assert_eq(pipe(fds), 0);
    mock_pid = fork();
    cr_assert(mock_pid >= 0);
    if (mock_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (api_key != NULL)
            execlp("node", "node", EG_MOCK_LLM, "--port", "0", "--dim", "16", "--api-key", api_key,
                   (char *)NULL);
        else
            execlp("node", "node", EG_MOCK_LLM, "--port", "0", "--dim", "16", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    /* "mock-llm listening on http://127.0.0.1:<port>\n" */
    while (n < sizeof(line) - 1) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        ssize_t r;

        cr_assert_gt(poll(&pfd, 1, 15000), 0, "mock-llm did not start");
        r = read(fds[0], line + n, 1);
        cr_assert_gt(r, 0, "mock-llm exited before listening");
        if (line[n++] == '\n')
            break;
    }
    line[n] = '\0';
    close(fds[0]);
    cr_assert(sscanf(line, "mock-llm listening on http://127.0.0.1:%d", &mock_port) == 1, "%s",
              line);
    snprintf(mock_base, sizeof(mock_base), "http://127.0.0.1:%d/v1", mock_port);
}

static void mock_stop(void)
{
    if (mock_pid > 0) {
        kill(mock_pid, SIGTERM);
        waitpid(mock_pid, NULL, 0);
        mock_pid = 0;
    }
}

/* One blocking request to the mock's control API; returns the body (malloc'd). */
static char *mock_http(const char *method, const char *path, const char *body, int *status)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    eg_buf_t req = EG_BUF_INIT, resp = EG_BUF_INIT;
    char buf[4096], *p;
    ssize_t r;

    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)mock_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    eg_buf_printf(&req,
                  "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: "
                  "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                  method, path, body != NULL ? strlen(body) : 0, body != NULL ? body : "");
    cr_assert_eq(write(fd, req.data, req.len), (ssize_t)req.len);
    while ((r = read(fd, buf, sizeof(buf))) > 0)
        eg_buf_append(&resp, buf, (size_t)r);
    close(fd);
    eg_buf_free(&req);
    cr_assert_not_null(resp.data);
    if (status != NULL)
        *status = atoi(resp.data + 9);
    p = strstr(resp.data, "\r\n\r\n");
    cr_assert_not_null(p);
    p = eg_xstrdup(p + 4);
    eg_buf_free(&resp);
    return p;
}

static void mock_rules(const char *json)
{
    int st;
    char *b = mock_http("POST", "/_mock/rules", json, &st);

    cr_assert_eq(st, 200, "rules refused: %s", b);
    free(b);
}

/* The request log (only chat or embeddings requests when path is given). */
static cJSON *mock_log(const char *path)
{
    char q[128];
    char *b;
    cJSON *j;

    snprintf(q, sizeof(q), "/_mock/requests%s%s", path ? "?path=" : "", path ? path : "");
    b = mock_http("GET", q, NULL, NULL);
    j = cJSON_Parse(b);
    free(b);
    cr_assert(cJSON_IsArray(j));
    return j;
}

/* ---- the loop ---------------------------------------------------------------------------------
 */

static uv_loop_t loop;
static eg_llm_t *llm;
static eg_embedder_t *emb;
static int pending;

static void setup(void)
{
    eg_log_set_level(EG_LOG_OFF);
    cr_assert_eq(uv_loop_init(&loop), 0);
    eg__llm_backoff_base_ms = 20;
}

static void teardown(void)
{
    if (llm != NULL)
        llm->destroy(llm);
    llm = NULL;
    eg_embed_destroy(emb);
    emb = NULL;
    eg_llm_shutdown();
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left on the loop");
    mock_stop();
}

TestSuite(llm_live, .init = setup, .fini = teardown, .timeout = 60);

static void run(void)
{
    while (pending > 0)
        uv_run(&loop, UV_RUN_ONCE);
}

static eg_llm_t *provider(const char *key, int retries, int conc, uint64_t timeout_ms)
{
    eg_llm_settings_t s = {"openai", mock_base, (char *)key, "mock-model"};
    eg__oai_limits_t lim = {timeout_ms, retries, conc};
    eg_llm_t *p;

    s.base_url = mock_base;
    p = eg__oai_new(&loop, &s, &lim);
    cr_assert_not_null(p);
    return p;
}

typedef struct {
    bool called;
    int err;
    char content[4096];
    char error[512];
    char finish[32];
    char model[64];
    int ntc;
    char tc_id[4][64], tc_name[4][64], tc_args[4][256];
    char *json; /* printed resp->json */
    eg_usage_t usage;
    int attempts, status;
    uint64_t elapsed;
    eg_buf_t deltas;
    int ndeltas;
    int order; /* completion order */
} result_t;

static int done_seq;

static void on_done(void *udata, int err, const eg_llm_resp_t *resp)
{
    result_t *r = udata;

    cr_assert_not(r->called, "done called twice");
    r->called = true;
    r->order = ++done_seq;
    r->err = err;
    cr_assert_not_null(resp);
    snprintf(r->content, sizeof(r->content), "%.*s", (int)resp->content_len, resp->content);
    snprintf(r->error, sizeof(r->error), "%s", resp->error ? resp->error : "");
    snprintf(r->finish, sizeof(r->finish), "%s", resp->finish_reason);
    snprintf(r->model, sizeof(r->model), "%s", resp->model);
    r->ntc = (int)resp->ntool_calls;
    for (size_t i = 0; i < resp->ntool_calls && i < 4; i++) {
        snprintf(r->tc_id[i], 64, "%s", resp->tool_calls[i].id);
        snprintf(r->tc_name[i], 64, "%s", resp->tool_calls[i].name);
        snprintf(r->tc_args[i], 256, "%s", resp->tool_calls[i].arguments);
    }
    r->json = resp->json ? cJSON_PrintUnformatted(resp->json) : NULL;
    r->usage = resp->usage;
    r->attempts = resp->attempts;
    r->status = resp->http_status;
    r->elapsed = resp->elapsed_ms;
    if (err != 0)
        cr_assert(resp->error != NULL && resp->error[0] != '\0', "an error without a reason");
    pending--;
}

static int on_delta(void *udata, const char *text, size_t len)
{
    result_t *r = udata;

    eg_buf_append(&r->deltas, text, len);
    r->ndeltas++;
    return 0;
}

static void result_free(result_t *r)
{
    cJSON_free(r->json);
    eg_buf_free(&r->deltas);
}

static eg_llm_msg_t k_user_hello = {.role = EG_LLM_USER, .content = "hello there"};

static void chat(eg_llm_req_t *req, result_t *r, eg_llm_call_t **call)
{
    memset(r, 0, sizeof(*r));
    cr_assert_eq(eg_llm_chat(llm, req, on_done, r, call), 0);
    cr_assert_not(r->called, "done ran inside chat");
    pending++;
}

static eg_llm_req_t simple_req(void)
{
    eg_llm_req_t req = {.msgs = &k_user_hello, .nmsgs = 1, .temperature = -1, .scope = "test"};
    return req;
}

/* ---- chat -------------------------------------------------------------------------------------
 */

Test(llm_live, plain_chat)
{
    eg_llm_req_t req = simple_req();
    result_t r;
    cJSON *log, *e;

    mock_start(API_KEY);
    mock_rules("{\"match\":{\"last_user\":\"hello\"},\"reply\":{\"content\":\"General Kenobi\","
               "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}}");
    llm = provider(API_KEY, 0, 4, 10000);
    req.temperature = 0;
    req.max_tokens = 50;
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_str_eq(r.content, "General Kenobi");
    cr_assert_str_eq(r.finish, "stop");
    cr_assert_str_eq(r.model, "mock-model");
    cr_assert_eq(r.usage.input_tokens, 12);
    cr_assert_eq(r.usage.output_tokens, 3);
    cr_assert_eq(r.usage.total_tokens, 15);
    cr_assert_eq(r.attempts, 1);
    cr_assert_eq(r.status, 200);
    cr_assert_null(r.json);

    log = mock_log("/v1/chat/completions");
    cr_assert_eq(cJSON_GetArraySize(log), 1);
    e = cJSON_GetArrayItem(log, 0);
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(e, "headers"), "authorization")->valuestring,
        "Bearer " API_KEY);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "body"), "max_tokens")->valueint, 50);
    cJSON_Delete(log);
    result_free(&r);
}

Test(llm_live, streaming_with_deltas)
{
    eg_llm_req_t req = simple_req();
    result_t r;
    cJSON *log;

    mock_start(NULL);
    mock_rules("{\"match\":{\"stream\":true},\"reply\":{\"stream_chunks\":[\"The \",\"quick \","
               "\"brown \",\"fox\"],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4}}}");
    llm = provider(NULL, 0, 4, 10000);
    req.on_delta = on_delta;
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_str_eq(r.content, "The quick brown fox");
    cr_assert_eq(r.ndeltas, 4);
    cr_assert_str_eq(r.deltas.data, "The quick brown fox");
    cr_assert_str_eq(r.finish, "stop");
    cr_assert_eq(r.usage.input_tokens, 5);
    cr_assert_eq(r.usage.output_tokens, 4);
    log = mock_log("/v1/chat/completions");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(log, 0), "body"),
                            "stream_options"),
        "include_usage")));
    /* No key configured: no Authorization header at all. */
    cr_assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(log, 0), "headers"),
                                       "authorization"));
    cJSON_Delete(log);
    result_free(&r);
}

Test(llm_live, truncated_stream_is_an_error)
{
    eg_llm_req_t req = simple_req();
    result_t r;

    mock_start(NULL);
    mock_rules("{\"reply\":{\"stream_chunks\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"],"
               "\"truncate_stream\":true}}");
    llm = provider(NULL, 2, 4, 10000);
    req.on_delta = on_delta;
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, EG_EUPSTREAM, "%s", r.error);
    cr_assert(strstr(r.error, "stream") != NULL, "%s", r.error);
    /* Deltas reached the caller, so the call was not replayed. */
    cr_assert_gt(r.ndeltas, 0);
    cr_assert_eq(r.attempts, 1);
    result_free(&r);
}

static const char *k_tool_params = "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":"
                                   "\"string\"}},\"required\":[\"query\"]}";

Test(llm_live, tool_calls_whole_and_streamed)
{
    eg_llm_tool_t tools[] = {{"search", "search memory", k_tool_params}, {"save", NULL, NULL}};
    eg_llm_req_t req = simple_req();
    result_t r;

    mock_start(NULL);
    mock_rules("[{\"match\":{\"tool\":\"search\"},\"times\":2,\"reply\":{\"tool_calls\":["
               "{\"name\":\"search\",\"arguments\":{\"query\":\"cats and dogs\"}},"
               "{\"name\":\"save\",\"arguments\":\"{\\\"half\\\": \"}]}}]");
    llm = provider(NULL, 0, 4, 10000);
    req.tools = tools;
    req.ntools = 2;
    req.tool_choice = EG_LLM_TOOLS_REQUIRED;
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_eq(r.ntc, 2);
    cr_assert_str_eq(r.finish, "tool_calls");
    cr_assert_str_eq(r.tc_name[0], "search");
    cr_assert_str_eq(r.tc_args[0], "{\"query\":\"cats and dogs\"}");
    cr_assert(strncmp(r.tc_id[0], "call_", 5) == 0, "%s", r.tc_id[0]);
    cr_assert_str_eq(r.tc_name[1], "save");
    cr_assert_str_eq(r.tc_args[1], "{\"half\": "); /* verbatim, the caller decides */
    cr_assert_str_eq(r.content, "");
    result_free(&r);

    /* The same streamed: call headers and argument fragments reassembled by index. */
    req.on_delta = on_delta;
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_eq(r.ntc, 2);
    cr_assert_str_eq(r.tc_args[0], "{\"query\":\"cats and dogs\"}");
    cr_assert_str_eq(r.tc_args[1], "{\"half\": ");
    cr_assert_str_eq(r.finish, "tool_calls");
    cr_assert_eq(r.ndeltas, 0);
    result_free(&r);
}

Test(llm_live, tool_results_round_trip)
{
    eg_llm_tool_t tools[] = {{"search", "search memory", k_tool_params}};
    eg_llm_tool_call_t calls[] = {{"call_77", "search", "{\"query\":\"x\"}"}};
    eg_llm_msg_t msgs[] = {
        {.role = EG_LLM_SYSTEM, .content = "You answer from memory."},
        {.role = EG_LLM_USER, .content = "what is x?"},
        {.role = EG_LLM_ASSISTANT, .tool_calls = calls, .ntool_calls = 1},
        {.role = EG_LLM_TOOL, .content = "x is 42", .tool_call_id = "call_77"},
    };
    eg_llm_req_t req = {.msgs = msgs,
                        .nmsgs = 4,
                        .tools = tools,
                        .ntools = 1,
                        .tool_choice = EG_LLM_TOOLS_AUTO,
                        .temperature = -1};
    result_t r;

    mock_start(NULL);
    mock_rules("{\"match\":{\"last_role\":\"tool\"},\"reply\":{\"content\":\"x is 42.\"}}");
    llm = provider(NULL, 0, 4, 10000);
    chat(&req, &r, NULL);
    run();
    /* The mock checks the conversation as OpenAI does (every call answered, ids matching). */
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_str_eq(r.content, "x is 42.");
    result_free(&r);
}

/* ---- structured output ------------------------------------------------------------------------
 */

static const char *k_schema =
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"facts\",\"count\"],"
    "\"properties\":{\"facts\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"count\":{\"type\":\"integer\",\"minimum\":0}}}";

Test(llm_live, json_schema_output)
{
    eg_llm_req_t req = simple_req();
    result_t r;
    cJSON *log, *rf;

    mock_start(NULL);
    mock_rules("{\"match\":{\"schema_name\":\"facts\"},\"reply\":{\"content\":\"```json\\n"
               "{\\\"facts\\\":[\\\"Alice lives in Paris\\\"],\\\"count\\\":1}\\n```\"}}");
    llm = provider(NULL, 0, 4, 10000);
    req.schema = k_schema;
    req.schema_name = "facts";
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_str_eq(r.json, "{\"facts\":[\"Alice lives in Paris\"],\"count\":1}");
    cr_assert_eq(r.attempts, 1);
    log = mock_log("/v1/chat/completions");
    rf = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(log, 0), "body"),
                             "response_format");
    cr_assert_str_eq(cJSON_GetObjectItem(rf, "type")->valuestring, "json_schema");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(rf, "json_schema"), "strict")));
    cJSON_Delete(log);
    result_free(&r);

    /* Without a rule the mock answers the schema's minimal instance, which is valid. */
    req.schema_name = NULL;
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_str_eq(r.json, "{\"facts\":[],\"count\":0}");
    result_free(&r);
}

Test(llm_live, json_mode_fallback_is_remembered)
{
    eg_llm_req_t req = simple_req();
    result_t r;
    cJSON *log, *body;

    mock_start(NULL);
    mock_rules("[{\"match\":{\"response_format\":\"json_schema\"},\"reply\":{\"status\":400,"
               "\"body\":{\"error\":{\"message\":\"response_format of type json_schema is not "
               "supported with this model\",\"type\":\"invalid_request_error\"}}}},"
               "{\"match\":{\"response_format\":\"json_object\"},\"reply\":{\"json\":{\"facts\":"
               "[\"a\",\"b\"],\"count\":2}}}]");
    llm = provider(NULL, 0, 4, 10000);
    req.schema = k_schema;
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_str_eq(r.json, "{\"facts\":[\"a\",\"b\"],\"count\":2}");
    cr_assert_eq(r.attempts, 2);
    cr_assert(eg__oai_json_mode(llm));
    result_free(&r);

    /* The next call goes straight to JSON mode, the schema in its system message. */
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_eq(r.attempts, 1);
    log = mock_log("/v1/chat/completions");
    cr_assert_eq(cJSON_GetArraySize(log), 3);
    body = cJSON_GetObjectItem(cJSON_GetArrayItem(log, 2), "body");
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(body, "response_format"), "type")->valuestring,
        "json_object");
    {
        cJSON *m0 = cJSON_GetArrayItem(cJSON_GetObjectItem(body, "messages"), 0);
        cr_assert_str_eq(cJSON_GetObjectItem(m0, "role")->valuestring, "system");
        cr_assert(strstr(cJSON_GetObjectItem(m0, "content")->valuestring,
                         "\"additionalProperties\":false") != NULL);
    }
    cJSON_Delete(log);
    result_free(&r);
}

Test(llm_live, repair_turn_then_failure)
{
    eg_llm_req_t req = simple_req();
    result_t r;
    cJSON *log, *msgs;
    int n;

    mock_start(NULL);
    mock_rules("[{\"match\":{\"last_user\":\"hello\"},\"times\":1,\"reply\":{\"json\":{\"facts\":"
               "\"Alice\",\"count\":1}}},"
               "{\"match\":{\"last_user\":\"does not match\"},\"times\":1,\"reply\":{\"json\":{"
               "\"facts\":[\"Alice\"],\"count\":1}}}]");
    llm = provider(NULL, 0, 4, 10000);
    req.schema = k_schema;
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_str_eq(r.json, "{\"facts\":[\"Alice\"],\"count\":1}");
    cr_assert_eq(r.attempts, 2);
    log = mock_log("/v1/chat/completions");
    msgs = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(log, 1), "body"), "messages");
    n = cJSON_GetArraySize(msgs);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "role")->valuestring,
                     "assistant");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content")->valuestring,
                     "{\"facts\":\"Alice\",\"count\":1}");
    cr_assert(strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 2), "content")->valuestring,
                     "$.facts: expected array, got string") != NULL);
    cJSON_Delete(log);
    result_free(&r);

    /* Invalid twice (here: not JSON, then a negative count): EG_EINVAL after one repair. */
    mock_rules("[{\"match\":{\"last_user\":\"hello\"},\"times\":1,\"reply\":{\"content\":"
               "\"Sure! The facts are: Alice.\"}},"
               "{\"match\":{\"last_user\":\"does not match\"},\"times\":1,\"reply\":{\"json\":{"
               "\"facts\":[],\"count\":-1}}}]");
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, EG_EINVAL);
    cr_assert_eq(r.attempts, 2);
    cr_assert(strstr(r.error, "less than minimum") != NULL, "%s", r.error);
    cr_assert_null(r.json);
    result_free(&r);
}

/* ---- failures and retries ---------------------------------------------------------------------
 */

Test(llm_live, rate_limited_then_success)
{
    eg_llm_req_t req = simple_req();
    result_t r;

    mock_start(NULL);
    mock_rules("[{\"times\":1,\"reply\":{\"status\":429,\"headers\":{\"Retry-After\":\"1\"}}},"
               "{\"reply\":{\"content\":\"ok\",\"usage\":{\"prompt_tokens\":4,"
               "\"completion_tokens\":1}}}]");
    llm = provider(NULL, 3, 4, 10000);
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, 0, "%s", r.error);
    cr_assert_str_eq(r.content, "ok");
    cr_assert_eq(r.attempts, 2);
    cr_assert_geq(r.elapsed, 950, "Retry-After not honoured: %llu ms",
                  (unsigned long long)r.elapsed);
    cr_assert_eq(r.usage.input_tokens, 4);
    result_free(&r);
}

Test(llm_live, server_errors_exhaust_retries)
{
    eg_llm_req_t req = simple_req();
    result_t r;
    cJSON *log;

    mock_start(NULL);
    mock_rules("{\"reply\":{\"status\":500}}");
    llm = provider(NULL, 2, 4, 10000);
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, EG_EUPSTREAM);
    cr_assert_eq(r.attempts, 3);
    cr_assert_eq(r.status, 500);
    cr_assert(strstr(r.error, "HTTP 500") != NULL, "%s", r.error);
    cr_assert(strstr(r.error, "The server had an error") != NULL, "%s", r.error);
    log = mock_log("/v1/chat/completions");
    cr_assert_eq(cJSON_GetArraySize(log), 3);
    cJSON_Delete(log);
    result_free(&r);
}

Test(llm_live, auth_and_bad_requests_are_not_retried)
{
    eg_llm_req_t req = simple_req();
    result_t r;

    mock_start(API_KEY);
    llm = provider("sk-wrong", 3, 4, 10000);
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, EG_EAUTH);
    cr_assert_eq(r.attempts, 1);
    cr_assert_eq(r.status, 401);
    cr_assert_null(strstr(r.error, "sk-wrong"), "the key leaked into the error");
    result_free(&r);
    llm->destroy(llm);

    llm = provider(API_KEY, 3, 4, 10000);
    mock_rules("{\"reply\":{\"status\":404,\"body\":{\"error\":{\"message\":\"The model "
               "`mock-model` does not exist\"}}}}");
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, EG_EINVAL);
    cr_assert_eq(r.attempts, 1);
    cr_assert(strstr(r.error, "does not exist") != NULL, "%s", r.error);
    result_free(&r);
}

Test(llm_live, per_attempt_timeout)
{
    eg_llm_req_t req = simple_req();
    result_t r;

    mock_start(NULL);
    mock_rules("{\"reply\":{\"delay_ms\":3000,\"content\":\"late\"}}");
    llm = provider(NULL, 1, 4, 10000);
    req.timeout_ms = 300;
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, EG_EUPTIMEOUT, "%s", r.error);
    cr_assert_eq(r.attempts, 2);
    cr_assert_lt(r.elapsed, 2500);
    result_free(&r);
}

/* A loopback port nothing listens on. */
static int closed_port(void)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

Test(llm_live, unreachable_server_is_retried)
{
    char base[64];
    eg_llm_settings_t s = {"openai", base, NULL, "m"};
    eg__oai_limits_t lim = {5000, 1, 2};
    eg_llm_req_t req = simple_req();
    result_t r;

    snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1", closed_port());
    llm = eg__oai_new(&loop, &s, &lim);
    cr_assert_not_null(llm);
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, EG_ECONNECT, "%s", r.error);
    cr_assert_eq(r.attempts, 2);
    cr_assert_eq(r.status, 0);
    result_free(&r);
}

/* ---- cancel and the concurrency cap -----------------------------------------------------------
 */

static eg_llm_call_t *to_cancel[4];

static void on_cancel_timer(uv_timer_t *t)
{
    for (int i = 0; i < 4; i++) {
        if (to_cancel[i] != NULL)
            eg_llm_cancel(llm, to_cancel[i]);
        to_cancel[i] = NULL;
    }
    uv_close((uv_handle_t *)t, NULL);
}

Test(llm_live, cancel_in_flight_and_queued)
{
    eg_llm_req_t req = simple_req();
    result_t r1, r2, r3;
    uv_timer_t t;

    mock_start(NULL);
    mock_rules("{\"reply\":{\"delay_ms\":3000,\"content\":\"late\"}}");
    llm = provider(NULL, 0, 1, 10000);
    chat(&req, &r1, &to_cancel[0]);
    chat(&req, &r2, &to_cancel[1]);
    cr_assert_eq(eg__oai_in_flight(llm), 1);
    cr_assert_eq(eg__oai_queued(llm), 1);
    /* A queued call canceled right away answers on a later turn, not inside cancel. */
    req.scope = "third";
    chat(&req, &r3, NULL);
    cr_assert_eq(eg__oai_queued(llm), 2);
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_cancel_timer, 100, 0);
    run();
    cr_assert_eq(r1.err, EG_ECANCELED);
    cr_assert_eq(r2.err, EG_ECANCELED);
    cr_assert_lt(r1.elapsed, 2000);
    /* The third took the freed slot and waited out the mock's delay. */
    cr_assert_eq(r3.err, 0, "%s", r3.error);
    cr_assert_str_eq(r3.content, "late");
    cr_assert_eq(eg__oai_in_flight(llm), 0);
    result_free(&r1);
    result_free(&r2);
    result_free(&r3);
}

static int stop_deltas(void *udata, const char *text, size_t len)
{
    return 1;
}

Test(llm_live, delta_callback_cancels)
{
    eg_llm_req_t req = simple_req();
    result_t r;

    mock_start(NULL);
    mock_rules("{\"reply\":{\"stream_chunks\":[\"a\",\"b\",\"c\"]}}");
    llm = provider(NULL, 2, 1, 10000);
    req.on_delta = stop_deltas;
    chat(&req, &r, NULL);
    run();
    cr_assert_eq(r.err, EG_ECANCELED, "%s", r.error);
    cr_assert_eq(r.attempts, 1);
    result_free(&r);
}

Test(llm_live, concurrency_cap_queues_in_order)
{
    eg_llm_req_t req = simple_req();
    result_t r[3];

    mock_start(NULL);
    mock_rules("{\"reply\":{\"delay_ms\":400,\"content\":\"slow\"}}");
    llm = provider(NULL, 0, 2, 10000);
    for (int i = 0; i < 3; i++)
        chat(&req, &r[i], NULL);
    cr_assert_eq(eg__oai_in_flight(llm), 2);
    cr_assert_eq(eg__oai_queued(llm), 1);
    run();
    for (int i = 0; i < 3; i++)
        cr_assert_eq(r[i].err, 0, "%d: %s", i, r[i].error);
    cr_assert_eq(r[2].order, 3);
    /* All three started together: the third only got a slot when one of the first two ended. */
    cr_assert_geq(r[2].elapsed, 780, "the third call did not wait: %llu ms",
                  (unsigned long long)r[2].elapsed);
    cr_assert_geq(r[2].elapsed, EG_MIN(r[0].elapsed, r[1].elapsed) + 350,
                  "the third call overlapped the first two (%llu, %llu, %llu ms)",
                  (unsigned long long)r[0].elapsed, (unsigned long long)r[1].elapsed,
                  (unsigned long long)r[2].elapsed);
    for (int i = 0; i < 3; i++)
        result_free(&r[i]);
}

/* ---- embeddings -------------------------------------------------------------------------------
 */

typedef struct {
    bool called;
    int status;
} embed_result_t;

static void on_embedded(eg_embedder_t *e, int status, void *udata)
{
    embed_result_t *er = udata;

    cr_assert_not(er->called);
    er->called = true;
    er->status = status;
    pending--;
}

static eg_embedder_t *embedder(void)
{
    eg_llm_settings_t s = {"openai", mock_base, NULL, "mock-embed"};
    eg__oai_limits_t lim = {10000, 1, 2};
    eg_embedder_t *e = eg__embed_openai_new(&loop, &s, 16, &lim);

    cr_assert_not_null(e);
    return e;
}

Test(llm_live, embeddings_in_batches)
{
    enum { N = 200 };
    static char bufs[N][32];
    const char *texts[N];
    float *out = eg_xcalloc(N * 16, sizeof(float));
    embed_result_t er = {0};
    cJSON *log;
    const int want[] = {96, 96, 8};

    mock_start(NULL);
    for (int i = 0; i < N; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "text number %d", i % 150);
        texts[i] = bufs[i];
    }
    emb = embedder();
    cr_assert_eq(emb->dim, 16);
    cr_assert_str_eq(emb->name, "openai:mock-embed:16");
    cr_assert_eq(eg_embed_run(emb, texts, N, out, on_embedded, &er), 0);
    pending++;
    run();
    cr_assert_eq(er.status, 0);
    for (int i = 0; i < N; i++) {
        double norm = 0;
        for (int k = 0; k < 16; k++)
            norm += out[i * 16 + k] * out[i * 16 + k];
        cr_assert_float_eq(norm, 1.0, 1e-4, "vector %d has norm %f", i, norm);
    }
    /* Equal texts in different batches get equal vectors (in input order). */
    cr_assert_eq(memcmp(out + 3 * 16, out + 153 * 16, 16 * sizeof(float)), 0);
    cr_assert_neq(memcmp(out + 3 * 16, out + 4 * 16, 16 * sizeof(float)), 0);
    log = mock_log("/v1/embeddings");
    cr_assert_eq(cJSON_GetArraySize(log), 3);
    for (int b = 0; b < 3; b++) {
        cJSON *body = cJSON_GetObjectItem(cJSON_GetArrayItem(log, b), "body");
        cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(body, "input")), want[b]);
        cr_assert_eq(cJSON_GetObjectItem(body, "dimensions")->valueint, 16);
        cr_assert_str_eq(cJSON_GetObjectItem(body, "model")->valuestring, "mock-embed");
    }
    cJSON_Delete(log);
    free(out);
}

Test(llm_live, embeddings_dimension_errors)
{
    const char *texts[] = {"one", "two"};
    float out[32];
    embed_result_t er = {0};
    cJSON *log;

    mock_start(NULL);
    emb = embedder();
    /* A server that refuses "dimensions" is asked again without it. */
    mock_rules("{\"match\":{\"path\":\"/v1/embeddings\"},\"times\":1,\"reply\":{\"status\":400,"
               "\"body\":{\"error\":{\"message\":\"This model does not support specifying "
               "dimensions.\"}}}}");
    cr_assert_eq(eg_embed_run(emb, texts, 2, out, on_embedded, &er), 0);
    pending++;
    run();
    cr_assert_eq(er.status, 0);
    log = mock_log("/v1/embeddings");
    cr_assert_eq(cJSON_GetArraySize(log), 2);
    cr_assert_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(log, 1), "body"), "dimensions"));
    cJSON_Delete(log);

    /* Vectors of another size than configured are an error. */
    mock_rules("{\"match\":{\"path\":\"/v1/embeddings\"},\"reply\":{\"body\":{\"data\":["
               "{\"index\":0,\"embedding\":[1,2,3]},{\"index\":1,\"embedding\":[1,2,3]}]}}}");
    memset(&er, 0, sizeof(er));
    cr_assert_eq(eg_embed_run(emb, texts, 2, out, on_embedded, &er), 0);
    pending++;
    run();
    cr_assert_eq(er.status, EG_EUPSTREAM);
}

/* ---- the process's providers and the probe ----------------------------------------------------
 */

typedef struct {
    bool called;
    char status[32];
} probe_result_t;

static void on_probe(void *udata, const char *status, uint64_t latency_ms)
{
    probe_result_t *pr = udata;

    pr->called = true;
    snprintf(pr->status, sizeof(pr->status), "%s", status);
    pending--;
}

static void probe(eg_llm_op_t op, const char *want)
{
    probe_result_t pr = {0};

    pending++;
    eg_llm_probe(op, on_probe, &pr);
    run();
    cr_assert(pr.called);
    cr_assert_str_eq(pr.status, want, "probe of %s: %s, wanted %s", eg_llm_op_name(op), pr.status,
                     want);
}

static void start_with(const char *base, const char *key, uint64_t timeout_ms)
{
    eg_llm_config_t cfg;

    memset(&cfg, 0, sizeof(cfg));
    for (int op = 0; op < EG_LLM_OP_COUNT; op++)
        cfg.op[op] = (eg_llm_settings_t){"openai", (char *)base, (char *)key, "mock-model"};
    cfg.op[EG_LLM_OP_RETAIN].provider = "builtin";
    cfg.op[EG_LLM_OP_CONSOLIDATION].model = "mock-model-large";
    cfg.embeddings = (eg_llm_settings_t){"openai", (char *)base, (char *)key, "mock-embed"};
    cfg.embeddings_dim = 16;
    cfg.timeout_ms = timeout_ms;
    cfg.max_retries = 2;
    cfg.max_concurrency = 4;
    cr_assert_eq(eg_llm_start(&loop, &cfg), 0);
}

Test(llm_live, process_providers_and_probe)
{
    char base[64];

    mock_start(API_KEY);
    start_with(mock_base, API_KEY, 10000);
    cr_assert_null(eg_llm_for(EG_LLM_OP_RETAIN));
    cr_assert_not_null(eg_llm_for(EG_LLM_OP_DEFAULT));
    /* Same server, key and model: one client; another model: its own. */
    cr_assert_eq(eg_llm_for(EG_LLM_OP_REFLECT), eg_llm_for(EG_LLM_OP_DEFAULT));
    cr_assert_neq(eg_llm_for(EG_LLM_OP_CONSOLIDATION), eg_llm_for(EG_LLM_OP_DEFAULT));
    cr_assert_str_eq(eg_llm_for(EG_LLM_OP_CONSOLIDATION)->model, "mock-model-large");
    cr_assert_str_eq(eg_llm_embedder()->name, "openai:mock-embed:16");
    probe(EG_LLM_OP_DEFAULT, "connected");
    probe(EG_LLM_OP_RETAIN, "not_configured");
    mock_rules("{\"match\":{\"model\":\"mock-model-large\"},\"reply\":{\"delay_ms\":3000}}");
    eg_llm_shutdown();
    run();

    start_with(mock_base, API_KEY, 300);
    probe(EG_LLM_OP_CONSOLIDATION, "timeout");
    eg_llm_shutdown();
    start_with(mock_base, "sk-nope", 10000);
    probe(EG_LLM_OP_REFLECT, "auth_failed");
    eg_llm_shutdown();
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1", closed_port());
    start_with(base, NULL, 10000);
    probe(EG_LLM_OP_DEFAULT, "unreachable");
    cr_assert_eq(eg_llm_embedder()->dim, 16);
    eg_llm_shutdown();
    cr_assert_eq(eg_llm_embedder()->dim, EG_EMBED_DEFAULT_DIM);
}
