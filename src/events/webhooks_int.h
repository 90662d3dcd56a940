/* Private declarations shared by the webhook endpoints (webhooks.c), the bank endpoints
 * (bank_webhooks.c, bank_webhooks_wire.c) and the delivery engine (webhooks_engine.c). */
#ifndef ENGRAM_WEBHOOKS_INT_H
#define ENGRAM_WEBHOOKS_INT_H

#include "engram/arena.h"
#include "engram/events.h"
#include "engram/http.h"
#include "engram/store.h"
#include "engram/webhooks.h"
#include "events_int.h"

#define EG__WH_ID_MAX 64 /* endpoint and delivery ids, with the NUL */

/* Endpoint ids "wh_<base62>" and delivery ids "msg_<hex>": [A-Za-z0-9_], 4..63 characters.
 * Checked before an id from a URL goes into a key. */
bool eg__wh_id_valid(const char *id, const char *prefix);

/* An endpoint id of either kind: a workspace endpoint's "wh_<base62>" or a bank endpoint's
 * UUID. */
bool eg__wh_ep_valid(const char *id);

/* Keys of ws: the endpoint index, one endpoint, its delivery index, one delivery, its attempts. */
char *eg__wh_key_index(eg_arena_t *a, const char *ws);
char *eg__wh_key_endpoint(eg_arena_t *a, const char *ws, const char *id);
char *eg__wh_key_deliveries(eg_arena_t *a, const char *ws, const char *id);
char *eg__wh_key_delivery(eg_arena_t *a, const char *ws, const char *did);
char *eg__wh_key_attempts(eg_arena_t *a, const char *ws, const char *did);

/* The index of one bank's endpoints: eg:{w:<ws>}:bwh:<bank_id> (bank_webhooks.c). */
char *eg__bwh_key_index(eg_arena_t *a, const char *ws, const char *bank);

/* The job payload "<ws>\n<endpoint id>\n<delivery id>" and its parser (false if malformed;
 * the parts are copied into the arena). */
char *eg__wh_job_payload(eg_arena_t *a, const char *ws, const char *ep, const char *did);
bool eg__wh_job_parse(eg_arena_t *a, const char *payload, char **ws, char **ep, char **did);

/* The emit hook (webhooks.c): writes the deliveries of ev and pushes their jobs. */
void eg__wh_fanout(const char *ws_id, const eg_event_t *ev, eg_events_hook_done_fn done, void *ctx);

/* One page of endpoint id's deliveries (webhooks.c), for both kinds: bank non-NULL also requires
 * the endpoint to belong to that bank. limit 1..max_limit. As eg_webhook_deliveries. */
int eg__wh_deliveries(const char *ws_id, const char *id, const char *bank, const char *cursor,
                      int limit, int max_limit, eg_webhook_deliveries_fn cb, void *udata);

/* A bank endpoint's headers or params as stored: a JSON object of strings, in order (malloc'd),
 * and back into n pairs in the arena (false when json is not such an object; "" is none). */
char *eg__bwh_kv_json(const eg_kv_t *kv, size_t n);
bool eg__bwh_kv_parse(eg_arena_t *a, const char *json, eg_kv_t **out, size_t *n);

/* ---- shared by webhooks.c and webhooks_deliveries.c --------------------------------------- */

/* One asynchronous webhook call: its arena, callback and the ids it works on. */
typedef struct wh_op_s {
    eg_arena_t arena;
    union {
        eg_webhook_fn one;
        eg_webhook_list_fn list;
        eg_webhook_done_fn done;
        eg_webhook_deliveries_fn page;
    } cb;
    void *udata;
    char ws[EG__EVENTS_WS_MAX + 1];
    char id[EG__WH_ID_MAX];
    char did[EG__WH_ID_MAX];
    const char *secret; /* create: the whole secret, shown once */
    /* fan-out: pushes still running and the first error */
    eg_events_hook_done_fn hook_done;
    void *hook_ctx;
    size_t pushing;
    int push_err;
} wh_op_t;

/* A new operation for workspace ws (and endpoint id, may be NULL). */
wh_op_t *eg__wh_op_new(const char *ws, const char *id, void *udata);

/* Free an operation (its copy of a new secret is wiped first). */
void eg__wh_op_free(wh_op_t *op);

/* err, or the error a Redis reply stands for (logged with what): 0 when the reply is usable. */
int eg__wh_reply_err(int err, const redisReply *r, const char *what);

/* A string reply copied into the arena (NULL for anything else). */
const char *eg__wh_str(eg_arena_t *a, const redisReply *r);

#endif
