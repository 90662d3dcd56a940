/* Query-string parsing: order, repeated keys, '+', percent escapes, odd pairs. */
#include <criterion/criterion.h>

#include <string.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/http.h"

static eg_arena_t arena;

static void setup(void) { eg_arena_init(&arena); }
static void teardown(void) { eg_arena_destroy(&arena); }

TestSuite(query, .init = setup, .fini = teardown);

static eg_kv_t *parse_ok(const char *qs, size_t *n)
{
    eg_kv_t *kv = NULL;
    *n = 12345;
    int rc = eg_query_parse(&arena, qs, &kv, n);
    cr_assert_eq(rc, 0, "eg_query_parse('%s') = %d", qs, rc);
    if (*n > 0)
        cr_assert_not_null(kv);
    return kv;
}

/* A key without '=' may be reported with value "" or NULL; both mean "present, no value". */
static void assert_empty_value(const char *v)
{
    cr_assert(v == NULL || v[0] == '\0', "expected empty value, got '%s'", v);
}

Test(query, simple_pairs)
{
    size_t n;
    eg_kv_t *kv = parse_ok("a=1&b=two", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(kv[0].name, "a");
    cr_assert_str_eq(kv[0].value, "1");
    cr_assert_str_eq(kv[1].name, "b");
    cr_assert_str_eq(kv[1].value, "two");
}

Test(query, repeated_keys_kept_in_order)
{
    size_t n;
    eg_kv_t *kv = parse_ok("tag=x&limit=5&tag=y&tag=z", &n);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(kv[0].name, "tag");
    cr_assert_str_eq(kv[0].value, "x");
    cr_assert_str_eq(kv[1].name, "limit");
    cr_assert_str_eq(kv[1].value, "5");
    cr_assert_str_eq(kv[2].name, "tag");
    cr_assert_str_eq(kv[2].value, "y");
    cr_assert_str_eq(kv[3].name, "tag");
    cr_assert_str_eq(kv[3].value, "z");
}

Test(query, plus_is_space)
{
    size_t n;
    eg_kv_t *kv = parse_ok("q=hello+world+&a+b=c", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(kv[0].value, "hello world ");
    cr_assert_str_eq(kv[1].name, "a b", "'+' in a key is a space too");
    cr_assert_str_eq(kv[1].value, "c");
}

Test(query, percent_escapes_decoded)
{
    size_t n;
    eg_kv_t *kv = parse_ok("x=%41%2b%2B%20%26%3D%25&k%65y=v%C3%A9", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(kv[0].name, "x");
    cr_assert_str_eq(kv[0].value, "A++ &=%");
    cr_assert_str_eq(kv[1].name, "key");
    cr_assert_str_eq(kv[1].value, "v\xc3\xa9");
}

Test(query, encoded_ampersand_does_not_split)
{
    size_t n;
    eg_kv_t *kv = parse_ok("a=1%262&b=3", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(kv[0].value, "1&2");
    cr_assert_str_eq(kv[1].value, "3");
}

Test(query, value_may_contain_equals)
{
    size_t n;
    eg_kv_t *kv = parse_ok("a=b=c", &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(kv[0].name, "a");
    cr_assert_str_eq(kv[0].value, "b=c");
}

Test(query, key_without_equals)
{
    size_t n;
    eg_kv_t *kv = parse_ok("flag&a=1&other", &n);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(kv[0].name, "flag");
    assert_empty_value(kv[0].value);
    cr_assert_str_eq(kv[1].name, "a");
    cr_assert_str_eq(kv[1].value, "1");
    cr_assert_str_eq(kv[2].name, "other");
    assert_empty_value(kv[2].value);
}

Test(query, empty_value_with_equals)
{
    size_t n;
    eg_kv_t *kv = parse_ok("a=&b=2", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(kv[0].name, "a");
    cr_assert_not_null(kv[0].value);
    cr_assert_str_eq(kv[0].value, "");
}

Test(query, empty_pairs_skipped)
{
    size_t n;
    eg_kv_t *kv = parse_ok("&&a=1&&b=2&", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(kv[0].name, "a");
    cr_assert_str_eq(kv[1].name, "b");
    cr_assert_str_eq(kv[1].value, "2");
}

Test(query, empty_string_gives_nothing)
{
    size_t n;
    parse_ok("", &n);
    cr_assert_eq(n, 0);
    parse_ok("&", &n);
    cr_assert_eq(n, 0);
    parse_ok("&&&", &n);
    cr_assert_eq(n, 0);
}

Test(query, bad_escapes_rejected)
{
    static const char *bad[] = {"a=%zz", "a=%4", "a=%", "%zz=1", "a=1&b=%g0", "a=%%41"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eg_kv_t *kv = NULL;
        size_t n = 0;
        cr_expect_eq(eg_query_parse(&arena, bad[i], &kv, &n), EG_EINVAL,
                     "query '%s' must be rejected", bad[i]);
    }
}

Test(query, many_pairs)
{
    char qs[8192];
    size_t off = 0;
    for (int i = 0; i < 500; i++)
        off += (size_t)snprintf(qs + off, sizeof qs - off, "%sk%d=v%d", i ? "&" : "", i, i);
    size_t n;
    eg_kv_t *kv = parse_ok(qs, &n);
    cr_assert_eq(n, 500);
    char want[16];
    snprintf(want, sizeof want, "v%d", 499);
    cr_assert_str_eq(kv[499].value, want);
    cr_assert_str_eq(kv[0].name, "k0");
}

Test(query, input_not_modified)
{
    char qs[] = "a=%41+b&c";
    size_t n;
    parse_ok(qs, &n);
    cr_assert_str_eq(qs, "a=%41+b&c", "parser must copy into the arena, not decode in place");
}
