/* Bank operations (engram/bankops.h) over the operation records of engram/ops.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/bankops.h"
#include "engram/error.h"
#include "engram/util.h"

#define CHILDREN_MAX 256 /* children one operation shows */

static struct {
    char kind[64];
    eg_bankops_retry_fn fn;
} retry_fns[EG_BANKOPS_KINDS_MAX];

int eg_bankops_set_retry(const char *kind, eg_bankops_retry_fn fn)
{
    size_t free_at = EG_BANKOPS_KINDS_MAX;

    if (kind == NULL || kind[0] == '\0' || strlen(kind) >= sizeof(retry_fns[0].kind))
        return EG_EINVAL;
    for (size_t i = 0; i < EG_BANKOPS_KINDS_MAX; i++) {
        if (strcmp(retry_fns[i].kind, kind) == 0) {
            retry_fns[i].fn = fn;
            if (fn == NULL)
                retry_fns[i].kind[0] = '\0';
            return 0;
        }
        if (retry_fns[i].kind[0] == '\0' && free_at == EG_BANKOPS_KINDS_MAX)
            free_at = i;
    }
    if (fn == NULL)
        return 0;
    if (free_at == EG_BANKOPS_KINDS_MAX)
        return EG_EINVAL;
    snprintf(retry_fns[free_at].kind, sizeof(retry_fns[0].kind), "%s", kind);
    retry_fns[free_at].fn = fn;
    return 0;
}

static eg_bankops_retry_fn retry_fn(const char *kind)
{
    for (size_t i = 0; kind && i < EG_BANKOPS_KINDS_MAX; i++)
        if (retry_fns[i].kind[0] && strcmp(retry_fns[i].kind, kind) == 0)
            return retry_fns[i].fn;
    return NULL;
}

/* ---- meta ----------------------------------------------------------------------------------- */

int64_t eg_bankop_meta_int(const eg_bankop_t *op, const char *key)
{
    const cJSON *v = op->meta ? cJSON_GetObjectItemCaseSensitive(op->meta, key) : NULL;

    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

const char *eg_bankop_meta_str(const eg_bankop_t *op, const char *key)
{
    const cJSON *v = op->meta ? cJSON_GetObjectItemCaseSensitive(op->meta, key) : NULL;

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Parse a record's meta into the arena (the tree is deleted when the arena goes). */
static const cJSON *meta_parse(eg_arena_t *a, const char *meta)
{
    cJSON *j;

    if (meta == NULL || meta[0] == '\0' || (j = cJSON_Parse(meta)) == NULL)
        return NULL;
    eg_arena_defer(a, (void (*)(void *))cJSON_Delete, j);
    return cJSON_IsObject(j) ? j : NULL;
}

/* A copy of a record (its strings) into the arena. */
static void rec_copy(eg_arena_t *a, eg_op_t *dst, const eg_op_t *src)
{
    *dst = *src;
    dst->id = eg_arena_strdup(a, src->id);
    dst->kind = eg_arena_strdup(a, src->kind);
    dst->error = eg_arena_strdup(a, src->error);
    dst->meta = eg_arena_strdup(a, src->meta);
}

/* The children a record's meta names. */
static size_t meta_children(const cJSON *meta, const char **out, size_t max)
{
    const cJSON *c = meta ? cJSON_GetObjectItemCaseSensitive(meta, "children") : NULL, *v;
    size_t n = 0;

    if (!cJSON_IsArray(c))
        return 0;
    cJSON_ArrayForEach(v, c)
    {
        if (cJSON_IsString(v) && n < max)
            out[n++] = v->valuestring;
    }
    return n;
}

typedef struct req_s {
    eg_arena_t arena;
    char *scope_id;
    void *udata;
    union {
        eg_bankops_list_fn list;
        eg_bankop_fn get;
        eg_bankop_move_fn move;
    } cb;
    /* get */
    eg_bankop_t op;
    eg_bankop_t *children;
    const char **child_ids;
    size_t nchildren, pending;
    int err;
    /* retry */
    char *ws_id, *bank_id;
    eg_op_t requeued;
} req_t;

static req_t *req_new(const char *ws_id, const char *bank_id, void *udata)
{
    req_t *r = eg_xcalloc(1, sizeof(*r));

    eg_arena_init(&r->arena);
    r->ws_id = eg_arena_strdup(&r->arena, ws_id);
    r->bank_id = eg_arena_strdup(&r->arena, bank_id);
    r->scope_id = eg_arena_printf(&r->arena, "%s/%s", ws_id, bank_id);
    r->udata = udata;
    return r;
}

static void req_free(req_t *r)
{
    eg_arena_destroy(&r->arena);
    free(r);
}

/* ---- the listing ---------------------------------------------------------------------------- */

static void on_page(void *udata, int err, const eg_op_t *ops, size_t n, size_t total,
                    const size_t counts[5])
{
    req_t *r = udata;
    eg_bankop_t *v = NULL;

    (void)counts;
    if (err == 0 && n > 0) {
        v = eg_arena_alloc(&r->arena, n * sizeof(*v));
        for (size_t i = 0; i < n; i++) {
            v[i].rec = ops[i];
            v[i].meta = meta_parse(&r->arena, ops[i].meta);
        }
    }
    r->cb.list(r->udata, err, v, err ? 0 : n, err ? 0 : total);
    req_free(r);
}

int eg_bankops_list(const char *ws_id, const char *bank_id, const eg_bankops_query_t *q,
                    eg_bankops_list_fn cb, void *udata)
{
    eg_op_filter_t f;
    req_t *r;
    int rc;

    if (ws_id == NULL || bank_id == NULL || q == NULL || cb == NULL || q->limit == 0 ||
        q->limit > 1000)
        return EG_EINVAL;
    r = req_new(ws_id, bank_id, udata);
    r->cb.list = cb;
    f = (eg_op_filter_t){.status = q->status,
                         .kind = q->kind,
                         .exclude_meta_key = q->exclude_parents ? "children" : NULL};
    /* A filter that cannot match (an unknown status): an empty page, still from the store so
     * that the answer comes later like every other. */
    if (q->none)
        f.kind = "\n"; /* no kind has a newline */
    rc = eg_op_page("b", r->scope_id, &f, q->offset, (unsigned)q->limit, on_page, r);
    if (rc)
        req_free(r);
    return rc;
}

/* ---- one operation with its children -------------------------------------------------------- */

static void get_finish(req_t *r)
{
    size_t k = 0;

    for (size_t i = 0; i < r->nchildren; i++)
        if (r->children[i].rec.id != NULL)
            r->children[k++] = r->children[i];
    r->cb.get(r->udata, r->err, r->err ? NULL : &r->op, r->err ? NULL : r->children,
              r->err ? 0 : k);
    req_free(r);
}

typedef struct child_s {
    req_t *r;
    size_t i;
} child_t;

static void on_child(void *udata, int err, const eg_op_t *op)
{
    child_t *c = udata;
    req_t *r = c->r;

    if (err == 0) {
        rec_copy(&r->arena, &r->children[c->i].rec, op);
        r->children[c->i].meta = meta_parse(&r->arena, op->meta);
    } else if (err != EG_ENOTFOUND && r->err == 0) {
        r->err = err;
    }
    if (--r->pending == 0)
        get_finish(r);
}

static void on_get(void *udata, int err, const eg_op_t *op)
{
    req_t *r = udata;
    const char *ids[CHILDREN_MAX];
    size_t n;

    if (err) {
        r->cb.get(r->udata, err, NULL, NULL, 0);
        req_free(r);
        return;
    }
    rec_copy(&r->arena, &r->op.rec, op);
    r->op.meta = meta_parse(&r->arena, r->op.rec.meta);
    n = meta_children(r->op.meta, ids, CHILDREN_MAX);
    if (n == 0) {
        get_finish(r);
        return;
    }
    r->children = eg_arena_calloc(&r->arena, n * sizeof(*r->children));
    r->nchildren = n;
    r->pending = n + 1; /* one more, dropped below, so no reply can finish it early */
    for (size_t i = 0; i < n; i++) {
        child_t *c = eg_arena_alloc(&r->arena, sizeof(*c));
        int rc;

        c->r = r;
        c->i = i;
        rc = eg_op_get("b", r->scope_id, ids[i], on_child, c);
        if (rc == EG_EINVAL) /* a malformed child id: there is no such record */
            r->pending--;
        else if (rc) {
            r->err = rc;
            r->pending--;
        }
    }
    if (--r->pending == 0)
        get_finish(r);
}

int eg_bankops_get(const char *ws_id, const char *bank_id, const char *op_id, eg_bankop_fn cb,
                   void *udata)
{
    req_t *r;
    int rc;

    if (ws_id == NULL || bank_id == NULL || op_id == NULL || cb == NULL)
        return EG_EINVAL;
    r = req_new(ws_id, bank_id, udata);
    r->cb.get = cb;
    rc = eg_op_get("b", r->scope_id, op_id, on_get, r);
    if (rc)
        req_free(r);
    return rc;
}

/* ---- cancel, delete -------------------------------------------------------------------------- */

static void on_cancelled(void *udata, int err, const eg_op_t *op)
{
    req_t *r = udata;

    if (err == 0) {
        const char *ids[CHILDREN_MAX];
        size_t n = meta_children(meta_parse(&r->arena, op->meta), ids, CHILDREN_MAX);

        /* Best effort: a child already running (or done) stays as it is. */
        for (size_t i = 0; i < n; i++)
            eg_op_cancel("b", r->scope_id, ids[i], NULL, NULL);
    }
    r->cb.move(r->udata, err, op);
    req_free(r);
}

static void on_moved(void *udata, int err, const eg_op_t *op)
{
    req_t *r = udata;

    r->cb.move(r->udata, err, op);
    req_free(r);
}

int eg_bankops_cancel(const char *ws_id, const char *bank_id, const char *op_id,
                      eg_bankop_move_fn cb, void *udata)
{
    req_t *r;
    int rc;

    if (ws_id == NULL || bank_id == NULL || op_id == NULL || cb == NULL)
        return EG_EINVAL;
    r = req_new(ws_id, bank_id, udata);
    r->cb.move = cb;
    rc = eg_op_cancel("b", r->scope_id, op_id, on_cancelled, r);
    if (rc)
        req_free(r);
    return rc;
}

int eg_bankops_delete(const char *ws_id, const char *bank_id, const char *op_id,
                      eg_bankop_move_fn cb, void *udata)
{
    req_t *r;
    int rc;

    if (ws_id == NULL || bank_id == NULL || op_id == NULL || cb == NULL)
        return EG_EINVAL;
    r = req_new(ws_id, bank_id, udata);
    r->cb.move = cb;
    rc = eg_op_delete("b", r->scope_id, op_id, on_moved, r);
    if (rc)
        req_free(r);
    return rc;
}

/* ---- retry ---------------------------------------------------------------------------------- */

static void on_retry_refailed(void *udata, int err, const eg_op_t *op)
{
    req_t *r = udata;

    (void)err;
    (void)op;
    r->cb.move(r->udata, r->err, NULL);
    req_free(r);
}

static void on_retry_pushed(void *udata, int err)
{
    req_t *r = udata;
    const char *why;
    int rc;

    if (err == 0) {
        r->cb.move(r->udata, 0, &r->requeued);
        req_free(r);
        return;
    }
    /* The job could not be queued: the record must not stay pending with nothing behind it. */
    r->err = err;
    why = eg_arena_printf(&r->arena, "retry could not be queued: %s", eg_strerror(err));
    rc =
        eg_op_update("b", r->scope_id, r->requeued.id, EG_OP_FAILED, -1, why, on_retry_refailed, r);
    if (rc)
        on_retry_refailed(r, rc, NULL);
}

static void on_requeued(void *udata, int err, const eg_op_t *op)
{
    req_t *r = udata;
    eg_bankops_retry_fn fn;
    int rc;

    if (err) {
        r->cb.move(r->udata, err, op);
        req_free(r);
        return;
    }
    rec_copy(&r->arena, &r->requeued, op);
    fn = retry_fn(op->kind);
    rc = fn ? fn(r->ws_id, r->bank_id, &r->requeued, on_retry_pushed, r) : EG_ENOTIMPL;
    if (rc)
        on_retry_pushed(r, rc);
}

static void on_retry_read(void *udata, int err, const eg_op_t *op)
{
    req_t *r = udata;
    int rc;

    if (err == 0 && retry_fn(op->kind) == NULL)
        err = EG_ENOTIMPL;
    else if (err == 0 && op->status != EG_OP_FAILED)
        err = EG_ECONFLICT;
    if (err) {
        r->cb.move(r->udata, err, op);
        req_free(r);
        return;
    }
    rc = eg_op_requeue("b", r->scope_id, op->id, on_requeued, r);
    if (rc) {
        r->cb.move(r->udata, rc, NULL);
        req_free(r);
    }
}

int eg_bankops_retry(const char *ws_id, const char *bank_id, const char *op_id,
                     eg_bankop_move_fn cb, void *udata)
{
    req_t *r;
    int rc;

    if (ws_id == NULL || bank_id == NULL || op_id == NULL || cb == NULL)
        return EG_EINVAL;
    r = req_new(ws_id, bank_id, udata);
    r->cb.move = cb;
    rc = eg_op_get("b", r->scope_id, op_id, on_retry_read, r);
    if (rc)
        req_free(r);
    return rc;
}
