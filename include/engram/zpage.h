/* Keyset pages over a collection stored as a hash (id -> JSON record) plus an ordering zset.
 *
 * The zset holds one member per record, "<16-digit zero-padded created µs>:<id>", every score 0:
 * lexicographic order is creation order (ties by id), so a member is a stable cursor that needs no
 * offset and survives inserts and deletes. Both keys must share a Redis Cluster slot. Used by the
 * Fency face's lists (memories, memory types, agent tasks, conversations). */
#ifndef ENGRAM_ZPAGE_H
#define ENGRAM_ZPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EG_ZPAGE_LIMIT_MAX  1000
#define EG_ZPAGE_MEMBER_MAX 128 /* longest member (and cursor) accepted, NUL included */

typedef struct eg_zpage_req_s {
    const char *zkey, *hkey; /* full Redis keys, same slot */
    const char *cursor;      /* NULL: the first page; else prev or next of an earlier page */
    bool backwards;          /* the cursor is a prev cursor (the page before it) */
    size_t limit;            /* 1..EG_ZPAGE_LIMIT_MAX */
    bool asc;                /* oldest first; default newest first */
} eg_zpage_req_t;

/* One page. ids[i] and values[i] (the hash's JSON) in display order; a member whose hash entry is
 * gone is skipped. prev / next are cursors of the pages before and after, NULL at either end. */
typedef struct eg_zpage_s {
    const char *const *ids;
    const char *const *values;
    size_t n;
    const char *prev, *next;
} eg_zpage_t;

/* err 0 and the page (valid during the call), or a store error and NULL. */
typedef void (*eg_zpage_fn)(void *udata, int err, const eg_zpage_t *page);

/* Read one page. 0 (cb runs once, later), or EG_EINVAL (bad limit, a cursor that is not a
 * member-shaped string) / EG_EUNAVAIL, and cb is never called. */
int eg_zpage(const eg_zpage_req_t *q, eg_zpage_fn cb, void *udata);

/* The member of a record created at created_us with id; out has cap bytes (>= 18 + strlen(id)). */
void eg_zpage_member(int64_t created_us, const char *id, char *out, size_t cap);

/* Is s shaped like a member: 16 digits, ':', then 1..100 printable characters without spaces? */
bool eg_zpage_member_valid(const char *s);

#endif
