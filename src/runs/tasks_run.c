/* Agent task runs: the "agent_tasks" queue worker, progress delivery and the one terminal step.
 *
 * Crash safety. The run is a queued job (at least once): a run cut short by a crash is delivered
 * again to some process after the visibility timeout and starts over (its progress archive is
 * cleared; progress items keep their ids, and clients upsert items by id, so a replayed item only
 * replaces the earlier one). Finishing is one script that moves the task from IN_PROGRESS to
 * SUCCEEDED or FAILED only if it is still IN_PROGRESS, appends the terminal entry to the archive
 * and leaves the terminal stream message and the event to deliver in the run hash (pub, ev); the
 * winner delivers them and clears the fields. A job that finds the task finished with those
 * fields still set (the process died while delivering) delivers them; one that finds it finished
 * without them just acknowledges. So a task gets one terminal state and one terminal message
 * (a second one only if the process dies between appending it and clearing the field). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/events.h"
#include "engram/log.h"
#include "engram/pstream.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "runs/tasks_int.h"

#define TASK_MAX_ATTEMPTS 5 /* the last one finishes the task FAILED without running it */

/* ---- scripts ----------------------------------------------------------------------------- */

/* KEYS task hash, run hash; ARGV id. {task|false, spec|false, pub|false, ev|false}. */
static eg_script_t s_load = {
    .name = "task_load",
    .source = "local t = redis.call('HGET', KEYS[1], ARGV[1])\n"
              "local r = redis.call('HMGET', KEYS[2], 'spec', 'pub', 'ev')\n"
              "return {t, r[1], r[2], r[3]}\n",
};

/* KEYS task hash, run hash, archive; ARGV id, new task JSON, archive entry, stream message ('' =
 * none). 1 when this call finished the task, 0 when it was finished (or deleted) already. */
static eg_script_t s_finish = {
    .name = "task_finish",
    .source = "local t = redis.call('HGET', KEYS[1], ARGV[1])\n"
              "if not t or not string.find(t, '\"status\":\"IN_PROGRESS\"', 1, true) then\n"
              "  return 0\n"
              "end\n"
              "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
              "redis.call('RPUSH', KEYS[3], ARGV[3])\n"
              "redis.call('HSET', KEYS[2], 'ev', '1')\n"
              "if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'pub', ARGV[4]) end\n"
              "return 1\n",
};

/* ---- the worker -------------------------------------------------------------------------- */

static struct {
    eg_queue_t *q;
} s_w;

/* Delivery of a finished task's terminal message and event (after the finish script, or found
 * pending by a later job). */
typedef struct deliver_s {
    char ws[64], id[EG_TASK_ID_MAX], stream[48];
    char *pub;   /* stream message JSON, NULL = none */
    cJSON *task; /* the finished task (event entity) */
    bool ev;
    eg_job_t *job; /* NULL for an abandoned task */
    int err;
} deliver_t;

static void deliver_end(deliver_t *d)
{
    if (d->job != NULL) {
        if (d->err != 0)
            eg_job_retry(d->job, 0, eg_strerror(d->err));
        else
            eg_job_done(d->job, 0);
    }
    free(d->pub);
    cJSON_Delete(d->task);
    free(d);
}

static void on_cleared(void *udata, int err, redisReply *reply)
{
    deliver_t *d = udata;

    (void)reply;
    if (err != 0)
        d->err = err;
    deliver_end(d);
}

static void deliver_clear(deliver_t *d)
{
    eg_arena_t a;
    int rc;

    eg_arena_init(&a);
    rc = eg_store_command(on_cleared, d, "HDEL %s pub ev",
                          eg__task_key(&a, d->ws, "ata:%s:r", d->id));
    eg_arena_destroy(&a);
    if (rc != 0) {
        d->err = rc;
        deliver_end(d);
    }
}

static void on_updated_event(void *udata, int err, const char *event_id)
{
    deliver_t *d = udata;

    (void)event_id;
    if (err != 0) {
        eg_log_warn("agent task %s: agent.task.updated not stored: %s", d->id, eg_strerror(err));
        d->err = err;
        deliver_end(d);
        return;
    }
    deliver_clear(d);
}

static void deliver_event(deliver_t *d)
{
    int rc;

    if (!d->ev || d->task == NULL) {
        deliver_clear(d);
        return;
    }
    rc = eg_event_emit(d->ws, "agent.task.updated", d->task, on_updated_event, d);
    if (rc != 0)
        on_updated_event(d, rc, NULL);
}

static void on_terminal_appended(void *udata, int err)
{
    deliver_t *d = udata;

    /* An expired stream (EG_ENOTFOUND) has nobody to tell; the task is stored either way. */
    if (err != 0 && err != EG_ENOTFOUND) {
        d->err = err;
        deliver_end(d);
        return;
    }
    deliver_event(d);
}

static void deliver(deliver_t *d)
{
    cJSON *msg;
    int rc;

    if (d->pub == NULL || d->stream[0] == '\0') {
        deliver_event(d);
        return;
    }
    msg = cJSON_Parse(d->pub);
    rc = msg ? eg_pstream_append(d->stream, msg, on_terminal_appended, d) : EG_EINVAL;
    cJSON_Delete(msg);
    if (rc != 0)
        on_terminal_appended(d, rc == EG_EINVAL ? 0 : rc);
}

/* ---- finishing --------------------------------------------------------------------------- */

/* Finishing one task: load it, write the terminal state, deliver. */
typedef struct fin_s {
    eg_arena_t arena;
    char ws[64], id[EG_TASK_ID_MAX], stream[48];
    char item_id[64], item_created[EG_TASK_TIME_MAX];
    eg_task_type_t type;
    cJSON *event;   /* Completed / Error inner data */
    cJSON *success; /* successResponse, or NULL */
    char *error;    /* failureResponse message, or NULL */
    cJSON *task;    /* the finished task */
    char *pub;      /* stream message JSON */
    eg_job_t *job;
    bool no_run; /* finished without a run: stream and type come from the stored spec */
    void (*done)(void *, int);
    void *udata;
} fin_t;

static void fin_end(fin_t *f, int err)
{
    if (f->done)
        f->done(f->udata, err);
    else if (f->job != NULL)
        err != 0 ? eg_job_retry(f->job, 0, eg_strerror(err)) : eg_job_done(f->job, 0);
    cJSON_Delete(f->event);
    cJSON_Delete(f->success);
    cJSON_Delete(f->task);
    free(f->error);
    free(f->pub);
    eg_arena_destroy(&f->arena);
    free(f);
}

static void on_finished(void *udata, int err, redisReply *reply)
{
    fin_t *f = udata;
    deliver_t *d;

    if (err == 0 && reply->type != REDIS_REPLY_INTEGER)
        err = EG_EREDIS;
    if (err != 0) {
        fin_end(f, err);
        return;
    }
    if (reply->integer == 0) { /* finished by someone else (or deleted) */
        fin_end(f, 0);
        return;
    }
    d = eg_xcalloc(1, sizeof(*d));
    snprintf(d->ws, sizeof(d->ws), "%s", f->ws);
    snprintf(d->id, sizeof(d->id), "%s", f->id);
    snprintf(d->stream, sizeof(d->stream), "%s", f->stream);
    d->pub = f->pub;
    f->pub = NULL;
    d->task = f->task;
    f->task = NULL;
    d->ev = true;
    if (f->done == NULL) {
        d->job = f->job; /* the delivery finishes the job */
        f->job = NULL;
    }
    fin_end(f, 0);
    deliver(d);
}

/* The progress entry of item item_id with data (a JSON string of the inner event). */
/* A progress entry: the AGENT_TASK_PROGRESS_ITEM_UPDATED message of fency.md section 5, kept in
 * the archive as is (the SDK's archive parser wants every field, streamId too: "" when the task
 * has no stream) and appended to the stream (which sets streamId again). */
static cJSON *entry_new(const char *task_id, const char *stream_id, const char *item_id,
                        const char *created, const cJSON *data)
{
    char now[EG_TASK_TIME_MAX];
    cJSON *e = cJSON_CreateObject();
    char *s = cJSON_PrintUnformatted(data);

    eg_time_iso_us(eg_now_us(), now);
    cJSON_AddStringToObject(e, "type", "AGENT_TASK_PROGRESS_ITEM_UPDATED");
    cJSON_AddStringToObject(e, "streamId", stream_id);
    cJSON_AddStringToObject(e, "agentTaskId", task_id);
    cJSON_AddStringToObject(e, "progressItemId", item_id);
    cJSON_AddStringToObject(e, "timestamp", now);
    cJSON_AddStringToObject(e, "createdAt", created[0] ? created : now);
    cJSON_AddStringToObject(e, "data", s ? s : "{}");
    free(s);
    return e;
}

static void fin_write(fin_t *f, const char *task_json)
{
    char now[EG_TASK_TIME_MAX];
    cJSON *t = cJSON_Parse(task_json), *e;
    char *tj, *ej;
    int rc;

    if (t == NULL) {
        fin_end(f, EG_EINTERNAL);
        return;
    }
    eg_time_iso_us(eg_now_us(), now);
    cJSON_ReplaceItemInObjectCaseSensitive(t, "updatedAt", cJSON_CreateString(now));
    cJSON_ReplaceItemInObjectCaseSensitive(
        t, "status", cJSON_CreateString(f->error == NULL ? "SUCCEEDED" : "FAILED"));
    if (f->error == NULL) {
        cJSON_ReplaceItemInObjectCaseSensitive(t, "succeededAt", cJSON_CreateString(now));
        cJSON_ReplaceItemInObjectCaseSensitive(t, "successResponse", f->success);
        f->success = NULL;
    } else {
        cJSON *fr = cJSON_CreateObject();

        cJSON_AddStringToObject(fr, "message", f->error);
        cJSON_ReplaceItemInObjectCaseSensitive(t, "failedAt", cJSON_CreateString(now));
        cJSON_ReplaceItemInObjectCaseSensitive(t, "failureResponse", fr);
    }
    f->task = t;
    if (f->item_id[0] == '\0')
        snprintf(f->item_id, sizeof(f->item_id), "%s-end", f->id);
    e = entry_new(f->id, f->stream, f->item_id, f->item_created, f->event);
    ej = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    tj = cJSON_PrintUnformatted(t);
    f->pub = f->stream[0] ? eg_xstrdup(ej) : NULL;
    const char *argv[] = {eg__task_key(&f->arena, f->ws, "ata"),
                          eg__task_key(&f->arena, f->ws, "ata:%s:r", f->id),
                          eg__task_key(&f->arena, f->ws, "ata:%s:p", f->id),
                          f->id,
                          tj,
                          ej,
                          f->pub ? f->pub : ""};
    rc = eg_store_eval(&s_finish, on_finished, f, 3, 7, argv, NULL);
    free(tj);
    free(ej);
    if (rc != 0)
        fin_end(f, rc);
}

static void on_fin_loaded(void *udata, int err, redisReply *reply)
{
    fin_t *f = udata;

    if (err == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4))
        err = EG_EREDIS;
    if (err != 0) {
        fin_end(f, err);
        return;
    }
    if (reply->element[0]->type != REDIS_REPLY_STRING) { /* deleted */
        fin_end(f, 0);
        return;
    }
    if (f->no_run && reply->element[1]->type == REDIS_REPLY_STRING) {
        /* A task finished without a run: its stream and type come from the stored spec. */
        cJSON *spec = cJSON_Parse(reply->element[1]->str);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(spec, "stream");
        eg_task_type_t type;

        if (cJSON_IsString(st))
            snprintf(f->stream, sizeof(f->stream), "%s", st->valuestring);
        if (eg_task_type_parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(spec, "type")),
                               &type) == 0)
            cJSON_ReplaceItemInObjectCaseSensitive(
                f->event, "taskType", cJSON_CreateString(eg_task_type_event_name(type)));
        cJSON_Delete(spec);
    }
    fin_write(f, reply->element[0]->str);
}

static void fin_start(fin_t *f)
{
    const char *argv[] = {eg__task_key(&f->arena, f->ws, "ata"),
                          eg__task_key(&f->arena, f->ws, "ata:%s:r", f->id), f->id};
    int rc = eg_store_eval(&s_load, on_fin_loaded, f, 2, 3, argv, NULL);

    if (rc != 0)
        fin_end(f, rc);
}

static cJSON *error_event(eg_task_type_t type, const char *message)
{
    cJSON *e = cJSON_CreateObject();

    cJSON_AddStringToObject(e, "taskType", eg_task_type_event_name(type));
    cJSON_AddStringToObject(e, "eventType", "Error");
    cJSON_AddStringToObject(e, "message", message);
    return e;
}

static void on_abandoned(void *udata, int err)
{
    char *id = udata;

    if (err != 0)
        eg_log_error("agent task %s: could not be marked failed: %s", id, eg_strerror(err));
    free(id);
}

/* Finish a task FAILED without running it; job (or NULL) is finished with it. */
static void fail_without_run(const char *ws, const char *id, const char *message, eg_job_t *job)
{
    fin_t *f = eg_xcalloc(1, sizeof(*f));
    eg_task_type_t type = EG_TASK_MEMORY_CHAT; /* replaced from the spec */

    eg_arena_init(&f->arena);
    snprintf(f->ws, sizeof(f->ws), "%s", ws);
    snprintf(f->id, sizeof(f->id), "%s", id);
    f->type = type;
    f->no_run = true;
    f->error = eg_xstrdup(message);
    f->event = error_event(type, message);
    f->job = job;
    if (job == NULL) {
        f->done = on_abandoned;
        f->udata = eg_xstrdup(id);
    }
    fin_start(f);
}

void eg__task_abandon(const char *ws, const char *id, const char *message)
{
    fail_without_run(ws, id, message, NULL);
}

/* ---- runs -------------------------------------------------------------------------------- */

/* One pending progress message: the latest version of an item not yet sent. */
typedef struct pmsg_s {
    struct pmsg_s *next;
    int item;
    cJSON *entry;
} pmsg_t;

typedef struct run_s {
    eg__trun_t r;
    eg_job_t *job;
    cJSON *task; /* as loaded */
    int nitems;
    char created[EG_TASK_ITEMS_MAX][EG_TASK_TIME_MAX];
    long pos[EG_TASK_ITEMS_MAX]; /* index in the archive list, -1 = not written yet */
    pmsg_t *head, *tail;
    int sending; /* operations of the message in flight */
    long sent_pos;
    int sent_item;
    bool ended;
    const char *akey; /* the archive's key */
    fin_t *fin;       /* the terminal step waiting for the sender to drain */
} run_t;

static void run_free(run_t *run)
{
    pmsg_t *m;

    while ((m = run->head) != NULL) {
        run->head = m->next;
        cJSON_Delete(m->entry);
        free(m);
    }
    cJSON_Delete(run->task);
    cJSON_Delete(run->r.spec);
    eg_arena_destroy(&run->r.arena);
    free(run);
}

static void send_next(run_t *run);

static void on_sent_part(run_t *run)
{
    if (--run->sending > 0)
        return;
    send_next(run);
}

static void on_progress_appended(void *udata, int err)
{
    run_t *run = udata;

    if (err != 0 && err != EG_ENOTFOUND)
        eg_log_warn("agent task %s: progress not appended to its stream: %s", run->r.id,
                    eg_strerror(err));
    on_sent_part(run);
}

static void on_archived(void *udata, int err, redisReply *reply)
{
    run_t *run = udata;

    if (err == 0 && reply->type == REDIS_REPLY_INTEGER && run->pos[run->sent_item] < 0)
        run->pos[run->sent_item] = (long)reply->integer - 1;
    else if (err != 0 || reply->type == REDIS_REPLY_ERROR)
        eg_log_warn("agent task %s: progress not archived: %s", run->r.id,
                    err ? eg_strerror(err) : reply->str);
    on_sent_part(run);
}

static void finish_now(run_t *run)
{
    fin_t *f = run->fin;

    run->fin = NULL;
    f->job = run->job;
    run->job = NULL;
    run_free(run);
    fin_start(f);
}

static void send_next(run_t *run)
{
    pmsg_t *m = run->head;
    char *json;
    int rc;

    if (m == NULL) {
        if (run->fin != NULL)
            finish_now(run);
        return;
    }
    run->head = m->next;
    if (run->head == NULL)
        run->tail = NULL;
    json = cJSON_PrintUnformatted(m->entry);
    run->sending = 2;
    run->sent_item = m->item;
    if (run->akey == NULL) /* once: the arena lives as long as the run */
        run->akey = eg__task_key(&run->r.arena, run->r.ws, "ata:%s:p", run->r.id);
    if (run->pos[m->item] < 0)
        rc = eg_store_command(on_archived, run, "RPUSH %s %s", run->akey, json);
    else
        rc = eg_store_command(on_archived, run, "LSET %s %ld %s", run->akey, run->pos[m->item],
                              json);
    if (rc != 0)
        run->sending--;
    if (run->r.stream[0] == '\0' ||
        eg_pstream_append(run->r.stream, m->entry, on_progress_appended, run) != 0)
        run->sending--;
    free(json);
    cJSON_Delete(m->entry);
    free(m);
    if (run->sending == 0)
        send_next(run); /* nothing went out; bounded by the queue length */
}

int eg__trun_item(eg__trun_t *r)
{
    run_t *run = (run_t *)r;

    if (run->nitems >= EG_TASK_ITEMS_MAX)
        return EG_TASK_ITEMS_MAX - 1; /* later steps update the last item */
    eg_time_iso_us(eg_now_us(), run->created[run->nitems]);
    run->pos[run->nitems] = -1;
    return run->nitems++;
}

static void item_id(const run_t *run, int item, char *out, size_t cap)
{
    snprintf(out, cap, "%s-%d", run->r.id, item + 1);
}

static cJSON *inner(const eg__trun_t *r, const char *event_type, cJSON *data)
{
    cJSON *e = cJSON_CreateObject(), *c;

    cJSON_AddStringToObject(e, "taskType", eg_task_type_event_name(r->type));
    cJSON_AddStringToObject(e, "eventType", event_type);
    if (data != NULL) {
        while ((c = data->child) != NULL)
            cJSON_AddItemToObject(e, c->string, cJSON_DetachItemViaPointer(data, c));
        cJSON_Delete(data);
    }
    return e;
}

void eg__trun_progress(eg__trun_t *r, int item, const char *event_type, cJSON *data)
{
    run_t *run = (run_t *)r;
    char iid[64];
    cJSON *ev = inner(r, event_type, data);
    pmsg_t *m;

    if (run->ended || item < 0 || item >= run->nitems) {
        cJSON_Delete(ev);
        return;
    }
    item_id(run, item, iid, sizeof(iid));
    for (m = run->head; m != NULL; m = m->next) {
        if (m->item == item) { /* a newer version of an item still waiting replaces it */
            cJSON_Delete(m->entry);
            m->entry = entry_new(r->id, r->stream, iid, run->created[item], ev);
            cJSON_Delete(ev);
            return;
        }
    }
    m = eg_xcalloc(1, sizeof(*m));
    m->item = item;
    m->entry = entry_new(r->id, r->stream, iid, run->created[item], ev);
    cJSON_Delete(ev);
    if (run->tail)
        run->tail->next = m;
    else
        run->head = m;
    run->tail = m;
    if (run->sending == 0)
        send_next(run);
}

static void run_end(run_t *run, cJSON *event, cJSON *success, const char *error)
{
    fin_t *f;
    int item;

    if (run->ended) {
        cJSON_Delete(event);
        cJSON_Delete(success);
        return;
    }
    run->ended = true;
    f = eg_xcalloc(1, sizeof(*f));
    eg_arena_init(&f->arena);
    snprintf(f->ws, sizeof(f->ws), "%s", run->r.ws);
    snprintf(f->id, sizeof(f->id), "%s", run->r.id);
    snprintf(f->stream, sizeof(f->stream), "%s", run->r.stream);
    f->type = run->r.type;
    f->event = event;
    f->success = success;
    f->error = error ? eg_xstrdup(error) : NULL;
    item = eg__trun_item(&run->r);
    item_id(run, item, f->item_id, sizeof(f->item_id));
    snprintf(f->item_created, sizeof(f->item_created), "%s", run->created[item]);
    run->fin = f;
    if (run->sending == 0 && run->head == NULL)
        finish_now(run);
}

void eg__trun_complete(eg__trun_t *r, cJSON *completed, cJSON *success)
{
    run_end((run_t *)r, inner(r, "Completed", completed), success, NULL);
}

void eg__trun_fail(eg__trun_t *r, const char *message)
{
    cJSON *data = cJSON_CreateObject();

    cJSON_AddStringToObject(data, "message", message);
    run_end((run_t *)r, inner(r, "Error", data), NULL, message);
}

/* ---- jobs -------------------------------------------------------------------------------- */

static void start_run(eg_job_t *job, const char *ws, const char *id, const char *task_json,
                      const char *spec_json)
{
    run_t *run = eg_xcalloc(1, sizeof(*run));
    eg__trun_t *r = &run->r;
    const cJSON *gr, *lang, *st;
    const char *why = NULL;
    eg_task_type_t type;

    eg_arena_init(&r->arena);
    run->job = job;
    snprintf(r->ws, sizeof(r->ws), "%s", ws);
    snprintf(r->id, sizeof(r->id), "%s", id);
    run->task = cJSON_Parse(task_json);
    r->spec = cJSON_Parse(spec_json);
    r->request = cJSON_GetObjectItemCaseSensitive(r->spec, "request");
    st = cJSON_GetObjectItemCaseSensitive(r->spec, "stream");
    if (cJSON_IsString(st))
        snprintf(r->stream, sizeof(r->stream), "%s", st->valuestring);
    if (eg_task_type_parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->spec, "type")),
                           &type) != 0 ||
        !cJSON_IsObject(r->request)) {
        r->type = EG_TASK_MEMORY_CHAT;
        eg__trun_fail(r, "the task's stored request is unreadable");
        return;
    }
    r->type = type;
    lang = cJSON_GetObjectItemCaseSensitive(r->request, "language");
    r->language = cJSON_IsString(lang) && strcmp(lang->valuestring, "no") == 0 ? "no" : "en";
    gr = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r->spec, "session"),
                                          "guardRails");
    if (cJSON_IsNull(gr))
        gr = NULL;
    if (eg_lib_scope_parse(&r->arena, gr, &r->scope, &why) != 0) {
        /* Checked at creation; a scope that stopped parsing must not widen to everything. */
        eg__trun_fail(r, why ? why : "the task's guard rails are invalid");
        return;
    }
    r->llm = eg_llm_for(EG_LLM_OP_AGENT);
    switch (type) {
    case EG_TASK_STREAMING_CHAT_COMPLETION:
        eg__task_run_streaming(r);
        break;
    case EG_TASK_STRUCTURED_CHAT_COMPLETION:
        eg__task_run_structured(r);
        break;
    case EG_TASK_MEMORY_CHAT:
        eg__task_run_memory_chat(r);
        break;
    case EG_TASK_EXPLORE_MEMORIES:
        eg__task_run_explore(r);
        break;
    case EG_TASK_MEMORY_SEARCH:
    default:
        eg__task_run_search(r);
        break;
    }
}

typedef struct job_op_s {
    eg_job_t *job;
    char ws[64], id[EG_TASK_ID_MAX];
    char *task, *spec; /* kept from the load until the archive is cleared */
} job_op_t;

static void job_op_free(job_op_t *op)
{
    free(op->task);
    free(op->spec);
    free(op);
}

static void on_archive_cleared(void *udata, int err, redisReply *reply)
{
    job_op_t *op = udata;

    (void)reply;
    if (err != 0) {
        eg_job_retry(op->job, 0, eg_strerror(err));
        job_op_free(op);
        return;
    }
    start_run(op->job, op->ws, op->id, op->task, op->spec);
    job_op_free(op);
}

static void on_job_loaded(void *udata, int err, redisReply *reply)
{
    job_op_t *op = udata;
    redisReply *t, *spec, *pub, *ev;
    eg_arena_t a;
    int rc;

    if (err == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4))
        err = EG_EREDIS;
    if (err != 0) {
        eg_job_retry(op->job, 0, eg_strerror(err));
        job_op_free(op);
        return;
    }
    t = reply->element[0];
    spec = reply->element[1];
    pub = reply->element[2];
    ev = reply->element[3];
    if (t->type != REDIS_REPLY_STRING) { /* the task is gone */
        eg_job_done(op->job, 0);
        job_op_free(op);
        return;
    }
    if (strstr(t->str, "\"status\":\"IN_PROGRESS\"") == NULL) {
        /* Finished: deliver what the finishing process may not have delivered. */
        if (pub->type == REDIS_REPLY_STRING || ev->type == REDIS_REPLY_STRING) {
            deliver_t *d = eg_xcalloc(1, sizeof(*d));
            cJSON *s = spec->type == REDIS_REPLY_STRING ? cJSON_Parse(spec->str) : NULL;
            const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "stream"));

            snprintf(d->ws, sizeof(d->ws), "%s", op->ws);
            snprintf(d->id, sizeof(d->id), "%s", op->id);
            snprintf(d->stream, sizeof(d->stream), "%s", st ? st : "");
            cJSON_Delete(s);
            d->pub = pub->type == REDIS_REPLY_STRING ? eg_xstrdup(pub->str) : NULL;
            d->ev = ev->type == REDIS_REPLY_STRING;
            d->task = cJSON_Parse(t->str);
            d->job = op->job;
            job_op_free(op);
            deliver(d);
            return;
        }
        eg_job_done(op->job, 0);
        job_op_free(op);
        return;
    }
    if (eg_job_attempt(op->job) >= TASK_MAX_ATTEMPTS) {
        /* Interrupted on every attempt (crashes, or a run that brings its process down): the
         * task fails rather than staying IN_PROGRESS when the job is dead-lettered. */
        fail_without_run(op->ws, op->id, "the task's run was interrupted too many times", op->job);
        job_op_free(op);
        return;
    }
    if (spec->type != REDIS_REPLY_STRING) {
        eg_job_retry(op->job, 1000, "the task's run record is missing");
        job_op_free(op);
        return;
    }
    /* A fresh attempt: the archive of an interrupted one is cleared first. */
    op->task = eg_xstrdup(t->str);
    op->spec = eg_xstrdup(spec->str);
    eg_arena_init(&a);
    rc = eg_store_command(on_archive_cleared, op, "DEL %s",
                          eg__task_key(&a, op->ws, "ata:%s:p", op->id));
    eg_arena_destroy(&a);
    if (rc != 0) {
        eg_job_retry(op->job, 0, eg_strerror(rc));
        job_op_free(op);
    }
}

static void on_job(eg_job_t *job, void *udata)
{
    const char *payload = eg_job_payload(job, NULL);
    job_op_t *op;
    eg_arena_t a;
    int rc;

    (void)udata;
    op = eg_xcalloc(1, sizeof(*op));
    op->job = job;
    if (sscanf(payload, "%63s %39s", op->ws, op->id) != 2 || !eg_hexid_valid(op->id, "ata")) {
        eg_job_fail(job, "malformed agent task job");
        job_op_free(op);
        return;
    }
    eg_arena_init(&a);
    const char *argv[] = {eg__task_key(&a, op->ws, "ata"),
                          eg__task_key(&a, op->ws, "ata:%s:r", op->id), op->id};
    rc = eg_store_eval(&s_load, on_job_loaded, op, 2, 3, argv, NULL);
    eg_arena_destroy(&a);
    if (rc != 0) {
        eg_job_retry(job, 0, eg_strerror(rc));
        job_op_free(op);
    }
}

int eg_tasks_start(uv_loop_t *loop)
{
    const char *vis = getenv("ENGRAM_AGENT_TASK_VISIBILITY");
    uint64_t vis_ms = 30000;
    eg_queue_opts_t qo = {0};

    (void)loop;
    if (vis && vis[0] && (eg_parse_duration_ms(vis, &vis_ms) != 0 || vis_ms < 1000)) {
        eg_log_error("ENGRAM_AGENT_TASK_VISIBILITY must be a duration of at least 1s, not \"%s\"",
                     vis);
        return EG_EINVAL;
    }
    qo.handler = on_job;
    qo.concurrency = 16; /* runs mostly wait for the model */
    qo.max_attempts = TASK_MAX_ATTEMPTS;
    qo.visibility_ms = vis_ms;
    s_w.q = eg_queue_open(EG_TASK_QUEUE, &qo);
    return s_w.q != NULL ? 0 : EG_EUNAVAIL;
}

void eg_tasks_stop(void (*done)(void *), void *udata)
{
    eg_queue_t *q = s_w.q;

    s_w.q = NULL;
    if (q == NULL) {
        if (done)
            done(udata);
        return;
    }
    eg_queue_close(q, done, udata);
}
