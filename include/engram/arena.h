/* Per-request bump allocator with deferred destructors (h2o req->pool, nginx r->pool). */
#ifndef ENGRAM_ARENA_H
#define ENGRAM_ARENA_H

#include <stdarg.h>
#include <stddef.h>

typedef struct eg_arena_chunk_s eg_arena_chunk_t;
typedef struct eg_arena_defer_s eg_arena_defer_t;

typedef struct eg_arena_s {
    eg_arena_chunk_t *chunks; /* newest first */
    eg_arena_defer_t *defers; /* run in reverse order of registration */
    char *pos, *end;          /* free space in the newest chunk */
    size_t total;             /* bytes handed out since the last reset */
} eg_arena_t;

/* Initialise an empty arena; allocates nothing until first use. */
void eg_arena_init(eg_arena_t *a);

/* Run deferred destructors and free every chunk; the arena stays usable (empty). */
void eg_arena_reset(eg_arena_t *a);

/* Same as eg_arena_reset; named for the final release of an arena's owner. */
void eg_arena_destroy(eg_arena_t *a);

/* Allocate n bytes aligned to 16; never returns NULL (aborts on out-of-memory). */
void *eg_arena_alloc(eg_arena_t *a, size_t n);

/* Allocate n zeroed bytes. */
void *eg_arena_calloc(eg_arena_t *a, size_t n);

/* Copy a NUL-terminated string (NULL stays NULL). */
char *eg_arena_strdup(eg_arena_t *a, const char *s);

/* Copy n bytes and NUL-terminate. */
char *eg_arena_strndup(eg_arena_t *a, const char *s, size_t n);

/* printf into the arena. */
char *eg_arena_printf(eg_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *eg_arena_vprintf(eg_arena_t *a, const char *fmt, va_list ap);

/* Register fn(ptr) to run at the next reset/destroy (e.g. cJSON_Delete on a parsed tree). */
void eg_arena_defer(eg_arena_t *a, void (*fn)(void *), void *ptr);

#endif
