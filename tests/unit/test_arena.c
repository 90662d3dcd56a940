/* Arena: alignment, growth, big allocations, defers and reset. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "engram/arena.h"

Test(arena, init_allocates_nothing)
{
    eg_arena_t a;

    eg_arena_init(&a);
    cr_assert_null(a.chunks);
    cr_assert_null(a.defers);
    cr_assert_eq(a.total, 0);
    eg_arena_destroy(&a);
}

Test(arena, alignment_and_no_overlap)
{
    eg_arena_t a;
    unsigned char *ptrs[500];
    size_t sizes[500];

    eg_arena_init(&a);
    for (size_t i = 0; i < 500; i++) {
        sizes[i] = (i * 37) % 300; /* includes 0 and sizes that straddle chunk boundaries */
        ptrs[i] = eg_arena_alloc(&a, sizes[i]);
        cr_assert_not_null(ptrs[i]);
        cr_assert_eq((uintptr_t)ptrs[i] % 16, 0, "allocation %zu not 16-aligned", i);
        memset(ptrs[i], (int)(i & 0xff), sizes[i]);
    }
    for (size_t i = 0; i < 500; i++) {
        for (size_t j = 0; j < sizes[i]; j++)
            cr_assert_eq(ptrs[i][j], (unsigned char)(i & 0xff), "allocation %zu overwritten", i);
    }
    eg_arena_destroy(&a);
}

Test(arena, zero_size_allocations_are_distinct)
{
    eg_arena_t a;
    void *p, *q;

    eg_arena_init(&a);
    p = eg_arena_alloc(&a, 0);
    q = eg_arena_alloc(&a, 0);
    cr_assert_not_null(p);
    cr_assert_neq(p, q);
    eg_arena_destroy(&a);
}

Test(arena, big_allocation_gets_own_chunk)
{
    eg_arena_t a;
    char *small, *big, *pos_before, *after;

    eg_arena_init(&a);
    small = eg_arena_alloc(&a, 32);
    pos_before = a.pos;
    big = eg_arena_alloc(&a, 1 << 20);
    cr_assert_eq((uintptr_t)big % 16, 0);
    memset(big, 0xab, 1 << 20);
    /* The current chunk's free space is untouched by the big allocation... */
    cr_assert_eq(a.pos, pos_before);
    /* ...and keeps serving small allocations right after the previous one. */
    after = eg_arena_alloc(&a, 16);
    cr_assert_eq(after, pos_before);
    cr_assert(after > small);
    cr_assert_eq((unsigned char)big[(1 << 20) - 1], 0xab);
    eg_arena_destroy(&a);
}

Test(arena, big_first_allocation)
{
    eg_arena_t a;
    char *big, *s;

    eg_arena_init(&a);
    big = eg_arena_alloc(&a, 100000);
    memset(big, 1, 100000);
    s = eg_arena_strdup(&a, "after");
    cr_assert_str_eq(s, "after");
    cr_assert(s < big || s >= big + 100000);
    eg_arena_destroy(&a);
}

Test(arena, grows_across_chunks)
{
    eg_arena_t a;
    size_t total = 0;

    eg_arena_init(&a);
    for (int i = 0; i < 10000; i++) {
        int *p = eg_arena_alloc(&a, sizeof(int) * 4);

        p[0] = i;
        total += 16;
    }
    cr_assert_geq(a.total, total);
    eg_arena_destroy(&a);
}

Test(arena, calloc_zeroes_after_reuse)
{
    eg_arena_t a;
    unsigned char *p;

    eg_arena_init(&a);
    p = eg_arena_alloc(&a, 256);
    memset(p, 0xff, 256);
    eg_arena_reset(&a);
    p = eg_arena_calloc(&a, 256);
    for (int i = 0; i < 256; i++)
        cr_assert_eq(p[i], 0);
    eg_arena_destroy(&a);
}

Test(arena, strings)
{
    eg_arena_t a;
    char *s, big[6000];

    eg_arena_init(&a);
    cr_assert_null(eg_arena_strdup(&a, NULL));
    cr_assert_str_eq(eg_arena_strdup(&a, "hello"), "hello");
    cr_assert_str_eq(eg_arena_strdup(&a, ""), "");
    s = eg_arena_strndup(&a, "hello world", 5);
    cr_assert_str_eq(s, "hello");
    cr_assert_str_eq(eg_arena_printf(&a, "%s-%d", "id", 42), "id-42");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    s = eg_arena_printf(&a, "<%s>", big);
    cr_assert_eq(strlen(s), sizeof(big) + 1);
    cr_assert_eq(s[0], '<');
    cr_assert_eq(s[sizeof(big)], '>');
    eg_arena_destroy(&a);
}

static int order[8];
static int norder;

static void record(void *p)
{
    order[norder++] = (int)(intptr_t)p;
}

Test(arena, defers_run_in_reverse_order_once)
{
    eg_arena_t a;

    norder = 0;
    eg_arena_init(&a);
    eg_arena_defer(&a, record, (void *)1);
    eg_arena_alloc(&a, 100000); /* defers survive chunk growth */
    eg_arena_defer(&a, record, (void *)2);
    eg_arena_defer(&a, record, (void *)3);
    cr_assert_eq(norder, 0);
    eg_arena_reset(&a);
    cr_assert_eq(norder, 3);
    cr_assert_eq(order[0], 3);
    cr_assert_eq(order[1], 2);
    cr_assert_eq(order[2], 1);
    /* A second reset has nothing left to run. */
    eg_arena_reset(&a);
    cr_assert_eq(norder, 3);
    eg_arena_destroy(&a);
    cr_assert_eq(norder, 3);
}

static eg_arena_t *nested_arena;

static void defer_again(void *p)
{
    record(p);
    eg_arena_defer(nested_arena, record, (void *)7);
}

Test(arena, defer_registered_during_reset_runs)
{
    eg_arena_t a;

    norder = 0;
    nested_arena = &a;
    eg_arena_init(&a);
    eg_arena_defer(&a, defer_again, (void *)5);
    eg_arena_reset(&a);
    cr_assert_eq(norder, 2);
    cr_assert_eq(order[0], 5);
    cr_assert_eq(order[1], 7);
    cr_assert_null(a.chunks);
}

Test(arena, reset_empties_and_stays_usable)
{
    eg_arena_t a;

    eg_arena_init(&a);
    for (int round = 0; round < 3; round++) {
        char *s = eg_arena_printf(&a, "round %d", round);

        cr_assert_str_eq(s, round == 0 ? "round 0" : round == 1 ? "round 1" : "round 2");
        cr_assert_gt(a.total, 0);
        eg_arena_reset(&a);
        cr_assert_null(a.chunks);
        cr_assert_null(a.defers);
        cr_assert_eq(a.total, 0);
    }
    eg_arena_destroy(&a);
}
