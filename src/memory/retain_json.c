/* Retain's pure helpers: derived ids, sub-batch splitting, and items as JSON (the job payload of
 * an asynchronous retain, and the text its idempotency hash is taken over). */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/mstore.h"
#include "engram/retain.h"
#include "engram/text.h"
#include "engram/util.h"

void eg_retain_derived_id(const char *a, const char *b, const char *c, char out[37])
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *buf = eg_xmalloc(la + lb + lc + 3), hex[65];

    /* Unit separators keep ("ab", "c") and ("a", "bc") apart. */
    memcpy(buf, a, la);
    buf[la] = '\x1f';
    memcpy(buf + la + 1, b, lb);
    buf[la + 1 + lb] = '\x1f';
    memcpy(buf + la + lb + 2, c, lc);
    eg_sha256_hex(buf, la + lb + lc + 2, hex);
    free(buf);
    eg_uuid_from_hex(hex, out);
}

/* ---- splitting ------------------------------------------------------------------------------ */

size_t eg_retain_split(const eg_retain_item_t *items, size_t nitems, size_t max_tokens,
                       size_t *order, size_t *starts)
{
    bool *placed = eg_xcalloc(nitems + 1, sizeof(*placed));
    size_t *group = eg_xmalloc((nitems + 1) * sizeof(*group));
    size_t nout = 0, nb = 0, batch_tokens = 0;

    for (size_t i = 0; i < nitems; i++) {
        if (placed[i])
            continue;
        /* The group: this item and the later ones with its document_id. */
        size_t ng = 0, tokens = 0;
        for (size_t j = i; j < nitems; j++) {
            if (placed[j])
                continue;
            bool same = j == i || (items[i].document_id && items[j].document_id &&
                                   strcmp(items[i].document_id, items[j].document_id) == 0);
            if (!same)
                continue;
            placed[j] = true;
            group[ng++] = j;
            tokens += eg_text_estimate_tokens(items[j].content, strlen(items[j].content));
        }
        if (nb == 0 || (batch_tokens > 0 && batch_tokens + tokens > max_tokens)) {
            starts[nb++] = nout;
            batch_tokens = 0;
        }
        batch_tokens += tokens;
        memcpy(order + nout, group, ng * sizeof(*group));
        nout += ng;
    }
    free(placed);
    free(group);
    return nb;
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static cJSON *str_array(const char *const *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

/* Integers beyond 2^53 would lose precision as JSON numbers in other readers; µs timestamps stay
 * far below that (year 2255), and cJSON prints integral doubles exactly. */
static void add_time(cJSON *o, const char *key, int64_t t)
{
    if (t == EG_MEM_TIME_NONE)
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, (double)t);
}

cJSON *eg_retain_items_json(const eg_retain_item_t *items, size_t nitems)
{
    cJSON *arr = cJSON_CreateArray();

    for (size_t i = 0; i < nitems; i++) {
        const eg_retain_item_t *it = &items[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "content", it->content);
        add_time(o, "timestamp", it->timestamp);
        cJSON_AddStringToObject(o, "context", it->context ? it->context : "");
        cJSON_AddItemToObject(o, "metadata",
                              it->metadata ? cJSON_Duplicate(it->metadata, true)
                                           : cJSON_CreateObject());
        if (it->document_id)
            cJSON_AddStringToObject(o, "document_id", it->document_id);
        cJSON *ents = cJSON_CreateArray();
        for (size_t k = 0; k < it->nentities; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "text", it->entities[k].text);
            if (it->entities[k].type)
                cJSON_AddStringToObject(e, "type", it->entities[k].type);
            cJSON_AddItemToArray(ents, e);
        }
        cJSON_AddItemToObject(o, "entities", ents);
        cJSON_AddBoolToObject(o, "resolve_entities", it->resolve_entities);
        cJSON_AddItemToObject(o, "tags", str_array(it->tags, it->ntags));
        if (it->observation_scopes)
            cJSON_AddItemToObject(o, "observation_scopes",
                                  cJSON_Duplicate(it->observation_scopes, true));
        if (it->strategy)
            cJSON_AddStringToObject(o, "strategy", it->strategy);
        cJSON_AddStringToObject(o, "update_mode", it->append ? "append" : "replace");
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* A copy of a JSON value that lives as long as the arena. */
static const cJSON *keep(eg_arena_t *a, const cJSON *v)
{
    cJSON *c = cJSON_Duplicate(v, true);
    eg_arena_defer(a, (void (*)(void *))cJSON_Delete, c);
    return c;
}

static int str_list(eg_arena_t *a, const cJSON *v, const char *const **out, size_t *n)
{
    size_t k = 0;
    const cJSON *e;

    *out = NULL;
    *n = 0;
    if (!v)
        return 0;
    if (!cJSON_IsArray(v))
        return EG_EINVAL;
    const char **s = eg_arena_alloc(a, ((size_t)cJSON_GetArraySize(v) + 1) * sizeof(*s));
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e))
            return EG_EINVAL;
        s[k++] = eg_arena_strdup(a, e->valuestring);
    }
    *out = s;
    *n = k;
    return 0;
}

int eg_retain_items_parse(eg_arena_t *a, const cJSON *json, eg_retain_item_t **items,
                          size_t *nitems)
{
    const cJSON *o;
    size_t n = 0;

    if (!cJSON_IsArray(json))
        return EG_EINVAL;
    eg_retain_item_t *v = eg_arena_calloc(a, ((size_t)cJSON_GetArraySize(json) + 1) * sizeof(*v));
    cJSON_ArrayForEach(o, json)
    {
        eg_retain_item_t *it = &v[n++];
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "timestamp");
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(o, "context");
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        const cJSON *doc = cJSON_GetObjectItemCaseSensitive(o, "document_id");
        const cJSON *ents = cJSON_GetObjectItemCaseSensitive(o, "entities");
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "resolve_entities");
        const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(o, "observation_scopes");
        const cJSON *strat = cJSON_GetObjectItemCaseSensitive(o, "strategy");
        const cJSON *mode = cJSON_GetObjectItemCaseSensitive(o, "update_mode");

        if (!cJSON_IsString(c) || !(cJSON_IsNumber(ts) || cJSON_IsNull(ts)))
            return EG_EINVAL;
        it->content = eg_arena_strdup(a, c->valuestring);
        it->timestamp = cJSON_IsNull(ts) ? EG_MEM_TIME_NONE : (int64_t)ts->valuedouble;
        it->context = cJSON_IsString(ctx) ? eg_arena_strdup(a, ctx->valuestring) : "";
        it->metadata = cJSON_IsObject(md) ? keep(a, md) : NULL;
        it->document_id = cJSON_IsString(doc) ? eg_arena_strdup(a, doc->valuestring) : NULL;
        if (cJSON_IsArray(ents)) {
            const cJSON *e;
            eg_retain_entity_t *ev =
                eg_arena_calloc(a, ((size_t)cJSON_GetArraySize(ents) + 1) * sizeof(*ev));
            cJSON_ArrayForEach(e, ents)
            {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "text");
                const cJSON *ty = cJSON_GetObjectItemCaseSensitive(e, "type");
                if (!cJSON_IsString(t))
                    return EG_EINVAL;
                ev[it->nentities].text = eg_arena_strdup(a, t->valuestring);
                ev[it->nentities].type =
                    cJSON_IsString(ty) ? eg_arena_strdup(a, ty->valuestring) : NULL;
                it->nentities++;
            }
            it->entities = ev;
        }
        it->resolve_entities = !cJSON_IsFalse(res);
        if (str_list(a, cJSON_GetObjectItemCaseSensitive(o, "tags"), &it->tags, &it->ntags) != 0)
            return EG_EINVAL;
        it->observation_scopes = scopes ? keep(a, scopes) : NULL;
        it->strategy = cJSON_IsString(strat) ? eg_arena_strdup(a, strat->valuestring) : NULL;
        it->append = cJSON_IsString(mode) && strcmp(mode->valuestring, "append") == 0;
    }
    *items = v;
    *nitems = n;
    return 0;
}
