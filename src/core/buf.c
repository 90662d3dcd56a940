/* Growable byte buffer. Capacity doubles so appends are amortised O(1); the data is kept
 * NUL-terminated so text users can hand b->data straight to C string functions. */
#include "engram/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/log.h"
#include "engram/util.h"

#define EG_BUF_MIN_CAP 64

void eg_buf_reserve(eg_buf_t *b, size_t n)
{
    size_t need, cap;

    /* One extra byte always stays free for the terminating NUL. */
    if (n > SIZE_MAX - b->len - 1) {
        eg_log_error("buf: reserve of %zu bytes overflows", n);
        abort();
    }
    need = b->len + n + 1;
    if (b->data != NULL && need <= b->cap)
        return;
    cap = b->cap > EG_BUF_MIN_CAP ? b->cap : EG_BUF_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = eg_xrealloc(b->data, cap);
    b->cap = cap;
    b->data[b->len] = '\0';
}

void eg_buf_append(eg_buf_t *b, const void *p, size_t n)
{
    eg_buf_reserve(b, n);
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void eg_buf_puts(eg_buf_t *b, const char *s)
{
    eg_buf_append(b, s, strlen(s));
}

void eg_buf_vprintf(eg_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    size_t avail;
    int len;

    /* Try the free space first: most formatted pieces are short and fit without a second pass. */
    eg_buf_reserve(b, 0);
    avail = b->cap - b->len;
    va_copy(ap2, ap);
    len = vsnprintf(b->data + b->len, avail, fmt, ap2);
    va_end(ap2);
    if (len < 0) {
        b->data[b->len] = '\0';
        return;
    }
    if ((size_t)len >= avail) {
        eg_buf_reserve(b, (size_t)len);
        vsnprintf(b->data + b->len, (size_t)len + 1, fmt, ap);
    }
    b->len += (size_t)len;
}

void eg_buf_printf(eg_buf_t *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    eg_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there are not one. Overlong
 * forms, surrogates and code points above U+10FFFF are invalid (RFC 3629). */
static size_t eg_utf8_seq_len(const unsigned char *s)
{
    unsigned char c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && s[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && s[1] >= 0xa0)
            return 0; /* UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && s[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xf4 && s[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

void eg_buf_json_str(eg_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *run;

    /* NULL has no string form; JSON null keeps the output well-formed. */
    if (s == NULL) {
        eg_buf_append(b, "null", 4);
        return;
    }
    eg_buf_append(b, "\"", 1);
    run = p;
    while (*p != '\0') {
        size_t n = eg_utf8_seq_len(p);
        char esc[6];
        size_t esclen = 2;

        if (n > 1 || (n == 1 && *p >= 0x20 && *p != '"' && *p != '\\')) {
            p += n;
            continue;
        }
        /* Flush the run of bytes that need no escaping, then write this byte's escape. */
        eg_buf_append(b, run, (size_t)(p - run));
        esc[0] = '\\';
        switch (*p) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            if (n == 0) {
                /* Invalid UTF-8 would make the whole document invalid JSON; substitute U+FFFD. */
                eg_buf_append(b, "\\ufffd", 6);
                p++;
                run = p;
                continue;
            }
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 0xf];
            esclen = 6;
            break;
        }
        eg_buf_append(b, esc, esclen);
        p++;
        run = p;
    }
    eg_buf_append(b, run, (size_t)(p - run));
    eg_buf_append(b, "\"", 1);
}

void eg_buf_consume(eg_buf_t *b, size_t n)
{
    if (n >= b->len) {
        eg_buf_clear(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void eg_buf_clear(eg_buf_t *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void eg_buf_free(eg_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
