/* Helpers the task runners share: request fields, the chat messages of a task request as the LLM
 * layer's messages, and the messages of a finished completion. */
#include <string.h>

#include "runs/tasks_int.h"

int eg__trun_int(const cJSON *o, const char *name, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(v) ? (int)v->valuedouble : def;
}

const char *eg__trun_last_user(const cJSON *messages)
{
    const cJSON *m, *last = NULL;

    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");

        if (cJSON_IsString(role) && strcmp(role->valuestring, "USER") == 0)
            last = cJSON_GetObjectItemCaseSensitive(m, "content");
    }
    return cJSON_IsString(last) ? last->valuestring : "";
}

eg_llm_msg_t *eg__trun_msgs(eg__trun_t *r, const cJSON *messages, const char *system, size_t *n)
{
    size_t cap = (size_t)cJSON_GetArraySize(messages) + 1, i = 0;
    eg_llm_msg_t *out = eg_arena_calloc(&r->arena, cap * sizeof(*out));
    static const eg_llm_role_t roles[] = {EG_LLM_SYSTEM, EG_LLM_USER, EG_LLM_ASSISTANT};
    const cJSON *m;

    if (system != NULL) {
        out[i].role = EG_LLM_SYSTEM;
        out[i++].content = eg_arena_strdup(&r->arena, system);
    }
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        int ri = cJSON_IsString(role) ? eg__task_role_parse(role->valuestring) : -1;

        if (ri < 0 || !cJSON_IsString(content) || i >= cap)
            continue;
        out[i].role = roles[ri];
        out[i++].content = content->valuestring;
    }
    *n = i;
    return out;
}

cJSON *eg__trun_messages_with(const cJSON *messages, const char *content)
{
    cJSON *out = cJSON_CreateArray(), *a = cJSON_CreateObject();
    const cJSON *m;

    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "role", cJSON_IsString(role) ? role->valuestring : "USER");
        cJSON_AddStringToObject(o, "content", cJSON_IsString(c) ? c->valuestring : "");
        cJSON_AddItemToArray(out, o);
    }
    cJSON_AddStringToObject(a, "role", "ASSISTANT");
    cJSON_AddStringToObject(a, "content", content);
    cJSON_AddItemToArray(out, a);
    return out;
}
