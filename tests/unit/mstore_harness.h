/* Shared harness of the memory store tests against real Redis (test_mstore.c,
 * test_mstore_docs.c): a uv loop with the store, synchronous wrappers around the async API, a
 * direct hiredis connection for looking at the keys, batch builders, and t_check(), which
 * recomputes every counter and cross-reference of the bank from its raw keys and compares.
 *
 * Functions are static inline so each test file can use the subset it needs. */
#ifndef ENGRAM_TESTS_MSTORE_HARNESS_H
#define ENGRAM_TESTS_MSTORE_HARNESS_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/util.h"

#include "redis_fixture.h"

#define T_DIM 4

typedef struct t_env_s {
    uv_loop_t loop;
    uv_timer_t tick;
    redisContext *sync;
    eg_arena_t a; /* test-lifetime strings */
    char ws[64];
    char bank[64];
    char tag[160];
    uint64_t deadline;
} t_env_t;

static t_env_t T;

static inline void t_tick(uv_timer_t *h)
{
    (void)h;
}

/* Run the loop until *done (or fail after 10 s). */
static inline void t_wait(const int *done)
{
    while (!*done) {
        cr_assert(uv_now(&T.loop) < T.deadline, "timed out waiting for a callback");
        uv_run(&T.loop, UV_RUN_ONCE);
    }
}

static inline void t_wait_up(void)
{
    T.deadline = uv_now(&T.loop) + 10000;
    while (!eg_store_up()) {
        cr_assert(uv_now(&T.loop) < T.deadline, "store did not come up");
        uv_run(&T.loop, UV_RUN_ONCE);
    }
}

static inline redisReply *t_cmd(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(T.sync, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "sync redis command failed");
    cr_assert_neq(r->type, REDIS_REPLY_ERROR, "%s", r->str);
    eg_arena_defer(&T.a, (void (*)(void *))freeReplyObject, r);
    return r;
}

/* The bank's key with this suffix. */
static inline const char *t_key(const char *suffix)
{
    return eg_key(&T.a, "b", T.tag, "%s", suffix);
}

static inline void t_bank_done(void *udata, int err, const eg_bank_t *b, bool created)
{
    (void)b;
    (void)created;
    cr_assert_eq(err, 0, "bank put: %s", eg_strerror(err));
    *(int *)udata = 1;
}

static inline void t_bank_put(void)
{
    int done = 0;

    cr_assert_eq(eg_bank_put(T.ws, T.bank, NULL, t_bank_done, &done), 0);
    t_wait(&done);
}

/* Start the loop and the store on url, connect the inspector, make a fresh bank. */
static inline void t_env_start_url(const char *url, bool make_bank)
{
    eg_store_opts_t opts = {url, 2, 1000, 1000};
    eg_redis_url_t u;
    struct timeval tv = {2, 0};
    char r[9];

    memset(&T, 0, sizeof(T));
    eg_arena_init(&T.a);
    cr_assert_eq(uv_loop_init(&T.loop), 0);
    uv_timer_init(&T.loop, &T.tick);
    uv_timer_start(&T.tick, t_tick, 5, 5);
    cr_assert_eq(eg_store_init(&T.loop, &opts), 0);
    t_wait_up();
    cr_assert_eq(eg_redis_url_parse(url, &u), 0);
    T.sync = redisConnectWithTimeout(u.host, u.port, tv);
    cr_assert(T.sync != NULL && T.sync->err == 0);
    if (u.db != 0)
        t_cmd("SELECT %d", u.db);
    eg_random_base62(r, 8);
    snprintf(T.ws, sizeof(T.ws), "ws-%d-%s", (int)getpid(), r);
    eg_random_base62(r, 8);
    snprintf(T.bank, sizeof(T.bank), "bank {%s} é", r); /* braces: escaped in the tag */
    snprintf(T.tag, sizeof(T.tag), "%s/%s", T.ws, T.bank);
    T.deadline = uv_now(&T.loop) + 20000;
    if (make_bank)
        t_bank_put();
}

static inline void t_env_start(void)
{
    t_env_start_url(t_url(), true);
}

static inline void t_shutdown_done(void *udata)
{
    *(int *)udata = 1;
}

static inline void t_env_stop(void)
{
    int done = 0;

    eg_store_shutdown(t_shutdown_done, &done);
    uv_close((uv_handle_t *)&T.tick, NULL);
    T.deadline = uv_now(&T.loop) + 10000;
    t_wait(&done);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    redisFree(T.sync);
    eg_arena_destroy(&T.a);
    t_loop_close_checked(&T.loop);
}

/* ---- synchronous wrappers ------------------------------------------------------------------ */

typedef struct t_wres_s {
    int done, err, calls;
    eg_mem_write_result_t r;
    char map[8][2][EG_MEM_UUID_LEN + 1];
} t_wres_t;

static inline void t_write_done(void *udata, int err, const eg_mem_write_result_t *r)
{
    t_wres_t *w = udata;

    w->calls++;
    w->err = err;
    cr_assert_eq(err == 0, r != NULL);
    if (r != NULL) {
        w->r = *r;
        cr_assert_leq(r->n_map, 8);
        for (size_t i = 0; i < r->n_map; i++) {
            snprintf(w->map[i][0], sizeof(w->map[i][0]), "%s", r->id_map[i][0]);
            snprintf(w->map[i][1], sizeof(w->map[i][1]), "%s", r->id_map[i][1]);
        }
        w->r.id_map = NULL;
    }
    w->done = 1;
}

/* eg_mem_write and wait; returns the error (the call's or the callback's). */
static inline int t_write(const eg_mem_write_t *w, t_wres_t *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    rc = eg_mem_write(T.ws, T.bank, w, t_write_done, out);
    if (rc != 0)
        return rc;
    t_wait(&out->done);
    cr_assert_eq(out->calls, 1);
    return out->err;
}

typedef struct t_count_s {
    int done, err, calls;
    int64_t n;
} t_count_t;

static inline void t_count_done(void *udata, int err, int64_t n)
{
    t_count_t *c = udata;

    c->calls++;
    c->err = err;
    c->n = n;
    c->done = 1;
}

/* Wait for a count callback started with rc; returns the error, n in *n. */
static inline int t_count_wait(int rc, t_count_t *c, int64_t *n)
{
    if (rc != 0)
        return rc;
    t_wait(&c->done);
    cr_assert_eq(c->calls, 1);
    if (n != NULL)
        *n = c->n;
    return c->err;
}

static inline int t_units_delete(const char *const *ids, size_t n, int64_t *out)
{
    t_count_t c = {0};
    return t_count_wait(eg_mem_units_delete(T.ws, T.bank, ids, n, t_count_done, &c), &c, out);
}

static inline int t_doc_delete(const char *doc, int64_t *out)
{
    t_count_t c = {0};
    return t_count_wait(eg_mem_doc_delete(T.ws, T.bank, doc, t_count_done, &c), &c, out);
}

static inline int t_clear(unsigned mask, int64_t *out)
{
    t_count_t c = {0};
    return t_count_wait(eg_mem_clear(T.ws, T.bank, mask, t_count_done, &c), &c, out);
}

static inline int t_set_tags(const char *doc, const char *const *tags, size_t n, int64_t *out)
{
    t_count_t c = {0};
    return t_count_wait(eg_mem_doc_set_tags(T.ws, T.bank, doc, tags, n, t_count_done, &c), &c, out);
}

/* Units read back, copied into the test arena. */
typedef struct t_units_s {
    int done, err, calls;
    size_t n;
    eg_mem_unit_t *u[16];
    eg_mem_link_t *links[16];
    size_t nlinks[16];
} t_units_t;

static inline const char *t_dup(const char *s)
{
    return s != NULL ? eg_arena_strdup(&T.a, s) : NULL;
}

static inline const char *const *t_dup_strs(const char *const *v, size_t n)
{
    const char **o = eg_arena_calloc(&T.a, (n + 1) * sizeof(*o));

    for (size_t i = 0; i < n; i++)
        o[i] = t_dup(v[i]);
    return o;
}

static inline eg_mem_unit_t *t_unit_copy(const eg_mem_unit_t *u)
{
    eg_mem_unit_t *c = eg_arena_alloc(&T.a, sizeof(*c));

    *c = *u;
    c->id = t_dup(u->id);
    c->text = t_dup(u->text);
    c->context = t_dup(u->context);
    c->document_id = t_dup(u->document_id);
    c->chunk_id = t_dup(u->chunk_id);
    c->invalidation_reason = t_dup(u->invalidation_reason);
    c->tags = t_dup_strs(u->tags, u->ntags);
    c->entity_ids = t_dup_strs(u->entity_ids, u->nentities);
    c->source_ids = t_dup_strs(u->source_ids, u->nsources);
    c->metadata = NULL;
    return c;
}

static inline void t_units_links_done(void *udata, int err, const eg_mem_unit_t *const *units,
                                      const eg_mem_link_t *const *links, const size_t *nlinks,
                                      size_t n)
{
    t_units_t *o = udata;

    o->calls++;
    o->err = err;
    o->n = n;
    for (size_t i = 0; err == 0 && i < n && i < 16; i++) {
        o->u[i] = units[i] != NULL ? t_unit_copy(units[i]) : NULL;
        o->nlinks[i] = nlinks[i];
        o->links[i] = NULL;
        if (nlinks[i] > 0) {
            o->links[i] = eg_arena_alloc(&T.a, nlinks[i] * sizeof(eg_mem_link_t));
            for (size_t k = 0; k < nlinks[i]; k++) {
                o->links[i][k] = links[i][k];
                o->links[i][k].other_id = t_dup(links[i][k].other_id);
            }
        }
    }
    o->done = 1;
}

static inline int t_units_get_links(const char *const *ids, size_t n, t_units_t *o)
{
    int rc;

    memset(o, 0, sizeof(*o));
    rc = eg_mem_units_get_links(T.ws, T.bank, ids, n, t_units_links_done, o);
    if (rc != 0)
        return rc;
    t_wait(&o->done);
    cr_assert_eq(o->calls, 1);
    return o->err;
}

/* The link of u to other with type t in a read-back, or NULL. */
static inline const eg_mem_link_t *t_find_link(const t_units_t *o, size_t i, const char *other,
                                               eg_link_type_t t)
{
    for (size_t k = 0; k < o->nlinks[i]; k++)
        if (strcmp(o->links[i][k].other_id, other) == 0 && o->links[i][k].type == t)
            return &o->links[i][k];
    return NULL;
}

typedef struct t_doc_s {
    int done, err, calls;
    bool found;
    eg_mem_doc_t d;
} t_doc_t;

static inline void t_doc_done(void *udata, int err, const eg_mem_doc_t *d)
{
    t_doc_t *o = udata;

    o->calls++;
    o->err = err;
    cr_assert_eq(err == 0, d != NULL);
    if (d != NULL) {
        o->d = *d;
        o->d.id = t_dup(d->id);
        o->d.original_text = t_dup(d->original_text);
        o->d.content_hash = t_dup(d->content_hash);
        o->d.tags = t_dup_strs(d->tags, d->ntags);
        o->d.unit_ids = t_dup_strs(d->unit_ids, d->nunits);
        o->d.metadata = o->d.retain_params = NULL;
    }
    o->done = 1;
}

static inline int t_doc_get(const char *doc, t_doc_t *o)
{
    int rc;

    memset(o, 0, sizeof(*o));
    rc = eg_mem_doc_get(T.ws, T.bank, doc, t_doc_done, o);
    if (rc != 0)
        return rc;
    t_wait(&o->done);
    cr_assert_eq(o->calls, 1);
    return o->err;
}

static inline bool t_has(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* ---- building batches ---------------------------------------------------------------------- */

/* A fresh UUID in the test arena. */
static inline const char *t_uuid(void)
{
    char *s = eg_arena_alloc(&T.a, EG_MEM_UUID_LEN + 1);

    eg_uuid_v4(s);
    return s;
}

/* A unit of the given text/type naming entities, with a vector derived from seed. */
static inline void t_unit(eg_mem_new_unit_t *nu, const char *id, const char *text,
                          eg_fact_type_t type, const char *const *ents, size_t nents, float seed)
{
    float *v = eg_arena_alloc(&T.a, T_DIM * sizeof(float));

    for (int i = 0; i < T_DIM; i++)
        v[i] = seed + 0.25f * (float)i;
    memset(nu, 0, sizeof(*nu));
    nu->unit = (eg_mem_unit_t){
        .id = id,
        .text = text,
        .context = "ctx",
        .type = type,
        .occurred_start = INT64_C(1714521600000000),
        .occurred_end = INT64_C(1714607999999999),
        .mentioned_at = INT64_C(1714600000123456),
        .created_at = INT64_C(1714600001000001),
        .updated_at = INT64_C(1714600001000001),
        .entity_ids = ents,
        .nentities = nents,
        .invalidated_at = EG_MEM_TIME_NONE,
        .edited_at = EG_MEM_TIME_NONE,
        .proof_count = 1,
    };
    nu->vec = v;
}

static inline eg_mem_write_t t_batch(const char *doc, eg_mem_new_unit_t *units, size_t nunits,
                                     const eg_mem_entity_ref_t *ents, size_t nents)
{
    static const char *chunks[] = {"first chunk", "second chunk"};

    return (eg_mem_write_t){
        .doc = {.id = doc,
                .original_text = "first chunk second chunk",
                .content_hash = "abc",
                .created_at = INT64_C(1714600000000000),
                .updated_at = INT64_C(1714600000000000),
                .text_length = 24},
        .replace = true,
        .chunks = chunks,
        .nchunks = 2,
        .units = units,
        .nunits = nunits,
        .entities = ents,
        .nentities = nents,
        .dim = T_DIM,
        .embed_model = "test-model",
    };
}

/* ---- the consistency check ----------------------------------------------------------------- */

static inline redisReply *t_field(const redisReply *h, const char *f)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (strcmp(h->element[i]->str, f) == 0)
            return h->element[i + 1];
    return NULL;
}

static inline int64_t t_bank_int(const char *f)
{
    redisReply *r = t_cmd("HGET %s %s", t_key("bank"), f);

    return r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
}

/* Recompute everything derived from the unit records and compare: counters, vectors, links (both
 * sides, or one side and :lr for temporal ones), entity mention counts and the name index,
 * document membership, chunks. */
static inline void t_check(void)
{
    redisReply *u = t_cmd("HGETALL %s", t_key("u")), *v = t_cmd("HGETALL %s", t_key("v"));
    redisReply *l = t_cmd("HGETALL %s", t_key("l")), *d = t_cmd("HGETALL %s", t_key("d"));
    redisReply *du = t_cmd("HGETALL %s", t_key("du")), *e = t_cmd("HGETALL %s", t_key("e"));
    redisReply *es = t_cmd("HGETALL %s", t_key("es")), *en = t_cmd("HGETALL %s", t_key("en"));
    long long nchunks = t_cmd("HLEN %s", t_key("c"))->integer, want_chunks = 0, entries = 0;
    size_t nu = u->elements / 2;
    eg_mem_unit_t *units = eg_arena_calloc(&T.a, (nu + 1) * sizeof(*units));

    cr_assert_eq(t_bank_int("fact_count"), (int64_t)nu, "fact_count");
    cr_assert_eq(t_bank_int("document_count"), (int64_t)(d->elements / 2), "document_count");
    cr_assert_eq(v->elements, u->elements, "one vector per unit");
    for (size_t i = 0; i < nu; i++) {
        const char *id = u->element[2 * i]->str;
        redisReply *vec = t_field(v, id);

        cr_assert_eq(eg_mem_unit_parse(&T.a, u->element[2 * i + 1]->str, u->element[2 * i + 1]->len,
                                       &units[i]),
                     0);
        cr_assert_str_eq(units[i].id, id);
        cr_assert(vec != NULL && vec->len == 4 * T_DIM, "vector of %s", id);
        /* document membership */
        if (units[i].document_id != NULL) {
            redisReply *m = t_field(du, units[i].document_id);
            char needle[64];

            cr_assert_not_null(m, "unit %s: document %s has no list", id, units[i].document_id);
            snprintf(needle, sizeof(needle), "%s,", id);
            cr_assert_not_null(strstr(m->str, needle), "unit %s not listed by its document", id);
        }
        /* entities exist */
        for (size_t k = 0; k < units[i].nentities; k++)
            cr_assert_not_null(t_field(e, units[i].entity_ids[k]), "unit %s: entity %s missing", id,
                               units[i].entity_ids[k]);
    }
    /* links: a semantic or causal entry's other end exists and holds the reverse entry; a
     * temporal entry is held on one side only, counted for its other end in :lr (even once that
     * end is gone), and is a link while that end exists */
    long long temporal_live = 0;
    redisReply *lr = t_cmd("HGETALL %s", t_key("lr"));
    eg_mem_link_t **held = eg_arena_calloc(&T.a, (l->elements / 2 + 1) * sizeof(*held));
    size_t *nheld = eg_arena_calloc(&T.a, (l->elements / 2 + 1) * sizeof(*nheld));
    for (size_t i = 0; i + 1 < l->elements; i += 2) {
        const char *id = l->element[i]->str;
        eg_mem_link_t *ls;
        size_t n;

        cr_assert_not_null(t_field(u, id), "links of a missing unit %s", id);
        cr_assert_eq(
            eg_mem_links_parse(&T.a, l->element[i + 1]->str, l->element[i + 1]->len, &ls, &n), 0);
        cr_assert_gt(n, 0, "empty link list kept");
        held[i / 2] = ls;
        nheld[i / 2] = n;
        for (size_t k = 0; k < n; k++) {
            redisReply *o = t_field(l, ls[k].other_id);
            eg_mem_link_t *ol;
            size_t on;
            bool found = false;

            if (ls[k].type == EG_LINK_TEMPORAL) {
                temporal_live += t_field(u, ls[k].other_id) != NULL;
                continue;
            }
            entries++;
            cr_assert_not_null(o, "%s links to %s, which has no links", id, ls[k].other_id);
            cr_assert_eq(eg_mem_links_parse(&T.a, o->str, o->len, &ol, &on), 0);
            for (size_t j = 0; j < on; j++)
                found |= strcmp(ol[j].other_id, id) == 0 &&
                         ol[j].type == eg_link_type_reverse(ls[k].type) &&
                         ol[j].weight == ls[k].weight;
            cr_assert(found, "%s -> %s %s has no reverse entry", id, ls[k].other_id,
                      eg_link_type_name(ls[k].type));
        }
    }
    cr_assert_eq(entries % 2, 0);
    cr_assert_eq(t_bank_int("link_count"), entries / 2 + temporal_live, "link_count");
    /* :lr: for every id, the temporal entries naming it, nothing else */
    for (size_t i = 0; i + 1 < lr->elements; i += 2) {
        long long want = 0;
        for (size_t h = 0; h < l->elements / 2; h++)
            for (size_t k = 0; k < nheld[h]; k++)
                want += held[h][k].type == EG_LINK_TEMPORAL &&
                        strcmp(held[h][k].other_id, lr->element[i]->str) == 0;
        cr_assert_gt(want, 0, ":lr counts %s, which no temporal link names", lr->element[i]->str);
        cr_assert_eq(strtoll(lr->element[i + 1]->str, NULL, 10), want, ":lr of %s",
                     lr->element[i]->str);
    }
    for (size_t h = 0; h < l->elements / 2; h++)
        for (size_t k = 0; k < nheld[h]; k++)
            if (held[h][k].type == EG_LINK_TEMPORAL)
                cr_assert_not_null(t_field(lr, held[h][k].other_id), "no :lr entry for %s",
                                   held[h][k].other_id);
    /* documents: a list per document, each listed unit exists and names it */
    cr_assert_eq(du->elements, d->elements);
    for (size_t i = 0; i + 1 < d->elements; i += 2) {
        eg_mem_doc_t doc;
        redisReply *m = t_field(du, d->element[i]->str);
        char *list, *save = NULL;

        cr_assert_eq(eg_mem_doc_parse(&T.a, d->element[i + 1]->str, d->element[i + 1]->len, &doc),
                     0);
        want_chunks += (long long)doc.nchunks;
        cr_assert_not_null(m);
        list = eg_arena_strdup(&T.a, m->str);
        for (char *id = strtok_r(list, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
            bool ok = false;
            for (size_t k = 0; k < nu; k++)
                ok |= strcmp(units[k].id, id) == 0 && units[k].document_id != NULL &&
                      strcmp(units[k].document_id, d->element[i]->str) == 0;
            cr_assert(ok, "document %s lists %s", d->element[i]->str, id);
        }
    }
    cr_assert_eq(nchunks, want_chunks, "chunks");
    cr_assert_eq(t_bank_int("chunk_count"), nchunks, "chunk_count");
    /* entities: mention count = units naming it (> 0), name index, no stray stats */
    for (size_t i = 0; i + 1 < e->elements; i += 2) {
        const char *id = e->element[i]->str;
        char f[64];
        int64_t want = 0;
        eg_mem_entity_t ent;
        cJSON *j = cJSON_Parse(e->element[i + 1]->str);
        redisReply *n, *idx;

        for (size_t k = 0; k < nu; k++)
            want += t_has(units[k].entity_ids, units[k].nentities, id);
        snprintf(f, sizeof(f), "%s:n", id);
        n = t_field(es, f);
        cr_assert_not_null(n, "entity %s has no count", id);
        cr_assert_eq(strtoll(n->str, NULL, 10), want, "mentions of %s", id);
        cr_assert_gt(want, 0, "entity %s without mentions kept", id);
        cr_assert_eq(
            eg_mem_entity_parse(&T.a, e->element[i + 1]->str, e->element[i + 1]->len, &ent), 0);
        idx = t_field(en, cJSON_GetObjectItem(j, "folded")->valuestring);
        cr_assert(idx != NULL && strcmp(idx->str, id) == 0, "name index of %s", id);
        cJSON_Delete(j);
    }
    for (size_t i = 0; i + 1 < es->elements; i += 2) {
        char id[64];

        snprintf(id, sizeof(id), "%.*s", EG_MEM_UUID_LEN, es->element[i]->str);
        cr_assert_not_null(t_field(e, id), "stats of a missing entity %s", id);
    }
    cr_assert_eq(en->elements, e->elements, "one name index entry per entity");
}

/* The stream's entries; entry i's field f, or NULL. */
static inline redisReply *t_stream(void)
{
    return t_cmd("XRANGE %s - +", t_key("x"));
}

static inline const char *t_entry_field(const redisReply *x, size_t i, const char *f)
{
    const redisReply *kv;

    cr_assert_lt(i, x->elements);
    kv = x->element[i]->element[1];
    for (size_t k = 0; k + 1 < kv->elements; k += 2)
        if (strcmp(kv->element[k]->str, f) == 0)
            return kv->element[k + 1]->str;
    return NULL;
}

#endif
