/* Bulk METADATA jobs: POST /v1/memories/jobs queues an upsert of many memories of one METADATA
 * memory type; the "library" queue's worker applies it item by item.
 *
 * The job record (eg:{w:<ws>}:fy:mjb:<id>, kept 30 days) is Fency's {jobId, status, errorMessage,
 * result} plus the index of the next item under "_". Every memory write of an item carries the
 * job record with that item counted (eg__lib_put writes both in one script), so a worker killed
 * mid-job resumes at the first item not applied and reports each item exactly once.
 *
 * Per item: with the type's identityKeyName, metadata[identityKeyName] looks up the memory with
 * that identity (an index per type, fy:mty:<type>:ident); a match is updated when
 * metadata[updatedAtKeyName] is newer than the stored one (numbers numerically, ISO 8601 instants
 * as times, other strings bytewise; always when the type has no updatedAtKeyName or the stored
 * memory has no value), otherwise skipped with the reason. No match creates a memory. An item
 * without an identity value, when the type has an identityKeyName, is skipped. A METADATA memory
 * is a TEXT memory whose text is its title and its metadata as "key: value" lines, so it is
 * chunked and searchable like any other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "library_int.h"

/* ---- creating a job -------------------------------------------------------------------------- */

static char s_why[200]; /* the loop is single-threaded: a reason naming an item index */

static int body_check(const cJSON *body, const char **why)
{
    const cJSON *mems = cJSON_GetObjectItemCaseSensitive(body, "memories"), *m;
    size_t i = 0;

    if (!cJSON_IsObject(body)) {
        *why = "the body must be a JSON object";
        return EG_EINVAL;
    }
    if (!eg__lib_jstr(body, "memoryTypeId")) {
        *why = "memoryTypeId is required (a memory type id)";
        return EG_EINVAL;
    }
    if (!cJSON_IsArray(mems) || cJSON_GetArraySize(mems) < 1 ||
        cJSON_GetArraySize(mems) > EG_LIB_JOB_MAX) {
        *why = "memories is required (an array of 1 to 1000 {title, metadata})";
        return EG_EINVAL;
    }
    cJSON_ArrayForEach(m, mems)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "title");
        if (!cJSON_IsObject(m) || !cJSON_IsString(t) || !t->valuestring[0] ||
            strlen(t->valuestring) > EG__LIB_TITLE_MAX) {
            snprintf(s_why, sizeof(s_why),
                     "memories[%zu].title is required (a non-empty string of at most 1000 bytes)",
                     i);
            *why = s_why;
            return EG_EINVAL;
        }
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(m, "metadata"))) {
            snprintf(s_why, sizeof(s_why), "memories[%zu].metadata is required (an object)", i);
            *why = s_why;
            return EG_EINVAL;
        }
        i++;
    }
    return 0;
}

typedef struct {
    eg_arena_t a;
    char ws[72], id[EG__LIB_ID_MAX];
    cJSON *payload;
    eg_lib_json_fn cb;
    void *udata;
} jnew_t;

static void jnew_end(jnew_t *j, int err, const char *why)
{
    cJSON *out = NULL;

    if (err == 0) {
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "jobId", j->id);
    }
    if (j->cb)
        j->cb(j->udata, err, why, out);
    cJSON_Delete(out);
    cJSON_Delete(j->payload);
    eg_arena_destroy(&j->a);
    free(j);
}

static cJSON *job_record(const char *id, const char *type_id)
{
    cJSON *r = cJSON_CreateObject(), *res, *p;

    cJSON_AddStringToObject(r, "jobId", id);
    cJSON_AddStringToObject(r, "status", "PENDING");
    cJSON_AddNullToObject(r, "errorMessage");
    res = cJSON_AddObjectToObject(r, "result");
    cJSON_AddArrayToObject(res, "created");
    cJSON_AddArrayToObject(res, "updated");
    cJSON_AddArrayToObject(res, "skipped");
    p = cJSON_AddObjectToObject(r, "_");
    cJSON_AddNumberToObject(p, "i", 0);
    cJSON_AddStringToObject(p, "type", type_id);
    return r;
}

static void on_jrec(void *udata, int err, redisReply *r)
{
    jnew_t *j = udata;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = EG_EREDIS;
    jnew_end(j, err, NULL);
}

static void on_jpushed(void *udata, int err)
{
    jnew_t *j = udata;

    if (err != 0) {
        jnew_end(j, err, NULL);
        return;
    }
    cJSON *rec = job_record(j->id, eg__lib_jstr(j->payload, "type"));
    char *txt = cJSON_PrintUnformatted(rec);
    int rc = eg_store_command(on_jrec, j, "SET %s %s EX %d",
                              eg__lib_key(&j->a, j->ws, "mjb:%s", j->id), txt, EG__LIB_JOB_TTL_S);
    free(txt);
    cJSON_Delete(rec);
    if (rc != 0)
        jnew_end(j, rc, NULL);
}

static void on_jqueued(void *udata, int err, bool queued)
{
    (void)queued;
    on_jpushed(udata, err);
}

static void on_jtype(void *udata, int err, redisReply *r)
{
    jnew_t *j = udata;
    char job_id[EG_QUEUE_JOB_ID_MAX];

    if (err == 0 && r->type == REDIS_REPLY_NIL) {
        jnew_end(j, EG_ENOTFOUND, "memory type not found");
        return;
    }
    if (err == 0 && r->type != REDIS_REPLY_STRING)
        err = EG_EREDIS;
    if (err != 0) {
        jnew_end(j, err, NULL);
        return;
    }
    cJSON *t = cJSON_Parse(r->str);
    const char *kind = eg__lib_jstr(t, "type");
    bool meta = kind && strcmp(kind, "METADATA") == 0;
    cJSON_Delete(t);
    if (!meta) {
        jnew_end(j, EG_EINVAL, "memoryTypeId must name a METADATA memory type");
        return;
    }
    /* The job goes on the queue first; its worker waits for the record if it is quicker. */
    snprintf(job_id, sizeof(job_id), "%s:bulk:%s", j->ws, j->id);
    char *txt = cJSON_PrintUnformatted(j->payload);
    int rc = strlen(txt) > EG_QUEUE_PAYLOAD_MAX
                 ? EG_ETOOBIG
                 : eg_queue_push(EG_LIB_QUEUE, job_id, txt, strlen(txt), 0, on_jqueued, j);
    free(txt);
    if (rc != 0)
        jnew_end(j, rc, NULL);
}

int eg_lib_job_create(const char *ws, const cJSON *body, const char **why, eg_lib_json_fn cb,
                      void *udata)
{
    const char *type_id;
    int rc;

    *why = NULL;
    if (!eg__lib_ws_valid(ws) || !cb)
        return EG_EINVAL;
    rc = body_check(body, why);
    if (rc != 0)
        return rc;
    type_id = eg__lib_jstr(body, "memoryTypeId");
    if (!eg_hexid_valid(type_id, "mty")) {
        *why = "memory type not found";
        return EG_ENOTFOUND;
    }
    jnew_t *j = eg_xcalloc(1, sizeof(*j));
    eg_arena_init(&j->a);
    snprintf(j->ws, sizeof(j->ws), "%s", ws);
    eg_hexid_new("mjb", j->id, EG__LIB_ID_MAX);
    j->cb = cb;
    j->udata = udata;
    j->payload = cJSON_CreateObject();
    cJSON_AddStringToObject(j->payload, "k", "bulk");
    cJSON_AddStringToObject(j->payload, "ws", ws);
    cJSON_AddStringToObject(j->payload, "job", j->id);
    cJSON_AddStringToObject(j->payload, "type", type_id);
    cJSON_AddNumberToObject(j->payload, "t", (double)eg_now_us());
    cJSON_AddItemToObject(
        j->payload, "memories",
        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(body, "memories"), true));
    rc = eg_store_command(on_jtype, j, "HGET %s %s", eg__lib_key(&j->a, ws, "mty"), type_id);
    if (rc != 0) {
        j->cb = NULL;
        jnew_end(j, rc, NULL);
    }
    return rc;
}

/* ---- reading a job --------------------------------------------------------------------------- */

typedef struct {
    eg_lib_json_fn cb;
    void *udata;
} jget_t;

static void on_jget(void *udata, int err, redisReply *r)
{
    jget_t *g = udata;
    cJSON *rec = NULL;

    if (err == 0 && r->type == REDIS_REPLY_NIL)
        err = EG_ENOTFOUND;
    else if (err == 0 && r->type != REDIS_REPLY_STRING)
        err = EG_EREDIS;
    if (err == 0) {
        rec = cJSON_Parse(r->str);
        if (!rec)
            err = EG_EREDIS;
        else
            cJSON_DeleteItemFromObjectCaseSensitive(rec, "_");
    }
    g->cb(g->udata, err, err == EG_ENOTFOUND ? "job not found" : NULL, rec);
    cJSON_Delete(rec);
    free(g);
}

int eg_lib_job_get(const char *ws, const char *id, eg_lib_json_fn cb, void *udata)
{
    eg_arena_t a;
    int rc;

    if (!eg__lib_ws_valid(ws) || !cb || !id)
        return EG_EINVAL;
    if (!eg_hexid_valid(id, "mjb"))
        return EG_ENOTFOUND;
    eg_arena_init(&a);
    jget_t *g = eg_xmalloc(sizeof(*g));
    g->cb = cb;
    g->udata = udata;
    rc = eg_store_command(on_jget, g, "GET %s", eg__lib_key(&a, ws, "mjb:%s", id));
    if (rc != 0)
        free(g);
    eg_arena_destroy(&a);
    return rc;
}

/* ---- running a job --------------------------------------------------------------------------- */

typedef struct {
    eg_arena_t a; /* per job */
    eg_job_t *job;
    char *ws, *jid, *type_id, *jkey;
    char *ident_key, *updated_key; /* the type's; NULL when unset */
    cJSON *items;                  /* the payload's memories */
    cJSON *jrec;                   /* the job record as last written */
    size_t i, n;
    unsigned tries;
    double t; /* when the job was created (µs) */
    int wait; /* rounds waited for the job record */
    /* the item in progress */
    char *ident;
    char mem_id[EG__LIB_ID_MAX];
    char sync[EG__LIB_SYNC_MAX];
    char pushed_for[EG__LIB_ID_MAX]; /* the memory whose sync job is pushed for sync */
    const char *purge;               /* the replaced version's document, once written */
    eg__lib_put_t put;
    cJSON *pub;
    const char *event;
} bjob_t;

static void bjob_free(bjob_t *b)
{
    cJSON_Delete(b->items);
    cJSON_Delete(b->jrec);
    cJSON_Delete(b->pub);
    eg_arena_destroy(&b->a);
    free(b);
}

static void step(bjob_t *b);

/* The job record with status and the item index set, printed (arena). */
static char *jrec_text(bjob_t *b, const char *status, const char *error)
{
    cJSON *p = cJSON_GetObjectItemCaseSensitive(b->jrec, "_");

    eg__lib_jset(b->jrec, "status", cJSON_CreateString(status));
    eg__lib_jset(b->jrec, "errorMessage", error ? cJSON_CreateString(error) : cJSON_CreateNull());
    eg__lib_jset(p, "i", cJSON_CreateNumber((double)b->i));
    char *s = cJSON_PrintUnformatted(b->jrec);
    char *r = eg_arena_strdup(&b->a, s);
    free(s);
    return r;
}

static void result_add(bjob_t *b, const char *list, cJSON *v)
{
    cJSON *res = cJSON_GetObjectItemCaseSensitive(b->jrec, "result");

    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(res, list), v);
}

static void on_final_written(void *udata, int err, redisReply *r)
{
    bjob_t *b = udata;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = EG_EREDIS;
    if (err != 0)
        eg_job_retry(b->job, 0, eg_strerror(err));
    else
        eg_job_done(b->job, 0);
    bjob_free(b);
}

static void write_job(bjob_t *b, const char *status, const char *error,
                      void (*fn)(void *, int, redisReply *))
{
    char *txt = jrec_text(b, status, error);
    int rc = eg_store_command(fn, b, "SET %s %s EX %d", b->jkey, txt, EG__LIB_JOB_TTL_S);

    if (rc != 0) {
        eg_job_retry(b->job, 0, eg_strerror(rc));
        bjob_free(b);
    }
}

static void fail_job(bjob_t *b, const char *why)
{
    eg_log_warn("library: bulk job %s failed: %s", b->jid, why);
    write_job(b, "FAILED", why, on_final_written);
}

static void on_progress(void *udata, int err, redisReply *r)
{
    bjob_t *b = udata;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = EG_EREDIS;
    if (err != 0) {
        eg_job_retry(b->job, 0, eg_strerror(err));
        bjob_free(b);
        return;
    }
    step(b);
}

static void skip(bjob_t *b, const char *ident, const char *reason)
{
    cJSON *s = cJSON_CreateObject();

    if (ident)
        cJSON_AddStringToObject(s, "identityValue", ident);
    else
        cJSON_AddNullToObject(s, "identityValue");
    cJSON_AddStringToObject(s, "reason", reason);
    result_add(b, "skipped", s);
    b->i++;
    write_job(b, "RUNNING", NULL, on_progress);
}

static void item_reset(bjob_t *b)
{
    cJSON_Delete(b->pub);
    b->pub = NULL;
    b->event = NULL;
    b->tries = 0;
    b->pushed_for[0] = '\0';
    b->purge = NULL;
    b->ident = NULL;
    b->mem_id[0] = '\0';
    memset(&b->put, 0, sizeof(b->put));
}

static void item_read(bjob_t *b);
static void item_write(bjob_t *b, const cJSON *item, cJSON *rec, const char *raw);

static void on_item_put(void *udata, int err)
{
    bjob_t *b = udata;

    if (err == EG_ECONFLICT || err == EG_ENOTFOUND) {
        /* Not applied: take the item back out of the result. */
        cJSON *res = cJSON_GetObjectItemCaseSensitive(b->jrec, "result");
        cJSON *list = cJSON_GetObjectItemCaseSensitive(
            res, strcmp(b->event, "memory.created") == 0 ? "created" : "updated");
        cJSON_DeleteItemFromArray(list, cJSON_GetArraySize(list) - 1);
        b->i--;
        cJSON_Delete(b->pub);
        b->pub = NULL;
    }
    if (err == EG_ECONFLICT && ++b->tries < EG__LIB_PUT_TRIES) {
        /* The memory (or the identity index) changed meanwhile: decide this item again. */
        if (b->ident)
            item_read(b);
        else
            item_write(b, cJSON_GetArrayItem(b->items, (int)b->i), NULL, NULL);
        return;
    }
    if (err == EG_ENOTFOUND) {
        fail_job(b, "the memory type was deleted");
        return;
    }
    if (err != 0) {
        eg_job_retry(b->job, 0, eg_strerror(err));
        bjob_free(b);
        return;
    }
    eg__lib_emit(b->ws, b->event, b->pub);
    if (b->purge)
        eg__lib_purge_push(b->ws, b->purge);
    step(b);
}

static void on_item_pushed(void *udata, int err)
{
    bjob_t *b = udata;

    if (err == 0) {
        snprintf(b->pushed_for, sizeof(b->pushed_for), "%s", b->mem_id);
        err = eg__lib_put(&b->put, on_item_put, b);
    }
    if (err != 0) {
        eg_job_retry(b->job, 0, eg_strerror(err));
        bjob_free(b);
    }
}

/* Write the item: rec NULL creates a memory, else updates rec (raw as read). */
static void item_write(bjob_t *b, const cJSON *item, cJSON *rec, const char *raw)
{
    const char *title = eg__lib_jstr(item, "title");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(item, "metadata");
    char t[EG__LIB_TIME_MAX], member[EG_ZPAGE_MEMBER_MAX];
    int64_t now = eg_now_us();
    cJSON *n, *p;

    bool pushed;

    if (rec)
        snprintf(b->mem_id, sizeof(b->mem_id), "%s", eg__lib_jstr(rec, "id"));
    else if (!b->mem_id[0])
        eg_hexid_new("mem", b->mem_id, EG__LIB_ID_MAX);
    /* A lost race may switch the item to another memory: its job must name that one. */
    pushed = b->pushed_for[0] && strcmp(b->pushed_for, b->mem_id) == 0;
    if (!pushed)
        eg__lib_sync_new(b->sync);
    eg_time_iso_us(now, t);
    b->purge = NULL;
    if (rec) {
        n = cJSON_Duplicate(rec, true);
        p = cJSON_GetObjectItemCaseSensitive(n, "_");
        eg__lib_jset(n, "updatedAt", cJSON_CreateString(t));
        eg__lib_jset(n, "title", cJSON_CreateString(title));
        eg__lib_jset(n, "metadata", cJSON_Duplicate(md, true));
        snprintf(member, sizeof(member), "%s", eg__lib_pstr(rec, "member"));
        b->put.old = eg_arena_strdup(&b->a, raw);
        b->event = "memory.updated";
        const char *doc = eg__lib_pstr(rec, "doc");
        b->purge = doc ? eg_arena_strdup(&b->a, doc) : NULL;
    } else {
        eg_zpage_member(now, b->mem_id, member, sizeof(member));
        n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", b->mem_id);
        cJSON_AddStringToObject(n, "createdAt", t);
        cJSON_AddStringToObject(n, "updatedAt", t);
        cJSON_AddStringToObject(n, "sourceType", "TEXT");
        cJSON_AddStringToObject(n, "typeId", b->type_id);
        cJSON_AddStringToObject(n, "title", title);
        cJSON_AddNullToObject(n, "content");
        cJSON_AddNullToObject(n, "contentParts");
        cJSON_AddStringToObject(n, "contentStatus", "SYNCHRONIZING");
        cJSON_AddItemToObject(n, "metadata", cJSON_Duplicate(md, true));
        p = cJSON_AddObjectToObject(n, "_");
        cJSON_AddStringToObject(p, "member", member);
        b->put.old = NULL;
        b->event = "memory.created";
    }
    eg__lib_jset(n, "content", cJSON_CreateNull());
    eg__lib_jset(n, "contentParts", cJSON_CreateNull());
    eg__lib_jset(n, "contentStatus", cJSON_CreateString("SYNCHRONIZING"));
    eg__lib_jset(p, "sync", cJSON_CreateString(b->sync));
    eg__lib_jset(p, "reason", cJSON_CreateNull());
    eg__lib_jset(p, "text", cJSON_CreateString(eg__lib_metadata_text(&b->a, title, md)));
    eg__lib_jset(p, "derived", cJSON_CreateTrue());
    if (b->ident) {
        eg__lib_jset(p, "ikey", cJSON_CreateString(b->ident_key));
        eg__lib_jset(p, "ident", cJSON_CreateString(b->ident));
    }
    cJSON_DeleteItemFromObjectCaseSensitive(p, "doc");

    char *txt = cJSON_PrintUnformatted(n);
    b->put.ws = b->ws;
    b->put.id = b->mem_id;
    b->put.type_id = b->type_id;
    b->put.member = eg_arena_strdup(&b->a, member);
    b->put.rec = eg_arena_strdup(&b->a, txt);
    b->put.content = EG__LIB_CLEAR;
    b->put.ident = b->ident;
    b->put.job_key = b->jkey;
    free(txt);
    b->pub = eg__lib_mem_public(n, NULL);
    cJSON_Delete(n);

    result_add(b, rec ? "updated" : "created", cJSON_CreateString(b->mem_id));
    b->i++;
    b->put.job_json = jrec_text(b, "RUNNING", NULL);
    int rc = pushed ? eg__lib_put(&b->put, on_item_put, b)
                    : eg__lib_sync_push(b->ws, b->mem_id, b->sync, on_item_pushed, b);
    if (rc != 0) {
        eg_job_retry(b->job, 0, eg_strerror(rc));
        bjob_free(b);
    }
}

/* The stored memory an identity names was read: decide update or skip. */
static void on_match(void *udata, int err, cJSON *rec, const char *raw, const char *content)
{
    bjob_t *b = udata;
    const cJSON *item = cJSON_GetArrayItem(b->items, (int)b->i);

    (void)content;
    if (err == EG_ENOTFOUND || (err == 0 && strcmp(eg__lib_jstr(rec, "typeId"), b->type_id))) {
        b->mem_id[0] = '\0';
        item_write(b, item, NULL, NULL); /* a stale index entry: create */
        return;
    }
    if (err != 0) {
        eg_job_retry(b->job, 0, eg_strerror(err));
        bjob_free(b);
        return;
    }
    if (b->updated_key) {
        const cJSON *nv = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(item, "metadata"), b->updated_key);
        const cJSON *ov = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(rec, "metadata"), b->updated_key);
        int cmp = 1;
        if (!nv) {
            skip(b, b->ident, eg_arena_printf(&b->a, "metadata has no %s", b->updated_key));
            return;
        }
        if (ov && eg__lib_value_cmp(nv, ov, &cmp) != 0) {
            skip(b, b->ident,
                 eg_arena_printf(&b->a, "%s cannot be compared with the stored value",
                                 b->updated_key));
            return;
        }
        if (cmp <= 0) {
            skip(
                b, b->ident,
                eg_arena_printf(&b->a, "%s is not newer than the stored memory's", b->updated_key));
            return;
        }
    }
    item_write(b, item, rec, raw);
}

static void on_ident(void *udata, int err, redisReply *r)
{
    bjob_t *b = udata;
    const cJSON *item = cJSON_GetArrayItem(b->items, (int)b->i);

    if (err == 0 && r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)
        err = EG_EREDIS;
    if (err != 0) {
        eg_job_retry(b->job, 0, eg_strerror(err));
        bjob_free(b);
        return;
    }
    if (r->type == REDIS_REPLY_NIL) {
        item_write(b, item, NULL, NULL);
        return;
    }
    int rc = eg__lib_mem_read(b->ws, r->str, false, on_match, b);
    if (rc != 0) {
        eg_job_retry(b->job, 0, eg_strerror(rc));
        bjob_free(b);
    }
}

static void item_read(bjob_t *b)
{
    int rc;

    rc = eg_store_command(on_ident, b, "HGET %s %s",
                          eg__lib_key(&b->a, b->ws, "mty:%s:ident", b->type_id), b->ident);
    if (rc != 0) {
        eg_job_retry(b->job, 0, eg_strerror(rc));
        bjob_free(b);
    }
}

static void step(bjob_t *b)
{
    if (b->i >= b->n) {
        write_job(b, "COMPLETED", NULL, on_final_written);
        return;
    }
    const cJSON *item = cJSON_GetArrayItem(b->items, (int)b->i);
    item_reset(b);
    if (!b->ident_key) {
        item_write(b, item, NULL, NULL);
        return;
    }
    b->ident =
        eg__lib_ident(&b->a, cJSON_GetObjectItemCaseSensitive(item, "metadata"), b->ident_key);
    if (!b->ident) {
        skip(b, NULL, eg_arena_printf(&b->a, "metadata has no %s", b->ident_key));
        return;
    }
    item_read(b);
}

static void on_btype(void *udata, int err, redisReply *r)
{
    bjob_t *b = udata;

    if (err == 0 && r->type == REDIS_REPLY_NIL) {
        fail_job(b, "the memory type was deleted");
        return;
    }
    if (err == 0 && r->type != REDIS_REPLY_STRING)
        err = EG_EREDIS;
    if (err != 0) {
        eg_job_retry(b->job, 0, eg_strerror(err));
        bjob_free(b);
        return;
    }
    cJSON *t = cJSON_Parse(r->str);
    const char *ik = eg__lib_jstr(t, "identityKeyName"), *uk = eg__lib_jstr(t, "updatedAtKeyName");
    b->ident_key = ik ? eg_arena_strdup(&b->a, ik) : NULL;
    b->updated_key = uk ? eg_arena_strdup(&b->a, uk) : NULL;
    cJSON_Delete(t);
    step(b);
}

/* Hand the job over to a delayed copy of itself (the next waiting round). */
static void wait_again(bjob_t *b)
{
    char job_id[EG_QUEUE_JOB_ID_MAX];
    cJSON *p = cJSON_CreateObject();

    snprintf(job_id, sizeof(job_id), "%s:bulk:%s:w%d", b->ws, b->jid, b->wait + 1);
    cJSON_AddStringToObject(p, "k", "bulk");
    cJSON_AddStringToObject(p, "ws", b->ws);
    cJSON_AddStringToObject(p, "job", b->jid);
    cJSON_AddStringToObject(p, "type", b->type_id);
    cJSON_AddNumberToObject(p, "t", b->t);
    cJSON_AddItemReferenceToObject(p, "memories", b->items);
    eg__lib_wait_again(b->job, job_id, p, b->wait);
    cJSON_Delete(p);
    bjob_free(b);
}

static void on_brec(void *udata, int err, redisReply *r)
{
    bjob_t *b = udata;

    if (err == 0 && r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)
        err = EG_EREDIS;
    if (err != 0) {
        eg_job_retry(b->job, 0, eg_strerror(err));
        bjob_free(b);
        return;
    }
    if (r->type == REDIS_REPLY_NIL) {
        /* Pushed before its record: wait for it while the job is young (a fresh job each
         * round, so waiting spends no attempts), then give up. */
        if ((double)eg_now_us() - b->t < (double)EG__LIB_WAIT_FOR_US)
            wait_again(b);
        else {
            eg_job_done(b->job, 0);
            bjob_free(b);
        }
        return;
    }
    b->jrec = cJSON_Parse(r->str);
    const char *st = eg__lib_jstr(b->jrec, "status");
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(eg__lib_priv(b->jrec), "i");
    if (!st || !cJSON_IsNumber(i)) {
        eg_job_fail(b->job, "malformed job record");
        bjob_free(b);
        return;
    }
    if (strcmp(st, "COMPLETED") == 0 || strcmp(st, "FAILED") == 0) {
        eg_job_done(b->job, 0);
        bjob_free(b);
        return;
    }
    b->i = (size_t)i->valuedouble;
    int rc =
        eg_store_command(on_btype, b, "HGET %s %s", eg__lib_key(&b->a, b->ws, "mty"), b->type_id);
    if (rc != 0) {
        eg_job_retry(b->job, 0, eg_strerror(rc));
        bjob_free(b);
    }
}

void eg__lib_bulk_run(eg_job_t *job, const cJSON *payload)
{
    const char *ws = eg__lib_jstr(payload, "ws"), *jid = eg__lib_jstr(payload, "job"),
               *type = eg__lib_jstr(payload, "type");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(payload, "memories");

    if (!ws || !jid || !type || !cJSON_IsArray(items)) {
        eg_job_fail(job, "malformed payload");
        return;
    }
    bjob_t *b = eg_xcalloc(1, sizeof(*b));
    eg_arena_init(&b->a);
    b->job = job;
    b->ws = eg_arena_strdup(&b->a, ws);
    b->jid = eg_arena_strdup(&b->a, jid);
    b->type_id = eg_arena_strdup(&b->a, type);
    b->jkey = eg__lib_key(&b->a, ws, "mjb:%s", jid);
    b->items = cJSON_Duplicate(items, true);
    b->n = (size_t)cJSON_GetArraySize(items);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(payload, "t");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(payload, "w");
    b->t = cJSON_IsNumber(t) ? t->valuedouble : 0;
    b->wait = cJSON_IsNumber(w) ? w->valueint : 0;
    int rc = eg_store_command(on_brec, b, "GET %s", b->jkey);
    if (rc != 0) {
        eg_job_retry(job, 0, eg_strerror(rc));
        bjob_free(b);
    }
}
