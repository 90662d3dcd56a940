/* Chunked bump allocator. Requests allocate many small, short-lived objects that all die together
 * when the response is done, so a bump pointer plus one free per chunk at reset beats malloc/free
 * per object and makes leaks on error paths impossible by construction. */
#include "engram/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/log.h"
#include "engram/util.h"

#define EG_ARENA_ALIGN       16
#define EG_ARENA_FIRST_CHUNK 4096
#define EG_ARENA_MAX_CHUNK   (64 * 1024)

struct eg_arena_chunk_s {
    eg_arena_chunk_t *next;
    size_t size; /* usable bytes after the header */
};

struct eg_arena_defer_s {
    eg_arena_defer_t *next;
    void (*fn)(void *);
    void *ptr;
};

/* Data starts at the first 16-byte boundary after the header, whatever its size. */
#define EG_ARENA_HDR                                                                               \
    ((sizeof(eg_arena_chunk_t) + EG_ARENA_ALIGN - 1) & ~(size_t)(EG_ARENA_ALIGN - 1))

static char *eg_arena_chunk_data(eg_arena_chunk_t *c)
{
    return (char *)c + EG_ARENA_HDR;
}

static size_t eg_arena_round(size_t n)
{
    if (n > SIZE_MAX - EG_ARENA_HDR - EG_ARENA_ALIGN) {
        eg_log_error("arena: allocation of %zu bytes overflows", n);
        abort();
    }
    return (n + EG_ARENA_ALIGN - 1) & ~(size_t)(EG_ARENA_ALIGN - 1);
}

void eg_arena_init(eg_arena_t *a)
{
    a->chunks = NULL;
    a->defers = NULL;
    a->pos = NULL;
    a->end = NULL;
    a->total = 0;
}

void eg_arena_reset(eg_arena_t *a)
{
    eg_arena_chunk_t *c, *next;

    /* Defer records live inside the chunks, so run them all before any chunk is freed. Pop one at
     * a time so a destructor that registers another defer is still honoured. */
    while (a->defers != NULL) {
        eg_arena_defer_t *d = a->defers;

        a->defers = d->next;
        d->fn(d->ptr);
    }
    for (c = a->chunks; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    eg_arena_init(a);
}

void eg_arena_destroy(eg_arena_t *a)
{
    eg_arena_reset(a);
}

static void *eg_arena_alloc_slow(eg_arena_t *a, size_t n)
{
    eg_arena_chunk_t *c;
    size_t size;

    size = a->chunks != NULL ? a->chunks->size * 2 : EG_ARENA_FIRST_CHUNK;
    size = EG_MIN(EG_MAX(size, (size_t)EG_ARENA_FIRST_CHUNK), (size_t)EG_ARENA_MAX_CHUNK);

    if (n > size / 4) {
        /* A big allocation gets a chunk of its own, linked behind the current chunk so the free
         * space left there keeps serving small allocations. */
        c = eg_xmalloc(EG_ARENA_HDR + n);
        c->size = n;
        if (a->chunks != NULL) {
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = NULL;
            a->chunks = c;
            a->pos = a->end = eg_arena_chunk_data(c) + n;
        }
        return eg_arena_chunk_data(c);
    }

    c = eg_xmalloc(EG_ARENA_HDR + size);
    c->size = size;
    c->next = a->chunks;
    a->chunks = c;
    a->pos = eg_arena_chunk_data(c) + n;
    a->end = eg_arena_chunk_data(c) + size;
    return eg_arena_chunk_data(c);
}

void *eg_arena_alloc(eg_arena_t *a, size_t n)
{
    void *p;

    /* Zero-byte requests still get a distinct, valid pointer. */
    n = eg_arena_round(n == 0 ? 1 : n);
    a->total += n;
    if (a->pos != NULL && (size_t)(a->end - a->pos) >= n) {
        p = a->pos;
        a->pos += n;
        return p;
    }
    return eg_arena_alloc_slow(a, n);
}

void *eg_arena_calloc(eg_arena_t *a, size_t n)
{
    void *p = eg_arena_alloc(a, n);

    memset(p, 0, n);
    return p;
}

char *eg_arena_strdup(eg_arena_t *a, const char *s)
{
    if (s == NULL)
        return NULL;
    return eg_arena_strndup(a, s, strlen(s));
}

char *eg_arena_strndup(eg_arena_t *a, const char *s, size_t n)
{
    char *p;

    if (n == SIZE_MAX) {
        eg_log_error("arena: strndup of %zu bytes overflows", n);
        abort();
    }
    p = eg_arena_alloc(a, n + 1);
    if (n > 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *eg_arena_vprintf(eg_arena_t *a, const char *fmt, va_list ap)
{
    char tmp[256];
    va_list ap2;
    char *p;
    int len;

    /* Format into the stack first: most strings are short and then need a single pass. */
    va_copy(ap2, ap);
    len = vsnprintf(tmp, sizeof(tmp), fmt, ap2);
    va_end(ap2);
    if (len < 0) {
        /* Only an invalid format or a wide-character conversion error gets here. */
        len = 0;
        tmp[0] = '\0';
    }
    p = eg_arena_alloc(a, (size_t)len + 1);
    if ((size_t)len < sizeof(tmp))
        memcpy(p, tmp, (size_t)len + 1);
    else
        vsnprintf(p, (size_t)len + 1, fmt, ap);
    return p;
}

char *eg_arena_printf(eg_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    char *p;

    va_start(ap, fmt);
    p = eg_arena_vprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

void eg_arena_defer(eg_arena_t *a, void (*fn)(void *), void *ptr)
{
    eg_arena_defer_t *d = eg_arena_alloc(a, sizeof(*d));

    d->fn = fn;
    d->ptr = ptr;
    d->next = a->defers;
    a->defers = d;
}
