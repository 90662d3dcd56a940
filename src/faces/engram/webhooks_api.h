/* engram's webhook routes (/engram/v1/webhooks...), mounted by engram.c's route table. */
#ifndef ENGRAM_FACES_ENGRAM_WEBHOOKS_API_H
#define ENGRAM_FACES_ENGRAM_WEBHOOKS_API_H

#include "engram/http.h"

/* POST /engram/v1/webhooks: create an endpoint; 201 with its secret (the only time it is shown). */
void eg__engram_webhooks_create(eg_req_t *req);

/* GET /engram/v1/webhooks: every endpoint of the caller's workspace, secrets as prefixes. */
void eg__engram_webhooks_list(eg_req_t *req);

/* GET, PATCH, DELETE /engram/v1/webhooks/{webhook_id}. */
void eg__engram_webhooks_get(eg_req_t *req);
void eg__engram_webhooks_update(eg_req_t *req);
void eg__engram_webhooks_delete(eg_req_t *req);

/* GET /engram/v1/webhooks/{webhook_id}/deliveries: newest first, ?limit= and ?cursor=. */
void eg__engram_webhooks_deliveries(eg_req_t *req);

/* POST /engram/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry: re-queue a failed one. */
void eg__engram_webhooks_retry(eg_req_t *req);

#endif
