/* Link computation for retain: temporal weights and limits, semantic top 20 at cosine >= 0.7,
 * caused_by, pooling of stored units (through the callbacks) with the batch's earlier units. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/links.h"

static eg_arena_t arena;

static void setup(void)
{
    eg_arena_init(&arena);
}

static void teardown(void)
{
    eg_arena_destroy(&arena);
}

TestSuite(links, .init = setup, .fini = teardown);

#define US_HOUR (INT64_C(3600) * 1000000)

Test(links, temporal_weight)
{
    cr_assert_float_eq(eg_links_temporal_weight(0), 1.0f, 1e-6);
    cr_assert_float_eq(eg_links_temporal_weight(6 * US_HOUR), 0.75f, 1e-6);
    cr_assert_float_eq(eg_links_temporal_weight(-12 * US_HOUR), 0.5f, 1e-6);
    /* The floor: 1 - 20/24 < 0.3. */
    cr_assert_float_eq(eg_links_temporal_weight(20 * US_HOUR), 0.3f, 1e-6);
    cr_assert_float_eq(eg_links_temporal_weight(24 * US_HOUR), 0.3f, 1e-6);
}

Test(links, event_time)
{
    eg_mem_unit_t u = {.occurred_start = 5, .mentioned_at = 9};
    cr_assert_eq(eg_links_event_time(&u), 5);
    u.occurred_start = EG_MEM_TIME_NONE;
    cr_assert_eq(eg_links_event_time(&u), 9);
}

/* Stored units for the callbacks: times and vectors. */
typedef struct {
    const char *id;
    int64_t t;
    float vec[4];
} stored_t;

static stored_t stored[40];
static size_t nstored;
static size_t near_calls, search_calls;

static size_t near_cb(void *ctx, eg_arena_t *a, int64_t t, int64_t window, size_t max,
                      eg_links_stored_t **out)
{
    /* Deliberately returns everything within the window, unsorted and over max: the helper
     * must rank and cut. */
    (void)ctx;
    (void)max;
    near_calls++;
    *out = eg_arena_alloc(a, (nstored + 1) * sizeof(**out));
    size_t n = 0;
    for (size_t i = 0; i < nstored; i++)
        if (llabs(stored[i].t - t) <= window)
            (*out)[n++] = (eg_links_stored_t){stored[i].id, stored[i].t, 0};
    return n;
}

static float dot4(const float *a, const float *b)
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
}

static size_t search_cb(void *ctx, eg_arena_t *a, const float *vec, size_t k, float min,
                        eg_links_stored_t **out)
{
    (void)ctx;
    (void)k;
    search_calls++;
    *out = eg_arena_alloc(a, (nstored + 1) * sizeof(**out));
    size_t n = 0;
    for (size_t i = 0; i < nstored; i++) {
        float s = dot4(vec, stored[i].vec);
        if (s >= min)
            (*out)[n++] = (eg_links_stored_t){stored[i].id, 0, s};
    }
    return n;
}

static void unit_vec(float *v, float x, float y)
{
    float n = sqrtf(x * x + y * y);
    v[0] = x / n;
    v[1] = y / n;
    v[2] = v[3] = 0;
}

static size_t count_type(const eg_mem_link_t *l, size_t n, eg_link_type_t t)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += l[i].type == t;
    return c;
}

Test(links, temporal_nearest_twenty_within_a_day)
{
    int64_t t0 = 1000 * US_HOUR;
    nstored = 30;
    for (size_t i = 0; i < nstored; i++) {
        /* Stored units every 1.5 h from t0 - 22.5 h to t0 + 21 h: 30 within the day. */
        stored[i].id = eg_arena_printf(&arena, "s%02zu", i);
        stored[i].t = t0 - 22 * US_HOUR - US_HOUR / 2 + (int64_t)i * (US_HOUR * 3 / 2);
        memset(stored[i].vec, 0, sizeof(stored[i].vec));
        stored[i].vec[3] = 1;
    }
    eg_links_unit_t batch[3];
    float v[3][4];
    unit_vec(v[0], 1, 0);
    unit_vec(v[1], 0, 1);
    unit_vec(v[2], 1, 0.05f);
    batch[0] = (eg_links_unit_t){"b0", t0 + 30 * US_HOUR, v[0]}; /* far from all */
    batch[1] = (eg_links_unit_t){"b1", EG_MEM_TIME_NONE, v[1]};  /* no time */
    batch[2] = (eg_links_unit_t){"b2", t0, v[2]};

    eg_mem_link_t *l;
    size_t n = eg_links_for_unit(&arena, batch, 2, 4, near_cb, search_cb, NULL, NULL, 0, &l);
    /* 20 temporal links (nearest first, the batch's b0 is 30 h away), 1 semantic (b0). */
    cr_assert_eq(count_type(l, n, EG_LINK_TEMPORAL), 20);
    cr_assert_eq(count_type(l, n, EG_LINK_SEMANTIC), 1);
    int64_t last = -1;
    for (size_t i = 0; i < 20; i++) {
        cr_assert_eq(l[i].type, EG_LINK_TEMPORAL);
        cr_assert_eq(l[i].other_id[0], 's');
        size_t idx = (size_t)atoi(l[i].other_id + 1);
        int64_t dt = llabs(stored[idx].t - t0);
        cr_assert_geq(dt, last);
        last = dt;
        cr_assert_float_eq(l[i].weight, eg_links_temporal_weight(dt), 1e-6);
        cr_assert_geq(l[i].weight, 0.3f);
    }
    cr_assert_str_eq(l[0].other_id, "s15"); /* at t0 itself */
    cr_assert_str_eq(l[20].other_id, "b0");
    cr_assert_float_eq(l[20].weight, dot4(v[0], v[2]), 1e-6);

    /* A unit without a time gets no temporal links, and the time callback is not asked. */
    near_calls = 0;
    n = eg_links_for_unit(&arena, batch, 1, 4, near_cb, search_cb, NULL, NULL, 0, &l);
    cr_assert_eq(near_calls, 0);
    cr_assert_eq(count_type(l, n, EG_LINK_TEMPORAL), 0);
}

Test(links, temporal_batch_pairs_once)
{
    eg_links_unit_t batch[3] = {
        {"a", 10 * US_HOUR, NULL}, {"b", 16 * US_HOUR, NULL}, {"c", 40 * US_HOUR, NULL}};
    eg_mem_link_t *l;

    /* The first unit of a batch links to nothing of the batch; later ones to earlier ones. */
    cr_assert_eq(eg_links_for_unit(&arena, batch, 0, 0, NULL, NULL, NULL, NULL, 0, &l), 0);
    size_t n = eg_links_for_unit(&arena, batch, 1, 0, NULL, NULL, NULL, NULL, 0, &l);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(l[0].other_id, "a");
    cr_assert_float_eq(l[0].weight, 0.75f, 1e-6);
    /* c is 24 h from b: inclusive, at the floor; 30 h from a: out. */
    n = eg_links_for_unit(&arena, batch, 2, 0, NULL, NULL, NULL, NULL, 0, &l);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(l[0].other_id, "b");
    cr_assert_float_eq(l[0].weight, 0.3f, 1e-6);
}

Test(links, semantic_top_twenty_at_point_seven)
{
    nstored = 30;
    for (size_t i = 0; i < nstored; i++) {
        /* Cosines with (1, 0) spread from 1.0 down to about 0.27. */
        stored[i].id = eg_arena_printf(&arena, "s%02zu", i);
        stored[i].t = EG_MEM_TIME_NONE;
        float ang = (float)i * 0.042f;
        stored[i].vec[0] = cosf(ang);
        stored[i].vec[1] = sinf(ang);
        stored[i].vec[2] = stored[i].vec[3] = 0;
    }
    float v[2][4];
    unit_vec(v[0], 1, 0.02f);
    unit_vec(v[1], 1, 0);
    eg_links_unit_t batch[2] = {{"b0", EG_MEM_TIME_NONE, v[0]}, {"b1", EG_MEM_TIME_NONE, v[1]}};
    eg_mem_link_t *l;
    size_t n = eg_links_for_unit(&arena, batch, 1, 4, near_cb, search_cb, NULL, NULL, 0, &l);

    /* Stored cosines >= 0.7: angles up to acos(0.7) = 0.795 -> i <= 18: 19 units; plus b0:
     * 20 in all, the maximum. */
    cr_assert_eq(n, 20);
    float prev = 2;
    bool saw_b0 = false;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(l[i].type, EG_LINK_SEMANTIC);
        cr_assert_geq(l[i].weight, 0.7f);
        cr_assert_leq(l[i].weight, prev);
        prev = l[i].weight;
        saw_b0 |= strcmp(l[i].other_id, "b0") == 0;
    }
    cr_assert(saw_b0);
    cr_assert_str_eq(l[0].other_id, "s00");
}

Test(links, causal)
{
    eg_links_unit_t batch[4] = {{"a", EG_MEM_TIME_NONE, NULL},
                                {"b", EG_MEM_TIME_NONE, NULL},
                                {"c", EG_MEM_TIME_NONE, NULL},
                                {"d", EG_MEM_TIME_NONE, NULL}};
    size_t causes[] = {1, 0, 1, 3, 9};
    eg_mem_link_t *l;

    /* Duplicates and indexes not before the unit are ignored. */
    size_t n = eg_links_for_unit(&arena, batch, 2, 0, NULL, NULL, NULL, causes, 5, &l);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(l[0].other_id, "b");
    cr_assert_eq(l[0].type, EG_LINK_CAUSED_BY);
    cr_assert_float_eq(l[0].weight, 1.0f, 1e-6);
    cr_assert_str_eq(l[1].other_id, "a");
}
