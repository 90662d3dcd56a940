/* Operation records: what a client polls while asynchronous work (a queued job) runs.
 *
 * A record is a hash in its owner's slot, so the module that starts the work can create the
 * record and write its own data in one Lua script (EG_OPS_LUA_CREATE below):
 *   eg:{<scope>:<scope_id>}:op:<op_id>  hash  id, kind, status, progress (0..1), error, meta,
 *                                             created, updated, started, finished (ms),
 *                                             retries (set by eg_op_requeue)
 *   eg:{<scope>:<scope_id>}:ops         zset  op id -> created (ms), the listing index
 * e.g. scope "b" + a bank id, or "w" + a workspace id. Times come from Redis's clock.
 *
 * Status moves pending -> processing -> completed | failed | cancelled; the last three are
 * final (a later update is EG_ECONFLICT), so a late worker cannot resurrect a cancelled op. The
 * one way back is an explicit retry (eg_op_requeue: failed -> pending). */
#ifndef ENGRAM_OPS_H
#define ENGRAM_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    EG_OP_PENDING = 0,
    EG_OP_PROCESSING,
    EG_OP_COMPLETED,
    EG_OP_FAILED,
    EG_OP_CANCELLED,
} eg_op_status_t;

#define EG_OP_KEEP (-1) /* eg_op_update / eg_op_list: leave unchanged / no filter */

/* "pending", "processing", ... */
const char *eg_op_status_name(eg_op_status_t st);
/* Parse a status name; 0 or EG_EINVAL. */
int eg_op_status_parse(const char *s, eg_op_status_t *out);

/* One record; strings point into the reply (valid during the callback), "" when unset. */
typedef struct eg_op_s {
    const char *id, *kind, *error, *meta;
    eg_op_status_t status;
    double progress;
    int64_t created_ms, updated_ms, started_ms, finished_ms; /* 0 when not yet */
    int64_t retries; /* times eg_op_requeue moved it from failed back to pending */
} eg_op_t;

/* err 0 with the record, or EG_ENOTFOUND / EG_ECONFLICT / EG_EUNAVAIL / EG_ESTORETIMEOUT /
 * EG_EREDIS with op NULL. */
typedef void (*eg_op_fn)(void *udata, int err, const eg_op_t *op);

/* ops[0..n) newest first; next_cursor is "" at the end, else pass it to the next call. */
typedef void (*eg_op_list_fn)(void *udata, int err, const eg_op_t *ops, size_t n,
                              const char *next_cursor);

/* Create a pending record (EG_ECONFLICT when op_id exists). meta (may be NULL) is opaque text,
 * typically JSON the face renders. Returns 0 (cb called) or EG_EINVAL / EG_EUNAVAIL. */
int eg_op_create(const char *scope, const char *scope_id, const char *op_id, const char *kind,
                 const char *meta, eg_op_fn cb, void *udata);

/* Update status (or EG_OP_KEEP), progress (0..1, or < 0 to keep) and error (NULL to keep); sets
 * started on the first move to processing and finished (and progress 1 for completed) on the
 * move to a final status. cb (may be NULL) gets the updated record. */
int eg_op_update(const char *scope, const char *scope_id, const char *op_id, int status,
                 double progress, const char *error, eg_op_fn cb, void *udata);

int eg_op_get(const char *scope, const char *scope_id, const char *op_id, eg_op_fn cb, void *udata);

/* List newest first, optionally only one status (or EG_OP_KEEP), from cursor (NULL or "" for
 * the start), at most limit (1..1000) records. With a filter a page may hold fewer than limit
 * records while more match: keep going until next_cursor is "". */
int eg_op_list(const char *scope, const char *scope_id, int status, const char *cursor,
               unsigned limit, eg_op_list_fn cb, void *udata);

/* ---- curation (the operations API of a face) -------------------------------------------- */

/* The next three are conditional moves, each one script. On a record in the wrong state the
 * callback gets EG_ECONFLICT *with* the record as it is (so the caller can say why); a missing
 * record is EG_ENOTFOUND with op NULL. cb may be NULL. */

/* pending -> cancelled (finished set). A worker that picks the job up later finds the record
 * final and drops it. */
int eg_op_cancel(const char *scope, const char *scope_id, const char *op_id, eg_op_fn cb,
                 void *udata);

/* failed -> pending for another attempt: error, progress, started and finished are cleared and
 * retries is incremented. Re-pushing the job is the caller's part (the owner of the job kind). */
int eg_op_requeue(const char *scope, const char *scope_id, const char *op_id, eg_op_fn cb,
                  void *udata);

/* Delete a record in a final state (completed, failed, cancelled) and its listing entry; cb gets
 * the record as it was. */
int eg_op_delete(const char *scope, const char *scope_id, const char *op_id, eg_op_fn cb,
                 void *udata);

#define EG_OP_SCAN_MAX 10000 /* records a filtered page or a count looks at (newest first) */

/* Which records eg_op_page returns. */
typedef struct eg_op_filter_s {
    int status;       /* eg_op_status_t, or EG_OP_KEEP for any */
    const char *kind; /* NULL or "" for any */
    /* NULL or "": no effect. Otherwise skip records whose meta is a JSON object holding a
     * non-empty array under this key (e.g. a parent operation's list of children). */
    const char *exclude_meta_key;
    bool counts; /* also count every record by status (cb's counts) */
} eg_op_filter_t;

/* ops[0..n) is the page, newest first; total counts every record that matches; counts[status]
 * (when asked for, else zeros) counts the records by status, unfiltered. Without a filter the
 * page is read by rank and total is the listing's size; with one (or with counts), the newest
 * EG_OP_SCAN_MAX records are looked at. */
typedef void (*eg_op_page_fn)(void *udata, int err, const eg_op_t *ops, size_t n, size_t total,
                              const size_t counts[5]);

/* An offset page of a scope's records, newest first: skip offset matching records, return at
 * most limit (0..1000; 0 for total and counts alone). 0 (cb runs once) or EG_EINVAL /
 * EG_EUNAVAIL. */
int eg_op_page(const char *scope, const char *scope_id, const eg_op_filter_t *f, size_t offset,
               unsigned limit, eg_op_page_fn cb, void *udata);

/* Lua for other modules' scripts that create an op together with their own data, atomically:
 * defines eg_op_create(opkey, idxkey, id, kind, meta, now) (now in ms; returns false when the
 * op exists). Keys as above, in the script's own slot. */
#define EG_OPS_LUA_CREATE                                                                          \
    "local function eg_op_create(opkey, idxkey, id, kind, meta, now)\n"                            \
    "  if redis.call('EXISTS', opkey) == 1 then return false end\n"                                \
    "  redis.call('HSET', opkey, 'id', id, 'kind', kind, 'status', 'pending', 'progress', '0',\n"  \
    "             'error', '', 'meta', meta, 'created', now, 'updated', now)\n"                    \
    "  redis.call('ZADD', idxkey, now, id)\n"                                                      \
    "  return true\n"                                                                              \
    "end\n"

#endif
