/* The detached memory index's retain helpers (mindex_retain.c, eg_mindex_time_near_at): the
 * entity-name dictionary follows entity puts, renames and removals (checked against a fresh
 * index holding the same entities), temporal neighbours of an arbitrary time against a brute-force
 * sort, and the vector sketches staying on through later puts. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/mindex.h"

#define DIM 384
#define H   (INT64_C(3600) * 1000000)
#define T0  (INT64_C(1700000000) * 1000000)
#define NE  400

static uint64_t prng = 0x9e3779b97f4a7c15ULL;

static size_t pick(size_t n)
{
    prng ^= prng << 13;
    prng ^= prng >> 7;
    prng ^= prng << 17;
    return (size_t)(prng % n);
}

static const char *uid(char *buf, int kind, int n)
{
    snprintf(buf, EG_MEM_UUID_LEN + 1, "%c0000000-0000-4000-8000-%012d", kind, n);
    return buf;
}

static char *rand_name(char *buf, size_t cap)
{
    static const char *syl[] = {"Ka", "ro", "mi", "Tan", "el", "sor", "Vi", "len"};
    size_t n = 0;
    for (size_t k = 0, m = 2 + pick(3); k < m; k++) {
        if (k == 2)
            buf[n++] = ' ';
        n += (size_t)snprintf(buf + n, cap - n, "%s", syl[pick(8)]);
    }
    return buf;
}

static void put_entity(eg_mindex_t *ix, int n, const char *name)
{
    char id[EG_MEM_UUID_LEN + 1];
    eg_mem_entity_t e = {uid(id, 'e', n), name, 1, T0, T0, NULL};
    cr_assert_eq(eg_mindex_put_entity(ix, &e), 0);
}

/* The same search on ix and on a fresh index of ix's live entities (put in index order, so the
 * fresh one numbers them alike only when nothing was removed: compare ids, not numbers). */
static void check_search(eg_mindex_t *ix)
{
    eg_mindex_t *fresh = eg_mindex_new(DIM);
    eg_resolve_hit_t a[200], b[200];
    char buf[64];

    for (uint32_t i = 0; i < eg_mindex_entities(ix); i++) {
        const eg_mindex_entity_t *e = eg_mindex_entity(ix, i);
        if (e) {
            eg_mem_entity_t me = {e->id, e->name, 1, T0, T0, NULL};
            cr_assert_eq(eg_mindex_put_entity(fresh, &me), 0);
        }
    }
    for (int t = 0; t < 40; t++) {
        const char *q = rand_name(buf, sizeof(buf));
        size_t na = eg_mindex_entity_search(ix, q, 0.15, a, 200);
        size_t nb = eg_mindex_entity_search(fresh, q, 0.15, b, 200);
        cr_assert_eq(na, nb, "query %s", q);
        for (size_t k = 0; k < na; k++) {
            cr_assert_eq(a[k].sim, b[k].sim);
            /* Equal similarities may order differently (numbers differ): compare the sets of
             * ids per similarity through the names' own similarity instead. */
            cr_assert_float_eq(a[k].sim,
                               eg_resolve_name_trigram_sim(q, eg_mindex_entity(ix, a[k].id)->name),
                               1e-12);
        }
    }
    eg_mindex_free(fresh);
}

Test(mindex_retain, entity_dictionary_follows_entities)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    char buf[64], id[EG_MEM_UUID_LEN + 1];

    cr_assert_eq(eg_mindex_entity_search(ix, "Karo", 0.15, (eg_resolve_hit_t[1]){0}, 1), 0);
    for (int i = 0; i < NE / 2; i++)
        put_entity(ix, i, rand_name(buf, sizeof(buf)));
    check_search(ix); /* builds the dictionary */
    cr_assert(eg_mindex_entity_names_built(ix));
    for (int i = NE / 2; i < NE; i++) /* added after it was built */
        put_entity(ix, i, rand_name(buf, sizeof(buf)));
    check_search(ix);
    for (int i = 0; i < NE; i += 3) /* removed (their numbers are reused below) */
        cr_assert_eq(eg_mindex_remove_entity(ix, uid(id, 'e', i)), 0);
    for (int i = 1; i < NE; i += 5) /* renamed */
        put_entity(ix, i, rand_name(buf, sizeof(buf)));
    check_search(ix);
    for (int i = NE; i < NE + 60; i++)
        put_entity(ix, i, rand_name(buf, sizeof(buf)));
    check_search(ix);

    /* A renamed entity is found under its new name only. */
    put_entity(ix, 7, "Zebulon Quartz");
    eg_resolve_hit_t h[4];
    size_t n = eg_mindex_entity_search(ix, "zebulon quartz", 0.9, h, 4);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(eg_mindex_entity(ix, h[0].id)->name, "Zebulon Quartz");
    put_entity(ix, 7, "Other Name");
    cr_assert_eq(eg_mindex_entity_search(ix, "zebulon quartz", 0.9, h, 4), 0);
    cr_assert_gt(eg_mindex_bytes(ix), 0);
    eg_mindex_free(ix);
}

/* ---- temporal neighbours of a time ---------------------------------------------------------- */

static int64_t times[600];

static void put_unit(eg_mindex_t *ix, int n, int64_t occurred, int64_t mentioned, bool inval)
{
    char id[EG_MEM_UUID_LEN + 1];
    float v[DIM] = {0};
    eg_mem_unit_t u;

    memset(&u, 0, sizeof(u));
    u.id = uid(id, '0', n);
    u.text = "a fact";
    u.context = "";
    u.type = EG_FACT_WORLD;
    u.occurred_start = occurred;
    u.occurred_end = EG_MEM_TIME_NONE;
    u.mentioned_at = mentioned;
    u.created_at = u.updated_at = T0;
    u.invalidated = inval;
    u.invalidated_at = u.edited_at = EG_MEM_TIME_NONE;
    u.proof_count = 1;
    v[n % DIM] = 1.0f;
    cr_assert_eq(eg_mindex_put_unit(ix, &u, v, NULL, 0), 0);
}

static bool odd_units(uint32_t slot, void *udata)
{
    eg_mindex_t *ix = udata;
    return atoi(eg_mindex_unit(ix, slot)->id + 24) % 2 == 1;
}

static int64_t dist(int64_t a, int64_t b)
{
    return a > b ? a - b : b - a;
}

Test(mindex_retain, time_near_at)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    int n = 600;
    uint32_t out[(1 + EG_MINDEX_NEAR_TIES) * 20];
    char id[EG_MEM_UUID_LEN + 1];

    /* Event times over ten days, many shared (a batch import); some only mentioned, some
     * without any time, some invalidated. */
    for (int i = 0; i < n; i++) {
        int64_t t =
            T0 + (int64_t)pick(240) * H + (pick(4) == 0 ? 0 : (int64_t)pick(3600) * 1000000);
        int kind = (int)pick(10);
        times[i] = kind == 0 ? EG_MEM_TIME_NONE : t;
        put_unit(ix, i, kind == 1 || kind == 0 ? EG_MEM_TIME_NONE : t,
                 kind == 0 ? EG_MEM_TIME_NONE : t, kind == 2);
        if (kind == 2)
            times[i] = EG_MEM_TIME_NONE; /* invalidated: never a neighbour */
    }
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(id, '0', 5)), 0);
    times[5] = EG_MEM_TIME_NONE;
    for (int q = 0; q < 200; q++) {
        int64_t t =
            T0 + (int64_t)pick(260) * H - 10 * H + (q % 5 == 0 ? 0 : (int64_t)pick(3600) * 1000000);
        size_t at = pick((size_t)n);
        if (q % 7 == 0 && times[at] != EG_MEM_TIME_NONE)
            t = times[at]; /* exactly a unit's time */
        size_t max = 1 + pick(20);
        bool filt = q % 3 == 0;
        size_t got = eg_mindex_time_near_at(ix, t, 24 * H, max, filt ? odd_units : NULL, ix, out);
        /* Brute force: eligible units within the window, by distance. */
        int64_t d[600];
        size_t ne = 0;
        for (int i = 0; i < n; i++)
            if (times[i] != EG_MEM_TIME_NONE && dist(times[i], t) <= 24 * H &&
                (!filt || i % 2 == 1))
                d[ne++] = dist(times[i], t);
        /* the k-th smallest distance, for k = min(max, ne) */
        for (size_t a = 1; a < ne; a++)
            for (size_t b = a; b > 0 && d[b - 1] > d[b]; b--) {
                int64_t x = d[b];
                d[b] = d[b - 1];
                d[b - 1] = x;
            }
        size_t k = max < ne ? max : ne, ties = 0;
        for (size_t i = k; i < ne && k > 0 && d[i] == d[k - 1]; i++)
            ties++;
        if (ties > EG_MINDEX_NEAR_TIES * max)
            ties = EG_MINDEX_NEAR_TIES * max;
        cr_assert_eq(got, k + ties, "query %d: %zu, want %zu + %zu", q, got, k, ties);
        for (size_t i = 0; i < got; i++) {
            const eg_mindex_unit_t *u = eg_mindex_unit(ix, out[i]);
            int num = atoi(u->id + 24);
            cr_assert(!u->invalidated);
            cr_assert(!filt || num % 2 == 1);
            cr_assert_eq(dist(times[num], t), i < k ? d[i] : d[k - 1], "query %d item %zu", q, i);
        }
    }
    cr_assert_eq(eg_mindex_time_near_at(ix, EG_MEM_TIME_NONE, 24 * H, 5, NULL, NULL, out), 0);
    eg_mindex_free(ix);
}

static void count_hit(void *udata, size_t q, uint32_t slot, float score)
{
    int *n = udata;
    (void)q;
    (void)slot;
    cr_assert_float_eq(score, 1.0f, 1e-2);
    (*n)++;
}

Test(mindex_retain, sketches_stay_on)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    float q[DIM] = {0};
    int hits = 0;

    for (int i = 0; i < 50; i++)
        put_unit(ix, i, T0, T0, false);
    cr_assert(!eg_vindex_sketched(eg_mindex_vectors(ix)));
    size_t before = eg_mindex_bytes(ix);
    eg_mindex_sketch_vectors(ix);
    cr_assert(eg_vindex_sketched(eg_mindex_vectors(ix)));
    cr_assert_gt(eg_mindex_bytes(ix), before);
    for (int i = 50; i < 100; i++)
        put_unit(ix, i, T0, T0, false);
    /* Unit i's vector is axis i: each axis query finds its one unit, old or new. */
    for (int a = 0; a < 100; a += 7) {
        memset(q, 0, sizeof(q));
        q[a] = 1.0f;
        eg_vbatch_t *b = eg_vbatch_new(eg_mindex_vectors(ix), q, 1, 0.7f);
        hits = 0;
        eg_vbatch_scan(eg_mindex_vectors(ix), b, 0, UINT32_MAX, NULL, NULL, count_hit, &hits);
        cr_assert_eq(hits, 1, "axis %d", a);
        eg_vbatch_free(b);
    }
    eg_mindex_free(ix);
}
