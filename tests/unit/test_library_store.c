/* The library against a real Redis and the real memory engine: memories synchronised by the
 * "library" worker, file content through eg_lib_memory_set_file, and the guard rails of
 * eg_lib_search / eg_lib_chunks / eg_lib_memories, tried adversarially (other types, ids of
 * another type, metadata mismatches, a metadata change after indexing, a deleted memory). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engram/error.h"
#include "engram/library.h"
#include "engram/log.h"
#include "engram/mindex.h"
#include "engram/retain.h"
#include "engram/store.h"
#include "engram/util.h"

#include "redis_fixture.h"

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    char ws[64];
    uint64_t deadline;
} T;

static void tick(uv_timer_t *t)
{
    (void)t;
}

static void wait_for(const int *done)
{
    T.deadline = uv_now(&T.loop) + 30000;
    while (!*done) {
        cr_assert(uv_now(&T.loop) < T.deadline, "timed out waiting for a callback");
        uv_run(&T.loop, UV_RUN_ONCE);
    }
}

static void set_done(void *udata)
{
    *(int *)udata = 1;
}

/* A private Redis per test: every process consumes the one "library" queue. */
static void setup(void)
{
    eg_store_opts_t opts = {NULL, 2, 2000, 1000};
    char r[9];

    t_redis_setup();
    opts.url = t_private_url();
    memset(&T, 0, sizeof(T));
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
    cr_assert_eq(eg_library_start(&T.loop), 0);
    eg_random_base62(r, 8);
    snprintf(T.ws, sizeof(T.ws), "ws-%d-%s", (int)getpid(), r);
}

static void teardown(void)
{
    int done = 0;

    eg_library_stop(set_done, &done);
    wait_for(&done);
    done = 0;
    eg_retain_stop(set_done, &done);
    wait_for(&done);
    eg_mindex_shutdown();
    done = 0;
    eg_store_shutdown(set_done, &done);
    uv_close((uv_handle_t *)&T.tick, NULL);
    wait_for(&done);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    t_loop_close_checked(&T.loop);
    t_redis_teardown();
}

TestSuite(library_store, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ------------------------------------------------------------------------------- */

typedef struct {
    int done, err;
    char why[256];
    cJSON *json;
} res_t;

static void on_json(void *udata, int err, const char *why, const cJSON *json)
{
    res_t *r = udata;

    r->err = err;
    snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
    r->json = json ? cJSON_Duplicate(json, true) : NULL;
    r->done = 1;
}

static void on_get(void *udata, int err, const cJSON *json)
{
    on_json(udata, err, NULL, json);
}

static cJSON *parse(const char *json)
{
    cJSON *j = cJSON_Parse(json);

    cr_assert_not_null(j, "bad test JSON %s", json);
    return j;
}

/* Call fn-style creators with a JSON body; returns the result JSON (caller deletes). */
static cJSON *create_type(const char *name)
{
    char body[256];
    const char *why = NULL;
    res_t r = {0};

    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"description\":\"d\"}", name);
    cJSON *b = parse(body);
    cr_assert_eq(eg_lib_type_create(T.ws, b, &why, on_json, &r), 0, "%s", why ? why : "");
    wait_for(&r.done);
    cJSON_Delete(b);
    cr_assert_eq(r.err, 0);
    return r.json;
}

static const char *sid(const cJSON *j)
{
    return cJSON_GetObjectItem(j, "id")->valuestring;
}

static const char *sstr(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(j, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *create_memory(const char *type_id, const char *source, const char *title,
                            const char *text, const char *metadata)
{
    cJSON *b = cJSON_CreateObject();
    const char *why = NULL;
    res_t r = {0};

    cJSON_AddStringToObject(b, "memoryTypeId", type_id);
    cJSON_AddStringToObject(b, "sourceType", source);
    cJSON_AddStringToObject(b, "title", title);
    if (text)
        cJSON_AddStringToObject(b, "text", text);
    if (metadata)
        cJSON_AddItemToObject(b, "metadata", parse(metadata));
    cr_assert_eq(eg_lib_memory_create(T.ws, b, &why, on_json, &r), 0, "%s", why ? why : "");
    wait_for(&r.done);
    cJSON_Delete(b);
    cr_assert_eq(r.err, 0, "%s", r.why);
    return r.json;
}

static cJSON *get_memory(const char *id)
{
    res_t r = {0};

    cr_assert_eq(eg_lib_memory_get(T.ws, id, on_get, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
    return r.json;
}

/* Run the loop until the memory has left SYNCHRONIZING; returns it. */
static cJSON *settled(const char *id)
{
    uint64_t end = uv_now(&T.loop) + 30000;

    for (;;) {
        cJSON *m = get_memory(id);
        const char *st = sstr(m, "contentStatus");
        if (strcmp(st, "SYNCHRONIZED") == 0 || strcmp(st, "SYNCHRONIZATION_ERROR") == 0)
            return m;
        cJSON_Delete(m);
        cr_assert(uv_now(&T.loop) < end, "memory %s did not settle", id);
        for (int i = 0; i < 10; i++)
            uv_run(&T.loop, UV_RUN_ONCE);
    }
}

typedef struct {
    int done, err;
    size_t n;
    char ids[32][48];
    int chunk[32];
    int pages0[32];
    size_t npages[32];
    char content[32][256];
    char type_name[32][64];
    float score[32];
} hits_t;

static void on_chunks(void *udata, int err, const eg_lib_chunk_t *c, size_t n)
{
    hits_t *h = udata;

    h->err = err;
    h->n = n;
    for (size_t i = 0; i < n && i < 32; i++) {
        snprintf(h->ids[i], sizeof(h->ids[i]), "%s", c[i].memory_id);
        h->chunk[i] = c[i].chunk_number;
        h->npages[i] = c[i].npages;
        h->pages0[i] = c[i].npages ? c[i].pages[0] : 0;
        snprintf(h->content[i], sizeof(h->content[i]), "%s", c[i].content);
        snprintf(h->type_name[i], sizeof(h->type_name[i]), "%s",
                 c[i].type_name ? c[i].type_name : "");
        h->score[i] = c[i].score;
        cr_assert_not_null(c[i].memory_title);
        cr_assert_not_null(c[i].type_id);
    }
    h->done = 1;
}

static hits_t search(const char *guard_rails, const char *query)
{
    eg_arena_t a;
    eg_lib_scope_t scope;
    const char *why = NULL;
    hits_t h = {0};
    cJSON *g = guard_rails ? parse(guard_rails) : NULL;

    eg_arena_init(&a);
    cr_assert_eq(eg_lib_scope_parse(&a, g, &scope, &why), 0, "%s", why ? why : "");
    cJSON_Delete(g);
    cr_assert_eq(eg_lib_search(T.ws, &scope, query, 20, on_chunks, &h), 0);
    eg_arena_destroy(&a); /* the search copied what it keeps */
    wait_for(&h.done);
    cr_assert_eq(h.err, 0);
    return h;
}

static bool has(const hits_t *h, const char *id)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->ids[i], id) == 0)
            return true;
    return false;
}

static char *rails(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *rails(const char *fmt, ...)
{
    static char buf[8][1024];
    static int k;
    va_list ap;
    char *b = buf[k++ % 8];

    va_start(ap, fmt);
    vsnprintf(b, 1024, fmt, ap);
    va_end(ap);
    return b;
}

typedef struct {
    int done, err;
    size_t n;
    char id[48];
    bool salary, dept;
} mr_t;

static void on_refs(void *udata, int err, const eg_lib_memref_t *m, size_t n)
{
    mr_t *mr = udata;

    mr->err = err;
    mr->n = n;
    if (n > 0) {
        snprintf(mr->id, sizeof(mr->id), "%s", m[0].id);
        mr->salary = cJSON_GetObjectItem(m[0].metadata, "salary") != NULL;
        mr->dept = cJSON_GetObjectItem(m[0].metadata, "dept") != NULL;
        cr_assert_str_eq(m[0].type_name, "policies");
        cr_assert_str_eq(m[0].content_status, "SYNCHRONIZED");
    }
    mr->done = 1;
}

/* ---- tests ----------------------------------------------------------------------------------- */

Test(library_store, guard_rails_never_leak)
{
    cJSON *t1 = create_type("policies"), *t2 = create_type("secrets");
    const char *T1 = sid(t1), *T2 = sid(t2);
    cJSON *m1 = create_memory(T1, "TEXT", "HR vacation",
                              "The vacation policy grants twenty days of paid leave.",
                              "{\"dept\":\"hr\",\"salary\":100}");
    cJSON *m2 =
        create_memory(T1, "TEXT", "Eng vacation",
                      "The vacation policy for engineers adds on-call days.", "{\"dept\":\"eng\"}");
    cJSON *m3 = create_memory(T2, "TEXT", "Secret vacation",
                              "Secret vacation policy: the board takes the summer off.",
                              "{\"dept\":\"hr\"}");
    const char *M1 = sid(m1), *M2 = sid(m2), *M3 = sid(m3);
    cJSON *s;

    const char *all[3] = {M1, M2, M3};
    for (int i = 0; i < 3; i++) {
        s = settled(all[i]);
        cr_assert_str_eq(sstr(s, "contentStatus"), "SYNCHRONIZED");
        cJSON_Delete(s);
    }

    hits_t h = search(NULL, "vacation policy");
    cr_assert(has(&h, M1) && has(&h, M2) && has(&h, M3), "unrestricted sees all (%zu hits)", h.n);
    for (size_t i = 0; i < h.n; i++) {
        cr_assert_eq(h.chunk[i], 1);
        cr_assert_eq(h.npages[i], 1);
        cr_assert_eq(h.pages0[i], 1);
        cr_assert(h.score[i] >= 0 && h.score[i] <= 1);
    }

    h = search(rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\"}]}", T1), "vacation policy");
    cr_assert(has(&h, M1) && has(&h, M2));
    cr_assert_not(has(&h, M3), "another type leaked");
    for (size_t i = 0; i < h.n; i++)
        cr_assert_str_eq(h.type_name[i], "policies");

    /* Ids of another type do not open it. */
    h = search(
        rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\",\"memoryIds\":[\"%s\"]}]}", T1, M3),
        "secret vacation board summer");
    cr_assert_eq(h.n, 0, "an id of another type leaked");
    h = search(
        rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\",\"memoryIds\":[\"%s\"]}]}", T2, M1),
        "vacation policy twenty days");
    cr_assert_eq(h.n, 0);
    /* Ids within the type limit it. */
    h = search(
        rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\",\"memoryIds\":[\"%s\"]}]}", T1, M2),
        "vacation policy");
    cr_assert(has(&h, M2));
    cr_assert_not(has(&h, M1));

    /* Metadata matches. */
    h = search(
        rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\",\"match\":{\"dept\":\"hr\"}}]}", T1),
        "vacation policy");
    cr_assert(has(&h, M1));
    cr_assert_not(has(&h, M2), "a metadata mismatch leaked");
    cr_assert_not(has(&h, M3));
    h = search(
        rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\",\"match\":{\"dept\":\"finance\"}}]}", T1),
        "vacation policy");
    cr_assert_eq(h.n, 0);
    h = search(
        rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\",\"match\":{\"salary\":\"100\"}}]}", T1),
        "vacation policy");
    cr_assert_eq(h.n, 0, "100 is not \"100\"");
    h = search(rails("{\"memoryTypes\":[{\"memoryTypeId\":\"mty_00000000000000000000000000000009\""
                     "}]}"),
               "vacation policy");
    cr_assert_eq(h.n, 0, "an unknown type sees nothing");

    /* Chunk ranges obey the same scope. */
    eg_arena_t a;
    eg_lib_scope_t sc;
    const char *why;
    hits_t c = {0};
    cJSON *g = parse(rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\"}]}", T1));
    eg_arena_init(&a);
    cr_assert_eq(eg_lib_scope_parse(&a, g, &sc, &why), 0);
    cr_assert_eq(eg_lib_chunks(T.ws, &sc, M3, 1, 5, on_chunks, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.err, EG_ENOTFOUND, "a chunk of another type leaked");
    memset(&c, 0, sizeof(c));
    cr_assert_eq(eg_lib_chunks(T.ws, &sc, M1, 1, 5, on_chunks, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.err, 0);
    cr_assert_eq(c.n, 1, "clipped to the memory's one chunk");
    cr_assert_str_eq(c.content[0], "The vacation policy grants twenty days of paid leave.");
    cr_assert_eq(c.chunk[0], 1);
    cr_assert_eq(c.pages0[0], 1);
    memset(&c, 0, sizeof(c));
    cr_assert_eq(eg_lib_chunks(T.ws, &sc, M1, 3, 2, on_chunks, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.n, 0);
    eg_arena_destroy(&a);
    cJSON_Delete(g);

    /* The memory listing hides hidden keys and applies the match. */
    g = parse(rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\",\"match\":{\"dept\":\"hr\"},"
                    "\"metadata\":[{\"key\":\"salary\",\"visible\":false}]}]}",
                    T1));
    eg_arena_init(&a);
    cr_assert_eq(eg_lib_scope_parse(&a, g, &sc, &why), 0);
    cJSON_Delete(g);
    mr_t mr = {0};
    cr_assert_eq(eg_lib_memories(T.ws, &sc, 10, on_refs, &mr), 0);
    eg_arena_destroy(&a);
    wait_for(&mr.done);
    cr_assert_eq(mr.err, 0);
    cr_assert_eq(mr.n, 1);
    cr_assert_str_eq(mr.id, M1);
    cr_assert(mr.dept);
    cr_assert_not(mr.salary, "a hidden key leaked");

    /* A metadata change after indexing: the scope follows the record, not the index. */
    res_t r = {0};
    cJSON *patch = parse("{\"metadata\":{\"dept\":\"eng\"}}");
    cr_assert_eq(eg_lib_memory_patch(T.ws, M1, patch, &why, on_json, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
    cJSON_Delete(patch);
    cJSON_Delete(r.json);
    h = search(
        rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\",\"match\":{\"dept\":\"hr\"}}]}", T1),
        "vacation policy twenty days");
    cr_assert_eq(h.n, 0, "a memory that no longer matches leaked");

    /* A deleted memory is never returned. */
    memset(&r, 0, sizeof(r));
    cr_assert_eq(eg_lib_memory_delete(T.ws, M2, on_json, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
    cJSON_Delete(r.json);
    h = search(NULL, "vacation policy engineers on-call");
    cr_assert_not(has(&h, M2));

    cJSON_Delete(t1);
    cJSON_Delete(t2);
    cJSON_Delete(m1);
    cJSON_Delete(m2);
    cJSON_Delete(m3);
}

static void on_file(void *udata, int err)
{
    res_t *r = udata;

    r->err = err;
    r->done = 1;
}

Test(library_store, file_content)
{
    cJSON *t = create_type("files");
    cJSON *f = create_memory(sid(t), "FILE", "Notes", NULL, NULL);
    cJSON *txt = create_memory(sid(t), "TEXT", "Text", "Some text.", NULL);
    const char *data = "# Title\n\nFirst paragraph about otters.\n\nSecond paragraph.\n";
    res_t r = {0};

    cr_assert_str_eq(sstr(f, "contentStatus"), "EMPTY");
    cr_assert_eq(eg_lib_memory_set_file(T.ws, sid(f), "notes.md", "text/markdown", data,
                                        strlen(data), on_file, &r),
                 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
    cJSON *s = settled(sid(f));
    cr_assert_str_eq(sstr(s, "contentStatus"), "SYNCHRONIZED", "%s", cJSON_PrintUnformatted(s));
    cr_assert(strstr(sstr(s, "content"), "otters") != NULL);
    cr_assert_eq(cJSON_GetObjectItem(s, "contentParts")->valueint, 1);
    cJSON_Delete(s);

    /* Unsupported content: SYNCHRONIZATION_ERROR with the converter's reason. */
    memset(&r, 0, sizeof(r));
    cr_assert_eq(
        eg_lib_memory_set_file(T.ws, sid(f), "x.png", "image/png", "\x89PNG", 4, on_file, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
    s = settled(sid(f));
    cr_assert_str_eq(sstr(s, "contentStatus"), "SYNCHRONIZATION_ERROR");
    cr_assert(strstr(sstr(s, "contentStatusReason"), "image/png") != NULL, "%s",
              sstr(s, "contentStatusReason"));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "content")));
    cJSON_Delete(s);

    /* Not a FILE memory; unknown memory. */
    memset(&r, 0, sizeof(r));
    cr_assert_eq(eg_lib_memory_set_file(T.ws, sid(txt), "a.txt", "text/plain", "a", 1, on_file, &r),
                 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, EG_EINVAL);
    memset(&r, 0, sizeof(r));
    cr_assert_eq(eg_lib_memory_set_file(T.ws, "mem_00000000000000000000000000000000", "a.txt",
                                        "text/plain", "a", 1, on_file, &r),
                 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, EG_ENOTFOUND);
    cr_assert_eq(eg_lib_memory_set_file(T.ws, "junk", "a.txt", "text/plain", "a", 1, on_file, &r),
                 EG_ENOTFOUND);

    cJSON_Delete(t);
    cJSON_Delete(f);
    cJSON_Delete(txt);
}

typedef struct {
    int done, err;
    size_t n;
    char ids[16][48];
} refs_t;

static void on_ref_ids(void *udata, int err, const eg_lib_memref_t *m, size_t n)
{
    refs_t *r = udata;

    r->err = err;
    r->n = n;
    for (size_t i = 0; i < n && i < 16; i++)
        snprintf(r->ids[i], sizeof(r->ids[i]), "%s", m[i].id);
    r->done = 1;
}

static refs_t memrefs(const char *guard_rails, size_t limit)
{
    eg_arena_t a;
    eg_lib_scope_t scope;
    const char *why = NULL;
    refs_t r = {0};
    cJSON *g = guard_rails ? parse(guard_rails) : NULL;

    eg_arena_init(&a);
    cr_assert_eq(eg_lib_scope_parse(&a, g, &scope, &why), 0, "%s", why ? why : "");
    cJSON_Delete(g);
    cr_assert_eq(eg_lib_memories(T.ws, &scope, limit, on_ref_ids, &r), 0);
    eg_arena_destroy(&a);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
    return r;
}

Test(library_store, memory_listing_by_scope)
{
    cJSON *t1 = create_type("a"), *t2 = create_type("b");
    cJSON *m[5];
    const char *types[5] = {sid(t1), sid(t2), sid(t1), sid(t2), sid(t1)};
    const char *meta[5] = {"{\"k\":1}", "{\"k\":1}", "{\"k\":2}", "{\"k\":2}", "{\"k\":1}"};

    for (int i = 0; i < 5; i++)
        m[i] = create_memory(types[i], "FILE", "f", NULL, meta[i]);

    /* Every memory, newest first, cut to the limit. */
    refs_t r = memrefs(NULL, 3);
    cr_assert_eq(r.n, 3);
    cr_assert_str_eq(r.ids[0], sid(m[4]));
    cr_assert_str_eq(r.ids[1], sid(m[3]));
    cr_assert_str_eq(r.ids[2], sid(m[2]));
    /* One type. */
    r = memrefs(rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\"}]}", sid(t1)), 10);
    cr_assert_eq(r.n, 3);
    cr_assert_str_eq(r.ids[0], sid(m[4]));
    cr_assert_str_eq(r.ids[2], sid(m[0]));
    /* A match within a type, ids within the other. */
    r = memrefs(rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\",\"match\":{\"k\":1}},"
                      "{\"memoryTypeId\":\"%s\",\"memoryIds\":[\"%s\",\"%s\"]}]}",
                      sid(t1), sid(t2), sid(m[3]), sid(m[0])),
                10);
    cr_assert_eq(r.n, 3, "m4 and m0 (type a, k 1) and m3 (named in type b); m0 is not of b");
    cr_assert_str_eq(r.ids[0], sid(m[4]));
    cr_assert_str_eq(r.ids[1], sid(m[3]));
    cr_assert_str_eq(r.ids[2], sid(m[0]));
    /* Deleting a memory takes it out of its type's list; deleting the emptied type works. */
    for (int i = 0; i < 5; i += 2) {
        res_t d = {0};
        cr_assert_eq(eg_lib_memory_delete(T.ws, sid(m[i]), on_json, &d), 0);
        wait_for(&d.done);
        cr_assert_eq(d.err, 0);
        cJSON_Delete(d.json);
    }
    r = memrefs(rails("{\"memoryTypes\":[{\"memoryTypeId\":\"%s\"}]}", sid(t1)), 10);
    cr_assert_eq(r.n, 0);
    res_t d = {0};
    cr_assert_eq(eg_lib_type_delete(T.ws, sid(t1), on_json, &d), 0);
    wait_for(&d.done);
    cr_assert_eq(d.err, 0);
    cJSON_Delete(d.json);
    memset(&d, 0, sizeof(d));
    cr_assert_eq(eg_lib_type_delete(T.ws, sid(t2), on_json, &d), 0);
    wait_for(&d.done);
    cr_assert_eq(d.err, EG_ECONFLICT);
    cr_assert(strstr(d.why, "2 memories") != NULL, "%s", d.why);

    for (int i = 0; i < 5; i++)
        cJSON_Delete(m[i]);
    cJSON_Delete(t1);
    cJSON_Delete(t2);
}
