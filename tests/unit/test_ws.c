/* WebSocket codec: RFC 6455 examples, handshake, reassembly across arbitrary splits, every
 * protocol error with its close code, UTF-8 edge cases, length classes and limits. */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/util.h"
#include "engram/ws.h"

/* ---- event recorder ---------------------------------------------------------------------- */

#define MAX_EVENTS 64

typedef struct ev_s {
    char kind; /* 'M' message, 'P' ping, 'O' pong, 'C' close */
    int arg;   /* opcode for messages, code for closes */
    char *data;
    size_t len;
} ev_t;

typedef struct rec_s {
    ev_t ev[MAX_EVENTS];
    int n;
    eg_ws_parser_t *p;
    int stop_at; /* call eg_ws_parser_stop after this many events (0: never) */
} rec_t;

static void push(rec_t *r, char kind, int arg, const char *data, size_t len)
{
    cr_assert_lt(r->n, MAX_EVENTS);
    cr_assert_not_null(data);
    cr_assert_eq(data[len], '\0', "payload must be NUL-terminated");
    ev_t *e = &r->ev[r->n++];
    e->kind = kind;
    e->arg = arg;
    e->data = malloc(len + 1);
    memcpy(e->data, data, len + 1);
    e->len = len;
    if (r->stop_at && r->n == r->stop_at)
        eg_ws_parser_stop(r->p);
}

static void on_message(void *u, eg_ws_opcode_t op, const char *data, size_t len)
{
    push(u, 'M', op, data, len);
}

static void on_ping(void *u, const char *data, size_t len)
{
    push(u, 'P', 0, data, len);
}

static void on_pong(void *u, const char *data, size_t len)
{
    push(u, 'O', 0, data, len);
}

static void on_close(void *u, int code, const char *reason, size_t len)
{
    push(u, 'C', code, reason, len);
}

static const eg_ws_callbacks_t cbs = {on_message, on_ping, on_pong, on_close};

static void rec_free(rec_t *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->ev[i].data);
    r->n = 0;
}

static void start(eg_ws_parser_t *p, rec_t *r, size_t max_frame, size_t max_message)
{
    eg_ws_limits_t lim = {max_frame, max_message};
    memset(r, 0, sizeof(*r));
    r->p = p;
    eg_ws_parser_init(p, &lim, &cbs, r);
}

/* Feed in pieces of chunk bytes; the first non-zero result, else 0. */
static int feed_chunks(eg_ws_parser_t *p, const void *data, size_t len, size_t chunk)
{
    const char *s = data;
    for (size_t off = 0; off < len; off += chunk) {
        int rc = eg_ws_parser_feed(p, s + off, EG_MIN(chunk, len - off));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const uint8_t mask_a[4] = {0x37, 0xfa, 0x21, 0x3d};
static const uint8_t mask_b[4] = {0xde, 0xad, 0xbe, 0xef};

static void masked(eg_buf_t *b, eg_ws_opcode_t op, bool fin, const char *s, size_t n)
{
    eg_ws_encode_masked(b, op, fin, s, n, mask_b);
}

/* Run raw bytes through a fresh parser; expect failure with code, and count events before. */
static void expect_error(const void *bytes, size_t len, int code, size_t max_frame,
                         size_t max_message)
{
    for (size_t chunk = 1; chunk <= len; chunk = chunk < len ? EG_MIN(chunk * 3, len) : len + 1) {
        eg_ws_parser_t p;
        rec_t r;
        const char *reason = NULL;
        start(&p, &r, max_frame, max_message);
        int rc = feed_chunks(&p, bytes, len, chunk);
        cr_assert_eq(rc, code == EG_WS_CLOSE_TOO_BIG ? EG_ETOOBIG : EG_EINVAL,
                     "chunk %zu: rc %d, expected close code %d", chunk, rc, code);
        cr_assert_eq(eg_ws_parser_error(&p, &reason), code, "chunk %zu: got %d want %d", chunk,
                     eg_ws_parser_error(&p, NULL), code);
        cr_assert_not_null(reason);
        cr_assert_gt(strlen(reason), 0);
        /* Stopped for good. */
        cr_assert_eq(eg_ws_parser_feed(&p, "\x81\x80\0\0\0\0", 6), rc);
        rec_free(&r);
        eg_ws_parser_free(&p);
    }
}

static void expect_error_buf(eg_buf_t *b, int code)
{
    expect_error(b->data, b->len, code, 0, 0);
    eg_buf_free(b);
}

/* ---- handshake --------------------------------------------------------------------------- */

Test(ws, accept_key_rfc_example)
{
    char out[EG_WS_ACCEPT_LEN + 1];
    cr_assert_eq(eg_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* Surrounding whitespace of the header value is not part of the key. */
    cr_assert_eq(eg_ws_accept_key("  dGhlIHNhbXBsZSBub25jZQ==\t", out), 0);
    cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws, handshake_response_bytes)
{
    eg_buf_t b = EG_BUF_INIT;
    cr_assert_eq(eg_ws_handshake_response(&b, "dGhlIHNhbXBsZSBub25jZQ==", NULL), 0);
    cr_assert_str_eq(b.data, "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    eg_buf_clear(&b);
    cr_assert_eq(eg_ws_handshake_response(&b, "dGhlIHNhbXBsZSBub25jZQ==", "chat"), 0);
    cr_assert_str_eq(b.data, "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                             "Sec-WebSocket-Protocol: chat\r\n\r\n");
    eg_buf_clear(&b);
    cr_assert_eq(eg_ws_handshake_response(&b, "dGhlIHNhbXBsZSBub25jZQ==", "a\r\nX: y"), EG_EINVAL);
    cr_assert_eq(eg_ws_handshake_response(&b, "dGhlIHNhbXBsZSBub25jZQ==", ""), EG_EINVAL);
    cr_assert_eq(eg_ws_handshake_response(&b, "dGhlIHNhbXBsZSBub25jZQ==", "a b"), EG_EINVAL);
    cr_assert_eq(b.len, 0);
    eg_buf_free(&b);
}

static void hs_expect(const char *up, const char *conn, const char *ver, const char *key,
                      int status, const char *needle)
{
    eg_ws_hs_error_t err = {0, NULL};
    int rc = eg_ws_handshake_check_values(up, conn, ver, key, &err);
    if (status == 0) {
        cr_assert_eq(rc, 0, "unexpected failure: %s", err.message ? err.message : "");
        return;
    }
    cr_assert_eq(rc, EG_EINVAL);
    cr_assert_eq(err.status, status, "status %d want %d (%s)", err.status, status, err.message);
    cr_assert(strstr(err.message, needle), "message '%s' lacks '%s'", err.message, needle);
    /* err may be NULL. */
    cr_assert_eq(eg_ws_handshake_check_values(up, conn, ver, key, NULL), EG_EINVAL);
}

Test(ws, handshake_check_values)
{
    const char *k = "dGhlIHNhbXBsZSBub25jZQ==";

    hs_expect("websocket", "Upgrade", "13", k, 0, NULL);
    hs_expect("WebSocket", "keep-alive, Upgrade", "13", k, 0, NULL);
    hs_expect("websocket", "keep-alive,upgrade", " 13 ", k, 0, NULL);
    hs_expect("h2c, websocket", "UPGRADE\t, close", "13",
              " "
              "AAAAAAAAAAAAAAAAAAAAAA==",
              0, NULL);

    hs_expect(NULL, "Upgrade", "13", k, 426, "Upgrade");
    hs_expect("h2c", "Upgrade", "13", k, 426, "Upgrade: websocket");
    hs_expect("websocketx", "Upgrade", "13", k, 426, "websocket");
    hs_expect("websocket", NULL, "13", k, 400, "Connection");
    hs_expect("websocket", "keep-alive", "13", k, 400, "Connection");
    hs_expect("websocket", "upgraded", "13", k, 400, "Connection");
    hs_expect("websocket", "Upgrade", NULL, k, 400, "missing Sec-WebSocket-Version");
    hs_expect("websocket", "Upgrade", "8", k, 426, "only 13");
    hs_expect("websocket", "Upgrade", "13, 8", k, 426, "Sec-WebSocket-Version");
    hs_expect("websocket", "Upgrade", "", k, 426, "Sec-WebSocket-Version");
    hs_expect("websocket", "Upgrade", "13", NULL, 400, "missing Sec-WebSocket-Key");
    hs_expect("websocket", "Upgrade", "13", "", 400, "16 bytes");
    hs_expect("websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ=", 400, "16 bytes");
    hs_expect("websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ", 400, "16 bytes");
    hs_expect("websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==AAAA", 400, "16 bytes");
    hs_expect("websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25j*Q==", 400, "16 bytes");
    hs_expect("websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQA=", 400, "16 bytes");
    /* base64 of 15 or 17 bytes. */
    hs_expect("websocket", "Upgrade", "13", "AAAAAAAAAAAAAAAAAAAA", 400, "16 bytes");
    hs_expect("websocket", "Upgrade", "13", "AAAAAAAAAAAAAAAAAAAAAAA=", 400, "16 bytes");
}

typedef struct hdrs_s {
    const char *names[8];
    const char *values[8];
} hdrs_t;

static const char *lookup(void *u, const char *name)
{
    hdrs_t *h = u;
    for (int i = 0; i < 8 && h->names[i]; i++)
        if (strcasecmp(h->names[i], name) == 0)
            return h->values[i];
    return NULL;
}

Test(ws, handshake_check_lookup)
{
    hdrs_t h = {{"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version"},
                {"x", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "13"}};
    eg_ws_hs_error_t err;

    cr_assert_eq(eg_ws_handshake_check(lookup, &h, &err), 0);
    h.values[4] = "12";
    cr_assert_eq(eg_ws_handshake_check(lookup, &h, &err), EG_EINVAL);
    cr_assert_eq(err.status, 426);
}

/* ---- RFC 6455 §5.7 examples -------------------------------------------------------------- */

Test(ws, rfc_masked_hello)
{
    static const uint8_t frame[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    eg_ws_parser_t p;
    rec_t r;

    start(&p, &r, 0, 0);
    cr_assert_eq(eg_ws_parser_feed(&p, frame, sizeof(frame)), 0);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.ev[0].kind, 'M');
    cr_assert_eq(r.ev[0].arg, EG_WS_OP_TEXT);
    cr_assert_str_eq(r.ev[0].data, "Hello");
    rec_free(&r);
    eg_ws_parser_free(&p);

    /* Our client-side encoder produces exactly the RFC bytes. */
    eg_buf_t b = EG_BUF_INIT;
    eg_ws_encode_masked(&b, EG_WS_OP_TEXT, true, "Hello", 5, mask_a);
    cr_assert_eq(b.len, sizeof(frame));
    cr_assert_eq(memcmp(b.data, frame, sizeof(frame)), 0);
    eg_buf_free(&b);
}

Test(ws, rfc_unmasked_hello_is_refused_and_encoded)
{
    static const uint8_t frame[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    eg_buf_t b = EG_BUF_INIT;

    /* A server must fail an unmasked client frame with 1002. */
    expect_error(frame, sizeof(frame), EG_WS_CLOSE_PROTOCOL, 0, 0);
    eg_ws_encode_text(&b, "Hello", 5);
    cr_assert_eq(b.len, sizeof(frame));
    cr_assert_eq(memcmp(b.data, frame, sizeof(frame)), 0);
    eg_buf_free(&b);
}

Test(ws, rfc_fragmented_hello)
{
    /* §5.7 "0x01 0x03 0x48 0x65 0x6c" + "0x80 0x02 0x6c 0x6f", masked as a client must. */
    eg_buf_t b = EG_BUF_INIT;
    eg_ws_parser_t p;
    rec_t r;

    eg_ws_encode_masked(&b, EG_WS_OP_TEXT, false, "Hel", 3, mask_a);
    cr_assert_eq((uint8_t)b.data[0], 0x01);
    cr_assert_eq((uint8_t)b.data[1], 0x83);
    eg_ws_encode_masked(&b, EG_WS_OP_CONT, true, "lo", 2, mask_b);
    cr_assert_eq((uint8_t)b.data[9], 0x80);
    start(&p, &r, 0, 0);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.ev[0].data, "Hello");
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_free(&b);
}

Test(ws, rfc_ping_pong)
{
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    eg_buf_t b = EG_BUF_INIT;
    eg_ws_parser_t p;
    rec_t r;

    cr_assert_eq(eg_ws_encode_ping(&b, "Hello", 5), 0);
    cr_assert_eq(b.len, sizeof(ping));
    cr_assert_eq(memcmp(b.data, ping, sizeof(ping)), 0);
    eg_buf_clear(&b);
    cr_assert_eq(eg_ws_encode_pong(&b, "Hello", 5), 0);
    cr_assert_eq((uint8_t)b.data[0], 0x8a);

    start(&p, &r, 0, 0);
    cr_assert_eq(eg_ws_parser_feed(&p, pong, sizeof(pong)), 0);
    eg_buf_clear(&b);
    eg_ws_encode_masked(&b, EG_WS_OP_PING, true, "", 0, mask_a);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.ev[0].kind, 'O');
    cr_assert_str_eq(r.ev[0].data, "Hello");
    cr_assert_eq(r.ev[1].kind, 'P');
    cr_assert_eq(r.ev[1].len, 0);
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_free(&b);
}

Test(ws, rfc_length_examples)
{
    /* "256 bytes binary message in a single unmasked frame: 0x82 0x7E 0x0100" and "64KiB ...
     * 0x82 0x7F 0x0000000000010000". */
    static const uint8_t h256[] = {0x82, 0x7e, 0x01, 0x00};
    static const uint8_t h64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    char *big = calloc(1, 65536);
    eg_buf_t b = EG_BUF_INIT;

    eg_ws_encode_binary(&b, big, 256);
    cr_assert_eq(b.len, 4 + 256);
    cr_assert_eq(memcmp(b.data, h256, 4), 0);
    eg_buf_clear(&b);
    eg_ws_encode_binary(&b, big, 65536);
    cr_assert_eq(b.len, 10 + 65536);
    cr_assert_eq(memcmp(b.data, h64k, 10), 0);
    eg_buf_free(&b);
    free(big);
}

/* ---- encoder ----------------------------------------------------------------------------- */

Test(ws, encoder_length_classes)
{
    static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    static const size_t hdr[] = {2, 2, 2, 4, 4, 4, 10, 10};
    char *data = malloc(70000);

    for (size_t i = 0; i < 70000; i++)
        data[i] = (char)(i * 7);
    for (size_t i = 0; i < EG_ARRAY_SIZE(lens); i++) {
        eg_buf_t b = EG_BUF_INIT;
        eg_ws_parser_t p;
        rec_t r;
        const uint8_t *h;

        eg_ws_encode_binary(&b, data, lens[i]);
        h = (const uint8_t *)b.data;
        cr_assert_eq(b.len, hdr[i] + lens[i], "len %zu", lens[i]);
        cr_assert_eq(h[0], 0x82);
        if (hdr[i] == 2) {
            cr_assert_eq(h[1], lens[i]);
        } else if (hdr[i] == 4) {
            cr_assert_eq(h[1], 126);
            cr_assert_eq((size_t)(h[2] << 8 | h[3]), lens[i]);
        } else {
            uint64_t l = 0;
            cr_assert_eq(h[1], 127);
            for (int j = 0; j < 8; j++)
                l = l << 8 | h[2 + j];
            cr_assert_eq(l, lens[i]);
        }
        cr_assert_eq(memcmp(b.data + hdr[i], data, lens[i]), 0);

        /* eg_ws_encode_header gives the same header on its own. */
        eg_buf_t hb = EG_BUF_INIT;
        eg_ws_encode_header(&hb, EG_WS_OP_BINARY, true, lens[i]);
        cr_assert_eq(hb.len, hdr[i]);
        cr_assert_eq(memcmp(hb.data, b.data, hdr[i]), 0);
        eg_buf_free(&hb);

        /* The masked twin of each length class parses back to the same bytes. */
        eg_buf_clear(&b);
        eg_ws_encode_masked(&b, EG_WS_OP_BINARY, true, data, lens[i], mask_b);
        cr_assert_eq(b.len, hdr[i] + 4 + lens[i]);
        start(&p, &r, 0, 0);
        cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
        cr_assert_eq(r.n, 1);
        cr_assert_eq(r.ev[0].arg, EG_WS_OP_BINARY);
        cr_assert_eq(r.ev[0].len, lens[i]);
        cr_assert_eq(memcmp(r.ev[0].data, data, lens[i]), 0);
        rec_free(&r);
        eg_ws_parser_free(&p);
        eg_buf_free(&b);
    }
    free(data);
}

/* A shared frame holds the same bytes the buffer encoder writes, for every length class, and
 * lives until its last reference goes (ASan reports a leak or a use after free otherwise). */
Test(ws, shared_frame)
{
    static const size_t lens[] = {0, 1, 125, 126, 65535, 65536, 70000};
    char *data = malloc(70000);

    for (size_t i = 0; i < 70000; i++)
        data[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < EG_ARRAY_SIZE(lens); i++) {
        eg_buf_t b = EG_BUF_INIT;
        eg_ws_frame_t *f = eg_ws_frame_new(EG_WS_OP_TEXT, data, lens[i]);

        eg_ws_encode_text(&b, data, lens[i]);
        cr_assert_eq(f->refs, 1);
        cr_assert_eq(f->len, b.len, "len %zu", lens[i]);
        cr_assert_eq(memcmp(f->data, b.data, b.len), 0);
        cr_assert_eq(eg_ws_frame_ref(f), f);
        cr_assert_eq(f->refs, 2);
        eg_ws_frame_unref(f);
        cr_assert_eq(f->refs, 1);
        eg_ws_frame_unref(f);
        eg_buf_free(&b);
    }
    eg_ws_frame_unref(NULL);
    free(data);
}

Test(ws, encoder_fragment_header)
{
    eg_buf_t b = EG_BUF_INIT;
    eg_ws_encode_header(&b, EG_WS_OP_TEXT, false, 3);
    eg_ws_encode_header(&b, EG_WS_OP_CONT, true, 0);
    cr_assert_eq(b.len, 4);
    cr_assert_eq(memcmp(b.data, "\x01\x03\x80\x00", 4), 0);
    eg_buf_free(&b);
}

Test(ws, encoder_control_limits)
{
    char big[126];
    eg_buf_t b = EG_BUF_INIT;

    memset(big, 'x', sizeof(big));
    cr_assert_eq(eg_ws_encode_ping(&b, big, 125), 0);
    cr_assert_eq(b.len, 127);
    eg_buf_clear(&b);
    cr_assert_eq(eg_ws_encode_ping(&b, big, 126), EG_EINVAL);
    cr_assert_eq(eg_ws_encode_pong(&b, big, 126), EG_EINVAL);
    cr_assert_eq(b.len, 0);
    eg_buf_free(&b);
}

Test(ws, encoder_close)
{
    eg_buf_t b = EG_BUF_INIT;

    cr_assert_eq(eg_ws_encode_close(&b, 0, "ignored"), 0);
    cr_assert_eq(b.len, 2);
    cr_assert_eq(memcmp(b.data, "\x88\x00", 2), 0);
    eg_buf_clear(&b);

    cr_assert_eq(eg_ws_encode_close(&b, 1000, NULL), 0);
    cr_assert_eq(b.len, 4);
    cr_assert_eq(memcmp(b.data, "\x88\x02\x03\xe8", 4), 0);
    eg_buf_clear(&b);

    cr_assert_eq(eg_ws_encode_close(&b, 1001, "bye"), 0);
    cr_assert_eq(b.len, 7);
    cr_assert_eq(memcmp(b.data,
                        "\x88\x05\x03\xe9"
                        "bye",
                        7),
                 0);
    eg_buf_clear(&b);

    static const int bad[] = {1, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535, -1};
    for (size_t i = 0; i < EG_ARRAY_SIZE(bad); i++)
        cr_assert_eq(eg_ws_encode_close(&b, bad[i], "x"), EG_EINVAL, "code %d", bad[i]);
    cr_assert_eq(b.len, 0);

    /* A long reason is cut to 123 bytes, never inside a UTF-8 sequence: 61 two-byte
     * characters are 122 bytes, and the 62nd would straddle the limit. */
    char reason[200] = "";
    for (int i = 0; i < 80; i++)
        strcat(reason, "\xc3\xa9");
    cr_assert_eq(eg_ws_encode_close(&b, 4000, reason), 0);
    cr_assert_eq((uint8_t)b.data[1], 2 + 122);
    cr_assert(eg_ws_utf8_valid(b.data + 4, 122));
    eg_buf_clear(&b);
    memset(reason, 'a', 150);
    reason[150] = '\0';
    cr_assert_eq(eg_ws_encode_close(&b, 3000, reason), 0);
    cr_assert_eq((uint8_t)b.data[1], 125);
    eg_buf_free(&b);
}

/* ---- reassembly across splits ------------------------------------------------------------ */

/* A stream exercising every event kind: a text message in three fragments with a ping and a
 * pong between them (a multi-byte character split across fragments), a 70000-byte binary
 * message in 16- and 64-bit length classes, an empty text, then a close. */
static void build_stream(eg_buf_t *b, char **bin)
{
    *bin = malloc(70000);
    for (size_t i = 0; i < 70000; i++)
        (*bin)[i] = (char)(i * 31 + 7);
    masked(b, EG_WS_OP_TEXT, false, "h\xc3", 2);
    masked(b, EG_WS_OP_PING, true, "p1", 2);
    masked(b, EG_WS_OP_CONT, false, "\xa9llo \xf0\x9f", 7);
    masked(b, EG_WS_OP_PONG, true, "", 0);
    masked(b, EG_WS_OP_CONT, true, "\x98\x80!", 3);
    masked(b, EG_WS_OP_BINARY, false, *bin, 300);
    masked(b, EG_WS_OP_CONT, false, *bin + 300, 0);
    masked(b, EG_WS_OP_CONT, true, *bin + 300, 70000 - 300);
    masked(b, EG_WS_OP_TEXT, true, "", 0);
    eg_ws_encode_masked(b, EG_WS_OP_CLOSE, true,
                        "\x03\xe8"
                        "done",
                        6, mask_a);
    /* Ignored: nothing is parsed after a close. */
    masked(b, EG_WS_OP_TEXT, true, "late", 4);
}

static void check_stream(rec_t *r, const char *bin)
{
    cr_assert_eq(r->n, 6);
    cr_assert_eq(r->ev[0].kind, 'P');
    cr_assert_str_eq(r->ev[0].data, "p1");
    cr_assert_eq(r->ev[1].kind, 'O');
    cr_assert_eq(r->ev[1].len, 0);
    cr_assert_eq(r->ev[2].kind, 'M');
    cr_assert_eq(r->ev[2].arg, EG_WS_OP_TEXT);
    cr_assert_str_eq(r->ev[2].data, "h\xc3\xa9llo \xf0\x9f\x98\x80!");
    cr_assert_eq(r->ev[3].kind, 'M');
    cr_assert_eq(r->ev[3].arg, EG_WS_OP_BINARY);
    cr_assert_eq(r->ev[3].len, 70000);
    cr_assert_eq(memcmp(r->ev[3].data, bin, 70000), 0);
    cr_assert_eq(r->ev[4].kind, 'M');
    cr_assert_eq(r->ev[4].arg, EG_WS_OP_TEXT);
    cr_assert_eq(r->ev[4].len, 0);
    cr_assert_eq(r->ev[5].kind, 'C');
    cr_assert_eq(r->ev[5].arg, 1000);
    cr_assert_str_eq(r->ev[5].data, "done");
}

Test(ws, split_at_every_chunk_size)
{
    static const size_t chunks[] = {1, 2, 3, 5, 7, 8, 13, 64, 125, 4096, 1 << 20};
    eg_buf_t b = EG_BUF_INIT;
    char *bin;

    build_stream(&b, &bin);
    for (size_t i = 0; i < EG_ARRAY_SIZE(chunks); i++) {
        eg_ws_parser_t p;
        rec_t r;
        start(&p, &r, 0, 0);
        cr_assert_eq(feed_chunks(&p, b.data, b.len, chunks[i]), 0);
        check_stream(&r, bin);
        cr_assert(eg_ws_parser_closed(&p));
        cr_assert_eq(eg_ws_parser_error(&p, NULL), 0);
        cr_assert_eq(eg_ws_parser_feed(&p, "junk", 4), 0);
        rec_free(&r);
        eg_ws_parser_free(&p);
    }
    free(bin);
    eg_buf_free(&b);
}

Test(ws, split_at_random_points)
{
    eg_buf_t b = EG_BUF_INIT;
    char *bin;
    unsigned seed = 12345;

    build_stream(&b, &bin);
    for (int round = 0; round < 200; round++) {
        eg_ws_parser_t p;
        rec_t r;
        size_t off = 0;
        start(&p, &r, 0, 0);
        while (off < b.len) {
            seed = seed * 1103515245u + 12345u;
            /* Mostly small pieces, sometimes big ones, so headers and payloads both split. */
            size_t n = (seed >> 16) % ((seed & 1) ? 17 : 9000) + 1;
            n = EG_MIN(n, b.len - off);
            cr_assert_eq(eg_ws_parser_feed(&p, b.data + off, n), 0);
            off += n;
        }
        check_stream(&r, bin);
        rec_free(&r);
        eg_ws_parser_free(&p);
    }
    free(bin);
    eg_buf_free(&b);
}

Test(ws, unmask_every_offset_and_length)
{
    /* Payload lengths around the 8- and 32-byte unmasking strides, fed with every split point,
     * so the rotated key is right at every mask offset. */
    char data[80];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i + 1);
    for (size_t len = 0; len <= sizeof(data); len++) {
        eg_buf_t b = EG_BUF_INIT;
        eg_ws_encode_masked(&b, EG_WS_OP_BINARY, true, data, len, mask_b);
        for (size_t split = 0; split <= b.len; split++) {
            eg_ws_parser_t p;
            rec_t r;
            start(&p, &r, 0, 0);
            cr_assert_eq(eg_ws_parser_feed(&p, b.data, split), 0);
            cr_assert_eq(eg_ws_parser_feed(&p, b.data + split, b.len - split), 0);
            cr_assert_eq(r.n, 1);
            cr_assert_eq(r.ev[0].len, len);
            cr_assert_eq(memcmp(r.ev[0].data, data, len), 0, "len %zu split %zu", len, split);
            rec_free(&r);
            eg_ws_parser_free(&p);
        }
        eg_buf_free(&b);
    }
}

Test(ws, stop_from_callback)
{
    eg_buf_t b = EG_BUF_INIT;
    eg_ws_parser_t p;
    rec_t r;

    masked(&b, EG_WS_OP_TEXT, true, "one", 3);
    masked(&b, EG_WS_OP_TEXT, true, "two", 3);
    start(&p, &r, 0, 0);
    r.stop_at = 1;
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.n, 1);
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_free(&b);
}

Test(ws, null_callbacks_and_limits)
{
    eg_buf_t b = EG_BUF_INIT;
    eg_ws_parser_t p;

    masked(&b, EG_WS_OP_TEXT, true, "x", 1);
    masked(&b, EG_WS_OP_PING, true, "x", 1);
    masked(&b, EG_WS_OP_PONG, true, "x", 1);
    masked(&b, EG_WS_OP_CLOSE, true, "", 0);
    eg_ws_parser_init(&p, NULL, NULL, NULL);
    cr_assert_eq(p.max_frame, EG_WS_DEFAULT_MAX_FRAME);
    cr_assert_eq(p.max_message, EG_WS_DEFAULT_MAX_MESSAGE);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert(eg_ws_parser_closed(&p));
    eg_ws_parser_free(&p);
    eg_buf_free(&b);
}

/* ---- close frames ------------------------------------------------------------------------ */

Test(ws, close_frames)
{
    static const int ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                             1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const int bad[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                              1016, 1100, 2000, 2999, 5000, 65535};

    for (size_t i = 0; i < EG_ARRAY_SIZE(ok); i++) {
        eg_buf_t b = EG_BUF_INIT;
        uint8_t body[2] = {(uint8_t)(ok[i] >> 8), (uint8_t)ok[i]};
        eg_ws_parser_t p;
        rec_t r;
        eg_ws_encode_masked(&b, EG_WS_OP_CLOSE, true, body, 2, mask_a);
        start(&p, &r, 0, 0);
        cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0, "code %d", ok[i]);
        cr_assert_eq(r.n, 1);
        cr_assert_eq(r.ev[0].arg, ok[i]);
        cr_assert_eq(r.ev[0].len, 0);
        rec_free(&r);
        eg_ws_parser_free(&p);
        eg_buf_free(&b);
    }
    for (size_t i = 0; i < EG_ARRAY_SIZE(bad); i++) {
        eg_buf_t b = EG_BUF_INIT;
        uint8_t body[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        eg_ws_encode_masked(&b, EG_WS_OP_CLOSE, true, body, 2, mask_a);
        expect_error_buf(&b, EG_WS_CLOSE_PROTOCOL);
    }
}

Test(ws, close_without_body_reports_1005)
{
    eg_buf_t b = EG_BUF_INIT;
    eg_ws_parser_t p;
    rec_t r;

    masked(&b, EG_WS_OP_CLOSE, true, "", 0);
    start(&p, &r, 0, 0);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.ev[0].arg, EG_WS_CLOSE_NO_STATUS);
    cr_assert_eq(r.ev[0].len, 0);
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_free(&b);
}

Test(ws, close_body_errors)
{
    eg_buf_t b = EG_BUF_INIT;

    masked(&b, EG_WS_OP_CLOSE, true, "\x03", 1);
    expect_error_buf(&b, EG_WS_CLOSE_PROTOCOL);
    masked(&b, EG_WS_OP_CLOSE, true, "\x03\xe8\xc3", 3);
    expect_error_buf(&b, EG_WS_CLOSE_INVALID_DATA);
    masked(&b, EG_WS_OP_CLOSE, true,
           "\x03\xe8"
           "ok\xed\xa0\x80",
           7);
    expect_error_buf(&b, EG_WS_CLOSE_INVALID_DATA);

    /* A 123-byte valid reason is fine. */
    char body[125];
    eg_ws_parser_t p;
    rec_t r;
    body[0] = 0x0f, body[1] = (char)0xa0; /* 4000 */
    memset(body + 2, 'r', 123);
    masked(&b, EG_WS_OP_CLOSE, true, body, 125);
    start(&p, &r, 0, 0);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.ev[0].arg, 4000);
    cr_assert_eq(r.ev[0].len, 123);
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_free(&b);
}

/* ---- protocol errors --------------------------------------------------------------------- */

Test(ws, error_unmasked)
{
    expect_error("\x82\x00", 2, EG_WS_CLOSE_PROTOCOL, 0, 0);
    expect_error("\x88\x02\x03\xe8", 4, EG_WS_CLOSE_PROTOCOL, 0, 0);
}

Test(ws, error_rsv_bits)
{
    static const uint8_t rsv[] = {0x40, 0x20, 0x10, 0x70};
    for (size_t i = 0; i < EG_ARRAY_SIZE(rsv); i++) {
        uint8_t f[] = {(uint8_t)(0x81 | rsv[i]), 0x80, 1, 2, 3, 4};
        expect_error(f, sizeof(f), EG_WS_CLOSE_PROTOCOL, 0, 0);
        uint8_t c[] = {(uint8_t)(0x89 | rsv[i]), 0x80, 1, 2, 3, 4};
        expect_error(c, sizeof(c), EG_WS_CLOSE_PROTOCOL, 0, 0);
    }
}

Test(ws, error_reserved_opcodes)
{
    static const uint8_t ops[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
    for (size_t i = 0; i < EG_ARRAY_SIZE(ops); i++) {
        uint8_t f[] = {(uint8_t)(0x80 | ops[i]), 0x80, 1, 2, 3, 4};
        expect_error(f, sizeof(f), EG_WS_CLOSE_PROTOCOL, 0, 0);
    }
}

Test(ws, error_control_frames)
{
    eg_buf_t b = EG_BUF_INIT;
    char big[126] = {0};

    masked(&b, EG_WS_OP_PING, false, "x", 1); /* fragmented */
    expect_error_buf(&b, EG_WS_CLOSE_PROTOCOL);
    masked(&b, EG_WS_OP_CLOSE, false, "", 0);
    expect_error_buf(&b, EG_WS_CLOSE_PROTOCOL);
    masked(&b, EG_WS_OP_PONG, true, big, 126); /* over 125 */
    expect_error_buf(&b, EG_WS_CLOSE_PROTOCOL);
    /* 125 bytes in the 16-bit length form is still a control frame over 7 bits: refused. */
    expect_error("\x89\xfe\x00\x7d", 4, EG_WS_CLOSE_PROTOCOL, 0, 0);
    expect_error("\x89\xff\0\0\0\0\0\0\0\x01", 10, EG_WS_CLOSE_PROTOCOL, 0, 0);
}

Test(ws, error_fragment_sequence)
{
    eg_buf_t b = EG_BUF_INIT;

    masked(&b, EG_WS_OP_CONT, true, "x", 1); /* nothing to continue */
    expect_error_buf(&b, EG_WS_CLOSE_PROTOCOL);
    masked(&b, EG_WS_OP_CONT, false, "x", 1);
    expect_error_buf(&b, EG_WS_CLOSE_PROTOCOL);
    masked(&b, EG_WS_OP_TEXT, false, "a", 1); /* a new message inside one */
    masked(&b, EG_WS_OP_TEXT, true, "b", 1);
    expect_error_buf(&b, EG_WS_CLOSE_PROTOCOL);
    masked(&b, EG_WS_OP_BINARY, false, "a", 1);
    masked(&b, EG_WS_OP_PING, true, "", 0); /* control frames may interleave */
    masked(&b, EG_WS_OP_BINARY, true, "b", 1);
    expect_error_buf(&b, EG_WS_CLOSE_PROTOCOL);
    /* A finished message followed by a continuation. */
    masked(&b, EG_WS_OP_TEXT, true, "a", 1);
    masked(&b, EG_WS_OP_CONT, true, "b", 1);
    expect_error_buf(&b, EG_WS_CLOSE_PROTOCOL);
}

Test(ws, lengths_64bit)
{
    /* The top bit of a 64-bit length must be clear: 1002 before anything is allocated. */
    expect_error("\x82\xff\x80\0\0\0\0\0\0\0", 10, EG_WS_CLOSE_PROTOCOL, 0, 0);
    expect_error("\x82\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10, EG_WS_CLOSE_PROTOCOL, 0, 0);
    /* Huge but legal lengths exceed the frame limit: 1009. */
    expect_error("\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff", 10, EG_WS_CLOSE_TOO_BIG, 0, 0);
    expect_error("\x82\xff\0\0\x01\0\0\0\0\0", 10, EG_WS_CLOSE_TOO_BIG, 0, 0);

    /* A non-minimal 64-bit length of 5 is accepted. */
    static const uint8_t f[] = {0x81, 0xff, 0, 0, 0,   0,   0,   0,   0,  5,
                                0,    0,    0, 0, 'H', 'e', 'l', 'l', 'o'};
    eg_ws_parser_t p;
    rec_t r;
    start(&p, &r, 0, 0);
    cr_assert_eq(feed_chunks(&p, f, sizeof(f), 1), 0);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.ev[0].data, "Hello");
    rec_free(&r);
    eg_ws_parser_free(&p);
}

Test(ws, size_limits)
{
    eg_buf_t b = EG_BUF_INIT;
    char data[32];
    eg_ws_parser_t p;
    rec_t r;

    memset(data, 'z', sizeof(data));
    /* max_frame 10: 10 passes, 11 fails (16-bit form too). */
    masked(&b, EG_WS_OP_BINARY, true, data, 10);
    start(&p, &r, 10, 20);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.n, 1);
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_clear(&b);
    masked(&b, EG_WS_OP_BINARY, true, data, 11);
    expect_error(b.data, b.len, EG_WS_CLOSE_TOO_BIG, 10, 20);
    eg_buf_clear(&b);
    expect_error("\x82\xfe\x00\x0b", 4, EG_WS_CLOSE_TOO_BIG, 10, 20);

    /* max_message 20 over fragments: 10 + 10 passes (control frames do not count) ... */
    masked(&b, EG_WS_OP_TEXT, false, data, 10);
    masked(&b, EG_WS_OP_PING, true, data, 5);
    masked(&b, EG_WS_OP_CONT, true, data, 10);
    start(&p, &r, 10, 20);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.ev[1].len, 20);
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_clear(&b);
    /* ... 10 + 10 + 1 fails, as soon as the third header is seen. */
    masked(&b, EG_WS_OP_TEXT, false, data, 10);
    masked(&b, EG_WS_OP_CONT, false, data, 10);
    masked(&b, EG_WS_OP_CONT, true, data, 1);
    expect_error(b.data, b.len, EG_WS_CLOSE_TOO_BIG, 10, 20);
    eg_buf_clear(&b);

    /* The message budget starts afresh with each message. */
    masked(&b, EG_WS_OP_TEXT, true, data, 10);
    masked(&b, EG_WS_OP_TEXT, false, data, 10);
    masked(&b, EG_WS_OP_CONT, true, data, 10);
    start(&p, &r, 10, 20);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.n, 2);
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_free(&b);
}

Test(ws, large_message_buffer_is_released)
{
    char *data = calloc(1, 200000);
    eg_buf_t b = EG_BUF_INIT;
    eg_ws_parser_t p;
    rec_t r;

    masked(&b, EG_WS_OP_BINARY, true, data, 200000);
    start(&p, &r, 0, 0);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.n, 1);
    cr_assert_null(p.msg.data, "a big message buffer is not kept for an idle connection");
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_free(&b);
    free(data);
}

/* ---- UTF-8 ------------------------------------------------------------------------------- */

/* A plain decoder written from RFC 3629's definition, to compare the fast validator with. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], min;
        int k;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, c &= 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, c &= 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, c &= 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (i + (size_t)k >= n)
            return false;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            c = c << 6 | (s[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += (size_t)k + 1;
    }
    return true;
}

Test(ws, utf8_cases)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"plain ascii", true},
        {"\xc3\xa9", true},                  /* é */
        {"\xe2\x82\xac", true},              /* € */
        {"\xf0\x9f\x98\x80", true},          /* U+1F600, 4 bytes */
        {"\xf4\x8f\xbf\xbf", true},          /* U+10FFFF */
        {"\xed\x9f\xbf", true},              /* U+D7FF, just below the surrogates */
        {"\xee\x80\x80", true},              /* U+E000, just above */
        {"\xef\xbf\xbf", true},              /* U+FFFF */
        {"\xc0\x80", false},                 /* overlong NUL */
        {"\xc1\xbf", false},                 /* overlong 2-byte */
        {"\xe0\x80\x80", false},             /* overlong 3-byte */
        {"\xe0\x9f\xbf", false},             /* overlong U+07FF */
        {"\xf0\x80\x80\x80", false},         /* overlong 4-byte */
        {"\xf0\x8f\xbf\xbf", false},         /* overlong U+FFFF */
        {"\xed\xa0\x80", false},             /* U+D800 */
        {"\xed\xbf\xbf", false},             /* U+DFFF */
        {"\xed\xa0\x80\xed\xb0\x80", false}, /* a CESU-8 surrogate pair */
        {"\xf4\x90\x80\x80", false},         /* U+110000 */
        {"\xf5\x80\x80\x80", false},
        {"\xf8\x88\x80\x80\x80", false},
        {"\xff", false},
        {"\xfe", false},
        {"\x80", false}, /* stray continuation */
        {"a\xbf", false},
        {"\xc3", false}, /* truncated at the end */
        {"\xe2\x82", false},
        {"\xf0\x9f\x98", false},
        {"\xc3\x28", false}, /* lead without its continuation */
        {"\xe2\x28\xa1", false},
        {"\xf0\x28\x8c\x28", false},
        {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true}, /* κόσμε */
    };
    for (size_t i = 0; i < EG_ARRAY_SIZE(cases); i++) {
        size_t n = strlen(cases[i].s);
        cr_assert_eq(eg_ws_utf8_valid(cases[i].s, n), cases[i].ok, "case %zu", i);
        cr_assert_eq(ref_utf8((const uint8_t *)cases[i].s, n), cases[i].ok, "ref case %zu", i);
    }
}

Test(ws, utf8_bad_byte_at_every_position_of_ascii_runs)
{
    /* The 8-byte ASCII fast path must see a bad byte wherever it sits in a word. */
    char s[70];
    for (size_t pos = 0; pos < sizeof(s); pos++) {
        memset(s, 'a', sizeof(s));
        s[pos] = (char)0x80;
        cr_assert_not(eg_ws_utf8_valid(s, sizeof(s)), "pos %zu", pos);
        s[pos] = (char)0xc3;
        cr_assert_eq(eg_ws_utf8_valid(s, sizeof(s)), false, "truncated-or-bad at %zu", pos);
        if (pos + 1 < sizeof(s)) {
            s[pos + 1] = (char)0xa9;
            cr_assert(eg_ws_utf8_valid(s, sizeof(s)), "é at %zu", pos);
        }
    }
}

Test(ws, utf8_exhaustive_against_reference)
{
    uint8_t b[4];

    for (unsigned x = 0; x < 0x10000; x++) {
        b[0] = (uint8_t)(x >> 8), b[1] = (uint8_t)x;
        cr_assert_eq(eg_ws_utf8_valid(b, 2), ref_utf8(b, 2), "%02x %02x", b[0], b[1]);
    }
    /* Every 3-byte sequence with a non-ASCII first byte (an ASCII one reduces to 2 bytes). */
    for (unsigned x = 0x800000; x < 0x1000000; x++) {
        b[0] = (uint8_t)(x >> 16), b[1] = (uint8_t)(x >> 8), b[2] = (uint8_t)x;
        if (eg_ws_utf8_valid(b, 3) != ref_utf8(b, 3))
            cr_assert_fail("%02x %02x %02x", b[0], b[1], b[2]);
    }
    /* Every 4-byte sequence with a 4-byte lead and continuation-range tails, plus edges. */
    for (unsigned lead = 0xf0; lead <= 0xff; lead++) {
        for (unsigned x = 0; x < 0x40000; x++) {
            b[0] = (uint8_t)lead;
            b[1] = (uint8_t)(0x80 | (x >> 12));
            b[2] = (uint8_t)(0x80 | ((x >> 6) & 0x3f));
            b[3] = (uint8_t)(0x80 | (x & 0x3f));
            if (eg_ws_utf8_valid(b, 4) != ref_utf8(b, 4))
                cr_assert_fail("%02x %02x %02x %02x", b[0], b[1], b[2], b[3]);
        }
    }
}

Test(ws, utf8_text_messages)
{
    eg_buf_t b = EG_BUF_INIT;
    eg_ws_parser_t p;
    rec_t r;

    /* A 4-byte character split across three fragments is valid. */
    masked(&b, EG_WS_OP_TEXT, false, "\xf0", 1);
    masked(&b, EG_WS_OP_CONT, false, "\x9f\x98", 2);
    masked(&b, EG_WS_OP_CONT, true, "\x80", 1);
    start(&p, &r, 0, 0);
    cr_assert_eq(feed_chunks(&p, b.data, b.len, 1), 0);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.ev[0].data, "\xf0\x9f\x98\x80");
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_clear(&b);

    /* Binary messages are not validated. */
    masked(&b, EG_WS_OP_BINARY, true, "\xff\xfe", 2);
    start(&p, &r, 0, 0);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), 0);
    cr_assert_eq(r.n, 1);
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_clear(&b);

    /* Invalid text: 1007, in one frame, across fragments, or cut short at the message end. */
    masked(&b, EG_WS_OP_TEXT, true, "ab\xc0\x80", 4);
    expect_error_buf(&b, EG_WS_CLOSE_INVALID_DATA);
    masked(&b, EG_WS_OP_TEXT, true, "\xed\xa0\x80", 3);
    expect_error_buf(&b, EG_WS_CLOSE_INVALID_DATA);
    masked(&b, EG_WS_OP_TEXT, true, "\xf4\x90\x80\x80", 4);
    expect_error_buf(&b, EG_WS_CLOSE_INVALID_DATA);
    masked(&b, EG_WS_OP_TEXT, false, "ok \xe2\x82", 5);
    masked(&b, EG_WS_OP_CONT, true, "", 0);
    expect_error_buf(&b, EG_WS_CLOSE_INVALID_DATA);
    masked(&b, EG_WS_OP_TEXT, true, "\xf0\x9f\x98", 3);
    expect_error_buf(&b, EG_WS_CLOSE_INVALID_DATA);
    masked(&b, EG_WS_OP_TEXT, false, "\xe2", 1);
    masked(&b, EG_WS_OP_CONT, true, "\x28\xa1", 2);
    expect_error_buf(&b, EG_WS_CLOSE_INVALID_DATA);

    /* Fail fast: a bad byte in the first fragment fails before the message is complete. */
    masked(&b, EG_WS_OP_TEXT, false, "\xff", 1);
    start(&p, &r, 0, 0);
    cr_assert_eq(eg_ws_parser_feed(&p, b.data, b.len), EG_EINVAL);
    cr_assert_eq(eg_ws_parser_error(&p, NULL), EG_WS_CLOSE_INVALID_DATA);
    rec_free(&r);
    eg_ws_parser_free(&p);
    eg_buf_free(&b);
}

Test(ws, close_code_valid)
{
    cr_assert(eg_ws_close_code_valid(1000));
    cr_assert(eg_ws_close_code_valid(4999));
    cr_assert_not(eg_ws_close_code_valid(1005));
    cr_assert_not(eg_ws_close_code_valid(1006));
    cr_assert_not(eg_ws_close_code_valid(1015));
    cr_assert_not(eg_ws_close_code_valid(2999));
}
