/* Entity resolution's name dictionary under change: after any sequence of adds, removals and
 * renames, a search must answer exactly what a brute-force pass over the current names answers
 * (pg_trgm similarity of every name, at least min_sim, most similar first, then by number) and
 * what a dictionary built afresh from them answers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/resolve.h"

#define N 1500

static eg_arena_t arena;
static uint64_t prng = 0x2545f4914f6cdd1dULL;

static void setup(void)
{
    eg_arena_init(&arena);
}

static void teardown(void)
{
    eg_arena_destroy(&arena);
}

TestSuite(resolve_dict, .init = setup, .fini = teardown);

static size_t pick(size_t n)
{
    prng ^= prng << 13;
    prng ^= prng >> 7;
    prng ^= prng << 17;
    return (size_t)(prng % n);
}

static char *rand_name(void)
{
    static const char *syl[] = {"ka", "ro", "mi", "tan", "el", "sor", "vi", "len", "dra", "pe"};
    char buf[64];
    size_t n = 0;
    for (size_t w = 0, nw = 1 + pick(3); w < nw; w++) {
        if (w)
            buf[n++] = ' ';
        for (size_t k = 0, m = 1 + pick(3); k < m; k++)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s", syl[pick(10)]);
    }
    buf[n] = '\0';
    return eg_arena_strdup(&arena, buf);
}

static int cmp_hit(const void *x, const void *y)
{
    const eg_resolve_hit_t *p = x, *q = y;
    if (p->sim != q->sim)
        return p->sim > q->sim ? -1 : 1;
    return p->id < q->id ? -1 : p->id > q->id;
}

/* Brute force over names[0..N) (NULL = absent). */
static size_t brute(char **names, const char *q, double min_sim, eg_resolve_hit_t *out, size_t max)
{
    eg_resolve_hit_t *all = malloc(N * sizeof(*all));
    size_t n = 0;
    for (uint32_t i = 0; i < N; i++) {
        if (!names[i])
            continue;
        double s = eg_resolve_name_trigram_sim(q, names[i]);
        if (s >= min_sim && s > 0)
            all[n++] = (eg_resolve_hit_t){i, s};
    }
    qsort(all, n, sizeof(*all), cmp_hit);
    n = n < max ? n : max;
    memcpy(out, all, n * sizeof(*out));
    free(all);
    return n;
}

static void check_same(eg_resolve_dict_t *d, char **names, size_t max)
{
    eg_resolve_dict_t *fresh = eg_resolve_dict_new();
    eg_resolve_hit_t a[200], b[200], c[200];
    size_t live = 0;

    for (uint32_t i = 0; i < N; i++)
        if (names[i]) {
            eg_resolve_dict_add(fresh, i, names[i]);
            live++;
        }
    cr_assert_eq(eg_resolve_dict_size(d), live);
    for (int t = 0; t < 60; t++) {
        const char *q = t % 3 == 0 && names[t * 7] ? names[t * 7] : rand_name();
        double min = t % 2 ? 0.15 : 0.4;
        size_t na = eg_resolve_dict_search(d, q, min, a, max);
        size_t nb = eg_resolve_dict_search(fresh, q, min, b, max);
        size_t nc = brute(names, q, min, c, max);
        cr_assert_eq(na, nc, "query '%s': %zu hits, brute force %zu", q, na, nc);
        cr_assert_eq(nb, nc);
        for (size_t k = 0; k < na; k++) {
            cr_assert_eq(a[k].id, c[k].id, "query '%s' hit %zu", q, k);
            cr_assert_eq(a[k].sim, c[k].sim);
            cr_assert_eq(b[k].id, c[k].id);
        }
    }
    eg_resolve_dict_free(fresh);
}

Test(resolve_dict, follows_adds_removes_and_renames)
{
    char **names = eg_arena_calloc(&arena, N * sizeof(*names));
    eg_resolve_dict_t *d = eg_resolve_dict_new();

    for (uint32_t i = 0; i < N; i++) {
        names[i] = rand_name();
        eg_resolve_dict_add(d, i, names[i]);
    }
    check_same(d, names, 200);
    check_same(d, names, 7); /* a small max: the bounded selection, not just a cut */

    /* Remove a third, rename a sixth, re-add some removed numbers under new names. */
    for (uint32_t i = 0; i < N; i++) {
        if (i % 3 == 0) {
            eg_resolve_dict_remove(d, i, names[i]);
            cr_assert(!eg_resolve_dict_has(d, i));
            names[i] = NULL;
        } else if (i % 6 == 1) {
            eg_resolve_dict_remove(d, i, names[i]);
            names[i] = rand_name();
            eg_resolve_dict_add(d, i, names[i]);
        }
    }
    eg_resolve_dict_remove(d, 0, "never there"); /* absent: ignored */
    check_same(d, names, 200);
    for (uint32_t i = 0; i < N; i += 9) {
        if (names[i])
            continue;
        names[i] = rand_name();
        eg_resolve_dict_add(d, i, names[i]);
    }
    /* Adding a present number again changes nothing. */
    eg_resolve_dict_add(d, 1, "something else entirely");
    check_same(d, names, 200);
    cr_assert_gt(eg_resolve_dict_bytes(d), 0);

    /* Empty again. */
    for (uint32_t i = 0; i < N; i++)
        if (names[i]) {
            eg_resolve_dict_remove(d, i, names[i]);
            names[i] = NULL;
        }
    cr_assert_eq(eg_resolve_dict_size(d), 0);
    eg_resolve_hit_t h[4];
    cr_assert_eq(eg_resolve_dict_search(d, "karo", 0.0, h, 4), 0);
    eg_resolve_dict_free(d);
}
