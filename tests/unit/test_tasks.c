/* Agent tasks: task type names and the PubCreateAgentTaskRequest rules of fency.md §3. */
#include <string.h>

#include <criterion/criterion.h>

#include "engram/error.h"
#include "engram/tasks.h"

/* Check a body given as JSON text; returns the code and fills type / why. */
static int check(const char *json, eg_task_type_t *type, const char **why)
{
    cJSON *body = cJSON_Parse(json);
    int rc;

    cr_assert_not_null(body, "test JSON parses: %s", json);
    *why = NULL;
    rc = eg_task_request_check(body, type, why);
    cJSON_Delete(body);
    return rc;
}

static void ok(const char *json, eg_task_type_t want)
{
    eg_task_type_t type = EG_TASK__COUNT;
    const char *why;
    int rc = check(json, &type, &why);

    cr_assert_eq(rc, 0, "%s refused: %s", json, why ? why : "?");
    cr_assert_eq(type, want, "%s", json);
}

static void bad(const char *json, const char *why_has)
{
    eg_task_type_t type;
    const char *why;
    int rc = check(json, &type, &why);

    cr_assert_eq(rc, EG_EINVAL, "%s accepted", json);
    cr_assert_not_null(why);
    cr_assert_not_null(strstr(why, why_has), "%s: \"%s\" lacks \"%s\"", json, why, why_has);
}

#define MSGS "\"messages\":[{\"role\":\"USER\",\"content\":\"hi\"}]"
#define M    "\"model\":\"openai/gpt-4.1\""

Test(tasks, type_names_round_trip)
{
    static const char *names[] = {"MEMORY_CHAT", "MEMORY_SEARCH", "EXPLORE_MEMORIES",
                                  "STREAMING_CHAT_COMPLETION", "STRUCTURED_CHAT_COMPLETION"};
    static const char *keys[] = {"memoryChatTask", "memorySearchTask", "exploreMemoriesTask",
                                 "streamingChatCompletionTask", "structuredChatCompletionTask"};
    static const char *events[] = {"MemoryChat", "MemorySearch", "ExploreMemories",
                                   "StreamingChatCompletion", "StructuredChatCompletion"};
    eg_task_type_t t;

    for (int i = 0; i < EG_TASK__COUNT; i++) {
        cr_assert_str_eq(eg_task_type_name((eg_task_type_t)i), names[i]);
        cr_assert_str_eq(eg_task_type_key((eg_task_type_t)i), keys[i]);
        cr_assert_str_eq(eg_task_type_event_name((eg_task_type_t)i), events[i]);
        cr_assert_eq(eg_task_type_parse(names[i], &t), 0);
        cr_assert_eq(t, (eg_task_type_t)i);
    }
    cr_assert_eq(eg_task_type_parse("memory_chat", &t), EG_EINVAL);
    cr_assert_eq(eg_task_type_parse("", &t), EG_EINVAL);
    cr_assert_eq(eg_task_type_parse(NULL, &t), EG_EINVAL);
    cr_assert_null(eg_task_type_name(EG_TASK__COUNT));
    cr_assert_null(eg_task_type_key((eg_task_type_t)-1));
}

Test(tasks, sdk_default_bodies_pass)
{
    ok("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"temperature\":0.7,\"topP\":1}}",
       EG_TASK_STREAMING_CHAT_COMPLETION);
    ok("{\"structuredChatCompletionTask\":{" MSGS
       ",\"jsonSchema\":\"{\\\"type\\\":\\\"object\\\"}\","
       "" M "}}",
       EG_TASK_STRUCTURED_CHAT_COMPLETION);
    ok("{\"memoryChatTask\":{" MSGS "," M ",\"language\":\"en\",\"chunkLimit\":10,"
       "\"memoryScanLimit\":3}}",
       EG_TASK_MEMORY_CHAT);
    ok("{\"memorySearchTask\":{\"query\":\"q\"," M ",\"language\":\"no\",\"chunkLimit\":10,"
       "\"contextExpansion\":{\"before\":1,\"after\":1},\"queryExpansion\":{\"queryCount\":5}}}",
       EG_TASK_MEMORY_SEARCH);
    ok("{\"exploreMemoriesTask\":{\"query\":\"q\"," M ",\"language\":\"en\"}}",
       EG_TASK_EXPLORE_MEMORIES);
    /* Optional members may be null, as the generated client sends them. */
    ok("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"temperature\":null,\"topP\":null},"
       "\"memoryChatTask\":null}",
       EG_TASK_STREAMING_CHAT_COMPLETION);
    ok("{\"memorySearchTask\":{\"query\":\"q\"," M
       ",\"contextExpansion\":{\"before\":null,\"after\":2}}}",
       EG_TASK_MEMORY_SEARCH);
}

Test(tasks, exactly_one_task_key)
{
    bad("{}", "exactly one");
    bad("{\"somethingElse\":{}}", "exactly one");
    bad("{\"exploreMemoriesTask\":{\"query\":\"q\"," M "},\"memorySearchTask\":{\"query\":\"q\"," M
        "}}",
        "(2 given)");
    bad("{\"memorySearchTask\":\"q\"}", "memorySearchTask must be an object");
    bad("[]", "JSON object");
}

Test(tasks, model_list)
{
    static const char *good[] = {"anthropic/claude-haiku-4.5",
                                 "anthropic/claude-sonnet-4.5",
                                 "anthropic/claude-sonnet-4.6",
                                 "anthropic/claude-opus-4.5",
                                 "anthropic/claude-opus-4.6",
                                 "google/gemini-2.5-flash",
                                 "google/gemini-2.5-flash-lite",
                                 "google/gemini-2.5-pro",
                                 "openai/gpt-4.1-nano",
                                 "openai/gpt-4.1-mini",
                                 "openai/gpt-4.1",
                                 "openai/gpt-5-mini",
                                 "openai/gpt-5-nano"};
    char buf[256];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(buf, sizeof(buf), "{\"exploreMemoriesTask\":{\"query\":\"q\",\"model\":\"%s\"}}",
                 good[i]);
        ok(buf, EG_TASK_EXPLORE_MEMORIES);
    }
    bad("{\"exploreMemoriesTask\":{\"query\":\"q\"}}", "exploreMemoriesTask.model is required");
    bad("{\"exploreMemoriesTask\":{\"query\":\"q\",\"model\":\"gpt-4o\"}}", "model must be one of");
    bad("{\"exploreMemoriesTask\":{\"query\":\"q\",\"model\":\"OPENAI/GPT-4.1\"}}",
        "model must be one of");
    bad("{\"exploreMemoriesTask\":{\"query\":\"q\",\"model\":4}}", "model must be one of");
}

Test(tasks, language)
{
    bad("{\"memoryChatTask\":{" MSGS "," M ",\"language\":\"de\"}}",
        "memoryChatTask.language must be \"en\" or \"no\"");
    bad("{\"memorySearchTask\":{\"query\":\"q\"," M ",\"language\":\"EN\"}}", "language");
    bad("{\"exploreMemoriesTask\":{\"query\":\"q\"," M ",\"language\":1}}", "language");
    ok("{\"exploreMemoriesTask\":{\"query\":\"q\"," M "}}", EG_TASK_EXPLORE_MEMORIES);
}

Test(tasks, temperature_and_top_p)
{
    ok("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"temperature\":0}}",
       EG_TASK_STREAMING_CHAT_COMPLETION);
    ok("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"temperature\":2}}",
       EG_TASK_STREAMING_CHAT_COMPLETION);
    bad("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"temperature\":2.01}}",
        "temperature must be between 0 and 2");
    bad("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"temperature\":-0.1}}", "temperature");
    bad("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"temperature\":\"hot\"}}",
        "temperature must be a number");
    /* Anthropic models take 0..1. */
    ok("{\"streamingChatCompletionTask\":{" MSGS
       ",\"model\":\"anthropic/claude-opus-4.6\",\"temperature\":1}}",
       EG_TASK_STREAMING_CHAT_COMPLETION);
    bad("{\"streamingChatCompletionTask\":{" MSGS
        ",\"model\":\"anthropic/claude-haiku-4.5\",\"temperature\":1.2}}",
        "between 0 and 1 for anthropic models");
    bad("{\"structuredChatCompletionTask\":{" MSGS ",\"jsonSchema\":\"{}\","
        "\"model\":\"anthropic/claude-sonnet-4.5\",\"temperature\":3}}",
        "temperature must be between 0 and 1");
    ok("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"topP\":0}}",
       EG_TASK_STREAMING_CHAT_COMPLETION);
    ok("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"topP\":1}}",
       EG_TASK_STREAMING_CHAT_COMPLETION);
    bad("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"topP\":1.5}}",
        "topP must be between 0 and 1");
    bad("{\"streamingChatCompletionTask\":{" MSGS "," M ",\"topP\":-1}}", "topP");
}

Test(tasks, messages)
{
    bad("{\"streamingChatCompletionTask\":{" M "}}",
        "streamingChatCompletionTask.messages is required");
    bad("{\"streamingChatCompletionTask\":{\"messages\":[]," M "}}", "non-empty array");
    bad("{\"streamingChatCompletionTask\":{\"messages\":{}," M "}}", "non-empty array");
    bad("{\"memoryChatTask\":{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]," M "}}",
        "messages[0].role must be SYSTEM, USER or ASSISTANT");
    bad("{\"memoryChatTask\":{\"messages\":[{\"role\":\"USER\",\"content\":\"x\"},"
        "{\"role\":\"TOOL\",\"content\":\"x\"}]," M "}}",
        "messages[1].role");
    bad("{\"streamingChatCompletionTask\":{\"messages\":[{\"role\":\"USER\"}]," M "}}",
        "messages[0].content must be a string");
    bad("{\"streamingChatCompletionTask\":{\"messages\":[\"hi\"]," M "}}",
        "messages[0] must be an object");
    ok("{\"streamingChatCompletionTask\":{\"messages\":[{\"role\":\"SYSTEM\",\"content\":\"s\"},"
       "{\"role\":\"USER\",\"content\":\"u\"},{\"role\":\"ASSISTANT\",\"content\":\"a\"}]," M "}}",
       EG_TASK_STREAMING_CHAT_COMPLETION);
}

Test(tasks, json_schema_is_a_string_that_parses)
{
    bad("{\"structuredChatCompletionTask\":{" MSGS "," M "}}", "jsonSchema is required");
    bad("{\"structuredChatCompletionTask\":{" MSGS ",\"jsonSchema\":{\"type\":\"object\"}," M "}}",
        "jsonSchema must be a string");
    bad("{\"structuredChatCompletionTask\":{" MSGS ",\"jsonSchema\":\"{not json\"," M "}}",
        "jsonSchema is not a JSON object");
    bad("{\"structuredChatCompletionTask\":{" MSGS ",\"jsonSchema\":\"[1]\"," M "}}",
        "jsonSchema is not a JSON object");
    ok("{\"structuredChatCompletionTask\":{" MSGS ",\"jsonSchema\":\"{\\\"type\\\":\\\"object\\\","
       "\\\"properties\\\":{\\\"a\\\":{\\\"type\\\":\\\"string\\\"}}}\"," M "}}",
       EG_TASK_STRUCTURED_CHAT_COMPLETION);
}

Test(tasks, search_and_chat_limits)
{
    bad("{\"memorySearchTask\":{" M "}}", "memorySearchTask.query is required");
    bad("{\"memorySearchTask\":{\"query\":\"\"," M "}}", "query must not be empty");
    bad("{\"memorySearchTask\":{\"query\":\"q\"," M ",\"chunkLimit\":0}}", "chunkLimit");
    bad("{\"memorySearchTask\":{\"query\":\"q\"," M ",\"chunkLimit\":1.5}}",
        "chunkLimit must be an integer");
    bad("{\"memorySearchTask\":{\"query\":\"q\"," M ",\"queryExpansion\":{\"queryCount\":6}}}",
        "queryExpansion.queryCount must be between 1 and 5");
    bad("{\"memorySearchTask\":{\"query\":\"q\"," M ",\"queryExpansion\":{}}}",
        "queryExpansion.queryCount is required");
    bad("{\"memorySearchTask\":{\"query\":\"q\"," M ",\"contextExpansion\":{\"before\":-1}}}",
        "contextExpansion.before");
    bad("{\"memorySearchTask\":{\"query\":\"q\"," M ",\"contextExpansion\":3}}",
        "contextExpansion must be an object");
    bad("{\"memoryChatTask\":{" MSGS "," M ",\"memoryScanLimit\":0}}", "memoryScanLimit");
    bad("{\"exploreMemoriesTask\":{\"query\":7," M "}}", "query must be a string");
}
