/* tools/bench/bank_load: a bank's memory index loaded from a real Redis.
 *
 * Writes N synthetic facts (builtin 384-dim embeddings, three entities each, a document per 500,
 * one semantic link each to the previous fact) into a fresh bank with eg_mem_write, then in a
 * fresh registry times the first eg_mindex_acquire (the full load: HSCAN slices applied on the
 * loop), the longest the loop went without a turn meanwhile, the bytes the loaded index holds, an
 * acquire with nothing new (one SYNC round trip) and one after another write (catch-up). The bank
 * is deleted at the end.
 *
 *   build-release/tools/bench/bench_bank_load [redis url (redis://127.0.0.1:6379/0)] [facts]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "engram/bank.h"
#include "engram/embed.h"
#include "engram/error.h"
#include "engram/mindex.h"
#include "engram/mstore.h"
#include "engram/store.h"
#include "engram/util.h"

#define DOC_UNITS 500
#define DIM       EG_EMBED_DEFAULT_DIM

static uv_loop_t *loop;
static uv_timer_t beat;
static uint64_t last_beat, max_gap, last_cpu, max_cpu_gap;
static char ws[64], bank[64];

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A 1 ms timer: the largest gap between its runs is the longest the loop was blocked, in wall
 * time (which includes waiting for a core on a busy machine) and in the loop thread's CPU time. */
static void on_beat(uv_timer_t *t)
{
    uint64_t now = eg_mono_ns(), cpu = thread_cpu_ns();

    (void)t;
    if (last_beat && now - last_beat > max_gap)
        max_gap = now - last_beat;
    if (last_beat && cpu - last_cpu > max_cpu_gap)
        max_cpu_gap = cpu - last_cpu;
    last_beat = now;
    last_cpu = cpu;
}

static void wait_for(const int *done)
{
    while (!*done)
        uv_run(loop, UV_RUN_ONCE);
}

static void bank_done(void *udata, int err, const eg_bank_t *b, bool created)
{
    (void)b;
    (void)created;
    if (err) {
        fprintf(stderr, "bank: %s\n", eg_strerror(err));
        exit(1);
    }
    *(int *)udata = 1;
}

static void deleted(void *udata, int err, bool existed, int64_t n)
{
    (void)err;
    (void)existed;
    (void)n;
    *(int *)udata = 1;
}

static void written(void *udata, int err, const eg_mem_write_result_t *r)
{
    (void)r;
    if (err) {
        fprintf(stderr, "write: %s\n", eg_strerror(err));
        exit(1);
    }
    *(int *)udata = 1;
}

typedef struct {
    int done;
    eg_mindex_t *ix;
} acq_t;

static void acquired(void *udata, int err, eg_mindex_t *ix)
{
    acq_t *a = udata;

    if (err) {
        fprintf(stderr, "acquire: %s\n", eg_strerror(err));
        exit(1);
    }
    a->ix = ix;
    a->done = 1;
}

static eg_mindex_t *acquire(void)
{
    acq_t a = {0};

    if (eg_mindex_acquire(ws, bank, acquired, &a) != 0) {
        fprintf(stderr, "acquire refused\n");
        exit(1);
    }
    wait_for(&a.done);
    return a.ix;
}

static const char *names[] = {"Alice", "Bob",    "Carol", "Dmitri", "Esther", "Farid", "Greta",
                              "Hiro",  "Ingrid", "Jamal", "Kofi",   "Lena",   "Mateo", "Nadia"};
static const char *places[] = {"Lisbon", "Osaka", "Quito", "Tallinn", "Accra", "Perth", "Bergen"};
static const char *verbs[] = {"visited", "repaired", "painted", "sold", "borrowed", "reviewed"};

/* Write one document of n facts starting at fact k; prev is the id of fact k - 1 (or NULL). */
static void write_doc(eg_embedder_t *emb, size_t k, size_t n, char (*ids)[EG_MEM_UUID_LEN + 1],
                      eg_arena_t *a)
{
    size_t ne = EG_ARRAY_SIZE(names) + EG_ARRAY_SIZE(places);
    eg_mem_new_unit_t *u = eg_arena_calloc(a, n * sizeof(*u));
    eg_mem_entity_ref_t *refs = eg_arena_calloc(a, ne * sizeof(*refs));
    const char **texts = eg_arena_alloc(a, n * sizeof(char *));
    float *vecs = eg_arena_alloc(a, n * DIM * sizeof(float));
    char **eids = eg_arena_alloc(a, ne * sizeof(char *));
    size_t nrefs = 0;
    int done = 0;
    static const char *chunks[] = {"(bench)"};

    for (size_t e = 0; e < ne; e++) {
        eids[e] = eg_arena_alloc(a, EG_MEM_UUID_LEN + 1);
        eg_uuid_v4(eids[e]);
    }
    for (size_t i = 0; i < n; i++) {
        size_t f = k + i, n1 = (f * 7) % 14, n2 = (f * 11 + 3) % 14, pl = (f * 5) % 7;
        const char **ents = eg_arena_alloc(a, 3 * sizeof(char *));
        eg_mem_link_t *l = eg_arena_alloc(a, sizeof(*l));

        texts[i] =
            eg_arena_printf(a, "%s %s the %s of item %zu in %s with %s.", names[n1], verbs[f % 6],
                            f % 2 ? "bicycle" : "kitchen", f, places[pl], names[n2]);
        eg_uuid_v4(ids[f]);
        ents[0] = eids[n1];
        ents[1] = eids[n2 == n1 ? (n2 + 1) % 14 : n2];
        ents[2] = eids[14 + pl];
        *l = (eg_mem_link_t){f ? ids[f - 1] : NULL, EG_LINK_SEMANTIC, 0.75f};
        u[i].unit = (eg_mem_unit_t){
            .id = ids[f],
            .text = texts[i],
            .context = "",
            .type = (eg_fact_type_t)(f % 2),
            .occurred_start = INT64_C(1700000000000000) + (int64_t)f * 600000000,
            .occurred_end = EG_MEM_TIME_NONE,
            .mentioned_at = INT64_C(1700000000000000) + (int64_t)f * 10000,
            .created_at = INT64_C(1700000000000000),
            .updated_at = INT64_C(1700000000000000),
            .entity_ids = ents,
            .nentities = 3,
            .invalidated_at = EG_MEM_TIME_NONE,
            .edited_at = EG_MEM_TIME_NONE,
            .proof_count = 1,
        };
        u[i].vec = vecs + i * DIM;
        u[i].links = l;
        u[i].nlinks = f ? 1 : 0;
    }
    eg_embed_run(emb, texts, n, vecs, NULL, NULL);
    for (size_t e = 0; e < ne; e++)
        refs[nrefs++] = (eg_mem_entity_ref_t){
            .id = eids[e],
            .name = e < 14 ? names[e] : places[e - 14],
            .is_new = true,
            .seen_at = INT64_C(1700000000000000),
        };
    eg_mem_write_t w = {
        .doc = {.id = eg_arena_printf(a, "doc-%zu", k / DOC_UNITS),
                .created_at = INT64_C(1700000000000000),
                .updated_at = INT64_C(1700000000000000)},
        .replace = true,
        .chunks = chunks,
        .nchunks = 1,
        .units = u,
        .nunits = n,
        .entities = refs,
        .nentities = nrefs,
        .dim = DIM,
        .embed_model = "builtin",
    };
    if (eg_mem_write(ws, bank, &w, written, &done) != 0) {
        fprintf(stderr, "write refused\n");
        exit(1);
    }
    wait_for(&done);
}

/* CPU time this process has used (user + system), in ns: on a shared machine the wall times
 * include waiting for a core, this does not. */
static uint64_t cpu_ns(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * 4;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379/0";
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    eg_store_opts_t so = {url, 2, 60000, 2000};
    eg_embedder_t *emb = eg_embed_builtin_new(DIM);
    char(*ids)[EG_MEM_UUID_LEN + 1] = eg_xmalloc((n + DOC_UNITS) * sizeof(*ids));
    eg_arena_t a;
    eg_mindex_t *ix;
    uint64_t t0, c0, t_load, c_load, t_sync[101], t_catch, c_catch;
    size_t bytes, nb;
    long rss0, rss1;
    int done = 0;

    loop = uv_default_loop();
    eg_arena_init(&a);
    if (eg_store_init(loop, &so) != 0)
        return 2;
    while (!eg_store_up())
        uv_run(loop, UV_RUN_ONCE);
    snprintf(ws, sizeof(ws), "bench-%d", (int)getpid());
    snprintf(bank, sizeof(bank), "bank-load");
    if (eg_bank_put(ws, bank, NULL, bank_done, &done) != 0)
        return 1;
    wait_for(&done);

    printf("bench_bank_load: %zu facts, %d dims, %s\n", n, DIM, url);
    t0 = eg_mono_ns();
    for (size_t k = 0; k < n; k += DOC_UNITS) {
        write_doc(emb, k, EG_MIN((size_t)DOC_UNITS, n - k), ids, &a);
        eg_arena_reset(&a);
    }
    printf("  written with eg_mem_write in %.1f s (%.0f facts/s, %d per document)\n",
           (eg_mono_ns() - t0) / 1e9, n / ((eg_mono_ns() - t0) / 1e9), DOC_UNITS);

    eg_mindex_init(loop, 0);
    uv_timer_init(loop, &beat);
    uv_timer_start(&beat, on_beat, 1, 1);
    rss0 = rss_kib();
    last_beat = 0;
    max_gap = 0;
    t0 = eg_mono_ns();
    c0 = cpu_ns();
    ix = acquire();
    t_load = eg_mono_ns() - t0;
    c_load = cpu_ns() - c0;
    rss1 = rss_kib();
    bytes = eg_mindex_total_bytes(&nb);
    printf("  first acquire (full load): %.0f ms for %zu units (%.1f us/unit), of which this "
           "process's CPU %.0f ms (%.1f us/unit); the loop's longest pause meanwhile %.2f ms "
           "wall, %.2f ms CPU\n",
           t_load / 1e6, eg_mindex_count(ix), t_load / 1e3 / (double)eg_mindex_count(ix),
           c_load / 1e6, c_load / 1e3 / (double)eg_mindex_count(ix), max_gap / 1e6,
           max_cpu_gap / 1e6);
    printf("  loaded index: eg_mindex_bytes %.0f B/fact (%zu entities, %zu documents); process "
           "RSS growth %.0f B/fact\n",
           (double)bytes / (double)eg_mindex_count(ix), eg_mindex_entities(ix), eg_mindex_docs(ix),
           (rss1 - rss0) * 1024.0 / (double)eg_mindex_count(ix));
    for (int i = 0; i < 101; i++) {
        t0 = eg_mono_ns();
        acquire();
        t_sync[i] = eg_mono_ns() - t0;
    }
    for (int i = 1; i < 101; i++)
        for (int j = i; j > 0 && t_sync[j - 1] > t_sync[j]; j--) {
            uint64_t x = t_sync[j];
            t_sync[j] = t_sync[j - 1];
            t_sync[j - 1] = x;
        }
    printf("  acquire with nothing new (one SYNC round trip): p50 %.3f ms, p99 %.3f ms\n",
           t_sync[50] / 1e6, t_sync[99] / 1e6);
    write_doc(emb, n, 10, ids, &a);
    eg_arena_reset(&a);
    t0 = eg_mono_ns();
    c0 = cpu_ns();
    ix = acquire();
    t_catch = eg_mono_ns() - t0;
    c_catch = cpu_ns() - c0;
    printf("  acquire after a 10-fact write (catch-up): %.3f ms, CPU %.3f ms (%zu units)\n",
           t_catch / 1e6, c_catch / 1e6, eg_mindex_count(ix));

    uv_timer_stop(&beat);
    uv_close((uv_handle_t *)&beat, NULL);
    done = 0;
    eg_bank_delete(ws, bank, deleted, &done);
    wait_for(&done);
    eg_mindex_shutdown();
    done = 0;
    eg_store_shutdown(NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    eg_arena_destroy(&a);
    eg_embed_destroy(emb);
    free(ids);
    return 0;
}
