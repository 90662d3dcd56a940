/* Directives: a bank's hard rules for reflect ("always answer in French"), each global (no tags)
 * or scoped to tags, with a priority and an on/off switch. Usable by every face; no HTTP here.
 *
 * Keys (docs/keyspace.md, "Directives and mental models"), in the bank's slot {b:<ws>/<bank>}:
 *   eg:{b:<ws>/<bank>}:dirs      zset  directive id -> created_at (µs): the index
 *   eg:{b:<ws>/<bank>}:dir:<id>  hash  id, name, content, priority, is_active (1|0), tags (JSON
 *                                      array text), created_at, updated_at (µs)
 * Every write is one Lua script. Deleting the bank drops them (eg_directives_bank_keys); clearing
 * a bank's memories keeps them, as Hindsight does.
 *
 * Order everywhere: priority descending, then created_at descending, then id.
 *
 * Tag matching. A directive with no tags is global: it passes every filter. A tagged directive
 * against the wanted tags W:
 *   any    at least one of its tags is in W
 *   all    every tag of W is one of its tags
 *   exact  its tag set equals W
 * An empty W selects every directive (the list route's "omit or pass [] to list all"). Reflect
 * uses "any" (Hindsight's default tags_match): a tagged directive applies when the request's tags
 * share a tag with it, and never when the request has no tags (unless apply_all).
 *
 * Every callback runs exactly once per accepted call (return 0), later, from the loop; what it is
 * given is valid only during the callback. Functions return 0, EG_EINVAL (bad argument) or
 * EG_EUNAVAIL (store down, cb not called). */
#ifndef ENGRAM_DIRECTIVES_H
#define ENGRAM_DIRECTIVES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"
#include "engram/recall.h" /* eg_tags_match_t */

#define EG_DIRECTIVE_NAME_MAX    1024        /* bytes */
#define EG_DIRECTIVE_CONTENT_MAX (64 * 1024) /* bytes */
#define EG_DIRECTIVES_MAX        1000        /* directives one bank may hold */

/* A directive as stored. Times are µs since the epoch (UTC). */
typedef struct eg_directive_s {
    const char *id; /* UUID v4 */
    const char *name;
    const char *content;
    int64_t priority; /* higher first */
    bool is_active;
    const char *const *tags;
    size_t ntags;
    int64_t created_at, updated_at;
} eg_directive_t;

/* err 0 with the directive; EG_ENOTFOUND; or a store error (d NULL). */
typedef void (*eg_directive_fn)(void *udata, int err, const eg_directive_t *d);

/* err 0 with ds[0..n) in order; total counts every match (not just the page). */
typedef void (*eg_directives_fn)(void *udata, int err, const eg_directive_t *ds, size_t n,
                                 size_t total);

/* A new directive (Hindsight's CreateDirectiveRequest). */
typedef struct eg_directive_new_s {
    const char *name, *content; /* required */
    int64_t priority;           /* 0 by default */
    bool is_active;             /* true by default */
    const char *const *tags;
    size_t ntags;
} eg_directive_new_t;

/* Create a directive with a fresh UUID; the bank is created if missing (banks are created on
 * write). EG_EINVAL: oversized name/content, too many or bad tags; EG_ECONFLICT (in cb)
 * when the bank holds EG_DIRECTIVES_MAX directives. */
int eg_directive_create(const char *ws_id, const char *bank_id, const eg_directive_new_t *d,
                        eg_directive_fn cb, void *udata);

/* One directive; EG_ENOTFOUND when it (or the bank) does not exist. */
int eg_directive_get(const char *ws_id, const char *bank_id, const char *id, eg_directive_fn cb,
                     void *udata);

/* A change: NULL / false leave a field alone. */
typedef struct eg_directive_patch_s {
    const char *name, *content;
    bool set_priority;
    int64_t priority;
    bool set_active;
    bool is_active;
    bool set_tags;
    const char *const *tags;
    size_t ntags;
} eg_directive_patch_t;

/* Apply p (updated_at becomes now); cb gets the directive after it, or EG_ENOTFOUND. */
int eg_directive_patch(const char *ws_id, const char *bank_id, const char *id,
                       const eg_directive_patch_t *p, eg_directive_fn cb, void *udata);

/* Delete one; cb gets the directive as it was, or EG_ENOTFOUND. */
int eg_directive_delete(const char *ws_id, const char *bank_id, const char *id, eg_directive_fn cb,
                        void *udata);

typedef struct eg_directives_query_s {
    const char *const *tags; /* NULL / 0: every directive */
    size_t ntags;
    eg_tags_match_t tags_match; /* EG_TAGS_ANY, EG_TAGS_ALL or EG_TAGS_EXACT */
    bool active_only;
    size_t limit, offset; /* limit 1..1000 */
} eg_directives_query_t;

/* A page of a bank's directives in order (an unknown bank has none). */
int eg_directives_list(const char *ws_id, const char *bank_id, const eg_directives_query_t *q,
                       eg_directives_fn cb, void *udata);

/* The directives a reflect must follow, in order: the active ones that are untagged, plus the
 * active tagged ones whose tags share at least one tag with tags[0..ntags) — or every active
 * one when apply_all. cb gets them all (n == total); none for an unknown bank. */
int eg_directives_for_reflect(const char *ws_id, const char *bank_id, const char *const *tags,
                              size_t ntags, bool apply_all, eg_directives_fn cb, void *udata);

/* True when a directive with tags dt[0..ndt) passes the filter want[0..nwant) under m (see the
 * top of this file). Pure. */
bool eg_directive_tags_pass(const char *const *dt, size_t ndt, const char *const *want,
                            size_t nwant, eg_tags_match_t m);

/* For the bank's delete script (engram/bank.h): *index is the index key (drop it too) and
 * *prefix the record key prefix, to which each index member is appended. */
void eg_directives_bank_keys(eg_arena_t *a, const char *ws_id, const char *bank_id,
                             const char **index, const char **prefix);

#endif
