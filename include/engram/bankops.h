/* Bank operations: the asynchronous operations of a memory bank as faces show them — listed with
 * filters and offset paging, one with its child operations, and the curation moves (cancel a
 * pending one, retry a failed one, delete a finished one). Usable by every face; no HTTP here.
 *
 * The records are engram/ops.h records in scope "b", scope id "<ws>/<bank>", so another
 * workspace's bank (or a bank that does not exist) simply has none. Their meta is a JSON object
 * written by the module that starts the work (retain, consolidation, ...); the keys read here
 * and by the faces are:
 *
 *   items_count      int     items the operation carries
 *   document_id      string
 *   filename         string  (file conversions)
 *   mental_model_id  string  (mental model refreshes)
 *   parent           string  the batch operation this one is a sub-batch of
 *   children         array   a batch operation's sub-batch operation ids (a "parent")
 *   sub_batch_index  int     a child's position in its batch
 *   payload          object  what the operation was submitted with (task_payload)
 *   result           object  what it produced (result_metadata)
 *   progress         object  {stage, processed?, total?, detail?} last reported
 *
 * Unknown keys are ignored; a meta that is not a JSON object reads as {}.
 *
 * Retrying re-queues a job, which only the module owning that kind of job knows how to do: it
 * registers a retry function for its kind (eg_bankops_set_retry). Every callback runs exactly
 * once per accepted call, later, from the loop; what it is given is valid only during it. */
#ifndef ENGRAM_BANKOPS_H
#define ENGRAM_BANKOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engram/ops.h"

#define EG_BANKOPS_KINDS_MAX 16 /* kinds that can register a retry function */

/* A record and its meta parsed (NULL when absent or not an object). */
typedef struct eg_bankop_s {
    eg_op_t rec;
    const cJSON *meta;
} eg_bankop_t;

/* The int / string under key in an operation's meta (0 / NULL when absent or of another type). */
int64_t eg_bankop_meta_int(const eg_bankop_t *op, const char *key);
const char *eg_bankop_meta_str(const eg_bankop_t *op, const char *key);

typedef struct eg_bankops_query_s {
    int status;       /* eg_op_status_t or EG_OP_KEEP */
    bool none;        /* select nothing (an unknown status name was asked for) */
    const char *kind; /* NULL = any */
    bool exclude_parents;
    size_t limit, offset; /* limit 1..1000 */
} eg_bankops_query_t;

typedef void (*eg_bankops_list_fn)(void *udata, int err, const eg_bankop_t *ops, size_t n,
                                   size_t total);

/* A page of the bank's operations, newest first; total counts the matching ones (of the newest
 * EG_OP_SCAN_MAX when filtering). 0 (cb runs) or EG_EINVAL / EG_EUNAVAIL. */
int eg_bankops_list(const char *ws_id, const char *bank_id, const eg_bankops_query_t *q,
                    eg_bankops_list_fn cb, void *udata);

/* err 0 with the operation and its children (meta "children", in that order, those that still
 * exist); EG_ENOTFOUND; or a store error. */
typedef void (*eg_bankop_fn)(void *udata, int err, const eg_bankop_t *op,
                             const eg_bankop_t *children, size_t nchildren);

int eg_bankops_get(const char *ws_id, const char *bank_id, const char *op_id, eg_bankop_fn cb,
                   void *udata);

/* err 0 with the record after the move; EG_ENOTFOUND (op NULL); EG_ECONFLICT with the record as
 * it is when the move does not apply to its status; or a store error. */
typedef void (*eg_bankop_move_fn)(void *udata, int err, const eg_op_t *op);

/* Cancel a pending operation (and, best effort, its pending children). */
int eg_bankops_cancel(const char *ws_id, const char *bank_id, const char *op_id,
                      eg_bankop_move_fn cb, void *udata);

/* Delete a completed, failed or cancelled operation's record. */
int eg_bankops_delete(const char *ws_id, const char *bank_id, const char *op_id,
                      eg_bankop_move_fn cb, void *udata);

/* A kind's retry: push the job of operation op (just moved back to pending, op->retries counts
 * the retries so far) onto its queue again, then call done(done_udata, err) exactly once. A job
 * id that includes op->retries keeps the queue's push dedupe from swallowing the retry. Returns
 * 0 (done runs) or an error (done does not run). */
typedef void (*eg_bankops_retry_done_fn)(void *done_udata, int err);
typedef int (*eg_bankops_retry_fn)(const char *ws_id, const char *bank_id, const eg_op_t *op,
                                   eg_bankops_retry_done_fn done, void *done_udata);

/* Register the retry function of operations of kind (NULL unregisters). Call at start-up. 0, or
 * EG_EINVAL when the table is full. */
int eg_bankops_set_retry(const char *kind, eg_bankops_retry_fn fn);

/* Retry a failed operation: the record goes back to pending (eg_op_requeue) and its kind's retry
 * function re-queues the job; if that fails, the record is failed again with the reason. A kind
 * without a retry function is EG_ENOTIMPL (the record is left failed). */
int eg_bankops_retry(const char *ws_id, const char *bank_id, const char *op_id,
                     eg_bankop_move_fn cb, void *udata);

#endif
