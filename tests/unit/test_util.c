/* Helpers: randomness, ids, hashing, encodings, time and parsers. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engram/error.h"
#include "engram/util.h"

Test(util, xalloc)
{
    char *p = eg_xmalloc(0);
    char *s = eg_xstrdup("abc");
    char *n = eg_xstrndup("abcdef", 3);
    int *z = eg_xcalloc(4, sizeof(int));

    cr_assert_not_null(p);
    cr_assert_str_eq(s, "abc");
    cr_assert_str_eq(n, "abc");
    cr_assert_eq(z[0] | z[1] | z[2] | z[3], 0);
    p = eg_xrealloc(p, 100);
    cr_assert_not_null(p);
    cr_assert_null(eg_xstrdup(NULL));
    free(p);
    free(s);
    free(n);
    free(z);
}

Test(util, random_bytes)
{
    unsigned char a[32], b[32], zero[32] = {0};
    unsigned char *big = malloc(5000);

    cr_assert_eq(eg_random_init(), 0);
    cr_assert_eq(eg_random_init(), 0);
    eg_random_bytes(a, sizeof(a));
    eg_random_bytes(b, sizeof(b));
    cr_assert_neq(memcmp(a, zero, sizeof(a)), 0);
    cr_assert_neq(memcmp(a, b, sizeof(a)), 0);
    /* More than one DRBG request's worth in a single call. */
    memset(big, 0, 5000);
    eg_random_bytes(big, 5000);
    cr_assert_neq(memcmp(big + 4968, zero, 32), 0);
    free(big);
}

Test(util, random_differs_after_fork)
{
    unsigned char parent[32], child[32];
    int fds[2];
    pid_t pid;
    int status;

    eg_random_bytes(parent, 1); /* seed before forking, as a pre-fork master would */
    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        eg_random_bytes(child, sizeof(child));
        _exit(write(fds[1], child, sizeof(child)) == (ssize_t)sizeof(child) ? 0 : 1);
    }
    eg_random_bytes(parent, sizeof(parent));
    cr_assert_eq(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    waitpid(pid, &status, 0);
    cr_assert_neq(memcmp(parent, child, sizeof(parent)), 0);
    close(fds[0]);
    close(fds[1]);
}

Test(util, base62)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char out[64 * 200 + 1];
    char small[33];
    int seen[256] = {0};

    eg_random_base62(small, 32);
    cr_assert_eq(strlen(small), 32);
    eg_random_base62(small, 0);
    cr_assert_str_eq(small, "");

    eg_random_base62(out, sizeof(out) - 1);
    cr_assert_eq(strlen(out), sizeof(out) - 1);
    for (size_t i = 0; i < sizeof(out) - 1; i++) {
        cr_assert_not_null(strchr(alphabet, out[i]), "bad char %d", out[i]);
        seen[(unsigned char)out[i]]++;
    }
    /* 12800 draws: every symbol must appear (missing one has probability ~e^-200). */
    for (size_t i = 0; i < 62; i++)
        cr_assert_gt(seen[(unsigned char)alphabet[i]], 0, "never saw %c", alphabet[i]);
}

Test(util, uuid_v4_format)
{
    char u[37], v[37];

    for (int i = 0; i < 200; i++) {
        eg_uuid_v4(u);
        cr_assert_eq(strlen(u), 36);
        cr_assert_eq(u[8], '-');
        cr_assert_eq(u[13], '-');
        cr_assert_eq(u[18], '-');
        cr_assert_eq(u[23], '-');
        cr_assert_eq(u[14], '4', "version nibble in %s", u);
        cr_assert_not_null(strchr("89ab", u[19]), "variant nibble in %s", u);
        for (int j = 0; j < 36; j++) {
            if (j != 8 && j != 13 && j != 18 && j != 23)
                cr_assert_not_null(strchr("0123456789abcdef", u[j]));
        }
        cr_assert(eg_uuid_valid(u));
    }
    eg_uuid_v4(v);
    cr_assert_str_neq(u, v);
}

Test(util, uuid_valid)
{
    cr_assert(eg_uuid_valid("123e4567-e89b-12d3-a456-426614174000"));
    cr_assert(eg_uuid_valid("123E4567-E89B-12D3-A456-426614174000"));
    cr_assert(eg_uuid_valid("00000000-0000-0000-0000-000000000000"));
    cr_assert_not(eg_uuid_valid("123E4567-e89b-12d3-a456-426614174000")); /* mixed case */
    cr_assert_not(eg_uuid_valid("123e4567-e89b-12d3-a456-42661417400"));
    cr_assert_not(eg_uuid_valid("123e4567-e89b-12d3-a456-4266141740000"));
    cr_assert_not(eg_uuid_valid("123e4567e89b-12d3-a456-4266141740000"));
    cr_assert_not(eg_uuid_valid("123e4567-e89b-12d3-a456_426614174000"));
    cr_assert_not(eg_uuid_valid("g23e4567-e89b-12d3-a456-426614174000"));
    cr_assert_not(eg_uuid_valid("{23e4567-e89b-12d3-a456-426614174000}"));
    cr_assert_not(eg_uuid_valid(""));
    cr_assert_not(eg_uuid_valid(NULL));
}

Test(util, sha256)
{
    char out[65];

    eg_sha256_hex("abc", 3, out);
    cr_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    eg_sha256_hex("", 0, out);
    cr_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    eg_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, out);
    cr_assert_str_eq(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(util, hex)
{
    char out[9];

    eg_hex_encode("\x00\x01\xab\xff", 4, out);
    cr_assert_str_eq(out, "0001abff");
    eg_hex_encode("", 0, out);
    cr_assert_str_eq(out, "");
}

Test(util, base64_rfc4648)
{
    static const char *vec[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    char out[16];

    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        memset(out, 'x', sizeof(out));
        cr_assert_eq(eg_base64_encode(vec[i][0], strlen(vec[i][0]), out), strlen(vec[i][1]));
        cr_assert_str_eq(out, vec[i][1]);
    }
    cr_assert_eq(eg_base64_encode("\xff\xfe\xfd", 3, out), 4);
    cr_assert_str_eq(out, "//79");
}

Test(util, consttime_eq)
{
    cr_assert(eg_consttime_eq("abcd", "abcd", 4));
    cr_assert_not(eg_consttime_eq("abcd", "abce", 4));
    cr_assert_not(eg_consttime_eq("xbcd", "abcd", 4));
    cr_assert(eg_consttime_eq("a", "b", 0));
}

Test(util, clocks)
{
    uint64_t t0 = eg_mono_ns(), t1;

    cr_assert_gt(eg_now_ms(), (int64_t)1600000000000);
    usleep(1000);
    t1 = eg_mono_ns();
    cr_assert_geq(t1 - t0, 1000000);
}

Test(util, iso8601)
{
    char out[32];

    eg_time_iso8601(0, out);
    cr_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
    eg_time_iso8601(1795424199123, out);
    cr_assert_str_eq(out, "2026-11-23T08:56:39.123Z");
    cr_assert_eq(strlen(out), 24);
    eg_time_iso8601(-1, out);
    cr_assert_str_eq(out, "1969-12-31T23:59:59.999Z");
    eg_time_iso8601(951782400005, out); /* leap day */
    cr_assert_str_eq(out, "2000-02-29T00:00:00.005Z");
}

Test(util, strcaseeq)
{
    cr_assert(eg_strcaseeq("Content-Type", "content-type"));
    cr_assert(eg_strcaseeq("", ""));
    cr_assert_not(eg_strcaseeq("abc", "abcd"));
    cr_assert_not(eg_strcaseeq("abcd", "abc"));
    cr_assert_not(eg_strcaseeq("abc", NULL));
    cr_assert(eg_strcaseeq(NULL, NULL));
}

Test(util, parse_int64)
{
    int64_t v;

    cr_assert_eq(eg_parse_int64("42", 0, 100, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(eg_parse_int64("-5", -10, 10, &v), 0);
    cr_assert_eq(v, -5);
    cr_assert_eq(eg_parse_int64("9223372036854775807", INT64_MIN, INT64_MAX, &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(eg_parse_int64("-9223372036854775808", INT64_MIN, INT64_MAX, &v), 0);
    cr_assert_eq(v, INT64_MIN);
    v = 7;
    cr_assert_eq(eg_parse_int64("9223372036854775808", INT64_MIN, INT64_MAX, &v), EG_EINVAL);
    cr_assert_eq(eg_parse_int64("99999999999999999999999", INT64_MIN, INT64_MAX, &v), EG_EINVAL);
    cr_assert_eq(eg_parse_int64("101", 0, 100, &v), EG_EINVAL);
    cr_assert_eq(eg_parse_int64("-1", 0, 100, &v), EG_EINVAL);
    cr_assert_eq(eg_parse_int64("", 0, 100, &v), EG_EINVAL);
    cr_assert_eq(eg_parse_int64("-", 0, 100, &v), EG_EINVAL);
    cr_assert_eq(eg_parse_int64(" 1", 0, 100, &v), EG_EINVAL);
    cr_assert_eq(eg_parse_int64("1 ", 0, 100, &v), EG_EINVAL);
    cr_assert_eq(eg_parse_int64("12a", 0, 100, &v), EG_EINVAL);
    cr_assert_eq(eg_parse_int64("0x10", 0, 100, &v), EG_EINVAL);
    cr_assert_eq(eg_parse_int64(NULL, 0, 100, &v), EG_EINVAL);
    cr_assert_eq(v, 7, "failed parses leave the output alone");
}

Test(util, parse_size)
{
    size_t v;

    cr_assert_eq(eg_parse_size("16384", &v), 0);
    cr_assert_eq(v, 16384);
    cr_assert_eq(eg_parse_size("16k", &v), 0);
    cr_assert_eq(v, 16384);
    cr_assert_eq(eg_parse_size("16K", &v), 0);
    cr_assert_eq(v, 16384);
    cr_assert_eq(eg_parse_size("10m", &v), 0);
    cr_assert_eq(v, 10u << 20);
    cr_assert_eq(eg_parse_size("1g", &v), 0);
    cr_assert_eq(v, (size_t)1 << 30);
    cr_assert_eq(eg_parse_size("2MB", &v), 0);
    cr_assert_eq(v, 2u << 20);
    cr_assert_eq(eg_parse_size("4KiB", &v), 0);
    cr_assert_eq(v, 4096);
    cr_assert_eq(eg_parse_size("0", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(eg_parse_size("", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_size("k", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_size("-1", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_size("1x", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_size("1.5k", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_size(" 1k", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_size("1kk", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_size("99999999999999999999999", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_size("17179869184g", &v), EG_EINVAL); /* 2^34 GiB overflows */
    cr_assert_eq(eg_parse_size(NULL, &v), EG_EINVAL);
}

Test(util, parse_duration)
{
    uint64_t v;

    cr_assert_eq(eg_parse_duration_ms("30", &v), 0);
    cr_assert_eq(v, 30000);
    cr_assert_eq(eg_parse_duration_ms("500ms", &v), 0);
    cr_assert_eq(v, 500);
    cr_assert_eq(eg_parse_duration_ms("30s", &v), 0);
    cr_assert_eq(v, 30000);
    cr_assert_eq(eg_parse_duration_ms("5m", &v), 0);
    cr_assert_eq(v, 300000);
    cr_assert_eq(eg_parse_duration_ms("1h", &v), 0);
    cr_assert_eq(v, 3600000);
    cr_assert_eq(eg_parse_duration_ms("0", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(eg_parse_duration_ms("", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_duration_ms("ms", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_duration_ms("1x", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_duration_ms("-1s", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_duration_ms("1.5s", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_duration_ms("1 s", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_duration_ms("10ss", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_duration_ms("18446744073709551615h", &v), EG_EINVAL);
    cr_assert_eq(eg_parse_duration_ms(NULL, &v), EG_EINVAL);
}

static void check_decode(const char *in, bool plus, const char *want, size_t want_len)
{
    char buf[64];
    size_t len = 999;

    snprintf(buf, sizeof(buf), "%s", in);
    cr_assert_eq(eg_percent_decode(buf, plus, &len), 0, "decoding %s", in);
    cr_assert_eq(len, want_len, "length of %s", in);
    cr_assert_eq(memcmp(buf, want, want_len + 1), 0, "decoding %s", in);
}

static void check_decode_fails(const char *in)
{
    char buf[64];

    snprintf(buf, sizeof(buf), "%s", in);
    cr_assert_eq(eg_percent_decode(buf, true, NULL), EG_EINVAL, "%s should fail", in);
    cr_assert_str_eq(buf, in, "rejected input must be left untouched");
}

Test(util, percent_decode)
{
    check_decode("", false, "", 0);
    check_decode("plain", false, "plain", 5);
    check_decode("a%20b", false, "a b", 3);
    check_decode("%2f%2F", false, "//", 2);
    check_decode("%41%62%7e", false, "Ab~", 3);
    check_decode("a+b", true, "a b", 3);
    check_decode("a+b", false, "a+b", 3);
    check_decode("%2B", true, "+", 1);      /* an escaped plus stays a plus */
    check_decode("%2541", false, "%41", 3); /* decoded once, never twice */
    check_decode("%C3%A9", false, "\xc3\xa9", 2);
    check_decode("end%21", false, "end!", 4);

    check_decode_fails("%");
    check_decode_fails("abc%");
    check_decode_fails("%2");
    check_decode_fails("abc%4");
    check_decode_fails("%zz");
    check_decode_fails("%g1");
    check_decode_fails("%1g");
    check_decode_fails("%%41");
    check_decode_fails("%00");
    check_decode_fails("a%00b");
}

Test(util, percent_decode_null_len)
{
    char buf[] = "x%20y";

    cr_assert_eq(eg_percent_decode(buf, false, NULL), 0);
    cr_assert_str_eq(buf, "x y");
}

Test(util, macros)
{
    struct outer {
        int a;
        int b;
    } o;
    int arr[7];

    cr_assert_eq(EG_ARRAY_SIZE(arr), 7);
    cr_assert_eq(EG_MIN(3, 5), 3);
    cr_assert_eq(EG_MAX(3, 5), 5);
    cr_assert_eq(EG_CONTAINER_OF(&o.b, struct outer, b), &o);
}

Test(util, percent_decode_without_escapes_does_not_write)
{
    /* String literals live in read-only memory: any write would crash the test. */
    size_t len = 0;

    cr_assert_eq(eg_percent_decode((char *)"", true, &len), 0);
    cr_assert_eq(len, 0);
    cr_assert_eq(eg_percent_decode((char *)"plain-text", true, &len), 0);
    cr_assert_eq(len, 10);
    cr_assert_eq(eg_percent_decode((char *)"a+b", false, &len), 0);
    cr_assert_eq(len, 3);
}

Test(util, time_iso_us)
{
    char out[32];

    eg_time_iso_us(INT64_C(1712595747887295), out);
    cr_assert_str_eq(out, "2024-04-08T17:02:27.887295Z");
    eg_time_iso_us(0, out);
    cr_assert_str_eq(out, "1970-01-01T00:00:00.000000Z");
    eg_time_iso_us(-1, out); /* floor: the microsecond before the epoch */
    cr_assert_str_eq(out, "1969-12-31T23:59:59.999999Z");
    cr_assert(eg_now_us() / 1000 - eg_now_ms() <= 1);
}

Test(util, hexid)
{
    char a[40], b[40];

    eg_random_init();
    eg_hexid_new("mem", a, sizeof(a));
    eg_hexid_new("mem", b, sizeof(b));
    cr_assert_eq(strlen(a), 36);
    cr_assert_str_neq(a, b);
    cr_assert(eg_hexid_valid(a, "mem"));
    cr_assert_not(eg_hexid_valid(a, "mty"));
    cr_assert_not(eg_hexid_valid(a, "me"));
    cr_assert(eg_hexid_valid("ata_0123456789abcdef0123456789abcdef", "ata"));
    cr_assert_not(eg_hexid_valid("ata_0123456789abcdef0123456789abcdeF", "ata"));
    cr_assert_not(eg_hexid_valid("ata_0123456789abcdef0123456789abcde", "ata"));
    cr_assert_not(eg_hexid_valid("ata_0123456789abcdef0123456789abcdef0", "ata"));
    cr_assert_not(eg_hexid_valid(NULL, "ata"));
}
