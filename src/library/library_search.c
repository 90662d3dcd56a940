/* Reading the library under a guard-rail scope: chunk search, chunk ranges, memory listings.
 *
 * The scope is enforced here, on the records, for every item handed out: a chunk is returned only
 * when its memory exists, is SYNCHRONIZED at the very content version the chunk was indexed from,
 * and passes eg_lib_scope_allows (type, ids, metadata match) as the record stands now. The
 * memory engine's tag filter (units are tagged fy:mem:<id> and fy:mty:<type>) is only a
 * pre-filter that keeps the ranking on the allowed memories; for types limited by a metadata
 * match the allowed memories are found first by scanning the records, so the pre-filter is exact
 * and a match on a few memories of a large type is not starved by the others. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/recall.h"
#include "engram/store.h"
#include "engram/text.h"
#include "engram/util.h"
#include "library_int.h"

#define CANDIDATES_MAX 1000 /* recall hits checked against the records at most */

/* ---- loading records ------------------------------------------------------------------------- */

/* KEYS mem hash, types hash, then zsets of memories (a type's, or all of them); ARGV one cap per
 * zset, then memory ids. The records of the newest cap members of each zset, then of the ids (a
 * missing one gives false), and the types as {id, record, ...}. */
static eg_script_t s_load = {
    .name = "lib_load",
    .source =
        "local n = #KEYS - 2\n"
        "local out = {}\n"
        "local function add(ids)\n"
        "  local i = 1\n"
        "  while i <= #ids do\n"
        "    local j = math.min(i + 999, #ids)\n"
        "    local vs = redis.call('HMGET', KEYS[1], unpack(ids, i, j))\n"
        "    for k = 1, j - i + 1 do out[#out + 1] = vs[k] end\n"
        "    i = j + 1\n"
        "  end\n"
        "end\n"
        "for k = 1, n do\n"
        "  local ms = redis.call('ZRANGE', KEYS[2 + k], '+', '-', 'BYLEX', 'REV', 'LIMIT', 0,\n"
        "                        tonumber(ARGV[k]))\n"
        "  local ids = {}\n"
        "  for i, m in ipairs(ms) do ids[i] = string.sub(m, 18) end\n"
        "  add(ids)\n"
        "end\n"
        "local ids = {}\n"
        "for i = n + 1, #ARGV do ids[#ids + 1] = ARGV[i] end\n"
        "add(ids)\n"
        "return {out, redis.call('HGETALL', KEYS[2])}\n",
};

typedef struct {
    cJSON **recs; /* parsed records (NULL for missing ones) */
    size_t n;
    cJSON **types; /* parsed type records */
    size_t ntypes;
} loaded_t;

typedef void (*load_fn)(void *udata, int err, loaded_t *l);

typedef struct {
    load_fn cb;
    void *udata;
} load_t;

static void loaded_free(loaded_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        cJSON_Delete(l->recs[i]);
    for (size_t i = 0; i < l->ntypes; i++)
        cJSON_Delete(l->types[i]);
    free(l->recs);
    free(l->types);
}

static void on_load(void *udata, int err, redisReply *r)
{
    load_t *ld = udata;
    loaded_t l = {0};

    if (err == 0 &&
        (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
         r->element[0]->type != REDIS_REPLY_ARRAY || r->element[1]->type != REDIS_REPLY_ARRAY))
        err = EG_EREDIS;
    if (err == 0) {
        const redisReply *rs = r->element[0], *ts = r->element[1];
        l.recs = eg_xcalloc(rs->elements + 1, sizeof(*l.recs));
        for (size_t i = 0; i < rs->elements; i++)
            l.recs[l.n++] = rs->element[i]->type == REDIS_REPLY_STRING
                                ? cJSON_Parse(rs->element[i]->str)
                                : NULL;
        l.types = eg_xcalloc(ts->elements / 2 + 1, sizeof(*l.types));
        for (size_t i = 1; i < ts->elements; i += 2)
            if (ts->element[i]->type == REDIS_REPLY_STRING)
                l.types[l.ntypes++] = cJSON_Parse(ts->element[i]->str);
    }
    ld->cb(ld->udata, err, err == 0 ? &l : NULL);
    loaded_free(&l);
    free(ld);
}

/* Load records: the newest caps[i] memories of each zset zsets[i] (full keys), and ids. */
static int load(const char *ws, const char *const *zsets, const size_t *caps, size_t nz,
                const char *const *ids, size_t nids, load_fn cb, void *udata)
{
    eg_arena_t a;
    const char **argv;
    size_t argc = 2 + 2 * nz + nids, k = 0;
    int rc;

    eg_arena_init(&a);
    argv = eg_arena_calloc(&a, (argc + 1) * sizeof(*argv));
    argv[k++] = eg__lib_key(&a, ws, "mem");
    argv[k++] = eg__lib_key(&a, ws, "mty");
    for (size_t i = 0; i < nz; i++)
        argv[k++] = zsets[i];
    for (size_t i = 0; i < nz; i++)
        argv[k++] = eg_arena_printf(&a, "%zu", caps[i]);
    for (size_t i = 0; i < nids; i++)
        argv[k++] = ids[i];
    load_t *ld = eg_xmalloc(sizeof(*ld));
    ld->cb = cb;
    ld->udata = udata;
    rc = eg_store_eval(&s_load, on_load, ld, (int)(2 + nz), (int)argc, argv, NULL);
    if (rc != 0)
        free(ld);
    eg_arena_destroy(&a);
    return rc;
}

static const char *type_name(const loaded_t *l, const char *type_id)
{
    for (size_t i = 0; type_id && i < l->ntypes; i++) {
        const char *id = eg__lib_jstr(l->types[i], "id");
        if (id && strcmp(id, type_id) == 0)
            return eg__lib_jstr(l->types[i], "name");
    }
    return NULL;
}

static bool synchronized(const cJSON *rec)
{
    const char *st = eg__lib_jstr(rec, "contentStatus");

    return st && strcmp(st, "SYNCHRONIZED") == 0;
}

static bool scope_restricted(const eg_lib_scope_t *scope)
{
    return scope && scope->ntypes > 0;
}

/* The memory ids the scope's types name (in a; none for types without ids). */
static const char **scope_ids(eg_arena_t *a, const eg_lib_scope_t *scope, size_t *n)
{
    size_t total = 0;

    *n = 0;
    if (!scope_restricted(scope))
        return NULL;
    for (size_t i = 0; i < scope->ntypes; i++)
        total += scope->types[i].nmemory_ids;
    const char **ids = eg_arena_calloc(a, (total + 1) * sizeof(*ids));
    for (size_t i = 0; i < scope->ntypes; i++)
        for (size_t k = 0; k < scope->types[i].nmemory_ids; k++)
            ids[(*n)++] = scope->types[i].memory_ids[k];
    return ids;
}

/* ---- memories in scope ----------------------------------------------------------------------- */

typedef struct {
    eg_arena_t a;
    eg_lib_scope_t scope; /* copied: the caller's may go once the call returns */
    size_t limit;
    eg_lib_memrefs_fn cb;
    void *udata;
} mref_t;

/* A deep copy of a scope into a (the async readers keep it past the caller's return). */
static void scope_copy(eg_arena_t *a, const eg_lib_scope_t *in, eg_lib_scope_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!scope_restricted(in))
        return;
    eg_lib_scope_type_t *ts = eg_arena_calloc(a, in->ntypes * sizeof(*ts));
    for (size_t i = 0; i < in->ntypes; i++) {
        const eg_lib_scope_type_t *s = &in->types[i];
        eg_lib_scope_type_t *d = &ts[i];
        d->type_id = eg_arena_strdup(a, s->type_id);
        const char **ids = eg_arena_calloc(a, (s->nmemory_ids + 1) * sizeof(*ids));
        for (size_t k = 0; k < s->nmemory_ids; k++)
            ids[k] = eg_arena_strdup(a, s->memory_ids[k]);
        d->memory_ids = ids;
        d->nmemory_ids = s->nmemory_ids;
        const char **hid = eg_arena_calloc(a, (s->nhidden + 1) * sizeof(*hid));
        for (size_t k = 0; k < s->nhidden; k++)
            hid[k] = eg_arena_strdup(a, s->hidden_keys[k]);
        d->hidden_keys = hid;
        d->nhidden = s->nhidden;
        if (s->match) {
            cJSON *m = cJSON_Duplicate(s->match, true);
            eg_arena_defer(a, (void (*)(void *))cJSON_Delete, m);
            d->match = m;
        }
    }
    out->types = ts;
    out->ntypes = in->ntypes;
}

static int member_desc(const void *x, const void *y)
{
    const cJSON *a = *(const cJSON *const *)x, *b = *(const cJSON *const *)y;
    const char *ma = eg__lib_pstr(a, "member"), *mb = eg__lib_pstr(b, "member");

    return strcmp(mb ? mb : "", ma ? ma : "");
}

static void on_mref_load(void *udata, int err, loaded_t *l)
{
    mref_t *m = udata;

    if (err != 0) {
        m->cb(m->udata, err, NULL, 0);
        goto out;
    }
    const cJSON **ok = eg_arena_calloc(&m->a, (l->n + 1) * sizeof(*ok));
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        const cJSON *r = l->recs[i];
        if (r && eg_lib_scope_allows(&m->scope, eg__lib_jstr(r, "id"), eg__lib_jstr(r, "typeId"),
                                     cJSON_GetObjectItemCaseSensitive(r, "metadata")))
            ok[n++] = r;
    }
    qsort(ok, n, sizeof(*ok), member_desc);
    /* A memory read twice (through its type's list and by id) counts once. */
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || member_desc(&ok[u - 1], &ok[i]) != 0)
            ok[u++] = ok[i];
    n = u;
    if (n > m->limit)
        n = m->limit;
    eg_lib_memref_t *refs = eg_arena_calloc(&m->a, (n + 1) * sizeof(*refs));
    for (size_t i = 0; i < n; i++) {
        const char *tid = eg__lib_jstr(ok[i], "typeId");
        cJSON *md = eg_lib_scope_visible(&m->scope, tid,
                                         cJSON_GetObjectItemCaseSensitive(ok[i], "metadata"));
        eg_arena_defer(&m->a, (void (*)(void *))cJSON_Delete, md);
        refs[i].id = eg__lib_jstr(ok[i], "id");
        refs[i].title = eg__lib_jstr(ok[i], "title");
        refs[i].type_id = tid;
        refs[i].type_name = type_name(l, tid);
        refs[i].metadata = md;
        refs[i].content_status = eg__lib_jstr(ok[i], "contentStatus");
    }
    m->cb(m->udata, 0, refs, n);
out:
    eg_arena_destroy(&m->a);
    free(m);
}

int eg_lib_memories(const char *ws, const eg_lib_scope_t *scope, size_t limit, eg_lib_memrefs_fn cb,
                    void *udata)
{
    size_t nids;
    int rc;

    if (!eg__lib_ws_valid(ws) || !cb || limit == 0)
        return EG_EINVAL;
    mref_t *m = eg_xcalloc(1, sizeof(*m));
    eg_arena_init(&m->a);
    scope_copy(&m->a, scope, &m->scope);
    m->limit = EG_MIN(limit, (size_t)EG_LIB_MEMREFS_MAX);
    m->cb = cb;
    m->udata = udata;
    /* Types limited to ids read those records; the others read their newest memories (all of
     * them, up to the scan cap, when a metadata match may reject many). */
    size_t nt = m->scope.ntypes, nz = 0;
    const char **zs = eg_arena_calloc(&m->a, (nt + 1) * sizeof(*zs));
    size_t *caps = eg_arena_calloc(&m->a, (nt + 1) * sizeof(*caps));
    const char **ids = scope_ids(&m->a, &m->scope, &nids);
    if (nt == 0) {
        zs[nz] = eg__lib_key(&m->a, ws, "mem:z");
        caps[nz++] = m->limit;
    }
    for (size_t i = 0; i < nt; i++) {
        const eg_lib_scope_type_t *t = &m->scope.types[i];
        if (t->nmemory_ids > 0)
            continue;
        zs[nz] = eg__lib_key(&m->a, ws, "mty:%s:m", t->type_id);
        caps[nz++] = t->match ? EG__LIB_SCAN_MAX : m->limit;
    }
    rc = load(ws, zs, caps, nz, ids, nids, on_mref_load, m);
    if (rc != 0) {
        eg_arena_destroy(&m->a);
        free(m);
    }
    return rc;
}

/* ---- chunk ranges ---------------------------------------------------------------------------- */

/* KEYS mem hash, types hash, chunk list; ARGV id, first, last (0-based, inclusive).
 * {} when missing, else {record, type record or false, chunks...}. */
static eg_script_t s_chunks = {
    .name = "lib_chunks",
    .source = "local rec = redis.call('HGET', KEYS[1], ARGV[1])\n"
              "if not rec then return {} end\n"
              "local t = cjson.decode(rec)['typeId']\n"
              "local out = {rec, redis.call('HGET', KEYS[2], t)}\n"
              "for _, c in ipairs(redis.call('LRANGE', KEYS[3], ARGV[2], ARGV[3])) do\n"
              "  out[#out + 1] = c\n"
              "end\n"
              "return out\n",
};

typedef struct {
    eg_arena_t a;
    eg_lib_scope_t scope;
    int first;
    eg_lib_chunks_fn cb;
    void *udata;
} crange_t;

static void on_chunks(void *udata, int err, redisReply *r)
{
    crange_t *c = udata;
    cJSON *rec = NULL, *type = NULL;

    if (err == 0 && r->type != REDIS_REPLY_ARRAY)
        err = EG_EREDIS;
    if (err == 0 && r->elements < 2)
        err = EG_ENOTFOUND;
    if (err == 0) {
        rec = cJSON_Parse(r->element[0]->str);
        if (r->element[1]->type == REDIS_REPLY_STRING)
            type = cJSON_Parse(r->element[1]->str);
        if (!rec)
            err = EG_EREDIS;
        else if (!eg_lib_scope_allows(&c->scope, eg__lib_jstr(rec, "id"),
                                      eg__lib_jstr(rec, "typeId"),
                                      cJSON_GetObjectItemCaseSensitive(rec, "metadata")))
            err = EG_ENOTFOUND; /* outside the scope reads as absent */
    }
    if (err != 0) {
        c->cb(c->udata, err, NULL, 0);
        goto out;
    }
    size_t n = synchronized(rec) ? r->elements - 2 : 0, k = 0;
    eg_lib_chunk_t *cs = eg_arena_calloc(&c->a, (n + 1) * sizeof(*cs));
    for (size_t i = 0; i < n; i++) {
        eg__lib_chunk_t ch;
        if (r->element[2 + i]->type != REDIS_REPLY_STRING ||
            eg__lib_chunk_parse(&c->a, r->element[2 + i]->str, &ch) != 0)
            continue;
        cs[k].memory_id = eg__lib_jstr(rec, "id");
        cs[k].memory_title = eg__lib_jstr(rec, "title");
        cs[k].type_id = eg__lib_jstr(rec, "typeId");
        cs[k].type_name = eg__lib_jstr(type, "name");
        cs[k].chunk_number = c->first + (int)i;
        cs[k].pages = ch.pages;
        cs[k].npages = ch.npages;
        cs[k].content = ch.text;
        cs[k].score = 0;
        k++;
    }
    c->cb(c->udata, 0, cs, k);
out:
    cJSON_Delete(rec);
    cJSON_Delete(type);
    eg_arena_destroy(&c->a);
    free(c);
}

int eg_lib_chunks(const char *ws, const eg_lib_scope_t *scope, const char *memory_id, int first,
                  int last, eg_lib_chunks_fn cb, void *udata)
{
    char f[16], l[16];
    int rc;

    if (!eg__lib_ws_valid(ws) || !cb || !memory_id)
        return EG_EINVAL;
    if (!eg_hexid_valid(memory_id, "mem"))
        return EG_ENOTFOUND;
    if (first < 1)
        first = 1;
    crange_t *c = eg_xcalloc(1, sizeof(*c));
    eg_arena_init(&c->a);
    scope_copy(&c->a, scope, &c->scope);
    c->first = first;
    c->cb = cb;
    c->udata = udata;
    /* last < first reads nothing: LRANGE with stop before start is empty. */
    snprintf(f, sizeof(f), "%d", last < first ? 1 : first - 1);
    snprintf(l, sizeof(l), "%d", last < first ? 0 : last - 1);
    const char *argv[6] = {eg__lib_key(&c->a, ws, "mem"),
                           eg__lib_key(&c->a, ws, "mty"),
                           eg__lib_key(&c->a, ws, "mem:%s:chk", memory_id),
                           memory_id,
                           f,
                           l};
    rc = eg_store_eval(&s_chunks, on_chunks, c, 3, 6, argv, NULL);
    if (rc != 0) {
        eg_arena_destroy(&c->a);
        free(c);
    }
    return rc;
}

/* ---- search ---------------------------------------------------------------------------------- */

typedef struct hit_s {
    const char *memory_id, *sync, *content;
    int chunk;
    int *pages;
    size_t npages;
    float score;
} hit_t;

typedef struct {
    eg_arena_t a;
    char ws[72];
    eg_lib_scope_t scope;
    char *query;
    size_t limit;
    eg_lib_chunks_fn cb;
    void *udata;
    const char **tags; /* the pre-filter (none: every unit of the bank) */
    size_t ntags;
    hit_t *hits;
    size_t nhits;
} search_t;

static void search_end(search_t *s, int err, const eg_lib_chunk_t *c, size_t n)
{
    s->cb(s->udata, err, c, n);
    eg_arena_destroy(&s->a);
    free(s);
}

static int *parse_pages(eg_arena_t *a, const char *p, size_t *n)
{
    size_t cap = 1;
    int *out;

    *n = 0;
    if (!p || !*p)
        return NULL;
    for (const char *q = p; *q; q++)
        cap += *q == ',';
    out = eg_arena_alloc(a, cap * sizeof(*out));
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        out[(*n)++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    return out;
}

static void on_verify(void *udata, int err, loaded_t *l)
{
    search_t *s = udata;

    if (err != 0) {
        search_end(s, err, NULL, 0);
        return;
    }
    eg_lib_chunk_t *out = eg_arena_calloc(&s->a, (s->limit + 1) * sizeof(*out));
    size_t n = 0;
    for (size_t i = 0; i < s->nhits && n < s->limit; i++) {
        const hit_t *h = &s->hits[i];
        const cJSON *rec = NULL;
        for (size_t k = 0; k < l->n && !rec; k++) {
            const char *id = l->recs[k] ? eg__lib_jstr(l->recs[k], "id") : NULL;
            if (id && strcmp(id, h->memory_id) == 0)
                rec = l->recs[k];
        }
        const char *sync = rec ? eg__lib_pstr(rec, "sync") : NULL;
        const char *tid = rec ? eg__lib_jstr(rec, "typeId") : NULL;
        if (!rec || !synchronized(rec) || !sync || strcmp(sync, h->sync) != 0 ||
            !eg_lib_scope_allows(&s->scope, h->memory_id, tid,
                                 cJSON_GetObjectItemCaseSensitive(rec, "metadata")))
            continue;
        out[n].memory_id = eg_arena_strdup(&s->a, h->memory_id);
        out[n].memory_title = eg_arena_strdup(&s->a, eg__lib_jstr(rec, "title"));
        out[n].type_id = eg_arena_strdup(&s->a, tid);
        out[n].type_name = eg_arena_strdup(&s->a, type_name(l, tid));
        out[n].chunk_number = h->chunk;
        out[n].pages = h->pages;
        out[n].npages = h->npages;
        out[n].content = h->content;
        out[n].score = h->score;
        n++;
    }
    search_end(s, 0, out, n);
}

static void on_recall(void *udata, int err, const eg_recall_result_t *res)
{
    search_t *s = udata;

    if (err != 0) {
        search_end(s, err, NULL, 0);
        return;
    }
    s->hits = eg_arena_calloc(&s->a, (res->n + 1) * sizeof(*s->hits));
    const char **ids = eg_arena_calloc(&s->a, (res->n + 1) * sizeof(*ids));
    size_t nids = 0;
    /* The pre-filter keeps the ranking on allowed memories, so few of the best hits fail the
     * check; the rest of a long tail is not looked at. */
    size_t n = res->n < CANDIDATES_MAX ? res->n : CANDIDATES_MAX;
    for (size_t i = 0; i < n; i++) {
        const eg_mem_unit_t *u = res->items[i].unit;
        const char *m = eg__lib_jstr(u->metadata, "m"), *sy = eg__lib_jstr(u->metadata, "s");
        const char *c = eg__lib_jstr(u->metadata, "c");
        if (!m || !sy || !c)
            continue;
        hit_t *h = &s->hits[s->nhits++];
        h->memory_id = eg_arena_strdup(&s->a, m);
        h->sync = eg_arena_strdup(&s->a, sy);
        h->chunk = atoi(c);
        h->pages = parse_pages(&s->a, eg__lib_jstr(u->metadata, "p"), &h->npages);
        h->content = eg_arena_strdup(&s->a, u->text);
        float sc = res->items[i].final;
        h->score = isnan(sc) ? 0.0f : sc < 0 ? 0.0f : sc > 1 ? 1.0f : sc;
        bool seen = false;
        for (size_t k = 0; k < nids && !seen; k++)
            seen = strcmp(ids[k], m) == 0;
        if (!seen)
            ids[nids++] = h->memory_id;
    }
    if (s->nhits == 0) {
        search_end(s, 0, NULL, 0);
        return;
    }
    int rc = load(s->ws, NULL, NULL, 0, ids, nids, on_verify, s);
    if (rc != 0)
        search_end(s, rc, NULL, 0);
}

static void run_recall(search_t *s)
{
    eg_recall_req_t req;
    int rc;

    eg_recall_req_init(&req);
    req.query = s->query;
    req.query_len = strlen(s->query);
    req.types = EG_RECALL_TYPES_ALL;
    req.budget = EG_RECALL_BUDGET_HIGH;
    req.max_tokens = (size_t)1 << 30;
    req.entities = false;
    req.graph = false;
    req.temporal = false;
    req.tags = s->tags;
    req.ntags = s->ntags;
    req.tags_match = EG_TAGS_ANY_STRICT;
    rc = eg_recall(s->ws, EG_LIB_BANK, &req, on_recall, s);
    if (rc != 0)
        search_end(s, rc, NULL, 0);
}

/* Types limited by a metadata match: the allowed memories were scanned; build the pre-filter. */
static void on_scan(void *udata, int err, loaded_t *l)
{
    search_t *s = udata;
    size_t cap = l ? l->n : 0;

    if (err != 0) {
        search_end(s, err, NULL, 0);
        return;
    }
    const char **tags = eg_arena_calloc(&s->a, (s->ntags + cap + 1) * sizeof(*tags));
    if (s->ntags > 0)
        memcpy(tags, s->tags, s->ntags * sizeof(*tags));
    for (size_t i = 0; i < l->n; i++) {
        const cJSON *r = l->recs[i];
        const char *id = r ? eg__lib_jstr(r, "id") : NULL,
                   *tid = r ? eg__lib_jstr(r, "typeId") : NULL;
        const eg_lib_scope_type_t *t = eg_lib_scope_type(&s->scope, tid);
        if (!id || !t || !t->match || t->nmemory_ids > 0 || !synchronized(r) ||
            !eg_lib_scope_allows(&s->scope, id, tid,
                                 cJSON_GetObjectItemCaseSensitive(r, "metadata")))
            continue;
        tags[s->ntags++] = eg_arena_printf(&s->a, EG__LIB_TAG_MEM "%s", id);
    }
    s->tags = tags;
    if (s->ntags == 0) {
        search_end(s, 0, NULL, 0); /* nothing is allowed */
        return;
    }
    run_recall(s);
}

int eg_lib_search(const char *ws, const eg_lib_scope_t *scope, const char *query, size_t limit,
                  eg_lib_chunks_fn cb, void *udata)
{
    bool scan = false;
    size_t total = 0, len;
    int rc;

    if (!eg__lib_ws_valid(ws) || !cb || !query || limit == 0)
        return EG_EINVAL;
    search_t *s = eg_xcalloc(1, sizeof(*s));
    eg_arena_init(&s->a);
    snprintf(s->ws, sizeof(s->ws), "%s", ws);
    scope_copy(&s->a, scope, &s->scope);
    s->limit = EG_MIN(limit, (size_t)EG_LIB_SEARCH_MAX);
    s->cb = cb;
    s->udata = udata;
    /* A query over the recall limit is cut at a word boundary rather than refused. */
    len = eg_recall_cut_tokens(query, strlen(query), EG_RECALL_QUERY_TOKENS_MAX - 10);
    s->query = eg_arena_strndup(&s->a, query, len);
    for (size_t i = 0; i < s->scope.ntypes; i++)
        total += s->scope.types[i].nmemory_ids + 1;
    s->tags = eg_arena_calloc(&s->a, (total + 1) * sizeof(*s->tags));
    for (size_t i = 0; i < s->scope.ntypes; i++) {
        const eg_lib_scope_type_t *t = &s->scope.types[i];
        if (t->nmemory_ids > 0) {
            for (size_t k = 0; k < t->nmemory_ids; k++)
                s->tags[s->ntags++] =
                    eg_arena_printf(&s->a, EG__LIB_TAG_MEM "%s", t->memory_ids[k]);
        } else if (t->match) {
            scan = true;
        } else {
            s->tags[s->ntags++] = eg_arena_printf(&s->a, EG__LIB_TAG_TYPE "%s", t->type_id);
        }
    }
    if (s->query[0] == '\0') {
        rc = EG_EINVAL;
    } else if (scan) {
        size_t nz = 0;
        const char **zs = eg_arena_calloc(&s->a, (s->scope.ntypes + 1) * sizeof(*zs));
        size_t *caps = eg_arena_calloc(&s->a, (s->scope.ntypes + 1) * sizeof(*caps));
        for (size_t i = 0; i < s->scope.ntypes; i++) {
            const eg_lib_scope_type_t *t = &s->scope.types[i];
            if (t->nmemory_ids == 0 && t->match) {
                zs[nz] = eg__lib_key(&s->a, ws, "mty:%s:m", t->type_id);
                caps[nz++] = EG__LIB_SCAN_MAX;
            }
        }
        rc = load(ws, zs, caps, nz, NULL, 0, on_scan, s);
    } else {
        run_recall(s);
        return 0;
    }
    if (rc != 0) {
        eg_arena_destroy(&s->a);
        free(s);
    }
    return rc;
}
