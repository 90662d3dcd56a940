/* Guard-rail scopes: parsing a session's guardRails and deciding whether a memory is inside.
 * Pure (unit tested); the readers in library_search.c apply these to every record they return. */
#include <string.h>

#include "engram/util.h"
#include "engram/error.h"
#include "library_int.h"

static bool listed(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static int parse_type(eg_arena_t *a, const cJSON *j, size_t idx, eg_lib_scope_type_t *t,
                      const char **why)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "memoryIds");
    const cJSON *match = cJSON_GetObjectItemCaseSensitive(j, "match");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(j, "metadata");
    const cJSON *v;
    const char *tid = eg__lib_jstr(j, "memoryTypeId");

    (void)idx;
    if (!cJSON_IsObject(j)) {
        *why = "guardRails.memoryTypes entries must be objects";
        return EG_EINVAL;
    }
    if (!tid || !eg_hexid_valid(tid, "mty")) {
        *why = "guardRails.memoryTypes[].memoryTypeId must be a memory type id (mty_...)";
        return EG_EINVAL;
    }
    t->type_id = eg_arena_strdup(a, tid);
    if (ids && !cJSON_IsNull(ids)) {
        size_t n = (size_t)cJSON_GetArraySize(ids), k = 0;
        if (!cJSON_IsArray(ids) || n == 0 || n > EG_LIB_SCOPE_MAX) {
            /* An empty list is refused, not read as "every memory of the type": a caller who
             * meant "none" must not be handed all of them. */
            *why = "guardRails.memoryTypes[].memoryIds must be an array of 1 to 100 memory ids "
                   "(leave it out for every memory of the type)";
            return EG_EINVAL;
        }
        const char **out = eg_arena_calloc(a, (n + 1) * sizeof(*out));
        cJSON_ArrayForEach(v, ids)
        {
            if (!cJSON_IsString(v) || !eg_hexid_valid(v->valuestring, "mem")) {
                *why = "guardRails.memoryTypes[].memoryIds must hold memory ids (mem_...)";
                return EG_EINVAL;
            }
            if (!listed(out, k, v->valuestring))
                out[k++] = eg_arena_strdup(a, v->valuestring);
        }
        t->memory_ids = out;
        t->nmemory_ids = k;
    }
    if (match && !cJSON_IsNull(match)) {
        if (!cJSON_IsObject(match)) {
            *why = "guardRails.memoryTypes[].match must be an object of metadata values";
            return EG_EINVAL;
        }
        cJSON *m = cJSON_Duplicate(match, true);
        eg_arena_defer(a, (void (*)(void *))cJSON_Delete, m);
        t->match = m->child ? m : NULL;
    }
    if (meta && !cJSON_IsNull(meta)) {
        size_t n = (size_t)cJSON_GetArraySize(meta), k = 0;
        if (!cJSON_IsArray(meta)) {
            *why = "guardRails.memoryTypes[].metadata must be an array of {key, visible}";
            return EG_EINVAL;
        }
        const char **hidden = eg_arena_calloc(a, (n + 1) * sizeof(*hidden));
        cJSON_ArrayForEach(v, meta)
        {
            const char *key = eg__lib_jstr(v, "key");
            const cJSON *vis = cJSON_GetObjectItemCaseSensitive(v, "visible");
            if (!cJSON_IsObject(v) || !key || !key[0] || (vis && !cJSON_IsBool(vis))) {
                *why = "guardRails.memoryTypes[].metadata entries need a key and a boolean "
                       "visible";
                return EG_EINVAL;
            }
            if (cJSON_IsFalse(vis) && !listed(hidden, k, key))
                hidden[k++] = eg_arena_strdup(a, key);
        }
        t->hidden_keys = hidden;
        t->nhidden = k;
    }
    return 0;
}

int eg_lib_scope_parse(eg_arena_t *a, const cJSON *guard_rails, eg_lib_scope_t *out,
                       const char **why)
{
    const cJSON *types, *v;
    size_t n, k = 0;

    memset(out, 0, sizeof(*out));
    *why = NULL;
    if (guard_rails == NULL || cJSON_IsNull(guard_rails))
        return 0;
    if (!cJSON_IsObject(guard_rails)) {
        *why = "guardRails must be an object";
        return EG_EINVAL;
    }
    types = cJSON_GetObjectItemCaseSensitive(guard_rails, "memoryTypes");
    if (types == NULL || cJSON_IsNull(types))
        return 0;
    n = (size_t)cJSON_GetArraySize(types);
    if (!cJSON_IsArray(types) || n == 0 || n > EG_LIB_SCOPE_MAX) {
        /* An empty list is refused rather than read as "no restriction": a caller who meant
         * "nothing" must not be handed everything. */
        *why = "guardRails.memoryTypes must be an array of 1 to 100 entries";
        return EG_EINVAL;
    }
    eg_lib_scope_type_t *ts = eg_arena_calloc(a, n * sizeof(*ts));
    cJSON_ArrayForEach(v, types)
    {
        int rc = parse_type(a, v, k, &ts[k], why);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < k; i++)
            if (strcmp(ts[i].type_id, ts[k].type_id) == 0) {
                *why = "guardRails.memoryTypes lists a memoryTypeId twice";
                return EG_EINVAL;
            }
        k++;
    }
    out->types = ts;
    out->ntypes = k;
    return 0;
}

const eg_lib_scope_type_t *eg_lib_scope_type(const eg_lib_scope_t *scope, const char *type_id)
{
    if (!scope || !type_id)
        return NULL;
    for (size_t i = 0; i < scope->ntypes; i++)
        if (strcmp(scope->types[i].type_id, type_id) == 0)
            return &scope->types[i];
    return NULL;
}

bool eg_lib_scope_allows(const eg_lib_scope_t *scope, const char *memory_id, const char *type_id,
                         const cJSON *metadata)
{
    const eg_lib_scope_type_t *t;
    const cJSON *m;

    if (!memory_id || !type_id)
        return false;
    if (!scope || scope->ntypes == 0)
        return true;
    t = eg_lib_scope_type(scope, type_id);
    if (!t)
        return false;
    if (t->nmemory_ids > 0 && !listed(t->memory_ids, t->nmemory_ids, memory_id))
        return false;
    if (t->match) {
        cJSON_ArrayForEach(m, t->match)
        {
            const cJSON *have = cJSON_GetObjectItemCaseSensitive(metadata, m->string);
            if (!have || !cJSON_Compare(have, m, true))
                return false;
        }
    }
    return true;
}

cJSON *eg_lib_scope_visible(const eg_lib_scope_t *scope, const char *type_id, const cJSON *metadata)
{
    const eg_lib_scope_type_t *t = eg_lib_scope_type(scope, type_id);
    cJSON *out = cJSON_IsObject(metadata) ? cJSON_Duplicate(metadata, true) : cJSON_CreateObject();

    for (size_t i = 0; t && i < t->nhidden; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(out, t->hidden_keys[i]);
    return out;
}
