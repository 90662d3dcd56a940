/* Directives (engram/directives.h): one hash per directive and an index zset in the bank's slot,
 * every write one script. Listing reads every directive of the bank in one script and filters,
 * orders and pages in C: a bank holds at most EG_DIRECTIVES_MAX of them.
 *
 * Keys: eg:{b:<ws>/<bank>}:dirs (zset id -> created_at µs), eg:{b:<ws>/<bank>}:dir:<id> (hash). */
#include <stdlib.h>
#include <string.h>

#include "dirmm_int.h"
#include "engram/bank.h"
#include "engram/directives.h"
#include "engram/error.h"
#include "engram/store.h"
#include "engram/util.h"

#define ID_MAX 256 /* a longer id names no directive */

/* KEYS[1] bank, KEYS[2] index; ARGV prefix, id, name, content, priority, is_active, tags, now,
 * capacity. */
static eg_script_t s_create = {
    .name = "dir_create",
    .source =
        "if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('EG_NOTFOUND bank') "
        "end\n"
        "if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[9]) then\n"
        "  return redis.error_reply('EG_FULL directives')\n"
        "end\n"
        "local k = ARGV[1] .. ARGV[2]\n"
        "redis.call('HSET', k, 'id', ARGV[2], 'name', ARGV[3], 'content', ARGV[4], 'priority',\n"
        "  ARGV[5], 'is_active', ARGV[6], 'tags', ARGV[7], 'created_at', ARGV[8], 'updated_at',\n"
        "  ARGV[8])\n"
        "redis.call('ZADD', KEYS[2], ARGV[8], ARGV[2])\n"
        "return redis.call('HGETALL', k)\n",
};

/* KEYS[1] index; ARGV prefix, id, now, then field / value pairs to set. */
static eg_script_t s_patch = {
    .name = "dir_patch",
    .source = "local k = ARGV[1] .. ARGV[2]\n"
              "if redis.call('EXISTS', k) == 0 then\n"
              "  return redis.error_reply('EG_NOTFOUND directive')\n"
              "end\n"
              "for i = 4, #ARGV, 2 do redis.call('HSET', k, ARGV[i], ARGV[i + 1]) end\n"
              "redis.call('HSET', k, 'updated_at', ARGV[3])\n"
              "return redis.call('HGETALL', k)\n",
};

/* KEYS[1] index; ARGV prefix, id. Returns the record as it was. */
static eg_script_t s_delete = {
    .name = "dir_delete",
    .source = "local k = ARGV[1] .. ARGV[2]\n"
              "local r = redis.call('HGETALL', k)\n"
              "if #r == 0 then return redis.error_reply('EG_NOTFOUND directive') end\n"
              "redis.call('DEL', k)\n"
              "redis.call('ZREM', KEYS[1], ARGV[2])\n"
              "return r\n",
};

/* KEYS[1] index; ARGV prefix, id (NULL: every directive). Index entries without a record are
 * skipped. */
static eg_script_t s_read = {
    .name = "dir_read",
    .source = "local ids = ARGV[2] and {ARGV[2]} or redis.call('ZRANGE', KEYS[1], 0, -1)\n"
              "local out = {}\n"
              "for i = 1, #ids do\n"
              "  local r = redis.call('HGETALL', ARGV[1] .. ids[i])\n"
              "  if #r > 0 then out[#out + 1] = r end\n"
              "end\n"
              "return out\n",
};

typedef enum { DOP_ONE, DOP_LIST, DOP_REFLECT } dop_kind_t;

typedef struct dir_op_s {
    eg_arena_t arena;
    dop_kind_t kind;
    eg_directive_fn one;
    eg_directives_fn many;
    void *udata;
    eg_directives_query_t q; /* list; tags copied into the arena */
    bool apply_all;          /* reflect */
    const char **argv;       /* create: the script's keys and args, kept until the bank exists */
} dir_op_t;

static dir_op_t *op_new(dop_kind_t kind, void *udata)
{
    dir_op_t *op = eg_xcalloc(1, sizeof(*op));

    eg_arena_init(&op->arena);
    op->kind = kind;
    op->udata = udata;
    return op;
}

static void op_free(dir_op_t *op)
{
    eg_arena_destroy(&op->arena);
    free(op);
}

static const char **copy_tags(eg_arena_t *a, const char *const *tags, size_t n)
{
    const char **out = n ? eg_arena_alloc(a, n * sizeof(*out)) : NULL;

    for (size_t i = 0; i < n; i++)
        out[i] = eg_arena_strdup(a, tags[i]);
    return out;
}

/* A directive from an HGETALL reply: strings point into the reply, tags into the arena. */
static void parse_dir(eg_arena_t *a, const redisReply *r, eg_directive_t *d)
{
    const char *s;

    memset(d, 0, sizeof(*d));
    d->id = (s = eg__dirmm_hget(r, "id")) ? s : "";
    d->name = (s = eg__dirmm_hget(r, "name")) ? s : "";
    d->content = (s = eg__dirmm_hget(r, "content")) ? s : "";
    d->priority = eg__dirmm_hget_int(r, "priority", 0);
    d->is_active = eg__dirmm_hget_int(r, "is_active", 1) != 0;
    d->ntags = eg__dirmm_tags_parse(a, eg__dirmm_hget(r, "tags"), &d->tags);
    d->created_at = eg__dirmm_hget_int(r, "created_at", 0);
    d->updated_at = eg__dirmm_hget_int(r, "updated_at", d->created_at);
}

static int cmp_dir(const void *pa, const void *pb)
{
    const eg_directive_t *a = pa, *b = pb;

    if (a->priority != b->priority)
        return a->priority > b->priority ? -1 : 1;
    if (a->created_at != b->created_at)
        return a->created_at > b->created_at ? -1 : 1;
    return strcmp(a->id, b->id);
}

bool eg_directive_tags_pass(const char *const *dt, size_t ndt, const char *const *want,
                            size_t nwant, eg_tags_match_t m)
{
    if (nwant == 0)
        return true;
    return eg__dirmm_tags_pass(dt, ndt, want, nwant, m, true);
}

static bool reflect_pass(const dir_op_t *op, const eg_directive_t *d)
{
    if (!d->is_active)
        return false;
    if (d->ntags == 0 || op->apply_all)
        return true;
    if (op->q.ntags == 0) /* a request without tags gets the global directives only */
        return false;
    return eg__dirmm_tags_pass(d->tags, d->ntags, op->q.tags, op->q.ntags, EG_TAGS_ANY_STRICT,
                               false);
}

static void on_reply(void *udata, int err, redisReply *r)
{
    dir_op_t *op = udata;
    eg_directive_t *ds = NULL, one;
    size_t n = 0, total = 0;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = eg__dirmm_reply_error(r);
    if (op->kind == DOP_ONE) {
        if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements == 0))
            err = EG_ENOTFOUND;
        if (err == 0)
            parse_dir(&op->arena, r, &one);
        op->one(op->udata, err, err ? NULL : &one);
        op_free(op);
        return;
    }
    if (err == 0 && r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        ds = eg_arena_alloc(&op->arena, r->elements * sizeof(*ds));
        for (size_t i = 0; i < r->elements; i++) {
            eg_directive_t d;

            parse_dir(&op->arena, r->element[i], &d);
            if (op->kind == DOP_REFLECT ? reflect_pass(op, &d)
                                        : (!op->q.active_only || d.is_active) &&
                                              eg_directive_tags_pass(d.tags, d.ntags, op->q.tags,
                                                                     op->q.ntags, op->q.tags_match))
                ds[total++] = d;
        }
        qsort(ds, total, sizeof(*ds), cmp_dir);
    }
    if (op->kind == DOP_REFLECT) {
        n = total;
    } else if (op->q.offset < total) {
        n = total - op->q.offset;
        if (n > op->q.limit)
            n = op->q.limit;
        ds += op->q.offset;
    }
    op->many(op->udata, err, err ? NULL : ds, err ? 0 : n, err ? 0 : total);
    op_free(op);
}

static bool args_ok(const char *ws_id, const char *bank_id, const char *id)
{
    return ws_id && bank_id && eg_bank_id_valid(bank_id, strlen(bank_id)) &&
           (id == NULL || (id[0] && strlen(id) <= ID_MAX));
}

static int eval(dir_op_t *op, eg_script_t *s, const char *ws_id, const char *bank_id, int argc,
                const char **argv)
{
    int rc;

    argv[0] = eg__dirmm_key(&op->arena, ws_id, bank_id, "dirs");
    argv[1] = eg__dirmm_key(&op->arena, ws_id, bank_id, "dir:");
    rc = eg_store_eval(s, on_reply, op, 1, argc, argv, NULL);
    if (rc)
        op_free(op);
    return rc;
}

/* ---- create ---------------------------------------------------------------------------------- */

static void on_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    dir_op_t *op = udata;

    (void)bank;
    (void)created;
    if (err == 0)
        err = eg_store_eval(&s_create, on_reply, op, 2, 11, op->argv, NULL);
    if (err) {
        op->one(op->udata, err, NULL);
        op_free(op);
    }
}

int eg_directive_create(const char *ws_id, const char *bank_id, const eg_directive_new_t *d,
                        eg_directive_fn cb, void *udata)
{
    dir_op_t *op;
    eg_arena_t *a;
    const char **argv;
    char id[37];
    int rc;

    if (!args_ok(ws_id, bank_id, NULL) || d == NULL || d->name == NULL || d->content == NULL ||
        strlen(d->name) > EG_DIRECTIVE_NAME_MAX || strlen(d->content) > EG_DIRECTIVE_CONTENT_MAX ||
        !eg__dirmm_tags_valid(d->tags, d->ntags))
        return EG_EINVAL;
    op = op_new(DOP_ONE, udata);
    op->one = cb;
    a = &op->arena;
    eg_uuid_v4(id);
    op->argv = argv = eg_arena_alloc(a, 11 * sizeof(*argv));
    argv[0] = eg__dirmm_key(a, ws_id, bank_id, "bank");
    argv[1] = eg__dirmm_key(a, ws_id, bank_id, "dirs");
    argv[2] = eg__dirmm_key(a, ws_id, bank_id, "dir:");
    argv[3] = eg_arena_strdup(a, id);
    argv[4] = eg_arena_strdup(a, d->name);
    argv[5] = eg_arena_strdup(a, d->content);
    argv[6] = eg_arena_printf(a, "%lld", (long long)d->priority);
    argv[7] = d->is_active ? "1" : "0";
    argv[8] = eg__dirmm_tags_json(a, d->tags, d->ntags);
    argv[9] = eg_arena_printf(a, "%lld", (long long)eg__dirmm_now_us());
    argv[10] = eg_arena_printf(a, "%d", EG_DIRECTIVES_MAX);
    /* Banks are created on write: make sure it exists, then write in its slot. */
    rc = eg_bank_put(ws_id, bank_id, NULL, on_bank, op);
    if (rc)
        op_free(op);
    return rc;
}

/* ---- get, patch, delete ---------------------------------------------------------------------- */

int eg_directive_get(const char *ws_id, const char *bank_id, const char *id, eg_directive_fn cb,
                     void *udata)
{
    dir_op_t *op;
    int rc;

    if (!args_ok(ws_id, bank_id, id))
        return EG_EINVAL;
    op = op_new(DOP_ONE, udata);
    op->one = cb;
    rc = eg_store_command(on_reply, op, "HGETALL %s%s",
                          eg__dirmm_key(&op->arena, ws_id, bank_id, "dir:"), id);
    if (rc)
        op_free(op);
    return rc;
}

int eg_directive_patch(const char *ws_id, const char *bank_id, const char *id,
                       const eg_directive_patch_t *p, eg_directive_fn cb, void *udata)
{
    const char *argv[4 + 10];
    int argc;
    dir_op_t *op;
    eg_arena_t *a;

    if (!args_ok(ws_id, bank_id, id) || p == NULL ||
        (p->name && strlen(p->name) > EG_DIRECTIVE_NAME_MAX) ||
        (p->content && strlen(p->content) > EG_DIRECTIVE_CONTENT_MAX) ||
        (p->set_tags && !eg__dirmm_tags_valid(p->tags, p->ntags)))
        return EG_EINVAL;
    op = op_new(DOP_ONE, udata);
    op->one = cb;
    a = &op->arena;
    argv[2] = eg_arena_strdup(a, id);
    argv[3] = eg_arena_printf(a, "%lld", (long long)eg__dirmm_now_us());
    argc = 4; /* then field / value pairs */
    if (p->name) {
        argv[argc++] = "name";
        argv[argc++] = p->name;
    }
    if (p->content) {
        argv[argc++] = "content";
        argv[argc++] = p->content;
    }
    if (p->set_priority) {
        argv[argc++] = "priority";
        argv[argc++] = eg_arena_printf(a, "%lld", (long long)p->priority);
    }
    if (p->set_active) {
        argv[argc++] = "is_active";
        argv[argc++] = p->is_active ? "1" : "0";
    }
    if (p->set_tags) {
        argv[argc++] = "tags";
        argv[argc++] = eg__dirmm_tags_json(a, p->tags, p->ntags);
    }
    return eval(op, &s_patch, ws_id, bank_id, argc, argv);
}

int eg_directive_delete(const char *ws_id, const char *bank_id, const char *id, eg_directive_fn cb,
                        void *udata)
{
    const char *argv[3];
    dir_op_t *op;

    if (!args_ok(ws_id, bank_id, id))
        return EG_EINVAL;
    op = op_new(DOP_ONE, udata);
    op->one = cb;
    argv[2] = eg_arena_strdup(&op->arena, id);
    return eval(op, &s_delete, ws_id, bank_id, 3, argv);
}

/* ---- lists ----------------------------------------------------------------------------------- */

int eg_directives_list(const char *ws_id, const char *bank_id, const eg_directives_query_t *q,
                       eg_directives_fn cb, void *udata)
{
    const char *argv[2];
    dir_op_t *op;

    if (!args_ok(ws_id, bank_id, NULL) || q == NULL || q->limit == 0 || q->limit > 1000)
        return EG_EINVAL;
    op = op_new(DOP_LIST, udata);
    op->many = cb;
    op->q = *q;
    op->q.tags = copy_tags(&op->arena, q->tags, q->ntags);
    return eval(op, &s_read, ws_id, bank_id, 2, argv);
}

int eg_directives_for_reflect(const char *ws_id, const char *bank_id, const char *const *tags,
                              size_t ntags, bool apply_all, eg_directives_fn cb, void *udata)
{
    const char *argv[2];
    dir_op_t *op;

    if (!args_ok(ws_id, bank_id, NULL))
        return EG_EINVAL;
    op = op_new(DOP_REFLECT, udata);
    op->many = cb;
    op->q.tags = copy_tags(&op->arena, tags, ntags);
    op->q.ntags = ntags;
    op->apply_all = apply_all;
    return eval(op, &s_read, ws_id, bank_id, 2, argv);
}

void eg_directives_bank_keys(eg_arena_t *a, const char *ws_id, const char *bank_id,
                             const char **index, const char **prefix)
{
    *index = eg__dirmm_key(a, ws_id, bank_id, "dirs");
    *prefix = eg__dirmm_key(a, ws_id, bank_id, "dir:");
}
