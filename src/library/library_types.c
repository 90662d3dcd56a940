/* Memory types: create, read, list, delete.
 *
 * A type is kept in eg:{w:<ws>}:fy:mty (id -> MemoryType JSON) and ordered by fy:mty:z. The
 * memories of each type are counted in fy:mty:n, kept by the memory write script; deleting a type
 * that still has memories is refused (EG_ECONFLICT) rather than cascading, so a stray DELETE cannot
 * wipe a library: delete the memories first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/store.h"
#include "engram/util.h"
#include "library_int.h"

/* ---- validation ------------------------------------------------------------------------------ */

static bool str_ok(const cJSON *v, size_t max, bool nonempty)
{
    return cJSON_IsString(v) && strlen(v->valuestring) <= max &&
           (!nonempty || v->valuestring[0] != '\0');
}

static bool field_type_ok(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++)
        if (!((s[n] >= 'A' && s[n] <= 'Z') || s[n] == '_' || (s[n] >= '0' && s[n] <= '9')))
            return false;
    return n > 0 && n <= 32;
}

/* An optional key name: absent / null, or a non-empty string. */
static int opt_name(const cJSON *body, const char *key, cJSON *rec, const char **why,
                    const char *msg)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);

    if (v == NULL || cJSON_IsNull(v)) {
        cJSON_AddNullToObject(rec, key);
        return 0;
    }
    if (!str_ok(v, EG__LIB_NAME_MAX, true)) {
        *why = msg;
        return EG_EINVAL;
    }
    cJSON_AddStringToObject(rec, key, v->valuestring);
    return 0;
}

static int fields_parse(const cJSON *body, cJSON *rec, const char **why)
{
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(body, "metadataFields"), *f;
    cJSON *out = cJSON_AddArrayToObject(rec, "metadataFields");

    if (fs == NULL || cJSON_IsNull(fs))
        return 0;
    if (!cJSON_IsArray(fs) || cJSON_GetArraySize(fs) > EG_LIB_FIELDS_MAX) {
        *why = "metadataFields must be an array of at most 100 {name, description, fieldType}";
        return EG_EINVAL;
    }
    cJSON_ArrayForEach(f, fs)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *desc = cJSON_GetObjectItemCaseSensitive(f, "description");
        const cJSON *ft = cJSON_GetObjectItemCaseSensitive(f, "fieldType");
        const cJSON *o;
        if (!cJSON_IsObject(f) || !str_ok(name, EG__LIB_NAME_MAX, true)) {
            *why = "metadataFields[].name is required (a non-empty string)";
            return EG_EINVAL;
        }
        cJSON_ArrayForEach(o, out)
        {
            if (strcmp(eg__lib_jstr(o, "name"), name->valuestring) == 0) {
                *why = "metadataFields[].name must be unique";
                return EG_EINVAL;
            }
        }
        if (desc && !cJSON_IsNull(desc) && !str_ok(desc, EG__LIB_DESC_MAX, false)) {
            *why = "metadataFields[].description must be a string";
            return EG_EINVAL;
        }
        if (ft && !cJSON_IsNull(ft) && !(cJSON_IsString(ft) && field_type_ok(ft->valuestring))) {
            *why = "metadataFields[].fieldType must be a type name such as STRING";
            return EG_EINVAL;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", name->valuestring);
        cJSON_AddStringToObject(e, "description", cJSON_IsString(desc) ? desc->valuestring : "");
        cJSON_AddStringToObject(e, "fieldType", cJSON_IsString(ft) ? ft->valuestring : "STRING");
        cJSON_AddItemToArray(out, e);
    }
    return 0;
}

/* The stored record of a new type, or NULL with *why. */
static cJSON *type_record(const cJSON *body, const char *id, int64_t now, const char **why)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(body, "description");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(body, "type");
    char t[EG__LIB_TIME_MAX];
    cJSON *rec;

    if (!str_ok(name, EG__LIB_NAME_MAX, true)) {
        *why = "name is required (a non-empty string of at most 200 bytes)";
        return NULL;
    }
    if (!str_ok(desc, EG__LIB_DESC_MAX, false)) {
        *why = "description is required (a string of at most 4000 bytes)";
        return NULL;
    }
    if (type && !cJSON_IsNull(type) &&
        !(cJSON_IsString(type) && (strcmp(type->valuestring, "SEMANTIC") == 0 ||
                                   strcmp(type->valuestring, "METADATA") == 0))) {
        *why = "type must be SEMANTIC or METADATA";
        return NULL;
    }
    eg_time_iso_us(now, t);
    rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "id", id);
    cJSON_AddStringToObject(rec, "createdAt", t);
    cJSON_AddStringToObject(rec, "name", name->valuestring);
    cJSON_AddStringToObject(rec, "description", desc->valuestring);
    cJSON_AddStringToObject(rec, "type", cJSON_IsString(type) ? type->valuestring : "SEMANTIC");
    if (opt_name(body, "identityKeyName", rec, why,
                 "identityKeyName must be a non-empty string (a metadata key)") != 0 ||
        opt_name(body, "updatedAtKeyName", rec, why,
                 "updatedAtKeyName must be a non-empty string (a metadata key)") != 0 ||
        fields_parse(body, rec, why) != 0) {
        cJSON_Delete(rec);
        return NULL;
    }
    return rec;
}

/* ---- calls ----------------------------------------------------------------------------------- */

typedef struct {
    eg_lib_json_fn cb;
    void *udata;
    cJSON *rec; /* create: the new record */
} call_t;

static call_t *call_new(eg_lib_json_fn cb, void *udata)
{
    call_t *c = eg_xcalloc(1, sizeof(*c));

    c->cb = cb;
    c->udata = udata;
    return c;
}

static void call_end(call_t *c, int err, const char *why, const cJSON *json)
{
    c->cb(c->udata, err, why, json);
    cJSON_Delete(c->rec);
    free(c);
}

static void on_created(void *udata, int err, redisReply *r)
{
    call_t *c = udata;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = EG_EREDIS;
    if (err != 0) {
        call_end(c, err, NULL, NULL);
        return;
    }
    cJSON *pub = eg__lib_type_public(c->rec);
    call_end(c, 0, NULL, pub);
    cJSON_Delete(pub);
}

int eg_lib_type_create(const char *ws, const cJSON *body, const char **why, eg_lib_json_fn cb,
                       void *udata)
{
    char id[EG__LIB_ID_MAX], member[EG_ZPAGE_MEMBER_MAX];
    int64_t now = eg_now_us();
    eg_arena_t a;
    int rc;

    *why = NULL;
    if (!eg__lib_ws_valid(ws) || !cb)
        return EG_EINVAL;
    if (!cJSON_IsObject(body)) {
        *why = "the body must be a JSON object";
        return EG_EINVAL;
    }
    eg_hexid_new("mty", id, EG__LIB_ID_MAX);
    cJSON *rec = type_record(body, id, now, why);
    if (!rec)
        return EG_EINVAL;
    eg_zpage_member(now, id, member, sizeof(member));
    cJSON *priv = cJSON_AddObjectToObject(rec, "_");
    cJSON_AddStringToObject(priv, "member", member);

    static eg_script_t s_create = {
        .name = "lib_type_create",
        .source = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                  "redis.call('ZADD', KEYS[2], 0, ARGV[3])\n"
                  "return 1\n",
    };
    char *txt = cJSON_PrintUnformatted(rec);
    eg_arena_init(&a);
    const char *argv[5] = {eg__lib_key(&a, ws, "mty"), eg__lib_key(&a, ws, "mty:z"), id, txt,
                           member};
    call_t *c = call_new(cb, udata);
    c->rec = rec;
    rc = eg_store_eval(&s_create, on_created, c, 2, 5, argv, NULL);
    if (rc != 0) {
        cJSON_Delete(rec);
        free(c);
    }
    free(txt);
    eg_arena_destroy(&a);
    return rc;
}

static void on_got(void *udata, int err, redisReply *r)
{
    call_t *c = udata;

    if (err == 0 && r->type == REDIS_REPLY_NIL)
        err = EG_ENOTFOUND;
    else if (err == 0 && r->type != REDIS_REPLY_STRING)
        err = EG_EREDIS;
    if (err != 0) {
        call_end(c, err, NULL, NULL);
        return;
    }
    cJSON *rec = cJSON_Parse(r->str);
    cJSON *pub = rec ? eg__lib_type_public(rec) : NULL;
    call_end(c, pub ? 0 : EG_EREDIS, NULL, pub);
    cJSON_Delete(pub);
    cJSON_Delete(rec);
}

int eg_lib_type_get(const char *ws, const char *id, eg_lib_json_fn cb, void *udata)
{
    eg_arena_t a;
    int rc;

    if (!eg__lib_ws_valid(ws) || !cb || !id)
        return EG_EINVAL;
    if (!eg_hexid_valid(id, "mty"))
        return EG_ENOTFOUND;
    eg_arena_init(&a);
    call_t *c = call_new(cb, udata);
    rc = eg_store_command(on_got, c, "HGET %s %s", eg__lib_key(&a, ws, "mty"), id);
    if (rc != 0)
        free(c);
    eg_arena_destroy(&a);
    return rc;
}

/* KEYS types, zset, counts, identity index, the type's memories; ARGV id. {1, record} deleted, {0}
 * missing, {-1, n} still used by n memories. */
static eg_script_t s_delete = {
    .name = "lib_type_delete",
    .source = "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
              "if not cur then return {0} end\n"
              "local n = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')\n"
              "if n > 0 then return {-1, n} end\n"
              "local rec = cjson.decode(cur)\n"
              "redis.call('HDEL', KEYS[1], ARGV[1])\n"
              "redis.call('ZREM', KEYS[2], rec['_']['member'])\n"
              "redis.call('HDEL', KEYS[3], ARGV[1])\n"
              "redis.call('DEL', KEYS[4], KEYS[5])\n"
              "return {1, cur}\n",
};

static void on_deleted(void *udata, int err, redisReply *r)
{
    call_t *c = udata;

    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
                     r->element[0]->type != REDIS_REPLY_INTEGER))
        err = EG_EREDIS;
    if (err != 0) {
        call_end(c, err, NULL, NULL);
        return;
    }
    long long st = r->element[0]->integer;
    if (st == 0) {
        call_end(c, EG_ENOTFOUND, NULL, NULL);
        return;
    }
    if (st < 0) {
        char why[160];
        long long n = r->elements > 1 ? r->element[1]->integer : 0;
        snprintf(why, sizeof(why), "memory type is used by %lld memor%s; delete %s first", n,
                 n == 1 ? "y" : "ies", n == 1 ? "it" : "them");
        call_end(c, EG_ECONFLICT, why, NULL);
        return;
    }
    cJSON *rec = r->elements > 1 ? cJSON_Parse(r->element[1]->str) : NULL;
    cJSON *pub = rec ? eg__lib_type_public(rec) : NULL;
    call_end(c, pub ? 0 : EG_EREDIS, NULL, pub);
    cJSON_Delete(pub);
    cJSON_Delete(rec);
}

int eg_lib_type_delete(const char *ws, const char *id, eg_lib_json_fn cb, void *udata)
{
    eg_arena_t a;
    int rc;

    if (!eg__lib_ws_valid(ws) || !cb || !id)
        return EG_EINVAL;
    if (!eg_hexid_valid(id, "mty"))
        return EG_ENOTFOUND;
    eg_arena_init(&a);
    const char *argv[6] = {
        eg__lib_key(&a, ws, "mty"),          eg__lib_key(&a, ws, "mty:z"),
        eg__lib_key(&a, ws, "mty:n"),        eg__lib_key(&a, ws, "mty:%s:ident", id),
        eg__lib_key(&a, ws, "mty:%s:m", id), id};
    call_t *c = call_new(cb, udata);
    rc = eg_store_eval(&s_delete, on_deleted, c, 5, 6, argv, NULL);
    if (rc != 0)
        free(c);
    eg_arena_destroy(&a);
    return rc;
}

/* ---- pages ----------------------------------------------------------------------------------- */

typedef struct {
    eg_lib_page_fn cb;
    void *udata;
} page_t;

static void on_page(void *udata, int err, const eg_zpage_t *page)
{
    page_t *p = udata;
    cJSON *items = NULL;

    if (err == 0) {
        items = cJSON_CreateArray();
        for (size_t i = 0; i < page->n; i++) {
            cJSON *rec = cJSON_Parse(page->values[i]);
            if (rec)
                cJSON_AddItemToArray(items, eg__lib_type_public(rec));
            cJSON_Delete(rec);
        }
    }
    p->cb(p->udata, err, items, err == 0 ? page : NULL);
    cJSON_Delete(items);
    free(p);
}

int eg_lib_type_page(const char *ws, const eg_zpage_req_t *q, eg_lib_page_fn cb, void *udata)
{
    eg_arena_t a;
    eg_zpage_req_t r = *q;
    int rc;

    if (!eg__lib_ws_valid(ws) || !cb)
        return EG_EINVAL;
    eg_arena_init(&a);
    r.zkey = eg__lib_key(&a, ws, "mty:z");
    r.hkey = eg__lib_key(&a, ws, "mty");
    page_t *p = eg_xmalloc(sizeof(*p));
    p->cb = cb;
    p->udata = udata;
    rc = eg_zpage(&r, on_page, p);
    if (rc != 0)
        free(p);
    eg_arena_destroy(&a);
    return rc;
}
