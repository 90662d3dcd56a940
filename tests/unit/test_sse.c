/* SSE encoding: exact bytes for each field, and round trips through a parser written from the
 * WHATWG event-stream interpretation rules (what a browser's EventSource does). */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/sse.h"
#include "engram/util.h"

/* ---- reference parser (HTML §9.2.6) ------------------------------------------------------ */

typedef struct parsed_s {
    int nevents;
    char type[8][64];
    eg_buf_t data[8];
    char last_id[64]; /* the last event id buffer after the stream */
    long retry;
} parsed_t;

static void parse_stream(const char *s, size_t n, parsed_t *out)
{
    eg_buf_t data = EG_BUF_INIT, event = EG_BUF_INIT;
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    out->retry = -1;
    while (i < n) {
        size_t start = i, end;
        while (i < n && s[i] != '\r' && s[i] != '\n')
            i++;
        cr_assert_lt(i, n, "stream must end with a line break");
        end = i;
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
            i++;
        i++;

        const char *line = s + start;
        size_t len = end - start;
        if (len == 0) { /* dispatch */
            if (data.len == 0) {
                eg_buf_clear(&event);
                continue;
            }
            if (data.data[data.len - 1] == '\n')
                data.data[--data.len] = '\0';
            cr_assert_lt(out->nevents, 8);
            snprintf(out->type[out->nevents], 64, "%s", event.len ? event.data : "message");
            eg_buf_append(&out->data[out->nevents], data.data, data.len);
            out->nevents++;
            eg_buf_clear(&data);
            eg_buf_clear(&event);
            continue;
        }
        if (line[0] == ':')
            continue;
        const char *colon = memchr(line, ':', len);
        size_t flen = colon ? (size_t)(colon - line) : len;
        const char *v = colon ? colon + 1 : line + len;
        size_t vlen = (size_t)(line + len - v);
        if (vlen && *v == ' ')
            v++, vlen--;
        if (flen == 5 && memcmp(line, "event", 5) == 0) {
            eg_buf_clear(&event);
            eg_buf_append(&event, v, vlen);
        } else if (flen == 4 && memcmp(line, "data", 4) == 0) {
            eg_buf_append(&data, v, vlen);
            eg_buf_append(&data, "\n", 1);
        } else if (flen == 2 && memcmp(line, "id", 2) == 0) {
            if (!memchr(v, '\0', vlen))
                snprintf(out->last_id, sizeof(out->last_id), "%.*s", (int)vlen, v);
        } else if (flen == 5 && memcmp(line, "retry", 5) == 0) {
            out->retry = strtol(v, NULL, 10);
        }
    }
    eg_buf_free(&data);
    eg_buf_free(&event);
}

static void parsed_free(parsed_t *p)
{
    for (int i = 0; i < 8; i++)
        eg_buf_free(&p->data[i]);
}

/* ---- encoding ---------------------------------------------------------------------------- */

Test(sse, data_only)
{
    eg_buf_t b = EG_BUF_INIT;
    cr_assert_eq(eg_sse_encode_data(&b, NULL, "hello"), 0);
    cr_assert_str_eq(b.data, "data: hello\n\n");
    eg_buf_free(&b);
}

Test(sse, all_fields)
{
    eg_buf_t b = EG_BUF_INIT;
    eg_sse_event_t ev = {.id = "evt_7",
                         .event = "memory.created",
                         .data = "{\"a\":1}",
                         .data_len = 7,
                         .retry_ms = 3000};
    parsed_t p;

    cr_assert_eq(eg_sse_encode(&b, &ev), 0);
    cr_assert_str_eq(b.data, "id: evt_7\nevent: memory.created\nretry: 3000\ndata: {\"a\":1}\n\n");
    parse_stream(b.data, b.len, &p);
    cr_assert_eq(p.nevents, 1);
    cr_assert_str_eq(p.type[0], "memory.created");
    cr_assert_str_eq(p.data[0].data, "{\"a\":1}");
    cr_assert_str_eq(p.last_id, "evt_7");
    cr_assert_eq(p.retry, 3000);
    parsed_free(&p);
    eg_buf_free(&b);
}

static void expect_encoding(const char *data, size_t n, const char *want, const char *back)
{
    eg_buf_t b = EG_BUF_INIT;
    eg_sse_event_t ev = {.data = data, .data_len = n, .retry_ms = -1};
    parsed_t p;

    cr_assert_eq(eg_sse_encode(&b, &ev), 0);
    cr_assert_str_eq(b.data, want);
    parse_stream(b.data, b.len, &p);
    cr_assert_eq(p.nevents, 1);
    cr_assert_str_eq(p.type[0], "message");
    cr_assert_eq(p.data[0].len, strlen(back));
    cr_assert_str_eq(p.data[0].len ? p.data[0].data : "", back);
    parsed_free(&p);
    eg_buf_free(&b);
}

Test(sse, multiline_data)
{
    expect_encoding("a\nb", 3, "data: a\ndata: b\n\n", "a\nb");
    expect_encoding("a\r\nb", 4, "data: a\ndata: b\n\n", "a\nb");
    expect_encoding("a\rb", 3, "data: a\ndata: b\n\n", "a\nb");
    expect_encoding("a\n\nb", 4, "data: a\ndata:\ndata: b\n\n", "a\n\nb");
    expect_encoding("a\r\rb", 4, "data: a\ndata:\ndata: b\n\n", "a\n\nb");
    expect_encoding("a\n\r\nb", 5, "data: a\ndata:\ndata: b\n\n", "a\n\nb");
    expect_encoding("a\n", 2, "data: a\ndata:\n\n", "a\n");
    expect_encoding("\na", 2, "data:\ndata: a\n\n", "\na");
    expect_encoding("\r\n", 2, "data:\ndata:\n\n", "\n");
    expect_encoding("\r\n\r\n", 4, "data:\ndata:\ndata:\n\n", "\n\n");
    /* A value that starts with a space keeps it (the client strips only ours). */
    expect_encoding(" x", 2, "data:  x\n\n", " x");
    /* Colons in data are data. */
    expect_encoding("a: b", 4, "data: a: b\n\n", "a: b");
    /* Empty data still dispatches an (empty) event. */
    expect_encoding("", 0, "data:\n\n", "");
    /* data_len, not strlen, bounds the data. */
    expect_encoding("abcdef", 3, "data: abc\n\n", "abc");
}

Test(sse, no_data_sets_id_only)
{
    eg_buf_t b = EG_BUF_INIT;
    eg_sse_event_t ev = {.id = "42", .retry_ms = -1};
    parsed_t p;

    cr_assert_eq(eg_sse_encode(&b, &ev), 0);
    cr_assert_str_eq(b.data, "id: 42\n\n");
    parse_stream(b.data, b.len, &p);
    cr_assert_eq(p.nevents, 0);
    cr_assert_str_eq(p.last_id, "42");
    parsed_free(&p);
    eg_buf_free(&b);

    /* retry 0 is a value, not "absent". */
    eg_sse_event_t ev2 = {.retry_ms = 0};
    cr_assert_eq(eg_sse_encode(&b, &ev2), 0);
    cr_assert_str_eq(b.data, "retry: 0\n\n");
    eg_buf_free(&b);
}

Test(sse, rejects_line_breaks_in_id_and_event)
{
    eg_buf_t b = EG_BUF_INIT;
    eg_sse_event_t bad[] = {
        {.id = "1\n2", .data = "x", .data_len = 1, .retry_ms = -1},
        {.id = "1\r", .data = "x", .data_len = 1, .retry_ms = -1},
        {.event = "a\nevent: b", .data = "x", .data_len = 1, .retry_ms = -1},
        {.event = "a\rb", .data = "x", .data_len = 1, .retry_ms = -1},
        {.event = "", .data = "x", .data_len = 1, .retry_ms = -1},
    };

    eg_buf_puts(&b, "keep");
    for (size_t i = 0; i < EG_ARRAY_SIZE(bad); i++) {
        cr_assert_eq(eg_sse_encode(&b, &bad[i]), EG_EINVAL, "case %zu", i);
        cr_assert_str_eq(b.data, "keep", "nothing appended on error");
    }
    cr_assert_eq(eg_sse_encode_data(&b, "x\ny", "z"), EG_EINVAL);
    eg_buf_free(&b);
}

Test(sse, comments)
{
    eg_buf_t b = EG_BUF_INIT;
    parsed_t p;

    eg_sse_encode_comment(&b, "ping");
    cr_assert_str_eq(b.data, ": ping\n\n");
    eg_buf_clear(&b);
    eg_sse_encode_comment(&b, NULL);
    cr_assert_str_eq(b.data, ":\n\n");
    eg_buf_clear(&b);
    eg_sse_encode_comment(&b, "a\nb\r\ndata: not data");
    cr_assert_str_eq(b.data, ": a\n: b\n: data: not data\n\n");
    parse_stream(b.data, b.len, &p);
    cr_assert_eq(p.nevents, 0);
    parsed_free(&p);
    eg_buf_free(&b);
}

Test(sse, stream_of_events)
{
    eg_buf_t b = EG_BUF_INIT;
    parsed_t p;

    eg_sse_encode_comment(&b, "ping");
    cr_assert_eq(eg_sse_encode_data(&b, "a", "one"), 0);
    eg_sse_encode_comment(&b, "ping");
    cr_assert_eq(eg_sse_encode_data(&b, NULL, "two\nlines"), 0);
    eg_sse_event_t ev = {.id = "3", .event = "b", .data = "three", .data_len = 5, .retry_ms = -1};
    cr_assert_eq(eg_sse_encode(&b, &ev), 0);
    parse_stream(b.data, b.len, &p);
    cr_assert_eq(p.nevents, 3);
    cr_assert_str_eq(p.type[0], "a");
    cr_assert_str_eq(p.data[0].data, "one");
    cr_assert_str_eq(p.type[1], "message");
    cr_assert_str_eq(p.data[1].data, "two\nlines");
    cr_assert_str_eq(p.type[2], "b");
    cr_assert_str_eq(p.last_id, "3");
    parsed_free(&p);
    eg_buf_free(&b);
}

Test(sse, random_round_trips)
{
    static const char *pieces[] = {"a", "b", " ", "\n", "\r", "\r\n", ":", "\xc3\xa9", "data:"};
    unsigned seed = 99;

    for (int round = 0; round < 2000; round++) {
        eg_buf_t in = EG_BUF_INIT, want = EG_BUF_INIT, b = EG_BUF_INIT;
        parsed_t p;
        seed = seed * 1103515245u + 12345u;
        int n = (int)((seed >> 16) % 12);
        for (int i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            eg_buf_puts(&in, pieces[(seed >> 16) % EG_ARRAY_SIZE(pieces)]);
        }
        /* What EventSource gives back: every CRLF and lone CR becomes LF. */
        for (size_t i = 0; i < in.len; i++) {
            if (in.data[i] == '\r') {
                eg_buf_append(&want, "\n", 1);
                if (i + 1 < in.len && in.data[i + 1] == '\n')
                    i++;
            } else {
                eg_buf_append(&want, in.data + i, 1);
            }
        }
        eg_sse_event_t ev = {.data = in.data ? in.data : "", .data_len = in.len, .retry_ms = -1};
        cr_assert_eq(eg_sse_encode(&b, &ev), 0);
        parse_stream(b.data, b.len, &p);
        cr_assert_eq(p.nevents, 1);
        cr_assert_eq(p.data[0].len, want.len, "round %d", round);
        if (want.len)
            cr_assert_eq(memcmp(p.data[0].data, want.data, want.len), 0, "round %d", round);
        parsed_free(&p);
        eg_buf_free(&in);
        eg_buf_free(&want);
        eg_buf_free(&b);
    }
}

/* ---- Last-Event-ID ----------------------------------------------------------------------- */

Test(sse, last_event_id)
{
    char out[EG_SSE_MAX_ID + 1];
    char small[4];
    char long_id[EG_SSE_MAX_ID + 2];

    cr_assert_eq(eg_sse_last_event_id(NULL, out, sizeof(out)), 0);
    cr_assert_str_eq(out, "");
    cr_assert_eq(eg_sse_last_event_id("  1700000000000-0 \t", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "1700000000000-0");
    cr_assert_eq(eg_sse_last_event_id(" \t ", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "");
    cr_assert_eq(eg_sse_last_event_id("a b", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "a b");
    cr_assert_eq(eg_sse_last_event_id("a\nb", out, sizeof(out)), EG_EINVAL);
    cr_assert_str_eq(out, "");
    cr_assert_eq(eg_sse_last_event_id("a\x01", out, sizeof(out)), EG_EINVAL);
    cr_assert_eq(eg_sse_last_event_id("a\x7f", out, sizeof(out)), EG_EINVAL);

    cr_assert_eq(eg_sse_last_event_id("abc", small, sizeof(small)), 0);
    cr_assert_str_eq(small, "abc");
    cr_assert_eq(eg_sse_last_event_id("abcd", small, sizeof(small)), EG_EINVAL);
    cr_assert_eq(eg_sse_last_event_id("abc", small, 0), EG_EINVAL);

    memset(long_id, 'x', EG_SSE_MAX_ID);
    long_id[EG_SSE_MAX_ID] = '\0';
    cr_assert_eq(eg_sse_last_event_id(long_id, out, sizeof(out)), 0);
    long_id[EG_SSE_MAX_ID] = 'x';
    long_id[EG_SSE_MAX_ID + 1] = '\0';
    cr_assert_eq(eg_sse_last_event_id(long_id, out, sizeof(out)), EG_EINVAL);
}
