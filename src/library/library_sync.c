/* Sync jobs of the "library" queue: synchronising one content version of a memory.
 *
 * A sync job names one content version of one memory ("<16-digit µs>-<8 hex>", the record's
 * "_".sync). Its life: read the record — a newer version means this job is stale (its document,
 * if it wrote one, is removed), an older one means the write naming this version has not landed
 * yet (the job was pushed first; it waits a little, then gives up) — get the text (TEXT as given;
 * URL fetched through the outbound client with the SSRF guard, size-capped; FILE bytes read back
 * from Redis), convert it into pages (engram/docconv.h, on the threadpool), chunk it
 * (library_chunk.c), index the chunks into the workspace's bank "fency" as the document
 * "<memory>:<version>" (one unit per chunk, tagged with the memory and its type), and finally
 * write SYNCHRONIZED with the content and the chunk list in one compare-and-set — or
 * SYNCHRONIZATION_ERROR with the reason. A kill -9 anywhere before that write leaves the job
 * unacknowledged: the queue hands it to a live process after the visibility timeout, and the
 * re-run writes the same document id again (the memory engine replaces it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/mstore.h"
#include "engram/queue.h"
#include "engram/retain.h"
#include "engram/store.h"
#include "engram/util.h"
#include "library_int.h"

#define CHUNKS_MAX 20000 /* chunks of one memory at most */
#define BANK_CHUNK_SIZE                                                                            \
    4000 /* the bank's retain_chunk_size: above EG__LIB_CHUNK_CP, so each                          \
            chunk stays one unit */
#define URL_TIMEOUT_MS 60000

/* ---- sync jobs: state ------------------------------------------------------------------------ */

typedef struct {
    eg_arena_t a;
    eg_job_t *job;
    char *ws, *id, *sync, *doc;
    cJSON *rec; /* the record as read at the start */
    const char *type_id;
    const char *file_name, *mime;
    const char *data; /* URL body / file bytes (arena) */
    size_t len;
    char *content;
    eg__lib_chunk_t *chunks;
    size_t nchunks;
    bool indexed;     /* the document may exist in the bank */
    const char *fail; /* SYNCHRONIZATION_ERROR with this reason */
    unsigned tries;
    int wait; /* rounds waited for the write naming the version */
} sjob_t;

static void sjob_free(sjob_t *s)
{
    cJSON_Delete(s->rec);
    eg_arena_destroy(&s->a);
    free(s);
}

static bool transient(int err)
{
    return err == EG_EUNAVAIL || err == EG_ESTORETIMEOUT || err == EG_EREDIS ||
           err == EG_ECANCELED || err == EG_EBUSY || err == EG_EUPSTREAM || err == EG_EUPTIMEOUT ||
           err == EG_EINTERNAL;
}

static bool last_attempt(const sjob_t *s)
{
    return eg_job_attempt(s->job) >= EG__LIB_ATTEMPTS;
}

/* Give the attempt back to the queue (backoff), or end with a failure reason on the last one. */
static void finish(sjob_t *s);
static void retry_or_fail(sjob_t *s, int err, const char *reason)
{
    if (!last_attempt(s)) {
        eg_log_warn("library: syncing %s attempt %u failed (%s); retrying", s->id,
                    eg_job_attempt(s->job), reason);
        eg_job_retry(s->job, 0, reason);
        sjob_free(s);
        return;
    }
    (void)err;
    s->fail = eg_arena_strdup(&s->a, reason);
    finish(s);
}

/* ---- the final write ------------------------------------------------------------------------- */

typedef struct {
    sjob_t *s;
    eg__lib_put_t put;
    cJSON *pub;
    const char *old_doc;
} fin_t;

static void fin_read(sjob_t *s);

static void on_fin_put(void *udata, int err)
{
    fin_t *f = udata;
    sjob_t *s = f->s;

    if (err == EG_ECONFLICT && ++s->tries < EG__LIB_PUT_TRIES) {
        cJSON_Delete(f->pub);
        free(f);
        fin_read(s);
        return;
    }
    if (err != 0) {
        /* Not written: the job runs again (everything before is idempotent). */
        eg_job_retry(s->job, 0, eg_strerror(err));
    } else {
        eg__lib_emit(s->ws, "memory.updated", f->pub);
        if (f->old_doc && strcmp(f->old_doc, s->doc) != 0)
            eg__lib_purge_push(s->ws, f->old_doc);
        if (s->fail && s->indexed)
            eg__lib_purge_push(s->ws, s->doc);
        eg_job_done(s->job, 0);
    }
    cJSON_Delete(f->pub);
    free(f);
    sjob_free(s);
}

static void drop_stale(sjob_t *s)
{
    /* A newer version (or a deletion) won: what this job may have indexed goes. */
    if (s->indexed)
        eg__lib_purge_push(s->ws, s->doc);
    eg_job_done(s->job, 0);
    sjob_free(s);
}

static void on_fin_read(void *udata, int err, cJSON *rec, const char *raw, const char *content)
{
    sjob_t *s = udata;
    const char *sync = rec ? eg__lib_pstr(rec, "sync") : NULL;
    char t[EG__LIB_TIME_MAX];

    (void)content;
    if (err == EG_ENOTFOUND || (err == 0 && (!sync || strcmp(sync, s->sync) != 0))) {
        drop_stale(s);
        return;
    }
    if (err != 0) {
        eg_job_retry(s->job, 0, eg_strerror(err));
        sjob_free(s);
        return;
    }
    fin_t *f = eg_xcalloc(1, sizeof(*f));
    f->s = s;
    cJSON *n = cJSON_Duplicate(rec, true);
    cJSON *p = cJSON_GetObjectItemCaseSensitive(n, "_");
    const char *old_doc = eg__lib_pstr(rec, "doc");
    f->old_doc = old_doc ? eg_arena_strdup(&s->a, old_doc) : NULL;
    eg_time_iso_us(eg_now_us(), t);
    eg__lib_jset(n, "updatedAt", cJSON_CreateString(t));
    f->put.ws = s->ws;
    f->put.id = s->id;
    f->put.type_id = eg_arena_strdup(&s->a, eg__lib_jstr(rec, "typeId"));
    f->put.member = eg_arena_strdup(&s->a, eg__lib_pstr(rec, "member"));
    f->put.old = eg_arena_strdup(&s->a, raw);
    f->put.file = EG__LIB_CLEAR;
    if (s->fail) {
        eg__lib_jset(n, "contentStatus", cJSON_CreateString("SYNCHRONIZATION_ERROR"));
        eg__lib_jset(n, "contentParts", cJSON_CreateNull());
        eg__lib_jset(p, "reason", cJSON_CreateString(s->fail));
        cJSON_DeleteItemFromObjectCaseSensitive(p, "doc");
        f->put.content = EG__LIB_CLEAR;
        f->pub = eg__lib_mem_public(n, NULL);
    } else {
        eg__lib_jset(n, "contentStatus", cJSON_CreateString("SYNCHRONIZED"));
        eg__lib_jset(n, "contentParts", cJSON_CreateNumber((double)s->nchunks));
        eg__lib_jset(p, "reason", cJSON_CreateNull());
        eg__lib_jset(p, "doc", cJSON_CreateString(s->doc));
        f->put.content = EG__LIB_SET;
        f->put.text = s->content;
        const char **cs = eg_arena_calloc(&s->a, (s->nchunks + 1) * sizeof(*cs));
        for (size_t i = 0; i < s->nchunks; i++) {
            char *j = eg__lib_chunk_json(&s->chunks[i]);
            cs[i] = eg_arena_strdup(&s->a, j);
            free(j);
        }
        f->put.chunks = cs;
        f->put.nchunks = s->nchunks;
        f->pub = eg__lib_mem_public(n, s->content);
    }
    char *txt = cJSON_PrintUnformatted(n);
    f->put.rec = eg_arena_strdup(&s->a, txt);
    free(txt);
    cJSON_Delete(n);
    int rc = eg__lib_put(&f->put, on_fin_put, f);
    if (rc != 0) {
        eg_job_retry(s->job, 0, eg_strerror(rc));
        cJSON_Delete(f->pub);
        free(f);
        sjob_free(s);
    }
}

static void fin_read(sjob_t *s)
{
    int rc = eg__lib_mem_read(s->ws, s->id, false, on_fin_read, s);

    if (rc != 0) {
        eg_job_retry(s->job, 0, eg_strerror(rc));
        sjob_free(s);
    }
}

static void finish(sjob_t *s)
{
    if (s->fail)
        eg_log_info("library: memory %s could not be synchronised: %s", s->id, s->fail);
    s->tries = 0;
    fin_read(s);
}

/* ---- indexing -------------------------------------------------------------------------------- */

static void on_retained(void *udata, int err, const eg_retain_result_t *res)
{
    sjob_t *s = udata;

    if (err == 0) {
        finish(s);
        return;
    }
    const char *why = res && res->error ? res->error : eg_strerror(err);
    char *reason = eg_arena_printf(&s->a, "indexing failed: %s", why);
    if (transient(err))
        retry_or_fail(s, err, reason);
    else {
        s->fail = reason;
        finish(s);
    }
}

static void do_index(sjob_t *s)
{
    eg_retain_item_t *items = eg_arena_calloc(&s->a, s->nchunks * sizeof(*items));
    const char **tags = eg_arena_calloc(&s->a, 2 * sizeof(*tags));
    eg_retain_req_t req = {0};
    int rc;

    tags[0] = eg_arena_printf(&s->a, EG__LIB_TAG_MEM "%s", s->id);
    tags[1] = eg_arena_printf(&s->a, EG__LIB_TAG_TYPE "%s", s->type_id);
    for (size_t i = 0; i < s->nchunks; i++) {
        cJSON *md = cJSON_CreateObject();
        char *pages = eg_arena_strdup(&s->a, "");
        for (size_t k = 0; k < s->chunks[i].npages; k++)
            pages = eg_arena_printf(&s->a, "%s%s%d", pages, k ? "," : "", s->chunks[i].pages[k]);
        cJSON_AddStringToObject(md, "m", s->id);
        cJSON_AddStringToObject(md, "s", s->sync);
        cJSON_AddStringToObject(md, "c", eg_arena_printf(&s->a, "%zu", i + 1));
        cJSON_AddStringToObject(md, "p", pages);
        eg_arena_defer(&s->a, (void (*)(void *))cJSON_Delete, md);
        items[i].content = s->chunks[i].text;
        items[i].timestamp = EG_MEM_TIME_NONE;
        items[i].metadata = md;
        items[i].document_id = s->doc;
        items[i].tags = tags;
        items[i].ntags = 2;
        items[i].resolve_entities = false;
    }
    req.items = items;
    req.nitems = s->nchunks;
    s->indexed = true;
    rc = eg_retain(s->ws, EG_LIB_BANK, &req, on_retained, s);
    if (rc != 0)
        on_retained(s, rc, NULL);
}

static void on_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    sjob_t *s = udata;

    (void)bank;
    (void)created;
    if (err != 0) {
        retry_or_fail(s, err, eg_arena_printf(&s->a, "indexing failed: %s", eg_strerror(err)));
        return;
    }
    do_index(s);
}

/* The workspace's bank "fency": chunks are indexed as given (extraction mode "chunks", one unit
 * per chunk), and no observations are consolidated from them. Put before every sync, not once
 * per process: the bank is visible to the other faces, and one deleted or reconfigured there
 * must not be recreated with the defaults (which would extract facts instead of keeping
 * chunks). eg_bank_put is idempotent; the cost is one script per sync. */
static void ensure_bank(sjob_t *s)
{
    static const char *keys[] = {"retain_extraction_mode", "enable_observations",
                                 "retain_chunk_size"};
    const cJSON *vals[3];
    eg_bank_update_t u = {0};
    int rc;

    cJSON *mode = cJSON_CreateString("chunks"), *obs = cJSON_CreateFalse(),
          *size = cJSON_CreateNumber(BANK_CHUNK_SIZE);
    eg_arena_defer(&s->a, (void (*)(void *))cJSON_Delete, mode);
    eg_arena_defer(&s->a, (void (*)(void *))cJSON_Delete, obs);
    eg_arena_defer(&s->a, (void (*)(void *))cJSON_Delete, size);
    vals[0] = mode;
    vals[1] = obs;
    vals[2] = size;
    u.name = "Fency library";
    u.cfg_keys = keys;
    u.cfg_values = vals;
    u.ncfg = 3;
    rc = eg_bank_put(s->ws, EG_LIB_BANK, &u, on_bank, s);
    if (rc != 0)
        on_bank(s, rc, NULL, false);
}

/* ---- content into pages ---------------------------------------------------------------------- */

static void on_pages(void *udata, int err, const eg_doc_page_t *pages, size_t npages,
                     const char *why)
{
    sjob_t *s = udata;

    if (err != 0) {
        s->fail = eg_arena_strdup(&s->a, why ? why : eg_strerror(err));
        finish(s);
        return;
    }
    s->nchunks = eg__lib_chunk(&s->a, pages, npages, EG__LIB_CHUNK_CP, &s->content, &s->chunks);
    if (s->nchunks == 0) {
        s->fail = "no text could be extracted from the content";
        finish(s);
        return;
    }
    if (s->nchunks > CHUNKS_MAX) {
        s->fail = eg_arena_printf(&s->a, "the content is too large (over %d chunks)", CHUNKS_MAX);
        finish(s);
        return;
    }
    ensure_bank(s);
}

static void convert(sjob_t *s)
{
    int rc =
        eg_doc_convert_async(eg__lib_w.loop, s->mime, s->file_name, s->data, s->len, on_pages, s);

    if (rc != 0)
        retry_or_fail(s, rc, "the converter could not be started");
}

/* The last path segment of a URL, as a file name hint for the converter. */
static const char *url_file_name(eg_arena_t *a, const char *url)
{
    const char *p = strstr(url, "://");
    size_t n;

    p = p ? strchr(p + 3, '/') : NULL;
    if (!p)
        return NULL;
    n = strcspn(p, "?#");
    const char *slash = p;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '/')
            slash = p + i;
    return eg_arena_strndup(a, slash + 1, (size_t)(p + n - slash - 1));
}

static void on_fetched(void *udata, int err, eg_httpc_resp_t *resp)
{
    sjob_t *s = udata;
    const char *url = eg__lib_pstr(s->rec, "url");

    if (err == EG_ESSRF) {
        s->fail =
            eg_arena_printf(&s->a, "fetching %s is not allowed (private or local address)", url);
        finish(s);
        return;
    }
    if (err == EG_ERESPTOOBIG) {
        s->fail = eg_arena_printf(&s->a, "the page at %s is larger than %zu bytes", url,
                                  eg__lib_w.url_max);
        finish(s);
        return;
    }
    if (err != 0) {
        retry_or_fail(s, err,
                      eg_arena_printf(&s->a, "fetching %s failed: %s", url, eg_strerror(err)));
        return;
    }
    if (resp->status >= 500 || resp->status == 429) {
        retry_or_fail(s, EG_EUPSTREAM,
                      eg_arena_printf(&s->a, "fetching %s answered HTTP %d", url, resp->status));
        return;
    }
    if (resp->status < 200 || resp->status >= 300) {
        s->fail = eg_arena_printf(&s->a, "fetching %s answered HTTP %d", url, resp->status);
        finish(s);
        return;
    }
    const char *ct = eg_httpc_resp_header(resp, "Content-Type");
    s->mime = ct ? eg_arena_strdup(&s->a, ct) : NULL;
    s->file_name = url_file_name(&s->a, resp->url ? resp->url : url);
    s->len = resp->body.len;
    char *d = eg_arena_alloc(&s->a, s->len + 1);
    if (s->len)
        memcpy(d, resp->body.data, s->len);
    d[s->len] = '\0';
    s->data = d;
    if (!s->mime && !s->file_name)
        s->mime = "text/html";
    convert(s);
}

static void fetch(sjob_t *s)
{
    eg_httpc_req_t req = {0};
    static const eg_kv_t headers[] = {
        {"Accept", "text/html, text/plain, text/markdown, application/pdf, application/json, "
                   "text/csv;q=0.9, */*;q=0.5"},
    };
    int rc;

    req.url = eg__lib_pstr(s->rec, "url");
    req.headers = headers;
    req.nheaders = EG_ARRAY_SIZE(headers);
    req.max_response_bytes = eg__lib_w.url_max;
    req.total_timeout_ms = URL_TIMEOUT_MS;
    if (!req.url) {
        s->fail = "the memory has no url";
        finish(s);
        return;
    }
    rc = eg_httpc_request(eg__lib_w.http, &req, on_fetched, s, NULL);
    if (rc == EG_ESSRF || rc == EG_EINVAL) {
        s->fail = eg_arena_printf(&s->a, "fetching %s is not allowed", req.url);
        finish(s);
    } else if (rc != 0) {
        retry_or_fail(s, rc,
                      eg_arena_printf(&s->a, "fetching %s failed: %s", req.url, eg_strerror(rc)));
    }
}

static void on_file(void *udata, int err, redisReply *r)
{
    sjob_t *s = udata;

    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 3))
        err = EG_EREDIS;
    if (err != 0) {
        retry_or_fail(s, err,
                      eg_arena_printf(&s->a, "reading the file failed: %s", eg_strerror(err)));
        return;
    }
    if (r->element[2]->type != REDIS_REPLY_STRING) {
        s->fail = "the file's content is gone; upload it again";
        finish(s);
        return;
    }
    s->file_name = r->element[0]->type == REDIS_REPLY_STRING
                       ? eg_arena_strdup(&s->a, r->element[0]->str)
                       : NULL;
    s->mime = r->element[1]->type == REDIS_REPLY_STRING ? eg_arena_strdup(&s->a, r->element[1]->str)
                                                        : NULL;
    s->len = r->element[2]->len;
    char *d = eg_arena_alloc(&s->a, s->len + 1);
    memcpy(d, r->element[2]->str, s->len);
    d[s->len] = '\0';
    s->data = d;
    convert(s);
}

/* The time a version was made (its first 16 digits, µs). */
static int64_t version_us(const char *v)
{
    int64_t us = 0;

    for (int i = 0; i < 16 && v[i] >= '0' && v[i] <= '9'; i++)
        us = us * 10 + (v[i] - '0');
    return us;
}

/* Hand the job over to a delayed copy of itself (the next waiting round). */
static void wait_again(sjob_t *s)
{
    char job_id[EG_QUEUE_JOB_ID_MAX];
    cJSON *p = cJSON_CreateObject();

    snprintf(job_id, sizeof(job_id), "%s:%s:%s:w%d", s->ws, s->id, s->sync, s->wait + 1);
    cJSON_AddStringToObject(p, "k", "sync");
    cJSON_AddStringToObject(p, "ws", s->ws);
    cJSON_AddStringToObject(p, "id", s->id);
    cJSON_AddStringToObject(p, "n", s->sync);
    eg__lib_wait_again(s->job, job_id, p, s->wait);
    cJSON_Delete(p);
    sjob_free(s);
}

/* ---- sync jobs: start ------------------------------------------------------------------------ */

static void on_rec(void *udata, int err, cJSON *rec, const char *raw, const char *content)
{
    sjob_t *s = udata;
    const char *sync = rec ? eg__lib_pstr(rec, "sync") : NULL;
    int cmp = sync ? strcmp(sync, s->sync) : -1;

    (void)raw;
    if (err != 0 && err != EG_ENOTFOUND) {
        eg_job_retry(s->job, 0, eg_strerror(err));
        sjob_free(s);
        return;
    }
    if (err == EG_ENOTFOUND || cmp < 0) {
        /* The write naming this version has not landed (the job is pushed first), or it never
         * will (the request failed; the memory was deleted): look again while the version is
         * young. Waiting is a fresh job each round, so it spends none of the attempts a real
         * failure is retried with. */
        if (eg_now_us() - version_us(s->sync) < EG__LIB_WAIT_FOR_US)
            wait_again(s);
        else
            drop_stale(s);
        return;
    }
    if (cmp > 0) {
        drop_stale(s);
        return;
    }
    const char *st = eg__lib_jstr(rec, "contentStatus");
    if (!st || strcmp(st, "SYNCHRONIZING") != 0) {
        /* Finished already: a redelivery after a crash between the final write and the
         * acknowledgement. The event may not have gone out; send it again (at least once). */
        cJSON *pub = eg__lib_mem_public(rec, content);
        eg__lib_emit(s->ws, "memory.updated", pub);
        cJSON_Delete(pub);
        eg_job_done(s->job, 0);
        sjob_free(s);
        return;
    }
    s->rec = cJSON_Duplicate(rec, true);
    s->type_id = eg_arena_strdup(&s->a, eg__lib_jstr(rec, "typeId"));
    const char *source = eg__lib_jstr(rec, "sourceType");
    if (source && strcmp(source, "TEXT") == 0) {
        const char *text = eg__lib_pstr(rec, "text");
        eg_doc_page_t page = {text ? text : "", text ? strlen(text) : 0, 1};
        on_pages(s, 0, &page, 1, NULL);
    } else if (source && strcmp(source, "URL") == 0) {
        fetch(s);
    } else if (source && strcmp(source, "FILE") == 0) {
        int rc = eg_store_command(on_file, s, "HMGET %s name mime data",
                                  eg__lib_key(&s->a, s->ws, "mem:%s:file", s->id));
        if (rc != 0)
            retry_or_fail(s, rc, "reading the file failed: storage unavailable");
    } else {
        s->fail = "unknown source type";
        finish(s);
    }
}

void eg__lib_sync_run(eg_job_t *job, const cJSON *p)
{
    const char *ws = eg__lib_jstr(p, "ws"), *id = eg__lib_jstr(p, "id"),
               *sync = eg__lib_jstr(p, "n");
    int rc;

    if (!ws || !id || !sync) {
        eg_job_fail(job, "malformed payload");
        return;
    }
    sjob_t *s = eg_xcalloc(1, sizeof(*s));
    eg_arena_init(&s->a);
    s->job = job;
    s->ws = eg_arena_strdup(&s->a, ws);
    s->id = eg_arena_strdup(&s->a, id);
    s->sync = eg_arena_strdup(&s->a, sync);
    s->doc = eg_arena_printf(&s->a, "%s:%s", id, sync);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(p, "w");
    s->wait = cJSON_IsNumber(w) ? w->valueint : 0;
    rc = eg__lib_mem_read(ws, id, true, on_rec, s);
    if (rc != 0) {
        eg_job_retry(job, 0, eg_strerror(rc));
        sjob_free(s);
    }
}
