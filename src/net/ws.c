/* WebSocket (RFC 6455) codec: handshake helpers, the server-side frame parser and the encoder.
 *
 * The parser is a byte-driven state machine so that input may be split anywhere (a header may
 * arrive one byte at a time). Payload bytes are unmasked while they are copied into the parser's
 * own buffers, eight at a time, and text is validated as it arrives so that an invalid message is
 * refused at its first bad byte rather than after it was buffered in full. Every limit is checked
 * from the frame header, before any payload byte is stored, so a peer cannot make the parser
 * allocate more than max_frame bytes ahead of the data that fills them. */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha1.h>

#include "engram/error.h"
#include "engram/util.h"
#include "engram/ws.h"

enum { ST_HEADER, ST_PAYLOAD, ST_CLOSED, ST_ERROR };

/* A message buffer bigger than this is released after its message instead of kept for the next
 * one: most WebSocket connections are idle watchers and should not pin a large allocation. */
#define EG_WS_KEEP_BUF 65536

/* ---- UTF-8 ------------------------------------------------------------------------------- */

/* Incremental validation state: 0 between characters; otherwise the number of continuation
 * bytes still needed (bits 0-7) and the range the next one must fall in (lo bits 8-15, hi bits
 * 16-23). The narrowed ranges after E0, ED, F0 and F4 are what reject overlong forms, UTF-16
 * surrogates and code points above U+10FFFF (RFC 3629 §4). */
static bool utf8_feed(uint32_t *state, const uint8_t *s, size_t n)
{
    uint32_t need = *state & 0xff, lo = (*state >> 8) & 0xff, hi = *state >> 16;
    size_t i = 0;

    while (i < n) {
        uint8_t c;
        if (need == 0) {
            /* Text is mostly ASCII: skip it a word at a time. */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ULL)
                    break;
                i += 8;
            }
            if (i >= n)
                break;
            c = s[i++];
            if (c < 0x80)
                continue;
            if (c < 0xC2) {
                return false; /* stray continuation byte, or an overlong 2-byte lead */
            } else if (c < 0xE0) {
                need = 1, lo = 0x80, hi = 0xBF;
            } else if (c < 0xF0) {
                need = 2;
                lo = c == 0xE0 ? 0xA0 : 0x80;
                hi = c == 0xED ? 0x9F : 0xBF;
            } else if (c < 0xF5) {
                need = 3;
                lo = c == 0xF0 ? 0x90 : 0x80;
                hi = c == 0xF4 ? 0x8F : 0xBF;
            } else {
                return false;
            }
        } else {
            c = s[i++];
            if (c < lo || c > hi)
                return false;
            need--;
            lo = 0x80, hi = 0xBF;
        }
    }
    *state = need ? need | lo << 8 | hi << 16 : 0;
    return true;
}

bool eg_ws_utf8_valid(const void *data, size_t len)
{
    uint32_t st = 0;
    return utf8_feed(&st, data, len) && st == 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

bool eg_ws_close_code_valid(int code)
{
    /* 1004 is reserved, 1005/1006/1015 are only reported locally, 1016-2999 are unassigned
     * (and are refused so that a peer cannot claim meanings we do not know), 3000-4999 belong
     * to libraries and applications. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static const char *trim(const char *s, size_t *len)
{
    size_t n = strlen(s);
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *len = n;
    return s;
}

/* True if a comma-separated header value holds token (case-insensitive), as Connection: keep-alive,
 * Upgrade does. */
static bool has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == tlen && strncasecmp(p, token, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* A 16-byte nonce encodes to 22 base64 characters and "==" (RFC 6455 §4.1 item 7). */
static bool key_valid(const char *key, size_t len)
{
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(key[i]))
            return false;
    return true;
}

static int hs_fail(eg_ws_hs_error_t *err, int status, const char *message)
{
    if (err) {
        err->status = status;
        err->message = message;
    }
    return EG_EINVAL;
}

int eg_ws_handshake_check_values(const char *upgrade, const char *connection, const char *version,
                                 const char *key, eg_ws_hs_error_t *err)
{
    const char *v;
    size_t n;

    /* A plain GET on a WebSocket endpoint is answered 426 so that the client learns it must
     * upgrade; a broken upgrade attempt is a 400. */
    if (upgrade == NULL || !has_token(upgrade, "websocket"))
        return hs_fail(err, 426, "expected an Upgrade: websocket header");
    if (connection == NULL || !has_token(connection, "upgrade"))
        return hs_fail(err, 400, "the Connection header must contain the upgrade token");
    if (version == NULL)
        return hs_fail(err, 400, "missing Sec-WebSocket-Version header");
    v = trim(version, &n);
    if (n != 2 || memcmp(v, "13", 2) != 0)
        return hs_fail(err, 426, "unsupported Sec-WebSocket-Version (only 13 is supported)");
    if (key == NULL)
        return hs_fail(err, 400, "missing Sec-WebSocket-Key header");
    v = trim(key, &n);
    if (!key_valid(v, n))
        return hs_fail(err, 400, "Sec-WebSocket-Key must be the base64 encoding of 16 bytes");
    return 0;
}

int eg_ws_handshake_check(eg_ws_header_fn get, void *udata, eg_ws_hs_error_t *err)
{
    return eg_ws_handshake_check_values(get(udata, "Upgrade"), get(udata, "Connection"),
                                        get(udata, "Sec-WebSocket-Version"),
                                        get(udata, "Sec-WebSocket-Key"), err);
}

int eg_ws_accept_key(const char *key, char out[EG_WS_ACCEPT_LEN + 1])
{
    unsigned char in[64 + sizeof(EG_WS_GUID)], digest[20];
    size_t n;
    const char *k = trim(key, &n);

    /* A checked key is 24 bytes; a longer one is cut rather than overflow, and will not match
     * anything the client expects. */
    n = EG_MIN(n, (size_t)64);
    memcpy(in, k, n);
    memcpy(in + n, EG_WS_GUID, sizeof(EG_WS_GUID) - 1);
    if (mbedtls_sha1_ret(in, n + sizeof(EG_WS_GUID) - 1, digest) != 0) {
        out[0] = '\0';
        return EG_EINTERNAL;
    }
    eg_base64_encode(digest, sizeof(digest), out);
    return 0;
}

/* RFC 7230 tchar: what a subprotocol name may be made of. */
static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c))
            return false;
    }
    return true;
}

int eg_ws_handshake_response(eg_buf_t *out, const char *key, const char *protocol)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: ";
    char accept[EG_WS_ACCEPT_LEN + 1];

    if (protocol && !is_token(protocol))
        return EG_EINVAL;
    if (eg_ws_accept_key(key, accept) != 0)
        return EG_EINTERNAL;
    eg_buf_append(out, head, sizeof(head) - 1);
    eg_buf_append(out, accept, EG_WS_ACCEPT_LEN);
    if (protocol) {
        eg_buf_puts(out, "\r\nSec-WebSocket-Protocol: ");
        eg_buf_puts(out, protocol);
    }
    eg_buf_append(out, "\r\n\r\n", 4);
    return 0;
}

/* ---- parser ------------------------------------------------------------------------------ */

void eg_ws_parser_init(eg_ws_parser_t *p, const eg_ws_limits_t *limits, const eg_ws_callbacks_t *cb,
                       void *udata)
{
    memset(p, 0, sizeof(*p));
    if (cb)
        p->cb = *cb;
    p->udata = udata;
    p->max_frame = limits && limits->max_frame ? limits->max_frame : EG_WS_DEFAULT_MAX_FRAME;
    p->max_message =
        limits && limits->max_message ? limits->max_message : EG_WS_DEFAULT_MAX_MESSAGE;
    p->state = ST_HEADER;
    p->hdr_need = 2;
}

void eg_ws_parser_free(eg_ws_parser_t *p)
{
    eg_buf_free(&p->msg);
}

int eg_ws_parser_error(const eg_ws_parser_t *p, const char **reason)
{
    if (reason)
        *reason = p->error_code ? p->error_reason : NULL;
    return p->error_code;
}

bool eg_ws_parser_closed(const eg_ws_parser_t *p)
{
    return p->state == ST_CLOSED;
}

void eg_ws_parser_stop(eg_ws_parser_t *p)
{
    p->stopped = 1;
}

static int err_result(const eg_ws_parser_t *p)
{
    return p->error_code == EG_WS_CLOSE_TOO_BIG ? EG_ETOOBIG : EG_EINVAL;
}

static int fail(eg_ws_parser_t *p, int code, const char *reason)
{
    p->state = ST_ERROR;
    p->error_code = code;
    p->error_reason = reason;
    eg_buf_free(&p->msg);
    return err_result(p);
}

static bool is_control(unsigned op)
{
    return op & 0x8;
}

/* Checks that need only the first two header bytes, so a bad frame fails before its length
 * and mask arrive. 0, or a negative error after failing. */
static int header_start(eg_ws_parser_t *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    unsigned op = b0 & 0x0f, len7 = b1 & 0x7f;

    if (b0 & 0x70)
        return fail(p, EG_WS_CLOSE_PROTOCOL, "reserved bits set without a negotiated extension");
    if (op != EG_WS_OP_CONT && op != EG_WS_OP_TEXT && op != EG_WS_OP_BINARY &&
        op != EG_WS_OP_CLOSE && op != EG_WS_OP_PING && op != EG_WS_OP_PONG)
        return fail(p, EG_WS_CLOSE_PROTOCOL, "reserved opcode");
    if (!(b1 & 0x80))
        return fail(p, EG_WS_CLOSE_PROTOCOL, "client frame is not masked");
    if (is_control(op)) {
        if (!(b0 & 0x80))
            return fail(p, EG_WS_CLOSE_PROTOCOL, "fragmented control frame");
        if (len7 > EG_WS_MAX_CONTROL)
            return fail(p, EG_WS_CLOSE_PROTOCOL, "control frame payload over 125 bytes");
    } else if (op == EG_WS_OP_CONT && p->msg_op == 0) {
        return fail(p, EG_WS_CLOSE_PROTOCOL, "continuation frame without a message to continue");
    } else if (op != EG_WS_OP_CONT && p->msg_op != 0) {
        return fail(p, EG_WS_CLOSE_PROTOCOL, "new data frame inside a fragmented message");
    }
    return 0;
}

/* Bytes of the header up to the end of the payload length (the mask follows). */
static unsigned len_end(const eg_ws_parser_t *p)
{
    unsigned len7 = p->hdr[1] & 0x7f;
    return len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
}

/* The payload length is in hdr[]: check it against the limits before the mask arrives, so an
 * oversized frame fails at once. 0 or an error. */
static int header_length(eg_ws_parser_t *p)
{
    const uint8_t *h = p->hdr;
    unsigned op = h[0] & 0x0f, len7 = h[1] & 0x7f;
    uint64_t len = len7;

    /* Non-minimal length encodings are accepted: they are unambiguous, and refusing them
     * protects nothing. */
    if (len7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        if (len >> 63)
            return fail(p, EG_WS_CLOSE_PROTOCOL, "64-bit payload length has its top bit set");
    }
    if (len > p->max_frame)
        return fail(p, EG_WS_CLOSE_TOO_BIG, "frame exceeds the size limit");
    p->opcode = (uint8_t)op;
    p->fin = h[0] >> 7;
    p->remaining = len;
    p->mask_pos = 0;
    if (is_control(op)) {
        p->ctl_len = 0;
        return 0;
    }
    if (op != EG_WS_OP_CONT) {
        p->msg_op = (uint8_t)op;
        p->utf8_state = 0;
        eg_buf_clear(&p->msg);
    }
    if (len > p->max_message - p->msg.len)
        return fail(p, EG_WS_CLOSE_TOO_BIG, "message exceeds the size limit");
    return 0;
}

/* The whole header is in hdr[]: take the mask and make room for the payload. */
static void header_done(eg_ws_parser_t *p)
{
    memcpy(p->mask, p->hdr + p->hdr_len - 4, 4);
    if (!is_control(p->opcode))
        eg_buf_reserve(&p->msg, (size_t)p->remaining + 1);
}

static int control_done(eg_ws_parser_t *p)
{
    const uint8_t *b = (const uint8_t *)p->ctl;
    size_t n = p->ctl_len;
    int code = EG_WS_CLOSE_NO_STATUS;

    p->ctl[n] = '\0';
    switch (p->opcode) {
    case EG_WS_OP_PING:
        if (p->cb.on_ping)
            p->cb.on_ping(p->udata, p->ctl, n);
        return 0;
    case EG_WS_OP_PONG:
        if (p->cb.on_pong)
            p->cb.on_pong(p->udata, p->ctl, n);
        return 0;
    default: /* close */
        if (n == 1)
            return fail(p, EG_WS_CLOSE_PROTOCOL, "close frame body of one byte");
        if (n >= 2) {
            code = b[0] << 8 | b[1];
            if (!eg_ws_close_code_valid(code))
                return fail(p, EG_WS_CLOSE_PROTOCOL, "invalid close code");
            if (!eg_ws_utf8_valid(b + 2, n - 2))
                return fail(p, EG_WS_CLOSE_INVALID_DATA, "close reason is not valid UTF-8");
        }
        p->state = ST_CLOSED;
        eg_buf_free(&p->msg);
        if (p->cb.on_close)
            p->cb.on_close(p->udata, code, n >= 2 ? p->ctl + 2 : "", n >= 2 ? n - 2 : 0);
        return 0;
    }
}

static int frame_done(eg_ws_parser_t *p)
{
    if (is_control(p->opcode))
        return control_done(p);
    if (!p->fin)
        return 0;
    if (p->msg_op == EG_WS_OP_TEXT && p->utf8_state != 0)
        return fail(p, EG_WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");

    eg_ws_opcode_t op = (eg_ws_opcode_t)p->msg_op;
    p->msg_op = 0;
    p->msg.data[p->msg.len] = '\0';
    if (p->cb.on_message)
        p->cb.on_message(p->udata, op, p->msg.data, p->msg.len);
    if (p->msg.cap > EG_WS_KEEP_BUF)
        eg_buf_free(&p->msg);
    else
        eg_buf_clear(&p->msg);
    return 0;
}

/* dst[i] = src[i] ^ mask[(pos + i) % 4], eight bytes at a time: the key is rotated to pos once,
 * and a 4-byte period divides 8, so one 64-bit word XORs every aligned group. memcpy keeps the
 * loads legal at any alignment; compilers turn it into plain moves. */
static void unmask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4],
                        uint64_t pos)
{
    uint8_t m[8];
    uint64_t mw;
    size_t i = 0;

    for (int j = 0; j < 8; j++)
        m[j] = mask[(pos + (uint64_t)j) & 3];
    memcpy(&mw, m, 8);
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, src + i, 32);
        w[0] ^= mw, w[1] ^= mw, w[2] ^= mw, w[3] ^= mw;
        memcpy(dst + i, w, 32);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= mw;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ m[i & 7];
}

/* Unmask the next n payload bytes into the current frame's buffer. 0 or an error. */
static int payload(eg_ws_parser_t *p, const uint8_t *in, size_t n)
{
    uint8_t *dst;

    if (is_control(p->opcode)) {
        dst = (uint8_t *)p->ctl + p->ctl_len;
        p->ctl_len += (uint32_t)n;
    } else {
        dst = (uint8_t *)p->msg.data + p->msg.len;
        p->msg.len += n;
    }
    unmask_copy(dst, in, n, p->mask, p->mask_pos);
    p->mask_pos += n;
    p->remaining -= n;
    if (p->msg_op == EG_WS_OP_TEXT && !is_control(p->opcode) && !utf8_feed(&p->utf8_state, dst, n))
        return fail(p, EG_WS_CLOSE_INVALID_DATA, "text message is not valid UTF-8");
    return 0;
}

int eg_ws_parser_feed(eg_ws_parser_t *p, const void *data, size_t len)
{
    const uint8_t *in = data;

    if (p->state == ST_ERROR)
        return err_result(p);
    while (len > 0 && !p->stopped && p->state != ST_CLOSED) {
        if (p->state == ST_HEADER) {
            size_t n = EG_MIN((size_t)(p->hdr_need - p->hdr_len), len);
            memcpy(p->hdr + p->hdr_len, in, n);
            p->hdr_len += (uint8_t)n;
            in += n, len -= n;
            if (p->hdr_len < p->hdr_need)
                break;
            /* Three stops: the first two bytes, the end of the length, the end of the mask.
             * (A 7-bit length ends at byte 2, so the first two stops coincide.) */
            if (p->hdr_len == 2) {
                int rc = header_start(p);
                if (rc < 0)
                    return rc;
                if (len_end(p) > 2) {
                    p->hdr_need = (uint8_t)len_end(p);
                    continue;
                }
            }
            if (p->hdr_len == len_end(p)) {
                if (header_length(p) != 0)
                    return err_result(p);
                p->hdr_need = (uint8_t)(p->hdr_len + 4);
                continue; /* the mask is still to come */
            }
            header_done(p);
            p->hdr_len = 0;
            p->hdr_need = 2;
            p->state = ST_PAYLOAD;
        } else {
            size_t n = (size_t)EG_MIN(p->remaining, (uint64_t)len);
            if (n && payload(p, in, n) != 0)
                return err_result(p);
            in += n, len -= n;
        }
        /* An empty frame is complete as soon as its header is. */
        if (p->state == ST_PAYLOAD && p->remaining == 0) {
            p->state = ST_HEADER;
            if (frame_done(p) != 0)
                return err_result(p);
        }
    }
    return 0;
}

/* ---- encoder ----------------------------------------------------------------------------- */

/* Header bytes for a frame; returns their count (at most 14 with a mask). */
static size_t put_header(uint8_t *h, unsigned op, bool fin, uint64_t len, bool masked)
{
    size_t n;

    h[0] = (uint8_t)((fin ? 0x80 : 0) | (op & 0x0f));
    if (len < 126) {
        h[1] = (uint8_t)len;
        n = 2;
    } else if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        n = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (masked)
        h[1] |= 0x80;
    return n;
}

void eg_ws_encode_header(eg_buf_t *out, eg_ws_opcode_t op, bool fin, uint64_t len)
{
    uint8_t h[14];
    eg_buf_append(out, h, put_header(h, op, fin, len, false));
}

void eg_ws_encode_frame(eg_buf_t *out, eg_ws_opcode_t op, const void *data, size_t len)
{
    uint8_t h[14];
    size_t n = put_header(h, op, true, len, false);

    eg_buf_reserve(out, n + len);
    eg_buf_append(out, h, n);
    if (len)
        eg_buf_append(out, data, len);
}

eg_ws_frame_t *eg_ws_frame_new(eg_ws_opcode_t op, const void *data, size_t len)
{
    uint8_t h[14];
    size_t n = put_header(h, op, true, len, false);
    eg_ws_frame_t *f = eg_xmalloc(sizeof(*f) + n + len);

    f->refs = 1;
    f->len = n + len;
    memcpy(f->data, h, n);
    if (len)
        memcpy(f->data + n, data, len);
    return f;
}

eg_ws_frame_t *eg_ws_frame_ref(eg_ws_frame_t *f)
{
    f->refs++;
    return f;
}

void eg_ws_frame_unref(eg_ws_frame_t *f)
{
    if (f != NULL && --f->refs == 0)
        free(f);
}

void eg_ws_encode_text(eg_buf_t *out, const char *data, size_t len)
{
    eg_ws_encode_frame(out, EG_WS_OP_TEXT, data, len);
}

void eg_ws_encode_binary(eg_buf_t *out, const void *data, size_t len)
{
    eg_ws_encode_frame(out, EG_WS_OP_BINARY, data, len);
}

int eg_ws_encode_ping(eg_buf_t *out, const void *data, size_t len)
{
    if (len > EG_WS_MAX_CONTROL)
        return EG_EINVAL;
    eg_ws_encode_frame(out, EG_WS_OP_PING, data, len);
    return 0;
}

int eg_ws_encode_pong(eg_buf_t *out, const void *data, size_t len)
{
    if (len > EG_WS_MAX_CONTROL)
        return EG_EINVAL;
    eg_ws_encode_frame(out, EG_WS_OP_PONG, data, len);
    return 0;
}

int eg_ws_encode_close(eg_buf_t *out, int code, const char *reason)
{
    uint8_t body[EG_WS_MAX_CONTROL];
    size_t n = 0;

    if (code == 0) {
        eg_ws_encode_frame(out, EG_WS_OP_CLOSE, NULL, 0);
        return 0;
    }
    if (!eg_ws_close_code_valid(code))
        return EG_EINVAL;
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    if (reason) {
        n = strlen(reason);
        if (n > EG_WS_MAX_CONTROL - 2) {
            /* Cut before a continuation byte so the peer does not fail us with 1007. */
            n = EG_WS_MAX_CONTROL - 2;
            while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
                n--;
        }
        memcpy(body + 2, reason, n);
    }
    eg_ws_encode_frame(out, EG_WS_OP_CLOSE, body, n + 2);
    return 0;
}

void eg_ws_encode_masked(eg_buf_t *out, eg_ws_opcode_t op, bool fin, const void *data, size_t len,
                         const uint8_t mask[4])
{
    uint8_t h[14];
    size_t n = put_header(h, op, fin, len, true);

    memcpy(h + n, mask, 4);
    n += 4;
    eg_buf_reserve(out, n + len + 1);
    eg_buf_append(out, h, n);
    if (len)
        unmask_copy((uint8_t *)out->data + out->len, data, len, mask, 0);
    out->len += len;
    out->data[out->len] = '\0';
}
