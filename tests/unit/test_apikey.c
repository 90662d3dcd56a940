/* API key generation and Authorization header parsing (no Redis needed). */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engram/http.h"
#include "engram/tenancy.h"

#define KEY_LEN 43 /* "sk_" + 40 */

static bool is_base62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void assert_key_format(const char *key, const char *prefix)
{
    cr_assert_eq(strlen(key), KEY_LEN, "key '%s' has length %zu", key, strlen(key));
    cr_assert_eq(strncmp(key, prefix, 3), 0, "key '%s' must start with %s", key, prefix);
    for (size_t i = 3; i < KEY_LEN; i++)
        cr_assert(is_base62(key[i]), "key '%s' has a non-base62 char at %zu", key, i);
}

Test(apikey, secret_format)
{
    char out[64];
    memset(out, 'X', sizeof out);
    eg_apikey_generate(EG_KEY_SECRET, out);
    assert_key_format(out, "sk_");
}

Test(apikey, publishable_format)
{
    char out[64];
    memset(out, 'X', sizeof out);
    eg_apikey_generate(EG_KEY_PUBLISHABLE, out);
    assert_key_format(out, "pk_");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

Test(apikey, unique_over_1000)
{
    static char keys[1000][64];
    for (int i = 0; i < 1000; i++) {
        eg_apikey_generate(i % 2 ? EG_KEY_SECRET : EG_KEY_PUBLISHABLE, keys[i]);
        assert_key_format(keys[i], i % 2 ? "sk_" : "pk_");
    }
    qsort(keys, 1000, sizeof keys[0], cmp_str);
    for (int i = 1; i < 1000; i++)
        cr_assert_str_neq(keys[i - 1], keys[i], "duplicate key generated");
    /* The random parts must be unique too, across kinds. */
    static char tails[1000][64];
    for (int i = 0; i < 1000; i++)
        strcpy(tails[i], keys[i] + 3);
    qsort(tails, 1000, sizeof tails[0], cmp_str);
    for (int i = 1; i < 1000; i++)
        cr_assert_str_neq(tails[i - 1], tails[i], "duplicate random part generated");
}

Test(apikey, uses_whole_alphabet)
{
    /* 1000 keys = 40000 random chars; each of the 62 symbols is expected ~645 times. A missing
     * symbol (or a grossly skewed one) means a broken alphabet or a biased generator. */
    size_t count[256] = {0};
    char out[64];
    for (int i = 0; i < 1000; i++) {
        eg_apikey_generate(EG_KEY_SECRET, out);
        for (size_t j = 3; j < KEY_LEN; j++)
            count[(unsigned char)out[j]]++;
    }
    const char *alpha = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (const char *p = alpha; *p; p++) {
        cr_expect_gt(count[(unsigned char)*p], 400, "symbol '%c' seen %zu times", *p,
                     count[(unsigned char)*p]);
        cr_expect_lt(count[(unsigned char)*p], 900, "symbol '%c' seen %zu times", *p,
                     count[(unsigned char)*p]);
    }
}

/* eg_auth_token_from_header */

static void expect_token(const char *header, const char *want)
{
    const char *got = eg_auth_token_from_header(header);
    cr_assert_not_null(got, "header '%s' must give a token", header);
    cr_assert_str_eq(got, want, "header '%s'", header);
}

static void expect_null(const char *header)
{
    const char *got = eg_auth_token_from_header(header);
    cr_assert_null(got, "header '%s' must give NULL, got '%s'", header ? header : "(null)",
                   got ? got : "");
}

Test(auth_header, bearer)
{
    expect_token("Bearer sk_abc123", "sk_abc123");
}

Test(auth_header, bearer_any_case)
{
    expect_token("bearer sk_abc123", "sk_abc123");
    expect_token("BEARER sk_abc123", "sk_abc123");
    expect_token("BeArEr pk_xyz", "pk_xyz");
}

Test(auth_header, extra_spaces)
{
    expect_token("Bearer    sk_abc123", "sk_abc123");
    expect_token("  Bearer sk_abc123", "sk_abc123");
    expect_token("Bearer\tsk_abc123", "sk_abc123");
}

Test(auth_header, bare_key)
{
    expect_token("sk_abc123", "sk_abc123");
    expect_token("pk_abc123", "pk_abc123");
}

Test(auth_header, real_key)
{
    char key[64];
    eg_apikey_generate(EG_KEY_SECRET, key);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Bearer %s", key);
    expect_token(hdr, key);
    expect_token(key, key);
}

Test(auth_header, empty_is_null)
{
    expect_null(NULL);
    expect_null("");
    expect_null("   ");
}

Test(auth_header, bearer_alone_is_null)
{
    expect_null("Bearer");
    expect_null("bearer");
    expect_null("Bearer ");
    expect_null("Bearer    ");
}
