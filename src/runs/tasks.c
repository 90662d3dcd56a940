/* Agent task records: creation (record, event, queued run), reads, lists and the archive.
 *
 * Keys, all in the workspace's slot (docs/keyspace.md, "Fency agent tasks"):
 *   eg:{w:<ws>}:fy:ata            hash  id -> AgentTask JSON (Fency's shape, what the API shows)
 *   eg:{w:<ws>}:fy:ata:z          zset  "<created µs>:<id>", every score 0 (engram/zpage.h)
 *   eg:{w:<ws>}:fy:cnv:<cnv>:ata  zset  the same members for the tasks of one conversation
 *   eg:{w:<ws>}:fy:ata:<id>:r     hash  spec (what the run needs: request, session, stream,
 *                                       query), pub / ev (a terminal message and event not yet
 *                                       delivered: set by the finishing script, cleared after)
 *   eg:{w:<ws>}:fy:ata:<id>:p     list  progress entries, the latest version of each item
 *
 * The task is created before its run is queued and its created event emitted, so the event
 * always comes first; a queue push that fails finishes the task FAILED at once. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engram/error.h"
#include "engram/events.h"
#include "engram/log.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "runs/tasks_int.h"

char *eg__task_key(eg_arena_t *a, const char *ws, const char *suffix_fmt, ...)
{
    char suffix[256];
    va_list ap;

    va_start(ap, suffix_fmt);
    vsnprintf(suffix, sizeof(suffix), suffix_fmt, ap);
    va_end(ap);
    return eg_key(a, "w", ws, "fy:%s", suffix);
}

static bool ws_valid(const char *ws)
{
    size_t n = ws != NULL ? strlen(ws) : 0;

    return n > 0 && n < 64;
}

/* ---- create ------------------------------------------------------------------------------ */

/* KEYS task hash, zset, run hash, conversation hash, conversation task zset; ARGV id, JSON,
 * member, spec, conversation id ('' = none). Returns 1, or 'cnv' for an unknown conversation. */
static eg_script_t s_create = {
    .name = "task_create",
    .source = "if ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[4], ARGV[5]) == 0 then\n"
              "  return 'cnv'\n"
              "end\n"
              "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
              "redis.call('ZADD', KEYS[2], 0, ARGV[3])\n"
              "redis.call('HSET', KEYS[3], 'spec', ARGV[4])\n"
              "if ARGV[5] ~= '' then redis.call('ZADD', KEYS[5], 0, ARGV[3]) end\n"
              "return 1\n",
};

typedef struct create_op_s {
    eg_arena_t arena;
    char ws[64], id[EG_TASK_ID_MAX];
    cJSON *task;
    void (*cb)(void *, int, const cJSON *);
    void *udata;
    int err;
} create_op_t;

static void create_end(create_op_t *op, int err)
{
    op->cb(op->udata, err, err == 0 ? op->task : NULL);
    cJSON_Delete(op->task);
    eg_arena_destroy(&op->arena);
    free(op);
}

static void on_pushed(void *udata, int err, bool queued)
{
    create_op_t *op = udata;

    (void)queued;
    if (err != 0) {
        /* The task exists and its run could not be queued: it can never finish otherwise. */
        eg_log_error("agent task %s: queueing its run failed: %s", op->id, eg_strerror(err));
        eg__task_abandon(op->ws, op->id, "the task could not be queued; try again");
    }
    create_end(op, err);
}

static void on_created_event(void *udata, int err, const char *event_id)
{
    create_op_t *op = udata;
    char payload[160];
    int rc;

    (void)event_id;
    if (err != 0)
        eg_log_warn("agent task %s: agent.task.created not stored: %s", op->id, eg_strerror(err));
    snprintf(payload, sizeof(payload), "%s %s", op->ws, op->id);
    rc = eg_queue_push(EG_TASK_QUEUE, op->id, payload, strlen(payload), 0, on_pushed, op);
    if (rc != 0)
        on_pushed(op, rc, false);
}

static void on_create_script(void *udata, int err, redisReply *reply)
{
    create_op_t *op = udata;
    int rc;

    if (err == 0 && reply->type == REDIS_REPLY_STRING && strcmp(reply->str, "cnv") == 0) {
        create_end(op, EG_ENOTFOUND);
        return;
    }
    if (err == 0 && reply->type != REDIS_REPLY_INTEGER) {
        eg_log_error("task_create: %s", reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
        err = EG_EREDIS;
    }
    if (err != 0) {
        create_end(op, err);
        return;
    }
    rc = eg_event_emit(op->ws, "agent.task.created", op->task, on_created_event, op);
    if (rc != 0)
        on_created_event(op, rc, NULL);
}

cJSON *eg__task_json_new(const char *id, int64_t created_us, eg_task_type_t type,
                         const cJSON *metadata)
{
    char t[EG_TASK_TIME_MAX];
    cJSON *o = cJSON_CreateObject();

    eg_time_iso_us(created_us, t);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "createdAt", t);
    cJSON_AddStringToObject(o, "updatedAt", t);
    cJSON_AddStringToObject(o, "status", "IN_PROGRESS");
    cJSON_AddStringToObject(o, "taskType", eg_task_type_name(type));
    cJSON_AddNullToObject(o, "succeededAt");
    cJSON_AddNullToObject(o, "successResponse");
    cJSON_AddNullToObject(o, "failedAt");
    cJSON_AddNullToObject(o, "failureResponse");
    cJSON_AddItemToObject(o, "metadata",
                          cJSON_IsObject(metadata) ? cJSON_Duplicate(metadata, true)
                                                   : cJSON_CreateObject());
    return o;
}

int eg_task_create(const eg_task_spec_t *spec, void (*cb)(void *, int, const cJSON *task),
                   void *udata)
{
    const cJSON *cnv = NULL, *query = NULL, *gr;
    eg_lib_scope_t scope;
    const char *why = NULL;
    char member[EG_ZPAGE_MEMBER_MAX];
    char *json = NULL, *sjson = NULL;
    create_op_t *op;
    cJSON *s;
    int64_t now;
    int rc;

    if (spec == NULL || cb == NULL || !ws_valid(spec->ws_id) ||
        (unsigned)spec->type >= EG_TASK__COUNT || !cJSON_IsObject(spec->request) ||
        (spec->session != NULL && !cJSON_IsObject(spec->session)))
        return EG_EINVAL;
    if (spec->session != NULL) {
        cnv = cJSON_GetObjectItemCaseSensitive(spec->session, "conversationId");
        if (cJSON_IsNull(cnv))
            cnv = NULL;
        if (cnv != NULL && !(cJSON_IsString(cnv) && eg_hexid_valid(cnv->valuestring, "cnv")))
            return EG_EINVAL;
    }
    op = eg_xcalloc(1, sizeof(*op));
    eg_arena_init(&op->arena);
    /* Guard rails that do not parse are refused now, not found out by the run. */
    gr = spec->session ? cJSON_GetObjectItemCaseSensitive(spec->session, "guardRails") : NULL;
    if (gr != NULL && !cJSON_IsNull(gr) && eg_lib_scope_parse(&op->arena, gr, &scope, &why) != 0) {
        eg_log_info("agent task refused: guardRails: %s", why ? why : "invalid");
        eg_arena_destroy(&op->arena);
        free(op);
        return EG_EINVAL;
    }
    op->cb = cb;
    op->udata = udata;
    snprintf(op->ws, sizeof(op->ws), "%s", spec->ws_id);
    eg_hexid_new("ata", op->id, EG_TASK_ID_MAX);
    now = eg_now_us();
    op->task = eg__task_json_new(
        op->id, now, spec->type,
        spec->session ? cJSON_GetObjectItemCaseSensitive(spec->session, "metadata") : NULL);

    s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", eg_task_type_name(spec->type));
    cJSON_AddItemToObject(s, "request", cJSON_Duplicate(spec->request, true));
    cJSON_AddItemToObject(
        s, "session", spec->session ? cJSON_Duplicate(spec->session, true) : cJSON_CreateObject());
    if (spec->stream_id != NULL)
        cJSON_AddStringToObject(s, "stream", spec->stream_id);
    query = cJSON_GetObjectItemCaseSensitive(spec->request, "query");
    if (cJSON_IsString(query))
        cJSON_AddStringToObject(s, "query", query->valuestring);
    else if (spec->type == EG_TASK_MEMORY_CHAT)
        cJSON_AddStringToObject(
            s, "query",
            eg__trun_last_user(cJSON_GetObjectItemCaseSensitive(spec->request, "messages")));
    json = cJSON_PrintUnformatted(op->task);
    sjson = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    eg_zpage_member(now, op->id, member, sizeof(member));
    const char *cnvid = cnv ? cnv->valuestring : "";
    const char *keys_args[] = {
        eg__task_key(&op->arena, op->ws, "ata"),
        eg__task_key(&op->arena, op->ws, "ata:z"),
        eg__task_key(&op->arena, op->ws, "ata:%s:r", op->id),
        eg__task_key(&op->arena, op->ws, "cnv"),
        eg__task_key(&op->arena, op->ws, "cnv:%s:ata", cnv ? cnvid : "-"),
        op->id,
        json,
        member,
        sjson,
        cnvid,
    };
    rc = eg_store_eval(&s_create, on_create_script, op, 5, (int)EG_ARRAY_SIZE(keys_args), keys_args,
                       NULL);
    free(json);
    free(sjson);
    if (rc != 0) {
        cJSON_Delete(op->task);
        eg_arena_destroy(&op->arena);
        free(op);
    }
    return rc;
}

/* ---- get and list ------------------------------------------------------------------------ */

typedef struct get_op_s {
    void (*cb)(void *, int, const cJSON *);
    void *udata;
} get_op_t;

static void on_get(void *udata, int err, redisReply *reply)
{
    get_op_t *op = udata;
    cJSON *task = NULL;

    if (err == 0 && reply->type == REDIS_REPLY_NIL)
        err = EG_ENOTFOUND;
    else if (err == 0 && reply->type != REDIS_REPLY_STRING)
        err = EG_EREDIS;
    if (err == 0 && (task = cJSON_Parse(reply->str)) == NULL)
        err = EG_EINTERNAL;
    op->cb(op->udata, err, task);
    cJSON_Delete(task);
    free(op);
}

int eg_task_get(const char *ws, const char *id, void (*cb)(void *, int, const cJSON *task),
                void *udata)
{
    eg_arena_t a;
    get_op_t *op;
    int rc;

    if (!ws_valid(ws) || cb == NULL)
        return EG_EINVAL;
    if (!eg_hexid_valid(id, "ata"))
        return EG_ENOTFOUND;
    eg_arena_init(&a);
    op = eg_xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->udata = udata;
    rc = eg_store_command(on_get, op, "HGET %s %s", eg__task_key(&a, ws, "ata"), id);
    eg_arena_destroy(&a);
    if (rc != 0)
        free(op);
    return rc;
}

int eg_task_list(const char *ws, const char *conversation_id, eg_zpage_req_t *q, eg_zpage_fn cb,
                 void *udata)
{
    eg_arena_t a;
    int rc;

    if (!ws_valid(ws) || q == NULL)
        return EG_EINVAL;
    if (conversation_id != NULL && !eg_hexid_valid(conversation_id, "cnv"))
        return EG_EINVAL;
    eg_arena_init(&a);
    q->hkey = eg__task_key(&a, ws, "ata");
    q->zkey = conversation_id ? eg__task_key(&a, ws, "cnv:%s:ata", conversation_id)
                              : eg__task_key(&a, ws, "ata:z");
    rc = eg_zpage(q, cb, udata); /* copies what it needs before returning */
    q->hkey = q->zkey = NULL;
    eg_arena_destroy(&a);
    return rc;
}

/* ---- archive ----------------------------------------------------------------------------- */

/* KEYS task hash, run hash, archive; ARGV id. Returns false (unknown) or {spec, entries}. */
static eg_script_t s_archive = {
    .name = "task_archive",
    .source = "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end\n"
              "return {redis.call('HGET', KEYS[2], 'spec') or '', "
              "redis.call('LRANGE', KEYS[3], 0, -1)}\n",
};

typedef struct archive_op_s {
    void (*cb)(void *, int, const char *, const char *);
    void *udata;
} archive_op_t;

static void on_archive(void *udata, int err, redisReply *reply)
{
    archive_op_t *op = udata;
    cJSON *spec = NULL;
    const cJSON *q;
    char *out = NULL;
    size_t len = 2, pos;

    if (err == 0 && reply->type == REDIS_REPLY_NIL)
        err = EG_ENOTFOUND;
    else if (err == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
                          reply->element[1]->type != REDIS_REPLY_ARRAY))
        err = EG_EREDIS;
    if (err != 0) {
        op->cb(op->udata, err, NULL, NULL);
        free(op);
        return;
    }
    redisReply *entries = reply->element[1];
    for (size_t i = 0; i < entries->elements; i++)
        len += entries->element[i]->len + 1;
    out = eg_xmalloc(len + 1);
    out[0] = '[';
    pos = 1;
    for (size_t i = 0; i < entries->elements; i++) {
        if (i > 0)
            out[pos++] = ',';
        memcpy(out + pos, entries->element[i]->str, entries->element[i]->len);
        pos += entries->element[i]->len;
    }
    out[pos++] = ']';
    out[pos] = '\0';
    if (reply->element[0]->type == REDIS_REPLY_STRING)
        spec = cJSON_Parse(reply->element[0]->str);
    q = cJSON_GetObjectItemCaseSensitive(spec, "query");
    op->cb(op->udata, 0, out, cJSON_IsString(q) ? q->valuestring : NULL);
    cJSON_Delete(spec);
    free(out);
    free(op);
}

int eg_task_archive(const char *ws, const char *id,
                    void (*cb)(void *, int, const char *json, const char *query), void *udata)
{
    eg_arena_t a;
    archive_op_t *op;
    int rc;

    if (!ws_valid(ws) || cb == NULL)
        return EG_EINVAL;
    if (!eg_hexid_valid(id, "ata"))
        return EG_ENOTFOUND;
    eg_arena_init(&a);
    op = eg_xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->udata = udata;
    const char *argv[] = {eg__task_key(&a, ws, "ata"), eg__task_key(&a, ws, "ata:%s:r", id),
                          eg__task_key(&a, ws, "ata:%s:p", id), id};
    rc = eg_store_eval(&s_archive, on_archive, op, 3, 4, argv, NULL);
    eg_arena_destroy(&a);
    if (rc != 0)
        free(op);
    return rc;
}
