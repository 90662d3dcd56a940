/* Retain requests: validation, the synchronous path (one run, answered when it is stored), and
 * the asynchronous submission (operation records, sub-batches, idempotency, job pushes). The
 * pipeline itself is retain_run.c; the queue worker retain_worker.c. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/llm.h"
#include "engram/log.h"
#include "engram/ops.h"
#include "engram/queue.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/retain_int.h"

static struct {
    bool started;
    uv_loop_t *loop;
    eg_extractor_t *x;
    eg_embedder_t *e;
    bool custom_x, custom_e; /* set by eg_retain_set_providers */
    eg_llm_t *x_llm;         /* the model s_mod.x extracts with (NULL: the builtin extractor) */
} s_mod;

bool eg__retain_started(void)
{
    return s_mod.started;
}

uv_loop_t *eg__retain_loop(void)
{
    return s_mod.loop;
}

bool eg__retain_builtin(void)
{
    eg__retain_extractor();
    return !s_mod.custom_x && !s_mod.x_llm && !s_mod.custom_e;
}

int64_t eg__retain_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The LLM extractor while the retain operation has a chat model (eg_llm_for), else the builtin
 * one. Checked on every use, so the choice follows eg_llm_start / eg_llm_shutdown whichever order
 * they run in relative to eg_retain_start. */
eg_extractor_t *eg__retain_extractor(void)
{
    if (!s_mod.custom_x) {
        eg_llm_t *llm = eg_llm_for(EG_LLM_OP_RETAIN);
        if (!s_mod.x || llm != s_mod.x_llm) {
            eg_extract_destroy(s_mod.x);
            s_mod.x = llm ? eg_extract_llm_new(llm) : eg_extract_builtin_new();
            s_mod.x_llm = llm;
        }
    }
    return s_mod.x;
}

/* A provider set by eg_retain_set_providers (tests) wins; otherwise the process's embedder
 * (engram/llm.h: builtin until eg_llm_start, then whatever ENGRAM_EMBEDDINGS_* chose), which
 * retain borrows and never frees. */
eg_embedder_t *eg__retain_embedder(void)
{
    return s_mod.e != NULL ? s_mod.e : eg_llm_embedder();
}

void eg_retain_set_providers(eg_extractor_t *x, eg_embedder_t *e)
{
    if (x) {
        eg_extract_destroy(s_mod.x);
        s_mod.x = x;
        s_mod.x_llm = NULL;
        s_mod.custom_x = true;
    }
    if (e) {
        eg_embed_destroy(s_mod.e);
        s_mod.e = e;
        s_mod.custom_e = true;
    }
}

char *eg__retain_scope_id(eg_arena_t *a, const char *ws, const char *bank)
{
    return eg_arena_printf(a, "%s/%s", ws, bank);
}

int eg_retain_start(uv_loop_t *loop)
{
    s_mod.loop = loop;
    eg__retain_extractor();
    eg__retain_embedder();
    int rc = eg__retain_worker_start();
    if (rc == 0)
        s_mod.started = true;
    return rc;
}

typedef struct {
    void (*done)(void *);
    void *udata;
} stop_t;

static void on_worker_stopped(void *udata)
{
    stop_t *st = udata;
    void (*done)(void *) = st->done;
    void *ud = st->udata;

    free(st);
    s_mod.started = false;
    eg_extract_destroy(s_mod.x);
    eg_embed_destroy(s_mod.e);
    s_mod.x = NULL;
    s_mod.e = NULL;
    s_mod.x_llm = NULL;
    s_mod.custom_x = s_mod.custom_e = false;
    if (done)
        done(ud);
}

void eg_retain_stop(void (*done)(void *), void *udata)
{
    stop_t *st = eg_xmalloc(sizeof(*st));
    st->done = done;
    st->udata = udata;
    eg__retain_worker_stop(on_worker_stopped, st);
}

/* ---- validation ----------------------------------------------------------------------------- */

static bool tags_ok(const char *const *tags, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!tags[i] || strlen(tags[i]) > EG_MEM_TAG_MAX)
            return false;
    return true;
}

static int validate(const char *ws, const char *bank, const eg_retain_req_t *req)
{
    if (!ws || !bank || !req || req->nitems == 0 || !req->items ||
        !eg_bank_id_valid(bank, strlen(bank)) || !tags_ok(req->document_tags, req->ndocument_tags))
        return EG_EINVAL;
    if (req->operation_id && !eg_uuid_valid(req->operation_id))
        return EG_EINVAL;
    for (size_t i = 0; i < req->nitems; i++) {
        const eg_retain_item_t *it = &req->items[i];
        if (!it->content || !tags_ok(it->tags, it->ntags) ||
            it->ntags + req->ndocument_tags > EG_MEM_TAGS_MAX ||
            (it->document_id &&
             (it->document_id[0] == '\0' || strlen(it->document_id) > EG_MEM_DOC_ID_MAX)) ||
            (it->metadata && !cJSON_IsObject(it->metadata)))
            return EG_EINVAL;
        for (size_t k = 0; k < it->nentities; k++)
            if (!it->entities[k].text)
                return EG_EINVAL;
    }
    return 0;
}

/* ---- synchronous ---------------------------------------------------------------------------- */

typedef struct {
    eg_retain_fn cb;
    void *udata;
    size_t nitems;
} sync_t;

static void on_sync_done(eg__run_t *r, int err, void *udata)
{
    sync_t *s = udata;
    eg_retain_result_t res;

    memset(&res, 0, sizeof(res));
    res.items_count = s->nitems;
    if (r)
        res.usage = r->usage;
    if (err == 0) {
        res.units = r->units_written;
        res.documents = r->ndocs;
    } else {
        res.error = r ? r->errmsg : NULL;
    }
    s->cb(s->udata, err, err == 0 || res.error ? &res : NULL);
    free(s);
}

/* ---- asynchronous submission ---------------------------------------------------------------- */

typedef struct {
    eg_arena_t arena;
    char *ws, *bank, *scope;
    eg_retain_fn cb;
    void *udata;
    eg_retain_item_t *items; /* timestamps resolved */
    size_t nitems;
    const char *const *dtags;
    size_t ndtags;
    char op_id[EG_MEM_UUID_LEN + 1];
    char hash[65];
    /* Sub-batches: batch b holds order[starts[b] .. starts[b + 1]). */
    size_t *order, *starts, nbatches;
    const char **child_ids; /* nbatches ids; the op itself when not split */
    char **payloads;        /* per batch: the job payload (JSON text) */
    char *parent_meta;
    size_t cursor;
    bool replayed;
    int retried_create;
} submit_t;

static void submit_free(submit_t *s)
{
    eg_arena_destroy(&s->arena);
    free(s);
}

static void submit_reply(submit_t *s, int err)
{
    eg_retain_result_t res;

    memset(&res, 0, sizeof(res));
    res.items_count = s->nitems;
    res.operation_id = s->op_id;
    res.operation_ids = s->child_ids;
    res.noperation_ids = s->nbatches;
    res.replayed = s->replayed;
    s->cb(s->udata, err, err == 0 ? &res : NULL);
    submit_free(s);
}

static cJSON *str_array(const char *const *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

/* The single document id of a batch's items (when they all name the same one), else NULL. */
static const char *batch_doc(const submit_t *s, size_t b)
{
    const char *doc = NULL;
    size_t end = b + 1 < s->nbatches ? s->starts[b + 1] : s->nitems;

    for (size_t k = s->starts[b]; k < end; k++) {
        const char *d = s->items[s->order[k]].document_id;
        if (!d || (doc && strcmp(doc, d) != 0))
            return NULL;
        doc = d;
    }
    return doc;
}

/* Split, name the operations, and build each job's payload (also kept in the operation's meta
 * as "payload", from which a retry re-queues it). */
static void plan(submit_t *s)
{
    eg_arena_t *a = &s->arena;

    s->order = eg_arena_alloc(a, s->nitems * sizeof(*s->order));
    s->starts = eg_arena_alloc(a, (s->nitems + 1) * sizeof(*s->starts));
    s->nbatches =
        eg_retain_split(s->items, s->nitems, EG_RETAIN_SUBBATCH_TOKENS, s->order, s->starts);
    s->child_ids = eg_arena_alloc(a, s->nbatches * sizeof(*s->child_ids));
    s->payloads = eg_arena_alloc(a, s->nbatches * sizeof(*s->payloads));
    for (size_t b = 0; b < s->nbatches; b++) {
        size_t end = b + 1 < s->nbatches ? s->starts[b + 1] : s->nitems;
        char *id = eg_arena_alloc(a, EG_MEM_UUID_LEN + 1);
        if (s->nbatches == 1)
            memcpy(id, s->op_id, EG_MEM_UUID_LEN + 1);
        else
            eg_retain_derived_id(s->op_id, "batch", eg_arena_printf(a, "%zu", b), id);
        s->child_ids[b] = id;

        eg_retain_item_t *bi = eg_arena_alloc(a, (end - s->starts[b]) * sizeof(*bi));
        cJSON *idx = cJSON_CreateArray();
        for (size_t k = s->starts[b]; k < end; k++) {
            bi[k - s->starts[b]] = s->items[s->order[k]];
            cJSON_AddItemToArray(idx, cJSON_CreateNumber((double)s->order[k]));
        }
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "ws", s->ws);
        cJSON_AddStringToObject(p, "bank", s->bank);
        cJSON_AddStringToObject(p, "op", id);
        if (s->nbatches > 1)
            cJSON_AddStringToObject(p, "parent", s->op_id);
        cJSON_AddItemToObject(p, "indexes", idx);
        cJSON_AddItemToObject(p, "items", eg_retain_items_json(bi, end - s->starts[b]));
        cJSON_AddItemToObject(p, "document_tags", str_array(s->dtags, s->ndtags));
        char *txt = cJSON_PrintUnformatted(p);
        s->payloads[b] = eg_arena_strdup(a, txt);
        free(txt);
        cJSON_Delete(p);
    }
}

/* The meta of batch b's operation (or the parent's, b == SIZE_MAX). */
static char *op_meta(submit_t *s, size_t b)
{
    cJSON *m = cJSON_CreateObject();
    const char *doc = NULL;

    if (b == SIZE_MAX) {
        cJSON_AddNumberToObject(m, "items_count", (double)s->nitems);
        cJSON_AddStringToObject(m, "payload_sha256", s->hash);
        cJSON_AddItemToObject(m, "children", str_array(s->child_ids, s->nbatches));
    } else {
        size_t end = b + 1 < s->nbatches ? s->starts[b + 1] : s->nitems;
        cJSON_AddNumberToObject(m, "items_count", (double)(end - s->starts[b]));
        if (s->nbatches == 1) {
            cJSON_AddStringToObject(m, "payload_sha256", s->hash);
        } else {
            cJSON_AddStringToObject(m, "parent", s->op_id);
            cJSON_AddNumberToObject(m, "sub_batch_index", (double)b);
        }
        if ((doc = batch_doc(s, b)))
            cJSON_AddStringToObject(m, "document_id", doc);
        cJSON_AddItemToObject(m, "payload", cJSON_Parse(s->payloads[b]));
    }
    char *txt = cJSON_PrintUnformatted(m);
    char *out = eg_arena_strdup(&s->arena, txt);
    free(txt);
    cJSON_Delete(m);
    return out;
}

static void push_next(submit_t *s);

static void on_pushed(void *udata, int err, bool queued)
{
    submit_t *s = udata;

    (void)queued;
    if (err != 0) {
        eg_log_warn("retain: queueing operation %s failed: %s", s->child_ids[s->cursor],
                    eg_strerror(err));
        submit_reply(s, err);
        return;
    }
    s->cursor++;
    push_next(s);
}

/* Push every batch's job (job id = its operation id: pushing again is a no-op, which is what an
 * idempotent replay relies on to requeue jobs a crash may have lost). */
static void push_next(submit_t *s)
{
    if (s->cursor >= s->nbatches) {
        submit_reply(s, 0);
        return;
    }
    const char *p = s->payloads[s->cursor];
    int rc = eg__retain_push(s->child_ids[s->cursor], p, strlen(p), on_pushed, s);
    if (rc != 0)
        submit_reply(s, rc);
}

static void create_next(submit_t *s);
static void lookup_op(submit_t *s);

static void on_created(void *udata, int err, const eg_op_t *op)
{
    submit_t *s = udata;

    (void)op;
    if (err == EG_ECONFLICT && s->cursor == 0 && s->retried_create++ == 0) {
        /* A concurrent request with this operation_id won: answer as a replay of it. */
        lookup_op(s);
        return;
    }
    if (err != 0 && err != EG_ECONFLICT) {
        submit_reply(s, err);
        return;
    }
    s->cursor++;
    create_next(s);
}

/* Records first (the parent, then each sub-batch), then jobs: a job never runs without its
 * record. A crash in between leaves pending records whose jobs a replay of the request pushes. */
static void create_next(submit_t *s)
{
    size_t nops = s->nbatches > 1 ? s->nbatches + 1 : 1;
    int rc;

    if (s->cursor >= nops) {
        s->cursor = 0;
        push_next(s);
        return;
    }
    if (s->nbatches > 1 && s->cursor == 0)
        rc = eg_op_create("b", s->scope, s->op_id, EG_RETAIN_OP_KIND, op_meta(s, SIZE_MAX),
                          on_created, s);
    else {
        size_t b = s->nbatches > 1 ? s->cursor - 1 : 0;
        rc = eg_op_create("b", s->scope, s->child_ids[b], EG_RETAIN_OP_KIND, op_meta(s, b),
                          on_created, s);
    }
    if (rc != 0)
        submit_reply(s, rc);
}

static void on_existing(void *udata, int err, const eg_op_t *op)
{
    submit_t *s = udata;

    if (err == EG_ENOTFOUND) {
        s->cursor = 0;
        create_next(s);
        return;
    }
    if (err != 0) {
        submit_reply(s, err);
        return;
    }
    cJSON *meta = cJSON_Parse(op->meta);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(meta, "payload_sha256");
    bool same = strcmp(op->kind, EG_RETAIN_OP_KIND) == 0 && cJSON_IsString(h) &&
                strcmp(h->valuestring, s->hash) == 0;
    cJSON_Delete(meta);
    if (!same) {
        submit_reply(s, EG_ECONFLICT);
        return;
    }
    /* The same request again: the same plan (ids are derived), its jobs pushed again. */
    s->replayed = true;
    s->cursor = 0;
    push_next(s);
}

static void lookup_op(submit_t *s)
{
    int rc = eg_op_get("b", s->scope, s->op_id, on_existing, s);
    if (rc != 0)
        submit_reply(s, rc);
}

static void on_async_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    submit_t *s = udata;

    (void)bank;
    (void)created;
    if (err != 0) {
        submit_reply(s, err);
        return;
    }
    lookup_op(s);
}

static int submit(const char *ws, const char *bank, const eg_retain_req_t *req, eg_retain_fn cb,
                  void *udata)
{
    submit_t *s = eg_xcalloc(1, sizeof(*s));
    eg_arena_t *a = &s->arena;
    int64_t now = eg__retain_now_us();

    eg_arena_init(a);
    s->ws = eg_arena_strdup(a, ws);
    s->bank = eg_arena_strdup(a, bank);
    s->scope = eg__retain_scope_id(a, ws, bank);
    s->cb = cb;
    s->udata = udata;
    s->nitems = req->nitems;
    s->items = eg_arena_alloc(a, req->nitems * sizeof(*s->items));
    for (size_t i = 0; i < req->nitems; i++) {
        s->items[i] = req->items[i];
        if (s->items[i].timestamp == EG_RETAIN_TIME_NOW)
            s->items[i].timestamp = now;
    }
    s->dtags = req->document_tags;
    s->ndtags = req->ndocument_tags;
    if (req->operation_id)
        snprintf(s->op_id, sizeof(s->op_id), "%s", req->operation_id);
    else
        eg_uuid_v4(s->op_id);

    /* The idempotency hash covers the request as given (a "now" timestamp hashes as null, so a
     * replay of a request without timestamps still matches). */
    cJSON *h = cJSON_CreateObject();
    cJSON *hi = eg_retain_items_json(req->items, req->nitems);
    cJSON *it;
    cJSON_ArrayForEach(it, hi)
    {
        cJSON *ts = cJSON_GetObjectItemCaseSensitive(it, "timestamp");
        if (cJSON_IsNumber(ts) && ts->valuedouble == (double)EG_RETAIN_TIME_NOW)
            cJSON_ReplaceItemInObject(it, "timestamp", cJSON_CreateString("now"));
    }
    cJSON_AddItemToObject(h, "items", hi);
    cJSON_AddItemToObject(h, "document_tags", str_array(req->document_tags, req->ndocument_tags));
    char *txt = cJSON_PrintUnformatted(h);
    eg_sha256_hex(txt, strlen(txt), s->hash);
    free(txt);
    cJSON_Delete(h);

    plan(s);
    int rc = eg_bank_put(ws, bank, NULL, on_async_bank, s);
    if (rc != 0)
        submit_free(s);
    return rc;
}

int eg_retain(const char *ws_id, const char *bank_id, const eg_retain_req_t *req, eg_retain_fn cb,
              void *udata)
{
    int rc = validate(ws_id, bank_id, req);

    if (rc != 0 || !cb)
        return rc ? rc : EG_EINVAL;
    if (!s_mod.started)
        return EG_EUNAVAIL;
    if (req->async)
        return submit(ws_id, bank_id, req, cb, udata);

    sync_t *s = eg_xmalloc(sizeof(*s));
    s->cb = cb;
    s->udata = udata;
    s->nitems = req->nitems;
    rc = eg__retain_run(ws_id, bank_id, req->items, NULL, req->nitems, req->document_tags,
                        req->ndocument_tags, NULL, eg__retain_now_us(), on_sync_done, s);
    if (rc != 0)
        free(s);
    return rc;
}
