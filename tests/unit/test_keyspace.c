/* eg_key: the "eg:{scope[:id]}:suffix" layout and its hash tag. */
#include <criterion/criterion.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/store.h"

static eg_arena_t arena;

static void setup(void)
{
    eg_arena_init(&arena);
}

static void teardown(void)
{
    eg_arena_destroy(&arena);
}

TestSuite(keyspace, .init = setup, .fini = teardown);

Test(keyspace, scoped_with_id)
{
    cr_assert_str_eq(eg_key(&arena, "b", "7f3a", "unit:%s", "u1"), "eg:{b:7f3a}:unit:u1");
    cr_assert_str_eq(eg_key(&arena, "w", "ws_1", "apikeys"), "eg:{w:ws_1}:apikeys");
    cr_assert_str_eq(eg_key(&arena, "b", "x", "doc:%d:chunk:%d", 3, 14), "eg:{b:x}:doc:3:chunk:14");
}

Test(keyspace, scope_without_id)
{
    cr_assert_str_eq(eg_key(&arena, "t", NULL, "ws:%s", "abc"), "eg:{t}:ws:abc");
    cr_assert_str_eq(eg_key(&arena, "t", NULL, "accounts"), "eg:{t}:accounts");
}

Test(keyspace, braces_in_id_keep_the_hash_tag)
{
    /* The slot is chosen by the text between the first '{' and the next '}': an id must not be
     * able to end the tag early. */
    char *k = eg_key(&arena, "b", "a}b{c%d", "unit:1");

    cr_assert_str_eq(k, "eg:{b:a%7Db%7Bc%25d}:unit:1");
    cr_assert_eq(strchr(k, '}'), strrchr(k, '}'));
}

Test(keyspace, empty_suffix_and_long_values)
{
    char id[300];
    char *k;

    memset(id, 'z', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    k = eg_key(&arena, "b", id, "%s", "");
    cr_assert_eq(strlen(k), 4 + 2 + 299 + 2);
    cr_assert_eq(strncmp(k, "eg:{b:zzz", 9), 0);
    cr_assert_str_eq(k + strlen(k) - 2, "}:");
}
