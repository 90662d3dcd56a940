/* Helpers shared by directives and mental models (dirmm_int.h). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "dirmm_int.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/util.h"

const char *eg__dirmm_scope(eg_arena_t *a, const char *ws_id, const char *bank_id)
{
    return eg_arena_printf(a, "%s/%s", ws_id, bank_id);
}

const char *eg__dirmm_key(eg_arena_t *a, const char *ws_id, const char *bank_id, const char *suffix)
{
    return eg_key(a, "b", eg__dirmm_scope(a, ws_id, bank_id), "%s", suffix);
}

bool eg__dirmm_tags_valid(const char *const *tags, size_t n)
{
    if (n > EG_MEM_TAGS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        size_t len = tags[i] ? strlen(tags[i]) : 0;

        if (len == 0 || len > EG_MEM_TAG_MAX)
            return false;
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)tags[i][k] < 0x20 || tags[i][k] == 0x7f)
                return false;
    }
    return true;
}

char *eg__dirmm_tags_json(eg_arena_t *a, const char *const *tags, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    char *s, *out;

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(tags[i]));
    s = cJSON_PrintUnformatted(arr);
    out = eg_arena_strdup(a, s ? s : "[]");
    free(s);
    cJSON_Delete(arr);
    return out;
}

size_t eg__dirmm_tags_parse(eg_arena_t *a, const char *json, const char *const **out)
{
    cJSON *arr = json ? cJSON_Parse(json) : NULL;
    const char **tags = NULL;
    size_t n = 0;
    const cJSON *t;

    if (cJSON_IsArray(arr) && cJSON_GetArraySize(arr) > 0) {
        tags = eg_arena_alloc(a, (size_t)cJSON_GetArraySize(arr) * sizeof(*tags));
        cJSON_ArrayForEach(t, arr)
        {
            if (cJSON_IsString(t))
                tags[n++] = eg_arena_strdup(a, t->valuestring);
        }
    }
    cJSON_Delete(arr);
    *out = tags;
    return n;
}

static bool has(const char *const *set, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i], s) == 0)
            return true;
    return false;
}

bool eg__dirmm_tags_pass(const char *const *it, size_t nit, const char *const *want, size_t nwant,
                         eg_tags_match_t m, bool untagged_pass)
{
    if (nit == 0 && untagged_pass)
        return true;
    if (m == EG_TAGS_EXACT) {
        /* Equal sets (either list may repeat a tag). */
        for (size_t i = 0; i < nit; i++)
            if (!has(want, nwant, it[i]))
                return false;
        for (size_t i = 0; i < nwant; i++)
            if (!has(it, nit, want[i]))
                return false;
        return true;
    }
    if (nwant == 0)
        return true;
    if (nit == 0)
        return m == EG_TAGS_ANY || m == EG_TAGS_ALL;
    if (m == EG_TAGS_ANY || m == EG_TAGS_ANY_STRICT) {
        for (size_t i = 0; i < nwant; i++)
            if (has(it, nit, want[i]))
                return true;
        return false;
    }
    for (size_t i = 0; i < nwant; i++)
        if (!has(it, nit, want[i]))
            return false;
    return true;
}

const char *eg__dirmm_hget(const redisReply *r, const char *field)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];

        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, field) == 0)
            return v->type == REDIS_REPLY_STRING ? v->str : NULL;
    }
    return NULL;
}

int64_t eg__dirmm_hget_int(const redisReply *r, const char *field, int64_t def)
{
    const char *s = eg__dirmm_hget(r, field);
    int64_t v;

    if (s == NULL || eg_parse_int64(s, INT64_MIN, INT64_MAX, &v) != 0)
        return def;
    return v;
}

int eg__dirmm_reply_error(const redisReply *r)
{
    if (strncmp(r->str, "EG_NOTFOUND", 11) == 0)
        return EG_ENOTFOUND;
    if (strncmp(r->str, "EG_CONFLICT", 11) == 0 || strncmp(r->str, "EG_FULL", 7) == 0)
        return EG_ECONFLICT;
    eg_log_error("redis directives/mental models script error: %s", r->str);
    return EG_EREDIS;
}

int64_t eg__dirmm_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
