/* Growable byte buffer used for request bodies, responses and output queues. */
#ifndef ENGRAM_BUF_H
#define ENGRAM_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct eg_buf_s {
    char *data; /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
} eg_buf_t;

#define EG_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Make room for n more bytes (aborts on out-of-memory). */
void eg_buf_reserve(eg_buf_t *b, size_t n);

/* Append n bytes. */
void eg_buf_append(eg_buf_t *b, const void *p, size_t n);

/* Append a NUL-terminated string. */
void eg_buf_puts(eg_buf_t *b, const char *s);

/* Append formatted text. */
void eg_buf_printf(eg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void eg_buf_vprintf(eg_buf_t *b, const char *fmt, va_list ap);

/* Append s as a JSON string literal, quotes included. */
void eg_buf_json_str(eg_buf_t *b, const char *s);

/* Drop the first n bytes (n <= len). */
void eg_buf_consume(eg_buf_t *b, size_t n);

/* Set length to zero, keep the allocation. */
void eg_buf_clear(eg_buf_t *b);

/* Release the allocation. */
void eg_buf_free(eg_buf_t *b);

#endif
