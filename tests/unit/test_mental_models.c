/* Mental models (engram/mental_models.h) against a real Redis: create (caller's id or a UUID,
 * a taken id refused) with its refresh_mental_model operation record and queued job, get / list
 * (tags, paging) / patch / delete, refreshed content saved with its history (newest first,
 * capped at EG_MM_HISTORY_MAX), clear, staleness against the bank's last write, refresh
 * requests and the retry of a failed one, search ranking, tag counts, another workspace seeing
 * nothing, a memory clear keeping models and a bank delete dropping their keys. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engram/bank.h"
#include "engram/bankops.h"
#include "engram/error.h"
#include "engram/mental_models.h"
#include "engram/mstore.h"
#include "engram/ops.h"
#include "engram/store.h"
#include "engram/util.h"

#include "redis_fixture.h"

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    char ws[64], bank[64], scope[140];
} E;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void wait_for(const int *done)
{
    uint64_t deadline = uv_now(&E.loop) + 10000;

    while (!*done) {
        cr_assert(uv_now(&E.loop) < deadline, "timed out");
        uv_run(&E.loop, UV_RUN_ONCE);
    }
}

static void setup(void)
{
    eg_store_opts_t o = {NULL, 2, 2000, 1000};
    char r[9];

    t_redis_setup();
    o.url = t_url();
    memset(&E, 0, sizeof(E));
    cr_assert_eq(uv_loop_init(&E.loop), 0);
    uv_timer_init(&E.loop, &E.tick);
    uv_timer_start(&E.tick, on_tick, 5, 5);
    cr_assert_eq(eg_store_init(&E.loop, &o), 0);
    uint64_t deadline = uv_now(&E.loop) + 10000;
    while (!eg_store_up()) {
        cr_assert(uv_now(&E.loop) < deadline, "store did not come up");
        uv_run(&E.loop, UV_RUN_ONCE);
    }
    eg_random_base62(r, 8);
    snprintf(E.ws, sizeof(E.ws), "ws-%d-%s", (int)getpid(), r);
    snprintf(E.bank, sizeof(E.bank), "mm bank %s", r);
    snprintf(E.scope, sizeof(E.scope), "%s/%s", E.ws, E.bank);
    cr_assert_eq(eg_mm_init(), 0);
}

static void set_flag(void *udata)
{
    *(int *)udata = 1;
}

static void teardown(void)
{
    int done = 0;

    eg_bankops_set_retry(EG_MM_OP_KIND, NULL);
    eg_store_shutdown(set_flag, &done);
    uv_close((uv_handle_t *)&E.tick, NULL);
    wait_for(&done);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    t_loop_close_checked(&E.loop);
    t_redis_teardown();
}

TestSuite(mental_models, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers --------------------------------------------------------------------------------- */

typedef struct {
    int done, err;
    char id[300], op_id[40];
} sub_t;

static void on_sub(void *udata, int err, const char *id, const char *op_id)
{
    sub_t *s = udata;

    s->err = err;
    if (id)
        snprintf(s->id, sizeof(s->id), "%s", id);
    if (op_id)
        snprintf(s->op_id, sizeof(s->op_id), "%s", op_id);
    s->done++;
}

typedef struct {
    int done, err;
    char id[300], name[64], query[128], content[256], tags[128], trigger[256], rr[256];
    int64_t max_tokens, last_refreshed_at, last_memory_seen_at, created_at;
    bool stale;
} mm_t;

static void fill(mm_t *o, const eg_mm_t *m)
{
    char *t;

    snprintf(o->id, sizeof(o->id), "%s", m->id);
    snprintf(o->name, sizeof(o->name), "%s", m->name);
    snprintf(o->query, sizeof(o->query), "%s", m->source_query);
    snprintf(o->content, sizeof(o->content), "%s", m->content);
    o->tags[0] = 0;
    for (size_t i = 0; i < m->ntags; i++)
        snprintf(o->tags + strlen(o->tags), sizeof(o->tags) - strlen(o->tags), "%s%s", i ? "," : "",
                 m->tags[i]);
    t = cJSON_PrintUnformatted(m->trigger);
    snprintf(o->trigger, sizeof(o->trigger), "%s", t);
    free(t);
    o->rr[0] = 0;
    if (m->reflect_response) {
        t = cJSON_PrintUnformatted(m->reflect_response);
        snprintf(o->rr, sizeof(o->rr), "%s", t);
        free(t);
    }
    o->max_tokens = m->max_tokens;
    o->last_refreshed_at = m->last_refreshed_at;
    o->last_memory_seen_at = m->last_memory_seen_at;
    o->created_at = m->created_at;
    o->stale = m->is_stale;
}

static void on_mm(void *udata, int err, const eg_mm_t *m)
{
    mm_t *o = udata;

    o->err = err;
    if (m)
        fill(o, m);
    o->done++;
}

typedef struct {
    int done, err;
    size_t n, total;
    char ids[16][64];
} list_t;

static void on_list(void *udata, int err, const eg_mm_t *ms, size_t n, size_t total)
{
    list_t *l = udata;

    l->err = err;
    l->n = n;
    l->total = total;
    for (size_t i = 0; i < n && i < 16; i++)
        snprintf(l->ids[i], sizeof(l->ids[i]), "%s", ms[i].id);
    l->done++;
}

static void create(const char *id, const char *name, const char *query, const char *const *tags,
                   size_t ntags, sub_t *s)
{
    eg_mm_new_t m = {.id = id, .name = name, .source_query = query, .tags = tags, .ntags = ntags};

    memset(s, 0, sizeof(*s));
    cr_assert_eq(eg_mm_create(E.ws, E.bank, &m, on_sub, s), 0);
    wait_for(&s->done);
    cr_assert_eq(s->err, 0, "create %s: %d", name, s->err);
    usleep(2000); /* listing order is creation time */
}

static void get(const char *ws, const char *id, mm_t *o)
{
    memset(o, 0, sizeof(*o));
    cr_assert_eq(eg_mm_get(ws, E.bank, id, on_mm, o), 0);
    wait_for(&o->done);
}

static void save(const char *id, const char *content, const char *rr, mm_t *o)
{
    memset(o, 0, sizeof(*o));
    cr_assert_eq(eg_mm_save_refresh(E.ws, E.bank, id, content, rr, on_mm, o), 0);
    wait_for(&o->done);
}

typedef struct {
    int done, err;
    size_t n;
    char content[64][32];
    int64_t refreshed[64], changed[64];
} hist_t;

static void on_hist(void *udata, int err, const eg_mm_version_t *vs, size_t n)
{
    hist_t *h = udata;

    h->err = err;
    h->n = n;
    for (size_t i = 0; i < n && i < 64; i++) {
        snprintf(h->content[i], sizeof(h->content[i]), "%s", vs[i].previous_content);
        h->refreshed[i] = vs[i].previous_refreshed_at;
        h->changed[i] = vs[i].changed_at;
    }
    h->done++;
}

static void history(const char *id, hist_t *h)
{
    memset(h, 0, sizeof(*h));
    cr_assert_eq(eg_mm_history(E.ws, E.bank, id, on_hist, h), 0);
    wait_for(&h->done);
}

typedef struct {
    int done, err;
    long long n;
    char s[256];
} reply_t;

static void on_reply(void *udata, int err, redisReply *r)
{
    reply_t *c = udata;

    c->err = err;
    c->n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(c->s, sizeof(c->s), "%s", r->str);
    c->done++;
}

static long long exists(const char *key)
{
    reply_t c = {0};

    cr_assert_eq(eg_store_command(on_reply, &c, "EXISTS %s", key), 0);
    wait_for(&c.done);
    return c.n;
}

typedef struct {
    int done, err;
    char kind[64], meta[512];
    eg_op_status_t status;
} op_t;

static void on_op(void *udata, int err, const eg_op_t *op)
{
    op_t *o = udata;

    o->err = err;
    if (op) {
        snprintf(o->kind, sizeof(o->kind), "%s", op->kind);
        snprintf(o->meta, sizeof(o->meta), "%s", op->meta);
        o->status = op->status;
    }
    o->done++;
}

static void get_op(const char *op_id, op_t *o)
{
    memset(o, 0, sizeof(*o));
    cr_assert_eq(eg_op_get("b", E.scope, op_id, on_op, o), 0);
    wait_for(&o->done);
}

static bool job_pushed(const char *job_id)
{
    eg_arena_t a;
    bool yes;

    eg_arena_init(&a);
    yes = exists(eg_key(&a, "q", EG_MM_QUEUE, "seen:%s", job_id)) == 1;
    eg_arena_destroy(&a);
    return yes;
}

/* ---- tests ----------------------------------------------------------------------------------- */

Test(mental_models, create_get_and_refresh_operation)
{
    const char *tags[] = {"team"};
    char expect[512];
    sub_t s, dup;
    op_t op;
    mm_t m;

    create("team-communication", "Team communication", "How does the team talk?", tags, 1, &s);
    cr_assert_str_eq(s.id, "team-communication");
    cr_assert(eg_uuid_valid(s.op_id));
    get_op(s.op_id, &op);
    cr_assert_eq(op.err, 0);
    cr_assert_str_eq(op.kind, "refresh_mental_model");
    cr_assert_eq(op.status, EG_OP_PENDING);
    snprintf(expect, sizeof(expect),
             "{\"mental_model_id\":\"team-communication\",\"payload\":{\"ws\":\"%s\",\"bank\":"
             "\"%s\",\"id\":\"team-communication\",\"op\":\"%s\"}}",
             E.ws, E.bank, s.op_id);
    cr_assert_str_eq(op.meta, expect);
    cr_assert(job_pushed(s.op_id));

    get(E.ws, "team-communication", &m);
    cr_assert_eq(m.err, 0);
    cr_assert_str_eq(m.name, "Team communication");
    cr_assert_str_eq(m.query, "How does the team talk?");
    cr_assert_str_eq(m.content, "");
    cr_assert_str_eq(m.tags, "team");
    cr_assert_str_eq(m.trigger, "{}");
    cr_assert_str_eq(m.rr, "");
    cr_assert_eq(m.max_tokens, EG_MM_MAX_TOKENS_DEF);
    cr_assert_eq(m.last_refreshed_at, EG_MEM_TIME_NONE);
    cr_assert_neq(m.created_at, EG_MEM_TIME_NONE);
    cr_assert_not(m.stale); /* the bank has no writes */

    /* The id is taken. */
    eg_mm_new_t again = {.id = "team-communication", .name = "x", .source_query = "y"};
    memset(&dup, 0, sizeof(dup));
    cr_assert_eq(eg_mm_create(E.ws, E.bank, &again, on_sub, &dup), 0);
    wait_for(&dup.done);
    cr_assert_eq(dup.err, EG_ECONFLICT);

    /* Without an id: a UUID. */
    create(NULL, "anon", "q", NULL, 0, &s);
    cr_assert(eg_uuid_valid(s.id));
}

Test(mental_models, save_refresh_history_and_clear)
{
    hist_t h;
    sub_t s;
    mm_t m;

    create("m1", "M1", "what?", NULL, 0, &s);
    save("m1", "first", "{\"text\":\"first\",\"based_on\":{}}", &m);
    cr_assert_eq(m.err, 0);
    cr_assert_str_eq(m.content, "first");
    cr_assert_str_eq(m.rr, "{\"text\":\"first\",\"based_on\":{}}");
    cr_assert_neq(m.last_refreshed_at, EG_MEM_TIME_NONE);
    cr_assert_not(m.stale);
    int64_t first_at = m.last_refreshed_at;
    history("m1", &h);
    cr_assert_eq(h.err, 0);
    cr_assert_eq(h.n, 0); /* an empty content is not a version */

    save("m1", "second", NULL, &m);
    cr_assert_str_eq(m.content, "second");
    cr_assert_str_eq(m.rr, "");
    history("m1", &h);
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.content[0], "first");
    cr_assert_eq(h.refreshed[0], first_at);
    cr_assert_eq(h.changed[0], m.last_refreshed_at);

    save("m1", "third \"quoted\" / é", NULL, &m);
    history("m1", &h);
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.content[0], "second");
    cr_assert_str_eq(h.content[1], "first");

    memset(&m, 0, sizeof(m));
    cr_assert_eq(eg_mm_clear(E.ws, E.bank, "m1", on_mm, &m), 0);
    wait_for(&m.done);
    cr_assert_eq(m.err, 0);
    cr_assert_str_eq(m.content, "");
    history("m1", &h);
    cr_assert_eq(h.n, 3);
    cr_assert_str_eq(h.content[0], "third \"quoted\" / é");

    /* Capped. */
    for (int i = 0; i < EG_MM_HISTORY_MAX + 5; i++) {
        char c[32];

        snprintf(c, sizeof(c), "v%d", i);
        save("m1", c, NULL, &m);
        cr_assert_eq(m.err, 0);
    }
    history("m1", &h);
    cr_assert_eq(h.n, EG_MM_HISTORY_MAX);
    char last[32];
    snprintf(last, sizeof(last), "v%d", EG_MM_HISTORY_MAX + 3);
    cr_assert_str_eq(h.content[0], last);

    /* Unknown model. */
    save("nope", "x", NULL, &m);
    cr_assert_eq(m.err, EG_ENOTFOUND);
    history("nope", &h);
    cr_assert_eq(h.err, EG_ENOTFOUND);
    memset(&m, 0, sizeof(m));
    cr_assert_eq(eg_mm_save_refresh(E.ws, E.bank, "m1", "x", "[1]", on_mm, &m), EG_EINVAL);
}

Test(mental_models, staleness_follows_the_bank_last_write)
{
    eg_arena_t a;
    reply_t r = {0};
    sub_t s;
    mm_t m;

    eg_arena_init(&a);
    create("st", "S", "q", NULL, 0, &s);
    const char *bank = eg_key(&a, "b", E.scope, "bank");
    cr_assert_eq(
        eg_store_command(on_reply, &r, "HSET %s last_write_at %lld", bank, (long long)eg_now_ms()),
        0);
    wait_for(&r.done);
    get(E.ws, "st", &m);
    cr_assert(m.stale);
    save("st", "fresh", NULL, &m);
    cr_assert_not(m.stale);
    cr_assert_neq(m.last_memory_seen_at, EG_MEM_TIME_NONE);
    usleep(2000);
    memset(&r, 0, sizeof(r));
    cr_assert_eq(
        eg_store_command(on_reply, &r, "HSET %s last_write_at %lld", bank, (long long)eg_now_ms()),
        0);
    wait_for(&r.done);
    get(E.ws, "st", &m);
    cr_assert(m.stale);
    eg_arena_destroy(&a);
}

Test(mental_models, patch_list_delete)
{
    const char *ta[] = {"a"}, *tb[] = {"b"}, *tab[] = {"a", "b"};
    eg_mm_query_t q = {.limit = 100};
    eg_mm_patch_t p = {0};
    list_t l;
    sub_t s;
    mm_t m;

    create("one", "One", "q1", ta, 1, &s);
    create("two", "Two", "q2", tb, 1, &s);
    create("three", "Three", "q3", NULL, 0, &s);

    memset(&l, 0, sizeof(l));
    cr_assert_eq(eg_mm_list(E.ws, E.bank, &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.total, 3);
    cr_assert_str_eq(l.ids[0], "three");
    cr_assert_str_eq(l.ids[2], "one");

    q.tags = ta;
    q.ntags = 1;
    q.tags_match = EG_TAGS_ANY; /* untagged included */
    memset(&l, 0, sizeof(l));
    cr_assert_eq(eg_mm_list(E.ws, E.bank, &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.total, 2);
    cr_assert_str_eq(l.ids[0], "three");
    cr_assert_str_eq(l.ids[1], "one");
    q.tags_match = EG_TAGS_EXACT;
    memset(&l, 0, sizeof(l));
    cr_assert_eq(eg_mm_list(E.ws, E.bank, &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.total, 1);
    cr_assert_str_eq(l.ids[0], "one");
    q.tags = NULL;
    q.ntags = 0;
    q.limit = 1;
    q.offset = 1;
    memset(&l, 0, sizeof(l));
    cr_assert_eq(eg_mm_list(E.ws, E.bank, &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.total, 3);
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.ids[0], "two");

    cJSON *trig = cJSON_Parse("{\"mode\":\"delta\",\"refresh_after_consolidation\":true}");
    p.name = "Uno";
    p.max_tokens = 4096;
    p.set_tags = true;
    p.tags = tab;
    p.ntags = 2;
    p.trigger = trig;
    memset(&m, 0, sizeof(m));
    cr_assert_eq(eg_mm_patch(E.ws, E.bank, "one", &p, on_mm, &m), 0);
    wait_for(&m.done);
    cJSON_Delete(trig);
    cr_assert_eq(m.err, 0);
    cr_assert_str_eq(m.name, "Uno");
    cr_assert_str_eq(m.query, "q1");
    cr_assert_eq(m.max_tokens, 4096);
    cr_assert_str_eq(m.tags, "a,b");
    cr_assert_str_eq(m.trigger, "{\"mode\":\"delta\",\"refresh_after_consolidation\":true}");
    p.max_tokens = 100;
    cr_assert_eq(eg_mm_patch(E.ws, E.bank, "one", &p, on_mm, &m), EG_EINVAL);

    save("one", "content", NULL, &m);
    save("one", "content 2", NULL, &m);
    memset(&m, 0, sizeof(m));
    cr_assert_eq(eg_mm_delete(E.ws, E.bank, "one", on_mm, &m), 0);
    wait_for(&m.done);
    cr_assert_eq(m.err, 0);
    cr_assert_str_eq(m.content, "content 2");
    get(E.ws, "one", &m);
    cr_assert_eq(m.err, EG_ENOTFOUND);
    eg_arena_t a;
    eg_arena_init(&a);
    cr_assert_eq(exists(eg_key(&a, "b", E.scope, "mmh:one")), 0);
    eg_arena_destroy(&a);
    memset(&m, 0, sizeof(m));
    cr_assert_eq(eg_mm_delete(E.ws, E.bank, "one", on_mm, &m), 0);
    wait_for(&m.done);
    cr_assert_eq(m.err, EG_ENOTFOUND);
}

static void on_moved(void *udata, int err, const eg_op_t *op)
{
    on_op(udata, err, op);
}

Test(mental_models, refresh_enqueue_and_retry)
{
    char job[80];
    sub_t s, r;
    op_t op;

    create("rf", "R", "q", NULL, 0, &s);
    memset(&r, 0, sizeof(r));
    cr_assert_eq(eg_mm_refresh_enqueue(E.ws, E.bank, "rf", on_sub, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
    cr_assert_str_eq(r.id, "rf");
    cr_assert_str_neq(r.op_id, s.op_id);
    get_op(r.op_id, &op);
    cr_assert_str_eq(op.kind, EG_MM_OP_KIND);
    cr_assert(job_pushed(r.op_id));

    memset(&r, 0, sizeof(r));
    cr_assert_eq(eg_mm_refresh_enqueue(E.ws, E.bank, "missing", on_sub, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, EG_ENOTFOUND);

    /* A failed refresh retried goes back on the queue under a fresh job id. */
    memset(&op, 0, sizeof(op));
    cr_assert_eq(eg_op_update("b", E.scope, s.op_id, EG_OP_FAILED, -1, "llm down", on_op, &op), 0);
    wait_for(&op.done);
    cr_assert_eq(op.err, 0);
    memset(&op, 0, sizeof(op));
    cr_assert_eq(eg_bankops_retry(E.ws, E.bank, s.op_id, on_moved, &op), 0);
    wait_for(&op.done);
    cr_assert_eq(op.err, 0);
    cr_assert_eq(op.status, EG_OP_PENDING);
    snprintf(job, sizeof(job), "%s:r1", s.op_id);
    cr_assert(job_pushed(job));
}

typedef struct {
    int done, err;
    size_t n;
    char ids[8][32];
    double scores[8];
} hits_t;

static void on_hits(void *udata, int err, const eg_mm_hit_t *hits, size_t n)
{
    hits_t *h = udata;

    h->err = err;
    h->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(h->ids[i], sizeof(h->ids[i]), "%s", hits[i].mm->id);
        h->scores[i] = hits[i].score;
    }
    h->done++;
}

Test(mental_models, search)
{
    const char *ta[] = {"team"}, *tother[] = {"other"}, *excl[] = {"pets"};
    eg_mm_search_t q = {.query = "what food does the team like for lunch"};
    hits_t h;
    sub_t s;
    mm_t m;

    create("pets", "Pets", "Which pets do people keep?", NULL, 0, &s);
    create("food", "Food preferences", "What food does the team like?", ta, 1, &s);
    create("deploy", "Deploys", "How do we deploy the service?", tother, 1, &s);
    save("pets", "Alice has a cat named Tom. Bob keeps two dogs.", NULL, &m);
    save("food", "The team likes sushi for lunch on Fridays.", NULL, &m);

    memset(&h, 0, sizeof(h));
    cr_assert_eq(eg_mm_search(E.ws, E.bank, &q, on_hits, &h), 0);
    wait_for(&h.done);
    cr_assert_eq(h.err, 0);
    cr_assert_geq(h.n, 1);
    cr_assert_str_eq(h.ids[0], "food");
    cr_assert(h.scores[0] > 0.3 && h.scores[0] <= 1.0, "score %f", h.scores[0]);
    for (size_t i = 1; i < h.n; i++)
        cr_assert(h.scores[i] <= h.scores[i - 1]);

    q.max_results = 1;
    memset(&h, 0, sizeof(h));
    cr_assert_eq(eg_mm_search(E.ws, E.bank, &q, on_hits, &h), 0);
    wait_for(&h.done);
    cr_assert_eq(h.n, 1);

    /* Tag filter (strict: untagged left out) and exclusions. */
    q.query = "pets cat dogs";
    q.max_results = 5;
    q.tags = tother;
    q.ntags = 1;
    q.tags_match = EG_TAGS_ANY_STRICT;
    memset(&h, 0, sizeof(h));
    cr_assert_eq(eg_mm_search(E.ws, E.bank, &q, on_hits, &h), 0);
    wait_for(&h.done);
    for (size_t i = 0; i < h.n; i++)
        cr_assert_str_eq(h.ids[i], "deploy");
    q.ntags = 0;
    q.exclude_ids = excl;
    q.nexclude = 1;
    memset(&h, 0, sizeof(h));
    cr_assert_eq(eg_mm_search(E.ws, E.bank, &q, on_hits, &h), 0);
    wait_for(&h.done);
    for (size_t i = 0; i < h.n; i++)
        cr_assert_str_neq(h.ids[i], "pets");

    /* Another workspace: nothing. */
    char other[80];
    snprintf(other, sizeof(other), "%s-x", E.ws);
    q.nexclude = 0;
    memset(&h, 0, sizeof(h));
    cr_assert_eq(eg_mm_search(other, E.bank, &q, on_hits, &h), 0);
    wait_for(&h.done);
    cr_assert_eq(h.err, 0);
    cr_assert_eq(h.n, 0);
}

typedef struct {
    int done, err;
    size_t n, total;
    char tags[8][16];
    size_t counts[8];
} tags_t;

static void on_tags(void *udata, int err, const eg_mm_tag_count_t *t, size_t n, size_t total)
{
    tags_t *r = udata;

    r->err = err;
    r->n = n;
    r->total = total;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(r->tags[i], sizeof(r->tags[i]), "%s", t[i].tag);
        r->counts[i] = t[i].count;
    }
    r->done++;
}

Test(mental_models, tag_counts)
{
    const char *t1[] = {"user:1", "team"}, *t2[] = {"team"};
    tags_t r;
    sub_t s;

    create("a", "A", "q", t1, 2, &s);
    create("b", "B", "q", t2, 1, &s);
    memset(&r, 0, sizeof(r));
    cr_assert_eq(eg_mm_tags(E.ws, E.bank, NULL, 100, 0, on_tags, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.total, 2);
    cr_assert_str_eq(r.tags[0], "team");
    cr_assert_eq(r.counts[0], 2);
    cr_assert_str_eq(r.tags[1], "user:1");
    memset(&r, 0, sizeof(r));
    cr_assert_eq(eg_mm_tags(E.ws, E.bank, "USER*", 100, 0, on_tags, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.total, 1);
    cr_assert_str_eq(r.tags[0], "user:1");
}

static void on_count(void *udata, int err, int64_t n)
{
    reply_t *c = udata;

    c->err = err;
    c->n = n;
    c->done++;
}

static void on_deleted(void *udata, int err, bool existed, int64_t deleted)
{
    reply_t *c = udata;

    (void)deleted;
    c->err = err;
    c->n = existed;
    c->done++;
}

Test(mental_models, workspaces_clear_and_bank_delete)
{
    char other[80];
    const char *index, *prefixes[2];
    eg_arena_t a;
    reply_t c = {0};
    list_t l;
    sub_t s;
    mm_t m;

    eg_arena_init(&a);
    create("kept", "K", "q", NULL, 0, &s);
    save("kept", "v1", NULL, &m);
    save("kept", "v2", NULL, &m);

    snprintf(other, sizeof(other), "%s-x", E.ws);
    get(other, "kept", &m);
    cr_assert_eq(m.err, EG_ENOTFOUND);
    eg_mm_query_t q = {.limit = 10};
    memset(&l, 0, sizeof(l));
    cr_assert_eq(eg_mm_list(other, E.bank, &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.total, 0);

    cr_assert_eq(eg_mem_clear(E.ws, E.bank, (1u << EG_FACT_NTYPES) - 1, on_count, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.err, 0);
    get(E.ws, "kept", &m);
    cr_assert_eq(m.err, 0);
    cr_assert_str_eq(m.content, "v2");

    eg_mm_bank_keys(&a, E.ws, E.bank, &index, prefixes);
    const char *rec = eg_arena_printf(&a, "%skept", prefixes[0]);
    const char *hist = eg_arena_printf(&a, "%skept", prefixes[1]);
    cr_assert_eq(exists(rec), 1);
    cr_assert_eq(exists(hist), 1);
    memset(&c, 0, sizeof(c));
    cr_assert_eq(eg_bank_delete(E.ws, E.bank, on_deleted, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.err, 0);
    cr_assert_eq(exists(index), 0);
    cr_assert_eq(exists(rec), 0);
    cr_assert_eq(exists(hist), 0);
    eg_arena_destroy(&a);
}

Test(mental_models, bad_arguments)
{
    eg_mm_new_t m = {.name = "n", .source_query = "q", .max_tokens = 100};
    sub_t s;

    cr_assert_eq(eg_mm_create(E.ws, E.bank, &m, on_sub, &s), EG_EINVAL);
    m.max_tokens = 9000;
    cr_assert_eq(eg_mm_create(E.ws, E.bank, &m, on_sub, &s), EG_EINVAL);
    m.max_tokens = 0;
    m.id = "has space";
    cr_assert_eq(eg_mm_create(E.ws, E.bank, &m, on_sub, &s), EG_EINVAL);
    m.id = NULL;
    m.source_query = NULL;
    cr_assert_eq(eg_mm_create(E.ws, E.bank, &m, on_sub, &s), EG_EINVAL);
    cr_assert(eg_mm_id_valid("team-communication", 18));
    cr_assert_not(eg_mm_id_valid("", 0));
    cr_assert(eg_mm_tags_pass(NULL, 0, NULL, 0, EG_TAGS_EXACT));
    cr_assert_not(eg_mm_tags_pass(NULL, 0, (const char *const[]){"a"}, 1, EG_TAGS_ANY_STRICT));
    cr_assert(eg_mm_tags_pass(NULL, 0, (const char *const[]){"a"}, 1, EG_TAGS_ALL));
}
