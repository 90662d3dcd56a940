/* Agent tasks: task type names and the validation of a PubCreateAgentTaskRequest (fency.md §3).
 * The SDK fills its defaults (model, language, chunkLimit ...) before sending, so a body that
 * breaks a rule comes from a hand-written client: the message names the field. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engram/error.h"
#include "engram/tasks.h"
#include "runs/tasks_int.h"

static const char *const type_names[EG_TASK__COUNT] = {
    "MEMORY_CHAT", "MEMORY_SEARCH", "EXPLORE_MEMORIES", "STREAMING_CHAT_COMPLETION",
    "STRUCTURED_CHAT_COMPLETION"};
static const char *const type_keys[EG_TASK__COUNT] = {
    "memoryChatTask", "memorySearchTask", "exploreMemoriesTask", "streamingChatCompletionTask",
    "structuredChatCompletionTask"};
static const char *const type_events[EG_TASK__COUNT] = {
    "MemoryChat", "MemorySearch", "ExploreMemories", "StreamingChatCompletion",
    "StructuredChatCompletion"};

/* The models the SDK offers (fency.md §3); each maps to the configured agent model. */
static const char *const fency_models[] = {"anthropic/claude-haiku-4.5",
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

const char *eg_task_type_name(eg_task_type_t t)
{
    return (unsigned)t < EG_TASK__COUNT ? type_names[t] : NULL;
}

const char *eg_task_type_key(eg_task_type_t t)
{
    return (unsigned)t < EG_TASK__COUNT ? type_keys[t] : NULL;
}

const char *eg_task_type_event_name(eg_task_type_t t)
{
    return (unsigned)t < EG_TASK__COUNT ? type_events[t] : NULL;
}

int eg_task_type_parse(const char *name, eg_task_type_t *out)
{
    if (name == NULL)
        return EG_EINVAL;
    for (int i = 0; i < EG_TASK__COUNT; i++) {
        if (strcmp(name, type_names[i]) == 0) {
            *out = (eg_task_type_t)i;
            return 0;
        }
    }
    return EG_EINVAL;
}

bool eg__task_model_valid(const char *model)
{
    for (size_t i = 0; i < sizeof(fency_models) / sizeof(fency_models[0]); i++)
        if (strcmp(model, fency_models[i]) == 0)
            return true;
    return false;
}

/* The reason of the last failed check: one process runs one loop, and the caller copies or
 * answers with it before the next check. */
static char why_buf[256];

static int bad(const char **why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const char **why, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
    va_end(ap);
    *why = why_buf;
    return EG_EINVAL;
}

/* A member that is present and not null. */
static const cJSON *field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return v != NULL && !cJSON_IsNull(v) ? v : NULL;
}

static int check_string(const cJSON *o, const char *k, const char *name, bool required,
                        const char **why)
{
    const cJSON *v = field(o, name);

    if (v == NULL)
        return required ? bad(why, "%s.%s is required", k, name) : 0;
    if (!cJSON_IsString(v))
        return bad(why, "%s.%s must be a string", k, name);
    if (required && v->valuestring[0] == '\0')
        return bad(why, "%s.%s must not be empty", k, name);
    return 0;
}

static int check_number(const cJSON *o, const char *k, const char *name, double min, double max,
                        bool integer, const char **why)
{
    const cJSON *v = field(o, name);

    if (v == NULL)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad(why, "%s.%s must be a number", k, name);
    if (integer && v->valuedouble != floor(v->valuedouble))
        return bad(why, "%s.%s must be an integer", k, name);
    if (v->valuedouble < min || v->valuedouble > max)
        return bad(why, "%s.%s must be between %g and %g", k, name, min, max);
    return 0;
}

static int check_model(const cJSON *t, const char *k, const char **why)
{
    const cJSON *m = field(t, "model"), *temp;
    bool anthropic;

    if (m == NULL)
        return bad(why, "%s.model is required", k);
    if (!cJSON_IsString(m) || !eg__task_model_valid(m->valuestring))
        return bad(why,
                   "%s.model must be one of anthropic/claude-haiku-4.5, "
                   "anthropic/claude-sonnet-4.5, ..., openai/gpt-5-nano (see the documentation)",
                   k);
    anthropic = strncmp(m->valuestring, "anthropic/", 10) == 0;
    if (check_number(t, k, "temperature", 0, anthropic ? 1 : 2, false, why) != 0) {
        temp = field(t, "temperature");
        if (anthropic && cJSON_IsNumber(temp) && temp->valuedouble > 1 && temp->valuedouble <= 2)
            return bad(why, "%s.temperature must be between 0 and 1 for anthropic models", k);
        return EG_EINVAL;
    }
    return check_number(t, k, "topP", 0, 1, false, why);
}

static int check_language(const cJSON *t, const char *k, const char **why)
{
    const cJSON *l = field(t, "language");

    if (l == NULL)
        return 0; /* the SDK always sends it; "en" otherwise */
    if (!cJSON_IsString(l) || (strcmp(l->valuestring, "en") != 0 && strcmp(l->valuestring, "no")))
        return bad(why, "%s.language must be \"en\" or \"no\"", k);
    return 0;
}

static int check_messages(const cJSON *t, const char *k, const char **why)
{
    const cJSON *ms = field(t, "messages"), *m;
    int i = 0;

    if (ms == NULL)
        return bad(why, "%s.messages is required", k);
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) == 0)
        return bad(why, "%s.messages must be a non-empty array", k);
    if (cJSON_GetArraySize(ms) > EG_TASK_MESSAGES_MAX)
        return bad(why, "%s.messages has more than %d messages", k, EG_TASK_MESSAGES_MAX);
    cJSON_ArrayForEach(m, ms)
    {
        const cJSON *role = field(m, "role"), *content = field(m, "content");

        if (!cJSON_IsObject(m))
            return bad(why, "%s.messages[%d] must be an object", k, i);
        if (!cJSON_IsString(role) || eg__task_role_parse(role->valuestring) < 0)
            return bad(why, "%s.messages[%d].role must be SYSTEM, USER or ASSISTANT", k, i);
        if (!cJSON_IsString(content))
            return bad(why, "%s.messages[%d].content must be a string", k, i);
        i++;
    }
    return 0;
}

int eg__task_role_parse(const char *role)
{
    if (strcmp(role, "SYSTEM") == 0)
        return 0;
    if (strcmp(role, "USER") == 0)
        return 1;
    if (strcmp(role, "ASSISTANT") == 0)
        return 2;
    return -1;
}

static int check_schema(const cJSON *t, const char *k, const char **why)
{
    const cJSON *s = field(t, "jsonSchema");
    cJSON *parsed;
    bool ok;

    if (s == NULL)
        return bad(why, "%s.jsonSchema is required", k);
    if (!cJSON_IsString(s))
        return bad(why, "%s.jsonSchema must be a string holding a JSON Schema", k);
    parsed = cJSON_Parse(s->valuestring);
    ok = cJSON_IsObject(parsed);
    cJSON_Delete(parsed);
    if (!ok)
        return bad(why, "%s.jsonSchema is not a JSON object (a JSON Schema as a string)", k);
    return 0;
}

static int check_object(const cJSON *t, const char *k, const char *name, const char **why)
{
    const cJSON *v = field(t, name);

    if (v != NULL && !cJSON_IsObject(v))
        return bad(why, "%s.%s must be an object", k, name);
    return 0;
}

/* The rules of one task object. */
static int check_task(eg_task_type_t type, const cJSON *t, const char **why)
{
    const char *k = type_keys[type];
    char sub[64];

    if (!cJSON_IsObject(t))
        return bad(why, "%s must be an object", k);
    if (check_model(t, k, why) != 0)
        return EG_EINVAL;
    switch (type) {
    case EG_TASK_STREAMING_CHAT_COMPLETION:
        return check_messages(t, k, why);
    case EG_TASK_STRUCTURED_CHAT_COMPLETION:
        if (check_messages(t, k, why) != 0)
            return EG_EINVAL;
        return check_schema(t, k, why);
    case EG_TASK_MEMORY_CHAT:
        if (check_messages(t, k, why) != 0 || check_language(t, k, why) != 0)
            return EG_EINVAL;
        if (check_number(t, k, "chunkLimit", 1, EG_TASK_CHUNK_LIMIT_MAX, true, why) != 0)
            return EG_EINVAL;
        return check_number(t, k, "memoryScanLimit", 1, EG_TASK_SCAN_LIMIT_MAX, true, why);
    case EG_TASK_MEMORY_SEARCH:
        if (check_string(t, k, "query", true, why) != 0 || check_language(t, k, why) != 0)
            return EG_EINVAL;
        if (check_number(t, k, "chunkLimit", 1, EG_TASK_CHUNK_LIMIT_MAX, true, why) != 0)
            return EG_EINVAL;
        if (check_object(t, k, "contextExpansion", why) != 0 ||
            check_object(t, k, "queryExpansion", why) != 0)
            return EG_EINVAL;
        snprintf(sub, sizeof(sub), "%s.contextExpansion", k);
        if (field(t, "contextExpansion") != NULL &&
            (check_number(field(t, "contextExpansion"), sub, "before", 0, EG_TASK_CONTEXT_MAX, true,
                          why) != 0 ||
             check_number(field(t, "contextExpansion"), sub, "after", 0, EG_TASK_CONTEXT_MAX, true,
                          why) != 0))
            return EG_EINVAL;
        snprintf(sub, sizeof(sub), "%s.queryExpansion", k);
        if (field(t, "queryExpansion") != NULL) {
            if (field(field(t, "queryExpansion"), "queryCount") == NULL)
                return bad(why, "%s.queryCount is required", sub);
            if (check_number(field(t, "queryExpansion"), sub, "queryCount", 1,
                             EG_TASK_QUERY_COUNT_MAX, true, why) != 0)
                return EG_EINVAL;
        }
        return 0;
    case EG_TASK_EXPLORE_MEMORIES:
        if (check_string(t, k, "query", true, why) != 0)
            return EG_EINVAL;
        return check_language(t, k, why);
    default:
        return bad(why, "unknown task type");
    }
}

int eg_task_request_check(const cJSON *body, eg_task_type_t *type, const char **why)
{
    int found = -1, n = 0;

    if (!cJSON_IsObject(body))
        return bad(why, "the request body must be a JSON object");
    for (int i = 0; i < EG_TASK__COUNT; i++) {
        if (field(body, type_keys[i]) != NULL) {
            found = i;
            n++;
        }
    }
    if (n != 1)
        return bad(why,
                   "exactly one of streamingChatCompletionTask, structuredChatCompletionTask, "
                   "memoryChatTask, memorySearchTask, exploreMemoriesTask must be set (%d given)",
                   n);
    if (check_task((eg_task_type_t)found, field(body, type_keys[found]), why) != 0)
        return EG_EINVAL;
    *type = (eg_task_type_t)found;
    return 0;
}
