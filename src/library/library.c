/* The library's shared pieces: keys, ids, times, the public shapes of the stored records, the one
 * script every memory write goes through, record reads and memory events.
 *
 * Why one write script with a compare-and-set instead of a script per operation: a record change
 * (PATCH, a content version starting or finishing, a file arriving, a bulk upsert) is built in C
 * from the record as read, because Redis's Lua cjson cannot round-trip arbitrary JSON (an empty
 * array comes back as an object). The script then applies it only if the record is still what
 * was read, together with what must change with it (the zpage member, the memory type's count,
 * content and chunks, the stored file bytes, the identity index, a bulk job's progress), all in
 * the workspace's slot. A writer that lost the race reads again. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engram/error.h"
#include "engram/events.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/util.h"
#include "library_int.h"

/* ---- keys, ids, times ------------------------------------------------------------------------ */

char *eg__lib_key(eg_arena_t *a, const char *ws, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    char *suffix = eg_arena_vprintf(a, fmt, ap);
    va_end(ap);
    return eg_key(a, "w", ws, "fy:%s", suffix);
}

void eg__lib_sync_new(char out[EG__LIB_SYNC_MAX])
{
    unsigned char raw[4];
    char hex[9];

    eg_random_bytes(raw, sizeof(raw));
    eg_hex_encode(raw, sizeof(raw), hex);
    snprintf(out, EG__LIB_SYNC_MAX, "%016" PRId64 "-%s", eg_now_us(), hex);
}

bool eg__lib_ws_valid(const char *ws)
{
    size_t n = 0;

    if (ws == NULL)
        return false;
    for (; ws[n]; n++)
        if ((unsigned char)ws[n] <= ' ' || ws[n] == '{' || ws[n] == '}' ||
            (unsigned char)ws[n] >= 0x7f)
            return false;
    return n > 0 && n <= 64;
}

/* ---- JSON helpers ---------------------------------------------------------------------------- */

const char *eg__lib_jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const cJSON *eg__lib_priv(const cJSON *rec)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(rec, "_");

    return cJSON_IsObject(p) ? p : NULL;
}

const char *eg__lib_pstr(const cJSON *rec, const char *key)
{
    return eg__lib_jstr(eg__lib_priv(rec), key);
}

void eg__lib_jset(cJSON *o, const char *key, cJSON *v)
{
    if (cJSON_GetObjectItemCaseSensitive(o, key))
        cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
    else
        cJSON_AddItemToObject(o, key, v);
}

cJSON *eg__lib_mem_public(const cJSON *rec, const char *content)
{
    cJSON *m = cJSON_Duplicate(rec, true);
    const char *st;

    cJSON_DeleteItemFromObjectCaseSensitive(m, "_");
    eg__lib_jset(m, "content", content ? cJSON_CreateString(content) : cJSON_CreateNull());
    st = eg__lib_jstr(m, "contentStatus");
    if (st && strcmp(st, "SYNCHRONIZATION_ERROR") == 0) {
        const char *why = eg__lib_pstr(rec, "reason");
        cJSON_AddStringToObject(m, "contentStatusReason", why ? why : "synchronization failed");
    }
    return m;
}

cJSON *eg__lib_type_public(const cJSON *rec)
{
    cJSON *t = cJSON_Duplicate(rec, true);

    cJSON_DeleteItemFromObjectCaseSensitive(t, "_");
    return t;
}

/* ---- the write script --------------------------------------------------------------------------
 *
 * KEYS  1 mem hash, 2 mem zset, 3 content, 4 chunks, 5 file hash, 6 type counts, 7 types,
 *       8 identity index of the type, 9 a bulk job record (or the content key when none),
 *       10 the type's memories (a zset of the same members as the mem zset)
 * ARGV  1 id, 2 old record ('' = must not exist), 3 new record ('' = delete), 4 member,
 *       5 type id, 6 content op (k|c|s), 7 file op (k|c|s), 8 content text, 9 file name,
 *       10 mime, 11 file bytes, 12 identity value ('' = none), 13 job JSON ('' = none),
 *       14 job TTL (s), 15 identity value to drop when it names this memory ('' = none),
 *       16.. chunks
 * Returns 1 written, 0 the record is not what ARGV[2] says, -1 the memory type is gone. */
static eg_script_t s_put = {
    .name = "lib_mem_put",
    .source = "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
              "if ARGV[2] == '' then\n"
              "  if cur then return 0 end\n"
              "elseif cur ~= ARGV[2] then return 0 end\n"
              "if ARGV[3] == '' then\n"
              "  if cur then\n"
              "    redis.call('HDEL', KEYS[1], ARGV[1])\n"
              "    redis.call('ZREM', KEYS[2], ARGV[4])\n"
              "    redis.call('ZREM', KEYS[10], ARGV[4])\n"
              "    redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])\n"
              "    if redis.call('HINCRBY', KEYS[6], ARGV[5], -1) <= 0 then\n"
              "      redis.call('HDEL', KEYS[6], ARGV[5])\n"
              "    end\n"
              "    if ARGV[12] ~= '' and redis.call('HGET', KEYS[8], ARGV[12]) == ARGV[1] then\n"
              "      redis.call('HDEL', KEYS[8], ARGV[12])\n"
              "    end\n"
              "  end\n"
              "  return 1\n"
              "end\n"
              "if not cur then\n"
              "  if redis.call('HEXISTS', KEYS[7], ARGV[5]) == 0 then return -1 end\n"
              "  redis.call('ZADD', KEYS[2], 0, ARGV[4])\n"
              "  redis.call('ZADD', KEYS[10], 0, ARGV[4])\n"
              "  redis.call('HINCRBY', KEYS[6], ARGV[5], 1)\n"
              "end\n"
              "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
              "if ARGV[6] == 'c' then\n"
              "  redis.call('DEL', KEYS[3], KEYS[4])\n"
              "elseif ARGV[6] == 's' then\n"
              "  redis.call('SET', KEYS[3], ARGV[8])\n"
              "  redis.call('DEL', KEYS[4])\n"
              "  local i = 16\n"
              "  while i <= #ARGV do\n"
              "    local j = math.min(i + 499, #ARGV)\n"
              "    redis.call('RPUSH', KEYS[4], unpack(ARGV, i, j))\n"
              "    i = j + 1\n"
              "  end\n"
              "end\n"
              "if ARGV[7] == 'c' then\n"
              "  redis.call('DEL', KEYS[5])\n"
              "elseif ARGV[7] == 's' then\n"
              "  redis.call('DEL', KEYS[5])\n"
              "  redis.call('HSET', KEYS[5], 'name', ARGV[9], 'mime', ARGV[10], 'data', ARGV[11])\n"
              "end\n"
              "if ARGV[15] ~= '' and redis.call('HGET', KEYS[8], ARGV[15]) == ARGV[1] then\n"
              "  redis.call('HDEL', KEYS[8], ARGV[15])\n"
              "end\n"
              "if ARGV[12] ~= '' then redis.call('HSET', KEYS[8], ARGV[12], ARGV[1]) end\n"
              "if ARGV[13] ~= '' then redis.call('SET', KEYS[9], ARGV[13], 'EX', ARGV[14]) end\n"
              "return 1\n",
};

typedef struct {
    void (*cb)(void *, int);
    void *udata;
} put_t;

static void on_put(void *udata, int err, redisReply *r)
{
    put_t *p = udata;

    if (err == 0) {
        if (r->type != REDIS_REPLY_INTEGER)
            err = EG_EREDIS;
        else if (r->integer == 0)
            err = EG_ECONFLICT;
        else if (r->integer < 0)
            err = EG_ENOTFOUND;
    }
    if (err == EG_EREDIS && r)
        eg_log_warn("library: record write failed: %s",
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    p->cb(p->udata, err);
    free(p);
}

static const char *op_name(eg__lib_op_t op)
{
    return op == EG__LIB_SET ? "s" : op == EG__LIB_CLEAR ? "c" : "k";
}

int eg__lib_put(const eg__lib_put_t *p, void (*cb)(void *, int), void *udata)
{
    eg_arena_t a;
    size_t argc = 10 + 15 + p->nchunks;
    const char **argv;
    size_t *lens;
    char ttl[24];
    int rc;

    eg_arena_init(&a);
    argv = eg_arena_calloc(&a, argc * sizeof(*argv));
    lens = eg_arena_calloc(&a, argc * sizeof(*lens));
    argv[0] = eg__lib_key(&a, p->ws, "mem");
    argv[1] = eg__lib_key(&a, p->ws, "mem:z");
    argv[2] = eg__lib_key(&a, p->ws, "mem:%s:txt", p->id);
    argv[3] = eg__lib_key(&a, p->ws, "mem:%s:chk", p->id);
    argv[4] = eg__lib_key(&a, p->ws, "mem:%s:file", p->id);
    argv[5] = eg__lib_key(&a, p->ws, "mty:n");
    argv[6] = eg__lib_key(&a, p->ws, "mty");
    argv[7] = eg__lib_key(&a, p->ws, "mty:%s:ident", p->type_id);
    argv[8] = p->job_key ? p->job_key : argv[2];
    argv[9] = eg__lib_key(&a, p->ws, "mty:%s:m", p->type_id);
    argv[10] = p->id;
    argv[11] = p->old ? p->old : "";
    argv[12] = p->rec ? p->rec : "";
    argv[13] = p->member;
    argv[14] = p->type_id;
    argv[15] = op_name(p->content);
    argv[16] = op_name(p->file);
    argv[17] = p->text ? p->text : "";
    argv[18] = p->file_name ? p->file_name : "";
    argv[19] = p->mime ? p->mime : "";
    argv[20] = "";
    argv[21] = p->ident ? p->ident : "";
    argv[22] = p->job_json ? p->job_json : "";
    snprintf(ttl, sizeof(ttl), "%d", EG__LIB_JOB_TTL_S);
    argv[23] = ttl;
    argv[24] = p->ident_old ? p->ident_old : "";
    for (size_t i = 0; i < p->nchunks; i++)
        argv[25 + i] = p->chunks[i];
    for (size_t i = 0; i < argc; i++)
        lens[i] = argv[i] ? strlen(argv[i]) : 0;
    if (p->data) {
        argv[20] = p->data;
        lens[20] = p->len;
    }

    put_t *pt = eg_xmalloc(sizeof(*pt));
    pt->cb = cb;
    pt->udata = udata;
    rc = eg_store_eval(&s_put, on_put, pt, 10, (int)argc, argv, lens);
    if (rc != 0)
        free(pt);
    eg_arena_destroy(&a);
    return rc;
}

/* ---- reads ----------------------------------------------------------------------------------- */

typedef struct {
    eg__lib_rec_fn cb;
    void *udata;
} read_t;

static void on_read(void *udata, int err, redisReply *r)
{
    read_t *rd = udata;
    cJSON *rec = NULL;
    const char *raw = NULL, *content = NULL;

    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2))
        err = EG_EREDIS;
    if (err == 0) {
        if (r->element[0]->type != REDIS_REPLY_STRING) {
            err = EG_ENOTFOUND;
        } else {
            raw = r->element[0]->str;
            rec = cJSON_Parse(raw);
            if (!cJSON_IsObject(rec))
                err = EG_EREDIS;
            if (r->element[1]->type == REDIS_REPLY_STRING)
                content = r->element[1]->str;
        }
    }
    rd->cb(rd->udata, err, err == 0 ? rec : NULL, raw, content);
    cJSON_Delete(rec);
    free(rd);
}

int eg__lib_mem_read(const char *ws, const char *id, bool with_content, eg__lib_rec_fn cb,
                     void *udata)
{
    eg_arena_t a;
    int rc;

    if (!eg__lib_ws_valid(ws) || !id)
        return EG_EINVAL;
    eg_arena_init(&a);
    read_t *rd = eg_xmalloc(sizeof(*rd));
    rd->cb = cb;
    rd->udata = udata;
    /* MULTI-free pair: HGET and GET of one slot in one script-less round trip would need two
     * replies; a tiny script keeps it one. */
    static eg_script_t s_get = {
        .name = "lib_mem_get",
        .source = "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
                  "local c = false\n"
                  "if v and ARGV[2] == '1' then c = redis.call('GET', KEYS[2]) end\n"
                  "return {v, c}\n",
    };
    const char *argv[4] = {eg__lib_key(&a, ws, "mem"), eg__lib_key(&a, ws, "mem:%s:txt", id), id,
                           with_content ? "1" : "0"};
    rc = eg_store_eval(&s_get, on_read, rd, 2, 4, argv, NULL);
    if (rc != 0)
        free(rd);
    eg_arena_destroy(&a);
    return rc;
}

/* ---- events ---------------------------------------------------------------------------------- */

typedef struct {
    char type[24];
    char id[EG__LIB_ID_MAX];
} emit_t;

static void on_emitted(void *udata, int err, const char *event_id)
{
    emit_t *e = udata;

    (void)event_id;
    if (err != 0)
        eg_log_warn("library: %s of %s could not be stored: %s", e->type, e->id, eg_strerror(err));
    free(e);
}

void eg__lib_emit(const char *ws, const char *type, const cJSON *memory)
{
    emit_t *e = eg_xcalloc(1, sizeof(*e));
    const char *id = eg__lib_jstr(memory, "id");

    snprintf(e->type, sizeof(e->type), "%s", type);
    snprintf(e->id, sizeof(e->id), "%s", id ? id : "?");
    if (eg_event_emit(ws, type, memory, on_emitted, e) != 0) {
        eg_log_warn("library: %s of %s could not be emitted (store unavailable)", type, e->id);
        free(e);
    }
}
