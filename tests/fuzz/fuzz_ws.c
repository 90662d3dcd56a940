/* libFuzzer target: arbitrary bytes into the WebSocket frame parser.
 *
 * The first input byte picks the limits and how the rest is split into feed() calls, so the
 * fuzzer explores the limit checks and every header/payload split without needing big inputs.
 * Beyond "no crash, no leak" (ASan/LSan/UBSan), each event is checked against what the parser
 * promises: text is valid UTF-8 (compared with a plain reference decoder), control payloads fit
 * in 125 bytes, sizes respect the limits, close codes are valid, errors carry 1002/1007/1009. A
 * message is also encoded again as a client would and parsed by a second parser, which must give
 * it back unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct state_s {
    eg_ws_parser_t *p;
    size_t max_frame, max_message;
    size_t events;
    const char *want;
    size_t want_len;
    int want_op;
    int matched;
} state_t;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

/* RFC 3629 by the book: decode every sequence and check its range. */
static int ref_utf8(const uint8_t *s, size_t n)
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
            return 0;
        }
        if (i + (size_t)k >= n)
            return 0;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            c = c << 6 | (s[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

static void on_message_rt(void *u, eg_ws_opcode_t op, const char *d, size_t len)
{
    state_t *st = u;
    CHECK((int)op == st->want_op && len == st->want_len && memcmp(d, st->want, len) == 0);
    st->matched++;
}

/* Encode the message as a client would, in up to three fragments, and parse it again. */
static void roundtrip(state_t *st, eg_ws_opcode_t op, const char *d, size_t len)
{
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    eg_ws_callbacks_t cb = {.on_message = on_message_rt};
    /* Fragments differ from the original ones: only the message limit still applies. */
    eg_ws_limits_t lim = {st->max_message, st->max_message};
    state_t rt = {.want = d, .want_len = len, .want_op = op};
    eg_ws_parser_t p2;
    eg_buf_t b = EG_BUF_INIT;
    size_t a = len / 3, c = len - len / 3;

    eg_ws_encode_masked(&b, op, len == 0, d, a, mask);
    if (len) {
        eg_ws_encode_masked(&b, EG_WS_OP_PING, true, "", 0, mask); /* interleaved control */
        eg_ws_encode_masked(&b, EG_WS_OP_CONT, false, d + a, c - a, mask);
        eg_ws_encode_masked(&b, EG_WS_OP_CONT, true, d + c, len - c, mask);
    }
    eg_ws_parser_init(&p2, &lim, &cb, &rt);
    CHECK(eg_ws_parser_feed(&p2, b.data, b.len) == 0);
    CHECK(rt.matched == 1);
    eg_ws_parser_free(&p2);
    eg_buf_free(&b);
}

static void on_message(void *u, eg_ws_opcode_t op, const char *d, size_t len)
{
    state_t *st = u;
    CHECK(op == EG_WS_OP_TEXT || op == EG_WS_OP_BINARY);
    CHECK(len <= st->max_message && d[len] == '\0');
    if (op == EG_WS_OP_TEXT)
        CHECK(ref_utf8((const uint8_t *)d, len));
    st->events++;
    roundtrip(st, op, d, len);
}

static void on_control(void *u, const char *d, size_t len)
{
    state_t *st = u;
    CHECK(len <= EG_WS_MAX_CONTROL && d[len] == '\0');
    st->events++;
    /* A server answers a ping with a pong of the same payload: that must always encode. */
    eg_buf_t b = EG_BUF_INIT;
    CHECK(eg_ws_encode_pong(&b, d, len) == 0);
    eg_buf_free(&b);
}

static void on_close(void *u, int code, const char *reason, size_t len)
{
    state_t *st = u;
    CHECK(code == EG_WS_CLOSE_NO_STATUS || eg_ws_close_code_valid(code));
    CHECK(len <= EG_WS_MAX_CONTROL - 2 && ref_utf8((const uint8_t *)reason, len));
    st->events++;
    /* Echoing the close code back must work (RFC 6455 §5.5.1). */
    eg_buf_t b = EG_BUF_INIT;
    CHECK(eg_ws_encode_close(&b, code == EG_WS_CLOSE_NO_STATUS ? 0 : code, NULL) == 0);
    eg_buf_free(&b);
    if (st->events % 7 == 3)
        eg_ws_parser_stop(st->p); /* sometimes stop from inside a callback */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t frames[] = {0, 1, 125, 126, 1000, 65536};
    eg_ws_callbacks_t cb = {on_message, on_control, on_control, on_close};
    eg_ws_parser_t p;
    state_t st = {0};
    int rc = 0;

    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    data++, size--;

    /* The validator on raw bytes must agree with the reference decoder. */
    CHECK(eg_ws_utf8_valid(data, size) == ref_utf8(data, size));

    eg_ws_limits_t lim = {frames[sel % 6], (sel & 0x08) ? 3000 : 0};
    eg_ws_parser_init(&p, &lim, &cb, &st);
    st.p = &p;
    st.max_frame = p.max_frame;
    st.max_message = p.max_message;

    size_t chunk = (sel >> 4) == 0 ? size : (size_t)(sel >> 4);
    for (size_t off = 0; off < size && rc == 0; off += chunk)
        rc = eg_ws_parser_feed(&p, data + off, size - off < chunk ? size - off : chunk);

    const char *reason = NULL;
    int code = eg_ws_parser_error(&p, &reason);
    if (rc != 0) {
        CHECK(code == EG_WS_CLOSE_PROTOCOL || code == EG_WS_CLOSE_INVALID_DATA ||
              code == EG_WS_CLOSE_TOO_BIG);
        CHECK(rc == (code == EG_WS_CLOSE_TOO_BIG ? EG_ETOOBIG : EG_EINVAL));
        CHECK(reason != NULL);
        /* The server's answer to the error must encode. */
        eg_buf_t b = EG_BUF_INIT;
        CHECK(eg_ws_encode_close(&b, code, reason) == 0);
        eg_buf_free(&b);
        CHECK(eg_ws_parser_feed(&p, data, size) == rc);
    } else {
        CHECK(code == 0 && reason == NULL);
    }
    eg_ws_parser_free(&p);
    return 0;
}
