/* LLM providers, part one: the pure pieces — configuration, request bodies, whole and streamed
 * responses (split at every byte), error bodies, Retry-After, the JSON Schema subset, embeddings
 * bodies. Part two (test_llm_live.c) drives the real provider against tools/mock-llm. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/llm.h"
#include "engram/log.h"
#include "engram/util.h"
#include "llm/llm_int.h"

static void quiet(void)
{
    eg_log_set_level(EG_LOG_OFF);
}

TestSuite(llm, .init = quiet, .timeout = 30);

/* ---- configuration ----------------------------------------------------------------------------
 */

static const char *const *t_env;

static const char *t_get(const char *name)
{
    for (const char *const *e = t_env; e != NULL && *e != NULL; e += 2) {
        if (strcmp(e[0], name) == 0)
            return e[1];
    }
    return NULL;
}

static int cfg_from(eg_llm_config_t *cfg, const char *const *env, char *err, size_t errlen)
{
    t_env = env;
    return eg_llm_config_from_env(cfg, t_get, err, errlen);
}

Test(llm, config_defaults_are_builtin)
{
    eg_llm_config_t cfg;
    char err[256] = "";
    const char *env[] = {NULL};

    cr_assert_eq(cfg_from(&cfg, env, err, sizeof(err)), 0, "%s", err);
    for (int op = 0; op < EG_LLM_OP_COUNT; op++) {
        cr_assert_str_eq(cfg.op[op].provider, "builtin");
        cr_assert_null(cfg.op[op].model);
    }
    cr_assert_str_eq(cfg.embeddings.provider, "builtin");
    cr_assert_eq(cfg.embeddings_dim, 384);
    cr_assert_eq(cfg.timeout_ms, 120000);
    cr_assert_eq(cfg.max_retries, 3);
    cr_assert_eq(cfg.max_concurrency, 8);
    eg_llm_config_free(&cfg);
    cr_assert_str_eq(eg_llm_op_name(EG_LLM_OP_CONSOLIDATION), "consolidation");
    cr_assert_str_eq(eg_llm_op_name(EG_LLM_OP_DEFAULT), "default");
}

Test(llm, config_operations_inherit_unset_fields)
{
    eg_llm_config_t cfg;
    char err[256] = "";
    const char *env[] = {"ENGRAM_LLM_PROVIDER",
                         "openai",
                         "ENGRAM_LLM_API_KEY",
                         "sk-main",
                         "ENGRAM_LLM_MODEL",
                         "gpt-4o-mini",
                         "ENGRAM_REFLECT_LLM_MODEL",
                         "gpt-4o",
                         "ENGRAM_RETAIN_LLM_BASE_URL",
                         "http://127.0.0.1:11434/v1/",
                         "ENGRAM_RETAIN_LLM_API_KEY",
                         "",
                         "ENGRAM_CONSOLIDATION_LLM_PROVIDER",
                         "builtin",
                         "ENGRAM_LLM_TIMEOUT",
                         "30s",
                         "ENGRAM_LLM_MAX_RETRIES",
                         "0",
                         "ENGRAM_LLM_MAX_CONCURRENCY",
                         "2",
                         NULL};

    cr_assert_eq(cfg_from(&cfg, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(cfg.op[EG_LLM_OP_DEFAULT].base_url, "https://api.openai.com/v1");
    cr_assert_str_eq(cfg.op[EG_LLM_OP_REFLECT].model, "gpt-4o");
    cr_assert_str_eq(cfg.op[EG_LLM_OP_REFLECT].api_key, "sk-main");
    cr_assert_str_eq(cfg.op[EG_LLM_OP_REFLECT].provider, "openai");
    /* Trailing slash dropped; an empty variable counts as unset (the key is inherited). */
    cr_assert_str_eq(cfg.op[EG_LLM_OP_RETAIN].base_url, "http://127.0.0.1:11434/v1");
    cr_assert_str_eq(cfg.op[EG_LLM_OP_RETAIN].api_key, "sk-main");
    cr_assert_str_eq(cfg.op[EG_LLM_OP_RETAIN].model, "gpt-4o-mini");
    cr_assert_str_eq(cfg.op[EG_LLM_OP_CONSOLIDATION].provider, "builtin");
    cr_assert_eq(cfg.timeout_ms, 30000);
    cr_assert_eq(cfg.max_retries, 0);
    cr_assert_eq(cfg.max_concurrency, 2);
    cr_assert_str_eq(cfg.embeddings.provider, "builtin");
    eg_llm_config_free(&cfg);
}

Test(llm, config_embeddings_borrow_the_llm_server)
{
    eg_llm_config_t cfg;
    char err[256] = "";
    const char *env[] = {"ENGRAM_LLM_PROVIDER",
                         "openai",
                         "ENGRAM_LLM_BASE_URL",
                         "http://10.0.0.5:8000/v1",
                         "ENGRAM_LLM_API_KEY",
                         "k",
                         "ENGRAM_LLM_MODEL",
                         "m",
                         "ENGRAM_EMBEDDINGS_PROVIDER",
                         "openai",
                         "ENGRAM_EMBEDDINGS_MODEL",
                         "text-embedding-3-small",
                         "ENGRAM_EMBEDDINGS_DIMENSIONS",
                         "512",
                         NULL};

    cr_assert_eq(cfg_from(&cfg, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(cfg.embeddings.base_url, "http://10.0.0.5:8000/v1");
    cr_assert_str_eq(cfg.embeddings.api_key, "k");
    cr_assert_str_eq(cfg.embeddings.model, "text-embedding-3-small");
    cr_assert_eq(cfg.embeddings_dim, 512);
    eg_llm_config_free(&cfg);
}

static void config_error(const char *const *env, const char *want)
{
    eg_llm_config_t cfg;
    char err[256] = "";

    cr_assert_eq(cfg_from(&cfg, env, err, sizeof(err)), EG_EINVAL, "accepted, wanted %s", want);
    cr_assert(strstr(err, want) != NULL, "error \"%s\" does not name %s", err, want);
}

Test(llm, config_errors_name_the_variable)
{
    const char *e1[] = {"ENGRAM_LLM_PROVIDER", "anthropic", NULL};
    const char *e2[] = {"ENGRAM_LLM_PROVIDER", "openai", NULL};
    const char *e3[] = {"ENGRAM_REFLECT_LLM_PROVIDER", "openai", NULL};
    const char *e4[] = {"ENGRAM_LLM_BASE_URL", "ftp://x/v1", NULL};
    const char *e5[] = {"ENGRAM_LLM_BASE_URL", "http://user:pw@host/v1", NULL};
    const char *e6[] = {"ENGRAM_LLM_TIMEOUT", "soon", NULL};
    const char *e7[] = {"ENGRAM_LLM_MAX_RETRIES", "-1", NULL};
    const char *e8[] = {"ENGRAM_LLM_MAX_CONCURRENCY", "0", NULL};
    const char *e9[] = {"ENGRAM_EMBEDDINGS_PROVIDER", "openai", "ENGRAM_EMBEDDINGS_MODEL", "m",
                        NULL};
    const char *e10[] = {"ENGRAM_EMBEDDINGS_DIMENSIONS", "0", NULL};
    const char *e11[] = {"ENGRAM_EMBEDDINGS_PROVIDER", "openai", "ENGRAM_EMBEDDINGS_DIMENSIONS",
                         "8", NULL};

    config_error(e1, "ENGRAM_LLM_PROVIDER");
    config_error(e2, "ENGRAM_LLM_MODEL");
    config_error(e3, "ENGRAM_REFLECT_LLM_MODEL");
    config_error(e4, "ENGRAM_LLM_BASE_URL");
    config_error(e5, "ENGRAM_LLM_BASE_URL");
    config_error(e6, "ENGRAM_LLM_TIMEOUT");
    config_error(e7, "ENGRAM_LLM_MAX_RETRIES");
    config_error(e8, "ENGRAM_LLM_MAX_CONCURRENCY");
    config_error(e9, "ENGRAM_EMBEDDINGS_DIMENSIONS");
    config_error(e10, "ENGRAM_EMBEDDINGS_DIMENSIONS");
    config_error(e11, "ENGRAM_EMBEDDINGS_MODEL");
}

Test(llm, allow_list_holds_the_configured_host)
{
    char *a = eg__llm_allow_list("http://127.0.0.1:11434/v1");
    cr_assert_str_eq(a, "127.0.0.1");
    free(a);
    a = eg__llm_allow_list("http://[::1]:8000/v1");
    cr_assert_str_eq(a, "::1");
    free(a);
    a = eg__llm_allow_list("https://llm.internal/v1");
    cr_assert_str_eq(a, "llm.internal");
    free(a);
}

/* ---- request bodies ---------------------------------------------------------------------------
 */

static cJSON *body_json(const eg_llm_req_t *req, const eg__oai_body_opts_t *o)
{
    char err[256] = "";
    char *txt = eg__oai_chat_body(req, o, err, sizeof(err));
    cJSON *j;

    cr_assert_not_null(txt, "body refused: %s", err);
    j = cJSON_Parse(txt);
    cr_assert_not_null(j, "not JSON: %s", txt);
    free(txt);
    return j;
}

static const char *jstr(const cJSON *o, const char *path)
{
    /* A dotted path with [n] indexes: "messages[1].tool_calls[0].function.name". */
    char buf[256], *p = buf, *tok;
    const cJSON *cur = o;

    snprintf(buf, sizeof(buf), "%s", path);
    while ((tok = strsep(&p, ".")) != NULL && cur != NULL) {
        char *br = strchr(tok, '[');
        int idx = -1;

        if (br != NULL) {
            idx = atoi(br + 1);
            *br = '\0';
        }
        if (tok[0] != '\0')
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        if (idx >= 0)
            cur = cJSON_GetArrayItem(cur, idx);
    }
    if (cur == NULL)
        return NULL;
    if (cJSON_IsString(cur))
        return cur->valuestring;
    if (cJSON_IsTrue(cur))
        return "true";
    if (cJSON_IsNull(cur))
        return "null";
    return "(other)";
}

static const cJSON *jget(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

Test(llm, body_messages_tools_and_tool_results)
{
    eg_llm_tool_call_t calls[] = {{"call_1", "lookup", "{\"q\":\"x\"}"}};
    eg_llm_msg_t msgs[] = {
        {.role = EG_LLM_SYSTEM, .content = "be brief"},
        {.role = EG_LLM_USER, .content = "find x"},
        {.role = EG_LLM_ASSISTANT, .tool_calls = calls, .ntool_calls = 1},
        {.role = EG_LLM_TOOL, .content = "x is 1", .tool_call_id = "call_1"},
    };
    eg_llm_tool_t tools[] = {
        {"lookup", "look a thing up",
         "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}},\"required\":[\"q\"]}"},
        {"noop", NULL, NULL},
    };
    eg_llm_req_t req = {.msgs = msgs,
                        .nmsgs = 4,
                        .tools = tools,
                        .ntools = 2,
                        .tool_choice = EG_LLM_TOOLS_NAMED,
                        .tool_choice_name = "lookup",
                        .temperature = 0.2,
                        .max_tokens = 100};
    eg__oai_body_opts_t o = {.model = "m1"};
    cJSON *j = body_json(&req, &o);

    cr_assert_str_eq(jstr(j, "model"), "m1");
    cr_assert_str_eq(jstr(j, "messages[0].role"), "system");
    cr_assert_str_eq(jstr(j, "messages[1].content"), "find x");
    cr_assert_str_eq(jstr(j, "messages[2].role"), "assistant");
    cr_assert_str_eq(jstr(j, "messages[2].content"), "null");
    cr_assert_str_eq(jstr(j, "messages[2].tool_calls[0].id"), "call_1");
    cr_assert_str_eq(jstr(j, "messages[2].tool_calls[0].type"), "function");
    cr_assert_str_eq(jstr(j, "messages[2].tool_calls[0].function.name"), "lookup");
    cr_assert_str_eq(jstr(j, "messages[2].tool_calls[0].function.arguments"), "{\"q\":\"x\"}");
    cr_assert_str_eq(jstr(j, "messages[3].role"), "tool");
    cr_assert_str_eq(jstr(j, "messages[3].tool_call_id"), "call_1");
    cr_assert_str_eq(jstr(j, "tools[0].type"), "function");
    cr_assert_str_eq(jstr(j, "tools[0].function.description"), "look a thing up");
    cr_assert_str_eq(jstr(j, "tools[0].function.parameters.required[0]"), "q");
    cr_assert_str_eq(jstr(j, "tools[1].function.parameters.type"), "object");
    cr_assert_str_eq(jstr(j, "tool_choice.function.name"), "lookup");
    cr_assert_float_eq(jget(j, "temperature")->valuedouble, 0.2, 1e-9);
    cr_assert_eq(jget(j, "max_tokens")->valueint, 100);
    cr_assert_null(jget(j, "stream"));
    cr_assert_null(jget(j, "response_format"));
    cJSON_Delete(j);

    req.tool_choice = EG_LLM_TOOLS_REQUIRED;
    req.temperature = -1;
    req.max_tokens = 0;
    j = body_json(&req, &o);
    cr_assert_str_eq(jstr(j, "tool_choice"), "required");
    cr_assert_null(jget(j, "temperature"));
    cr_assert_null(jget(j, "max_tokens"));
    cJSON_Delete(j);
    req.tool_choice = EG_LLM_TOOLS_NONE;
    j = body_json(&req, &o);
    cr_assert_str_eq(jstr(j, "tool_choice"), "none");
    cJSON_Delete(j);
    req.tool_choice = EG_LLM_TOOLS_AUTO;
    j = body_json(&req, &o);
    cr_assert_null(jget(j, "tool_choice"));
    cJSON_Delete(j);
}

Test(llm, body_refuses_malformed_requests)
{
    eg_llm_msg_t tool_no_id = {.role = EG_LLM_TOOL, .content = "r"};
    eg_llm_msg_t user = {.role = EG_LLM_USER, .content = "hi"};
    eg_llm_msg_t user_null = {.role = EG_LLM_USER};
    eg_llm_tool_t bad = {"t", NULL, "{not json"};
    eg_llm_req_t req = {.msgs = &tool_no_id, .nmsgs = 1, .temperature = -1};
    eg__oai_body_opts_t o = {.model = "m"};
    char err[256];

    cr_assert_null(eg__oai_chat_body(&req, &o, err, sizeof(err)));
    cr_assert(strstr(err, "tool_call_id") != NULL, "%s", err);
    req.msgs = &user_null;
    cr_assert_null(eg__oai_chat_body(&req, &o, err, sizeof(err)));
    req.msgs = &user;
    req.tools = &bad;
    req.ntools = 1;
    cr_assert_null(eg__oai_chat_body(&req, &o, err, sizeof(err)));
    cr_assert(strstr(err, "parameters") != NULL, "%s", err);
}

static const char *k_schema = "{\"type\":\"object\",\"properties\":{\"facts\":{\"type\":\"array\","
                              "\"items\":{\"type\":\"string\"}}},\"required\":[\"facts\"],"
                              "\"additionalProperties\":false}";

Test(llm, body_structured_output_and_stream)
{
    eg_llm_msg_t msgs[] = {{.role = EG_LLM_SYSTEM, .content = "extract facts"},
                           {.role = EG_LLM_USER, .content = "Alice moved to Paris."}};
    eg_llm_req_t req = {
        .msgs = msgs, .nmsgs = 2, .schema = k_schema, .schema_name = "facts", .temperature = -1};
    cJSON *schema = cJSON_Parse(k_schema);
    eg__oai_body_opts_t o = {.model = "m", .schema = schema, .stream = true};
    cJSON *j = body_json(&req, &o);
    const cJSON *rf;

    cr_assert_str_eq(jstr(j, "response_format.type"), "json_schema");
    cr_assert_str_eq(jstr(j, "response_format.json_schema.name"), "facts");
    cr_assert_str_eq(jstr(j, "response_format.json_schema.strict"), "true");
    rf = jget(jget(jget(j, "response_format"), "json_schema"), "schema");
    cr_assert(cJSON_Compare(rf, schema, true));
    cr_assert_str_eq(jstr(j, "stream"), "true");
    cr_assert_str_eq(jstr(j, "stream_options.include_usage"), "true");
    cr_assert_str_eq(jstr(j, "messages[0].content"), "extract facts");
    cJSON_Delete(j);

    /* JSON mode: json_object, and the schema joins the system message. */
    o.json_mode = true;
    o.stream = false;
    j = body_json(&req, &o);
    cr_assert_str_eq(jstr(j, "response_format.type"), "json_object");
    cr_assert_null(jget(jget(j, "response_format"), "json_schema"));
    cr_assert(strncmp(jstr(j, "messages[0].content"), "extract facts\n\n", 15) == 0);
    cr_assert(strstr(jstr(j, "messages[0].content"), "\"additionalProperties\":false") != NULL);
    cr_assert_eq(cJSON_GetArraySize(jget(j, "messages")), 2);
    cJSON_Delete(j);

    /* No system message: one is put first. And the repair turn closes the conversation. */
    req.msgs = &msgs[1];
    req.nmsgs = 1;
    o.repair_answer = "{\"facts\":\"Alice\"}";
    o.repair_error = "$.facts: expected array, got string";
    j = body_json(&req, &o);
    cr_assert_eq(cJSON_GetArraySize(jget(j, "messages")), 4);
    cr_assert_str_eq(jstr(j, "messages[0].role"), "system");
    cr_assert(strstr(jstr(j, "messages[0].content"), "JSON Schema") != NULL);
    cr_assert_str_eq(jstr(j, "messages[2].role"), "assistant");
    cr_assert_str_eq(jstr(j, "messages[2].content"), "{\"facts\":\"Alice\"}");
    cr_assert_str_eq(jstr(j, "messages[3].role"), "user");
    cr_assert(strstr(jstr(j, "messages[3].content"), "$.facts: expected array, got string") !=
              NULL);
    cJSON_Delete(j);
    cJSON_Delete(schema);
}

/* ---- whole responses --------------------------------------------------------------------------
 */

Test(llm, parse_response_content_tools_usage)
{
    const char *body =
        "{\"id\":\"x\",\"model\":\"gpt-4o-mini-2024\",\"choices\":[{\"index\":0,\"message\":{"
        "\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_a\",\"type\":"
        "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}},{\"type\":"
        "\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"broken\"}}]},"
        "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":"
        "20,\"total_tokens\":120,\"prompt_tokens_details\":{\"cached_tokens\":64},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":5}}}";
    eg__oai_result_t r = {0};
    char err[256];

    cr_assert_eq(eg__oai_parse_response(body, strlen(body), &r, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(r.content.data, "");
    cr_assert_eq(r.ntcs, 2);
    cr_assert_str_eq(r.tcs[0].id, "call_a");
    cr_assert_str_eq(r.tcs[0].name, "f");
    cr_assert_str_eq(r.tcs[0].args.data, "{\"a\":1}");
    /* Bad argument JSON is handed over verbatim; a missing id is made up. */
    cr_assert_str_eq(r.tcs[1].args.data, "{\"broken");
    cr_assert_str_eq(r.tcs[1].id, "call_1");
    cr_assert_str_eq(r.finish_reason, "tool_calls");
    cr_assert_str_eq(r.model, "gpt-4o-mini-2024");
    cr_assert_eq(r.usage.input_tokens, 100);
    cr_assert_eq(r.usage.output_tokens, 20);
    cr_assert_eq(r.usage.total_tokens, 120);
    cr_assert_eq(r.usage.cached_tokens, 64);
    cr_assert_eq(r.usage.thoughts_tokens, 5);
    eg__oai_result_reset(&r);

    body = "{\"choices\":[{\"message\":{\"content\":\"hello\"},\"finish_reason\":\"stop\"}]}";
    cr_assert_eq(eg__oai_parse_response(body, strlen(body), &r, err, sizeof(err)), 0);
    cr_assert_str_eq(r.content.data, "hello");
    cr_assert_eq(r.ntcs, 0);
    cr_assert_eq(r.usage.total_tokens, 0);
    eg__oai_result_reset(&r);
}

Test(llm, parse_response_malformed)
{
    const char *bad[] = {"",
                         "{",
                         "[]",
                         "{\"choices\":[]}",
                         "{\"choices\":[{\"text\":\"x\"}]}",
                         "{\"error\":{\"message\":\"model overloaded\"}}",
                         "<html>502</html>"};
    eg__oai_result_t r = {0};
    char err[256];

    for (size_t i = 0; i < EG_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        cr_assert_eq(eg__oai_parse_response(bad[i], strlen(bad[i]), &r, err, sizeof(err)),
                     EG_EUPSTREAM, "accepted %s", bad[i]);
        cr_assert(err[0] != '\0');
    }
    cr_assert_eq(eg__oai_parse_response(bad[5], strlen(bad[5]), &r, err, sizeof(err)),
                 EG_EUPSTREAM);
    cr_assert(strstr(err, "model overloaded") != NULL, "%s", err);
    eg__oai_result_reset(&r);
}

Test(llm, fences_are_stripped)
{
    const struct {
        const char *in, *out;
    } cases[] = {
        {"{\"a\":1}", "{\"a\":1}"},
        {"  \n{\"a\":1}\n ", "{\"a\":1}"},
        {"```json\n{\"a\":1}\n```", "{\"a\":1}"},
        {"```\n[1,2]\n```\n", "[1,2]"},
        {"Here it is:\n```json\n{\"a\":1}\n```\nHope that helps.", "{\"a\":1}"},
        {"```json\n{\"a\":1}", "{\"a\":1}"},
        {"not json at all", "not json at all"},
    };

    for (size_t i = 0; i < EG_ARRAY_SIZE(cases); i++) {
        const char *o;
        size_t n;

        eg__oai_strip_fences(cases[i].in, strlen(cases[i].in), &o, &n);
        cr_assert(n == strlen(cases[i].out) && memcmp(o, cases[i].out, n) == 0,
                  "case %zu: got \"%.*s\"", i, (int)n, o);
    }
}

/* ---- streams ----------------------------------------------------------------------------------
 */

typedef struct {
    eg_buf_t text;
    int calls;
    int stop_after; /* abort on this delta (0 = never) */
} deltas_t;

static int on_delta(void *udata, const char *text, size_t len)
{
    deltas_t *d = udata;

    eg_buf_append(&d->text, text, len);
    d->calls++;
    return d->stop_after > 0 && d->calls >= d->stop_after;
}

/* A stream as OpenAI sends it: role first, text in pieces, two tool calls whose arguments arrive
 * in fragments (the second call's arguments are not valid JSON), finish, usage, [DONE]. */
static const char *k_stream =
    "data: {\"id\":\"c\",\"model\":\"m-2024\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
    "\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n"
    ": keep-alive\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_x\","
    "\"type\":\"function\",\"function\":{\"name\":\"search\",\"arguments\":\"\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
    "\"arguments\":\"{\\\"q\\\":\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_y\","
    "\"function\":{\"name\":\"save\",\"arguments\":\"{oops\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
    "\"arguments\":\"\\\"x\\\"}\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,"
    "\"total_tokens\":18,\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\n"
    "data: [DONE]\n\n";

static void check_stream_result(const eg__oai_result_t *r, const deltas_t *d)
{
    cr_assert_str_eq(r->content.data, "Hello \xc3\xa9");
    cr_assert_str_eq(d->text.data, "Hello \xc3\xa9");
    cr_assert_eq(r->ntcs, 2);
    cr_assert_str_eq(r->tcs[0].id, "call_x");
    cr_assert_str_eq(r->tcs[0].name, "search");
    cr_assert_str_eq(r->tcs[0].args.data, "{\"q\":\"x\"}");
    cr_assert_str_eq(r->tcs[1].id, "call_y");
    cr_assert_str_eq(r->tcs[1].name, "save");
    cr_assert_str_eq(r->tcs[1].args.data, "{oops");
    cr_assert_str_eq(r->finish_reason, "tool_calls");
    cr_assert_str_eq(r->model, "m-2024");
    cr_assert_eq(r->usage.input_tokens, 11);
    cr_assert_eq(r->usage.output_tokens, 7);
    cr_assert_eq(r->usage.cached_tokens, 3);
}

Test(llm, stream_parsed_at_every_split)
{
    size_t len = strlen(k_stream);

    for (size_t cut = 0; cut <= len; cut++) {
        eg__oai_result_t r = {0};
        eg__oai_sse_t p;
        deltas_t d = {EG_BUF_INIT, 0, 0};

        eg__oai_sse_init(&p, &r, on_delta, &d);
        cr_assert_eq(eg__oai_sse_feed(&p, k_stream, cut), 0, "cut %zu: %s", cut, p.err);
        cr_assert_eq(eg__oai_sse_feed(&p, k_stream + cut, len - cut), 0, "cut %zu: %s", cut, p.err);
        cr_assert_eq(eg__oai_sse_end(&p), 0, "cut %zu: %s", cut, p.err);
        check_stream_result(&r, &d);
        eg__oai_sse_free(&p);
        eg__oai_result_reset(&r);
        eg_buf_free(&d.text);
    }
}

Test(llm, stream_parsed_byte_by_byte_and_in_odd_pieces)
{
    size_t len = strlen(k_stream);
    const size_t steps[] = {1, 3, 7, 13, 64};

    for (size_t s = 0; s < EG_ARRAY_SIZE(steps); s++) {
        eg__oai_result_t r = {0};
        eg__oai_sse_t p;
        deltas_t d = {EG_BUF_INIT, 0, 0};

        eg__oai_sse_init(&p, &r, on_delta, &d);
        for (size_t off = 0; off < len; off += steps[s])
            cr_assert_eq(eg__oai_sse_feed(&p, k_stream + off, EG_MIN(steps[s], len - off)), 0);
        cr_assert_eq(eg__oai_sse_end(&p), 0, "%s", p.err);
        check_stream_result(&r, &d);
        cr_assert_eq(d.calls, 2);
        eg__oai_sse_free(&p);
        eg__oai_result_reset(&r);
        eg_buf_free(&d.text);
    }
}

static int stream_end_of(const char *s, eg__oai_result_t *r, char *err, size_t errlen)
{
    eg__oai_sse_t p;
    int rc;

    eg__oai_sse_init(&p, r, NULL, NULL);
    rc = eg__oai_sse_feed(&p, s, strlen(s));
    if (rc == 0)
        rc = eg__oai_sse_end(&p);
    snprintf(err, errlen, "%s", p.err);
    eg__oai_sse_free(&p);
    return rc;
}

Test(llm, stream_truncated_or_broken)
{
    eg__oai_result_t r = {0};
    char err[256];
    size_t cut = strstr(k_stream, "\"finish_reason\":\"tool_calls\"") - k_stream;
    char *trunc = eg_xstrndup(k_stream, cut);

    /* Cut before the finish_reason and [DONE]: an error saying so. */
    cr_assert_eq(stream_end_of(trunc, &r, err, sizeof(err)), EG_EUPSTREAM);
    cr_assert(strstr(err, "ended early") != NULL, "%s", err);
    free(trunc);
    /* A finish_reason without [DONE] is a complete answer (some servers stop there). */
    cr_assert_eq(stream_end_of("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},"
                               "\"finish_reason\":\"stop\"}]}",
                               &r, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_str_eq(r.content.data, "a");
    /* [DONE] alone ends a stream, even an empty one. */
    cr_assert_eq(stream_end_of("data: [DONE]\n\n", &r, err, sizeof(err)), 0);
    cr_assert_str_eq(r.content.data, "");
    cr_assert_eq(stream_end_of("", &r, err, sizeof(err)), EG_EUPSTREAM);
    cr_assert_eq(stream_end_of("data: {\"choices\":[{\"delta\":{\"content\":\"a\"\n\n", &r, err,
                               sizeof(err)),
                 EG_EUPSTREAM);
    cr_assert(strstr(err, "not a JSON object") != NULL, "%s", err);
    cr_assert_eq(stream_end_of("data: {\"error\":{\"message\":\"context length exceeded\"}}\n\n",
                               &r, err, sizeof(err)),
                 EG_EUPSTREAM);
    cr_assert(strstr(err, "context length exceeded") != NULL, "%s", err);
    eg__oai_result_reset(&r);
}

Test(llm, stream_delta_callback_aborts)
{
    eg__oai_result_t r = {0};
    eg__oai_sse_t p;
    deltas_t d = {EG_BUF_INIT, 0, 1};

    eg__oai_sse_init(&p, &r, on_delta, &d);
    cr_assert_eq(eg__oai_sse_feed(&p, k_stream, strlen(k_stream)), EG_ECANCELED);
    cr_assert_eq(d.calls, 1);
    eg__oai_sse_free(&p);
    eg__oai_result_reset(&r);
    eg_buf_free(&d.text);
}

/* ---- errors and retries -----------------------------------------------------------------------
 */

Test(llm, error_messages)
{
    char m[128];
    const char *b1 = "{\"error\":{\"message\":\"Invalid 'response_format': json_schema is not "
                     "supported\",\"type\":\"invalid_request_error\"}}";
    const char *b2 = "{\"error\":\"model \\\"x\\\" not found\"}";
    const char *b3 = "{\"detail\":\"Not Found\"}";
    const char *b4 = "upstream\r\nconnect error";

    eg__oai_error_message(b1, strlen(b1), m, sizeof(m));
    cr_assert_str_eq(m, "Invalid 'response_format': json_schema is not supported");
    cr_assert(eg__oai_schema_unsupported(m));
    eg__oai_error_message(b2, strlen(b2), m, sizeof(m));
    cr_assert_str_eq(m, "model \"x\" not found");
    cr_assert_not(eg__oai_schema_unsupported(m));
    eg__oai_error_message(b3, strlen(b3), m, sizeof(m));
    cr_assert_str_eq(m, "Not Found");
    eg__oai_error_message(b4, strlen(b4), m, sizeof(m));
    cr_assert_str_eq(m, "upstream  connect error");
    eg__oai_error_message(NULL, 0, m, sizeof(m));
    cr_assert_str_eq(m, "(empty body)");
}

Test(llm, retry_after_values)
{
    int64_t now = INT64_C(1445412480000); /* Wed, 21 Oct 2015 07:28:00 GMT */

    cr_assert_eq(eg__oai_retry_after_ms("5", now), 5000);
    cr_assert_eq(eg__oai_retry_after_ms(" 0 ", now), 0);
    cr_assert_eq(eg__oai_retry_after_ms("1.5", now), 1500);
    cr_assert_eq(eg__oai_retry_after_ms("Wed, 21 Oct 2015 07:28:30 GMT", now), 30000);
    cr_assert_eq(eg__oai_retry_after_ms("Wednesday, 21-Oct-15 07:28:02 GMT", now), 2000);
    cr_assert_eq(eg__oai_retry_after_ms("Wed Oct 21 07:28:01 2015", now), 1000);
    cr_assert_eq(eg__oai_retry_after_ms("Tue, 20 Oct 2015 07:28:00 GMT", now), 0);
    cr_assert_eq(eg__oai_retry_after_ms("soon", now), -1);
    cr_assert_eq(eg__oai_retry_after_ms("-3", now), -1);
    cr_assert_eq(eg__oai_retry_after_ms("5s", now), -1);
    cr_assert_eq(eg__oai_retry_after_ms(NULL, now), -1);

    /* The wait: Retry-After capped, else doubling with jitter within [half, whole]. */
    cr_assert_eq(eg__llm_retry_wait_ms(0, "2"), 2000);
    cr_assert_eq(eg__llm_retry_wait_ms(0, "86400"), EG_LLM_RETRY_AFTER_CAP_MS);
    for (int n = 0; n < 8; n++) {
        uint64_t full = EG_MIN(eg__llm_backoff_base_ms << n, (uint64_t)30000);
        uint64_t w = eg__llm_retry_wait_ms(n, NULL);
        cr_assert(w >= full / 2 && w <= full, "retry %d waits %llu of %llu", n,
                  (unsigned long long)w, (unsigned long long)full);
    }
    cr_assert_leq(eg__llm_retry_wait_ms(40, "bogus"), 30000);
}

/* ---- JSON Schema subset -----------------------------------------------------------------------
 */

static int validate(const char *schema, const char *value, char *err, size_t errlen)
{
    cJSON *s = cJSON_Parse(schema), *v = cJSON_Parse(value);
    int rc;

    cr_assert_not_null(s, "schema %s", schema);
    cr_assert_not_null(v, "value %s", value);
    rc = eg__jschema_validate(s, v, err, errlen);
    cJSON_Delete(s);
    cJSON_Delete(v);
    return rc;
}

static void valid(const char *schema, const char *value)
{
    char err[256];
    cr_assert_eq(validate(schema, value, err, sizeof(err)), 0, "%s against %s: %s", value, schema,
                 err);
}

static void invalid(const char *schema, const char *value, const char *want)
{
    char err[256] = "";
    cr_assert_eq(validate(schema, value, err, sizeof(err)), EG_EINVAL, "%s passed %s", value,
                 schema);
    cr_assert(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
}

Test(llm, schema_subset)
{
    const char *facts =
        "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"facts\"],"
        "\"properties\":{\"facts\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":3,\"items\":{"
        "\"type\":\"object\",\"required\":[\"what\",\"kind\"],\"properties\":{\"what\":{\"type\":"
        "\"string\"},\"kind\":{\"enum\":[\"world\",\"experience\"]},\"when\":{\"type\":[\"string\","
        "\"null\"]},\"score\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},\"n\":{\"type\":"
        "\"integer\"}}}}}}";

    valid(facts, "{\"facts\":[{\"what\":\"a\",\"kind\":\"world\"}]}");
    valid(facts, "{\"facts\":[{\"what\":\"a\",\"kind\":\"world\",\"when\":null,\"score\":0.5,"
                 "\"n\":3,\"extra\":1}]}");
    invalid(facts, "{}", "$: missing required property \"facts\"");
    invalid(facts, "{\"facts\":[],\"x\":1}", "$.facts: 0 items, fewer than minItems 1");
    invalid(facts, "{\"facts\":[{\"what\":\"a\",\"kind\":\"world\"}],\"x\":1}",
            "$: unexpected property \"x\"");
    invalid(facts, "{\"facts\":[{\"what\":1,\"kind\":\"world\"}]}",
            "$.facts[0].what: expected string, got number");
    invalid(facts, "{\"facts\":[{\"what\":\"a\",\"kind\":\"opinion\"}]}",
            "$.facts[0].kind: value is not one of [\"world\",\"experience\"]");
    invalid(facts, "{\"facts\":[{\"what\":\"a\",\"kind\":\"world\",\"when\":3}]}",
            "$.facts[0].when: expected string or null, got number");
    invalid(facts, "{\"facts\":[{\"what\":\"a\",\"kind\":\"world\",\"score\":1.5}]}",
            "$.facts[0].score: 1.5 is greater than maximum 1");
    invalid(facts, "{\"facts\":[{\"what\":\"a\",\"kind\":\"world\",\"score\":-1}]}",
            "less than minimum 0");
    invalid(facts, "{\"facts\":[{\"what\":\"a\",\"kind\":\"world\",\"n\":1.5}]}",
            "$.facts[0].n: expected integer, got number");
    invalid(facts,
            "{\"facts\":[{\"what\":\"a\",\"kind\":\"world\"},{\"what\":\"a\",\"kind\":\"world\"},"
            "{\"what\":\"a\",\"kind\":\"world\"},{\"what\":\"a\",\"kind\":\"world\"}]}",
            "more than maxItems 3");
    invalid(facts, "[]", "$: expected object, got array");
    invalid(facts, "{\"facts\":[{\"what\":\"a\",\"kind\":\"world\"},{\"kind\":\"world\"}]}",
            "$.facts[1]: missing required property \"what\"");

    valid("{\"type\":\"boolean\"}", "true");
    invalid("{\"type\":\"boolean\"}", "null", "expected boolean, got null");
    valid("{\"type\":\"null\"}", "null");
    valid("{}", "[1,{\"a\":null}]");
    valid("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}",
          "{\"a\":1,\"b\":2}");
    invalid("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}",
            "{\"a\":1,\"b\":\"2\"}", "$.b: expected integer, got string");
    valid("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "3");
    invalid("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "3.5", "anyOf");
    valid("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"\xc3\xa9t\xc3\xa9\"");
    invalid("{\"type\":\"string\",\"maxLength\":2}", "\"abc\"", "longer than maxLength 2");
    valid("{\"const\":\"x\"}", "\"x\"");
    invalid("{\"const\":\"x\"}", "\"y\"", "constant");
}

/* ---- embeddings -------------------------------------------------------------------------------
 */

Test(llm, embeddings_body_and_parse)
{
    const char *texts[] = {"alpha", "beta"};
    char *b = eg__oai_embed_body("emb", texts, 2, 3);
    cJSON *j = cJSON_Parse(b);
    float out[6];
    char err[256];
    const char *resp = "{\"data\":[{\"index\":1,\"embedding\":[0,3,4]},{\"index\":0,"
                       "\"embedding\":[2,0,0]}],\"usage\":{\"prompt_tokens\":2}}";

    cr_assert_str_eq(jstr(j, "model"), "emb");
    cr_assert_str_eq(jstr(j, "input[1]"), "beta");
    cr_assert_eq(jget(j, "dimensions")->valueint, 3);
    cJSON_Delete(j);
    free(b);
    b = eg__oai_embed_body("emb", texts, 1, 0);
    j = cJSON_Parse(b);
    cr_assert_null(jget(j, "dimensions"));
    cJSON_Delete(j);
    free(b);

    cr_assert_eq(eg__oai_embed_parse(resp, strlen(resp), 2, 3, out, err, sizeof(err)), 0, "%s",
                 err);
    /* By index, L2-normalised. */
    cr_assert_float_eq(out[0], 1.0f, 1e-6);
    cr_assert_float_eq(out[1], 0.0f, 1e-6);
    cr_assert_float_eq(out[4], 0.6f, 1e-6);
    cr_assert_float_eq(out[5], 0.8f, 1e-6);
    cr_assert_eq(eg__oai_embed_parse(resp, strlen(resp), 2, 4, out, err, sizeof(err)),
                 EG_EUPSTREAM);
    cr_assert(strstr(err, "expected 4") != NULL, "%s", err);
    cr_assert_eq(eg__oai_embed_parse(resp, strlen(resp), 3, 3, out, err, sizeof(err)),
                 EG_EUPSTREAM);
    cr_assert_eq(eg__oai_embed_parse(resp, strlen(resp), 1, 3, out, err, sizeof(err)),
                 EG_EUPSTREAM);
    resp = "{\"data\":[{\"index\":0,\"embedding\":[1,0]},{\"index\":0,\"embedding\":[1,0]}]}";
    cr_assert_eq(eg__oai_embed_parse(resp, strlen(resp), 2, 2, out, err, sizeof(err)),
                 EG_EUPSTREAM);
    resp = "{\"object\":\"list\"}";
    cr_assert_eq(eg__oai_embed_parse(resp, strlen(resp), 1, 2, out, err, sizeof(err)),
                 EG_EUPSTREAM);
}

/* ---- the process registry without a start -----------------------------------------------------
 */

Test(llm, before_start_everything_is_builtin)
{
    eg_embedder_t *e = eg_llm_embedder();

    cr_assert_not_null(e);
    cr_assert_eq(e->dim, EG_EMBED_DEFAULT_DIM);
    cr_assert_eq(eg_llm_embedder(), e);
    for (int op = 0; op < EG_LLM_OP_COUNT; op++)
        cr_assert_null(eg_llm_for((eg_llm_op_t)op));
    cr_assert_eq(eg_llm_chat(NULL, NULL, NULL, NULL, NULL), EG_EINVAL);
    eg_llm_shutdown();
}
