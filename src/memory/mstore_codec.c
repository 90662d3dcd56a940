/* Memory store codecs: the stored JSON of units, documents, chunks and entities, the link list
 * format, chunk ids, folded entity names, and the small pure helpers the store's writers share.
 *
 * Times are JSON integers (microseconds) or null. cJSON holds numbers as doubles, so they are
 * written as raw integer text and read back exactly within +-2^53 us (years 1685..2255); times
 * further out come back rounded to the nearest double (at most 32 us off at year 9999). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/mstore_int.h"

/* ---- names --------------------------------------------------------------------------------- */

static const char *const fact_names[EG_FACT_NTYPES] = {"world", "experience", "observation"};
static const char *const link_names[EG_LINK_NTYPES] = {"temporal",  "semantic", "causes",
                                                       "caused_by", "enables",  "prevents"};

const char *eg_fact_type_name(eg_fact_type_t t)
{
    return (unsigned)t < EG_FACT_NTYPES ? fact_names[t] : "unknown";
}

int eg_fact_type_parse(const char *s, eg_fact_type_t *out)
{
    for (unsigned i = 0; s != NULL && i < EG_FACT_NTYPES; i++) {
        if (strcmp(s, fact_names[i]) == 0) {
            *out = (eg_fact_type_t)i;
            return 0;
        }
    }
    return EG_EINVAL;
}

const char *eg_link_type_name(eg_link_type_t t)
{
    return (unsigned)t < EG_LINK_NTYPES ? link_names[t] : "unknown";
}

eg_link_type_t eg_link_type_reverse(eg_link_type_t t)
{
    if (t == EG_LINK_CAUSES)
        return EG_LINK_CAUSED_BY;
    if (t == EG_LINK_CAUSED_BY)
        return EG_LINK_CAUSES;
    return t;
}

/* A link type name of n bytes; 0 or EG_EINVAL. */
static int link_type_parse(const char *s, size_t n, eg_link_type_t *out)
{
    for (unsigned i = 0; i < EG_LINK_NTYPES; i++) {
        if (strlen(link_names[i]) == n && memcmp(s, link_names[i], n) == 0) {
            *out = (eg_link_type_t)i;
            return 0;
        }
    }
    return EG_EINVAL;
}

/* ---- encoding ------------------------------------------------------------------------------ */

/* An integer as raw JSON text, so cJSON prints it exactly. */
static cJSON *int_item(int64_t v)
{
    char buf[24];

    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}

static cJSON *time_item(int64_t t)
{
    return t == EG_MEM_TIME_NONE ? cJSON_CreateNull() : int_item(t);
}

static cJSON *str_or_null(const char *s)
{
    return s != NULL ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *str_array(const char *const *v, size_t n)
{
    cJSON *arr = cJSON_CreateArray();

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(v[i] != NULL ? v[i] : ""));
    return arr;
}

static cJSON *object_or(const cJSON *o, bool null_when_none)
{
    if (o != NULL)
        return cJSON_Duplicate(o, true);
    return null_when_none ? cJSON_CreateNull() : cJSON_CreateObject();
}

cJSON *eg_mem_unit_json(const eg_mem_unit_t *u)
{
    cJSON *j = cJSON_CreateObject();

    /* fact_type comes right after the id, before any caller-controlled object: the clear script
     * finds a unit's type as the first "fact_type" key without decoding the record. */
    cJSON_AddItemToObject(j, "id", cJSON_CreateString(u->id != NULL ? u->id : ""));
    cJSON_AddItemToObject(j, "fact_type", cJSON_CreateString(eg_fact_type_name(u->type)));
    cJSON_AddItemToObject(j, "text", cJSON_CreateString(u->text != NULL ? u->text : ""));
    cJSON_AddItemToObject(j, "context", cJSON_CreateString(u->context != NULL ? u->context : ""));
    cJSON_AddItemToObject(j, "occurred_start", time_item(u->occurred_start));
    cJSON_AddItemToObject(j, "occurred_end", time_item(u->occurred_end));
    cJSON_AddItemToObject(j, "mentioned_at", time_item(u->mentioned_at));
    cJSON_AddItemToObject(j, "created_at", time_item(u->created_at));
    cJSON_AddItemToObject(j, "updated_at", time_item(u->updated_at));
    cJSON_AddItemToObject(j, "document_id", str_or_null(u->document_id));
    cJSON_AddItemToObject(j, "chunk_id", str_or_null(u->chunk_id));
    cJSON_AddItemToObject(j, "tags", str_array(u->tags, u->ntags));
    cJSON_AddItemToObject(j, "entity_ids", str_array(u->entity_ids, u->nentities));
    cJSON_AddItemToObject(j, "state", cJSON_CreateString(u->invalidated ? "invalidated" : "valid"));
    cJSON_AddItemToObject(j, "invalidation_reason", str_or_null(u->invalidation_reason));
    cJSON_AddItemToObject(j, "invalidated_at", time_item(u->invalidated_at));
    cJSON_AddItemToObject(j, "edited_at", time_item(u->edited_at));
    cJSON_AddItemToObject(j, "proof_count", int_item(u->proof_count));
    cJSON_AddItemToObject(j, "source_ids", str_array(u->source_ids, u->nsources));
    /* Consolidation state only when set, so records written before it existed stay as they
     * are; before metadata, like every key scripts look for. */
    if (u->consolidated_at > 0)
        cJSON_AddItemToObject(j, "consolidated_at", int_item(u->consolidated_at));
    if (u->consolidation_failed_at > 0)
        cJSON_AddItemToObject(j, "consolidation_failed_at", int_item(u->consolidation_failed_at));
    if (u->consolidation_error != NULL)
        cJSON_AddItemToObject(j, "consolidation_error", cJSON_CreateString(u->consolidation_error));
    if (u->history != NULL && cJSON_IsArray(u->history) && cJSON_GetArraySize(u->history) > 0)
        cJSON_AddItemToObject(j, "history", cJSON_Duplicate(u->history, true));
    cJSON_AddItemToObject(j, "metadata", object_or(u->metadata, false));
    return j;
}

cJSON *eg_mem_doc_json(const eg_mem_doc_t *d)
{
    cJSON *j = cJSON_CreateObject();

    /* The unit list is not part of the record: units come and go one by one (a delete), which a
     * script can do on the :du list but not on JSON (see mstore.h). */
    cJSON_AddItemToObject(j, "id", cJSON_CreateString(d->id != NULL ? d->id : ""));
    cJSON_AddItemToObject(j, "created_at", time_item(d->created_at));
    cJSON_AddItemToObject(j, "updated_at", time_item(d->updated_at));
    cJSON_AddItemToObject(j, "content_hash", str_or_null(d->content_hash));
    cJSON_AddItemToObject(j, "text_length", int_item((int64_t)d->text_length));
    cJSON_AddItemToObject(j, "chunk_count", int_item((int64_t)d->nchunks));
    cJSON_AddItemToObject(j, "tags", str_array(d->tags, d->ntags));
    cJSON_AddItemToObject(j, "original_text", str_or_null(d->original_text));
    cJSON_AddItemToObject(j, "metadata", object_or(d->metadata, true));
    cJSON_AddItemToObject(j, "retain_params", object_or(d->retain_params, true));
    return j;
}

cJSON *eg_mem_chunk_json(const eg_mem_chunk_t *c)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddItemToObject(j, "id", cJSON_CreateString(c->id != NULL ? c->id : ""));
    cJSON_AddItemToObject(j, "document_id",
                          cJSON_CreateString(c->document_id != NULL ? c->document_id : ""));
    cJSON_AddItemToObject(j, "chunk_index", int_item((int64_t)c->chunk_index));
    cJSON_AddItemToObject(j, "created_at", time_item(c->created_at));
    cJSON_AddItemToObject(j, "text", cJSON_CreateString(c->text != NULL ? c->text : ""));
    return j;
}

cJSON *eg_mem_entity_json(const eg_mem_entity_t *e)
{
    cJSON *j = cJSON_CreateObject();
    const char *name = e->canonical_name != NULL ? e->canonical_name : "";
    eg_arena_t a;

    /* folded lets a script drop the :en entry of an entity whose last mention went away. */
    eg_arena_init(&a);
    cJSON_AddItemToObject(j, "id", cJSON_CreateString(e->id != NULL ? e->id : ""));
    cJSON_AddItemToObject(j, "canonical_name", cJSON_CreateString(name));
    cJSON_AddItemToObject(j, "folded", cJSON_CreateString(eg_mem_entity_fold(&a, name)));
    cJSON_AddItemToObject(j, "metadata", object_or(e->metadata, true));
    eg_arena_destroy(&a);
    return j;
}

/* ---- decoding ------------------------------------------------------------------------------ */

/* Parse len bytes as a JSON object whose tree lives until the arena is reset. */
static cJSON *parse_object(eg_arena_t *a, const char *json, size_t len)
{
    cJSON *j;

    if (json == NULL)
        return NULL;
    j = cJSON_ParseWithLength(json, len);
    if (j == NULL)
        return NULL;
    eg_arena_defer(a, (void (*)(void *))cJSON_Delete, j);
    return cJSON_IsObject(j) ? j : NULL;
}

/* A string member: required ones must be strings; optional ones may be null or absent (NULL). */
static int get_str(const cJSON *o, const char *key, bool required, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    *out = NULL;
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return 0;
    }
    return (!required && (v == NULL || cJSON_IsNull(v))) ? 0 : EG_EINVAL;
}

/* An integer member (time or count): null or absent gives none. */
static int get_int(const cJSON *o, const char *key, int64_t none, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    double d;

    *out = none;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return EG_EINVAL;
    d = v->valuedouble;
    if (!isfinite(d) || floor(d) != d || d < -9.2e18 || d > 9.2e18)
        return EG_EINVAL;
    *out = (int64_t)d;
    return 0;
}

/* An array of strings (absent or null: none), at most max entries; the array in the arena. */
static int get_strs(eg_arena_t *a, const cJSON *o, const char *key, size_t max,
                    const char *const **out, size_t *n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key), *it;
    const char **arr;
    size_t i = 0, cnt;

    *out = NULL;
    *n = 0;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsArray(v))
        return EG_EINVAL;
    cnt = (size_t)cJSON_GetArraySize(v);
    if (cnt > max)
        return EG_EINVAL;
    if (cnt == 0)
        return 0;
    arr = eg_arena_alloc(a, cnt * sizeof(*arr));
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it))
            return EG_EINVAL;
        arr[i++] = it->valuestring;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

/* An object member (absent or null: NULL). */
static int get_obj(const cJSON *o, const char *key, const cJSON **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    *out = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v))
        return EG_EINVAL;
    *out = v;
    return 0;
}

int eg_mem_unit_parse(eg_arena_t *a, const char *json, size_t len, eg_mem_unit_t *out)
{
    cJSON *j = parse_object(a, json, len);
    const char *type = NULL, *state = NULL;
    int64_t proof = 1;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (j == NULL)
        return EG_EINVAL;
    rc |= get_str(j, "id", true, &out->id);
    rc |= get_str(j, "text", true, &out->text);
    rc |= get_str(j, "context", false, &out->context);
    rc |= get_str(j, "fact_type", true, &type);
    rc |= get_int(j, "occurred_start", EG_MEM_TIME_NONE, &out->occurred_start);
    rc |= get_int(j, "occurred_end", EG_MEM_TIME_NONE, &out->occurred_end);
    rc |= get_int(j, "mentioned_at", EG_MEM_TIME_NONE, &out->mentioned_at);
    rc |= get_int(j, "created_at", EG_MEM_TIME_NONE, &out->created_at);
    rc |= get_int(j, "updated_at", EG_MEM_TIME_NONE, &out->updated_at);
    rc |= get_str(j, "document_id", false, &out->document_id);
    rc |= get_str(j, "chunk_id", false, &out->chunk_id);
    rc |= get_strs(a, j, "tags", EG_MEM_TAGS_MAX, &out->tags, &out->ntags);
    rc |= get_strs(a, j, "entity_ids", EG_MEM_ENTITIES_MAX, &out->entity_ids, &out->nentities);
    rc |= get_str(j, "state", false, &state);
    rc |= get_str(j, "invalidation_reason", false, &out->invalidation_reason);
    rc |= get_int(j, "invalidated_at", EG_MEM_TIME_NONE, &out->invalidated_at);
    rc |= get_int(j, "edited_at", EG_MEM_TIME_NONE, &out->edited_at);
    rc |= get_int(j, "proof_count", 1, &proof);
    rc |= get_strs(a, j, "source_ids", SIZE_MAX, &out->source_ids, &out->nsources);
    rc |= get_obj(j, "metadata", &out->metadata);
    rc |= get_int(j, "consolidated_at", EG_MEM_TIME_NONE, &out->consolidated_at);
    rc |= get_int(j, "consolidation_failed_at", EG_MEM_TIME_NONE, &out->consolidation_failed_at);
    rc |= get_str(j, "consolidation_error", false, &out->consolidation_error);
    {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "history");
        out->history = cJSON_IsArray(h) ? h : NULL;
    }
    if (rc != 0 || eg_fact_type_parse(type, &out->type) != 0 || proof < 0 || proof > INT32_MAX)
        return EG_EINVAL;
    if (state != NULL && strcmp(state, "valid") != 0 && strcmp(state, "invalidated") != 0)
        return EG_EINVAL;
    out->invalidated = state != NULL && strcmp(state, "invalidated") == 0;
    out->proof_count = (int)proof;
    if (out->context == NULL)
        out->context = "";
    return 0;
}

int eg_mem_doc_parse(eg_arena_t *a, const char *json, size_t len, eg_mem_doc_t *out)
{
    cJSON *j = parse_object(a, json, len);
    int64_t tl = 0, nc = 0;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (j == NULL)
        return EG_EINVAL;
    rc |= get_str(j, "id", true, &out->id);
    rc |= get_int(j, "created_at", EG_MEM_TIME_NONE, &out->created_at);
    rc |= get_int(j, "updated_at", EG_MEM_TIME_NONE, &out->updated_at);
    rc |= get_str(j, "content_hash", false, &out->content_hash);
    rc |= get_int(j, "text_length", 0, &tl);
    rc |= get_int(j, "chunk_count", 0, &nc);
    rc |= get_strs(a, j, "tags", EG_MEM_TAGS_MAX, &out->tags, &out->ntags);
    rc |= get_str(j, "original_text", false, &out->original_text);
    rc |= get_obj(j, "metadata", &out->metadata);
    rc |= get_obj(j, "retain_params", &out->retain_params);
    if (rc != 0 || tl < 0 || nc < 0)
        return EG_EINVAL;
    out->text_length = (size_t)tl;
    out->nchunks = (size_t)nc;
    return 0;
}

int eg_mem_chunk_parse(eg_arena_t *a, const char *json, size_t len, eg_mem_chunk_t *out)
{
    cJSON *j = parse_object(a, json, len);
    int64_t idx = -1;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (j == NULL)
        return EG_EINVAL;
    rc |= get_str(j, "id", true, &out->id);
    rc |= get_str(j, "document_id", true, &out->document_id);
    rc |= get_int(j, "chunk_index", -1, &idx);
    rc |= get_int(j, "created_at", EG_MEM_TIME_NONE, &out->created_at);
    rc |= get_str(j, "text", true, &out->text);
    if (rc != 0 || idx < 0)
        return EG_EINVAL;
    out->chunk_index = (size_t)idx;
    return 0;
}

int eg_mem_entity_parse(eg_arena_t *a, const char *json, size_t len, eg_mem_entity_t *out)
{
    cJSON *j = parse_object(a, json, len);
    int rc = 0;

    memset(out, 0, sizeof(*out));
    out->first_seen = out->last_seen = EG_MEM_TIME_NONE;
    if (j == NULL)
        return EG_EINVAL;
    rc |= get_str(j, "id", true, &out->id);
    rc |= get_str(j, "canonical_name", true, &out->canonical_name);
    rc |= get_obj(j, "metadata", &out->metadata);
    return rc != 0 ? EG_EINVAL : 0;
}

int eg_mem_links_parse(eg_arena_t *a, const char *s, size_t len, eg_mem_link_t **out, size_t *n)
{
    eg_mem_link_t *v;
    size_t cnt = 0, i = 0, k = 0;

    *out = NULL;
    *n = 0;
    for (size_t p = 0; p < len; p++)
        cnt += s[p] == ';';
    if (cnt == 0)
        return len == 0 ? 0 : EG_EINVAL;
    v = eg_arena_alloc(a, cnt * sizeof(*v));
    while (i < len) {
        size_t id0 = i, t0, w0;
        char wbuf[32], *end;
        double w;

        while (i < len && s[i] != ' ' && s[i] != ';')
            i++;
        if (i == id0 || i >= len || s[i] != ' ')
            return EG_EINVAL;
        v[k].other_id = eg_arena_strndup(a, s + id0, i - id0);
        t0 = ++i;
        while (i < len && s[i] != ' ' && s[i] != ';')
            i++;
        if (i >= len || s[i] != ' ' || link_type_parse(s + t0, i - t0, &v[k].type) != 0)
            return EG_EINVAL;
        w0 = ++i;
        while (i < len && s[i] != ';')
            i++;
        if (i >= len || i == w0 || i - w0 >= sizeof(wbuf))
            return EG_EINVAL;
        memcpy(wbuf, s + w0, i - w0);
        wbuf[i - w0] = '\0';
        errno = 0;
        w = strtod(wbuf, &end);
        if (errno != 0 || *end != '\0' || !isfinite(w))
            return EG_EINVAL;
        v[k++].weight = (float)w;
        i++; /* ';' */
    }
    *out = v;
    *n = k;
    return 0;
}

/* ---- ids and names ------------------------------------------------------------------------- */

char *eg_mem_chunk_id(eg_arena_t *a, const char *bank_id, const char *document_id, size_t index)
{
    return eg_arena_printf(a, "%s_%s_%zu", bank_id, document_id, index);
}

char *eg_mem_entity_fold(eg_arena_t *a, const char *name)
{
    eg_text_tokenizer_t t;
    eg_text_token_t tok;
    size_t len = strlen(name), n = 0;
    char *out, *o;

    /* Two passes: a folded term can be longer than its source ("ß" -> "ss"). */
    eg_text_tokenizer_init(&t, name, len, 0);
    while (eg_text_tokenizer_next(&t, &tok))
        n += tok.len + 1;
    out = o = eg_arena_alloc(a, n + 1);
    eg_text_tokenizer_init(&t, name, len, 0);
    while (eg_text_tokenizer_next(&t, &tok)) {
        if (o != out)
            *o++ = ' ';
        memcpy(o, tok.term, tok.len);
        o += tok.len;
    }
    *o = '\0';
    return out;
}

/* ---- helpers of the writers ---------------------------------------------------------------- */

const char *const eg__mem_key_suffix[EG__MEM_KEYS] = {"bank", "u",  "v", "l",  "d",  "c", "e",
                                                      "es",   "en", "x", "du", "wk", "lr", "so"};

void eg__mem_keys(eg_arena_t *a, const char *ws_id, const char *bank_id, const char **keys)
{
    const char *tag = eg_arena_printf(a, "%s/%s", ws_id, bank_id);

    for (int i = 0; i < EG__MEM_KEYS; i++)
        keys[i] = eg_key(a, "b", tag, "%s", eg__mem_key_suffix[i]);
}

int eg__mem_reply_error(const redisReply *r)
{
    if (strncmp(r->str, "EG_NOTFOUND", 11) == 0)
        return EG_ENOTFOUND;
    if (strncmp(r->str, "EG_CONFLICT", 11) == 0)
        return EG_ECONFLICT;
    if (strncmp(r->str, "EG_INVALID", 10) == 0)
        return EG_EINVAL;
    eg_log_error("redis memory script error: %s", r->str);
    return EG_EREDIS;
}

bool eg__mem_doc_id_valid(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;

    if (n == 0 || n > EG_MEM_DOC_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
            return false;
    return true;
}

static bool tags_valid(const char *const *tags, size_t n)
{
    if (n > EG_MEM_TAGS_MAX || (n > 0 && tags == NULL))
        return false;
    for (size_t i = 0; i < n; i++)
        if (tags[i] == NULL || strlen(tags[i]) > EG_MEM_TAG_MAX)
            return false;
    return true;
}

bool eg__mem_unit_valid(const eg_mem_unit_t *u)
{
    if (!eg_uuid_valid(u->id) || u->text == NULL || (unsigned)u->type >= EG_FACT_NTYPES ||
        !tags_valid(u->tags, u->ntags) || u->nentities > EG_MEM_ENTITIES_MAX ||
        (u->nentities > 0 && u->entity_ids == NULL) || (u->nsources > 0 && u->source_ids == NULL))
        return false;
    if (u->metadata != NULL && !cJSON_IsObject(u->metadata))
        return false;
    for (size_t i = 0; i < u->nentities; i++) {
        if (!eg_uuid_valid(u->entity_ids[i]))
            return false;
        for (size_t k = 0; k < i; k++)
            if (strcmp(u->entity_ids[k], u->entity_ids[i]) == 0)
                return false;
    }
    for (size_t i = 0; i < u->nsources; i++)
        if (u->source_ids[i] == NULL)
            return false;
    return true;
}

char *eg__mem_print(eg_arena_t *a, cJSON *j)
{
    char *text = cJSON_PrintUnformatted(j), *out;

    cJSON_Delete(j);
    if (text == NULL) {
        eg_log_error("out of memory printing a memory record");
        abort();
    }
    out = eg_arena_strdup(a, text);
    free(text);
    return out;
}

char *eg__mem_vec_bytes(eg_arena_t *a, const float *v, size_t dim)
{
    unsigned char *out = eg_arena_alloc(a, dim * 4 + 1);

    for (size_t i = 0; i < dim; i++) {
        uint32_t b;

        memcpy(&b, &v[i], 4);
        out[4 * i] = (unsigned char)b;
        out[4 * i + 1] = (unsigned char)(b >> 8);
        out[4 * i + 2] = (unsigned char)(b >> 16);
        out[4 * i + 3] = (unsigned char)(b >> 24);
    }
    return (char *)out;
}

const char *eg__mem_time_arg(eg_arena_t *a, int64_t t)
{
    return t == EG_MEM_TIME_NONE ? "" : eg_arena_printf(a, "%lld", (long long)t);
}
