/* Retain (engram/retain.h): the pure pieces (derived ids, sub-batch splitting, item payloads),
 * then whole retains against a real Redis, the real store and the real bank index: documents,
 * entity resolution across retains, document replace and append, links, the asynchronous path
 * through the queue worker (operation records, idempotency, sub-batches), and a re-run of an
 * asynchronous batch writing nothing twice. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/mindex.h"
#include "engram/mstore.h"
#include "engram/ops.h"
#include "engram/retain.h"
#include "engram/store.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/retain_int.h"

#include "redis_fixture.h"

/* ---- pure ----------------------------------------------------------------------------------- */

Test(retain_pure, derived_ids)
{
    char a[37], b[37], c[37];

    eg_retain_derived_id("op", "u", "3:1", a);
    eg_retain_derived_id("op", "u", "3:1", b);
    eg_retain_derived_id("op", "u", "3:2", c);
    cr_assert_str_eq(a, b);
    cr_assert_str_neq(a, c);
    cr_assert(eg_uuid_valid(a));
    cr_assert_eq(a[14], '4');
    cr_assert(strchr("89ab", a[19]) != NULL);
    /* The separator keeps the parts apart. */
    eg_retain_derived_id("o", "pu", "3:1", c);
    cr_assert_str_neq(a, c);
}

Test(retain_pure, split_keeps_documents_together)
{
    char big[4000];
    memset(big, 0, sizeof(big));
    for (size_t i = 0; i + 6 < sizeof(big) - 1; i += 6)
        memcpy(big + i, "word. ", 6); /* ~2 tokens per 6 bytes */
    size_t bigtok = eg_text_estimate_tokens(big, strlen(big));
    eg_retain_item_t items[6] = {
        {.content = big, .document_id = "A"}, {.content = big, .document_id = NULL},
        {.content = big, .document_id = "A"}, {.content = "tiny", .document_id = NULL},
        {.content = big, .document_id = "B"}, {.content = big, .document_id = "B"},
    };
    size_t order[6], starts[6];
    size_t nb = eg_retain_split(items, 6, 2 * bigtok + 10, order, starts);

    /* A's two items first (together), then the loose big one, tiny, then B's pair. */
    cr_assert_eq(order[0], 0);
    cr_assert_eq(order[1], 2);
    cr_assert_eq(order[2], 1);
    cr_assert_eq(order[3], 3);
    cr_assert_eq(order[4], 4);
    cr_assert_eq(order[5], 5);
    cr_assert_eq(nb, 3);
    cr_assert_eq(starts[0], 0);
    cr_assert_eq(starts[1], 2);
    cr_assert_eq(starts[2], 4);
    /* Everything fits: one batch. */
    cr_assert_eq(eg_retain_split(items, 6, 1000000, order, starts), 1);
    cr_assert_eq(eg_retain_split(items, 0, 10, order, starts), 0);
}

Test(retain_pure, items_round_trip)
{
    eg_arena_t a;
    eg_retain_entity_t ents[] = {{"Alice", "PERSON"}, {"Acme", NULL}};
    const char *tags[] = {"user:1", "x"};
    cJSON *md = cJSON_Parse("{\"k\":\"v\"}");
    eg_retain_item_t in[2] = {
        {.content = "Alice joined Acme.",
         .timestamp = 1700000000123456,
         .context = "chat",
         .metadata = md,
         .document_id = "doc-1",
         .entities = ents,
         .nentities = 2,
         .resolve_entities = false,
         .tags = tags,
         .ntags = 2,
         .strategy = "s1",
         .append = true},
        {.content = "Second.", .timestamp = EG_MEM_TIME_NONE, .resolve_entities = true},
    };
    eg_retain_item_t *out;
    size_t n;

    eg_arena_init(&a);
    cJSON *j = eg_retain_items_json(in, 2);
    char *txt = cJSON_PrintUnformatted(j);
    cJSON *back = cJSON_Parse(txt);
    cr_assert_eq(eg_retain_items_parse(&a, back, &out, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(out[0].content, "Alice joined Acme.");
    cr_assert_eq(out[0].timestamp, 1700000000123456);
    cr_assert_str_eq(out[0].context, "chat");
    cr_assert_str_eq(cJSON_GetObjectItem(out[0].metadata, "k")->valuestring, "v");
    cr_assert_str_eq(out[0].document_id, "doc-1");
    cr_assert_eq(out[0].nentities, 2);
    cr_assert_str_eq(out[0].entities[0].type, "PERSON");
    cr_assert_null(out[0].entities[1].type);
    cr_assert_not(out[0].resolve_entities);
    cr_assert_eq(out[0].ntags, 2);
    cr_assert_str_eq(out[0].strategy, "s1");
    cr_assert(out[0].append);
    cr_assert_eq(out[1].timestamp, EG_MEM_TIME_NONE);
    cr_assert_null(out[1].document_id);
    cr_assert(out[1].resolve_entities);
    cr_assert_not(out[1].append);
    cr_assert_eq(eg_retain_items_parse(&a, cJSON_GetObjectItem(back, "nope"), &out, &n), EG_EINVAL);
    free(txt);
    cJSON_Delete(j);
    cJSON_Delete(back);
    cJSON_Delete(md);
    eg_arena_destroy(&a);
}

/* ---- against Redis -------------------------------------------------------------------------- */

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    redisContext *sync;
    eg_arena_t a;
    char ws[64], bank[64], scope[160];
    uint64_t deadline;
} T;

static void tick(uv_timer_t *h)
{
    (void)h;
}

static void wait_for(const int *done)
{
    T.deadline = uv_now(&T.loop) + 30000;
    while (!*done) {
        cr_assert(uv_now(&T.loop) < T.deadline, "timed out waiting for a callback");
        uv_run(&T.loop, UV_RUN_ONCE);
    }
}

/* Each test has its own redis-server: Criterion runs tests in parallel processes, and every
 * process consumes the one "retain" queue, so on a shared server one test's jobs could land in
 * another test's worker. */
static void setup(void)
{
    const char *url;
    eg_store_opts_t opts;
    eg_redis_url_t u;
    struct timeval tv = {2, 0};
    char r[9];

    t_redis_setup();
    url = t_private_url();
    opts = (eg_store_opts_t){url, 2, 2000, 1000};
    memset(&T, 0, sizeof(T));
    eg_arena_init(&T.a);
    cr_assert_eq(uv_loop_init(&T.loop), 0);
    uv_timer_init(&T.loop, &T.tick);
    uv_timer_start(&T.tick, tick, 5, 5);
    cr_assert_eq(eg_store_init(&T.loop, &opts), 0);
    T.deadline = uv_now(&T.loop) + 10000;
    while (!eg_store_up()) {
        cr_assert(uv_now(&T.loop) < T.deadline, "store did not come up");
        uv_run(&T.loop, UV_RUN_ONCE);
    }
    cr_assert_eq(eg_mindex_init(&T.loop, 0), 0);
    cr_assert_eq(eg_retain_start(&T.loop), 0);
    cr_assert_eq(eg_redis_url_parse(url, &u), 0);
    T.sync = redisConnectWithTimeout(u.host, u.port, tv);
    cr_assert(T.sync && T.sync->err == 0);
    if (u.db != 0)
        freeReplyObject(redisCommand(T.sync, "SELECT %d", u.db));
    eg_random_base62(r, 8);
    snprintf(T.ws, sizeof(T.ws), "ws-%d-%s", (int)getpid(), r);
    eg_random_base62(r, 8);
    snprintf(T.bank, sizeof(T.bank), "retain-%s", r);
    snprintf(T.scope, sizeof(T.scope), "%s/%s", T.ws, T.bank);
}

static void set_done(void *udata)
{
    *(int *)udata = 1;
}

static void teardown(void)
{
    int done = 0;

    eg_retain_stop(set_done, &done);
    wait_for(&done);
    eg_mindex_shutdown();
    done = 0;
    eg_store_shutdown(set_done, &done);
    uv_close((uv_handle_t *)&T.tick, NULL);
    wait_for(&done);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    redisFree(T.sync);
    eg_arena_destroy(&T.a);
    t_loop_close_checked(&T.loop);
    t_redis_teardown();
}

TestSuite(retain, .init = setup, .fini = teardown, .timeout = 120);

typedef struct {
    int done, err, calls;
    eg_retain_result_t res;
    char op[40];
    char ops[64][40];
} rres_t;

static void on_retained(void *udata, int err, const eg_retain_result_t *res)
{
    rres_t *r = udata;

    r->calls++;
    r->err = err;
    if (res) {
        r->res = *res;
        if (res->operation_id)
            snprintf(r->op, sizeof(r->op), "%s", res->operation_id);
        for (size_t i = 0; i < res->noperation_ids && i < 64; i++)
            snprintf(r->ops[i], sizeof(r->ops[i]), "%s", res->operation_ids[i]);
        r->res.operation_id = NULL;
        r->res.operation_ids = NULL;
    }
    r->done = 1;
}

static int retain(const eg_retain_item_t *items, size_t n, bool async, const char *op_id,
                  rres_t *out)
{
    eg_retain_req_t req = {items, n, NULL, 0, async, op_id};
    int rc;

    memset(out, 0, sizeof(*out));
    rc = eg_retain(T.ws, T.bank, &req, on_retained, out);
    if (rc != 0)
        return rc;
    wait_for(&out->done);
    cr_assert_eq(out->calls, 1);
    return out->err;
}

static eg_retain_item_t item(const char *content, const char *doc)
{
    eg_retain_item_t it = {.content = content,
                           .timestamp = EG_RETAIN_TIME_NOW,
                           .document_id = doc,
                           .resolve_entities = true};
    return it;
}

/* A snapshot of the bank index. */
typedef struct {
    int done, err;
    size_t units, entities, docs;
    int64_t alice_mentions;
    char alice_id[40];
    size_t nalice;
} snap_t;

static void on_ix(void *udata, int err, eg_mindex_t *ix)
{
    snap_t *s = udata;

    s->err = err;
    if (err == 0) {
        s->units = eg_mindex_count(ix);
        for (uint32_t i = 0; i < eg_mindex_entities(ix); i++) {
            const eg_mindex_entity_t *e = eg_mindex_entity(ix, i);
            if (!e)
                continue;
            s->entities++;
            if (strcmp(e->name, "Alice") == 0) {
                s->nalice++;
                s->alice_mentions = e->mention_count;
                snprintf(s->alice_id, sizeof(s->alice_id), "%s", e->id);
            }
        }
        for (uint32_t i = 0; i < eg_mindex_docs(ix); i++)
            s->docs += eg_mindex_doc(ix, i) != NULL;
    }
    s->done = 1;
}

static snap_t snapshot(void)
{
    snap_t s = {0};
    cr_assert_eq(eg_mindex_acquire(T.ws, T.bank, on_ix, &s), 0);
    wait_for(&s.done);
    cr_assert_eq(s.err, 0);
    return s;
}

typedef struct {
    int done, err;
    char text[4096];
    size_t nunits, nchunks;
} rdoc_t;

static void on_doc(void *udata, int err, const eg_mem_doc_t *d)
{
    rdoc_t *r = udata;
    r->err = err;
    if (d) {
        snprintf(r->text, sizeof(r->text), "%s", d->original_text ? d->original_text : "(null)");
        r->nunits = d->nunits;
        r->nchunks = d->nchunks;
    }
    r->done = 1;
}

static rdoc_t read_doc(const char *id)
{
    rdoc_t r = {0};
    cr_assert_eq(eg_mem_doc_get(T.ws, T.bank, id, on_doc, &r), 0);
    wait_for(&r.done);
    return r;
}

static long long hlen(const char *suffix)
{
    char *key = eg_key(&T.a, "b", T.scope, "%s", suffix);
    redisReply *rep = redisCommand(T.sync, "HLEN %s", key);
    cr_assert(rep && rep->type == REDIS_REPLY_INTEGER);
    long long n = rep->integer;
    freeReplyObject(rep);
    return n;
}

Test(retain, sync_facts_entities_documents)
{
    eg_retain_entity_t given[] = {{"Project Falcon", NULL}};
    eg_retain_item_t items[2] = {
        item("Hello! Alice moved to Berlin in 2019. She works at Acme Robotics.", NULL),
        item("Alice adopted a cat named Miso yesterday.", NULL),
    };
    items[1].entities = given;
    items[1].nentities = 1;
    rres_t r;

    cr_assert_eq(retain(items, 2, false, NULL, &r), 0);
    cr_assert_eq(r.res.items_count, 2);
    cr_assert_eq(r.res.units, 3);     /* the greeting is filler */
    cr_assert_eq(r.res.documents, 1); /* items without a document_id share one */
    cr_assert_eq(r.res.usage.total_tokens, 0);

    snap_t s = snapshot();
    cr_assert_eq(s.units, 3);
    cr_assert_eq(s.docs, 1);
    cr_assert_eq(s.nalice, 1, "Alice is one entity");
    cr_assert_eq(s.alice_mentions, 2);
    cr_assert_eq(hlen("u"), 3);
    cr_assert_eq(hlen("v"), 3);

    /* A later retain mentioning Alice reuses the entity (same name, recent). */
    eg_retain_item_t more = item("Alice started learning the cello.", NULL);
    cr_assert_eq(retain(&more, 1, false, NULL, &r), 0);
    snap_t s2 = snapshot();
    cr_assert_eq(s2.units, 4);
    cr_assert_eq(s2.nalice, 1);
    cr_assert_str_eq(s2.alice_id, s.alice_id);
    cr_assert_eq(s2.alice_mentions, 3);
    cr_assert_eq(s2.docs, 2);
}

Test(retain, document_replace_and_append)
{
    eg_retain_item_t a = item("Alice likes green tea. Bob likes black coffee.", "doc-1");
    rres_t r;

    cr_assert_eq(retain(&a, 1, false, NULL, &r), 0);
    cr_assert_eq(snapshot().units, 2);
    rdoc_t d = read_doc("doc-1");
    cr_assert_eq(d.err, 0);
    cr_assert_str_eq(d.text, "Alice likes green tea. Bob likes black coffee.");

    /* Replace: the old units go. */
    eg_retain_item_t b = item("Carol plays the violin.", "doc-1");
    cr_assert_eq(retain(&b, 1, false, NULL, &r), 0);
    snap_t s = snapshot();
    cr_assert_eq(s.units, 1);
    cr_assert_eq(s.docs, 1);
    cr_assert_eq(hlen("u"), 1);
    d = read_doc("doc-1");
    cr_assert_str_eq(d.text, "Carol plays the violin.");
    cr_assert_eq(d.nunits, 1);

    /* Append: the stored text and the new one, reprocessed together. */
    eg_retain_item_t c = item("Dave builds furniture.", "doc-1");
    c.append = true;
    cr_assert_eq(retain(&c, 1, false, NULL, &r), 0);
    d = read_doc("doc-1");
    cr_assert_str_eq(d.text, "Carol plays the violin.\nDave builds furniture.");
    cr_assert_eq(d.nunits, 2);
    cr_assert_eq(snapshot().units, 2);

    /* Appending to a document that does not exist yet simply creates it. */
    eg_retain_item_t e = item("Erin runs marathons.", "doc-2");
    e.append = true;
    cr_assert_eq(retain(&e, 1, false, NULL, &r), 0);
    cr_assert_str_eq(read_doc("doc-2").text, "Erin runs marathons.");
}

typedef struct {
    int done, err;
    size_t ntemporal, nsemantic, ncaused;
} rlinks_t;

static void on_units(void *udata, int err, const eg_mem_unit_t *const *units,
                     const eg_mem_link_t *const *links, const size_t *nlinks, size_t n)
{
    rlinks_t *r = udata;
    r->err = err;
    for (size_t i = 0; err == 0 && i < n; i++) {
        cr_assert_not_null(units[i]);
        for (size_t k = 0; k < nlinks[i]; k++) {
            r->ntemporal += links[i][k].type == EG_LINK_TEMPORAL;
            r->nsemantic += links[i][k].type == EG_LINK_SEMANTIC;
            r->ncaused += links[i][k].type == EG_LINK_CAUSED_BY;
        }
    }
    r->done = 1;
}

typedef struct {
    int done;
    char ids[16][40];
    size_t n;
} ids_t;

static void on_ids(void *udata, int err, eg_mindex_t *ix)
{
    ids_t *r = udata;
    cr_assert_eq(err, 0);
    for (uint32_t s = 0; s < eg_mindex_slots(ix) && r->n < 16; s++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);
        if (u)
            snprintf(r->ids[r->n++], 40, "%s", u->id);
    }
    r->done = 1;
}

Test(retain, links)
{
    eg_retain_item_t items[2] = {
        item("I lost my job at the bakery in March. So I moved back to Ohio.", NULL),
        item("I lost my job at the bakery in March and it was hard.", NULL),
    };
    rres_t r;

    cr_assert_eq(retain(items, 2, false, NULL, &r), 0);
    cr_assert_eq(r.res.units, 3);
    ids_t ids = {0};
    cr_assert_eq(eg_mindex_acquire(T.ws, T.bank, on_ids, &ids), 0);
    wait_for(&ids.done);
    cr_assert_eq(ids.n, 3);
    const char *idv[3] = {ids.ids[0], ids.ids[1], ids.ids[2]};
    rlinks_t l = {0};
    cr_assert_eq(eg_mem_units_get_links(T.ws, T.bank, idv, 3, on_units, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.err, 0);
    /* Event times: the two "in March" facts happened in March (0.02 s apart after the
     * offsets), "So I moved back" has only its mention time (now): one temporal pair, stored
     * once, on its holder. */
    cr_assert_eq(l.ntemporal, 1, "temporal %zu", l.ntemporal);
    /* The two "lost my job" facts are near-duplicates: one semantic link, both sides. */
    cr_assert_geq(l.nsemantic, 2);
    /* "So I moved back" was caused by the statement before it. */
    cr_assert_eq(l.ncaused, 1);
}

/* ---- asynchronous --------------------------------------------------------------------------- */

typedef struct {
    int done, err;
    eg_op_status_t status;
    char meta[512];
    char error[256];
} rop_t;

static void on_op(void *udata, int err, const eg_op_t *op)
{
    rop_t *r = udata;
    r->err = err;
    if (op) {
        r->status = op->status;
        snprintf(r->meta, sizeof(r->meta), "%s", op->meta);
        snprintf(r->error, sizeof(r->error), "%s", op->error);
    }
    r->done = 1;
}

static rop_t get_op(const char *id)
{
    rop_t r = {0};
    cr_assert_eq(eg_op_get("b", T.scope, id, on_op, &r), 0);
    wait_for(&r.done);
    return r;
}

/* Poll until the operation is final (the worker runs on this loop). */
static rop_t wait_op(const char *id)
{
    uint64_t until = uv_now(&T.loop) + 60000;
    for (;;) {
        rop_t r = get_op(id);
        cr_assert_eq(r.err, 0, "operation %s: %s", id, eg_strerror(r.err));
        if (r.status == EG_OP_COMPLETED || r.status == EG_OP_FAILED || r.status == EG_OP_CANCELLED)
            return r;
        cr_assert(uv_now(&T.loop) < until, "operation %s did not finish", id);
        /* The tick timer wakes the loop every 5 ms. */
        uint64_t later = uv_now(&T.loop) + 20;
        while (uv_now(&T.loop) < later)
            uv_run(&T.loop, UV_RUN_ONCE);
    }
}

Test(retain, async_operation_and_idempotency)
{
    char op[37];
    eg_retain_item_t items[2] = {
        item("Grace founded a robotics startup in Austin.", NULL),
        item("Heidi teaches chemistry at Lincoln High.", "doc-async"),
    };
    rres_t r;

    eg_uuid_v4(op);
    cr_assert_eq(retain(items, 2, true, op, &r), 0);
    cr_assert_str_eq(r.op, op);
    cr_assert_eq(r.res.noperation_ids, 1);
    cr_assert_str_eq(r.ops[0], op);
    cr_assert_not(r.res.replayed);
    rop_t o = wait_op(op);
    cr_assert_eq(o.status, EG_OP_COMPLETED, "%s", o.error);
    cr_assert(strstr(o.meta, "\"items_count\":2") != NULL, "%s", o.meta);
    snap_t s = snapshot();
    cr_assert_eq(s.units, 2);
    cr_assert_eq(s.docs, 2);

    /* The same request again: the original operation, nothing written twice. */
    cr_assert_eq(retain(items, 2, true, op, &r), 0);
    cr_assert(r.res.replayed);
    cr_assert_str_eq(r.op, op);
    cr_assert_eq(wait_op(op).status, EG_OP_COMPLETED);
    cr_assert_eq(snapshot().units, 2);

    /* Another payload under the same id: a conflict. */
    eg_retain_item_t other = item("Ivan repairs bicycles.", NULL);
    cr_assert_eq(retain(&other, 1, true, op, &r), EG_ECONFLICT);
    /* Not a UUID: refused up front. */
    eg_retain_req_t bad = {&other, 1, NULL, 0, true, "not-a-uuid"};
    cr_assert_eq(eg_retain(T.ws, T.bank, &bad, on_retained, &r), EG_EINVAL);
}

Test(retain, async_sub_batches)
{
    /* 24 items of about 1000 tokens each: three sub-batches of ~10k tokens. */
    size_t n = 24;
    eg_retain_item_t *items = eg_arena_alloc(&T.a, n * sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        char *text = eg_arena_alloc(&T.a, 8192), *w = text;
        w += sprintf(w, "Person%zu visited Lisbon in 2021.", i);
        while (w - text < 4500)
            w += sprintf(w, " Filler statement number %zu keeps the tokens coming.", i);
        items[i] = item(text, NULL);
    }
    rres_t r;
    cr_assert_eq(retain(items, n, true, NULL, &r), 0);
    cr_assert_geq(r.res.noperation_ids, 2);
    rop_t parent = wait_op(r.op);
    cr_assert_eq(parent.status, EG_OP_COMPLETED, "%s", parent.error);
    cr_assert(strstr(parent.meta, "\"children\"") != NULL);
    for (size_t i = 0; i < r.res.noperation_ids; i++) {
        rop_t c = wait_op(r.ops[i]);
        cr_assert_eq(c.status, EG_OP_COMPLETED);
        cr_assert(strstr(c.meta, r.op) != NULL, "a child names its parent");
    }
    /* One document per sub-batch (each groups its loose items). */
    snap_t s = snapshot();
    cr_assert_eq(s.docs, r.res.noperation_ids);
    cr_assert_gt(s.units, n);
}

typedef struct {
    int done, err;
    size_t units;
} rrun_t;

static void on_run(eg__run_t *run, int err, void *udata)
{
    rrun_t *r = udata;
    r->err = err;
    r->units = run ? run->units_written : 0;
    r->done = 1;
}

Test(retain, rerun_of_an_async_batch_writes_nothing_twice)
{
    char op[37];
    eg_retain_item_t items[3] = {
        item("Judy paints murals in Oakland.", NULL),
        item("Ken brews beer in Denver.", "doc-x"),
        item("Liam restores old cars.", "doc-y"),
    };
    size_t gidx[3] = {0, 1, 2};

    eg_uuid_v4(op);
    for (int round = 0; round < 2; round++) {
        rrun_t rr = {0};
        cr_assert_eq(eg__retain_run(T.ws, T.bank, items, gidx, 3, NULL, 0, op, eg__retain_now_us(),
                                    on_run, &rr),
                     0);
        wait_for(&rr.done);
        cr_assert_eq(rr.err, 0, "%s", eg_strerror(rr.err));
        /* The same derived ids and write keys: the second round replays. */
        cr_assert_eq(snapshot().units, 3);
        cr_assert_eq(hlen("u"), 3);
        cr_assert_eq(hlen("d"), 3);
    }
}

/* An extractor that answers later from the loop (as an LLM provider will): the builtin's facts,
 * delivered by a timer. Exercises the pipeline's path for providers that are not the builtin. */
typedef struct {
    uv_timer_t t;
    eg_extractor_t *x;
    eg_extract_result_t res;
    eg_extract_cb cb;
    void *udata;
} later_t;

static int later_calls;

static void later_fire(uv_timer_t *t)
{
    later_t *l = t->data;
    l->cb(l->x, 0, &l->res, l->udata);
    uv_close((uv_handle_t *)&l->t, (uv_close_cb)free);
}

static int later_extract(eg_extractor_t *x, eg_arena_t *a, const eg_extract_input_t *in,
                         eg_extract_cb cb, void *udata)
{
    later_t *l = calloc(1, sizeof(*l));
    later_calls++;
    eg_extract_builtin_run(a, in, &l->res);
    l->res.usage.input_tokens = 7; /* a provider that reports usage */
    l->x = x;
    l->cb = cb;
    l->udata = udata;
    uv_timer_init(&T.loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_fire, 1, 0);
    return 0;
}

static void later_destroy(eg_extractor_t *x)
{
    free(x);
}

Test(retain, asynchronous_provider)
{
    eg_extractor_t *x = calloc(1, sizeof(*x));
    x->name = "later";
    x->extract = later_extract;
    x->destroy = later_destroy;
    eg_retain_set_providers(x, NULL);

    eg_retain_item_t items[2] = {
        item("Nadia sings in a jazz band. Omar coaches a chess club.", "doc-a"),
        item("Pia grows tomatoes on her balcony.", "doc-b"),
    };
    rres_t r;
    later_calls = 0;
    cr_assert_eq(retain(items, 2, false, NULL, &r), 0);
    cr_assert_eq(later_calls, 2); /* one call per chunk */
    cr_assert_eq(r.res.units, 3);
    cr_assert_eq(r.res.documents, 2);
    cr_assert_eq(r.res.usage.input_tokens, 14);
    cr_assert_eq(snapshot().units, 3);
}

/* ---- against a stored bank ------------------------------------------------------------------ */

typedef struct {
    int done;
    size_t semantic_to_old, units, marta, lisbon;
    char old_id[40];
} across_t;

static void on_across(void *udata, int err, eg_mindex_t *ix)
{
    across_t *a = udata;
    uint32_t old;

    cr_assert_eq(err, 0);
    a->units = eg_mindex_count(ix);
    cr_assert_eq(eg_mindex_find(ix, a->old_id, &old), 0);
    for (uint32_t s = 0; s < eg_mindex_slots(ix); s++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);
        for (uint32_t l = 0; u && s != old && l < u->nlinks; l++)
            a->semantic_to_old += u->links[l].slot == old && u->links[l].type == EG_LINK_SEMANTIC;
    }
    for (uint32_t i = 0; i < eg_mindex_entities(ix); i++) {
        const eg_mindex_entity_t *e = eg_mindex_entity(ix, i);
        a->marta += e && strncmp(e->name, "Marta", 5) == 0;
        a->lisbon += e && strcmp(e->name, "Lisbon") == 0;
    }
    a->done = 1;
}

static void on_first_unit(void *udata, int err, eg_mindex_t *ix)
{
    across_t *a = udata;

    cr_assert_eq(err, 0);
    for (uint32_t s = 0; s < eg_mindex_slots(ix); s++)
        if (eg_mindex_unit(ix, s)) {
            snprintf(a->old_id, sizeof(a->old_id), "%s", eg_mindex_unit(ix, s)->id);
            break;
        }
    a->done = 1;
}

/* A later batch links to and resolves against what is stored: the batch scan finds the stored
 * near-duplicate (semantic link), the time order its time neighbour (temporal link, held by the
 * new unit), and a misspelt name mentioned with a place the stored entity was seen with is that
 * entity (co-occurrence through the index). */
Test(retain, links_and_entities_against_the_stored_bank)
{
    int64_t day = INT64_C(1714521600000000); /* 2024-05-01 */
    eg_retain_item_t first = item("Marta Kowalski signed the lighthouse contract in Lisbon.", NULL);
    rres_t r;

    first.timestamp = day;
    cr_assert_eq(retain(&first, 1, false, NULL, &r), 0);
    cr_assert_eq(r.res.units, 1);
    across_t a = {0};
    cr_assert_eq(eg_mindex_acquire(T.ws, T.bank, on_first_unit, &a), 0);
    wait_for(&a.done);

    eg_retain_item_t later[2] = {
        item("Marta Kowalski signed the lighthouse contract in Lisbon.", "again"),
        item("Marta Kowalsky flew home from Lisbon.", "again"),
    };
    later[0].timestamp = day + INT64_C(3600) * 1000000;
    /* Six days on: name and recency alone score 0.5 * 0.93 + 0.03 < 0.6; having been seen with
     * Lisbon (+0.3) makes it the stored entity. */
    later[1].timestamp = day + 6 * INT64_C(86400) * 1000000;
    cr_assert_eq(retain(later, 2, false, NULL, &r), 0);
    cr_assert_eq(r.res.units, 2);
    a.done = 0;
    cr_assert_eq(eg_mindex_acquire(T.ws, T.bank, on_across, &a), 0);
    wait_for(&a.done);
    cr_assert_eq(a.units, 3);
    cr_assert_eq(a.semantic_to_old, 1, "the repeated fact links the stored one");
    cr_assert_eq(a.marta, 1, "Marta Kowalsky is the stored Marta Kowalski");
    cr_assert_eq(a.lisbon, 1);

    /* The stored unit keeps no temporal entry; the later units hold theirs to it. */
    rlinks_t l = {0};
    const char *ids[1] = {a.old_id};
    cr_assert_eq(eg_mem_units_get_links(T.ws, T.bank, ids, 1, on_units, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.ntemporal, 0);
    cr_assert_eq(l.nsemantic, 1, "the semantic link's reverse side");
    char *lr = eg_key(&T.a, "b", T.scope, "lr");
    redisReply *rep = redisCommand(T.sync, "HGET %s %s", lr, a.old_id);
    cr_assert(rep && rep->type == REDIS_REPLY_STRING);
    cr_assert_str_eq(rep->str, "1", "the unit an hour later holds a temporal link to it");
    freeReplyObject(rep);
}
