/* Private declarations shared by the webhook endpoints (webhooks.c) and the delivery engine
 * (webhooks_engine.c). */
#ifndef ENGRAM_WEBHOOKS_INT_H
#define ENGRAM_WEBHOOKS_INT_H

#include "engram/arena.h"
#include "engram/events.h"

#define EG__WH_ID_MAX 64 /* endpoint and delivery ids, with the NUL */

/* Endpoint ids "wh_<base62>" and delivery ids "msg_<hex>": [A-Za-z0-9_], 4..63 characters.
 * Checked before an id from a URL goes into a key. */
bool eg__wh_id_valid(const char *id, const char *prefix);

/* Keys of ws: the endpoint index, one endpoint, its delivery index, one delivery, its attempts. */
char *eg__wh_key_index(eg_arena_t *a, const char *ws);
char *eg__wh_key_endpoint(eg_arena_t *a, const char *ws, const char *id);
char *eg__wh_key_deliveries(eg_arena_t *a, const char *ws, const char *id);
char *eg__wh_key_delivery(eg_arena_t *a, const char *ws, const char *did);
char *eg__wh_key_attempts(eg_arena_t *a, const char *ws, const char *did);

/* The job payload "<ws>\n<endpoint id>\n<delivery id>" and its parser (false if malformed;
 * the parts are copied into the arena). */
char *eg__wh_job_payload(eg_arena_t *a, const char *ws, const char *ep, const char *did);
bool eg__wh_job_parse(eg_arena_t *a, const char *payload, char **ws, char **ep, char **did);

/* The emit hook (webhooks.c): writes the deliveries of ev and pushes their jobs. */
void eg__wh_fanout(const char *ws_id, const eg_event_t *ev, eg_events_hook_done_fn done, void *ctx);

#endif
