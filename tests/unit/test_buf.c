/* Growable buffer and JSON string escaping. */
#include <criterion/criterion.h>
#include <string.h>

#include "engram/buf.h"

Test(buf, append_puts_printf)
{
    eg_buf_t b = EG_BUF_INIT;

    eg_buf_append(&b, "ab", 2);
    eg_buf_puts(&b, "cd");
    eg_buf_printf(&b, "-%d-%s", 42, "x");
    cr_assert_eq(b.len, 9);
    cr_assert_str_eq(b.data, "abcd-42-x");
    cr_assert_gt(b.cap, b.len);
    eg_buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
}

Test(buf, printf_larger_than_capacity)
{
    eg_buf_t b = EG_BUF_INIT;
    char big[10000];

    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    eg_buf_puts(&b, "[");
    eg_buf_printf(&b, "%s]", big);
    cr_assert_eq(b.len, sizeof(big) + 1);
    cr_assert_eq(b.data[0], '[');
    cr_assert_eq(b.data[b.len - 1], ']');
    cr_assert_eq(b.data[b.len], '\0');
    eg_buf_free(&b);
}

Test(buf, reserve_keeps_length)
{
    eg_buf_t b = EG_BUF_INIT;

    eg_buf_reserve(&b, 0);
    cr_assert_not_null(b.data);
    cr_assert_str_eq(b.data, "");
    eg_buf_puts(&b, "abc");
    eg_buf_reserve(&b, 5000);
    cr_assert_eq(b.len, 3);
    cr_assert_geq(b.cap, 5004);
    cr_assert_str_eq(b.data, "abc");
    eg_buf_free(&b);
}

Test(buf, binary_append)
{
    eg_buf_t b = EG_BUF_INIT;

    eg_buf_append(&b, "a\0b", 3);
    cr_assert_eq(b.len, 3);
    cr_assert_eq(memcmp(b.data, "a\0b", 3), 0);
    cr_assert_eq(b.data[3], '\0');
    eg_buf_free(&b);
}

Test(buf, consume_and_clear)
{
    eg_buf_t b = EG_BUF_INIT;
    size_t cap;

    eg_buf_puts(&b, "hello world");
    eg_buf_consume(&b, 6);
    cr_assert_str_eq(b.data, "world");
    cr_assert_eq(b.len, 5);
    eg_buf_consume(&b, 0);
    cr_assert_str_eq(b.data, "world");
    eg_buf_consume(&b, 5);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.data, "");
    eg_buf_puts(&b, "again");
    cap = b.cap;
    eg_buf_clear(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, cap);
    cr_assert_str_eq(b.data, "");
    eg_buf_free(&b);
}

static void check_json(const char *in, const char *want)
{
    eg_buf_t b = EG_BUF_INIT;

    eg_buf_json_str(&b, in);
    cr_assert_str_eq(b.data, want);
    cr_assert_eq(b.len, strlen(want));
    eg_buf_free(&b);
}

Test(buf, json_str_plain_and_quotes)
{
    check_json("", "\"\"");
    check_json("hello", "\"hello\"");
    check_json("say \"hi\"", "\"say \\\"hi\\\"\"");
    check_json("a\\b", "\"a\\\\b\"");
    check_json("/path", "\"/path\"");
    check_json(NULL, "null");
}

Test(buf, json_str_control_chars)
{
    check_json("a\nb\rc\td", "\"a\\nb\\rc\\td\"");
    check_json("\b\f", "\"\\b\\f\"");
    check_json("\x01\x1f", "\"\\u0001\\u001f\"");
    check_json("\x7f", "\"\x7f\"");
}

Test(buf, json_str_utf8)
{
    /* Valid multi-byte sequences pass through unchanged. */
    check_json("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80",
               "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* Invalid bytes become U+FFFD so the output stays valid JSON. */
    check_json("a\xffz", "\"a\\ufffdz\"");
    check_json("\xc3", "\"\\ufffd\"");                                  /* truncated */
    check_json("\xc0\xaf", "\"\\ufffd\\ufffd\"");                       /* overlong '/' */
    check_json("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate */
    check_json("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
}

Test(buf, json_str_appends)
{
    eg_buf_t b = EG_BUF_INIT;

    eg_buf_puts(&b, "{\"k\":");
    eg_buf_json_str(&b, "v");
    eg_buf_puts(&b, "}");
    cr_assert_str_eq(b.data, "{\"k\":\"v\"}");
    eg_buf_free(&b);
}

/* log.c has no test executable of its own in tests/meson.build; its whole job is to emit
 * eg_buf_json_str-escaped lines, so it is checked here. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engram/error.h"
#include "engram/log.h"

/* Run fn with stderr redirected to a temporary file and return what it wrote. */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/eg_log_XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    char *out = calloc(1, 4096);
    ssize_t n;

    cr_assert_geq(fd, 0);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(fd, out, 4095, 0);
    cr_assert_geq(n, 0);
    close(fd);
    unlink(path);
    return out;
}

static void log_some(void)
{
    eg_log_set_level(EG_LOG_INFO);
    eg_log_debug("hidden %d", 1);
    eg_log_info("say \"%s\"\n\x01 \xc3\xa9", "hi");
    eg_log_json(EG_LOG_INFO, "{\"a\":1}garbage", 7);
    eg_log_json(EG_LOG_DEBUG, "{\"b\":2}", 7);
    eg_log_set_level(EG_LOG_OFF);
    eg_log_error("also hidden");
    eg_log_set_level(EG_LOG_INFO);
}

Test(log, lines_are_json)
{
    char *out = capture_stderr(log_some);
    const char *msg = ",\"level\":\"info\",\"msg\":\"say \\\"hi\\\"\\n\\u0001 \xc3\xa9\"}\n";
    char *nl;

    cr_assert(strncmp(out, "{\"time\":\"", 9) == 0, "%s", out);
    /* {"time":"2026-11-23T08:56:39.123Z" is 34 characters, then the rest of the line. */
    cr_assert_eq(out[9 + 24], '"', "%s", out);
    cr_assert_eq(out[9 + 23], 'Z', "%s", out);
    cr_assert(strncmp(out + 34, msg, strlen(msg)) == 0, "%s", out);
    nl = strchr(out, '\n');
    cr_assert_str_eq(nl + 1, "{\"a\":1}\n");
    cr_assert_null(strstr(out, "hidden"));
    cr_assert_null(strstr(out, "\"b\""));
    free(out);
}

Test(log, levels)
{
    eg_log_level_t l;

    cr_assert_eq(eg_log_parse_level("debug", &l), 0);
    cr_assert_eq(l, EG_LOG_DEBUG);
    cr_assert_eq(eg_log_parse_level("INFO", &l), 0);
    cr_assert_eq(l, EG_LOG_INFO);
    cr_assert_eq(eg_log_parse_level("warn", &l), 0);
    cr_assert_eq(l, EG_LOG_WARN);
    cr_assert_eq(eg_log_parse_level("warning", &l), 0);
    cr_assert_eq(l, EG_LOG_WARN);
    cr_assert_eq(eg_log_parse_level("error", &l), 0);
    cr_assert_eq(l, EG_LOG_ERROR);
    cr_assert_eq(eg_log_parse_level("off", &l), 0);
    cr_assert_eq(l, EG_LOG_OFF);
    cr_assert_eq(eg_log_parse_level("trace", &l), EG_EINVAL);
    cr_assert_eq(eg_log_parse_level("", &l), EG_EINVAL);
    cr_assert_eq(eg_log_parse_level(NULL, &l), EG_EINVAL);
    eg_log_set_level(EG_LOG_WARN);
    cr_assert_eq(eg_log_get_level(), EG_LOG_WARN);
}
