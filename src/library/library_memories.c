/* Memories: create (TEXT, URL, FILE), read, list, PATCH, DELETE, and file content arriving.
 *
 * Every change of an existing memory is a read-modify-write (a "mop"): read the record, build the
 * new one, write it with eg__lib_put's compare-and-set, and start over from the read when someone
 * else wrote in between. A change that starts a new content version pushes its sync job BEFORE
 * the write that names the version (eg__lib_sync_push explains why), so a crash can leave a job
 * without its version — which the worker drops — but never a SYNCHRONIZING memory without a job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/util.h"
#include "library_int.h"

/* ---- the record ------------------------------------------------------------------------------ */

static const char *source_name(const char *s)
{
    if (!s)
        return NULL;
    if (strcmp(s, "TEXT") == 0)
        return "TEXT";
    if (strcmp(s, "URL") == 0)
        return "URL";
    if (strcmp(s, "FILE") == 0)
        return "FILE";
    return NULL;
}

/* A new memory's record: Fency's keys in Fency's order, then the private object. */
static cJSON *new_record(const char *id, int64_t now, const char *source, const char *type_id,
                         const char *title, const cJSON *metadata, const char *sync,
                         const char *member)
{
    char t[EG__LIB_TIME_MAX];
    cJSON *rec = cJSON_CreateObject(), *priv;

    eg_time_iso_us(now, t);
    cJSON_AddStringToObject(rec, "id", id);
    cJSON_AddStringToObject(rec, "createdAt", t);
    cJSON_AddStringToObject(rec, "updatedAt", t);
    cJSON_AddStringToObject(rec, "sourceType", source);
    cJSON_AddStringToObject(rec, "typeId", type_id);
    cJSON_AddStringToObject(rec, "title", title);
    cJSON_AddNullToObject(rec, "content");
    cJSON_AddNullToObject(rec, "contentParts");
    cJSON_AddStringToObject(rec, "contentStatus", sync ? "SYNCHRONIZING" : "EMPTY");
    cJSON_AddItemToObject(rec, "metadata",
                          metadata ? cJSON_Duplicate(metadata, true) : cJSON_CreateObject());
    priv = cJSON_AddObjectToObject(rec, "_");
    if (sync)
        cJSON_AddStringToObject(priv, "sync", sync);
    else
        cJSON_AddNullToObject(priv, "sync");
    cJSON_AddNullToObject(priv, "reason");
    cJSON_AddStringToObject(priv, "member", member);
    return rec;
}

static cJSON *priv_of(cJSON *rec)
{
    cJSON *p = cJSON_GetObjectItemCaseSensitive(rec, "_");

    if (!cJSON_IsObject(p)) {
        p = cJSON_CreateObject();
        eg__lib_jset(rec, "_", p);
    }
    return p;
}

/* Start a new content version on rec: SYNCHRONIZING, no content, no reason. */
static void start_version(cJSON *rec, const char *sync)
{
    cJSON *p = priv_of(rec);

    eg__lib_jset(rec, "content", cJSON_CreateNull());
    eg__lib_jset(rec, "contentParts", cJSON_CreateNull());
    eg__lib_jset(rec, "contentStatus", cJSON_CreateString("SYNCHRONIZING"));
    eg__lib_jset(p, "sync", cJSON_CreateString(sync));
    eg__lib_jset(p, "reason", cJSON_CreateNull());
}

static void touch(cJSON *rec)
{
    char t[EG__LIB_TIME_MAX];

    eg_time_iso_us(eg_now_us(), t);
    eg__lib_jset(rec, "updatedAt", cJSON_CreateString(t));
}

/* ---- validation ------------------------------------------------------------------------------ */

static bool title_ok(const cJSON *v)
{
    return cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) <= EG__LIB_TITLE_MAX;
}

static bool url_ok(const cJSON *v)
{
    return cJSON_IsString(v) && strlen(v->valuestring) <= EG__LIB_URL_MAX &&
           (strncmp(v->valuestring, "http://", 7) == 0 ||
            strncmp(v->valuestring, "https://", 8) == 0) &&
           eg_httpc_url_check(v->valuestring) == 0;
}

/* metadata: absent -> NULL and ok; null -> {}; an object; anything else refused. */
static bool metadata_ok(const cJSON *v)
{
    return v == NULL || cJSON_IsNull(v) || cJSON_IsObject(v);
}

/* ---- read-modify-write ----------------------------------------------------------------------- */

typedef struct mop_s mop_t;

/* Build the change from the record as read (rec NULL: the memory does not exist): fill m->put
 * (and m->pub, the public memory after the change), or answer an error with *why. */
typedef int (*mop_build_fn)(mop_t *m, cJSON *rec, const char *raw, const char *content,
                            const char **why);

struct mop_s {
    eg_arena_t a;
    char ws[72], id[EG__LIB_ID_MAX];
    unsigned tries;
    mop_build_fn build;
    eg__lib_put_t put;
    cJSON *pub;        /* the memory after the change (public shape) */
    const char *event; /* emitted on success (NULL: none) */
    const char *purge[2];
    /* per operation */
    const cJSON *body;
    char sync[EG__LIB_SYNC_MAX];
    bool pushed;
    const char *file_name, *mime;
    const void *data;
    size_t len;
    eg_lib_json_fn cb;
    void (*file_cb)(void *, int);
    void *udata;
};

static mop_t *mop_new(const char *ws, const char *id, mop_build_fn build)
{
    mop_t *m = eg_xcalloc(1, sizeof(*m));

    eg_arena_init(&m->a);
    snprintf(m->ws, sizeof(m->ws), "%s", ws);
    snprintf(m->id, sizeof(m->id), "%s", id);
    m->build = build;
    return m;
}

static void mop_end(mop_t *m, int err, const char *why)
{
    if (err == 0 && m->event)
        eg__lib_emit(m->ws, m->event, m->pub);
    for (size_t i = 0; err == 0 && i < 2; i++)
        if (m->purge[i])
            eg__lib_purge_push(m->ws, m->purge[i]);
    if (m->cb)
        m->cb(m->udata, err, why, err == 0 ? m->pub : NULL);
    else if (m->file_cb)
        m->file_cb(m->udata, err);
    cJSON_Delete(m->pub);
    eg_arena_destroy(&m->a);
    free(m);
}

static int mop_run(mop_t *m);

static void on_mop_put(void *udata, int err)
{
    mop_t *m = udata;

    if (err == EG_ECONFLICT && ++m->tries < EG__LIB_PUT_TRIES) {
        cJSON_Delete(m->pub);
        m->pub = NULL;
        m->event = NULL;
        m->purge[0] = m->purge[1] = NULL;
        int rc = mop_run(m);
        if (rc != 0)
            mop_end(m, rc, NULL);
        return;
    }
    mop_end(m, err, err == EG_ENOTFOUND ? "memory not found" : NULL);
}

static void on_mop_pushed(void *udata, int err)
{
    mop_t *m = udata;

    if (err == 0) {
        m->pushed = true;
        err = eg__lib_put(&m->put, on_mop_put, m);
    }
    if (err != 0)
        mop_end(m, err, NULL);
}

static void on_mop_read(void *udata, int err, cJSON *rec, const char *raw, const char *content)
{
    mop_t *m = udata;
    const char *why = NULL;

    if (err != 0 && err != EG_ENOTFOUND) {
        mop_end(m, err, NULL);
        return;
    }
    memset(&m->put, 0, sizeof(m->put));
    err = m->build(m, rec, raw, content, &why);
    if (err == 0 && m->put.ws == NULL) {
        mop_end(m, 0, NULL); /* nothing to write */
        return;
    }
    /* A change that starts a content version pushes its job once, after the checks and before
     * the write (a retry after a lost race reuses it). */
    if (err == 0 && m->put.content == EG__LIB_CLEAR && m->sync[0] && !m->pushed)
        err = eg__lib_sync_push(m->ws, m->id, m->sync, on_mop_pushed, m);
    else if (err == 0)
        err = eg__lib_put(&m->put, on_mop_put, m);
    if (err != 0)
        mop_end(m, err, why);
}

static int mop_run(mop_t *m)
{
    return eg__lib_mem_read(m->ws, m->id, true, on_mop_read, m);
}

/* Start m; on a synchronous failure cb is not called. */
static int mop_start(mop_t *m)
{
    int rc = mop_run(m);

    if (rc != 0) {
        m->cb = NULL;
        m->file_cb = NULL;
        mop_end(m, rc, NULL);
    }
    return rc;
}

/* Fill the put fields every change of an existing record shares. */
static void put_common(mop_t *m, cJSON *rec, const char *raw)
{
    m->put.ws = m->ws;
    m->put.id = m->id;
    m->put.type_id = eg_arena_strdup(&m->a, eg__lib_jstr(rec, "typeId"));
    m->put.member = eg_arena_strdup(&m->a, eg__lib_pstr(rec, "member"));
    m->put.old = eg_arena_strdup(&m->a, raw);
}

static char *print_in(eg_arena_t *a, const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    char *r = eg_arena_strdup(a, s);

    free(s);
    return r;
}

/* ---- create ---------------------------------------------------------------------------------- */

static int build_create(mop_t *m, cJSON *rec, const char *raw, const char *content,
                        const char **why)
{
    const cJSON *b = m->body;
    const char *source = source_name(eg__lib_jstr(b, "sourceType"));
    const char *type_id = eg__lib_jstr(b, "memoryTypeId");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(b, "metadata");
    char member[EG_ZPAGE_MEMBER_MAX];
    int64_t now = eg_now_us();

    (void)raw;
    (void)content;
    if (rec) {
        *why = "memory id collision";
        return EG_EINTERNAL; /* 128 random bits: not expected */
    }
    eg_zpage_member(now, m->id, member, sizeof(member));
    cJSON *n = new_record(m->id, now, source, type_id, eg__lib_jstr(b, "title"),
                          cJSON_IsObject(md) ? md : NULL, m->sync[0] ? m->sync : NULL, member);
    cJSON *p = priv_of(n);
    if (strcmp(source, "TEXT") == 0)
        cJSON_AddStringToObject(p, "text", eg__lib_jstr(b, "text"));
    else if (strcmp(source, "URL") == 0)
        cJSON_AddStringToObject(p, "url", eg__lib_jstr(b, "url"));
    m->put.ws = m->ws;
    m->put.id = m->id;
    m->put.type_id = eg_arena_strdup(&m->a, type_id);
    m->put.member = eg_arena_strdup(&m->a, member);
    m->put.rec = print_in(&m->a, n);
    m->pub = eg__lib_mem_public(n, NULL);
    m->event = "memory.created";
    cJSON_Delete(n);
    return 0;
}

static void on_create_put(void *udata, int err)
{
    mop_t *m = udata;

    mop_end(m, err, err == EG_ENOTFOUND ? "memory type not found" : NULL);
}

static void on_create_pushed(void *udata, int err)
{
    mop_t *m = udata;

    if (err == 0)
        err = eg__lib_put(&m->put, on_create_put, m);
    if (err != 0)
        mop_end(m, err, NULL);
}

int eg_lib_memory_create(const char *ws, const cJSON *body, const char **why, eg_lib_json_fn cb,
                         void *udata)
{
    char id[EG__LIB_ID_MAX];
    const char *source, *type_id;
    const cJSON *text, *url;

    *why = NULL;
    if (!eg__lib_ws_valid(ws) || !cb)
        return EG_EINVAL;
    if (!cJSON_IsObject(body)) {
        *why = "the body must be a JSON object";
        return EG_EINVAL;
    }
    type_id = eg__lib_jstr(body, "memoryTypeId");
    if (!type_id) {
        *why = "memoryTypeId is required (a memory type id)";
        return EG_EINVAL;
    }
    source = source_name(eg__lib_jstr(body, "sourceType"));
    if (!source) {
        *why = "sourceType is required: TEXT, URL or FILE";
        return EG_EINVAL;
    }
    if (!title_ok(cJSON_GetObjectItemCaseSensitive(body, "title"))) {
        *why = "title is required (a non-empty string of at most 1000 bytes)";
        return EG_EINVAL;
    }
    text = cJSON_GetObjectItemCaseSensitive(body, "text");
    url = cJSON_GetObjectItemCaseSensitive(body, "url");
    if (strcmp(source, "TEXT") == 0) {
        if (!cJSON_IsString(text) || !text->valuestring[0]) {
            *why = "text is required for a TEXT memory (a non-empty string)";
            return EG_EINVAL;
        }
    } else if (text && !cJSON_IsNull(text)) {
        *why = "text is only accepted for a TEXT memory";
        return EG_EINVAL;
    }
    if (strcmp(source, "URL") == 0) {
        if (!url_ok(url)) {
            *why = "url is required for a URL memory (an http or https URL)";
            return EG_EINVAL;
        }
    } else if (url && !cJSON_IsNull(url)) {
        *why = "url is only accepted for a URL memory";
        return EG_EINVAL;
    }
    if (!metadata_ok(cJSON_GetObjectItemCaseSensitive(body, "metadata"))) {
        *why = "metadata must be an object";
        return EG_EINVAL;
    }
    if (!eg_hexid_valid(type_id, "mty")) {
        *why = "memory type not found";
        return EG_ENOTFOUND;
    }

    eg_hexid_new("mem", id, EG__LIB_ID_MAX);
    mop_t *m = mop_new(ws, id, build_create);
    m->body = body;
    m->cb = cb;
    m->udata = udata;
    if (strcmp(source, "FILE") != 0)
        eg__lib_sync_new(m->sync);
    int rc = build_create(m, NULL, NULL, NULL, why);
    if (rc == 0)
        rc = m->sync[0] ? eg__lib_sync_push(ws, id, m->sync, on_create_pushed, m)
                        : eg__lib_put(&m->put, on_create_put, m);
    if (rc != 0) {
        m->cb = NULL;
        mop_end(m, rc, NULL);
    }
    return rc;
}

/* ---- get and pages --------------------------------------------------------------------------- */

typedef struct {
    void (*cb)(void *, int, const cJSON *);
    eg_lib_json_fn jcb;
    void *udata;
} get_t;

static void on_get(void *udata, int err, cJSON *rec, const char *raw, const char *content)
{
    get_t *g = udata;
    cJSON *pub = err == 0 ? eg__lib_mem_public(rec, content) : NULL;

    (void)raw;
    if (g->cb)
        g->cb(g->udata, err, pub);
    else
        g->jcb(g->udata, err, err == EG_ENOTFOUND ? "memory not found" : NULL, pub);
    cJSON_Delete(pub);
    free(g);
}

int eg_lib_memory_get(const char *ws, const char *id, void (*cb)(void *, int, const cJSON *),
                      void *udata)
{
    int rc;

    if (!eg__lib_ws_valid(ws) || !cb || !id)
        return EG_EINVAL;
    if (!eg_hexid_valid(id, "mem"))
        return EG_ENOTFOUND;
    get_t *g = eg_xcalloc(1, sizeof(*g));
    g->cb = cb;
    g->udata = udata;
    rc = eg__lib_mem_read(ws, id, true, on_get, g);
    if (rc != 0)
        free(g);
    return rc;
}

typedef struct {
    eg_arena_t a;
    char ws[72];
    eg_lib_page_fn cb;
    void *udata;
    eg_zpage_t page; /* copied: ids, values, cursors in the arena */
} mpage_t;

static void mpage_end(mpage_t *p, int err, cJSON *items)
{
    p->cb(p->udata, err, items, err == 0 ? &p->page : NULL);
    cJSON_Delete(items);
    eg_arena_destroy(&p->a);
    free(p);
}

static void on_contents(void *udata, int err, redisReply *r)
{
    mpage_t *p = udata;

    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != p->page.n))
        err = EG_EREDIS;
    if (err != 0) {
        mpage_end(p, err, NULL);
        return;
    }
    cJSON *items = cJSON_CreateArray();
    for (size_t i = 0; i < p->page.n; i++) {
        cJSON *rec = cJSON_Parse(p->page.values[i]);
        const redisReply *c = r->element[i];
        if (!rec)
            continue;
        cJSON_AddItemToArray(
            items, eg__lib_mem_public(rec, c->type == REDIS_REPLY_STRING ? c->str : NULL));
        cJSON_Delete(rec);
    }
    mpage_end(p, 0, items);
}

static void on_mem_page(void *udata, int err, const eg_zpage_t *page)
{
    mpage_t *p = udata;

    if (err != 0) {
        mpage_end(p, err, NULL);
        return;
    }
    const char **ids = eg_arena_calloc(&p->a, (page->n + 1) * sizeof(*ids));
    const char **vals = eg_arena_calloc(&p->a, (page->n + 1) * sizeof(*vals));
    for (size_t i = 0; i < page->n; i++) {
        ids[i] = eg_arena_strdup(&p->a, page->ids[i]);
        vals[i] = eg_arena_strdup(&p->a, page->values[i]);
    }
    p->page.ids = ids;
    p->page.values = vals;
    p->page.n = page->n;
    p->page.prev = eg_arena_strdup(&p->a, page->prev);
    p->page.next = eg_arena_strdup(&p->a, page->next);
    if (page->n == 0) {
        mpage_end(p, 0, cJSON_CreateArray());
        return;
    }
    /* The contents of the page's memories, in one MGET (same slot). */
    const char **argv = eg_arena_calloc(&p->a, (page->n + 1) * sizeof(*argv));
    argv[0] = "MGET";
    for (size_t i = 0; i < page->n; i++)
        argv[i + 1] = eg__lib_key(&p->a, p->ws, "mem:%s:txt", ids[i]);
    int rc = eg_store_commandv(on_contents, p, (int)page->n + 1, argv, NULL);
    if (rc != 0)
        mpage_end(p, rc, NULL);
}

int eg_lib_memory_page(const char *ws, const eg_zpage_req_t *q, eg_lib_page_fn cb, void *udata)
{
    eg_zpage_req_t r = *q;
    int rc;

    if (!eg__lib_ws_valid(ws) || !cb)
        return EG_EINVAL;
    mpage_t *p = eg_xcalloc(1, sizeof(*p));
    eg_arena_init(&p->a);
    snprintf(p->ws, sizeof(p->ws), "%s", ws);
    p->cb = cb;
    p->udata = udata;
    r.zkey = eg__lib_key(&p->a, ws, "mem:z");
    r.hkey = eg__lib_key(&p->a, ws, "mem");
    rc = eg_zpage(&r, on_mem_page, p);
    if (rc != 0) {
        eg_arena_destroy(&p->a);
        free(p);
    }
    return rc;
}

/* ---- PATCH ----------------------------------------------------------------------------------- */

static int build_patch(mop_t *m, cJSON *rec, const char *raw, const char *content, const char **why)
{
    const cJSON *b = m->body;
    const cJSON *title = cJSON_GetObjectItemCaseSensitive(b, "title");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(b, "text");
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(b, "url");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(b, "metadata");
    const char *source;
    bool resync = false;

    if (!rec) {
        *why = "memory not found";
        return EG_ENOTFOUND;
    }
    source = eg__lib_jstr(rec, "sourceType");
    if (text && strcmp(source, "TEXT") != 0) {
        *why = "text can only be changed on a TEXT memory";
        return EG_EINVAL;
    }
    if (url && strcmp(source, "URL") != 0) {
        *why = "url can only be changed on a URL memory";
        return EG_EINVAL;
    }
    if (!title && !text && !url && !md) {
        m->pub = eg__lib_mem_public(rec, content); /* nothing asked: the memory as it is */
        return 0;
    }
    cJSON *n = cJSON_Duplicate(rec, true);
    if (title)
        eg__lib_jset(n, "title", cJSON_CreateString(title->valuestring));
    if (md)
        eg__lib_jset(n, "metadata",
                     cJSON_IsObject(md) ? cJSON_Duplicate(md, true) : cJSON_CreateObject());
    if (text) {
        eg__lib_jset(priv_of(n), "text", cJSON_CreateString(text->valuestring));
        resync = true;
    }
    if (url) {
        eg__lib_jset(priv_of(n), "url", cJSON_CreateString(url->valuestring));
        resync = true;
    }
    /* A METADATA memory's text is its title and metadata: a change of either re-synchronises
     * it, and its identity follows its metadata in the type's index. */
    const cJSON *derived = cJSON_GetObjectItemCaseSensitive(eg__lib_priv(rec), "derived");
    if (cJSON_IsTrue(derived) && (title || md)) {
        eg__lib_jset(
            priv_of(n), "text",
            cJSON_CreateString(eg__lib_metadata_text(
                &m->a, eg__lib_jstr(n, "title"), cJSON_GetObjectItemCaseSensitive(n, "metadata"))));
        if (!m->sync[0])
            eg__lib_sync_new(m->sync);
        resync = true;
    }
    const char *ikey = eg__lib_pstr(rec, "ikey"), *old_ident = eg__lib_pstr(rec, "ident");
    char *new_ident =
        ikey && md ? eg__lib_ident(&m->a, cJSON_GetObjectItemCaseSensitive(n, "metadata"), ikey)
                   : NULL;
    touch(n);
    put_common(m, rec, raw);
    if (ikey && md && (!old_ident || !new_ident || strcmp(old_ident, new_ident) != 0)) {
        m->put.ident_old = old_ident ? eg_arena_strdup(&m->a, old_ident) : NULL;
        m->put.ident = new_ident;
        if (new_ident)
            eg__lib_jset(priv_of(n), "ident", cJSON_CreateString(new_ident));
        else
            cJSON_DeleteItemFromObjectCaseSensitive(priv_of(n), "ident");
    }
    if (resync) {
        const char *doc = eg__lib_pstr(rec, "doc");
        const char *old = eg__lib_pstr(rec, "sync");
        start_version(n, m->sync);
        m->put.content = EG__LIB_CLEAR;
        /* The indexed chunks of the content being replaced go; so does a version still being
         * synchronised (its worker finds the memory moved on and drops its own too). */
        m->purge[0] = doc ? eg_arena_strdup(&m->a, doc) : NULL;
        if (old && (!doc || strstr(doc, old) == NULL))
            m->purge[1] = eg_arena_printf(&m->a, "%s:%s", m->id, old);
        content = NULL;
    }
    m->put.rec = print_in(&m->a, n);
    m->pub = eg__lib_mem_public(n, content);
    m->event = "memory.updated";
    cJSON_Delete(n);
    return 0;
}

int eg_lib_memory_patch(const char *ws, const char *id, const cJSON *body, const char **why,
                        eg_lib_json_fn cb, void *udata)
{
    const cJSON *title, *text, *url;

    *why = NULL;
    if (!eg__lib_ws_valid(ws) || !cb || !id)
        return EG_EINVAL;
    if (!cJSON_IsObject(body)) {
        *why = "the body must be a JSON object";
        return EG_EINVAL;
    }
    title = cJSON_GetObjectItemCaseSensitive(body, "title");
    text = cJSON_GetObjectItemCaseSensitive(body, "text");
    url = cJSON_GetObjectItemCaseSensitive(body, "url");
    if (title && !title_ok(title)) {
        *why = "title must be a non-empty string of at most 1000 bytes";
        return EG_EINVAL;
    }
    if (text && !(cJSON_IsString(text) && text->valuestring[0])) {
        *why = "text must be a non-empty string";
        return EG_EINVAL;
    }
    if (url && !url_ok(url)) {
        *why = "url must be an http or https URL";
        return EG_EINVAL;
    }
    if (!metadata_ok(cJSON_GetObjectItemCaseSensitive(body, "metadata"))) {
        *why = "metadata must be an object";
        return EG_EINVAL;
    }
    if (cJSON_GetObjectItemCaseSensitive(body, "sourceType") ||
        cJSON_GetObjectItemCaseSensitive(body, "memoryTypeId") ||
        cJSON_GetObjectItemCaseSensitive(body, "typeId")) {
        *why = "sourceType and memoryTypeId cannot be changed";
        return EG_EINVAL;
    }
    if (!eg_hexid_valid(id, "mem")) {
        *why = "memory not found";
        return EG_ENOTFOUND;
    }
    mop_t *m = mop_new(ws, id, build_patch);
    m->body = body;
    m->cb = cb;
    m->udata = udata;
    if (text || url)
        eg__lib_sync_new(m->sync);
    return mop_start(m);
}

/* ---- DELETE ---------------------------------------------------------------------------------- */

static int build_delete(mop_t *m, cJSON *rec, const char *raw, const char *content,
                        const char **why)
{
    const char *doc, *sync;

    if (!rec) {
        *why = "memory not found";
        return EG_ENOTFOUND;
    }
    put_common(m, rec, raw);
    m->put.rec = NULL;
    m->put.ident = eg_arena_strdup(&m->a, eg__lib_pstr(rec, "ident"));
    doc = eg__lib_pstr(rec, "doc");
    sync = eg__lib_pstr(rec, "sync");
    m->purge[0] = doc ? eg_arena_strdup(&m->a, doc) : NULL;
    if (sync && (!doc || strstr(doc, sync) == NULL))
        m->purge[1] = eg_arena_printf(&m->a, "%s:%s", m->id, sync);
    m->pub = eg__lib_mem_public(rec, content);
    m->event = "memory.deleted";
    return 0;
}

int eg_lib_memory_delete(const char *ws, const char *id, eg_lib_json_fn cb, void *udata)
{
    if (!eg__lib_ws_valid(ws) || !cb || !id)
        return EG_EINVAL;
    if (!eg_hexid_valid(id, "mem"))
        return EG_ENOTFOUND;
    mop_t *m = mop_new(ws, id, build_delete);
    m->cb = cb;
    m->udata = udata;
    return mop_start(m);
}

/* ---- file content ---------------------------------------------------------------------------- */

static int build_file(mop_t *m, cJSON *rec, const char *raw, const char *content, const char **why)
{
    const char *doc = eg__lib_pstr(rec, "doc"), *old = eg__lib_pstr(rec, "sync");

    (void)content;
    if (!rec) {
        *why = "memory not found";
        return EG_ENOTFOUND;
    }
    if (strcmp(eg__lib_jstr(rec, "sourceType"), "FILE") != 0) {
        *why = "the memory is not a FILE memory";
        return EG_EINVAL;
    }
    cJSON *n = cJSON_Duplicate(rec, true);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "name", m->file_name ? m->file_name : "");
    cJSON_AddStringToObject(f, "mime", m->mime ? m->mime : "");
    cJSON_AddNumberToObject(f, "size", (double)m->len);
    eg__lib_jset(priv_of(n), "file", f);
    start_version(n, m->sync);
    touch(n);
    put_common(m, rec, raw);
    m->put.rec = print_in(&m->a, n);
    m->put.content = EG__LIB_CLEAR;
    m->put.file = EG__LIB_SET;
    m->put.file_name = m->file_name ? m->file_name : "";
    m->put.mime = m->mime ? m->mime : "";
    m->put.data = m->data;
    m->put.len = m->len;
    m->purge[0] = doc ? eg_arena_strdup(&m->a, doc) : NULL;
    if (old && (!doc || strstr(doc, old) == NULL))
        m->purge[1] = eg_arena_printf(&m->a, "%s:%s", m->id, old);
    m->pub = eg__lib_mem_public(n, NULL);
    m->event = "memory.updated";
    cJSON_Delete(n);
    return 0;
}

int eg_lib_memory_set_file(const char *ws, const char *id, const char *file_name, const char *mime,
                           const void *data, size_t len, void (*cb)(void *, int), void *udata)
{
    if (!eg__lib_ws_valid(ws) || !cb || !id || (!data && len > 0))
        return EG_EINVAL;
    if (!eg_hexid_valid(id, "mem"))
        return EG_ENOTFOUND;
    mop_t *m = mop_new(ws, id, build_file);
    m->file_cb = cb;
    m->udata = udata;
    m->file_name = file_name ? eg_arena_strdup(&m->a, file_name) : NULL;
    m->mime = mime ? eg_arena_strdup(&m->a, mime) : NULL;
    /* The bytes are copied: the caller's buffer may go once this returns. */
    void *copy = eg_arena_alloc(&m->a, len + 1);
    if (len)
        memcpy(copy, data, len);
    m->data = copy;
    m->len = len;
    eg__lib_sync_new(m->sync);
    return mop_start(m);
}
