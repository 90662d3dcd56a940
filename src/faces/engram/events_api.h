/* engram's event routes (/engram/v1/events...), mounted by engram.c's route table. */
#ifndef ENGRAM_FACES_ENGRAM_EVENTS_API_H
#define ENGRAM_FACES_ENGRAM_EVENTS_API_H

#include "engram/http.h"

/* GET /engram/v1/events: one page of the caller's workspace log. */
void eg__engram_events_list(eg_req_t *req);

/* GET /engram/v1/events/{event_id}: one event, or 404. */
void eg__engram_events_get(eg_req_t *req);

/* POST /engram/v1/events: emit a custom event {type, entity}. */
void eg__engram_events_create(eg_req_t *req);

#endif
